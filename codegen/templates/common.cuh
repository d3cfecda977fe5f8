// common.cuh — device helpers every vmc kernel may use: the bf16 storage type with exact conversions, vector
// loads of short rows, softplus/sigmoid as the reference computes them, and warp/block sums.
// Self-contained (no CUDA headers), so NVRTC needs no include path. Prepended to every instantiation.

#define VMC_LOG2E 1.4426950408889634f

struct __align__(2) bf16 { unsigned short x; };

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(bf16 v) { return __uint_as_float((unsigned)v.x << 16); }
__device__ __forceinline__ float to_f32(int v) { return (float)v; }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
// Round to nearest even, as torch does; NaN stays NaN (quiet bit set so truncation cannot make it Inf).
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float v) {
    bf16 r;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.x) : "f"(v));   // one instruction where the bit arithmetic costs eight
#else
    unsigned u = __float_as_uint(v);
    if ((u & 0x7fffffffu) > 0x7f800000u) { r.x = (unsigned short)((u >> 16) | 0x40u); return r; }
    u += 0x7fffu + ((u >> 16) & 1u);
    r.x = (unsigned short)(u >> 16);
#endif
    return r;
}

// dst[0..n) = row p[0..n) as floats, with 16-byte loads where the row allows (p must be 16-byte aligned then).
template <int n> __device__ __forceinline__ void load_row(const float *__restrict__ p, float *dst) {
    if constexpr (n % 4 == 0) {
#pragma unroll
        for (int i = 0; i < n / 4; i++) {
            float4 v = reinterpret_cast<const float4 *>(p)[i];
            dst[4 * i] = v.x; dst[4 * i + 1] = v.y; dst[4 * i + 2] = v.z; dst[4 * i + 3] = v.w;
        }
    } else {
#pragma unroll
        for (int i = 0; i < n; i++) dst[i] = p[i];
    }
}
template <int n> __device__ __forceinline__ void load_row(const bf16 *__restrict__ p, float *dst) {
    if constexpr (n % 8 == 0) {
#pragma unroll
        for (int i = 0; i < n / 8; i++) {
            uint4 v = reinterpret_cast<const uint4 *>(p)[i];
            unsigned w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                dst[8 * i + 2 * j] = __uint_as_float(w[j] << 16);
                dst[8 * i + 2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
            }
        }
    } else {
#pragma unroll
        for (int i = 0; i < n; i++) dst[i] = to_f32(p[i]);
    }
}

// V (1, 2 or 4; bf16 also 8) consecutive values at p as floats / from floats, as one access of 4*V (f32) or 2*V
// (bf16) bytes; p must be aligned to that size.
template <int V> __device__ __forceinline__ void load_vec(const float *__restrict__ p, float *v) {
    if constexpr (V == 4) {
        const float4 t = *reinterpret_cast<const float4 *>(p);
        v[0] = t.x; v[1] = t.y; v[2] = t.z; v[3] = t.w;
    } else if constexpr (V == 2) {
        const float2 t = *reinterpret_cast<const float2 *>(p);
        v[0] = t.x; v[1] = t.y;
    } else v[0] = *p;
}
// 8 bf16 values packed in 16 bytes (lowest first) as floats.
__device__ __forceinline__ void unpack_bf16x8(uint4 u, float *v) {
    const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        v[2 * i] = __uint_as_float(w[i] << 16);
        v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}
