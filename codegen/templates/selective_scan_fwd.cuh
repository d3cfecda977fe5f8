// selective_scan_fwd.cuh — forward of the selective scan (ARM_SPEC §2.3), gated by silu(z) unless SCAN_GATED is 0
// (a multi-direction mixer gates the merged sum once), one thread per (b, d) channel.
// Needs: SCAN_B, SCAN_L, SCAN_D, SCAN_N (<= 16), SCAN_THREADS; dtypes U_T, DELTA_T, ALOG_T, BC_T, DSKIP_T, DBIAS_T,
// Z_T, OUT_T. Grid (ceil(D/SCAN_THREADS), B). The N states live in registers across t; a warp reads 32
// consecutive d of each row (coalesced). The Bm/Cm rows, shared by the block's channels, are staged in shared
// memory as f32 a tile of rows at a time (converted once per block, read back as broadcast 16-byte loads).
// Training (SCAN_STATES, common.cuh) also saves the state at every SCAN_CHUNK-th row for the backward.
// One pass over the inputs; the N exp2 per element (A pre-scaled by log2 e) and the instruction count bound it.
// Measured (H200, B128 L197 D768 N16, bf16 in and out): 0.141 ms; 0.154 ms with 64-bit index arithmetic per load
// (VMC_AT: a third of the instructions), 0.178 ms with libm's softplus and sigmoid.
// Tried (H200): the tile's Bm/Cm loads issued 4 per thread before their stores, instead of one load per loop trip:
// 0.157 ms (the 80-register budget then spills); exp2 of 2 or 4 of the 16 states by a polynomial on the FMA pipe
// instead of the ex2 unit: 0.161 / 0.171 ms; the y sum in four partial sums: 0.160 ms; 5 blocks per SM: 0.157 ms;
// with 32-bit row offsets (0.142 ms), softplus and the gate's sigmoid sharing one reciprocal, 1/((2 + e^-|x|)(1 +
// e^-z)) (19 MUFU per row instead of 20): 0.143 ms.
// Tried on an H100 (ARM-B inference, b256): delta = dt W^T (dt_proj's product) computed here on the tensor cores
// (mma.sync m16n8k16 on the dt rows staged with Bm/Cm), its GEMM launch gone: 33.79 -> 36.30 ms a step with W's
// fragments read from L2 every 16 rows, 34.05 -> 36.50 ms with them in registers (5 blocks an SM); the forwards took
// 11.7 -> 17.9 ms eager against 1.7 ms of GEMMs saved. Removed; the code is at f5c474e (VMC_SCAN_DT).

#ifndef SCAN_GATED
#define SCAN_GATED 1   // y * silu(z); 0: y (z unread, may be NULL)
#endif
#define SCAN_TILE 64   // Bm/Cm rows staged per barrier pair
#define SCAN_PF 4      // rows of u, delta, z loaded ahead of their use (hides global-load latency)
#if SCAN_STATES        // chunk starts (common.cuh scan_state_at) fall on the first row of a prefetch group
static_assert(SCAN_CHUNK % SCAN_PF == 0 && SCAN_TILE % SCAN_CHUNK == 0, "scan states: chunk and tile sizes");
#endif

