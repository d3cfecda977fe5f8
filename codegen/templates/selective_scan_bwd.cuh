// selective_scan_bwd.cuh — backward of the gated selective scan, one thread per (b, d) channel, N states in
// registers. Needs the forward's defines plus DOUT_T and SCAN_CHUNK (2*SCAN_CHUNK >= SCAN_N, SCAN_N <= 16).
// Grid (ceil(D/SCAN_THREADS), B); SCAN_THREADS a multiple of 32 (whole warps: the dB/dC sum uses shuffles).
// Tried and measured slower on an H200 at ARM-B shapes: two threads per channel with 8 states each (1.43 against
// 1.18 ms), 16-row chunks with 32 threads per block (1.42 against 0.91 ms).
// Global loads are issued a whole chunk at a time (rows of u, delta, z, dout into registers or this thread's
// shared-memory column; the chunk's Bm/Cm rows staged by the block), so a warp waits for memory once per chunk,
// not once per row: stalls on global loads were the largest cost (ncu, H200: 2.6 of 6.0 cycles per issue).
// Nothing is saved by the forward, so:
//   pass 1   runs the recurrence forward and parks the state at the start of every chunk of SCAN_CHUNK rows in
//            the du/ddelta rows of that same chunk (this thread's own column: no other thread touches it, and
//            the reverse pass reads it before it writes the real du/ddelta there); the last chunk's start state
//            stays in registers;
//   reverse  walks the chunks backwards: recompute the chunk forward from its checkpoint keeping h_{t-1} of the
//            even rows in shared memory (private column per thread; an odd row's h_{t-1} is one recurrence step
//            from the even row before it, which halves this, the largest use of shared memory, and so raises
//            occupancy), then step t downwards through the adjoint recurrence dh_t = dy_t C_t + a_{t+1} dh_{t+1}.
// dBm/dCm (shared by all d) are summed per row over the warp by a reduce-scatter (31 shuffles for 32 values),
// over the block with shared atomics, and over blocks with one global atomicAdd per value per chunk.
// dA_log, dD, ddelta_bias are per-thread sums, added with atomics at the end. Outputs that are atomically
// accumulated must be zero on entry (template.c lists the range).
// Measured (H200, B128 L197 D768 N16, bf16 in): 0.75 ms; 0.87 ms with libm's softplus/sigmoid (common.cuh), 0.78 ms
// with rows one at a time instead of in (even, odd) pairs, 1.18 ms with loads row by row. Instruction- and
// latency-bound (~930 instructions per element before the softplus change, 168 registers, 19% occupancy).
// Tried: summing dBm/dCm over the warp through a swizzled shared-memory transpose (8 vector stores, 32 loads) in
// place of the reduce-scatter: 0.895 against 0.754 ms. Next steps: the forward saving its chunk states (drops
// pass 1), and several channels per thread so the dBm/dCm sum over d costs fewer shuffles.

#define SCAN_NCHUNK ((SCAN_L + SCAN_CHUNK - 1) / SCAN_CHUNK)
#ifndef SCAN_DDL_BF16
#define SCAN_DDL_BF16 0   // 1: also write ddelta as bf16 to ddl16 (the dt_proj gradient GEMMs read that copy)
#endif
#define VMC_LN2 0.6931471805599453f

// A bool as a type: which kind of row a generic lambda handles, fixed at compile time.
template <bool B> struct BoolTag { static constexpr bool value = B; };

// Bitwise select (one LOP3): keeps v[] in registers, where a ?: on array elements can become an indexed load.
__device__ __forceinline__ float select_f(unsigned mask, float a, float b) {
    return __uint_as_float((__float_as_uint(a) & mask) | (__float_as_uint(b) & ~mask));
}

// One round of the reduce-scatter: lanes whose bit HALF is set keep the upper half of v[0, 2*HALF), the others
// the lower half; each sends the half it drops to its partner. HALF is a template constant so every index is
// static and v stays in registers.
template <int HALF> __device__ __forceinline__ void reduce_scatter_round(float *v, unsigned lane) {
    const unsigned upper = (lane & (unsigned)HALF) ? 0xffffffffu : 0u;
#pragma unroll
    for (int i = 0; i < HALF; i++) {
        const float lo = v[i], hi = v[i + HALF];
        v[i] = select_f(upper, hi, lo) + __shfl_xor_sync(0xffffffffu, select_f(upper, lo, hi), HALF);
    }
}

// Afterwards v[0] of lane l holds the warp's total of v[l] (31 shuffles). All 32 lanes must take part.
__device__ __forceinline__ void warp_reduce_scatter32(float v[32]) {
    const unsigned lane = threadIdx.x & 31u;
    reduce_scatter_round<16>(v, lane);
    reduce_scatter_round<8>(v, lane);
    reduce_scatter_round<4>(v, lane);
    reduce_scatter_round<2>(v, lane);
    reduce_scatter_round<1>(v, lane);
}

