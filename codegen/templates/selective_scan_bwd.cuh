// selective_scan_bwd.cuh — backward of the selective scan (gated, or not with SCAN_GATED 0: then no z and no dz),
// one thread per (b, d) channel, N states in registers. Needs the forward's defines plus DOUT_T and SCAN_CHUNK
// (2*SCAN_CHUNK >= SCAN_N, SCAN_N <= 16).
// Grid (ceil(D/SCAN_THREADS), B); SCAN_THREADS a multiple of 32 (whole warps: the dB/dC sum uses shuffles).
// Tried and measured slower on an H200 at ARM-B shapes: two threads per channel with 8 states each (1.43 against
// 1.18 ms), 16-row chunks with 32 threads per block (1.42 against 0.91 ms), two channels per thread (their dBm/dCm
// terms added before one reduce-scatter, each staged B/C read serving both: about 440 instructions per element
// against 513, but 255 registers and 32-thread blocks, 7 warps per SM against 12): ARM-B fine-tuning step 67.77 /
// 68.00 against 65.71 / 65.36 ms (2026-12-04, same run).
// Global loads are issued a whole chunk at a time (rows of u, delta, z, dout into registers, then this thread's
// shared-memory column; the chunk's Bm/Cm rows staged by the block), every load before the first store, so a warp
// waits for memory once per chunk. (A conditional per row made the compiler wait row by row: 8 round trips, the
// largest stall in ncu's samples.)
// The state at the start of every chunk of SCAN_CHUNK rows is where the reverse pass starts each chunk's recompute.
// With SCAN_STATES the forward saved them (common.cuh scan_state_at). Else
//   pass 1   runs the recurrence forward and parks the state at the start of every chunk in the du/ddelta rows of
//            that same chunk (this thread's own column: no other thread touches it, and the reverse pass reads it
//            before it writes the real du/ddelta there); the last chunk's start state stays in registers;
//   reverse  walks the chunks backwards: recompute the chunk forward from its checkpoint keeping h_{t-1} of the
//            even rows in shared memory (private column per thread), and with h_t at hand the gate's gradient dz
//            and dCm = dy h_t; then load the previous chunk's checkpoint (its loads complete meanwhile) and step
//            t downwards through the adjoint recurrence dh_t = dy_t C_t + a_{t+1} dh_{t+1}, rows in (odd, even)
//            pairs: the odd row's h_{t-1} is one recurrence step from the even row's kept h_{t-2}, and that step's
//            decay is the even row's own a (one exp2 per state and row).
// dBm/dCm (shared by all d) are summed per row over the warp by a reduce-scatter (16 shuffles for 16 values), over
// the block's warps at the chunk's end (per-warp slots in shared memory: shared float atomics are CAS loops), and
// over blocks with one global atomicAdd per value per chunk. dA_log, dD, ddelta_bias are per-thread sums, added with
// atomics at the end. Outputs that are atomically accumulated must be zero on entry (template.c lists the range).
// Measured (H200, B128 L197 D768 N16, bf16 in): 0.513 ms from the forward's saved states (the forward then 0.148
// instead of 0.141 ms), 0.604 ms with pass 1; with pass 1: 0.640 ms with every reduce-scatter round selecting
// (SLOT_SWIZZLE off), 0.665 ms with 64-bit index arithmetic per load (VMC_AT);
// 0.753 ms with row-by-row waits on the chunk's loads and shared atomics (ncu then: 762 instructions per element,
// 2.5 issued per cycle of 4; stalls on fixed latency, global loads and the atomics' CAS loops); 0.87 ms with libm's
// softplus/sigmoid; 1.18 ms with loads row by row. 168 registers: capped at 128 (8 blocks of 64 per SM) it measured the
// same, but shared memory (30 KB a block) allows 6 blocks too, so that cap could not add warps.
// The forward rows' dCm sums go in row pairs, interleaved like the reverse pass's dBm sums: 0.517 -> 0.515 ms
// (L197), 0.340 -> 0.330 ms (B128 L128 D768, pretraining). Tried on top of that (test_scan_gpu --bench, H200, same
// run): the staged B/C rows read as 16-byte loads in the forward rows and the adjoint, 0.526 / 0.333 ms; each
// chunk's row loads and prefetches at constant offsets from one address, and one saved-state address per 4 slots,
// 0.519 / 0.322 ms; both, 0.529 / 0.317 ms, though ncu counted 3.8% fewer instructions (5.9% fewer and 0.538 ms
// at L197 without the L2 prefetches too). ncu (L197, saved states): 579 instructions per element, 2.7 issued per
// cycle of 4, 2.8 warps per scheduler, stalls mostly not-selected and fixed-latency waits.
// Tried: summing dBm/dCm over the warp through a swizzled shared-memory transpose (8 vector stores, 32 loads) in
// place of the reduce-scatter: 0.895 against 0.754 ms. The forward saving y + D u (as the reference saves `out`)
// so that dz needs no sum_n C h here (16 FMAs and the C reads per row fewer): backward 0.505 ms either way, forward
// 0.149 -> 0.155 ms, fine-tuning step 69.66 -> 70.31 ms (H200, same run). The kept h_{t-1} rows (hist) moved as
// 16-byte groups (hist_store/hist_load), same run, two rounds: gated f32 L197 0.505 -> 0.494 ms, L128 0.321 / 0.320
// -> 0.313 / 0.315 ms, ungated bf16 L197 0.464 / 0.463 -> 0.462 / 0.462 ms.
// Where the instructions go (ncu source counters, `scripts/scan_profile.sh BUILD ungated`, B128 L197 D768, 0.460 ms):
// 513 per element. The adjoint, 252 per row: per state and row pair 9 FMUL, 9 FFMA and 2 MUFU (its arithmetic,
// nothing else), then the two 16-value reduce-scatters (32 SHFL, 32 FADD, 12 FSEL a pair); the forward recompute,
// 170 per row (5 per state, the dCm reduce-scatter, softplus and sigmoid, about 12 MOVs a row that assemble the
// register quads of the 16-byte hist stores); per chunk (loads, staging, prefetches, the dBm/dCm flush) 81 per
// row. So the kernel is at its formulation's arithmetic: fewer instructions need fewer reductions per element
// (several channels per thread, summed before the shuffles: about 28 per element less, at about 64 registers
// more) or less recompute (all of a chunk's h_{t-1} and decays kept: twice or four times the shared memory, which
// costs the occupancy that hides the MUFU and shuffle latencies).

