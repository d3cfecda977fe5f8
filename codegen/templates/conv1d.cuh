// conv1d.cuh — causal depthwise conv1d along L (x [B,L,D], w [D,1,K], bias [D]) and its backward.
// Forward needs CONV_B/L/D/K, X_T, W_T, BIAS_T, OUT_T, CONV_SILU, CONV_THREADS, CONV_ROWS, CONV_VEC (1, 2 or 4
// channels per thread, read and written as one access: template.c checks D and the row map allow it); grid
// (ceil(D/(THREADS*VEC)), ceil(L/ROWS), B). Backward (CONV_BACKWARD) needs DY_T, CONV_WANT_DX/DW/DB, CONV_CH,
// CONV_GROUPS, CONV_ROWS, CONV_BATCH (CONV_VEC as the forward); block (CH, GROUPS), grid (ceil(D/(CH*VEC)),
// ceil(L/(GROUPS*ROWS)), ceil(B/BATCH)).
// Each thread owns ROWS consecutive rows of VEC channels and loads every row it needs (ROWS + K - 1 of them, the
// halo rows mostly from L2) before computing anything, so a thread waits for memory once, not once per row: the
// row-by-row sliding window measured 29-33% of a copy's bandwidth, latency-bound. A warp touches 32*VEC
// consecutive d of a row (coalesced). Inputs x and dy are read through VMC_AT (common.cuh): they may be row
// permutations or channel slices of a larger buffer. The backward's dw/db partial sums are reduced over the
// block's row groups in shared memory, then added with one atomic per value per block (f32, zeroed first).
// CONV_SILU_DY: the backward of silu(conv(x)) from the gradient at the SiLU's output, dy (+ dy2 when CONV_DY2): each
// thread recomputes the conv output p of its dy rows from K - 1 more x rows and the bias, and takes
// (dy + dy2) silu'(p) as the conv's output gradient, so the forward need not store p and no kernel forms the
// product in between.
// Tried (H200, B128 L197 D768 bf16): the scan's 32-bit column/row offsets (VMC_COL, VMC_ROWOFF) for the window
// loads: 0.034 / 0.100 ms against 0.033 / 0.099 (fwd / bwd; more registers, and these loads are few).

#ifndef CONV_VEC
#define CONV_VEC 1
#endif
#ifndef CONV_SILU_OUT
#define CONV_SILU_OUT 0   // forward: also write silu(y) to y2 (when something reads y itself too)
#define OUT2_T OUT_T
#endif
#define CONV_WIN (CONV_ROWS + CONV_K - 1)   // rows a thread reads
#ifndef CONV_SILU_DY
#define CONV_SILU_DY 0
#endif
#ifndef CONV_DY2
#define CONV_DY2 0
#define DY2_T DY_T
#endif
#define CONV_XWIN (CONV_WIN + (CONV_SILU_DY ? CONV_K - 1 : 0))   // x rows a backward thread reads
#ifndef CONV_COPY_DX   // backward: dx also as bf16 into dx_copy (compiler/packed_copy.h), and/or not in f32
#define CONV_COPY_DX 0
#endif
#ifndef CONV_F32_DX
#define CONV_F32_DX 1
#endif
#ifndef CONV_DX_COPY_LD   // the row stride of dx_copy: CONV_D, or wider when dx's copy is a column block of a
#define CONV_DX_COPY_LD CONV_D   // larger buffer (the in_proj gradient [dx | dz]: pass.h Fusion.into)
#endif

#ifndef VMC_CONV_LOAD_WINDOW   // the emulator tests include this file twice (forward, then backward)
#define VMC_CONV_LOAD_WINDOW
// win[j] = rows t_first + j of channels d .. d + V - 1 of an input, zero outside [0, L); row_at(t) is the row's
// element offset (VMC_AT). All loads are issued before any is used.
template <int WIN, int V, class T, class RowAt>
static __device__ __forceinline__ void load_window(const T *__restrict__ p, RowAt row_at, int t_first, int d,
                                                   float (*win)[V]) {
#pragma unroll
    for (int j = 0; j < WIN; j++) {
        const int t = t_first + j;
        if (t >= 0 && t < CONV_L) load_vec<V>(p + row_at(t) + d, win[j]);
        else {
#pragma unroll
            for (int c = 0; c < V; c++) win[j][c] = 0.f;
        }
    }
}
#endif

