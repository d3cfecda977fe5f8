// hopper_gemm.cuh — C = alpha A B^T (+ acc) on Hopper's warpgroup MMA (wgmma, sm_90a only): bf16 A [M][HG_LDA] and
// B [N][HG_LDB], both K-contiguous (a Linear's forward: x W^T), f32 accumulation, C and acc [M][N] of C_T; and with
// HG_DUAL, SwiGLU's two input products and its gate in one kernel (vmc_gemm_swiglu, below). The start of vmc's own
// Hopper GEMMs, whose point is what cuBLASLt cannot do: prologues and epilogues of vmc's fusions (README: Why the
// targets are not met).
// Needs HG_M, HG_N, HG_K (a multiple of 8), HG_LDA, HG_LDB (multiples of 8, as the operands' offsets), HG_ALPHA,
// HG_ACC (0/1), C_T, HG_PAIRS (C and acc stored two elements at a time: N even, 2-element aligned), HG_STAGES,
// HG_SMEM_BYTES. Grid (ceil(N/HG_BN), ceil(M/128)), block 256, dynamic shared memory HG_SMEM_BYTES.
// A CTA computes a 128 x HG_BN tile of C: its two warpgroups 64 rows each, one wgmma per 16 of K and B operand
// reading both operands from shared memory. Every thread copies its share of the next 64-deep slices of the tiles by
// cp.async, HG_STAGES - 1 slices ahead, into the 128-byte swizzle the descriptors describe (common.cuh
// vmc_wgmma_desc): the 16-byte chunk c of row r at chunk c ^ (r % 8). Rows past M or N and columns past K are
// zero-filled. Under the CPU emulator the wgmma runs at issue (cuda_emu.h emu_wgmma_bf16) and the copies land at
// their wait.

#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "hopper_gemm.cuh uses wgmma: compile it for sm_90a (NVRTC_ARCH_SM90A)"
#endif

#ifndef HG_INFLIGHT
#define HG_INFLIGHT 0   // wgmma groups left in flight across a slice's end (their stage is refilled a slice later;
#endif                  // 1 is not yet run on a GPU: the emulator cannot see asynchronous hazards)
#define HG_AHEAD (HG_STAGES - 1 - HG_INFLIGHT)   // slices copied ahead of the one computed
#define HG_BM 128
#define HG_BK 64
#define HG_THREADS 256
#ifndef HG_DUAL
#define HG_DUAL 0
#endif
#define HG_NB (HG_DUAL ? 2 : 1)            // B operands
#ifndef HG_TILE_N
#define HG_TILE_N 128                      // columns a CTA computes: of C, or of both products together (dual)
#endif
#define HG_BN (HG_DUAL ? HG_TILE_N / 2 : HG_TILE_N)   // rows of each B tile
#define HG_A_BYTES (HG_BM * HG_BK * 2)     // a stage: A's 64-deep slice, then each B's
#define HG_B_BYTES (HG_BN * HG_BK * 2)
#define HG_STAGE_BYTES (HG_A_BYTES + HG_NB * HG_B_BYTES)
#define HG_SMEM (HG_STAGES * HG_STAGE_BYTES + 1024)   // + room to align the stages to 1024 bytes
static_assert(HG_AHEAD >= 1, "hopper GEMM: at least one slice copied ahead");
static_assert(HG_SMEM == HG_SMEM_BYTES, "hopper GEMM: the launch's shared memory");
static_assert(HG_K % 8 == 0 && HG_LDA % 8 == 0 && HG_LDB % 8 == 0, "hopper GEMM: 16-byte rows of K");

// This thread's share of an operand's 64-deep slices, rows r0 .. r0 + NR - 1 of X (ROWS rows of LD): 16-byte chunk
// c = tid % 8 of rows r0 + tid / 8 + 32 i, stored at row r's chunk c ^ (r % 8) (the swizzle), so that every slice
// costs one pointer step and NR / 32 copies at constant offsets. Rows past ROWS and columns past K are zero-filled
// (their sources stay at a valid address; nothing is read).
template <int NR, int ROWS, int LD> struct HgOperand {
    const bf16 *src;   // row r0 + tid / 8 (clamped into X), column c * 8
    unsigned dst;      // its offset in a slice
    unsigned rows_ok;  // bit i: row r0 + tid / 8 + 32 i < ROWS
    __device__ __forceinline__ HgOperand(const bf16 *__restrict__ X, int r0) {
        const int r = threadIdx.x / 8, c = threadIdx.x % 8;
        rows_ok = 0;
#pragma unroll
        for (int i = 0; i < NR / 32; i++) rows_ok |= (r0 + r + 32 * i < ROWS ? 1u : 0u) << i;
        src = X + (size_t)min(r0 + r, ROWS - 1) * LD + c * 8;
        dst = (unsigned)(r * 128 + ((c ^ (r & 7)) << 4));
    }
    // Slice kt into the slice at shared address saddr (s: the same as a pointer, for the emulator).
    __device__ __forceinline__ void load(unsigned saddr, unsigned char *s, int kt) const {
        const bool k_ok = kt * HG_BK + threadIdx.x % 8 * 8 < HG_K;
        const bf16 *p = src + (k_ok ? kt * HG_BK : 0);
#pragma unroll
        for (int i = 0; i < NR / 32; i++) {
            const bool ok = k_ok && (rows_ok >> i & 1u);
            vmc_cp_async16_zfill_at(saddr + dst + i * 4096, s + dst + i * 4096, ok ? p + (size_t)i * 32 * LD : p, ok);
        }
    }
};
static_assert(HG_THREADS == 256 && HG_BK == 64, "HgOperand: 8 chunks a row, 32 rows a pass");

