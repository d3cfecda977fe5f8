// attention.cuh — fused multi-head attention, forward and backward, one block per (head, batch).
//   s_ij = ATTN_SCALE (q_i . k_j) + mask[i S + j]   (mask additive, [L, S], may hold -inf)
//   P_ij = softmax_j(s_ij) (shifted by the row max; a row of all -inf gives P = 0)   o_i = sum_j P_ij v_j
//   dV_j = sum_i P_ij dO_i   dP_ij = dO_i . v_j   D_i = sum_j P_ij dP_ij   dS_ij = P_ij (dP_ij - D_i)
//   dQ_i = ATTN_SCALE sum_j dS_ij k_j   dK_j = ATTN_SCALE sum_i dS_ij q_i   (no mask gradient)
// The backward takes nothing from the forward: it recomputes s and P (exact softmax per row).
//
// Defines: ATTN_B, ATTN_L (query rows), ATTN_S (key rows), ATTN_H, ATTN_E (head dim), ATTN_SCALE (float literal);
// Q_T, K_T, V_T, DO_T, O_T, MASK_T (float or bf16); row maps Q_*, K_*, V_*, DO_* (template.c def_rows: element
// (b, t, c) of q is q[VMC_AT(Q, b, t) + c], head h's channels h E .. h E + E - 1); ATTN_FAST (1: tensor cores, only
// for bf16 q, k, v (and dout for the backward), E % 16 == 0, 16 <= E <= 128, L, S <= 256); ATTN_COPY_PARTS (default
// 0) and ATTN_F32_PARTS (default 7), bits 1 dq, 2 dk, 4 dv, as the scan backward's; ATTN_SMEM_LIMIT (default 232448,
// sm_90's opt-in maximum of dynamic shared memory per block; sm_80: 166912).
//
// Kernels (both grid (ATTN_H, ATTN_B), block (THREADS, 1, 1), dynamic shared memory SMEM bytes):
//   vmc_attn_fwd(const Q_T *q, const K_T *k, const V_T *v, const MASK_T *mask, O_T *o)   o [B, L, H E]
//   vmc_attn_bwd(const Q_T *q, const K_T *k, const V_T *v, const MASK_T *mask, const DO_T *dout, float *packed,
//                bf16 *copy)   packed f32 [dq B L H E | dk B S H E | dv B S H E]; copy the same layout in bf16 (NULL
//                when ATTN_COPY_PARTS is 0). Every element of the stored parts is written (no zeroing needed).
//
// ---- launch formulas (template.c computes these; ATTN_*_THREADS / ATTN_*_SMEM below are the same) -------------
//   LP = 16 ceil(L / 16), SP = 16 ceil(S / 16), EP = E + 8, SC = min(SP, ATTN_CHUNK (default 64)), CP = SC + 8
//   fast (ATTN_FAST 1):
//     forward : threads 32 min(LP / 16, 8)   smem 2 EP (LP + 2 SP) bytes
//     backward: threads 2 LP                 smem 4 EP (LP + SP) + 4 LP CP bytes; must be <= ATTN_SMEM_LIMIT
//               (static_assert): L = S = 128, E = 64: 110592; L = S = 256, E = 64: 221184; E = 128 fits up to
//               L = S = 160. The caller takes the scalar path where it does not fit.
//   scalar (ATTN_FAST 0):
//     forward : threads 128   smem 0
//     backward: threads 128   smem 12 L bytes (<= ATTN_SMEM_LIMIT: L <= 19370 on sm_90)
//   Above 48 KB the host raises CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES first.
// -----------------------------------------------------------------------------------------------------------------
//
// Fast path (mma.sync m16n8k16, bf16 operands, f32 accumulation; PTX ISA fragment layouts). Warp w owns query rows
// 16 w .. 16 w + 15 and keeps its 16 x SP score rows in registers (SP / 2 floats a thread): exact softmax there (row
// max and sum across the quad of lanes sharing a row), P rounded to bf16 straight from the accumulator fragments into
// A fragments (an accumulator pair (row g, cols 2t, 2t+1) is exactly an A register). K, V, Q (and dO) of the head are
// staged in shared memory by cp.async (attn_stage), rows padded by 8 elements (row pitch = 4 words mod 8: the 8 rows
// of an ldmatrix hit different banks) and zero-filled past L / S, so padded rows add nothing (and no NaN) to any
// product.
// Backward, per warp: P (registers), D_i from dP = dO V^T tile by tile (16 keys), then per chunk of SC keys a second
// pass recomputing dP, forming dS = P (dP - D), accumulating dQ (dS as A operand from the accumulators, K as B) and
// storing P and dS (bf16, [query][key]) in shared memory; after a barrier all warps split the chunk's key rows x
// channel groups and compute dV = P^T dO and dK = scale dS^T Q (ldmatrix .trans gives the transposed A operands).
// Chunks of at most 64 keys keep the P / dS buffers small: L = S = 256, E = 64 fits (216 KB; unchunked, 408 KB).
// Registers (ptxas, sm_90): L = S = 128, E = 64: backward 201, forward 104, no spills. Past L = 128 the backward's
// 2 LP threads cap a thread at 128 registers and P spills (correct, slower); the forward's warps take 2 row tiles.
// H100, B = 32, H = 8, L = S = 128, E = 64 (ARM-B), bf16 in, bf16 o, f32 + bf16 gradients: forward 14.5 us,
// backward 46.3 us (the scalar path: 2.3 and 8.3 ms).
// Rounding as bf16 autocast: q, k, v, dO bf16; s, softmax, D, dS in f32; P and dS rounded to bf16 as mma operands.
//
// Scalar path (any types, plain f32 arithmetic with IEEE exp and division: the fp32 parity runs and shapes the fast
// path does not take): 4 warps a block. A score s_ij is always one lane's serial dot product (the same sum in every
// phase). Forward: warp per query row; lanes over keys give the row max and sum (online, combined across lanes),
// then per 32 keys the lanes' P values go through a per-warp buffer and the lanes, now over channels, accumulate o.
// Backward: (A) warp per query row: max, sum, D_i into shared memory; barrier; (B) warp per key row: dK_j, dV_j,
// lanes over query rows for P, dS, then over channels to accumulate; (C) warp per query row: dQ_i likewise. No atomics.