template <int V> __device__ __forceinline__ void load_vec(const bf16 *__restrict__ p, float *v) {
    if constexpr (V == 8) {
        unpack_bf16x8(*reinterpret_cast<const uint4 *>(p), v);
    } else if constexpr (V == 4) {
        const uint2 t = *reinterpret_cast<const uint2 *>(p);
        v[0] = __uint_as_float(t.x << 16); v[1] = __uint_as_float(t.x & 0xffff0000u);
        v[2] = __uint_as_float(t.y << 16); v[3] = __uint_as_float(t.y & 0xffff0000u);
    } else if constexpr (V == 2) {
        const unsigned t = *reinterpret_cast<const unsigned *>(p);
        v[0] = __uint_as_float(t << 16); v[1] = __uint_as_float(t & 0xffff0000u);
    } else v[0] = to_f32(*p);
}
template <int V> __device__ __forceinline__ void store_vec(float *__restrict__ p, const float *v) {
    if constexpr (V == 4) *reinterpret_cast<float4 *>(p) = float4{v[0], v[1], v[2], v[3]};
    else if constexpr (V == 2) *reinterpret_cast<float2 *>(p) = float2{v[0], v[1]};
    else *p = v[0];
}
template <int V> __device__ __forceinline__ void store_vec(bf16 *__restrict__ p, const float *v) {
    if constexpr (V == 8) {
        unsigned h[8];
#pragma unroll
        for (int i = 0; i < 8; i++) h[i] = from_f32<bf16>(v[i]).x;
        *reinterpret_cast<uint4 *>(p) = uint4{h[0] | h[1] << 16, h[2] | h[3] << 16, h[4] | h[5] << 16, h[6] | h[7] << 16};
    } else if constexpr (V == 4) {
        const unsigned h[4] = {from_f32<bf16>(v[0]).x, from_f32<bf16>(v[1]).x, from_f32<bf16>(v[2]).x, from_f32<bf16>(v[3]).x};
        *reinterpret_cast<uint2 *>(p) = uint2{h[0] | h[1] << 16, h[2] | h[3] << 16};
    } else if constexpr (V == 2) {
        *reinterpret_cast<unsigned *>(p) = (unsigned)from_f32<bf16>(v[0]).x | (unsigned)from_f32<bf16>(v[1]).x << 16;
    } else *p = from_f32<bf16>(v[0]);
}

// 1/x by the reciprocal unit alone (MUFU.RCP, 1 ulp), where an IEEE division would cost a dozen instructions.
__device__ __forceinline__ float rcp_approx(float x) {
#ifdef __CUDA_ARCH__
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
    return r;
#else
    return 1.f / x;
#endif
}

// 2^x for the state decay exp(delta*A) in (0, 1]: the ex2 unit alone (one MUFU.EX2), same 2-ulp accuracy as
// exp2f, which spends three more instructions keeping results below 2^-126 (they would contribute nothing here).
__device__ __forceinline__ float exp2_ftz(float x) {
#ifdef __CUDA_ARCH__
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
    return r;
#else
    return exp2f(x);
#endif
}

// 2^x for x <= 0 on the FMA pipe instead of the special-function unit (whose 16 results per SM and clock bound the
// scan forward): x = j + f, j the nearest integer (by adding 1.5 * 2^23, which leaves j in the low mantissa bits),
// f in [-1/2, 1/2]; 2^f by a degree-5 polynomial with 2^0 = 1 exactly (fitted to the relative error of 2^f there:
// 1.7e-7 at most with fp32 FMAs, as ex2.approx), then j added to its exponent: about 10 instructions. x is clamped
// at -125 (2^-125, about 2.4e-38, is nothing beside a state's other term) so that the exponent never underflows.
__device__ __forceinline__ float exp2_fma(float x) {
    x = fmaxf(x, -125.f);
    const float r = x + 12582912.f, f = x - (r - 12582912.f);
    float p = 1.326472731e-03f;
    p = fmaf(p, f, 9.671512991e-03f);
    p = fmaf(p, f, 5.550733581e-02f);
    p = fmaf(p, f, 2.402224243e-01f);
    p = fmaf(p, f, 6.931470037e-01f);
    p = fmaf(p, f, 1.f);
    return __uint_as_float(__float_as_uint(p) + (__float_as_uint(r) << 23));   // r's low bits hold j
}

// log1p(e) for e in [0, 1]: 2 atanh(s) with s = e/(2+e) <= 1/3, as 2s P(s^2), P fitted to atanh(r)/r on
// [0, 1/9] (relative error 4.5e-9; with the approximate reciprocal about 3e-7 in fp32).
__device__ __forceinline__ float log1p_unit(float e) {
    const float s = e * rcp_approx(2.f + e), w = s * s;
    const float p = fmaf(fmaf(fmaf(fmaf(1.400599778e-01f, w, 1.400090158e-01f), w, 2.001076341e-01f), w,
                              3.333320916e-01f), w, 1.f);
    return 2.f * s * p;
}