#if defined(CONV_NDIR)
// Row maps of the several-direction kernels below: direction J's row of x at its position t (X{J}_ROW, all of the
// one buffer X_LROWS, X_STRIDE, X_OFF describe), and (backward) the element offsets of its dy and dy2 rows. (static,
// as load_window: they read the instantiation's macros, and the emulator tests link several instantiations.)
template <int J> static __device__ __forceinline__ int conv_dir_row(int t) {
    if constexpr (J == 0) return X0_ROW(t);
#if CONV_NDIR > 1
    if constexpr (J == 1) return X1_ROW(t);
#endif
#if CONV_NDIR > 2
    if constexpr (J == 2) return X2_ROW(t);
#endif
#if CONV_NDIR > 3
    if constexpr (J == 3) return X3_ROW(t);
#endif
    return 0;
}
#ifdef CONV_BACKWARD
// (backward) Direction J's dy (map DYA{J}) and dy2 (map DYB{J}): element (b, t, d) at col(b) + d + row(t). The
// row offset is a signed int on purpose: with no wrap-around to respect, the compiler turns consecutive rows into
// immediate offsets from one address (a size_t offset per row took 7-8 integer instructions a row and array).
// (An anonymous namespace, as static elsewhere: the emulator tests link several instantiations.)
#define CONV_COL(P, b) ((size_t)(b) * P##_LROWS * P##_STRIDE + P##_OFF)
#define CONV_ROWOFF(P, t) ((int)P##_ROW(t) * P##_STRIDE)
namespace {
template <int J> struct ConvDy;
#define CONV_DY_DIR(J)                                                                                             \
    template <> struct ConvDy<J> {                                                                                 \
        static __device__ __forceinline__ size_t col(int b) { return CONV_COL(DYA##J, b); }                        \
        static __device__ __forceinline__ int row(int t) { return CONV_ROWOFF(DYA##J, t); }                        \
        static __device__ __forceinline__ size_t col2(int b) { return CONV_COL(DYB##J, b); }                       \
        static __device__ __forceinline__ int row2(int t) { return CONV_ROWOFF(DYB##J, t); }                       \
    };
CONV_DY_DIR(0)
#if CONV_NDIR > 1
CONV_DY_DIR(1)
#endif
#if CONV_NDIR > 2
CONV_DY_DIR(2)
#endif
#if CONV_NDIR > 3
CONV_DY_DIR(3)
#endif
#undef CONV_DY_DIR
}   // namespace
#endif
#endif

#if defined(CONV_NDIR) && !defined(CONV_BACKWARD)
// The forward of CONV_NDIR (2 to 4) convolutions of one input under as many row orders (a fine-tuning layer's scan
// directions read in_proj's x through 4 permutations of the tokens): X{j}_ROW(t) is the row of x that direction j
// reads at its position t, all rows of the one buffer X_LROWS, X_STRIDE, X_OFF describe. A block stages the X_LROWS
// rows of batch b for its 32 * CONV_VEC channels in shared memory (f32) once, then every warp computes rows of each
// direction from there: x is read once, not CONV_NDIR times. Arguments: x, then w, bias, y of each direction.
// Grid (ceil(D / (32 * VEC)), B), block (32, CONV_MWARPS), dynamic shared memory X_LROWS * 32 * VEC * 4 bytes.
// Measured (H200, ARM-B fine-tuning, bf16): 0.115 ms a layer (4 directions, ~4 TB/s of declared memory); inference
// at batch 256 34.26 -> 33.97 ms a step against a launch per direction in one run, 34.69 / 34.55 -> 34.65 / 34.50 in
// another (same-run pairs): at most 1%.
// Direction J's rows t0 .. t0 + R - 1 (t0 = warp * R, R = ceil(L / MWARPS)) of channels d .. d + V - 1 (c: their
// place in a staged row), through a sliding window of the last K x rows in this direction's order: one row lookup
// and one shared load a row. (Rows w, w + MWARPS, ... a warp looked up and loaded all K rows of each: 74 SASS
// instructions a row of a table-mapped direction at ARM-B fine-tuning's shape, against 35 a row now.)
template <int J>
static __device__ __forceinline__ void conv_multi_row(const float *xs, int t, int c, float *v) {
    constexpr int V = CONV_VEC;
    const bool in = t >= 0 && t < CONV_L;   // (predicated: no row lookup past the table)
    const float *row = xs + (in ? conv_dir_row<J>(t) : 0) * (32 * V) + c;
#pragma unroll
    for (int e = 0; e < V; e++) v[e] = in ? row[e] : 0.f;
}
template <int J>
static __device__ __forceinline__ void conv_multi_dir(const float *xs, const W_T *__restrict__ w, const BIAS_T *__restrict__ bias,
                                               OUT_T *__restrict__ y, int b, int d, int c) {
    constexpr int K = CONV_K, V = CONV_VEC, R = (CONV_L + CONV_MWARPS - 1) / CONV_MWARPS;
    float wk[K][V], bb[V];
#pragma unroll
    for (int v = 0; v < V; v++) {
        bb[v] = to_f32(bias[d + v]);
#pragma unroll
        for (int k = 0; k < K; k++) wk[k][v] = to_f32(w[(d + v) * K + k]);
    }
    const int t0 = threadIdx.y * R;
    float win[K][V];   // win[k] = x[t - K + 1 + k] in this direction's order (0 outside [0, L))
#pragma unroll
    for (int k = 1; k < K; k++) conv_multi_row<J>(xs, t0 - K + k, c, win[k]);
    OUT_T *yb = y + (size_t)b * CONV_L * CONV_D + d;
#pragma unroll 4
    for (int i = 0; i < R; i++) {
        const int t = t0 + i;
#pragma unroll
        for (int k = 0; k < K - 1; k++)
#pragma unroll
            for (int v = 0; v < V; v++) win[k][v] = win[k + 1][v];
        conv_multi_row<J>(xs, t, c, win[K - 1]);
        float acc[V];   // y[t] = bias + sum_k w[k] x[t - K + 1 + k]
#pragma unroll
        for (int v = 0; v < V; v++) {
            acc[v] = bb[v];
#pragma unroll
            for (int k = 0; k < K; k++) acc[v] = fmaf(wk[k][v], win[k][v], acc[v]);
            if (CONV_SILU) acc[v] *= sigmoid_f(acc[v]);
        }
        if (t < CONV_L) store_vec<V>(yb + t * CONV_D, acc);
    }
}

extern "C" __global__ void __launch_bounds__(32 * CONV_MWARPS)
vmc_conv1d_fwd_multi(const X_T *__restrict__ x, const W_T *__restrict__ w0, const BIAS_T *__restrict__ b0,
                     OUT_T *__restrict__ y0, const W_T *__restrict__ w1, const BIAS_T *__restrict__ b1,
                     OUT_T *__restrict__ y1, const W_T *__restrict__ w2, const BIAS_T *__restrict__ b2,
                     OUT_T *__restrict__ y2, const W_T *__restrict__ w3, const BIAS_T *__restrict__ b3,
                     OUT_T *__restrict__ y3) {
    vmc_grid_entry();
    constexpr int V = CONV_VEC, W = 32 * CONV_VEC;
#ifdef __CUDA_ARCH__
    extern __shared__ __align__(16) float conv_xs[];   // [X_LROWS][W]
#else
    static __align__(16) float conv_xs[X_LROWS * W];
#endif
    const int c = threadIdx.x * V, d = blockIdx.x * W + c, b = blockIdx.y;
    const bool valid = d < CONV_D;   // (a last, partial block of channels: its idle lanes still meet the barrier)
#pragma unroll 4
    for (int r = threadIdx.y; r < X_LROWS; r += CONV_MWARPS) {
        float v[V];
        if (valid) load_vec<V>(x + ((size_t)b * X_LROWS + r) * X_STRIDE + X_OFF + d, v);
        else {
#pragma unroll
            for (int e = 0; e < V; e++) v[e] = 0.f;
        }
#pragma unroll
        for (int e = 0; e < V; e++) conv_xs[r * W + c + e] = v[e];
    }
    __syncthreads();
    if (!valid) return;
    conv_multi_dir<0>(conv_xs, w0, b0, y0, b, d, c);
#if CONV_NDIR > 1
    conv_multi_dir<1>(conv_xs, w1, b1, y1, b, d, c);
#endif
#if CONV_NDIR > 2
    conv_multi_dir<2>(conv_xs, w2, b2, y2, b, d, c);
#endif
#if CONV_NDIR > 3
    conv_multi_dir<3>(conv_xs, w3, b3, y3, b, d, c);
#endif
}
#elif defined(CONV_NDIR)
// The backward of CONV_NDIR convolutions of one input under as many row orders, each followed by SiLU (a layer's
// CONV1D_SILU_BWD of every direction), with the directions' input gradients summed in the input's own row order:
// dx_sum [B, L, D] (OUT_T) = sum over j of direction j's dx, its row t added at row X{j}_ROW(t). A block takes 32
// channels of CONV_MBATCH batches, one batch at a time: it stages x's L rows (f32) in shared memory, then per
// direction runs two phases, warp w taking rows w R .. w R + R - 1 (R = CONV_MROWS) of the direction's order:
//   grad  g[t] = (dy + dy2)[t] silu'(p[t]), p the conv output recomputed from the staged x (every row's dy and dy2
//         loads issued before the first is used; with CONV_MAHEAD the next direction's issued as soon as these
//         are read, so that they arrive while this direction computes), kept in registers, and into the thread's
//         dw, db sums;
//   dx    dx[t] = sum_k w[k] g[t + K - 1 - k] (the K - 1 rows past a warp's last from the next warp, through shared
//         memory), written (first direction) or added to the staged sum at x's row X{j}_ROW(t): a permutation, so
//         no two rows of one direction meet.
// The sum is written once per batch; each direction's dw, db (zeroed before) get one atomic per value per block and
// batch. Arguments: x, dx_sum, then per direction j < 4: dy, dy2, w, bias, dw, db. Grid (ceil(D / 32),
// ceil(B / MBATCH)), block (32, CONV_MWARPS), CONV_MWARPS * R >= L, R >= K - 1, X_LROWS == L; dynamic shared memory
// (2 L + 2 K MWARPS) * 32 floats.
// Measured: the previous forms of this kernel (every warp on rows w, w + MWARPS, ... with each direction's g through
// a shared [L][32] array, 0.434 ms a layer on an H200; one thread walking 29 rows, 0.98 ms) lost to four separate
// backwards (0.27 ms); this form takes 0.32 ms a layer eager on an H100 and made the fine-tuning step faster (README:
// The conv1d of several directions).

#ifndef CONV_MAHEAD
#define CONV_MAHEAD 1   // 1: the next direction's loads issued after this one's grad phase (0: after its last barrier)
#endif
#ifndef CONV_MBLOCKS
#define CONV_MBLOCKS 1   // blocks an SM should hold (caps the registers: 65536 / (32 MWARPS MBLOCKS) a thread)
#endif

// Direction J's dy and dy2 at this thread's rows t0 .. t0 + R - 1 (t0 = warp * R) into ra, rb, issued and not
// waited for. With CONV_MAHEAD each direction's are issued right after the direction before has read its own (its
// grad phase), so that they arrive during that direction's dx phase, sums and barriers, and the first direction's
// with x's rows (issued before the grad phase they made ptxas spill 28 bytes at 64 registers); else each at its
// direction's start. Rows past L load nothing (a predicated load, each into a register zeroed first: no branch, so
// no load waits for the one before).
template <int J>
static __device__ __forceinline__ void conv_bwd_multi_load(const DY_T *__restrict__ dy, const DY2_T *__restrict__ dy2,
                                                           int b, int d, DY_T *ra, DY2_T *rb) {
    constexpr int R = CONV_MROWS;
    const int t0 = threadIdx.y * R;
    const DY_T *dya = dy + ConvDy<J>::col(b) + d;
    const DY2_T *dyb = CONV_DY2 ? dy2 + ConvDy<J>::col2(b) + d : nullptr;
#pragma unroll
    for (int i = 0; i < R; i++) {
        const bool in = t0 + i < CONV_L;
        ra[i] = DY_T{};
        rb[i] = DY2_T{};
        if (in) ra[i] = dya[ConvDy<J>::row(t0 + i)];
        if (CONV_DY2 && in) rb[i] = dyb[ConvDy<J>::row2(t0 + i)];
    }
}

// Direction J's g for this thread's rows t0 .. t0 + R - 1 (0 past L) into gv, from its dy and dy2 in ra, rb, its
// first K - 1 into gs (the previous warp's dx needs them), and its dw, db sums. The x rows of p come from the staged
// x through a sliding window: one table lookup and shared load a row.
template <int J>
static __device__ __forceinline__ void conv_bwd_multi_grad(const float *xs, float *gs, const DY_T *ra, const DY2_T *rb,
                                                           const float *wk, float bb, int c, float *gv,
                                                           float *dw_acc, float &db_acc) {
    constexpr int K = CONV_K, R = CONV_MROWS;
    const int t0 = threadIdx.y * R;
#pragma unroll
    for (int i = 0; i < R; i++) gv[i] = to_f32(ra[i]) + (CONV_DY2 ? to_f32(rb[i]) : 0.f);
    // xw[k] = x[t - K + 1 + k] in this direction's order, 0 outside [0, L). (The forward's conv_multi_row, its row
    // lookup predicated, took this kernel from 2,928 to 3,280 SASS instructions at ARM-B fine-tuning's shape.)
    float xw[K];
#pragma unroll
    for (int k = 1; k < K; k++) {
        const int tt = t0 - K + k;
        xw[k] = tt >= 0 && tt < CONV_L ? xs[conv_dir_row<J>(tt) * 32 + c] : 0.f;
    }
#pragma unroll
    for (int i = 0; i < R; i++) {
        const int t = t0 + i;
#pragma unroll
        for (int k = 0; k < K - 1; k++) xw[k] = xw[k + 1];
        xw[K - 1] = t < CONV_L ? xs[conv_dir_row<J>(t) * 32 + c] : 0.f;
        float p = bb;   // p[t] = bias + sum_k w[k] x[t - K + 1 + k]
#pragma unroll
        for (int k = 0; k < K; k++) p = fmaf(wk[k], xw[k], p);
        const float sg = sigmoid_f(p), g = t < CONV_L ? gv[i] * sg * (1.f + p * (1.f - sg)) : 0.f;
        gv[i] = g;
        if (i < K - 1) gs[(threadIdx.y * (K - 1) + i) * 32 + c] = g;
#pragma unroll
        for (int k = 0; k < K; k++) dw_acc[k] = fmaf(g, xw[k], dw_acc[k]);   // dw[k] += g[t] x[t - K + 1 + k]
        db_acc += g;
    }
}

// Direction J's dx for this thread's rows, from gv and the next warp's first K - 1 rows in gs, stored (FIRST) or
// added into ss at x's row order.
template <int J, bool FIRST>
static __device__ __forceinline__ void conv_bwd_multi_dx(const float *gs, float *ss, const float *wk, int c,
                                                         const float *gv) {
    constexpr int K = CONV_K, R = CONV_MROWS;
    const int t0 = threadIdx.y * R;
    float g[R + K - 1];   // g[t0 + i]
#pragma unroll
    for (int i = 0; i < R; i++) g[i] = gv[i];
#pragma unroll
    for (int k = 0; k < K - 1; k++)
        g[R + k] = threadIdx.y + 1 < CONV_MWARPS ? gs[((threadIdx.y + 1) * (K - 1) + k) * 32 + c] : 0.f;
#pragma unroll
    for (int i = 0; i < R; i++) {
        const int t = t0 + i;
        if (t >= CONV_L) break;
        float s = 0.f;   // dx[t] = sum_k w[k] g[t + K - 1 - k]
#pragma unroll
        for (int k = 0; k < K; k++) s = fmaf(wk[k], g[i + K - 1 - k], s);
        float *o = ss + conv_dir_row<J>(t) * 32 + c;
        *o = FIRST ? s : *o + s;
    }
}

// Both phases of direction J (the block's barriers between them: gs and red are shared). The direction's dw, db
// sums live only through its grad phase: each warp leaves them in red ([warp][k][32], db at k = K), and during the
// dx phase they are summed over the warps and added to dw, db, one atomic per value. (Kept in registers for all
// directions through the kernel, 20 of them, they made ptxas spill at the 64 registers a thread has here.)
template <int J>
static __device__ __forceinline__ void conv_bwd_multi_dir(const float *xs, float *gs, float *ss, float *red,
                                                          DY_T *ra, DY2_T *rb, const DY_T *__restrict__ dy_next,
                                                          const DY2_T *__restrict__ dy2_next, const W_T *__restrict__ w,
                                                          const BIAS_T *__restrict__ bias, float *__restrict__ dw,
                                                          float *__restrict__ db, int b, int d, int c) {
    constexpr int K = CONV_K;
    float wk[K], gv[CONV_MROWS], dw_acc[K], db_acc = 0.f;
#pragma unroll
    for (int k = 0; k < K; k++) {
        wk[k] = to_f32(w[d * K + k]);
        dw_acc[k] = 0.f;
    }
    conv_bwd_multi_grad<J>(xs, gs, ra, rb, wk, to_f32(bias[d]), c, gv, dw_acc, db_acc);
    if constexpr (CONV_MAHEAD && J + 1 < CONV_NDIR) conv_bwd_multi_load<J + 1>(dy_next, dy2_next, b, d, ra, rb);
#pragma unroll
    for (int k = 0; k <= K; k++) red[(threadIdx.y * (K + 1) + k) * 32 + c] = k < K ? dw_acc[k] : db_acc;
    __syncthreads();
    conv_bwd_multi_dx<J, J == 0>(gs, ss, wk, c, gv);
    for (int q = threadIdx.y * 32 + c; q < (K + 1) * 32; q += 32 * CONV_MWARPS) {
        const int cc = q % 32, k = q / 32, dd = blockIdx.x * 32 + cc;
        if (dd >= CONV_D) continue;
        float sum = 0.f;
        for (int wp = 0; wp < CONV_MWARPS; wp++) sum += red[(wp * (K + 1) + k) * 32 + cc];
        atomicAdd(k < K ? &dw[dd * K + k] : &db[dd], sum);
    }
    __syncthreads();   // gs and red are read before the next direction rewrites them
    if constexpr (!CONV_MAHEAD && J + 1 < CONV_NDIR) conv_bwd_multi_load<J + 1>(dy_next, dy2_next, b, d, ra, rb);
}

extern "C" __global__ void __launch_bounds__(32 * CONV_MWARPS, CONV_MBLOCKS)
vmc_conv1d_bwd_multi(const X_T *__restrict__ x, OUT_T *__restrict__ dx_sum, const DY_T *__restrict__ dy0,
                     const DY2_T *__restrict__ dyb0, const W_T *__restrict__ w0, const BIAS_T *__restrict__ b0,
                     float *__restrict__ dw0, float *__restrict__ db0, const DY_T *__restrict__ dy1,
                     const DY2_T *__restrict__ dyb1, const W_T *__restrict__ w1, const BIAS_T *__restrict__ b1,
                     float *__restrict__ dw1, float *__restrict__ db1, const DY_T *__restrict__ dy2,
                     const DY2_T *__restrict__ dyb2, const W_T *__restrict__ w2, const BIAS_T *__restrict__ b2,
                     float *__restrict__ dw2, float *__restrict__ db2, const DY_T *__restrict__ dy3,
                     const DY2_T *__restrict__ dyb3, const W_T *__restrict__ w3, const BIAS_T *__restrict__ b3,
                     float *__restrict__ dw3, float *__restrict__ db3) {
    vmc_grid_entry();
    constexpr int K = CONV_K, R = X_LROWS;
    static_assert(R == CONV_L && CONV_MWARPS * CONV_MROWS >= CONV_L && CONV_MROWS >= K - 1, "conv1d backward (multi) rows");
#ifdef __CUDA_ARCH__
    extern __shared__ __align__(16) float conv_sm[];
#else
    static __align__(16) float conv_sm[(2 * R + (2 * K) * CONV_MWARPS) * 32];
#endif
    // [R][32] x, [R][32] the dx sum, [warps][K-1][32] g rows, [warps][K+1][32] dw, db sums
    float *xs = conv_sm, *ss = conv_sm + R * 32, *gs = conv_sm + 2 * R * 32, *red = gs + (K - 1) * CONV_MWARPS * 32;
    const int c = threadIdx.x, d_raw = blockIdx.x * 32 + c;
    const bool valid = d_raw < CONV_D;   // lanes past D compute on channel D-1 and write nothing
    const int d = valid ? d_raw : CONV_D - 1;
    for (int bi = 0; bi < CONV_MBATCH; bi++) {
        const int b = blockIdx.y * CONV_MBATCH + bi;
        if (b >= CONV_B) break;   // (the same for the whole block)
        // All loads first, as in the grad phase (predicated, signed row offsets: constant offsets of one address).
        const X_T *xb = x + (size_t)b * R * X_STRIDE + X_OFF + d + (int)threadIdx.y * X_STRIDE;
        X_T xv[CONV_MROWS];
#pragma unroll
        for (int i = 0; i < CONV_MROWS; i++) {
            xv[i] = X_T{};
            if ((int)threadIdx.y + i * CONV_MWARPS < R) xv[i] = xb[i * CONV_MWARPS * X_STRIDE];
        }
        DY_T ra[CONV_MROWS];   // a direction's dy and dy2 rows, loaded while the direction before computes
        DY2_T rb[CONV_MROWS];
        if (CONV_MAHEAD) conv_bwd_multi_load<0>(dy0, dyb0, b, d, ra, rb);   // (with x's rows)
#pragma unroll
        for (int i = 0; i < CONV_MROWS; i++) {
            const int r = threadIdx.y + i * CONV_MWARPS;
            if (r < R) xs[r * 32 + c] = to_f32(xv[i]);
        }
        __syncthreads();
        if (!CONV_MAHEAD) conv_bwd_multi_load<0>(dy0, dyb0, b, d, ra, rb);
        conv_bwd_multi_dir<0>(xs, gs, ss, red, ra, rb, dy1, dyb1, w0, b0, dw0, db0, b, d, c);
#if CONV_NDIR > 1
        conv_bwd_multi_dir<1>(xs, gs, ss, red, ra, rb, dy2, dyb2, w1, b1, dw1, db1, b, d, c);
#endif
#if CONV_NDIR > 2
        conv_bwd_multi_dir<2>(xs, gs, ss, red, ra, rb, dy3, dyb3, w2, b2, dw2, db2, b, d, c);
#endif
#if CONV_NDIR > 3
        conv_bwd_multi_dir<3>(xs, gs, ss, red, ra, rb, nullptr, nullptr, w3, b3, dw3, db3, b, d, c);   // (the last)
#endif
        if (valid) {   // (the next batch's first writes to ss come two barriers later)
            OUT_T *ob = dx_sum + (size_t)b * R * CONV_D + d;
            for (int r = threadIdx.y; r < R; r += CONV_MWARPS) ob[r * CONV_D] = from_f32<OUT_T>(ss[r * 32 + c]);
        }
    }
}
#elif !defined(CONV_BACKWARD)
extern "C" __global__ void __launch_bounds__(CONV_THREADS)
vmc_conv1d_fwd(const X_T *__restrict__ x, const W_T *__restrict__ w, const BIAS_T *__restrict__ bias,
               OUT_T *__restrict__ y, OUT2_T *__restrict__ y2) {
    vmc_grid_entry();
    constexpr int K = CONV_K, V = CONV_VEC;
    const int d = (blockIdx.x * CONV_THREADS + threadIdx.x) * V, t0 = blockIdx.y * CONV_ROWS, b = blockIdx.z;
    if (d >= CONV_D) return;
    float win[CONV_WIN][V];   // win[j] = x[t0 - K + 1 + j]
    load_window<CONV_WIN, V>(x, [&](int t) { return VMC_AT(X, b, t); }, t0 - (K - 1), d, win);
    float wk[K][V], bb[V];
#pragma unroll
    for (int c = 0; c < V; c++) {
        bb[c] = to_f32(bias[d + c]);
#pragma unroll
        for (int k = 0; k < K; k++) wk[k][c] = to_f32(w[(d + c) * K + k]);
    }
    const size_t base = (size_t)b * CONV_L * CONV_D + d;
#pragma unroll
    for (int r = 0; r < CONV_ROWS; r++) {
        float acc[V], act[V];
#pragma unroll
        for (int c = 0; c < V; c++) {
            acc[c] = bb[c];
#pragma unroll
            for (int k = 0; k < K; k++) acc[c] = fmaf(wk[k][c], win[r + k][c], acc[c]);
            act[c] = acc[c] * sigmoid_f(acc[c]);
            if (CONV_SILU) acc[c] = act[c];
        }
        if (t0 + r < CONV_L) {
            store_vec<V>(y + base + (size_t)(t0 + r) * CONV_D, acc);
            if (CONV_SILU_OUT) store_vec<V>(y2 + base + (size_t)(t0 + r) * CONV_D, act);
        }
    }
}
#else
extern "C" __global__ void __launch_bounds__(CONV_CH * CONV_GROUPS)
vmc_conv1d_bwd(const DY_T *__restrict__ dy, const X_T *__restrict__ x, const W_T *__restrict__ w,
               OUT_T *__restrict__ dx, float *__restrict__ dw, float *__restrict__ db,
               const BIAS_T *__restrict__ bias, const DY2_T *__restrict__ dy2, bf16 *__restrict__ dx_copy) {
    vmc_grid_entry();
    constexpr int K = CONV_K, V = CONV_VEC;   // V adjacent channels per thread, one access each
    __shared__ float red[CONV_GROUPS][K + 1][CONV_CH * V];
    const int c = threadIdx.x, grp = threadIdx.y, d_raw = (blockIdx.x * CONV_CH + c) * V;
    const bool valid = d_raw < CONV_D;
    const int d = valid ? d_raw : CONV_D - V;
    const int t0 = (blockIdx.y * CONV_GROUPS + grp) * CONV_ROWS;
    float wk[K][V], dw_acc[K][V], db_acc[V], bb[V];
#pragma unroll
    for (int v = 0; v < V; v++) {
        db_acc[v] = 0.f;
        bb[v] = CONV_SILU_DY ? to_f32(bias[d + v]) : 0.f;
#pragma unroll
        for (int k = 0; k < K; k++) { wk[k][v] = to_f32(w[(d + v) * K + k]); dw_acc[k][v] = 0.f; }
    }
    for (int bi = 0; bi < CONV_BATCH && t0 < CONV_L; bi++) {
        const int b = blockIdx.z * CONV_BATCH + bi;
        if (b >= CONV_B) break;
        // dyw[j] = dy[t0 + j], xw[j] = x[t0 - K + 1 + j] (CONV_SILU_DY: K - 1 rows more, for p of every dy row)
        float dyw[CONV_WIN][V], xw[CONV_XWIN][V];
        load_window<CONV_WIN, V>(dy, [&](int t) { return VMC_AT(DY, b, t); }, t0, d, dyw);
        load_window<CONV_XWIN, V>(x, [&](int t) { return VMC_AT(X, b, t); }, t0 - (K - 1), d, xw);
        if (CONV_SILU_DY) {
#if CONV_DY2   // (a preprocessor test: the DY2 row map exists only then)
            float dyw2[CONV_WIN][V];
            load_window<CONV_WIN, V>(dy2, [&](int t) { return VMC_AT(DY2, b, t); }, t0, d, dyw2);
#pragma unroll
            for (int j = 0; j < CONV_WIN; j++)
#pragma unroll
                for (int v = 0; v < V; v++) dyw[j][v] += dyw2[j][v];
#endif
#pragma unroll
            for (int j = 0; j < CONV_WIN; j++) {   // p[t0 + j] = bias + sum_k w[k] x[t0 + j - K + 1 + k]
#pragma unroll
                for (int v = 0; v < V; v++) {
                    float p = bb[v];
#pragma unroll
                    for (int k = 0; k < K; k++) p = fmaf(wk[k][v], xw[j + k][v], p);
                    const float s = sigmoid_f(p);
                    dyw[j][v] *= s * (1.f + p * (1.f - s));   // rows past L: dy = 0 stays 0
                }
            }
        }
        const size_t base = (size_t)b * CONV_L * CONV_D + d;
#pragma unroll
        for (int r = 0; r < CONV_ROWS; r++) {
            if (CONV_WANT_DX && valid && t0 + r < CONV_L) {
                float s[V];   // dx[t] = sum_k w[k] dy[t + K - 1 - k]
#pragma unroll
                for (int v = 0; v < V; v++) {
                    s[v] = 0.f;
#pragma unroll
                    for (int k = 0; k < K; k++) s[v] = fmaf(wk[k][v], dyw[r + K - 1 - k][v], s[v]);
                }
                if (CONV_F32_DX) store_vec<V>(dx + base + (size_t)(t0 + r) * CONV_D, s);
                if (CONV_COPY_DX) store_vec<V>(dx_copy + ((size_t)b * CONV_L + t0 + r) * CONV_DX_COPY_LD + d, s);
            }
#pragma unroll
            for (int v = 0; v < V; v++) {   // rows past L have dy = 0 and add nothing
#pragma unroll
                for (int k = 0; k < K; k++) dw_acc[k][v] = fmaf(dyw[r][v], xw[r + k][v], dw_acc[k][v]);   // dy[t] x[t-K+1+k]
                db_acc[v] += dyw[r][v];
            }
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
    // the block's CH*V*(K+1) sums, spread over all its threads
    for (int j = c + grp * CONV_CH; j < (K + 1) * CONV_CH * V; j += CONV_CH * CONV_GROUPS) {
        const int k = j / (CONV_CH * V), cv = j % (CONV_CH * V), dd = blockIdx.x * CONV_CH * V + cv;
        if (dd >= CONV_D) continue;
        float s = 0.f;
        for (int q = 0; q < CONV_GROUPS; q++) s += red[q][k][cv];
        if (k < K && CONV_WANT_DW) atomicAdd(&dw[dd * K + k], s);
        if (k == K && CONV_WANT_DB) atomicAdd(&db[dd], s);
    }
}
#endif