// The CTA's products A B[b]^T over all of K into this thread's accumulators d[b] (rows m0 .., columns n0 ..): its
// warpgroup's 64 rows by HG_BN columns each (emu_wgmma_bf16 gives the places). raw: the dynamic shared memory.
static __device__ __forceinline__ void hg_mainloop(unsigned char *raw, const bf16 *__restrict__ A, const bf16 *const *B,
                                                   int m0, int n0, float (*d)[HG_BN / 2]) {
    const unsigned raw_addr = vmc_smem_addr(raw), pad = (0u - raw_addr) & 1023u;
    unsigned char *smem = raw + pad;
    const unsigned sbase = raw_addr + pad;
    const int wg = threadIdx.x / 128;
    constexpr int KT = (HG_K + HG_BK - 1) / HG_BK;
    const HgOperand<HG_BM, HG_M, HG_LDA> a_op(A, m0);
    const HgOperand<HG_BN, HG_N, HG_LDB> b_op[HG_NB] = {HgOperand<HG_BN, HG_N, HG_LDB>(B[0], n0)
#if HG_DUAL
                                                        , HgOperand<HG_BN, HG_N, HG_LDB>(B[1], n0)
#endif
    };
    auto load_stage = [&](int kt, int stage) {
        const unsigned off = stage * HG_STAGE_BYTES;
        a_op.load(sbase + off, smem + off, kt);
#pragma unroll
        for (int b = 0; b < HG_NB; b++)
            b_op[b].load(sbase + off + HG_A_BYTES + b * HG_B_BYTES, smem + off + HG_A_BYTES + b * HG_B_BYTES, kt);
    };
#pragma unroll
    for (int kt = 0; kt < HG_AHEAD; kt++) {   // one commit group a slice, empty ones past K
        if (kt < KT) load_stage(kt, kt);
        vmc_cp_async_commit();
    }
    int stage = 0, next = HG_AHEAD;   // slice kt's stage, and the stage slice kt + AHEAD goes to
#pragma unroll
    for (int b = 0; b < HG_NB; b++)
#pragma unroll
        for (int i = 0; i < HG_BN / 2; i++) d[b][i] = 0.f;
    for (int kt = 0; kt < KT; kt++) {
        vmc_cp_async_wait<HG_AHEAD - 1>();   // slice kt landed (this thread's copies)
        vmc_fence_async_shared();             // ... and visible to the wgmma's reads
        __syncthreads();                      // everyone's, and slice kt - 1's wgmmas are done everywhere
        // into the stage of slice kt - 1 - INFLIGHT, whose wgmmas every warpgroup has finished before the barrier
        if (kt + HG_AHEAD < KT) load_stage(kt + HG_AHEAD, next);
        vmc_cp_async_commit();
        const unsigned s = sbase + stage * HG_STAGE_BYTES, a = s + wg * 64 * 128;   // this warpgroup's rows
        stage = stage + 1 == HG_STAGES ? 0 : stage + 1;
        next = next + 1 == HG_STAGES ? 0 : next + 1;
        vmc_wgmma_fence();
#pragma unroll
        for (int b = 0; b < HG_NB; b++) vmc_wgmma_hold(d[b], HG_BN / 2);
#pragma unroll
        for (int kk = 0; kk < HG_BK / 16; kk++)
#pragma unroll
            for (int b = 0; b < HG_NB; b++)
                vmc_wgmma<HG_BN>(d[b], vmc_wgmma_desc(a + kk * 32),
                                 vmc_wgmma_desc(s + HG_A_BYTES + b * HG_B_BYTES + kk * 32), true, smem);
        vmc_wgmma_commit();
        vmc_wgmma_wait<HG_INFLIGHT>();
    }
    vmc_wgmma_wait<0>();
#pragma unroll
    for (int b = 0; b < HG_NB; b++) vmc_wgmma_hold(d[b], HG_BN / 2);
}