// The next chunk's rows (this thread's column of u and delta, and of z and dout for the reverse pass) and the block's
// Bm (and Cm) rows are asked of L2 a chunk ahead, so the chunk-wide loads above wait on L2, not on DRAM.
// (static, as parked() below: they read the instantiation's shape macros, so each instantiation needs its own copy
// when several are compiled into one program, as in the emulator tests)
template <class TU, class TD, class TB, class TZ, class TO>
static __device__ __forceinline__ void prefetch_chunk(const TU *u, const TD *delta, const TB *Bm, const TB *Cm, const TZ *z,
                                               const TO *dout, int b, int k, int d, bool reverse) {
#pragma unroll
    for (int i = 0; i < SCAN_CHUNK; i++) {
        const int t = k * SCAN_CHUNK + i;
        if (t >= SCAN_L) break;
        prefetch_l2(u + VMC_AT(U, b, t) + d);
        prefetch_l2(delta + VMC_AT(DL, b, t) + d);
        if (reverse) { prefetch_l2(z + VMC_AT(Z, b, t) + d); prefetch_l2(dout + VMC_AT(DO, b, t) + d); }
    }
    const int i = threadIdx.x;
    if (i < SCAN_CHUNK && k * SCAN_CHUNK + i < SCAN_L) {
        prefetch_l2(Bm + VMC_AT(BM, b, k * SCAN_CHUNK + i));
        if (reverse) prefetch_l2(Cm + VMC_AT(CM, b, k * SCAN_CHUNK + i));
    }
}

// Where the state n at the start of chunk k is parked: row n of the chunk's du rows for n < CHUNK, else row
// n - CHUNK of its ddelta rows (this thread's own column: no other thread touches it, and the reverse pass reads
// it before it writes the real du/ddelta there).
static __device__ __forceinline__ float *parked(float *du, float *ddl, size_t row0, int k, int n, int d) {
    constexpr int CH = SCAN_CHUNK;
    return (n < CH ? du : ddl) + (row0 + (size_t)k * CH + (n < CH ? n : n - CH)) * SCAN_D + d;
}