#ifndef ATTN_COPY_PARTS
#define ATTN_COPY_PARTS 0
#endif
#ifndef ATTN_F32_PARTS
#define ATTN_F32_PARTS 7
#endif
#ifndef ATTN_SMEM_LIMIT
#define ATTN_SMEM_LIMIT 232448
#endif

#define ATTN_HE (ATTN_H * ATTN_E)                // channels of a row of q, o, dq, dk, dv
#define ATTN_LP ((ATTN_L + 15) / 16 * 16)         // rows padded to whole m16 / k16 tiles
#define ATTN_SP ((ATTN_S + 15) / 16 * 16)
#define ATTN_EP (ATTN_E + 8)                      // shared row pitch of Q, K, V, dO (bf16 elements)
#ifndef ATTN_CHUNK
#define ATTN_CHUNK 64                             // keys per backward chunk at most (a multiple of 16)
#endif
#define ATTN_SC (ATTN_SP < ATTN_CHUNK ? ATTN_SP : ATTN_CHUNK)   // keys per backward chunk
#define ATTN_CP (ATTN_SC + 8)                     // shared row pitch of the P and dS chunks
#define ATTN_NCH ((ATTN_SP + ATTN_SC - 1) / ATTN_SC)
#define ATTN_FWD_WARPS (ATTN_LP / 16 < 8 ? ATTN_LP / 16 : 8)   // a warp takes row tiles w, w + 8: at most 256 threads
#define ATTN_SCALAR_THREADS 128

#if ATTN_FAST
#define ATTN_FWD_THREADS (32 * ATTN_FWD_WARPS)
#define ATTN_BWD_THREADS (2 * ATTN_LP)
#define ATTN_FWD_SMEM (2 * ATTN_EP * (ATTN_LP + 2 * ATTN_SP))
#define ATTN_BWD_SMEM (4 * ATTN_EP * (ATTN_LP + ATTN_SP) + 4 * ATTN_LP * ATTN_CP)
#else
#define ATTN_FWD_THREADS ATTN_SCALAR_THREADS
#define ATTN_BWD_THREADS ATTN_SCALAR_THREADS
#define ATTN_FWD_SMEM 0
#define ATTN_BWD_SMEM (12 * ATTN_L)
#endif

#define ATTN_NEG_INF __uint_as_float(0xff800000u)

template <class T> struct AttnIsBf16 { static constexpr bool value = false; };
template <> struct AttnIsBf16<bf16> { static constexpr bool value = true; };

// Stores v[0..1] at element idx (even) of part `bit` (1 dq, 2 dk, 4 dv): f32 into packed, bf16 into copy, as the
// PARTS bits say.
template <int bit> static __device__ __forceinline__ void attn_put2(float *__restrict__ packed, bf16 *__restrict__ copy,
                                                                    size_t idx, const float *v) {
    if (ATTN_F32_PARTS & bit) store_vec<2>(packed + idx, v);
    if (ATTN_COPY_PARTS & bit) store_vec<2>(copy + idx, v);
}
template <int bit> static __device__ __forceinline__ void attn_put1(float *__restrict__ packed, bf16 *__restrict__ copy,
                                                                    size_t idx, float v) {
    if (ATTN_F32_PARTS & bit) packed[idx] = v;
    if (ATTN_COPY_PARTS & bit) copy[idx] = from_f32<bf16>(v);
}
#define ATTN_DK_BASE ((size_t)ATTN_B * ATTN_L * ATTN_HE)   // element offsets of dk and dv in packed / copy
#define ATTN_DV_BASE (ATTN_DK_BASE + (size_t)ATTN_B * ATTN_S * ATTN_HE)

// ================================================================================================ fast path
#if ATTN_FAST
static_assert(ATTN_E % 16 == 0 && ATTN_E >= 16 && ATTN_E <= 128, "attention fast path: E a multiple of 16, 16..128");
static_assert(ATTN_L <= 256 && ATTN_S <= 256, "attention fast path: L, S <= 256");
static_assert(AttnIsBf16<Q_T>::value && AttnIsBf16<K_T>::value && AttnIsBf16<V_T>::value,
              "attention fast path: bf16 q, k, v");