// softplus as torch and the Mamba kernel define it (x > 20 ? x : log1p(exp(x))), computed as
// max(x, 0) + log1p(exp(-|x|)): one EX2 and one RCP, no branch, where libm's expf + log1pf cost ~40 instructions.
// Relative error below 7e-7 for |x| < 10 (libm: 2e-7), from rounding x log2(e). Above 20 the second term is under
// half an ulp of x, so the result is x, as the reference's.
__device__ __forceinline__ float softplus_f(float x) {
    return fmaxf(x, 0.f) + log1p_unit(exp2_ftz(-fabsf(x) * VMC_LOG2E));
}
// 1/(1 + exp(-x)) by EX2 and RCP (exp(-x) = inf below x = -88 gives 0, as the reference).
__device__ __forceinline__ float sigmoid_f(float x) { return rcp_approx(1.f + exp2_ftz(-x * VMC_LOG2E)); }

// Asks L2 for the line holding p without waiting (no register, no scoreboard): data a later load will want.
__device__ __forceinline__ void prefetch_l2(const void *p) {
#ifdef __CUDA_ARCH__
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#else
    (void)p;
#endif
}
// The same for `bytes` at p (16-byte aligned, a multiple of 16) in one instruction (cp.async.bulk.prefetch, sm_90):
// whole rows of a tile.
__device__ __forceinline__ void prefetch_l2_bulk(const void *p, unsigned bytes) {
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
#else
    (void)p; (void)bytes;
#endif
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Sum over the block (blockDim.x*blockDim.y a multiple of 32, at most 1024); every thread gets the total.
// `scratch` holds 32 floats of shared memory; the call contains two __syncthreads.
__device__ __forceinline__ float block_sum(float v, float *scratch) {
    const int tid = threadIdx.x + threadIdx.y * blockDim.x, nwarps = (blockDim.x * blockDim.y) / 32;
    v = warp_sum(v);
    if ((tid & 31) == 0) scratch[tid >> 5] = v;
    __syncthreads();
    float t = (tid & 31) < nwarps ? scratch[tid & 31] : 0.f;
    t = warp_sum(t);
    __syncthreads();
    return t;
}

// Element offset of row t of batch b of template input P: template.c defines P_LROWS, P_ROW(t), P_STRIDE and
// P_OFF, so an input may be a row permutation or a channel slice of a larger buffer (no gather kernel).
#define VMC_AT(P, b, t) ((size_t)((long long)(b) * P##_LROWS + P##_ROW(t)) * P##_STRIDE + P##_OFF)
// The same offset split for a loop over rows: VMC_COL (batch b's first row, column d) is computed once per thread,
// VMC_ROWOFF (row t's offset within a batch) is warp-uniform. In 32 bits when P's buffer of NB batches allows:
// a row's access is then one add and one wide multiply-add, where 64-bit index arithmetic cost a dozen
// instructions per load (and 64-bit column pointers, registers the scan kernels do not have).
template <bool Fits32> struct VmcIndex { typedef size_t type; };
template <> struct VmcIndex<true> { typedef unsigned type; };
#define VMC_INDEX_T(ELEMS) VmcIndex<((unsigned long long)(ELEMS) < (1ull << 32))>::type
#define VMC_PINDEX_T(P, NB) VMC_INDEX_T((unsigned long long)(NB) * P##_LROWS * P##_STRIDE + P##_OFF)
#define VMC_COL(P, NB, b, d) ((VMC_PINDEX_T(P, NB))(b) * P##_LROWS * P##_STRIDE + P##_OFF + (VMC_PINDEX_T(P, NB))(d))
#define VMC_ROWOFF(P, NB, t) ((VMC_PINDEX_T(P, NB))(P##_ROW(t)) * P##_STRIDE)

// Tensor-core helpers of the templates (skinny_gemm.cuh, attention.cuh); under the CPU emulator (no __CUDA_ARCH__)
// cuda_emu.h's emu_mma_bf16_16816 / emu_ldmatrix.
// D += A B on one m16n8k16 fragment set (PTX ISA "mma.sync ... .m16n8k16" fragment layouts: lane = 4 g + t; A regs
// (g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..); B regs (k 2t..2t+1, n g), (k 2t+8.., n g); D (g, 2t..),
// (g+8, 2t..)).
static __device__ __forceinline__ void vmc_mma_bf16(float *d, const unsigned *a, const unsigned *b) {
#ifdef __CUDA_ARCH__
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    emu_mma_bf16_16816(d, a, b);
#endif
}

// The shared-space byte address of p (what wgmma descriptors hold); under the CPU emulator 0 for every p, so that
// descriptor addresses are offsets from the pointer the caller derives them from (which emu_wgmma_bf16 then takes).
static __device__ __forceinline__ unsigned vmc_smem_addr(const void *p) {
#ifdef __CUDA_ARCH__
    unsigned s;
    asm("{ .reg .u64 q; cvta.to.shared.u64 q, %1; cvt.u32.u64 %0, q; }" : "=r"(s) : "l"(p));
    return s;
#else
    (void)p;
    return 0;
#endif
}

// ldmatrix .x4 / .x2 (.trans): lane l names row l % 8 of 8x8 matrix l / 8 (16 bytes of b16, 16-byte aligned); lane
// 4g + t receives, of each matrix j, elements (g, 2t..2t+1) in r[j], or with TRANS elements (2t..2t+1, g).
template <int X, bool TRANS> static __device__ __forceinline__ void vmc_ldmatrix(unsigned *r, const unsigned short *p) {
#ifdef __CUDA_ARCH__
    const unsigned s = vmc_smem_addr(p);
    if constexpr (X == 4 && TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
    else if constexpr (X == 4)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
    else if constexpr (TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];" : "=r"(r[0]), "=r"(r[1]) : "r"(s));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];" : "=r"(r[0]), "=r"(r[1]) : "r"(s));
#else
    emu_ldmatrix(r, p, X, TRANS);
#endif
}

// A bool as a type: a choice a generic lambda makes at compile time (if constexpr on decltype(tag)::value).
template <bool B> struct BoolTag { static constexpr bool value = B; };

// cp.async (sm_80+): 16 bytes from global to shared memory without passing through registers, so a thread can have
// all of a tile's copies in flight at once (skinny_gemm.cuh's sg_cp_async adds zero-fill and smaller sizes). Copies go in commit groups; vmc_cp_async_wait<N>() returns once at most
// the N most recent of this thread's groups are still pending (a barrier then makes every thread's copies visible).
// Both addresses 16-byte aligned. Under the CPU emulator the copies happen at the wait (cuda_emu.h), so a read
// before it sees stale data and fails its test.
static __device__ __forceinline__ void vmc_cp_async16(void *smem, const void *gmem) {
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(vmc_smem_addr(smem)), "l"(gmem) : "memory");
#else
    emu_cp_async16(smem, gmem);
#endif
}
static __device__ __forceinline__ void vmc_cp_async_commit() {
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.commit_group;" ::: "memory");
#else
    emu_cp_async_commit();
#endif
}
template <int N> static __device__ __forceinline__ void vmc_cp_async_wait() {
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
#else
    emu_cp_async_wait(N);
#endif
}
// The same copy, or (ok false) 16 zero bytes written and nothing read (src may then be any valid address).
static __device__ __forceinline__ void vmc_cp_async16_zfill(void *smem, const void *gmem, bool ok) {
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(vmc_smem_addr(smem)), "l"(gmem), "r"(ok ? 16 : 0)
                 : "memory");