// Parts of the packed output (bits: 1 du, 2 ddelta, 4 dz; compiler/packed_copy.h) written as bf16 into `copy` (the
// packed output's bf16 mirror, same element offsets) for readers that take bf16, and those still stored in f32.
#ifndef SCAN_COPY_PARTS
#define SCAN_COPY_PARTS 0
#endif
#ifndef SCAN_F32_PARTS
#define SCAN_F32_PARTS 7
#endif
// dz's bf16 copy (SCAN_COPY_PARTS & 4): 0, in `copy` at the packed offsets; else in dz_copy, row r (= b L + t) at
// r * SCAN_DZ_COPY_LD: a column block of a wider buffer (the in_proj gradient [dx | dz] its GEMMs read; pass.h
// Fusion.into), so that no kernel has to assemble it.
#ifndef SCAN_DZ_COPY_LD
#define SCAN_DZ_COPY_LD 0
#endif
#ifndef SCAN_GATED
#define SCAN_GATED 1   // the forward's y * silu(z): dz is computed; 0: no z (may be NULL), no dz
#endif
#define VMC_LN2 0.6931471805599453f


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

// The same round where every lane keeps v[0, HALF): right when the partner's v[i + HALF] is the same quantity as
// this lane's v[i], as when states sit in lane-swizzled slots (SLOT_SWIZZLE below). No selects.
template <int HALF> __device__ __forceinline__ void reduce_round_keep_low(float *v) {
#pragma unroll
    for (int i = 0; i < HALF; i++) v[i] += __shfl_xor_sync(0xffffffffu, v[i + HALF], HALF);
}

