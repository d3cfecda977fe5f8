// conv1d.cuh — causal depthwise conv1d along L (x [B,L,D], w [D,1,K], bias [D]) and its backward.
// Forward needs CONV_B/L/D/K, X_T, W_T, BIAS_T, OUT_T, CONV_SILU, CONV_THREADS, CONV_ROWS, CONV_VEC (1 or 4
// channels per thread, read and written as one access: template.c checks D and the row map allow it); grid
// (ceil(D/(THREADS*VEC)), ceil(L/ROWS), B): each thread slides a K-row window down ROWS rows of VEC channels, so
// every x element is read about once and a warp touches 32*VEC consecutive d (coalesced). Inputs x and dy are read through
// VMC_AT (common.cuh): they may be row permutations or channel slices of a larger buffer.
// Backward (CONV_BACKWARD) needs DY_T, CONV_WANT_DX/DW/DB, CONV_CH, CONV_GROUPS, CONV_ROWS, CONV_BATCH (CONV_VEC
// as the forward); block (CH, GROUPS), grid (ceil(D/(CH*VEC)), ceil(L/(GROUPS*ROWS)), ceil(B/BATCH)). dw/db partial sums are reduced over the
// block's row groups in shared memory, then added with one atomic per value per block (f32, zeroed first).

#ifndef CONV_BACKWARD
#ifndef CONV_VEC
#define CONV_VEC 1
#endif
extern "C" __global__ void __launch_bounds__(CONV_THREADS)
vmc_conv1d_fwd(const X_T *__restrict__ x, const W_T *__restrict__ w, const BIAS_T *__restrict__ bias,
               OUT_T *__restrict__ y) {
    constexpr int K = CONV_K, V = CONV_VEC;
    const int d = (blockIdx.x * CONV_THREADS + threadIdx.x) * V, t0 = blockIdx.y * CONV_ROWS, b = blockIdx.z;
    if (d >= CONV_D) return;
    const size_t base = (size_t)b * CONV_L * CONV_D + d;
    float wk[K][V], win[K][V], bb[V];   // win[j] = x[t - K + 1 + j] of channels d .. d + V - 1
#pragma unroll
    for (int c = 0; c < V; c++) {
        bb[c] = to_f32(bias[d + c]);
#pragma unroll
        for (int k = 0; k < K; k++) wk[k][c] = to_f32(w[(d + c) * K + k]);
    }
#pragma unroll
    for (int j = 0; j < K - 1; j++) {
        const int t = t0 - (K - 1) + j;
        if (t >= 0) load_vec<V>(x + VMC_AT(X, b, t) + d, win[j]);
        else {
#pragma unroll
            for (int c = 0; c < V; c++) win[j][c] = 0.f;
        }
    }
#pragma unroll 4
    for (int r = 0; r < CONV_ROWS; r++) {
        const int t = t0 + r;
        if (t >= CONV_L) break;
        load_vec<V>(x + VMC_AT(X, b, t) + d, win[K - 1]);
        float acc[V];
#pragma unroll
        for (int c = 0; c < V; c++) {
            acc[c] = bb[c];
#pragma unroll
            for (int k = 0; k < K; k++) acc[c] = fmaf(wk[k][c], win[k][c], acc[c]);
            if (CONV_SILU) acc[c] = acc[c] * sigmoid_f(acc[c]);
        }
        store_vec<V>(y + base + (size_t)t * CONV_D, acc);
#pragma unroll
        for (int k = 0; k < K - 1; k++)
#pragma unroll
            for (int c = 0; c < V; c++) win[k][c] = win[k + 1][c];
    }
}
#else
#ifndef CONV_VEC
#define CONV_VEC 1
#endif
extern "C" __global__ void __launch_bounds__(CONV_CH * CONV_GROUPS)
vmc_conv1d_bwd(const DY_T *__restrict__ dy, const X_T *__restrict__ x, const W_T *__restrict__ w,
               OUT_T *__restrict__ dx, float *__restrict__ dw, float *__restrict__ db) {
    constexpr int K = CONV_K, V = CONV_VEC;   // V adjacent channels per thread, one access each
    __shared__ float red[CONV_GROUPS][K + 1][CONV_CH * V];
    const int c = threadIdx.x, grp = threadIdx.y, d_raw = (blockIdx.x * CONV_CH + c) * V;
    const bool valid = d_raw < CONV_D;
    const int d = valid ? d_raw : CONV_D - V;
    const int t0 = (blockIdx.y * CONV_GROUPS + grp) * CONV_ROWS;
    float wk[K][V], dw_acc[K][V], db_acc[V];
#pragma unroll
    for (int v = 0; v < V; v++) {
        db_acc[v] = 0.f;
#pragma unroll
        for (int k = 0; k < K; k++) { wk[k][v] = to_f32(w[(d + v) * K + k]); dw_acc[k][v] = 0.f; }
    }
    for (int bi = 0; bi < CONV_BATCH && t0 < CONV_L; bi++) {
        const int b = blockIdx.z * CONV_BATCH + bi;
        if (b >= CONV_B) break;
        const size_t base = (size_t)b * CONV_L * CONV_D + d;
        float dyw[K][V], xw[K][V];   // dyw[j] = dy[t + j], xw[j] = x[t - K + 1 + j]
#pragma unroll
        for (int j = 0; j < K - 1; j++) {
            const int ty = t0 + j, tx = t0 - (K - 1) + j;
            if (ty < CONV_L) load_vec<V>(dy + VMC_AT(DY, b, ty) + d, dyw[j]);
            else for (int v = 0; v < V; v++) dyw[j][v] = 0.f;
            if (tx >= 0) load_vec<V>(x + VMC_AT(X, b, tx) + d, xw[j]);
            else for (int v = 0; v < V; v++) xw[j][v] = 0.f;
        }
#pragma unroll 4
        for (int r = 0; r < CONV_ROWS; r++) {
            const int t = t0 + r;
            if (t >= CONV_L) break;
            if (t + K - 1 < CONV_L) load_vec<V>(dy + VMC_AT(DY, b, t + K - 1) + d, dyw[K - 1]);
            else for (int v = 0; v < V; v++) dyw[K - 1][v] = 0.f;
            load_vec<V>(x + VMC_AT(X, b, t) + d, xw[K - 1]);
            if (CONV_WANT_DX && valid) {
                float s[V];   // dx[t] = sum_k w[k] dy[t + K - 1 - k]
#pragma unroll
                for (int v = 0; v < V; v++) {
                    s[v] = 0.f;
#pragma unroll
                    for (int k = 0; k < K; k++) s[v] = fmaf(wk[k][v], dyw[K - 1 - k][v], s[v]);
                }
                store_vec<V>(dx + base + (size_t)t * CONV_D, s);
            }
#pragma unroll
            for (int v = 0; v < V; v++) {
#pragma unroll
                for (int k = 0; k < K; k++) dw_acc[k][v] = fmaf(dyw[0][v], xw[k][v], dw_acc[k][v]);   // dy[t] x[t-K+1+k]
                db_acc[v] += dyw[0][v];
            }
#pragma unroll
            for (int k = 0; k < K - 1; k++)
#pragma unroll
                for (int v = 0; v < V; v++) { dyw[k][v] = dyw[k + 1][v]; xw[k][v] = xw[k + 1][v]; }
        }
    }
    if (!CONV_WANT_DW && !CONV_WANT_DB) return;
#pragma unroll
    for (int v = 0; v < V; v++) {
#pragma unroll
        for (int k = 0; k < K; k++) red[grp][k][c * V + v] = dw_acc[k][v];
        red[grp][K][c * V + v] = db_acc[v];
    }
    __syncthreads();
    if (grp == 0 && valid) {
#pragma unroll
        for (int v = 0; v < V; v++) {
#pragma unroll
            for (int k = 0; k <= K; k++) {
                float s = 0.f;
                for (int q = 0; q < CONV_GROUPS; q++) s += red[q][k][c * V + v];
                if (k < K && CONV_WANT_DW) atomicAdd(&dw[(d + v) * K + k], s);
                if (k == K && CONV_WANT_DB) atomicAdd(&db[d + v], s);
            }
        }
    }
}
#endif