// Calls f(row, col, i) for this thread's accumulator places of the CTA's tile that lie inside C: accumulators i,
// i + 1 hold columns col, col + 1 of row (col + 1 may lie past N; f checks).
template <class F> static __device__ __forceinline__ void hg_for_each_pair(int m0, int n0, F f) {
    const int wg = threadIdx.x / 128, w = threadIdx.x % 128 / 32, l = threadIdx.x % 32;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int row = m0 + wg * 64 + w * 16 + l / 4 + 8 * h;
        if (row >= HG_M) continue;
#pragma unroll
        for (int j = 0; j < HG_BN / 8; j++) {
            const int col = n0 + 8 * j + 2 * (l % 4);
            if (col < HG_N) f(row, col, 4 * j + 2 * h);
        }
    }
}

#if !HG_DUAL
extern "C" __global__ void __launch_bounds__(HG_THREADS)
vmc_gemm_hopper(const bf16 *__restrict__ A, const bf16 *__restrict__ B, C_T *__restrict__ C, const C_T *__restrict__ acc) {
    vmc_grid_entry();
    VMC_DYN_SMEM(raw, HG_SMEM);
    const int m0 = blockIdx.y * HG_BM, n0 = blockIdx.x * HG_BN;
    float d[1][HG_BN / 2];
    const bf16 *Bs[1] = {B};
    hg_mainloop(raw, A, Bs, m0, n0, d);
    hg_for_each_pair(m0, n0, [&](int row, int col, int i) {
        const size_t at = (size_t)row * HG_N + col;
        float v[2] = {HG_ALPHA * d[0][i], HG_ALPHA * d[0][i + 1]}, a[2] = {0.f, 0.f};
        if (HG_PAIRS && col + 1 < HG_N) {   // one aligned pair
            if (HG_ACC) load_vec<2>(acc + at, a);
            v[0] += a[0]; v[1] += a[1];
            store_vec<2>(C + at, v);
            return;
        }
#pragma unroll
        for (int e = 0; e < 2; e++) {
            if (col + e >= HG_N) break;
            if (HG_ACC) load_vec<1>(acc + at + e, a + e);
            v[e] += a[e];
            store_vec<1>(C + at + e, v + e);
        }
    });
}
#else
// SwiGLU's input products in one kernel (HG_DUAL): H = silu(p1 + bias1) * (p2 + bias2) with p_b = A B_b^T rounded to
// bf16 first, as where each product is a bf16 GEMM output that a generated kernel finishes; P1, P2 (when not NULL)
// get p1, p2 for the backward. H, P1, P2 [M][N] bf16 (HG_PAIRS: pairs aligned); bias [N] f32. A CTA computes a
// 128 x 64 tile of both products (two m64n64k16 wgmmas a k16 step) from one staged slice of A.
extern "C" __global__ void __launch_bounds__(HG_THREADS)
vmc_gemm_swiglu(const bf16 *__restrict__ A, const bf16 *__restrict__ B1, const bf16 *__restrict__ B2,
                const float *__restrict__ bias1, const float *__restrict__ bias2, bf16 *__restrict__ H,
                bf16 *__restrict__ P1, bf16 *__restrict__ P2) {
    vmc_grid_entry();
    VMC_DYN_SMEM(raw, HG_SMEM);
    const int m0 = blockIdx.y * HG_BM, n0 = blockIdx.x * HG_BN;
    float d[2][HG_BN / 2];
    const bf16 *Bs[2] = {B1, B2};
    hg_mainloop(raw, A, Bs, m0, n0, d);
    hg_for_each_pair(m0, n0, [&](int row, int col, int i) {
        const size_t at = (size_t)row * HG_N + col;
        const int ne = col + 1 < HG_N ? 2 : 1;
        float p1[2], p2[2], h[2];
#pragma unroll
        for (int e = 0; e < 2; e++) {
            p1[e] = to_f32(from_f32<bf16>(d[0][i + e]));
            p2[e] = to_f32(from_f32<bf16>(d[1][i + e]));
            const float x = p1[e] + (e < ne ? bias1[col + e] : 0.f), y = p2[e] + (e < ne ? bias2[col + e] : 0.f);
            h[e] = x * __fdividef(1.0f, 1.0f + exp2_ftz(-x * VMC_LOG2E)) * y;
        }
        if (HG_PAIRS && ne == 2) {
            store_vec<2>(H + at, h);
            if (P1) store_vec<2>(P1 + at, p1);
            if (P2) store_vec<2>(P2 + at, p2);
            return;
        }
        for (int e = 0; e < ne; e++) {
            store_vec<1>(H + at + e, h + e);
            if (P1) store_vec<1>(P1 + at + e, p1 + e);
            if (P2) store_vec<1>(P2 + at + e, p2 + e);
        }
    });
}
#endif