#else
    static const unsigned char zeros[16] = {0};
    emu_cp_async16(smem, ok ? gmem : zeros);
#endif
}
// The same with the destination's shared-space address given (vmc_smem_addr: one conversion for many copies);
// smem is that destination as a pointer, which only the CPU emulator uses.
static __device__ __forceinline__ void vmc_cp_async16_zfill_at(unsigned saddr, void *smem, const void *gmem, bool ok) {
#ifdef __CUDA_ARCH__
    (void)smem;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(saddr), "l"(gmem), "r"(ok ? 16 : 0) : "memory");
#else
    (void)saddr;
    vmc_cp_async16_zfill(smem, gmem, ok);
#endif
}


#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
// Hopper's warpgroup MMA (sm_90a; hopper_gemm.cuh). A K-major bf16 tile in the 128-byte swizzle: rows of 64 elements
// (128 bytes), groups of 8 rows 1024 bytes apart, the 16-byte chunk c of row r at chunk c ^ (r % 8) of its row, the
// tile's 1024-byte atoms aligned in the shared space. Its descriptor (PTX ISA "matrix descriptor": start address,
// leading byte offset (unused with this swizzle: 1), stride byte offset 1024, all >> 4; swizzle mode 1 in bits 62-63)
// at addr, the shared-space address of its first element (+ 32 bytes per k16 step).
static __device__ __forceinline__ unsigned long long vmc_wgmma_desc(unsigned addr) {
    return (unsigned long long)((addr >> 4) & 0x3fffu) | 1ull << 16 | (1024ull >> 4) << 32 | 1ull << 62;
}
// An MN-major tile in the same swizzle (wgmma's transpose bit set): rows of 64 elements of M (or N) for each k, 128
// bytes apart, groups of 8 k 1024 bytes apart (stride byte offset), blocks of 64 of M or N `lbo` bytes apart (leading
// byte offset; CUTLASS's canonical layout ((8,m),(8,k)):((1,LBO),(8,SBO)) in 16-byte units), + 2048 bytes per k16 step.
static __device__ __forceinline__ unsigned long long vmc_wgmma_desc_mn(unsigned addr, unsigned lbo) {
    return (unsigned long long)((addr >> 4) & 0x3fffu) | (unsigned long long)((lbo >> 4) & 0x3fffu) << 16 |
           (1024ull >> 4) << 32 | 1ull << 62;
}
// red.global.add of two adjacent f32 (8-byte aligned; sm_90's vector reduction): a partial sum into a zeroed output.
static __device__ __forceinline__ void vmc_red_add_f32x2(float *p, float a, float b) {
#ifdef __CUDA_ARCH__
    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};" ::"l"(p), "f"(a), "f"(b) : "memory");