// SCAN_BC_ASYNC: the next tile's Bm/Cm rows are copied as they are stored (BC_T) by cp.async into sRaw while this
// tile computes, and converted to f32 from shared memory at the tile's start, so no thread waits on global memory
// there nor spends its 64-bit index arithmetic per value (about 30 instructions a value, 7% of the kernel's). Needs
// every row's Bm and Cm segments in whole 16-byte pieces (and the buffers 16-byte aligned, checked at run time:
// else the loads below). SCAN_BC_ASYNC 0 keeps the loads everywhere (template.c sets it: VMC_SCAN_BC_ASYNC; the
// emulator tests take this default).
// SCAN_POLY_EXP K: the decays of states 0 .. K-1 by exp2_fma (FMA pipe), the rest by the ex2 unit, to share the
// work between the two (the unit is 71% busy at ARM-B inference). SCAN_Y_SPLIT S: y = C h summed in S partial sums
// (S chains of N/S dependent FMAs instead of one of N). Both timing knobs (template.c: VMC_SCAN_POLY_EXP,
// VMC_SCAN_Y_SPLIT).
#ifndef SCAN_POLY_EXP
#define SCAN_POLY_EXP 0
#endif
#ifndef SCAN_Y_SPLIT
#define SCAN_Y_SPLIT 1
#endif
#ifndef SCAN_BC_ASYNC
#define SCAN_BC_ASYNC 1
#endif
// SCAN_EPI: the output is not stored; vmc_scan_epi (generated, codegen_scan_epilogue, placed before this text with
// the defines) takes it at each row, as the stored value would have read (OUT_T's rounding), and computes the
// elementwise group that read it (compiler/scan_epi.c) at that group's token vmc_epi_tok[t], storing its outputs.
// SCAN_EPI_PARAMS and SCAN_EPI_ARGS are the group's pointers, appended to the kernel's parameters.
#ifndef SCAN_EPI
#define SCAN_EPI 0
#define SCAN_EPI_PARAMS
#define SCAN_EPI_ARGS
#endif
static constexpr bool scan_bc_async =
    SCAN_BC_ASYNC && SCAN_N * sizeof(BC_T) % 16 == 0 && BM_STRIDE * sizeof(BC_T) % 16 == 0 &&
    BM_OFF * sizeof(BC_T) % 16 == 0 && CM_STRIDE * sizeof(BC_T) % 16 == 0 && CM_OFF * sizeof(BC_T) % 16 == 0;

// Stages rows t0 .. t0+nr-1 of Bm and Cm as f32 into s ([row][Bm's N, then Cm's N]) by loads, a value at a time.
template <class TB>
static __device__ __forceinline__ void scan_stage_bc_loads(float (*s)[2 * SCAN_N], const TB *Bm, const TB *Cm, int b,
                                                           int t0, int nr) {
    for (int j = threadIdx.x; j < nr * 2 * SCAN_N; j += SCAN_THREADS) {
        const int i = j / (2 * SCAN_N), c = j % (2 * SCAN_N), t = t0 + i;
        s[i][c] = c < SCAN_N ? to_f32(Bm[VMC_AT(BM, b, t) + c]) : to_f32(Cm[VMC_AT(CM, b, t) + c - SCAN_N]);
    }
}

// Copies rows t0 .. t0+nr-1 of Bm and Cm as they are into raw ([row][Bm's N, then Cm's N]) by cp.async, 16 bytes
// a copy, one commit group.
template <class TB>
static __device__ __forceinline__ void scan_copy_bc_async(TB (*raw)[2 * SCAN_N], const TB *Bm, const TB *Cm, int b,
                                                          int t0, int nr) {
    constexpr int E = 16 / (int)sizeof(TB), HALF = SCAN_N / E;   // values a copy, copies a row of Bm (or Cm)
    constexpr int PER = (SCAN_TILE * 2 * HALF + SCAN_THREADS - 1) / SCAN_THREADS;   // copies a thread at most
#pragma unroll
    for (int k = 0; k < PER; k++) {
        const int q = threadIdx.x + k * SCAN_THREADS, i = q / (2 * HALF), r = q % (2 * HALF), t = t0 + i;
        if (i < nr) {
            const TB *src = r < HALF ? Bm + VMC_AT(BM, b, t) + r * E : Cm + VMC_AT(CM, b, t) + (r - HALF) * E;
            vmc_cp_async16(&raw[i][r * E], src);
        }
    }
    vmc_cp_async_commit();
}

