// skinny_gemm.cuh — C = alpha op(A) op(B) (+ acc) with bf16 A and B and f32 accumulation (mma.sync m16n8k16, any
// sm_80+), for the products where one of M, N, K is small (the mixer's x_proj and dt_proj and their gradients: N,
// K or M of 48 or 80). Timed against cuBLASLt's candidates before the first step; the faster one runs
// (runtime/cuda_gemm.c). Measured (H200, 2026-12-05, VMC_GEMM_LOG=1, µs per call, cuBLASLt's best of 8 against this
// kernel) on ARM-B fine-tuning's shapes: 25216x80x768 10.8 / 26.1, 25216x768x48 15.1 / 38.2, 25216x48x768 10.7 / 22.6,
// 25216x768x80 17.6 / 39.4, 768x48x25216 13.4 / 33.0, 80x768x25216 15.1 / 58.7 (cuBLASLt at 2.4-3.6 TB/s); only the
// classifier head's 1000x768x128 weight gradient, 7.8 / 5.6, picks it. Forced everywhere it agrees (VMC_OWN_GEMM=3):
// fine-tuning 68.30 / 68.20 against 64.71 / 64.59 ms. To win it needs more bytes in flight per SM (one CTA of 8 warps
// over 197 tiles is 1.5 waves), fewer, larger K slices and stores staged for 16-byte writes. Swept on an H100
// (VMC_SKINNY_GEMM, README: GEMMs): the staged epilogue (SG_EV) takes the [M, 768] outputs from 43 to 29 us and 64-deep
// K slices the [M, 768] inputs from 29 to 23 us, against cuBLASLt's 14-20 us: still slower, so both stay off.
// Row-major, as GemmDesc: op(A) is M x K (A stored [M][SG_LDA], or [K][SG_LDA] with SG_TA), op(B) is K x N (B stored
// [K][SG_LDB], or [N][SG_LDB] with SG_TB); C and acc are [M][N] of C_T.
// Needs SG_M, SG_N, SG_K, SG_LDA, SG_LDB, SG_TA, SG_TB, SG_ALPHA, SG_ACC, C_T, SG_PAIRS, SG_RV and SG_EV (below); the
// tiling SG_BM x SG_BN (SG_WM x SG_WN warps), SG_BK, SG_STAGES, SG_VA / SG_VB (elements per cp.async along each
// operand's contiguous dimension: 8, 4 or 2), SG_SPLIT (K ranges of SG_KSTEP, a multiple of SG_BK). Grid
// (ceil(N/BN), ceil(M/BM), SPLIT), block WM*WN*32, dynamic shared memory 2 * SG_SMEM_ELEMS bytes.
// Each stage of shared memory holds a BK-deep slice of both operand tiles in their global orientation (cp.async
// copies them unchanged): a K-contiguous operand as [row][k], the other as [k][row], rows padded by 8 elements so
// that the 8 rows of an ldmatrix fall on different banks. ldmatrix reads the fragments, transposing the
// row-contiguous ones.
// With SG_SPLIT > 1 (few output tiles, long K: the weight gradients) every CTA writes its f32 partial product to
// ws[split][M][N] and vmc_gemm_skinny_reduce, launched next, adds them in split order (deterministic) into C.

#define SG_THREADS (SG_WM * SG_WN * 32)
#define SG_WTM (SG_BM / SG_WM)   // a warp's tile
#define SG_WTN (SG_BN / SG_WN)
#define SG_FM (SG_WTM / 16)      // its m16 x n8 fragments
#define SG_FN (SG_WTN / 8)
// Shared tiles (bf16 elements): A as [BM][BK+8] when K-contiguous (!SG_TA), else [BK][BM+8]; B as [BN][BK+8] when
// K-contiguous (SG_TB), else [BK][BN+8].
#define SG_A_PITCH (SG_TA ? SG_BM + 8 : SG_BK + 8)
#define SG_B_PITCH (SG_TB ? SG_BK + 8 : SG_BN + 8)
#define SG_A_ELEMS ((SG_TA ? SG_BK : SG_BM) * SG_A_PITCH)
#define SG_B_ELEMS ((SG_TB ? SG_BN : SG_BK) * SG_B_PITCH)
#define SG_STAGE_ELEMS (SG_A_ELEMS + SG_B_ELEMS)
#ifndef SG_EV
#define SG_EV 0   // the staged epilogue's elements a lane (below); 0: fragments stored directly
#endif
// the dynamic shared memory (bf16 elements): the stages, or the staged epilogue's f32 tile where that is larger
#define SG_EPI_ELEMS (SG_EV ? 2 * SG_BM * (SG_BN + 4) : 0)
#define SG_SMEM_ELEMS (SG_STAGES * SG_STAGE_ELEMS > SG_EPI_ELEMS ? SG_STAGES * SG_STAGE_ELEMS : SG_EPI_ELEMS)
static_assert(SG_WTM % 16 == 0 && SG_WTN % 8 == 0 && SG_BK % 16 == 0 && SG_KSTEP % SG_BK == 0, "skinny GEMM tiling");
static_assert(SG_A_ELEMS % 8 == 0 && SG_B_ELEMS % 8 == 0, "16-byte aligned stages");