#else
    atomicAdd(p, a);
    atomicAdd(p + 1, b);
#endif
}
// Order this thread's earlier shared-memory writes (plain stores, cp.async) before later wgmma reads (async proxy).
static __device__ __forceinline__ void vmc_fence_async_shared() {
#ifdef __CUDA_ARCH__
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
}
static __device__ __forceinline__ void vmc_wgmma_fence() {
#ifdef __CUDA_ARCH__
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#endif
}
static __device__ __forceinline__ void vmc_wgmma_commit() {
#ifdef __CUDA_ARCH__
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
#else
    emu_wgmma_commit();
#endif
}
template <int N> static __device__ __forceinline__ void vmc_wgmma_wait() {
#ifdef __CUDA_ARCH__
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
#endif
}
// Keeps the compiler from moving accesses to the accumulators across the asynchronous MMA (no instruction).
static __device__ __forceinline__ void vmc_wgmma_hold(float *d, int n) {
#ifdef __CUDA_ARCH__
    for (int i = 0; i < n; i++) asm volatile("" : "+f"(d[i])::"memory");
#endif
}
#define VMC_WG8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), \
                   "+f"(d[i + 6]), "+f"(d[i + 7])
#define VMC_WG_REGS32 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
                      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
// D (+)= A B^T of the warpgroup: A a 64 x 16 and B an N x 16 tile (descriptors da, db), K-major or where TA / TB
// MN-major (the transpose immediates), N 64, 128, 192 or 256; d: this thread's N / 2 accumulators (emu_wgmma_bf16
// gives their places). smem: the pointer the descriptor addresses count from under the emulator (unused on the GPU).
template <int N, bool TA = false, bool TB = false>
static __device__ __forceinline__ void vmc_wgmma(float *d, unsigned long long da, unsigned long long db, bool accumulate,
                                                 const unsigned char *smem) {
    static_assert(N == 64 || N == 128 || N == 192 || N == 256, "vmc_wgmma: n64, n128, n192 or n256");
#ifdef __CUDA_ARCH__
    (void)smem;
    if constexpr (N == 256)
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {" VMC_WG_REGS32 ", "
                     "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
                     "%128, %129, p, 1, 1, %131, %132;\n}"
                     : VMC_WG8(0), VMC_WG8(8), VMC_WG8(16), VMC_WG8(24), VMC_WG8(32), VMC_WG8(40), VMC_WG8(48),
                       VMC_WG8(56), VMC_WG8(64), VMC_WG8(72), VMC_WG8(80), VMC_WG8(88), VMC_WG8(96), VMC_WG8(104),
                       VMC_WG8(112), VMC_WG8(120)
                     : "l"(da), "l"(db), "r"((int)accumulate), "n"((int)TA), "n"((int)TB));
    else if constexpr (N == 192)
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %98, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n192k16.f32.bf16.bf16 {" VMC_WG_REGS32 ", "
                     "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                     "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
                     "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
                     "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95}, "
                     "%96, %97, p, 1, 1, %99, %100;\n}"
                     : VMC_WG8(0), VMC_WG8(8), VMC_WG8(16), VMC_WG8(24), VMC_WG8(32), VMC_WG8(40), VMC_WG8(48),
                       VMC_WG8(56), VMC_WG8(64), VMC_WG8(72), VMC_WG8(80), VMC_WG8(88)
                     : "l"(da), "l"(db), "r"((int)accumulate), "n"((int)TA), "n"((int)TB));
    else if constexpr (N == 128)
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" VMC_WG_REGS32 ", "
                     "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                     "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
                     "%64, %65, p, 1, 1, %67, %68;\n}"
                     : VMC_WG8(0), VMC_WG8(8), VMC_WG8(16), VMC_WG8(24), VMC_WG8(32), VMC_WG8(40), VMC_WG8(48),
                       VMC_WG8(56)
                     : "l"(da), "l"(db), "r"((int)accumulate), "n"((int)TA), "n"((int)TB));
    else
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" VMC_WG_REGS32 "}, "
                     "%32, %33, p, 1, 1, %35, %36;\n}"
                     : VMC_WG8(0), VMC_WG8(8), VMC_WG8(16), VMC_WG8(24)
                     : "l"(da), "l"(db), "r"((int)accumulate), "n"((int)TA), "n"((int)TB));