// Sums 16 values over the warp: afterwards v[0] of lane l holds the warp's total of v[l % 16] (16 shuffles). All 32
// lanes must take part. SWIZZLED: the values are states in this lane's slot order (state = slot ^ (lane & 12)), so
// the rounds over lane bits 3 and 2 need no selects and v[0] of lane l still ends as state l % 16. (Two rows' 32
// values in one call would take 100 instructions against 2 x 38: the round over lane bit 4 selects per value.)
template <bool SWIZZLED> __device__ __forceinline__ void warp_reduce_scatter(float *v) {
    const unsigned lane = threadIdx.x & 31u;
    if constexpr (SWIZZLED) {
        reduce_round_keep_low<8>(v);
        reduce_round_keep_low<4>(v);
    } else {
        reduce_scatter_round<8>(v, lane);
        reduce_scatter_round<4>(v, lane);
    }
    reduce_scatter_round<2>(v, lane);
    reduce_scatter_round<1>(v, lane);
    v[0] += __shfl_xor_sync(0xffffffffu, v[0], 16);
}

// The next chunk's rows (of u and delta, and of z and dout for the reverse pass) and the block's Bm (and Cm) rows
// are asked of L2 a chunk ahead, so the chunk-wide loads above wait on L2, not on DRAM. The warp asks for its 32
// channels' row segments together: lane l takes the l-th 32-byte sector of the list (array, row, sector), so the
// chunk's 32 or 64 segments cost one or a few prefetches per warp, not one per row and array (with their address
// arithmetic, 6% of the kernel's instructions in ncu's counts). ARM-B steps (H200, same run, against per-thread
// prefetches): fine-tuning 70.59 / 70.47 -> 69.91 / 69.56 ms, pretraining 32.73 / 32.82 -> 32.62 / 32.78 ms.
// (static, as parked() below: they read the instantiation's shape macros, so each instantiation needs its own copy
// when several are compiled into one program, as in the emulator tests)
// uw, dw, zw, ow: the warp's first column of u, delta, z, dout (VMC_COL).
#define SCAN_PF_ARRAY(P, ptr, colw, T)                                                                              \
    {                                                                                                              \
        constexpr int S = (int)sizeof(T);   /* 32-byte sectors in a row segment of 32 channels */                  \
        if (rem >= 0 && rem < SCAN_CHUNK * S && k * SCAN_CHUNK + rem / S < SCAN_L)                              \
            p = reinterpret_cast<const char *>(ptr + (colw + VMC_ROWOFF(P, SCAN_B, k * SCAN_CHUNK + rem / S))) +    \
                rem % S * 32;                                                                                      \
        rem -= SCAN_CHUNK * S;                                                                                     \
    }
template <bool REVERSE, class TU, class TD, class TB, class TZ, class TO, class IU, class ID, class IZ, class IO>
static __device__ __forceinline__ void prefetch_chunk(const TU *u, const TD *delta, const TB *Bm, const TB *Cm, const TZ *z,
                                               const TO *dout, IU uw, ID dw, IZ zw, IO ow, int b, int k) {
    constexpr int SECTORS =
        SCAN_CHUNK * (int)(sizeof(TU) + sizeof(TD) + (REVERSE ? (SCAN_GATED ? sizeof(TZ) : 0) + sizeof(TO) : 0));
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int q0 = 0; q0 < SECTORS; q0 += 32) {
        int rem = q0 + lane;
        const char *p = nullptr;
        SCAN_PF_ARRAY(U, u, uw, TU)
        SCAN_PF_ARRAY(DL, delta, dw, TD)
        if (REVERSE) {
            if (SCAN_GATED) SCAN_PF_ARRAY(Z, z, zw, TZ)
            SCAN_PF_ARRAY(DO, dout, ow, TO)
        }
        if (p) prefetch_l2(p);
    }
    const int i = threadIdx.x;
    if (i < SCAN_CHUNK && k * SCAN_CHUNK + i < SCAN_L) {
        prefetch_l2(Bm + VMC_AT(BM, b, k * SCAN_CHUNK + i));
        if (REVERSE) prefetch_l2(Cm + VMC_AT(CM, b, k * SCAN_CHUNK + i));
    }
}
#undef SCAN_PF_ARRAY

// With 16 states, lane l keeps state n in slot n ^ (lane & 12): the dBm/dCm reduce-scatter then needs selects in
// two of its four state rounds only. Each slot order has its own copy of the staged Bm/Cm rows (4 copies, padded
// so that the 4 copies a warp reads lie on different banks), so every read stays a broadcast 16-byte load.
#define SLOT_SWIZZLE (SCAN_N == 16)
#define BC_COPIES (SLOT_SWIZZLE ? 4 : 1)
#define BC_COPY_FLOATS (SCAN_CHUNK * 2 * SCAN_N + 4)