// At most 80 registers (6 blocks of 128 per SM): ARM-B's 768 blocks then fit one wave on 132 SMs, unspilled.
extern "C" __global__ void __launch_bounds__(SCAN_THREADS, 6)
vmc_scan_fwd(const U_T *__restrict__ u, const DELTA_T *__restrict__ delta, const ALOG_T *__restrict__ A_log,
             const BC_T *__restrict__ Bm, const BC_T *__restrict__ Cm, const DSKIP_T *__restrict__ Dskip,
             const DBIAS_T *__restrict__ delta_bias, const Z_T *__restrict__ z, OUT_T *__restrict__ out,
             float *__restrict__ states SCAN_EPI_PARAMS) {
    vmc_grid_entry();
    constexpr int N = SCAN_N, PF = SCAN_PF;
    static_assert(SCAN_TILE % SCAN_PF == 0, "prefetch groups must not straddle tiles");
    __shared__ __align__(16) float sBC[SCAN_TILE][2 * N];
    __shared__ __align__(16) BC_T sRaw[scan_bc_async ? SCAN_TILE : 1][2 * N];   // the next tile's rows, copied while
                                                                               // this one computes
    const int tid = threadIdx.x, d_raw = blockIdx.x * SCAN_THREADS + tid, b = blockIdx.y;
    const bool bc_async = scan_bc_async && (((unsigned long long)Bm | (unsigned long long)Cm) & 15) == 0;
    if (bc_async) scan_copy_bc_async(sRaw, Bm, Cm, b, 0, min(SCAN_TILE, SCAN_L));
    const bool valid = d_raw < SCAN_D;   // lanes past D run on column D-1 and store nothing (barriers below)
    const int d = valid ? d_raw : SCAN_D - 1;
    float A2[N], h[N];
#pragma unroll
    for (int n = 0; n < N; n++) {
        A2[n] = -expf(to_f32(A_log[d * N + n])) * VMC_LOG2E;
        h[n] = 0.f;
    }
    const float Dd = to_f32(Dskip[d]), bias = to_f32(delta_bias[d]);
    const auto uc = VMC_COL(U, SCAN_B, b, d);   // this thread's column of each input (plus a row offset per load)
    const auto dc = VMC_COL(DL, SCAN_B, b, d);
    const auto zc = VMC_COL(Z, SCAN_B, b, d);
    U_T pu[PF];          // raw inputs of the next PF rows (row indices clamped to L-1 past the end)
    DELTA_T pd[PF];
    Z_T pz[PF];
#pragma unroll
    for (int p = 0; p < PF; p++) {
        const int t = min(p, SCAN_L - 1);
        pu[p] = u[uc + VMC_ROWOFF(U, SCAN_B, t)]; pd[p] = delta[dc + VMC_ROWOFF(DL, SCAN_B, t)];
        if (SCAN_GATED) pz[p] = z[zc + VMC_ROWOFF(Z, SCAN_B, t)];
    }
    for (int t0 = 0; t0 < SCAN_L; t0 += SCAN_TILE) {
        const int nr = min(SCAN_TILE, SCAN_L - t0);
        if (bc_async) {
            constexpr int E = 16 / (int)sizeof(BC_T);
            vmc_cp_async_wait<0>();   // this thread's copies of the tile have landed
            __syncthreads();          // everyone's, and the previous tile is consumed
            constexpr int PER = (SCAN_TILE * 2 * N / E + SCAN_THREADS - 1) / SCAN_THREADS;   // (2N a multiple of E)
#pragma unroll
            for (int k = 0; k < PER; k++) {
                const int j = (tid + k * SCAN_THREADS) * E;
                if (j < nr * 2 * N) {
                    float f[E];
                    load_row<E>(&sRaw[0][0] + j, f);
#pragma unroll
                    for (int e = 0; e < E; e += 4)
                        *reinterpret_cast<float4 *>(&sBC[0][0] + j + e) = float4{f[e], f[e + 1], f[e + 2], f[e + 3]};
                }
            }
            __syncthreads();   // sBC staged, sRaw free for the next tile
            if (t0 + SCAN_TILE < SCAN_L)
                scan_copy_bc_async(sRaw, Bm, Cm, b, t0 + SCAN_TILE, min(SCAN_TILE, SCAN_L - t0 - SCAN_TILE));
        } else {
            __syncthreads();   // the previous tile is consumed
            scan_stage_bc_loads(sBC, Bm, Cm, b, t0, nr);
            __syncthreads();
        }
        for (int i = 0; i < nr; i += PF) {
#if SCAN_STATES
            if ((t0 + i) % SCAN_CHUNK == 0 && t0 + i > 0 && valid) {   // the state entering chunk (t0 + i) / CHUNK
#pragma unroll
                for (int n = 0; n < N; n++) states[scan_state_at(b, (t0 + i) / SCAN_CHUNK, n, d)] = h[n];
            }
#endif
            float cu[PF], cd[PF], cz[PF];
#pragma unroll
            for (int p = 0; p < PF; p++) {
                cu[p] = to_f32(pu[p]); cd[p] = to_f32(pd[p]); cz[p] = SCAN_GATED ? to_f32(pz[p]) : 0.f;
                const int t = min(t0 + i + PF + p, SCAN_L - 1);
                pu[p] = u[uc + VMC_ROWOFF(U, SCAN_B, t)]; pd[p] = delta[dc + VMC_ROWOFF(DL, SCAN_B, t)];
                if (SCAN_GATED) pz[p] = z[zc + VMC_ROWOFF(Z, SCAN_B, t)];
#if SCAN_EPI && SCAN_EPI_PF   // the epilogue's inputs of those rows asked of L2
                if (valid && t0 + i + PF + p < SCAN_L) vmc_scan_epi_pf(b, vmc_epi_tok[t], d SCAN_EPI_ARGS);
#endif
            }
#if SCAN_EPI
            float yv[PF];   // the group's y, for the epilogue after the group
#endif
#pragma unroll
            for (int p = 0; p < PF; p++) {
                if (i + p >= nr) break;
                const float uu = cu[p], dl = softplus_f(cd[p] + bias), zz = cz[p], dlu = dl * uu;
                float Bv[N], Cv[N];
                load_row<N>(&sBC[i + p][0], Bv);
                load_row<N>(&sBC[i + p][N], Cv);
                float ys[SCAN_Y_SPLIT];
#pragma unroll
                for (int k = 0; k < SCAN_Y_SPLIT; k++) ys[k] = k == 0 ? Dd * uu : 0.f;
#pragma unroll
                for (int n = 0; n < N; n++) {
                    const float a = n < SCAN_POLY_EXP ? exp2_fma(dl * A2[n]) : exp2_ftz(dl * A2[n]);
                    h[n] = fmaf(a, h[n], dlu * Bv[n]);
                    ys[n % SCAN_Y_SPLIT] = fmaf(Cv[n], h[n], ys[n % SCAN_Y_SPLIT]);
                }
                float y = ys[0];
#pragma unroll
                for (int k = 1; k < SCAN_Y_SPLIT; k++) y += ys[k];
                if (SCAN_GATED) y *= zz * sigmoid_f(zz);
#if SCAN_EPI
                yv[p] = to_f32(from_f32<OUT_T>(y));   // (as the stored y would have been read)
#else
                if (valid) out[((size_t)b * SCAN_L + t0 + i + p) * SCAN_D + d] = from_f32<OUT_T>(y);
#endif
            }
#if SCAN_EPI   // the group's rows together, so that their loads are in flight together
#pragma unroll
            for (int p = 0; p < PF; p++)
                if (valid && i + p < nr) vmc_scan_epi(b, vmc_epi_tok[t0 + i + p], d, yv[p] SCAN_EPI_ARGS);
#endif
        }
    }
}