// Copies BYTES (16, 8 or 4) from global src to shared dst without waiting; with zero false, fills dst with zeros
// and reads nothing.
template <int BYTES> static __device__ __forceinline__ void sg_cp_async(void *dst, const void *src, bool ok) {
#ifdef __CUDA_ARCH__
    if constexpr (BYTES == 16)
        vmc_cp_async16_zfill(dst, src, ok);
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;" ::"r"(vmc_smem_addr(dst)), "l"(src), "n"(BYTES),
                     "r"(ok ? BYTES : 0) : "memory");
#else
    if (ok) memcpy(dst, src, BYTES);
    else memset(dst, 0, BYTES);
#endif
}
// One operand's BK-deep slice [k0, k0 + BK) of rows [r0, r0 + BR) into shared s (layout above). X is stored
// K-contiguous (KC: X[r*LD + k]) or row-contiguous (X[k*LD + r]); V elements per copy along the contiguous
// dimension (ROWS % V == 0 or K % V == 0 as the orientation needs, so a copy is wholly inside or outside).
template <int BR, int ROWS, int LD, bool KC, int V, int PITCH>
static __device__ __forceinline__ void sg_load_slice(unsigned short *s, const unsigned short *__restrict__ X, int r0, int k0,
                                              int kend) {
    constexpr int PER_LINE = KC ? SG_BK / V : BR / V, TOTAL = (KC ? BR : SG_BK) * PER_LINE;
#pragma unroll
    for (int it = 0; it < (TOTAL + SG_THREADS - 1) / SG_THREADS; it++) {   // a fixed count: no loop in the code
        const int j = threadIdx.x + it * SG_THREADS;
        if (TOTAL % SG_THREADS && j >= TOTAL) break;
        const int line = j / PER_LINE, e = j % PER_LINE * V;   // KC: line = row, e = k offset; else line = k
        const int r = KC ? r0 + line : r0 + e, k = KC ? k0 + e : k0 + line;
        const bool ok = r < ROWS && k < kend;
        const unsigned short *src = ok ? X + (KC ? (size_t)r * LD + k : (size_t)k * LD + r) : X;
        sg_cp_async<2 * V>(s + line * PITCH + e, src, ok);
    }
}

// A's fragment of rows m .. m+15, k .. k+15 (a[0..3]: rows +0/+8 x k +0/+8, as mma wants): matrix j of the x4 is
// rows m + 8 (j % 2), k + 8 (j / 2); a K-contiguous slice ([m][k]) is read as is, the other ([k][m]) transposed.
static __device__ __forceinline__ void sg_frag_a(unsigned *a, const unsigned short *sa, int m, int k) {
    const int lane = threadIdx.x & 31, i = lane & 7, j = lane >> 3;
    if (!SG_TA) vmc_ldmatrix<4, false>(a, sa + (m + i + 8 * (j & 1)) * SG_A_PITCH + k + 8 * (j >> 1));
    else vmc_ldmatrix<4, true>(a, sa + (k + i + 8 * (j >> 1)) * SG_A_PITCH + m + 8 * (j & 1));
}
// B's fragment of columns n .. n+7, k .. k+15 (b[0..1]: k +0 / +8): a K-contiguous slice ([n][k]) as is, the
// other ([k][n]) transposed. (Lanes 16..31 name rows too, unused by .x2.)
static __device__ __forceinline__ void sg_frag_b(unsigned *b, const unsigned short *sb, int n, int k) {
    const int lane = threadIdx.x & 31, i = lane & 7, j = (lane >> 3) & 1;
    if (SG_TB) vmc_ldmatrix<2, false>(b, sb + (n + i) * SG_B_PITCH + k + 8 * j);
    else vmc_ldmatrix<2, true>(b, sb + (k + i + 8 * j) * SG_B_PITCH + n);
}