// Stages rows r0 .. r0+nr-1 of Bm (and of Cm when BOTH) as f32 into every copy s[k], row-major [row][c] (Cm at
// c >= N), state c at c ^ 4k: every load is issued before the first store, so the block waits on memory once.
template <bool BOTH, class TB>
static __device__ __forceinline__ void stage_bc(float (*s)[BC_COPY_FLOATS], const TB *Bm, const TB *Cm, int b, int r0, int nr) {
    constexpr int W = BOTH ? 2 * SCAN_N : SCAN_N, PER = (SCAN_CHUNK * W + SCAN_THREADS - 1) / SCAN_THREADS;
    TB v[PER];
#pragma unroll
    for (int q = 0; q < PER; q++) {
        const int j = threadIdx.x + q * SCAN_THREADS, t = r0 + min(j / W, nr - 1), c = j % W;   // clamped row
        v[q] = c < SCAN_N ? Bm[VMC_AT(BM, b, t) + c] : Cm[VMC_AT(CM, b, t) + c - SCAN_N];
    }
#pragma unroll
    for (int q = 0; q < PER; q++) {
        const int j = threadIdx.x + q * SCAN_THREADS;
        if (j < nr * W) {
            const float f = to_f32(v[q]);
#pragma unroll
            for (int k = 0; k < BC_COPIES; k++) s[k][j / W * 2 * SCAN_N + (j % W ^ 4 * k)] = f;
        }
    }
}

// Where the state n at the start of chunk k is parked: row n of the chunk's du rows for n < CHUNK, else row
// n - CHUNK of its ddelta rows (this thread's own column: no other thread touches it, and the reverse pass reads
// it before it writes the real du/ddelta there). Those f32 rows are this scratch even where SCAN_F32_PARTS skips
// the store of du or ddelta.
// col: this thread's column of the packed outputs (b L D + d).
typedef VMC_INDEX_T((unsigned long long)SCAN_B * SCAN_L * SCAN_D) ScanOutIndex;
static __device__ __forceinline__ float *parked(float *du, float *ddl, ScanOutIndex col, int k, int n) {
    constexpr int CH = SCAN_CHUNK;
    return (n < CH ? du : ddl) + (col + (ScanOutIndex)(k * CH + (n < CH ? n : n - CH)) * SCAN_D);
}

// Register slot n of the state at the start of chunk k >= 1: saved by the forward (SCAN_STATES, by state: slot n
// holds state n ^ sw), else parked by pass 1 (by slot).
static __device__ __forceinline__ const float *chunk_start(const float *states, float *du, float *ddl, ScanOutIndex col,
                                                           int b, int d, int k, int n, int sw) {
    return SCAN_STATES ? states + scan_state_at(b, k, n ^ sw, d) : parked(du, ddl, col, k, n);
}

// hist, h_{t-1} of a chunk's even rows: with 16 states [row/2][thread][16], moved as four 16-byte groups a row
// (4 instructions, not 16); group q of thread t sits at q ^ ((t >> 1) & 3), so each quarter warp's 16-byte
// accesses hit 8 different bank quads (no conflicts). Else [row/2][n][thread], one float at a time.
#define HIST_VEC (SCAN_N == 16)
static __device__ __forceinline__ void hist_store(float *hist, int pair, const float *h) {
    const int t = threadIdx.x;
    if constexpr (HIST_VEC) {
        float4 *p = reinterpret_cast<float4 *>(hist + (pair * SCAN_THREADS + t) * 16);
#pragma unroll
        for (int q = 0; q < 4; q++) p[q ^ ((t >> 1) & 3)] = float4{h[4 * q], h[4 * q + 1], h[4 * q + 2], h[4 * q + 3]};
    } else {
#pragma unroll
        for (int n = 0; n < SCAN_N; n++) hist[(pair * SCAN_N + n) * SCAN_THREADS + t] = h[n];
    }
}
static __device__ __forceinline__ void hist_load(const float *hist, int pair, float *h) {
    const int t = threadIdx.x;
    if constexpr (HIST_VEC) {
        const float4 *p = reinterpret_cast<const float4 *>(hist + (pair * SCAN_THREADS + t) * 16);
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const float4 v = p[q ^ ((t >> 1) & 3)];
            h[4 * q] = v.x; h[4 * q + 1] = v.y; h[4 * q + 2] = v.z; h[4 * q + 3] = v.w;
        }
    } else {
#pragma unroll
        for (int n = 0; n < SCAN_N; n++) h[n] = hist[(pair * SCAN_N + n) * SCAN_THREADS + t];
    }
}

