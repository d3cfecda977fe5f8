// hopper_gemm.cuh — C = alpha A B^T (+ acc) on Hopper's warpgroup MMA (wgmma, sm_90a only): bf16 A [M][HG_LDA] and
// B [N][HG_LDB], both K-contiguous (a Linear's forward: x W^T), f32 accumulation, C and acc [M][N] of C_T. The start
// of vmc's own Hopper GEMMs, whose point is what cuBLASLt cannot do: prologues and epilogues of vmc's fusions
// (README: Why the targets are not met).
// Needs HG_M, HG_N, HG_K (a multiple of 8), HG_LDA, HG_LDB (multiples of 8, as the operands' offsets), HG_ALPHA,
// HG_ACC (0/1), C_T, HG_PAIRS (C and acc stored two elements at a time: N even, 2-element aligned), HG_STAGES,
// HG_SMEM_BYTES. Grid (ceil(N/128), ceil(M/128)), block 256, dynamic shared memory HG_SMEM_BYTES.
// A CTA computes a 128 x 128 tile of C: its two warpgroups 64 rows each, one m64n128k16 wgmma per 16 of K reading
// both operands from shared memory. Every thread copies its share of the next 64-deep slices of A's and B's tiles by
// cp.async, HG_STAGES - 1 slices ahead, into the 128-byte swizzle the descriptors describe (common.cuh
// vmc_wgmma_desc): the 16-byte chunk c of row r at chunk c ^ (r % 8). Rows past M or N and columns past K are
// zero-filled. Under the CPU emulator the wgmma runs at issue (cuda_emu.h emu_wgmma_bf16) and the copies land at
// their wait.

#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "hopper_gemm.cuh uses wgmma: compile it for sm_90a (NVRTC_ARCH_SM90A)"
#endif

#define HG_BM 128
#define HG_BN 128
#define HG_BK 64
#define HG_THREADS 256
#define HG_TILE_BYTES (HG_BM * HG_BK * 2)   // one operand's slice of a stage (BM == BN)
#define HG_SMEM (HG_STAGES * 2 * HG_TILE_BYTES + 1024)   // + room to align the stages to 1024 bytes
static_assert(HG_SMEM == HG_SMEM_BYTES, "hopper GEMM: the launch's shared memory");
static_assert(HG_K % 8 == 0 && HG_LDA % 8 == 0 && HG_LDB % 8 == 0, "hopper GEMM: 16-byte rows of K");

// Rows r0 .. r0 + 127, columns k0 .. k0 + 63 of X (ROWS rows of LD) into the swizzled slice s: 1024 chunks of 16
// bytes, 4 a thread.
template <int ROWS, int LD>
static __device__ __forceinline__ void hg_load_slice(unsigned char *s, const bf16 *__restrict__ X, int r0, int k0) {
#pragma unroll
    for (int it = 0; it < HG_BM * 8 / HG_THREADS; it++) {
        const int j = threadIdx.x + it * HG_THREADS, r = j / 8, c = j % 8;
        const int row = r0 + r, k = k0 + c * 8;
        const bool ok = row < ROWS && k < HG_K;
        vmc_cp_async16_zfill(s + r * 128 + ((c ^ (r & 7)) << 4), ok ? X + (size_t)row * LD + k : X, ok);
    }
}

extern "C" __global__ void __launch_bounds__(HG_THREADS)
vmc_gemm_hopper(const bf16 *__restrict__ A, const bf16 *__restrict__ B, C_T *__restrict__ C, const C_T *__restrict__ acc) {
    vmc_grid_entry();
    VMC_DYN_SMEM(raw, HG_SMEM);
    const unsigned raw_addr = vmc_smem_addr(raw), pad = (0u - raw_addr) & 1023u;
    unsigned char *smem = raw + pad;   // stage s: A's slice at s * 2 * TILE, B's after it
    const unsigned sbase = raw_addr + pad;
    const int m0 = blockIdx.y * HG_BM, n0 = blockIdx.x * HG_BN, wg = threadIdx.x / 128;
    constexpr int KT = (HG_K + HG_BK - 1) / HG_BK;
    auto load_stage = [&](int kt) {
        unsigned char *s = smem + kt % HG_STAGES * 2 * HG_TILE_BYTES;
        hg_load_slice<HG_M, HG_LDA>(s, A, m0, kt * HG_BK);
        hg_load_slice<HG_N, HG_LDB>(s + HG_TILE_BYTES, B, n0, kt * HG_BK);
    };
#pragma unroll
    for (int kt = 0; kt < HG_STAGES - 1; kt++) {   // one commit group a slice, empty ones past K
        if (kt < KT) load_stage(kt);
        vmc_cp_async_commit();
    }
    float d[64];
#pragma unroll
    for (int i = 0; i < 64; i++) d[i] = 0.f;
    for (int kt = 0; kt < KT; kt++) {
        vmc_cp_async_wait<HG_STAGES - 2>();   // slice kt landed (this thread's copies)
        vmc_fence_async_shared();             // ... and visible to the wgmma's reads
        __syncthreads();                      // everyone's, and slice kt - 1's wgmmas are done everywhere
        if (kt + HG_STAGES - 1 < KT) load_stage(kt + HG_STAGES - 1);   // into slice kt - 1's stage
        vmc_cp_async_commit();
        const unsigned s = sbase + kt % HG_STAGES * 2 * HG_TILE_BYTES;
        const unsigned a = s + wg * 64 * 128, b = s + HG_TILE_BYTES;   // this warpgroup's 64 rows of A
        vmc_wgmma_fence();
        vmc_wgmma_hold(d, 64);
#pragma unroll
        for (int kk = 0; kk < HG_BK / 16; kk++)
            vmc_wgmma_m64n128k16(d, vmc_wgmma_desc(a + kk * 32), vmc_wgmma_desc(b + kk * 32), true, smem);
        vmc_wgmma_commit();
        vmc_wgmma_wait<0>();
        vmc_wgmma_hold(d, 64);
    }
    // d[4j + 2h + e]: row 16 w + l / 4 + 8 h of this warpgroup's 64, column 8 j + 2 (l % 4) + e (emu_wgmma_bf16)
    const int w = threadIdx.x % 128 / 32, l = threadIdx.x % 32;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int row = m0 + wg * 64 + w * 16 + l / 4 + 8 * h;
        if (row >= HG_M) continue;
#pragma unroll
        for (int j = 0; j < 16; j++) {
            const int col = n0 + 8 * j + 2 * (l % 4);
            const size_t at = (size_t)row * HG_N + col;
            float v[2] = {HG_ALPHA * d[4 * j + 2 * h], HG_ALPHA * d[4 * j + 2 * h + 1]}, a[2] = {0.f, 0.f};
            if (HG_PAIRS && col + 1 < HG_N) {   // one aligned pair
                if (HG_ACC) load_vec<2>(acc + at, a);
                v[0] += a[0]; v[1] += a[1];
                store_vec<2>(C + at, v);
            } else {
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    if (col + e >= HG_N) break;
                    if (HG_ACC) load_vec<1>(acc + at + e, a + e);
                    v[e] += a[e];
                    store_vec<1>(C + at + e, v + e);
                }
            }
        }
    }
}