#else
    emu_wgmma_bf16(d, N, smem, da, db, accumulate, TA, TB);
#endif
}
#undef VMC_WG8
#undef VMC_WG_REGS32

// Hopper's tensor memory accelerator (TMA) and shared-memory barriers (mbarrier; PTX ISA "Parallel Synchronization
// and Communication Instructions: mbarrier" and "cp.async.bulk.tensor").
// VmcTmap: a tensor map, passed to a kernel by value (__grid_constant__): on the GPU the driver's opaque CUtensorMap
// (cuTensorMapEncodeTiled on the host: runtime/cuda_tma.c), under the CPU emulator its description (cuda_emu.h).
#ifdef VMC_EMU_GRID_ENTRY
typedef EmuTmap VmcTmap;
#else
struct __align__(64) VmcTmap { unsigned long long opaque[16]; };
#endif
// A barrier of `count` arrivals a phase (one thread initialises it; a __syncthreads after vmc_mbar_fence_init
// publishes it).
static __device__ __forceinline__ void vmc_mbar_init(unsigned long long *bar, unsigned count) {
#ifdef __CUDA_ARCH__
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(vmc_smem_addr(bar)), "r"(count) : "memory");
#else
    emu_mbar_init(bar, count);
#endif
}
static __device__ __forceinline__ void vmc_mbar_fence_init() {
#ifdef __CUDA_ARCH__
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
}
// This thread's arrival, announcing `bytes` of asynchronous copies that complete the phase too.
static __device__ __forceinline__ void vmc_mbar_expect_tx(unsigned long long *bar, unsigned bytes) {
#ifdef __CUDA_ARCH__
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(vmc_smem_addr(bar)), "r"(bytes)
                 : "memory");