// The four ldmatrix.x4 address patterns (lane l: i = l % 8, j = l / 8), on a tile stored row-major with pitch P:
// A of rows m0.., k0.. stored [m][k]: matrix j = rows m0 + 8 (j % 2), cols k0 + 8 (j / 2).
static __device__ __forceinline__ const unsigned short *attn_at_a(const unsigned short *s, int P, int m0, int k0) {
    const int l = threadIdx.x & 31;
    return s + (m0 + (l & 7) + 8 * ((l >> 3) & 1)) * P + k0 + 8 * (l >> 4);
}
// A stored [k][m] (read .trans): matrix j = rows (k) k0 + 8 (j / 2), cols (m) m0 + 8 (j % 2).
[[maybe_unused]]   // (the backward's alone)
static __device__ __forceinline__ const unsigned short *attn_at_at(const unsigned short *s, int P, int m0, int k0) {
    const int l = threadIdx.x & 31;
    return s + (k0 + (l & 7) + 8 * (l >> 4)) * P + m0 + 8 * ((l >> 3) & 1);
}
// B of two n8 tiles n0.., n0+8.. stored [n][k] (regs 0-1: tile n0, 2-3: tile n0 + 8): matrix j = rows n0 + 8 (j / 2),
// cols k0 + 8 (j % 2).
static __device__ __forceinline__ const unsigned short *attn_at_bn(const unsigned short *s, int P, int n0, int k0) {
    const int l = threadIdx.x & 31;
    return s + (n0 + (l & 7) + 8 * (l >> 4)) * P + k0 + 8 * ((l >> 3) & 1);
}
// B of two n8 tiles stored [k][n] (read .trans): matrix j = rows (k) k0 + 8 (j % 2), cols (n) n0 + 8 (j / 2).
static __device__ __forceinline__ const unsigned short *attn_at_bk(const unsigned short *s, int P, int n0, int k0) {
    const int l = threadIdx.x & 31;
    return s + (k0 + (l & 7) + 8 * ((l >> 3) & 1)) * P + n0 + 8 * (l >> 4);
}

// d[0], d[1] (two n8 accumulator tiles: channels n0 .. n0 + 15) += a (16 rows x k16) times rows k0 .. k0 + 15 of a
// [k][n] shared tile with pitch P (read .trans), as P V, dS K and their like take it.
static __device__ __forceinline__ void attn_mma_kn(float (*d)[4], const unsigned *a, const unsigned short *s, int P,
                                                   int n0, int k0) {
    unsigned b[4];
    vmc_ldmatrix<4, true>(b, attn_at_bk(s, P, n0, k0));
    vmc_mma_bf16(d[0], a, b);
    vmc_mma_bf16(d[1], a, b + 2);
}

// Two floats as one bf16x2 register (lo in the lower half: the lower k of an A / B element pair).
static __device__ __forceinline__ unsigned attn_pack(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
#else
    return (unsigned)from_f32<bf16>(lo).x | (unsigned)from_f32<bf16>(hi).x << 16;
#endif
}
// The A fragment of 16 rows x keys 16 kt .. 16 kt + 15 from accumulator tiles x[2 kt] and x[2 kt + 1].
static __device__ __forceinline__ void attn_acc_to_a(unsigned *a, const float *lo, const float *hi) {
    a[0] = attn_pack(lo[0], lo[1]);
    a[1] = attn_pack(lo[2], lo[3]);
    a[2] = attn_pack(hi[0], hi[1]);
    a[3] = attn_pack(hi[2], hi[3]);
}

// Rows [0, n) of one input (row(t): its channel 0 for this batch and head) into s ([npad][ATTN_EP] bf16); rows
// n .. npad - 1 zero. Where the row map and the pointer allow (vec), 16-byte cp.async copies, in flight together
// with every other input's: the caller commits them and waits (vmc_cp_async_wait, then a barrier) before reading
// s. (Staged through registers one input after another, the forward and backward waited for memory once per input.)
// Else 2-byte loads, stored at once.
template <int NT, class RowPtr>
static __device__ __forceinline__ void attn_stage(unsigned short *s, int n, int npad, bool vec, RowPtr row) {
    constexpr int PER = ATTN_E / 8;   // 16-byte pieces a row
    for (int x = threadIdx.x; x < npad * PER; x += NT) {
        const int r = x / PER, c = x % PER * 8;
        unsigned short *dst = s + r * ATTN_EP + c;
        if (r < n && vec) {
            vmc_cp_async16(dst, row(r) + c);
            continue;
        }
        uint4 w = {0u, 0u, 0u, 0u};
        if (r < n) {
            const unsigned short *p = row(r) + c;
            unsigned e[4];
#pragma unroll
            for (int k = 0; k < 4; k++) e[k] = (unsigned)p[2 * k] | (unsigned)p[2 * k + 1] << 16;
            w = uint4{e[0], e[1], e[2], e[3]};
        }
        *reinterpret_cast<uint4 *>(dst) = w;
    }
}
#define ATTN_VEC(P, ptr) (P##_STRIDE % 8 == 0 && P##_OFF % 8 == 0 && (unsigned long long)(ptr) % 16 == 0)
#define ATTN_ROWS(P, ptr, b, h) \
    [&](int t) { return reinterpret_cast<const unsigned short *>(ptr) + VMC_AT(P, b, t) + (h) * ATTN_E; }

// Scores of query rows r0 .. r0 + 15 against all keys, scaled and masked: sc[n][e] = s(r0 + g + 8 (e / 2),
// 8 n + 2 t + e % 2); padded keys -inf (padded rows read no mask).
static __device__ __forceinline__ void attn_scores(float (&sc)[ATTN_SP / 8][4], const unsigned short *sQ,
                                                   const unsigned short *sK, const MASK_T *__restrict__ mask, int r0) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    unsigned qa[ATTN_E / 16][4];
#pragma unroll
    for (int ks = 0; ks < ATTN_E / 16; ks++) vmc_ldmatrix<4, false>(qa[ks], attn_at_a(sQ, ATTN_EP, r0, 16 * ks));