// out = alpha v (+ acc) of C elements (r, c .. c + V - 1), stored as C_T in one access (SG_PAIRS: C and acc are
// aligned for two elements and N is even, so a fragment's two columns 2t, 2t + 1 are one aligned pair).
template <int V>
static __device__ __forceinline__ void sg_store(C_T *__restrict__ C, const C_T *__restrict__ acc, int r, int c, const float *v) {
    const size_t i = (size_t)r * SG_N + c;
    float o[V], a[V];
    if (SG_ACC) load_vec<V>(acc + i, a);
#pragma unroll
    for (int e = 0; e < V; e++) o[e] = v[e] * (float)(SG_ALPHA) + (SG_ACC ? a[e] : 0.f);
    store_vec<V>(C + i, o);
}

extern "C" __global__ void __launch_bounds__(SG_THREADS)
vmc_gemm_skinny(const bf16 *__restrict__ A, const bf16 *__restrict__ B, C_T *__restrict__ C,
                const C_T *__restrict__ acc, float *__restrict__ ws) {
    vmc_grid_entry();
#ifdef __CUDA_ARCH__
    extern __shared__ __align__(16) unsigned short sg_smem[];   // SG_SMEM_ELEMS
#else
    static __align__(16) unsigned short sg_smem[SG_SMEM_ELEMS];
#endif
    const int n0 = blockIdx.x * SG_BN, m0 = blockIdx.y * SG_BM;
    const int kbeg = blockIdx.z * SG_KSTEP, kend = min(SG_K, kbeg + SG_KSTEP);
    const int nslices = (kend - kbeg + SG_BK - 1) / SG_BK;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int wm = warp / SG_WN * SG_WTM, wn = warp % SG_WN * SG_WTN;   // the warp's tile within the CTA's
    const unsigned short *Ah = reinterpret_cast<const unsigned short *>(A), *Bh = reinterpret_cast<const unsigned short *>(B);

    auto load = [&](int slice) {   // slice -> its stage
        unsigned short *s = sg_smem + slice % SG_STAGES * SG_STAGE_ELEMS;
        const int k0 = kbeg + slice * SG_BK;
        sg_load_slice<SG_BM, SG_M, SG_LDA, !SG_TA, SG_VA, SG_A_PITCH>(s, Ah, m0, k0, kend);
        sg_load_slice<SG_BN, SG_N, SG_LDB, SG_TB, SG_VB, SG_B_PITCH>(s + SG_A_ELEMS, Bh, n0, k0, kend);
    };
    float d[SG_FM][SG_FN][4];
#pragma unroll
    for (int i = 0; i < SG_FM; i++)
#pragma unroll
        for (int j = 0; j < SG_FN; j++) d[i][j][0] = d[i][j][1] = d[i][j][2] = d[i][j][3] = 0.f;

#pragma unroll
    for (int s = 0; s < SG_STAGES - 1; s++) {
        if (s < nslices) load(s);
        vmc_cp_async_commit();
    }
    for (int i = 0; i < nslices; i++) {
        vmc_cp_async_wait<SG_STAGES - 2>();   // slice i has landed (this thread's copies) ...
        __syncthreads();               // ... everyone's; and slice i-1's stage is free again
        if (i + SG_STAGES - 1 < nslices) load(i + SG_STAGES - 1);
        vmc_cp_async_commit();
        const unsigned short *sa = sg_smem + i % SG_STAGES * SG_STAGE_ELEMS, *sb = sa + SG_A_ELEMS;
#pragma unroll
        for (int kk = 0; kk < SG_BK; kk += 16) {
            unsigned a[SG_FM][4], b[SG_FN][2];
#pragma unroll
            for (int f = 0; f < SG_FM; f++) sg_frag_a(a[f], sa, wm + f * 16, kk);
#pragma unroll
            for (int f = 0; f < SG_FN; f++) sg_frag_b(b[f], sb, wn + f * 8, kk);
#pragma unroll
            for (int fm = 0; fm < SG_FM; fm++)
#pragma unroll
                for (int fn = 0; fn < SG_FN; fn++) vmc_mma_bf16(d[fm][fn], a[fm], b[fn]);
        }
    }
    vmc_cp_async_wait<0>();

    // This thread's fragment elements: (row wm + 16 fm + g + 8 h, column wn + 8 fn + 2 t + e) = d[fm][fn][2h + e].
#if SG_EV
    // Staged epilogue: the CTA's tile goes through shared memory (f32, [BM][BN + 4]) so that each warp then stores
    // whole row segments, SG_EV elements a lane, instead of a fragment's 8 rows x 16 bytes per instruction.
    if (SG_SPLIT == 1) {
        constexpr int SP = SG_BN + 4, CV = SG_BN / SG_EV;
        float *st = reinterpret_cast<float *>(sg_smem);
        __syncthreads();   // every warp is done with the stages
#pragma unroll
        for (int fm = 0; fm < SG_FM; fm++)
#pragma unroll
            for (int fn = 0; fn < SG_FN; fn++)
#pragma unroll
                for (int h = 0; h < 2; h++)
                    store_vec<2>(st + (wm + fm * 16 + g + h * 8) * SP + wn + fn * 8 + 2 * t, &d[fm][fn][2 * h]);
        __syncthreads();
        for (int i = threadIdx.x; i < SG_BM * CV; i += SG_THREADS) {
            const int r = i / CV, c = i % CV * SG_EV;
            if (m0 + r >= SG_M || n0 + c >= SG_N) continue;
            float v[SG_EV];
            load_vec<SG_EV>(st + r * SP + c, v);
            sg_store<SG_EV>(C, acc, m0 + r, n0 + c, v);
        }
        return;
    }
#endif
    if (SG_SPLIT == 1) {
#pragma unroll
        for (int fm = 0; fm < SG_FM; fm++)
#pragma unroll
            for (int fn = 0; fn < SG_FN; fn++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int r = m0 + wm + fm * 16 + g + h * 8, c = n0 + wn + fn * 8 + 2 * t;
                    if (r >= SG_M) continue;
                    if (SG_PAIRS) {
                        if (c < SG_N) sg_store<2>(C, acc, r, c, &d[fm][fn][2 * h]);
                    } else {
                        if (c < SG_N) sg_store<1>(C, acc, r, c, &d[fm][fn][2 * h]);
                        if (c + 1 < SG_N) sg_store<1>(C, acc, r, c + 1, &d[fm][fn][2 * h + 1]);
                    }
                }
        return;
    }
    // A K range of a split product: this CTA's partial sums to ws[split][M][N]; vmc_gemm_skinny_reduce adds them.
#pragma unroll
    for (int fm = 0; fm < SG_FM; fm++)
#pragma unroll
        for (int fn = 0; fn < SG_FN; fn++)
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const int r = m0 + wm + fm * 16 + g + q / 2 * 8, c = n0 + wn + fn * 8 + 2 * t + q % 2;
                if (r < SG_M && c < SG_N) ws[((size_t)blockIdx.z * SG_M + r) * SG_N + c] = d[fm][fn][q];
            }
}

#if SG_SPLIT > 1
// C = alpha (sum over the SG_SPLIT partials in split order) (+ acc): SG_RV consecutive elements per thread (4 when
// every row of ws, C and acc allows one aligned access); grid ceil(M N / (256 SG_RV)), block 256.
extern "C" __global__ void __launch_bounds__(256)
vmc_gemm_skinny_reduce(const float *__restrict__ ws, C_T *__restrict__ C, const C_T *__restrict__ acc) {
    vmc_grid_entry();
    constexpr size_t MN = (size_t)SG_M * SG_N;
    const size_t i = ((size_t)blockIdx.x * 256 + threadIdx.x) * SG_RV;
    if (i >= MN) return;
    float s[SG_RV], v[SG_RV];
#pragma unroll
    for (int e = 0; e < SG_RV; e++) s[e] = 0.f;
    for (int z = 0; z < SG_SPLIT; z++) {
        load_vec<SG_RV>(ws + z * MN + i, v);
#pragma unroll
        for (int e = 0; e < SG_RV; e++) s[e] += v[e];
    }
    sg_store<SG_RV>(C, acc, (int)(i / SG_N), (int)(i % SG_N), s);
}
#endif