#else
    emu_mbar_expect_tx(bar, bytes);
#endif
}
static __device__ __forceinline__ void vmc_mbar_arrive(unsigned long long *bar) {
#ifdef __CUDA_ARCH__
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(vmc_smem_addr(bar)) : "memory");
#else
    emu_mbar_arrive(bar);
#endif
}
// Waits until the phase of parity `parity` (the barrier's phases count 0, 1, 2, ... from its init) has completed:
// waiting on parity 1 before any phase completed returns at once (phase "-1" counts as done).
static __device__ __forceinline__ void vmc_mbar_wait(unsigned long long *bar, unsigned parity) {
#ifdef __CUDA_ARCH__
    asm volatile("{\n.reg .pred p;\nVMC_MBAR_WAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
                 "@!p bra VMC_MBAR_WAIT;\n}" ::"r"(vmc_smem_addr(bar)), "r"(parity) : "memory");
#else
    emu_mbar_wait(bar, parity);
#endif
}
// One box of a 2-D tensor map into shared memory at dst (1024-byte aligned for the 128-byte swizzle): columns c0 ..,
// rows r0 .. (elements past the tensor's edge arrive as zeros); completes the box's bytes on bar.
static __device__ __forceinline__ void vmc_tma_load_2d(void *dst, const VmcTmap *map, int c0, int r0,
                                                       unsigned long long *bar) {
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
                 ::"r"(vmc_smem_addr(dst)), "l"((unsigned long long)map), "r"(c0), "r"(r0), "r"(vmc_smem_addr(bar))
                 : "memory");
#else
    emu_tma_load_2d(dst, map, c0, r0, bar);
#endif
}
// Thread block clusters (sm_90): this CTA's rank in its cluster; every thread of the cluster meeting (the barriers
// initialised before it are then visible to all its CTAs); an arrival on the barrier at bar's offset in CTA rank; one
// box of a tensor map into dst's offset in every CTA of mask (bit r: rank r), its bytes completing on bar's offset
// in each (PTX ISA "cp.async.bulk.tensor" .multicast::cluster).
static __device__ __forceinline__ unsigned vmc_cluster_rank() {
#ifdef __CUDA_ARCH__
    unsigned r;
    asm("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
#else
    return emu_cluster_rank();
#endif
}
static __device__ __forceinline__ void vmc_cluster_sync() {
#ifdef __CUDA_ARCH__
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
#else
    emu_cluster_sync();
#endif
}
// (The arrival's default .release.cta semantics: with .release.cluster ptxas put a MEMBAR.ALL.GPU before each one,
// and the Hopper GEMM's clusters ran 30-40% slower than single CTAs; ncu, H100.)
static __device__ __forceinline__ void vmc_mbar_arrive_cluster(unsigned long long *bar, unsigned rank) {
#ifdef __CUDA_ARCH__
    asm volatile("{\n.reg .b32 ra;\nmapa.shared::cluster.u32 ra, %0, %1;\n"
                 "mbarrier.arrive.shared::cluster.b64 _, [ra];\n}" ::"r"(vmc_smem_addr(bar)), "r"(rank)
                 : "memory");
#else
    emu_mbar_arrive((unsigned long long *)emu_mapa(bar, rank));
#endif
}
static __device__ __forceinline__ void vmc_tma_load_2d_multicast(void *dst, const VmcTmap *map, int c0, int r0,
                                                                 unsigned long long *bar, unsigned short mask) {
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster"
                 " [%0], [%1, {%2, %3}], [%4], %5;"
                 ::"r"(vmc_smem_addr(dst)), "l"((unsigned long long)map), "r"(c0), "r"(r0), "r"(vmc_smem_addr(bar)),
                 "h"(mask) : "memory");
#else
    emu_tma_load_2d_multicast(dst, map, c0, r0, bar, mask);
#endif
}
// Named barrier ID (1..15; 0 is __syncthreads') of COUNT threads (a multiple of 32): the warps that take part.
// Constants, so that ptxas counts only the barriers used (a CTA's count limits how many share an SM).
template <int ID, int COUNT> static __device__ __forceinline__ void vmc_bar_sync() {
#ifdef __CUDA_ARCH__
    asm volatile("bar.sync %0, %1;" ::"n"(ID), "n"(COUNT) : "memory");
#else
    emu_bar_sync(ID, COUNT);
#endif
}
// Arrives on named barrier ID without waiting (the COUNT threads it completes with include others' bar.sync).
template <int ID, int COUNT> static __device__ __forceinline__ void vmc_bar_arrive() {
#ifdef __CUDA_ARCH__
    asm volatile("bar.arrive %0, %1;" ::"n"(ID), "n"(COUNT) : "memory");
#else
    emu_bar_arrive(ID, COUNT);
#endif
}
// One box from shared memory at src (1024-byte aligned, in the 128-byte swizzle) to a 2-D tensor map's columns c0 ..,
// rows r0 .. (what lies past the tensor's edge is not written); asynchronous, in this thread's bulk group, which
// vmc_tma_store_commit closes. vmc_tma_store_wait_read<N>: all but this thread's N latest groups have read their
// shared memory (it may be written again); vmc_tma_store_wait<0>: and written global memory.
static __device__ __forceinline__ void vmc_tma_store_2d(const VmcTmap *map, int c0, int r0, const void *src) {
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];"
                 ::"l"((unsigned long long)map), "r"(c0), "r"(r0), "r"(vmc_smem_addr(src)) : "memory");