#pragma unroll
    for (int n2 = 0; n2 < ATTN_SP / 16; n2++) {
#pragma unroll
        for (int e = 0; e < 4; e++) sc[2 * n2][e] = sc[2 * n2 + 1][e] = 0.f;
#pragma unroll
        for (int ks = 0; ks < ATTN_E / 16; ks++) {
            unsigned kb[4];   // K [key][channel] is B (k = channel, n = key) stored [n][k]
            vmc_ldmatrix<4, false>(kb, attn_at_bn(sK, ATTN_EP, 16 * n2, 16 * ks));
            vmc_mma_bf16(sc[2 * n2], qa[ks], kb);
            vmc_mma_bf16(sc[2 * n2 + 1], qa[ks], kb + 2);
        }
    }
    // The mask: this lane's columns 8 n + 2 t, + 1 of its two rows, as one pair a load from the row's address at
    // constant offsets where S is even and the mask aligned for pairs. (A load and a 64-bit address an element took
    // more instructions than the products.)
    const bool pairs = ATTN_S % 2 == 0 && (unsigned long long)mask % (2 * sizeof(MASK_T)) == 0;
    auto apply = [&](auto pairs_tag) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int i = r0 + g + 8 * r;
            const MASK_T *mrow = mask + (size_t)(i < ATTN_L ? i : 0) * ATTN_S + 2 * t;   // (rows past L read none)
#pragma unroll
            for (int n = 0; n < ATTN_SP / 8; n++) {
                const int j = 8 * n + 2 * t;
                float m[2] = {0.f, 0.f};
                if (i < ATTN_L && j < ATTN_S) {
                    if constexpr (decltype(pairs_tag)::value) load_vec<2>(mrow + 8 * n, m);
                    else {
                        m[0] = to_f32(mrow[8 * n]);
                        if (j + 1 < ATTN_S) m[1] = to_f32(mrow[8 * n + 1]);
                    }
                }
#pragma unroll
                for (int e = 0; e < 2; e++)
                    sc[n][2 * r + e] = j + e < ATTN_S ? sc[n][2 * r + e] * (ATTN_SCALE) + m[e] : ATTN_NEG_INF;
            }
        }
    };
    if (pairs) apply(BoolTag<true>{});
    else apply(BoolTag<false>{});
}

// Scores -> P in place (rows r0 + g, r0 + g + 8 of this lane): shifted by the row max, normalised; a row of all
// -inf, and rows past L, give 0.
static __device__ __forceinline__ void attn_softmax(float (&sc)[ATTN_SP / 8][4], int r0) {
    const int g = (threadIdx.x & 31) >> 2;
    float mx[2] = {ATTN_NEG_INF, ATTN_NEG_INF}, sum[2] = {0.f, 0.f};
#pragma unroll
    for (int n = 0; n < ATTN_SP / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) mx[e >> 1] = fmaxf(mx[e >> 1], sc[n][e]);
#pragma unroll
    for (int r = 0; r < 2; r++) {   // the four lanes of a quad share a row
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        mx[r] = mx[r] == ATTN_NEG_INF ? 0.f : mx[r] * VMC_LOG2E;   // all -inf: exp gives 0, not NaN
    }
#pragma unroll
    for (int n = 0; n < ATTN_SP / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            sc[n][e] = exp2_ftz(fmaf(sc[n][e], VMC_LOG2E, -mx[e >> 1]));
            sum[e >> 1] += sc[n][e];
        }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 1);
        sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 2);
        sum[r] = r0 + g + 8 * r < ATTN_L && sum[r] > 0.f ? 1.f / sum[r] : 0.f;
    }
#pragma unroll
    for (int n = 0; n < ATTN_SP / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) sc[n][e] *= sum[e >> 1];
}

static __device__ __forceinline__ void attn_fwd_fast(const Q_T *__restrict__ q, const K_T *__restrict__ k,
                                                     const V_T *__restrict__ v, const MASK_T *__restrict__ mask,
                                                     O_T *__restrict__ o) {
    static_assert(ATTN_FWD_SMEM <= ATTN_SMEM_LIMIT, "attention forward: shared memory");
    VMC_DYN_SMEM(attn_smem, ATTN_FWD_SMEM);
    unsigned short *sQ = reinterpret_cast<unsigned short *>(attn_smem), *sK = sQ + ATTN_LP * ATTN_EP,
                   *sV = sK + ATTN_SP * ATTN_EP;
    const int h = blockIdx.x, b = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2,
              t = lane & 3;
    attn_stage<ATTN_FWD_THREADS>(sQ, ATTN_L, ATTN_LP, ATTN_VEC(Q, q), ATTN_ROWS(Q, q, b, h));
    attn_stage<ATTN_FWD_THREADS>(sK, ATTN_S, ATTN_SP, ATTN_VEC(K, k), ATTN_ROWS(K, k, b, h));
    attn_stage<ATTN_FWD_THREADS>(sV, ATTN_S, ATTN_SP, ATTN_VEC(V, v), ATTN_ROWS(V, v, b, h));
    vmc_cp_async_commit();
    vmc_cp_async_wait<0>();
    __syncthreads();

    for (int rt = warp; rt < ATTN_LP / 16; rt += ATTN_FWD_WARPS) {
        const int r0 = 16 * rt;
        float p[ATTN_SP / 8][4];
        attn_scores(p, sQ, sK, mask, r0);
        attn_softmax(p, r0);
        float acc[ATTN_E / 8][4];
#pragma unroll
        for (int n = 0; n < ATTN_E / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
#pragma unroll
        for (int kt = 0; kt < ATTN_SP / 16; kt++) {
            unsigned pa[4];
            attn_acc_to_a(pa, p[2 * kt], p[2 * kt + 1]);
#pragma unroll
            for (int n2 = 0; n2 < ATTN_E / 16; n2++)   // V [key][channel] is B (k = key, n = channel) stored [k][n]
                attn_mma_kn(&acc[2 * n2], pa, sV, ATTN_EP, 16 * n2, 16 * kt);
        }
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int i = r0 + g + 8 * r;
            if (i >= ATTN_L) continue;
            O_T *orow = o + ((size_t)b * ATTN_L + i) * ATTN_HE + h * ATTN_E + 2 * t;
#pragma unroll
            for (int n = 0; n < ATTN_E / 8; n++) store_vec<2>(orow + 8 * n, &acc[n][2 * r]);
        }
    }
}