// No register cap: the compiler takes about 168 (6 blocks of 64 per SM). A cap of 128 (8 blocks) spills a little and
// measured the same (0.667 against 0.665 ms, H200, pass 1's form). Capped for 7 blocks an SM (128 registers, 16 bytes
// spilled; 7 an SM as vmc bench's occupancy column showed): ARM-B fine-tuning's scan backward 22.9 -> 25.4 ms a step
// eager, the step 68.6 -> 70.8 ms (H100, 2026-12-05, two rounds). (A bound naming 1 block made ptxas take 180
// registers instead of 162 in pretraining's instance: name none.)
extern "C" __global__ void __launch_bounds__(SCAN_THREADS)
vmc_scan_bwd(const U_T *__restrict__ u, const DELTA_T *__restrict__ delta, const ALOG_T *__restrict__ A_log,
             const BC_T *__restrict__ Bm, const BC_T *__restrict__ Cm, const DSKIP_T *__restrict__ Dskip,
             const DBIAS_T *__restrict__ delta_bias, const Z_T *__restrict__ z, const DOUT_T *__restrict__ dout,
             float *__restrict__ packed, bf16 *__restrict__ copy, const float *__restrict__ states,
             bf16 *__restrict__ dz_copy) {
    vmc_grid_entry();
    constexpr int N = SCAN_N, CH = SCAN_CHUNK, LAST = SCAN_NCHUNK - 1;
    constexpr size_t BLD = (size_t)SCAN_B * SCAN_L * SCAN_D, BLN = (size_t)SCAN_B * SCAN_L * SCAN_N;
    static_assert(2 * CH >= N && N <= 16 && SCAN_THREADS % 32 == 0, "scan_bwd configuration");
    __shared__ __align__(16) float hist[(CH + 1) / 2 * N * SCAN_THREADS];   // h_{t-1} of the chunk's even rows
    __shared__ __align__(16) float sBC_copies[BC_COPIES][BC_COPY_FLOATS];   // the chunk's Bm and Cm rows
    __shared__ float acc[SCAN_THREADS / 32][CH][32];   // per warp: its sums of dBm, dCm (c >= N) for the chunk's
                                                       // rows (plain stores; shared float atomics are CAS loops)
    __shared__ float rowv[4][CH][SCAN_THREADS];     // per thread and row: delta (then its softplus dl), u,
                                                    // z (then dy), dout (then softplus' = sigmoid(delta + bias))

    float *du = packed, *ddl_out = du + BLD, *dAlog = ddl_out + BLD, *dB = dAlog + SCAN_D * N, *dC = dB + BLN;
    float *dD = dC + BLN, *dbias = dD + SCAN_D, *dz = dbias + SCAN_D;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, b = blockIdx.y;
    const int sw = SLOT_SWIZZLE ? lane & 12 : 0;   // slot n holds state n ^ sw (A2, h, g, dA_acc, hist, sBC)
    float (*sBC)[2 * N] = reinterpret_cast<float (*)[2 * N]>(&sBC_copies[sw >> 2][0]);   // this lane's copy
    const int d_raw = blockIdx.x * SCAN_THREADS + tid;
    const bool valid = d_raw < SCAN_D;                 // lanes past D compute on column D-1 with zero dout
    const int d = valid ? d_raw : SCAN_D - 1;
    const auto uc = VMC_COL(U, SCAN_B, b, d), dc = VMC_COL(DL, SCAN_B, b, d);   // this thread's input columns
    const auto zc = VMC_COL(Z, SCAN_B, b, d), oc = VMC_COL(DO, SCAN_B, b, d);
    const ScanOutIndex col = (ScanOutIndex)b * SCAN_L * SCAN_D + d;          // and its outputs' column
    const int d_warp = min(d_raw - lane, SCAN_D - 1);                        // the warp's first column (prefetches)
    const auto uw = VMC_COL(U, SCAN_B, b, d_warp), dw = VMC_COL(DL, SCAN_B, b, d_warp);
    const auto zw = VMC_COL(Z, SCAN_B, b, d_warp), ow = VMC_COL(DO, SCAN_B, b, d_warp);
    const ScanOutIndex colw = (ScanOutIndex)b * SCAN_L * SCAN_D + d_warp;

    float A2[N], h[N];
#pragma unroll
    for (int n = 0; n < N; n++) {
        A2[n] = -expf(to_f32(A_log[d * N + (n ^ sw)])) * VMC_LOG2E;
        h[n] = 0.f;
    }
    const float Dd = to_f32(Dskip[d]), bias = to_f32(delta_bias[d]);

#if SCAN_STATES
    if (LAST > 0) {
#pragma unroll
        for (int n = 0; n < N; n++) h[n] = states[scan_state_at(b, LAST, n ^ sw, d)];
    }
#else
    // pass 1: forward through every chunk but the last, parking chunk-start states (parked()). Chunks here are full.
    for (int k = 0; k < LAST; k++) {
        if (k > 0 && valid) {
#pragma unroll
            for (int n = 0; n < N; n++) *parked(du, ddl_out, col, k, n) = h[n];
        }
        __syncthreads();   // the previous chunk's Bm rows are consumed
        stage_bc<false>(sBC_copies, Bm, Cm, b, k * CH, CH);
        float ur[CH], dr[CH];
#pragma unroll
        for (int i = 0; i < CH; i++) {
            ur[i] = to_f32(u[uc + VMC_ROWOFF(U, SCAN_B, k * CH + i)]);
            dr[i] = to_f32(delta[dc + VMC_ROWOFF(DL, SCAN_B, k * CH + i)]);
        }
        if (k + 1 < LAST) prefetch_chunk<false>(u, delta, Bm, Cm, z, dout, uw, dw, zw, ow, b, k + 1);
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
#endif

    float g[N], dA_acc[N], dD_acc = 0.f, dbias_acc = 0.f;   // g = a_{t+1} dh_{t+1}
#pragma unroll
    for (int n = 0; n < N; n++) g[n] = dA_acc[n] = 0.f;

    for (int k = LAST; k >= 0; k--) {
        const int r0 = k * CH, nr = min(CH, SCAN_L - r0);
        stage_bc<true>(sBC_copies, Bm, Cm, b, r0, nr);
        {   // this thread's rows of the chunk: every load in flight before the first store (rows clamped to nr-1)
            DELTA_T rd[CH]; U_T ru[CH]; Z_T rz[CH]; DOUT_T ro[CH];
#pragma unroll
            for (int i = 0; i < CH; i++) {
                const int t = r0 + min(i, nr - 1);
                rd[i] = delta[dc + VMC_ROWOFF(DL, SCAN_B, t)]; ru[i] = u[uc + VMC_ROWOFF(U, SCAN_B, t)];
                if (SCAN_GATED) rz[i] = z[zc + VMC_ROWOFF(Z, SCAN_B, t)];
                ro[i] = dout[oc + VMC_ROWOFF(DO, SCAN_B, t)];
            }
#pragma unroll
            for (int i = 0; i < CH; i++) {
                if (i < nr) {
                    rowv[0][i][tid] = to_f32(rd[i]); rowv[1][i][tid] = to_f32(ru[i]);
                    if (SCAN_GATED) rowv[2][i][tid] = to_f32(rz[i]);
                    rowv[3][i][tid] = valid ? to_f32(ro[i]) : 0.f;
                }
            }
        }
        if (k > 0) {   // chunk k-1's inputs and its parked start state, read at the end of this chunk
            prefetch_chunk<true>(u, delta, Bm, Cm, z, dout, uw, dw, zw, ow, b, k - 1);
            if (k - 1 > 0) {   // its start state: N rows of the warp's 32 f32 values, 4 sectors each
#pragma unroll
                for (int q = lane; q < 4 * N; q += 32)
                    prefetch_l2(chunk_start(states, du, ddl_out, colw, b, d_warp, k - 1, q / 4, 0) + q % 4 * 8);
            }
        }
        __syncthreads();   // sBC and rowv staged; acc read by the previous chunk's flush

        // Forward through the chunk from h, its start state (pass 1's final state, then each checkpoint loaded
        // below), keeping h_{t-1} of the even rows. Everything that needs h_t but not the adjoint is done here:
        // the gate's gradient dz and dCm = dy h_t (summed over d).
        // Rows are loops, not unrolled: per-row values kept in register arrays indexed by a loop variable would go
        // to local memory. They live in shared memory instead.
        auto fwd_row = [&](auto even_tag, int i, float *v) {   // v: the row's dCm terms, summed by the caller
            constexpr bool EVEN = decltype(even_tag)::value;
            const float uu = rowv[1][i][tid], x = rowv[0][i][tid] + bias, dl = softplus_f(x), dlu = dl * uu;
            const float go = rowv[3][i][tid], zz = SCAN_GATED ? rowv[2][i][tid] : 0.f;
            const float sz = SCAN_GATED ? sigmoid_f(zz) : 1.f, dy = SCAN_GATED ? go * zz * sz : go;
            float y = 0.f;
            if constexpr (EVEN) hist_store(hist, i >> 1, h);
#pragma unroll
            for (int n = 0; n < N; n++) {
                h[n] = fmaf(exp2_ftz(dl * A2[n]), h[n], dlu * sBC[i][n]);
                if (SCAN_GATED) y = fmaf(sBC[i][N + n], h[n], y);
                v[n] = dy * h[n];   // dCm
            }
#pragma unroll
            for (int n = N; n < 16; n++) v[n] = 0.f;
            if (SCAN_GATED) {
                const float dzv = go * fmaf(Dd, uu, y) * sz * (1.f + zz * (1.f - sz));
                if (valid) {
                    const ScanOutIndex idx = col + (ScanOutIndex)(r0 + i) * SCAN_D;
                    if (SCAN_F32_PARTS & 4) dz[idx] = dzv;
                    if ((SCAN_COPY_PARTS & 4) && SCAN_DZ_COPY_LD)
                        dz_copy[((size_t)b * SCAN_L + r0 + i) * SCAN_DZ_COPY_LD + d] = from_f32<bf16>(dzv);
                    else if (SCAN_COPY_PARTS & 4) copy[(dz - packed) + idx] = from_f32<bf16>(dzv);
                }
            }
            rowv[0][i][tid] = dl; rowv[2][i][tid] = dy; rowv[3][i][tid] = sigmoid_f(x);
        };
        // Rows in pairs, whose two dCm sums interleave (each sum is a chain of dependent shuffles)
#pragma unroll 1
        for (int i = 0; i < nr; i += 2) {
            float ve[16], vo[16];
            fwd_row(BoolTag<true>{}, i, ve);
            if (i + 1 < nr) fwd_row(BoolTag<false>{}, i + 1, vo);
            else {
#pragma unroll
                for (int n = 0; n < 16; n++) vo[n] = 0.f;
            }
            warp_reduce_scatter<SLOT_SWIZZLE>(ve);
            warp_reduce_scatter<SLOT_SWIZZLE>(vo);
            if (lane < N) acc[warp][i][N + lane] = ve[0];
            else if (lane >= 16 && lane - 16 < N && i + 1 < nr) acc[warp][i + 1][N + lane - 16] = vo[0];
        }
        if (k > 0) {   // h is free until chunk k-1: load its start state now (parked in chunk k-1's own du/ddelta
                       // rows, which this chunk does not write), so the loads complete during the reverse steps
#pragma unroll
            for (int n = 0; n < N; n++)
                h[n] = k - 1 == 0 || !valid ? 0.f : *chunk_start(states, du, ddl_out, col, b, d, k - 1, n, sw);
        }

        // The adjoint recurrence dh_t = dy_t C_t + a_{t+1} dh_{t+1}, t downwards. Rows go in pairs (odd t, even
        // t-1): h_{t-1} = a_{t-1} h_{t-2} + dl u B comes from the even row's kept h_{t-2}, and the even row's
        // decay a_{t-1} is the one that rebuild computed.
        struct Row { float dl, u, dy, sB, sA; };   // sB = sum_n dh B (du and ddelta's B u term), sA = sum_n da A2
        auto row_of = [&](int i) { return Row{rowv[0][i][tid], rowv[1][i][tid], rowv[2][i][tid], 0.f, 0.f}; };
        // State n of row i, given h_{t-1} (hp) and a_t: accumulates and returns dBm's term dh dl u.
        auto adjoint = [&](Row &r, int i, int n, float hp, float a) {
            const float dh = fmaf(r.dy, sBC[i][N + n], g[n]);
            g[n] = a * dh;
            const float da = g[n] * hp;   // dh a h_{t-1}
            r.sB = fmaf(dh, sBC[i][n], r.sB);
            r.sA = fmaf(da, A2[n], r.sA);
            dA_acc[n] = fmaf(da, r.dl, dA_acc[n]);
            return dh * (r.dl * r.u);
        };
        auto finish = [&](const Row &r, int i) {   // du, ddelta (and their bf16 copies) of row i
            const ScanOutIndex idx = col + (ScanOutIndex)(r0 + i) * SCAN_D;   // the packed outputs' own layout
            const float du_v = fmaf(r.dl, r.sB, r.dy * Dd), ddl = fmaf(r.sA, VMC_LN2, r.sB * r.u);
            const float dx_raw = ddl * rowv[3][i][tid];   // exactly ddl once x > 20, as the reference
            dD_acc = fmaf(r.dy, r.u, dD_acc);
            dbias_acc += dx_raw;
            if (valid) {
                if (SCAN_F32_PARTS & 1) du[idx] = du_v;
                if (SCAN_F32_PARTS & 2) ddl_out[idx] = dx_raw;
                if (SCAN_COPY_PARTS & 1) copy[idx] = from_f32<bf16>(du_v);
                if (SCAN_COPY_PARTS & 2) copy[BLD + idx] = from_f32<bf16>(dx_raw);
            }
        };
        int i = nr - 1;
        if ((i & 1) == 0) {   // an even last row alone: its h_{t-1} is kept
            Row r = row_of(i);
            float v[16], hp[N];
            hist_load(hist, i >> 1, hp);
#pragma unroll
            for (int n = 0; n < 16; n++) v[n] = n < N ? adjoint(r, i, n, hp[n], exp2_ftz(r.dl * A2[n])) : 0.f;
            finish(r, i);
            warp_reduce_scatter<SLOT_SWIZZLE>(v);
            if (lane < N) acc[warp][i][lane] = v[0];
            i--;
        }
#pragma unroll 1
        for (; i > 0; i -= 2) {   // rows i (odd) and i - 1
            Row ro = row_of(i), re = row_of(i - 1);
            float v[16], w[16], hp[N];   // dBm terms of row i and of row i-1; h_{t-2}
            hist_load(hist, (i - 1) >> 1, hp);
#pragma unroll
            for (int n = 0; n < 16; n++) {
                if (n < N) {
                    const float ae = exp2_ftz(re.dl * A2[n]), he = fmaf(ae, hp[n], (re.dl * re.u) * sBC[i - 1][n]);
                    v[n] = adjoint(ro, i, n, he, exp2_ftz(ro.dl * A2[n]));
                    w[n] = adjoint(re, i - 1, n, hp[n], ae);
                } else {
                    v[n] = w[n] = 0.f;
                }
            }
            finish(ro, i);
            finish(re, i - 1);
            // Two 16-value sums, not one of 32 (76 instructions against 100): 0.553 -> 0.547 ms a call in ARM-B's
            // fine-tuning step (eager, H200)
            warp_reduce_scatter<SLOT_SWIZZLE>(v);
            warp_reduce_scatter<SLOT_SWIZZLE>(w);
            if (lane < N) acc[warp][i][lane] = v[0];
            else if (lane >= 16 && lane - 16 < N) acc[warp][i - 1][lane - 16] = w[0];
        }
        __syncthreads();   // acc complete
        for (int j = tid; j < nr * 2 * N; j += SCAN_THREADS) {   // over the block's warps, then over blocks
            const int i = j / (2 * N), c = j % (2 * N);
            const size_t r = (size_t)b * SCAN_L + r0 + i;
            float sum = acc[0][i][c];
#pragma unroll
            for (int w = 1; w < SCAN_THREADS / 32; w++) sum += acc[w][i][c];
            atomicAdd(c < N ? &dB[r * N + c] : &dC[r * N + c - N], sum);
        }
    }
    if (valid) {
#pragma unroll
        for (int n = 0; n < N; n++) atomicAdd(&dAlog[d * N + (n ^ sw)], dA_acc[n] * A2[n] * VMC_LN2);   // dA * A
        atomicAdd(&dD[d], dD_acc);
        atomicAdd(&dbias[d], dbias_acc);
    }
}