#else
    emu_tma_store_2d(map, c0, r0, src);
#endif
}
static __device__ __forceinline__ void vmc_tma_store_commit() {
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
#endif
}
template <int N> static __device__ __forceinline__ void vmc_tma_store_wait_read() {
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(N) : "memory");
#endif
}
template <int N> static __device__ __forceinline__ void vmc_tma_store_wait() {
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.bulk.wait_group %0;" ::"n"(N) : "memory");
#endif
}
// A warpgroup's register budget moved between warpgroups (setmaxnreg; every warp of the warpgroup executes it).
template <int N> static __device__ __forceinline__ void vmc_setmaxnreg_inc() {
#ifdef __CUDA_ARCH__
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(N));
#endif
}
template <int N> static __device__ __forceinline__ void vmc_setmaxnreg_dec() {
#ifdef __CUDA_ARCH__
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(N));
#endif
}
#endif

// Dynamic shared memory of BYTES bytes, 16-byte aligned: `extern __shared__` on the GPU (the launch passes BYTES;
// above 48 KB the host first raises the kernel's CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES); under the CPU
// emulator (cuda_emu.h, no dynamic shared memory) a static array of that size for each CTA of a cluster, which
// emu_mapa reaches from the others.
#ifdef VMC_EMU_GRID_ENTRY
#define VMC_DYN_SMEM(name, BYTES)                                                                                  \
    static __align__(16) unsigned char name##_of_rank[EMU_CLUSTER_MAX][(BYTES)];                                  \
    unsigned char *const name = emu_dyn_smem(name##_of_rank[emu_cluster_rank()], (BYTES))
#else
#define VMC_DYN_SMEM(name, BYTES) extern __shared__ __align__(16) unsigned char name[]
#endif

#if defined(SCAN_CHUNK) && defined(SCAN_N)
#define SCAN_NCHUNK ((SCAN_L + SCAN_CHUNK - 1) / SCAN_CHUNK)
#ifndef SCAN_STATES
#define SCAN_STATES 0
#endif
// With SCAN_STATES the scan forward saves the state at the start of every chunk of SCAN_CHUNK rows but the first,
// and the backward starts from these instead of recomputing them: [B][NCHUNK - 1][N][D] f32 (a warp's 32 channels
// contiguous). Element of state n of channel d at the start of chunk k >= 1:
static __device__ __forceinline__ size_t scan_state_at(int b, int k, int n, int d) {
    return (((size_t)b * (SCAN_NCHUNK - 1) + (k - 1)) * SCAN_N + n) * SCAN_D + d;
}
#endif