// dO's A fragments stay in registers where they fit beside P and dQ (S = 128, E = 64: 16 registers), else each
// use reads them from shared memory.
#define ATTN_DO_REGS (ATTN_SP / 2 + 3 * ATTN_E / 4 <= 128)

template <class DT>
static __device__ __forceinline__ void attn_bwd_fast(const Q_T *__restrict__ q, const K_T *__restrict__ k,
                                                     const V_T *__restrict__ v, const MASK_T *__restrict__ mask,
                                                     const DT *__restrict__ dout, float *__restrict__ packed,
                                                     bf16 *__restrict__ copy) {
    static_assert(AttnIsBf16<DT>::value, "attention fast backward: bf16 dout");
    static_assert(ATTN_BWD_SMEM <= ATTN_SMEM_LIMIT, "attention fast backward: shared memory over the limit (the "
                                                    "caller should take the scalar path)");
    VMC_DYN_SMEM(attn_smem, ATTN_BWD_SMEM);
    unsigned short *sQ = reinterpret_cast<unsigned short *>(attn_smem), *sO = sQ + ATTN_LP * ATTN_EP,
                   *sK = sO + ATTN_LP * ATTN_EP, *sV = sK + ATTN_SP * ATTN_EP, *sP = sV + ATTN_SP * ATTN_EP,
                   *sS = sP + ATTN_LP * ATTN_CP;   // sP, sS: P and dS of the current key chunk, [query][key]
    constexpr int NW = ATTN_LP / 16, NG = ATTN_E % 32 == 0 ? 32 : 16;   // warps; channels of a dK / dV unit
    const int h = blockIdx.x, b = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2,
              t = lane & 3, r0 = 16 * warp;
    // Two groups of copies: Q and K first, for the scores; dO and V land while the scores and softmax run.
    attn_stage<ATTN_BWD_THREADS>(sQ, ATTN_L, ATTN_LP, ATTN_VEC(Q, q), ATTN_ROWS(Q, q, b, h));
    attn_stage<ATTN_BWD_THREADS>(sK, ATTN_S, ATTN_SP, ATTN_VEC(K, k), ATTN_ROWS(K, k, b, h));
    vmc_cp_async_commit();
    attn_stage<ATTN_BWD_THREADS>(sO, ATTN_L, ATTN_LP, ATTN_VEC(DO, dout), ATTN_ROWS(DO, dout, b, h));
    attn_stage<ATTN_BWD_THREADS>(sV, ATTN_S, ATTN_SP, ATTN_VEC(V, v), ATTN_ROWS(V, v, b, h));
    vmc_cp_async_commit();
    vmc_cp_async_wait<1>();
    __syncthreads();

    float p[ATTN_SP / 8][4];
    attn_scores(p, sQ, sK, mask, r0);
    attn_softmax(p, r0);
    vmc_cp_async_wait<0>();
    __syncthreads();

    unsigned oa[ATTN_DO_REGS ? ATTN_E / 16 : 1][4];
    if (ATTN_DO_REGS) {
#pragma unroll
        for (int ks = 0; ks < ATTN_E / 16; ks++)
            vmc_ldmatrix<4, false>(oa[ATTN_DO_REGS ? ks : 0], attn_at_a(sO, ATTN_EP, r0, 16 * ks));
    }
    // dP of the warp's rows x keys 16 kt .. 16 kt + 15 (dP = dO V^T: V [key][channel] is B stored [n][k])
    auto dp_tile = [&](float (&dp)[2][4], int kt) {
#pragma unroll
        for (int e = 0; e < 4; e++) dp[0][e] = dp[1][e] = 0.f;
#pragma unroll
        for (int ks = 0; ks < ATTN_E / 16; ks++) {
            unsigned a[4], vb[4];
            if (ATTN_DO_REGS) {
#pragma unroll
                for (int e = 0; e < 4; e++) a[e] = oa[ATTN_DO_REGS ? ks : 0][e];
            } else vmc_ldmatrix<4, false>(a, attn_at_a(sO, ATTN_EP, r0, 16 * ks));
            vmc_ldmatrix<4, false>(vb, attn_at_bn(sV, ATTN_EP, 16 * kt, 16 * ks));
            vmc_mma_bf16(dp[0], a, vb);
            vmc_mma_bf16(dp[1], a, vb + 2);
        }
    };

    float dsum[2] = {0.f, 0.f};   // D of rows r0 + g, r0 + g + 8
#pragma unroll
    for (int kt = 0; kt < ATTN_SP / 16; kt++) {
        float dp[2][4];
        dp_tile(dp, kt);
#pragma unroll
        for (int u = 0; u < 2; u++)
#pragma unroll
            for (int e = 0; e < 4; e++) dsum[e >> 1] = fmaf(p[2 * kt + u][e], dp[u][e], dsum[e >> 1]);
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        dsum[r] += __shfl_xor_sync(0xffffffffu, dsum[r], 1);
        dsum[r] += __shfl_xor_sync(0xffffffffu, dsum[r], 2);
    }

    float dq[ATTN_E / 8][4];
#pragma unroll
    for (int n = 0; n < ATTN_E / 8; n++) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f;
#pragma unroll
    for (int c = 0; c < ATTN_NCH; c++) {
        constexpr int CT = ATTN_SC / 16;   // key tiles a chunk
        // Second pass over the chunk's key tiles: dS, dQ += dS K, P and dS into shared memory.
#pragma unroll
        for (int kl = 0; kl < CT; kl++) {
            const int kt = c * CT + kl;
            if (kt >= ATTN_SP / 16) break;
            float dp[2][4];
            dp_tile(dp, kt);
#pragma unroll
            for (int u = 0; u < 2; u++)
#pragma unroll
                for (int e = 0; e < 4; e++) dp[u][e] = p[2 * kt + u][e] * (dp[u][e] - dsum[e >> 1]);
            unsigned pa[4], sa[4];
            attn_acc_to_a(pa, p[2 * kt], p[2 * kt + 1]);
            attn_acc_to_a(sa, dp[0], dp[1]);
            // A register j holds (row g + 8 (j % 2), keys 2t.. + 8 (j / 2)): one 32-bit store each
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int at = (r0 + g + 8 * (j & 1)) * ATTN_CP + 16 * kl + 8 * (j >> 1) + 2 * t;
                *reinterpret_cast<unsigned *>(sP + at) = pa[j];
                *reinterpret_cast<unsigned *>(sS + at) = sa[j];
            }
#pragma unroll
            for (int n2 = 0; n2 < ATTN_E / 16; n2++)   // K [key][channel] is B (k = key, n = channel) stored [k][n]
                attn_mma_kn(&dq[2 * n2], sa, sK, ATTN_EP, 16 * n2, 16 * kt);
        }
        __syncthreads();   // the chunk's P and dS complete

        // dV = P^T dO, dK = scale dS^T Q for the chunk's keys: units of (16 keys) x (NG channels) over the warps.
        const int NKT = (ATTN_SP - c * ATTN_SC < ATTN_SC ? ATTN_SP - c * ATTN_SC : ATTN_SC) / 16;   // key tiles
        for (int unit = warp; unit < NKT * (ATTN_E / NG); unit += NW) {
            const int mt = unit / (ATTN_E / NG), c0 = unit % (ATTN_E / NG) * NG;
            float dv[NG / 8][4], dk[NG / 8][4];
#pragma unroll
            for (int n = 0; n < NG / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) dv[n][e] = dk[n][e] = 0.f;
#pragma unroll 2
            for (int ks = 0; ks < ATTN_LP / 16; ks++) {   // over query rows
                unsigned pa[4], sa[4];   // P^T, dS^T (m = key, k = query) stored [k][m]
                vmc_ldmatrix<4, true>(pa, attn_at_at(sP, ATTN_CP, 16 * mt, 16 * ks));
                vmc_ldmatrix<4, true>(sa, attn_at_at(sS, ATTN_CP, 16 * mt, 16 * ks));
#pragma unroll
                for (int n2 = 0; n2 < NG / 16; n2++) {   // dO, Q [query][channel]: B (k = query, n = channel)
                    attn_mma_kn(&dv[2 * n2], pa, sO, ATTN_EP, c0 + 16 * n2, 16 * ks);
                    attn_mma_kn(&dk[2 * n2], sa, sQ, ATTN_EP, c0 + 16 * n2, 16 * ks);
                }
            }
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const int j = c * ATTN_SC + 16 * mt + g + 8 * r;
                if (j >= ATTN_S) continue;
                const size_t row = ((size_t)b * ATTN_S + j) * ATTN_HE + h * ATTN_E + c0 + 2 * t;
#pragma unroll
                for (int n = 0; n < NG / 8; n++) {
                    const float kv[2] = {dk[n][2 * r] * (ATTN_SCALE), dk[n][2 * r + 1] * (ATTN_SCALE)};
                    attn_put2<2>(packed, copy, ATTN_DK_BASE + row + 8 * n, kv);
                    attn_put2<4>(packed, copy, ATTN_DV_BASE + row + 8 * n, &dv[n][2 * r]);
                }
            }
        }
        if (c + 1 < ATTN_NCH) __syncthreads();   // before the next chunk overwrites sP, sS
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = r0 + g + 8 * r;
        if (i >= ATTN_L) continue;
        const size_t row = ((size_t)b * ATTN_L + i) * ATTN_HE + h * ATTN_E + 2 * t;