// No register cap: the compiler takes 168 (6 blocks of 64 per SM). Capping for 7 or 8 blocks (64 threads) or 10
// or 16 (32 threads) measured 3-6% slower on an H200 at ARM-B shapes (0.94-0.97 against 0.91 ms).
extern "C" __global__ void __launch_bounds__(SCAN_THREADS)
vmc_scan_bwd(const U_T *__restrict__ u, const DELTA_T *__restrict__ delta, const ALOG_T *__restrict__ A_log,
             const BC_T *__restrict__ Bm, const BC_T *__restrict__ Cm, const DSKIP_T *__restrict__ Dskip,
             const DBIAS_T *__restrict__ delta_bias, const Z_T *__restrict__ z, const DOUT_T *__restrict__ dout,
             float *__restrict__ packed, bf16 *__restrict__ ddl16) {
    constexpr int N = SCAN_N, CH = SCAN_CHUNK, LAST = SCAN_NCHUNK - 1;
    constexpr size_t BLD = (size_t)SCAN_B * SCAN_L * SCAN_D, BLN = (size_t)SCAN_B * SCAN_L * SCAN_N;
    static_assert(2 * CH >= N && N <= 16 && SCAN_THREADS % 32 == 0, "scan_bwd configuration");
    __shared__ float hist[(CH + 1) / 2 * N * SCAN_THREADS];   // h_{t-1} of the chunk's even rows, [row/2][n][thread]
    __shared__ __align__(16) float sBC[CH][2 * N];  // the chunk's Bm and Cm rows
    __shared__ float acc[CH][32];                   // block sums of dBm, dCm for the chunk's rows
    __shared__ float rowv[6][CH][SCAN_THREADS];     // per thread and row: y, delta (then softplus), u, z, dout,
                                                    // softplus' = sigmoid(delta + bias)

    float *du = packed, *ddl_out = du + BLD, *dAlog = ddl_out + BLD, *dB = dAlog + SCAN_D * N, *dC = dB + BLN;
    float *dD = dC + BLN, *dbias = dD + SCAN_D, *dz = dbias + SCAN_D;
    const int tid = threadIdx.x, lane = tid & 31, b = blockIdx.y;
    const int d_raw = blockIdx.x * SCAN_THREADS + tid;
    const bool valid = d_raw < SCAN_D;                 // lanes past D compute on column D-1 with zero dout
    const int d = valid ? d_raw : SCAN_D - 1;
    const size_t row0 = (size_t)b * SCAN_L;
    for (int j = tid; j < CH * 32; j += SCAN_THREADS) (&acc[0][0])[j] = 0.f;

    float A2[N], h[N];
#pragma unroll
    for (int n = 0; n < N; n++) {
        A2[n] = -expf(to_f32(A_log[d * N + n])) * VMC_LOG2E;
        h[n] = 0.f;
    }
    const float Dd = to_f32(Dskip[d]), bias = to_f32(delta_bias[d]);

    // pass 1: forward through every chunk but the last, parking chunk-start states (parked()). Chunks here are full.
    for (int k = 0; k < LAST; k++) {
        if (k > 0 && valid) {
#pragma unroll
            for (int n = 0; n < N; n++) *parked(du, ddl_out, row0, k, n, d) = h[n];
        }
        __syncthreads();   // the previous chunk's Bm rows are consumed
        for (int j = tid; j < CH * N; j += SCAN_THREADS) {
            const int i = j / N, c = j % N;
            sBC[i][c] = to_f32(Bm[VMC_AT(BM, b, k * CH + i) + c]);
        }
        float ur[CH], dr[CH];
#pragma unroll
        for (int i = 0; i < CH; i++) {
            ur[i] = to_f32(u[VMC_AT(U, b, k * CH + i) + d]);
            dr[i] = to_f32(delta[VMC_AT(DL, b, k * CH + i) + d]);
        }
        if (k + 1 < LAST) prefetch_chunk(u, delta, Bm, Cm, z, dout, b, k + 1, d, false);
        __syncthreads();
#pragma unroll
        for (int i = 0; i < CH; i++) {
            const float dl = softplus_f(dr[i] + bias), dlu = dl * ur[i];
            float Bv[N];
            load_row<N>(&sBC[i][0], Bv);
#pragma unroll
            for (int n = 0; n < N; n++) h[n] = fmaf(exp2_ftz(dl * A2[n]), h[n], dlu * Bv[n]);
        }
    }
    __syncthreads();   // pass 1's Bm rows are consumed before the reverse pass stages its own

    float g[N], dA_acc[N], dD_acc = 0.f, dbias_acc = 0.f;   // g = a_{t+1} dh_{t+1}
#pragma unroll
    for (int n = 0; n < N; n++) g[n] = dA_acc[n] = 0.f;

    for (int k = LAST; k >= 0; k--) {
        const int r0 = k * CH, nr = min(CH, SCAN_L - r0);
        for (int j = tid; j < nr * 2 * N; j += SCAN_THREADS) {
            const int i = j / (2 * N), c = j % (2 * N), t = r0 + i;
            sBC[i][c] = c < N ? to_f32(Bm[VMC_AT(BM, b, t) + c]) : to_f32(Cm[VMC_AT(CM, b, t) + c - N]);
        }
#pragma unroll
        for (int i = 0; i < CH; i++) {   // this thread's rows of the chunk, all loads in flight together
            if (i < nr) {
                const int t = r0 + i;
                rowv[2][i][tid] = to_f32(u[VMC_AT(U, b, t) + d]);
                rowv[1][i][tid] = to_f32(delta[VMC_AT(DL, b, t) + d]);
                rowv[3][i][tid] = to_f32(z[VMC_AT(Z, b, t) + d]);
                rowv[4][i][tid] = valid ? to_f32(dout[VMC_AT(DO, b, t) + d]) : 0.f;
            }
        }
        if (k > 0) {   // chunk k-1's inputs and its parked start state, read at the end of this chunk
            prefetch_chunk(u, delta, Bm, Cm, z, dout, b, k - 1, d, true);
#pragma unroll
            for (int n = 0; n < N; n++) if (k - 1 > 0) prefetch_l2(parked(du, ddl_out, row0, k - 1, n, d));
        }
        __syncthreads();   // sBC staged; acc zeroed by the previous chunk's flush

        // h holds the state at the start of chunk k: pass 1's final state, then each checkpoint (loaded below).
        // Rows are loops, not unrolled: the unrolled reverse step is large, and per-row values kept in register
        // arrays indexed by a loop variable would go to local memory. They live in shared memory instead.
        // Rows go in pairs (even, odd), so whether a row keeps or rebuilds its h_{t-1} is known at compile time.
        auto fwd_row = [&](auto even_tag, int i) {
            constexpr bool EVEN = decltype(even_tag)::value;
            const float uu = rowv[2][i][tid], x = rowv[1][i][tid] + bias, dl = softplus_f(x);
            const float dlu = dl * uu;
            float y = 0.f;
#pragma unroll
            for (int n = 0; n < N; n++) {
                if constexpr (EVEN) hist[((i >> 1) * N + n) * SCAN_THREADS + tid] = h[n];
                h[n] = fmaf(exp2_ftz(dl * A2[n]), h[n], dlu * sBC[i][n]);
                y = fmaf(sBC[i][N + n], h[n], y);
            }
            rowv[0][i][tid] = fmaf(Dd, uu, y); rowv[1][i][tid] = dl;
            rowv[5][i][tid] = sigmoid_f(x);
        };
#pragma unroll 1
        for (int i = 0; i < nr; i += 2) {
            fwd_row(BoolTag<true>{}, i);
            if (i + 1 < nr) fwd_row(BoolTag<false>{}, i + 1);
        }

        auto rev_row = [&](auto odd_tag, int i) {
            constexpr bool odd = decltype(odd_tag)::value;
            const size_t idx = (row0 + r0 + i) * SCAN_D + d;   // the packed outputs' own layout
            const float uu = rowv[2][i][tid], dl = rowv[1][i][tid], dlu = dl * uu;
            const float zz = rowv[3][i][tid], go = rowv[4][i][tid];
            const float sz = sigmoid_f(zz), dy = go * zz * sz;
            const float dzv = go * rowv[0][i][tid] * sz * (1.f + zz * (1.f - sz));
            dD_acc = fmaf(dy, uu, dD_acc);
            // sB = sum_n dh B gives both du (times delta') and ddelta's B u term (times u); sA = sum_n da A2.
            float sB = 0.f, sA = 0.f, v[32];
            float dlm = 0.f, dlum = 0.f;
            if constexpr (odd) { dlm = rowv[1][i - 1][tid]; dlum = dlm * rowv[2][i - 1][tid]; }
#pragma unroll
            for (int n = 0; n < N; n++) {
                float hp = hist[((i >> 1) * N + n) * SCAN_THREADS + tid];
                if constexpr (odd) hp = fmaf(exp2_ftz(dlm * A2[n]), hp, dlum * sBC[i - 1][n]);   // h_{t-1} from h_{t-2}
                const float a = exp2_ftz(dl * A2[n]);
                const float Bn = sBC[i][n], Cn = sBC[i][N + n];
                const float dh = fmaf(dy, Cn, g[n]), da = dh * hp * a;
                v[n] = dh * dlu;                          // dBm: summed over d below
                v[N + n] = dy * fmaf(a, hp, dlu * Bn);   // dCm = dy h_t
                sB = fmaf(dh, Bn, sB);
                sA = fmaf(da, A2[n], sA);
                dA_acc[n] = fmaf(da, dl, dA_acc[n]);
                g[n] = a * dh;
            }
            const float du_v = fmaf(dl, sB, dy * Dd), ddl = fmaf(sA, VMC_LN2, sB * uu);
#pragma unroll
            for (int j = 2 * N; j < 32; j++) v[j] = 0.f;
            const float dx_raw = ddl * rowv[5][i][tid];   // exactly ddl once x > 20, as the reference
            dbias_acc += dx_raw;
            if (valid) {
                du[idx] = du_v; ddl_out[idx] = dx_raw; dz[idx] = dzv;
                if (SCAN_DDL_BF16) ddl16[idx] = from_f32<bf16>(dx_raw);
            }
            warp_reduce_scatter32(v);
            if (lane < 2 * N) atomicAdd(&acc[i][lane], v[0]);
        };
        int i = nr - 1;
        if ((i & 1) == 0) rev_row(BoolTag<false>{}, i--);
#pragma unroll 1
        for (; i > 0; i -= 2) {
            rev_row(BoolTag<true>{}, i);
            rev_row(BoolTag<false>{}, i - 1);
        }
        __syncthreads();   // acc complete
        for (int j = tid; j < nr * 2 * N; j += SCAN_THREADS) {
            const int i = j / (2 * N), c = j % (2 * N);
            const size_t r = row0 + r0 + i;
            atomicAdd(c < N ? &dB[r * N + c] : &dC[r * N + c - N], acc[i][c]);
            acc[i][c] = 0.f;
        }
        if (k > 0) {   // chunk k-1's start state: parked in its own du/ddelta rows (not yet overwritten), or zero
#pragma unroll
            for (int n = 0; n < N; n++) h[n] = k - 1 == 0 || !valid ? 0.f : *parked(du, ddl_out, row0, k - 1, n, d);
        }
    }
    if (valid) {
#pragma unroll
        for (int n = 0; n < N; n++) atomicAdd(&dAlog[d * N + n], dA_acc[n] * A2[n] * VMC_LN2);   // dA * A
        atomicAdd(&dD[d], dD_acc);
        atomicAdd(&dbias[d], dbias_acc);
    }
}