#pragma unroll
        for (int n = 0; n < ATTN_E / 8; n++) {
            const float qv[2] = {dq[n][2 * r] * (ATTN_SCALE), dq[n][2 * r + 1] * (ATTN_SCALE)};
            attn_put2<1>(packed, copy, row + 8 * n, qv);
        }
    }
}
#endif   // ATTN_FAST

// ================================================================================================ scalar path
// ([[maybe_unused]]: the fast path's instantiations reference none of these, and NVRTC would warn.)
#define ATTN_NWS (ATTN_SCALAR_THREADS / 32)
#define ATTN_CPL ((ATTN_E + 31) / 32)   // channels a lane: lane + 32 r

[[maybe_unused]]
static __device__ __forceinline__ float attn_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// a . b over the head's E channels by one lane, in channel order.
template <class A, class B>
static __device__ __forceinline__ float attn_dot(const A *__restrict__ a, const B *__restrict__ b) {
    float s = 0.f;
    for (int c = 0; c < ATTN_E; c++) s = fmaf(to_f32(a[c]), to_f32(b[c]), s);
    return s;
}
[[maybe_unused]]
static __device__ __forceinline__ float attn_score(const Q_T *qi, const K_T *kj, const MASK_T *__restrict__ mask, int i,
                                                   int j) {
    return attn_dot(qi, kj) * (ATTN_SCALE) + to_f32(mask[(size_t)i * ATTN_S + j]);
}
#define ATTN_QROW(i) (q + VMC_AT(Q, b, i) + h * ATTN_E)
#define ATTN_KROW(j) (k + VMC_AT(K, b, j) + h * ATTN_E)
#define ATTN_VROW(j) (v + VMC_AT(V, b, j) + h * ATTN_E)
#define ATTN_OROW(i) (dout + VMC_AT(DO, b, i) + h * ATTN_E)

// Row i's softmax shift m and sum l (every lane gets them): lanes over keys, an online max / sum each, combined.
// m = -inf: the row is all -inf (P = 0).
[[maybe_unused]]
static __device__ __forceinline__ void attn_row_stats(const Q_T *__restrict__ q, const K_T *__restrict__ k,
                                                      const MASK_T *__restrict__ mask, int b, int h, int i, float &m,
                                                      float &l) {
    const int lane = threadIdx.x & 31;
    const Q_T *qi = ATTN_QROW(i);
    float mm = ATTN_NEG_INF, ll = 0.f;
    for (int j = lane; j < ATTN_S; j += 32) {
        const float s = attn_score(qi, ATTN_KROW(j), mask, i, j);
        if (s > mm) { ll = ll * expf(mm - s) + 1.f; mm = s; }   // (mm = -inf: expf gives 0)
        else if (s != ATTN_NEG_INF) ll += expf(s - mm);
    }
    m = attn_warp_max(mm);
    l = warp_sum(mm == ATTN_NEG_INF ? 0.f : ll * expf(mm - m));
}
[[maybe_unused]]
static __device__ __forceinline__ float attn_p(float s, float m, float l) {
    return m == ATTN_NEG_INF ? 0.f : expf(s - m) / l;
}

[[maybe_unused]]
static __device__ __forceinline__ void attn_fwd_scalar(const Q_T *__restrict__ q, const K_T *__restrict__ k,
                                                       const V_T *__restrict__ v, const MASK_T *__restrict__ mask,
                                                       O_T *__restrict__ o) {
    __shared__ float buf[ATTN_NWS][32];   // a warp's P values of 32 keys
    const int h = blockIdx.x, b = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int i = warp; i < ATTN_L; i += ATTN_NWS) {
        float m, l;
        attn_row_stats(q, k, mask, b, h, i, m, l);
        const Q_T *qi = ATTN_QROW(i);
        float acc[ATTN_CPL];
#pragma unroll
        for (int r = 0; r < ATTN_CPL; r++) acc[r] = 0.f;
        for (int j0 = 0; j0 < ATTN_S; j0 += 32) {
            const int j = j0 + lane, n = min(32, ATTN_S - j0);
            buf[warp][lane] = j < ATTN_S ? attn_p(attn_score(qi, ATTN_KROW(j), mask, i, j), m, l) : 0.f;
            __syncwarp();
            for (int r = 0; r < n; r++) {
                const float pr = buf[warp][r];
                const V_T *vj = ATTN_VROW(j0 + r);
#pragma unroll
                for (int cc = 0; cc < ATTN_CPL; cc++)
                    if (lane + 32 * cc < ATTN_E) acc[cc] = fmaf(pr, to_f32(vj[lane + 32 * cc]), acc[cc]);
            }
            __syncwarp();
        }
        O_T *orow = o + ((size_t)b * ATTN_L + i) * ATTN_HE + h * ATTN_E;
#pragma unroll
        for (int cc = 0; cc < ATTN_CPL; cc++)
            if (lane + 32 * cc < ATTN_E) orow[lane + 32 * cc] = from_f32<O_T>(acc[cc]);
    }
}

template <class DT>
static __device__ __forceinline__ void attn_bwd_scalar(const Q_T *__restrict__ q, const K_T *__restrict__ k,
                                                       const V_T *__restrict__ v, const MASK_T *__restrict__ mask,
                                                       const DT *__restrict__ dout, float *__restrict__ packed,
                                                       bf16 *__restrict__ copy) {
    static_assert(12 * ATTN_L <= ATTN_SMEM_LIMIT, "attention scalar backward: 12 L bytes of shared memory");
    VMC_DYN_SMEM(attn_smem, 12 * ATTN_L);
    float *sm = reinterpret_cast<float *>(attn_smem), *sl = sm + ATTN_L, *sd = sl + ATTN_L;   // m_i, l_i, D_i
    __shared__ float buf[ATTN_NWS][2][32];   // a warp's P and dS values of 32 (query or key) rows
    const int h = blockIdx.x, b = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    // (A) per query row: m_i, l_i, D_i = sum_j P_ij dP_ij
    for (int i = warp; i < ATTN_L; i += ATTN_NWS) {
        float m, l;
        attn_row_stats(q, k, mask, b, h, i, m, l);
        const Q_T *qi = ATTN_QROW(i);
        const DT *oi = ATTN_OROW(i);
        float d = 0.f;
        for (int j = lane; j < ATTN_S; j += 32)
            d = fmaf(attn_p(attn_score(qi, ATTN_KROW(j), mask, i, j), m, l), attn_dot(oi, ATTN_VROW(j)), d);
        d = warp_sum(d);
        if (lane == 0) { sm[i] = m; sl[i] = l; sd[i] = d; }
    }
    __syncthreads();

    // (B) per key row j: dV_j = sum_i P_ij dO_i, dK_j = scale sum_i dS_ij q_i
    for (int j = warp; j < ATTN_S; j += ATTN_NWS) {
        const K_T *kj = ATTN_KROW(j);
        const V_T *vj = ATTN_VROW(j);
        float dv[ATTN_CPL], dk[ATTN_CPL];
#pragma unroll
        for (int r = 0; r < ATTN_CPL; r++) dv[r] = dk[r] = 0.f;
        for (int i0 = 0; i0 < ATTN_L; i0 += 32) {
            const int i = i0 + lane, n = min(32, ATTN_L - i0);
            float pv = 0.f, ds = 0.f;
            if (i < ATTN_L) {
                pv = attn_p(attn_score(ATTN_QROW(i), kj, mask, i, j), sm[i], sl[i]);
                ds = pv * (attn_dot(ATTN_OROW(i), vj) - sd[i]);
            }
            buf[warp][0][lane] = pv;
            buf[warp][1][lane] = ds;
            __syncwarp();
            for (int r = 0; r < n; r++) {
                const float pr = buf[warp][0][r], sr = buf[warp][1][r];
                const Q_T *qi = ATTN_QROW(i0 + r);
                const DT *oi = ATTN_OROW(i0 + r);
#pragma unroll
                for (int cc = 0; cc < ATTN_CPL; cc++)
                    if (lane + 32 * cc < ATTN_E) {
                        dv[cc] = fmaf(pr, to_f32(oi[lane + 32 * cc]), dv[cc]);
                        dk[cc] = fmaf(sr, to_f32(qi[lane + 32 * cc]), dk[cc]);
                    }
            }
            __syncwarp();
        }
        const size_t row = ((size_t)b * ATTN_S + j) * ATTN_HE + h * ATTN_E;
#pragma unroll
        for (int cc = 0; cc < ATTN_CPL; cc++)
            if (lane + 32 * cc < ATTN_E) {
                attn_put1<2>(packed, copy, ATTN_DK_BASE + row + lane + 32 * cc, dk[cc] * (ATTN_SCALE));
                attn_put1<4>(packed, copy, ATTN_DV_BASE + row + lane + 32 * cc, dv[cc]);
            }
    }

    // (C) per query row i: dQ_i = scale sum_j dS_ij k_j
    for (int i = warp; i < ATTN_L; i += ATTN_NWS) {
        const Q_T *qi = ATTN_QROW(i);
        const DT *oi = ATTN_OROW(i);
        const float m = sm[i], l = sl[i], d = sd[i];
        float dq[ATTN_CPL];
#pragma unroll
        for (int r = 0; r < ATTN_CPL; r++) dq[r] = 0.f;
        for (int j0 = 0; j0 < ATTN_S; j0 += 32) {
            const int j = j0 + lane, n = min(32, ATTN_S - j0);
            float ds = 0.f;
            if (j < ATTN_S) {
                const float pv = attn_p(attn_score(qi, ATTN_KROW(j), mask, i, j), m, l);
                ds = pv * (attn_dot(oi, ATTN_VROW(j)) - d);
            }
            buf[warp][0][lane] = ds;
            __syncwarp();
            for (int r = 0; r < n; r++) {
                const float sr = buf[warp][0][r];
                const K_T *kr = ATTN_KROW(j0 + r);
#pragma unroll
                for (int cc = 0; cc < ATTN_CPL; cc++)
                    if (lane + 32 * cc < ATTN_E) dq[cc] = fmaf(sr, to_f32(kr[lane + 32 * cc]), dq[cc]);
            }
            __syncwarp();
        }
        const size_t row = ((size_t)b * ATTN_L + i) * ATTN_HE + h * ATTN_E;
#pragma unroll
        for (int cc = 0; cc < ATTN_CPL; cc++)
            if (lane + 32 * cc < ATTN_E) attn_put1<1>(packed, copy, row + lane + 32 * cc, dq[cc] * (ATTN_SCALE));
    }
}

// ================================================================================================ kernels
extern "C" __global__ void __launch_bounds__(ATTN_FWD_THREADS)
vmc_attn_fwd(const Q_T *__restrict__ q, const K_T *__restrict__ k, const V_T *__restrict__ v,
             const MASK_T *__restrict__ mask, O_T *__restrict__ o) {
    vmc_grid_entry();
#if ATTN_FAST
    attn_fwd_fast(q, k, v, mask, o);
#else
    attn_fwd_scalar(q, k, v, mask, o);
#endif
}

// The forward's instantiation (template.c) names DO_T float even where ATTN_FAST is 1: the fast backward is a
// template taken only for a bf16 dout, so that instantiation still compiles (its backward is never launched).
template <class DT>
static __device__ __forceinline__ void attn_bwd(const Q_T *__restrict__ q, const K_T *__restrict__ k,
                                                const V_T *__restrict__ v, const MASK_T *__restrict__ mask,
                                                const DT *__restrict__ dout, float *__restrict__ packed,
                                                bf16 *__restrict__ copy) {
#if ATTN_FAST
    if constexpr (AttnIsBf16<DT>::value) attn_bwd_fast<DT>(q, k, v, mask, dout, packed, copy);
    else
#endif
        attn_bwd_scalar<DT>(q, k, v, mask, dout, packed, copy);
}

// One block an SM (201 registers at ARM-B's shapes, 254 before the mask was read in pairs). Tried: two (128
// registers, 492 bytes of spills), ARM-B pretraining 32.40 / 32.46 against 32.17 / 32.22 ms a step (H100, same run,
// 2026-12-05); at 201 the cap still spills 368 bytes.
extern "C" __global__ void __launch_bounds__(ATTN_BWD_THREADS)
vmc_attn_bwd(const Q_T *__restrict__ q, const K_T *__restrict__ k, const V_T *__restrict__ v,
             const MASK_T *__restrict__ mask, const DO_T *__restrict__ dout, float *__restrict__ packed,
             bf16 *__restrict__ copy) {
    vmc_grid_entry();
    attn_bwd<DO_T>(q, k, v, mask, dout, packed, copy);
}
