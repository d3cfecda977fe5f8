// hopper_gemm.cuh — C = alpha A B^T (+ acc) on Hopper's warpgroup MMA (wgmma) and tensor memory accelerator (TMA),
// sm_90a only: bf16 A [M][K] and B [N][K] (a Linear's forward: x W^T), or stored [K][M] (HG_A_MN) and [K][N]
// (HG_B_MN: the gradients, dy W and dy^T x), f32 accumulation, C and acc [M][N] of C_T;
// and with HG_DUAL, SwiGLU's two input products and its gate in one kernel (vmc_gemm_swiglu, below). The start of
// vmc's own Hopper GEMMs, whose point is what cuBLASLt cannot do: prologues and epilogues of vmc's fusions (README:
// Why the targets are not met).
// Needs HG_M, HG_N, HG_K, HG_ALPHA, HG_ACC (0/1), C_T, HG_PAIRS (C and acc stored two elements at a time: N even,
// 2-element aligned), HG_VEC (C and acc through shared memory, 4 elements at a time) or HG_STORE_TMA (C stored by
// TMA) or HG_STORE_REGS (C stored from registers), HG_STAGES, HG_TILE_N (128, 192: one product stored by TMA or from
// registers, or 256), HG_CTAS, HG_CLUSTER (1 or 2, below), HG_SMEM_BYTES; with HG_DUAL, HG_PRODUCTS (the products are
// outputs too); optional: HG_PINGPONG (the consumer warpgroups a tile each, in turn: hg_run), HG_SWIGLU_BWD and
// HG_BWD_AHEAD (below), HG_SPLITK (hg_for_each_work). A and B (and C with HG_STORE_TMA) come as tensor maps
// (common.cuh VmcTmap) of boxes 64 columns wide: HG_BM rows (A), HG_BN / HG_CLUSTER rows (B), 64 rows (C); an
// MN-major operand's boxes are 64 rows of K by 64 columns of M or N.
// Grid: a CTA a 128 x HG_BN tile of C (HG_UNITS x HG_CLUSTER CTAs), or fewer that take several in turn
// (persistent: their producer then loads the next tile's slices while the consumers store the last; a multiple of
// HG_CLUSTER); block HG_THREADS (384, or 288 with two CTAs an SM), dynamic shared memory HG_SMEM_BYTES.
// Warp-specialised: threads 0-255, two consumer warpgroups, compute rows 0-63 and 64-127 of the CTA's tile (or,
// ping-pong, a tile each); one thread of the producer after them copies the 64-deep slices of the CTA's tiles by
// TMA into a ring of HG_STAGES stages (the 128-byte swizzle the wgmma descriptors describe: common.cuh
// vmc_wgmma_desc; past M, N or K the TMA writes zeros). The consumers issue one wgmma per 16 of K and B operand. Each stage has two barriers: full (the
// producer's announced bytes have landed) and empty (both consumer warpgroups have finished the wgmmas that read it:
// a slice's wgmmas run while the next slice's are issued, and release their stage when they are done). Under the CPU
// emulator the TMA copies at issue, the wgmma runs at issue (cuda_emu.h) and the barriers block the block's pthreads.

#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "hopper_gemm.cuh uses wgmma: compile it for sm_90a (NVRTC_ARCH_SM90A)"
#endif

#define HG_BM 128
#define HG_BK 64
#ifndef HG_DUAL
#define HG_DUAL 0
#endif
#define HG_NB (HG_DUAL ? 2 : 1)            // B operands
#define HG_BN (HG_DUAL ? HG_TILE_N / 2 : HG_TILE_N)   // rows of each B tile
#define HG_A_BYTES (HG_BM * HG_BK * 2)     // a stage: A's 64-deep slice, then each B's
#define HG_B_BYTES (HG_BN * HG_BK * 2)
#define HG_STAGE_BYTES (HG_A_BYTES + HG_NB * HG_B_BYTES)
#ifndef HG_VEC
#define HG_VEC 0
#endif
#ifndef HG_STORE_TMA
#define HG_STORE_TMA 0
#endif
#ifndef HG_STORE_REGS
#define HG_STORE_REGS 0                    // a bf16 C without acc stored from registers, 16 bytes a lane (below)
#endif
#ifndef HG_PRODUCTS
#define HG_PRODUCTS 0                      // HG_DUAL: the two products are outputs too
#endif
#ifndef HG_SWIGLU_BWD
#define HG_SWIGLU_BWD 0                    // SwiGLU's backward in the epilogue (vmc_gemm_swiglu_bwd, below)
#endif
#ifndef HG_PINGPONG
#define HG_PINGPONG 0                      // each consumer warpgroup a whole tile, the two in turn (hg_run, below)
#endif
#define HG_MH (HG_PINGPONG ? 2 : 1)        // 64-row blocks of the A tile a consumer warpgroup multiplies
#ifndef HG_A_MN
#define HG_A_MN 0                          // A stored [K][M] (a weight gradient's A^T B): its slices MN-major
#endif
#ifndef HG_B_MN
#define HG_B_MN 0                          // B stored [K][N] (an input gradient's A B, and A^T B)
#endif
#ifndef HG_SPLITK
#define HG_SPLITK 1                        // K in this many parts, their products added into an f32 C (below)
#endif
#ifndef HG_BWD_AHEAD
#define HG_BWD_AHEAD 0                     // SwiGLU's backward: its epilogue's loads of P1, P2 issued this far ahead
#endif
#ifndef HG_BWD_RING
#define HG_BWD_RING 0                      // SwiGLU's backward: P1, P2 copied this many visits ahead by cp.async
#endif
#ifndef HG_KCAT
#define HG_KCAT 0                          // C = A B^T + A2 B2^T over one K: A and B give its first HG_KCAT, A2 and
#endif                                     // B2 the rest (vmc_gemm_hopper's last parameters; SwiGLU's dx = dy1 W1
                                           // + dy2 W2 in one product, program_kcat.c)
#define HG_PITCH (HG_BN + 8)               // the staged epilogue's f32 rows (hg_store_staged)
// the epilogue's buffer: hg_store_staged's, the bf16 tiles stored by TMA (hg_tma_tile), one or two a warpgroup, or
// SwiGLU's backward's ring of P1 and P2 (16 bytes of each a consumer thread and visit)
#define HG_EPI_BYTES (HG_STORE_TMA ? 2 * (HG_DUAL && HG_PRODUCTS ? 2 : 1) * 64 * HG_BN * 2 \
                      : HG_VEC ? 2 * 32 * HG_PITCH * 4 : HG_BWD_RING * 2 * 256 * 16)
// the stages, the epilogue's buffer, the barriers; + room to align the stages to 1024 bytes
#define HG_SMEM (HG_STAGES * HG_STAGE_BYTES + HG_EPI_BYTES + 1024 + 256)
#ifndef HG_CTAS
#define HG_CTAS 1                          // CTAs an SM (2: one's epilogue runs beside the other's wgmmas)
#endif
// Threads 0-255 are the two consumer warpgroups, then the producer: with one CTA an SM a warpgroup, which gives back
// all but 40 of the 168 registers ptxas allots each thread (65536 / 384) for the consumers to take (232: a CTA's pool
// is fixed at launch, so they take what it frees); with two a single warp (65536 / 576: 112 registers each, enough).
#define HG_PRODUCER (HG_CTAS == 1 ? 128 : 32)
#define HG_THREADS (256 + HG_PRODUCER)
static_assert(HG_SMEM == HG_SMEM_BYTES, "hopper GEMM: the launch's shared memory");
static_assert(HG_STAGES >= 2 && 16 * HG_STAGES <= 256, "hopper GEMM: stages");
static_assert(!HG_PINGPONG || (HG_CTAS == 1 && !HG_VEC && !HG_STORE_TMA && HG_SPLITK == 1),
              "hopper GEMM: ping-pong's epilogues");
// MN-major operands: one product (not SwiGLU's), each CTA of a cluster loading whole 64-column boxes of B
static_assert(!(HG_A_MN || HG_B_MN) || (!HG_DUAL && !HG_SWIGLU_BWD), "hopper GEMM: MN-major operands");
static_assert(!HG_B_MN || HG_BN % 64 == 0, "hopper GEMM: MN-major B's boxes");
// two products over one K: whole slices of each, one B operand
static_assert(!HG_KCAT || (HG_KCAT % HG_BK == 0 && HG_KCAT < HG_K && !HG_DUAL && !HG_SWIGLU_BWD),
              "hopper GEMM: a sum of two products");
// split K's parts of a tile are added into an f32 C (f32 reductions: C_T float) from the accumulators
static_assert(HG_SPLITK == 1 || (!HG_ACC && !HG_VEC && !HG_STORE_REGS && !HG_STORE_TMA && !HG_DUAL && !HG_SWIGLU_BWD),
              "hopper GEMM: split K's epilogue");

// HG_CLUSTER 2: clusters of two CTAs (along x) whose tiles share their columns: each CTA loads its own A and half of
// B, which the TMA multicasts to both (half the B traffic from L2), and a stage is free again once all four
// consumer warpgroups of the pair are done with it (each arrives on both CTAs' empty barriers).
#ifndef HG_CLUSTER
#define HG_CLUSTER 1
#endif
#define HG_TN ((HG_N + HG_BN - 1) / HG_BN)   // tiles across N
#define HG_MT ((HG_M + HG_BM - 1) / HG_BM)   // and across M
// A cluster's units of work: HG_CLUSTER tiles of the same columns, one a CTA (unit u: columns u % HG_TN, rows of
// tile u / HG_TN * HG_CLUSTER + rank; past M the TMA reads zeros and stores nothing); cluster c takes c, c + the
// clusters of the grid, ...
#define HG_UNITS (HG_TN * ((HG_MT + HG_CLUSTER - 1) / HG_CLUSTER))
#define HG_KT ((HG_K + HG_BK - 1) / HG_BK)   // 64-deep slices
static __device__ __forceinline__ unsigned hg_rank() { return HG_CLUSTER > 1 ? vmc_cluster_rank() : 0u; }
static __device__ __forceinline__ int hg_m0(int u) { return (u / HG_TN * HG_CLUSTER + (int)hg_rank()) * HG_BM; }
static __device__ __forceinline__ int hg_n0(int u) { return u % HG_TN * HG_BN; }
// A cluster's work: f(u, k0, k1) for each unit u and its slices k0 .. k1-1 that the cluster computes: items (unit,
// part of K) in part-major order, cluster c taking items c, c + the grid's clusters, ... With HG_SPLITK parts, few
// tiles and a long K (the weight gradients: 2048 x 768 is 24 units of two 128 x 256 tiles for 66 clusters) keep
// every SM busy, and the clusters at work at once read the same few ranges of K, so that the tiles that share an
// operand's slices find them in L2. (Stream-K's even shares of all slices, contiguous in (unit, slice) order, put
// each cluster at its own k: A and B read from DRAM about four times, 2048x768x16384 0.132 ms against cuBLASLt's
// 0.085 on the H100, session 24.) A tile's parts are added into C, zeroed before the launch.
template <class F> static __device__ __forceinline__ void hg_for_each_work(F f) {
    for (int i = blockIdx.x / HG_CLUSTER; i < HG_UNITS * HG_SPLITK; i += gridDim.x / HG_CLUSTER) {
        const long long part = i / HG_UNITS;
        f(i % HG_UNITS, (int)(part * HG_KT / HG_SPLITK), (int)((part + 1) * HG_KT / HG_SPLITK));
    }
}
#if HG_CLUSTER > 1
#define HG_CLUSTER_DIMS __cluster_dims__(HG_CLUSTER, 1, 1)
#else
#define HG_CLUSTER_DIMS
#endif

// The stage ring in shared memory (raw: the dynamic shared memory): HG_STAGES stages from the first 1024-byte
// boundary, then a full and an empty barrier each. A thread's place in the ring: stage s, and the parity of the
// ring's passes so far.
struct HgRing {
    unsigned char *smem;   // the stages (a pointer: for the TMA and the emulator's wgmma)
    unsigned sbase;        // their shared-space address (for the wgmma descriptors)
    unsigned long long *full, *empty;
    int s, phase;
    __device__ __forceinline__ explicit HgRing(unsigned char *raw) {
        const unsigned raw_addr = vmc_smem_addr(raw), pad = (0u - raw_addr) & 1023u;
        smem = raw + pad;
        sbase = raw_addr + pad;
        full = (unsigned long long *)(smem + HG_STAGES * HG_STAGE_BYTES + HG_EPI_BYTES);
        empty = full + HG_STAGES;
        s = phase = 0;
    }
    __device__ __forceinline__ void next() {
        if (++s == HG_STAGES) { s = 0; phase ^= 1; }
    }
};

// Barriers set up by thread 0, before any thread (of any CTA of the cluster) uses them.
static __device__ __forceinline__ void hg_ring_init(const HgRing &r) {
    if (threadIdx.x == 0) {
        for (int s = 0; s < HG_STAGES; s++) {
            vmc_mbar_init(&r.full[s], 1);                 // the producer's arrival with the stage's bytes
            // one arrival a consumer warpgroup of the cluster that reads the stage (ping-pong: one of each CTA)
            vmc_mbar_init(&r.empty[s], (HG_PINGPONG ? 1 : 2) * HG_CLUSTER);
        }
        vmc_mbar_fence_init();
    }
    if (HG_CLUSTER > 1) vmc_cluster_sync();
    else __syncthreads();
}

// The producer (one thread): every slice of A's and each B's tiles of this CTA's tiles, in order, into the ring
// (in a cluster, its half of each B tile, or its share of an MN-major B's boxes, into both CTAs' stages; the
// peer's part arrives from its producer). tas: A, and A2 with HG_KCAT; tb: each B, then B2 with HG_KCAT.
template <class P>
static __device__ __forceinline__ void hg_produce(HgRing r, const VmcTmap *const *tas, const VmcTmap *const *tbs,
                                                  P prefetch) {
    constexpr int HALF = HG_B_BYTES / HG_CLUSTER;   // the bytes of a B tile this CTA loads
    const unsigned rank = hg_rank();
    hg_for_each_work([&](int u, int k0, int k1) {
        const int m0 = hg_m0(u), n0 = hg_n0(u);
        prefetch(m0, n0);
        for (int k = k0; k < k1; k++, r.next()) {
            // slice k of the whole K: of A and B's, or past HG_KCAT's of A2 and B2's (kt: its slice there); the
            // maps chosen by selects, not by a computed index (that puts the arrays in local memory)
            constexpr int S2 = HG_KCAT > 0 ? 1 : 0;   // (A2's place in tas, B2's in tbs after the Bs)
            const bool second = HG_KCAT > 0 && k >= HG_KCAT / HG_BK;
            const int kt = second ? k - HG_KCAT / HG_BK : k;
            const VmcTmap *ta = second ? tas[S2] : tas[0];
            vmc_mbar_wait(&r.empty[r.s], r.phase ^ 1);   // (the first pass finds every stage free)
            unsigned char *st = r.smem + r.s * HG_STAGE_BYTES;
            vmc_mbar_expect_tx(&r.full[r.s], HG_STAGE_BYTES);
            if (HG_A_MN) {   // two boxes of 64 k by 64 columns of A^T: the warpgroups' rows 0-63 and 64-127
                vmc_tma_load_2d(st, ta, m0, kt * HG_BK, &r.full[r.s]);
                vmc_tma_load_2d(st + 8192, ta, m0 + 64, kt * HG_BK, &r.full[r.s]);
            } else vmc_tma_load_2d(st, ta, kt * HG_BK, m0, &r.full[r.s]);
#pragma unroll
            for (int b = 0; b < HG_NB; b++) {
                const VmcTmap *tb = second ? tbs[S2 * HG_NB + b] : tbs[b];
                unsigned char *bt = st + HG_A_BYTES + b * HG_B_BYTES;
                if (HG_B_MN) {   // boxes of 64 k by 64 columns, LBO (8192 bytes) apart; in a cluster box j
                                 // comes from CTA j % HG_CLUSTER (192 columns: 3 boxes, 2 and 1)
#pragma unroll
                    for (int j = 0; j < HG_BN / 64; j++) {
                        if (HG_CLUSTER == 1)
                            vmc_tma_load_2d(bt + j * 8192, tb, n0 + 64 * j, kt * HG_BK, &r.full[r.s]);
                        else if (j % HG_CLUSTER == (int)rank)
                            vmc_tma_load_2d_multicast(bt + j * 8192, tb, n0 + 64 * j, kt * HG_BK, &r.full[r.s],
                                                      (1u << HG_CLUSTER) - 1);
                    }
                } else if (HG_CLUSTER > 1)   // this CTA's half of a K-major B's rows
                    vmc_tma_load_2d_multicast(bt + rank * HALF, tb, kt * HG_BK, n0 + (int)rank * HG_BN / HG_CLUSTER,
                                              &r.full[r.s], (1u << HG_CLUSTER) - 1);
                else vmc_tma_load_2d(bt, tb, kt * HG_BK, n0, &r.full[r.s]);
            }
        }
    });
    // In a cluster, the CTA stays until every consumer of the pair has released each stage: the peer's consumers
    // arrive on this CTA's barriers, and it must not exit before they have.
    for (int s = 0; HG_CLUSTER > 1 && s < HG_STAGES; s++, r.next()) vmc_mbar_wait(&r.empty[r.s], r.phase ^ 1);
}

// A consumer warpgroup's products A B[b]^T of one tile over all of K into this thread's accumulators: d[mh * HG_NB
// + b] its 64 rows (block mh of the warpgroup's: its half of the tile, or with ping-pong both halves) by HG_BN
// columns of product b (emu_wgmma_bf16 gives the places). Each slice's wgmmas run while the next slice's are issued;
// a stage is released once the wgmmas that read it are done (the last one's at the end). issued() is called once the
// last slice has arrived and its wgmmas are issued. Slices k0 .. k1-1 (hg_for_each_work).
// A K-major 64-row block is 64 rows of 128 bytes, its k16 steps 32 bytes apart; an MN-major one (HG_A_MN, HG_B_MN) a
// box of 64 rows of k (8192 bytes: the same offset per 64-row block), its k16 steps 2048 bytes apart.
template <class I>
static __device__ __forceinline__ void hg_consume(HgRing &r, float (*d)[HG_BN / 2], int k0, int k1, I issued) {
#pragma unroll
    for (int b = 0; b < HG_NB * HG_MH; b++)
#pragma unroll
        for (int i = 0; i < HG_BN / 2; i++) d[b][i] = 0.f;
    const unsigned arow = HG_PINGPONG ? 0u : threadIdx.x / 128 * 64 * 128;   // this warpgroup's rows of the A tile
    const bool signal = threadIdx.x % 128 == 0;
    int prev = 0;
    for (int kt = k0; kt < k1; kt++, r.next()) {
        vmc_mbar_wait(&r.full[r.s], r.phase);
        const unsigned st = r.sbase + r.s * HG_STAGE_BYTES;
        vmc_wgmma_fence();
#pragma unroll
        for (int b = 0; b < HG_NB * HG_MH; b++) vmc_wgmma_hold(d[b], HG_BN / 2);
#pragma unroll
        for (int kk = 0; kk < HG_BK / 16; kk++)
#pragma unroll
            for (int mh = 0; mh < HG_MH; mh++)
#pragma unroll
                for (int b = 0; b < HG_NB; b++)
                {
                    const unsigned a = st + arow + mh * 64 * 128, bb = st + HG_A_BYTES + b * HG_B_BYTES;
                    const unsigned long long da = HG_A_MN ? vmc_wgmma_desc_mn(a + kk * 2048, 8192)
                                                          : vmc_wgmma_desc(a + kk * 32);
                    const unsigned long long db = HG_B_MN ? vmc_wgmma_desc_mn(bb + kk * 2048, 8192)
                                                          : vmc_wgmma_desc(bb + kk * 32);
                    vmc_wgmma<HG_BN, HG_A_MN, HG_B_MN>(d[mh * HG_NB + b], da, db, true, r.smem);
                }
        vmc_wgmma_commit();
        if (kt == k1 - 1) issued();
        vmc_wgmma_wait<1>();   // the previous slice's wgmmas are done: its stage is free (in both CTAs of a cluster)
        if (kt > k0 && signal) vmc_mbar_arrive(&r.empty[prev]);
        if (HG_CLUSTER > 1 && kt > k0 && signal) vmc_mbar_arrive_cluster(&r.empty[prev], hg_rank() ^ 1u);
        prev = r.s;
    }
    vmc_wgmma_wait<0>();
#pragma unroll
    for (int b = 0; b < HG_NB * HG_MH; b++) vmc_wgmma_hold(d[b], HG_BN / 2);
    if (signal) vmc_mbar_arrive(&r.empty[prev]);
    if (HG_CLUSTER > 1 && signal) vmc_mbar_arrive_cluster(&r.empty[prev], hg_rank() ^ 1u);
}

// The kernels' frame: the ring, the producer's loop (its warpgroup's registers given to the consumers), and for
// the consumers each of the CTA's tiles: f(r0, n0, d, epi) stores the 64-row block from row r0 of tile (m0, n0)
// from the accumulators d (d[b]: product b; epi: the epilogue's buffer, after the stages). The producer calls
// prefetch(m0, n0) as it starts each tile's slices (what the epilogue will read, into L2 meanwhile); the consumers
// call start(r0, n0, epi) before theirs (r0: the warpgroup's first row; copies for the epilogue issued while the
// tile is computed).
// Cooperative (the default): both warpgroups multiply each tile, rows 0-63 and 64-127. Ping-pong (HG_PINGPONG): each
// warpgroup a whole tile, the CTA's tiles taken in turn (warpgroup 0 the even ones), so that one's epilogue runs
// beside the other's wgmmas; a warpgroup starts a tile's slices only once the other has issued its last tile's last
// slice (named barriers 4 and 5): that keeps the tensor cores on one tile at a time, and each warpgroup's wait on a
// stage's full barrier within one pass of the ring of the producer (the parity tells only passes one apart).
template <class F, class P, class S>
static __device__ __forceinline__ void hg_run(unsigned char *raw, const VmcTmap *const *ta, const VmcTmap *const *tb,
                                              F f, P prefetch, S start) {
    HgRing r(raw);
    hg_ring_init(r);
    if (threadIdx.x >= 256) {
        if (HG_PRODUCER == 128) vmc_setmaxnreg_dec<40>();
        if (threadIdx.x == 256) hg_produce(r, ta, tb, prefetch);
        return;
    }
    if (HG_PRODUCER == 128) vmc_setmaxnreg_inc<232>();
    const int wg = threadIdx.x / 128;
    if (!HG_PINGPONG) {   // cooperative: both warpgroups multiply each of the cluster's work items
        hg_for_each_work([&](int u, int k0, int k1) {
            float d[HG_NB * HG_MH][HG_BN / 2];
            start(hg_m0(u) + 64 * wg, hg_n0(u), r.smem + HG_STAGES * HG_STAGE_BYTES);
            hg_consume(r, d, k0, k1, [] {});
            f(hg_m0(u) + 64 * wg, hg_n0(u), d, r.smem + HG_STAGES * HG_STAGE_BYTES);
        });
        return;
    }
    int turn = 0;   // the CTA's tiles so far (whole: no split of K with ping-pong, so slices 0 .. HG_KT-1, constants)
    hg_for_each_work([&](int u, int, int) {
        float d[HG_NB * HG_MH][HG_BN / 2];
        if (turn++ % 2 != wg) {   // the other warpgroup's tile: its slices pass by
            for (int kt = 0; kt < HG_KT; kt++) r.next();
            return;
        }
        start(hg_m0(u), hg_n0(u), r.smem + HG_STAGES * HG_STAGE_BYTES);
        if (turn > 1) {   // the other has issued its last slice
            if (wg == 0) vmc_bar_sync<5, 256>();
            else vmc_bar_sync<4, 256>();
        }
        const bool next = u + (int)gridDim.x / HG_CLUSTER < HG_UNITS;   // the other's tile after this one
        hg_consume(r, d, 0, HG_KT, [&] {
            if (!next) return;
            if (wg == 0) vmc_bar_arrive<4, 256>();
            else vmc_bar_arrive<5, 256>();
        });
#pragma unroll
        for (int mh = 0; mh < HG_MH; mh++)
            f(hg_m0(u) + 64 * mh, hg_n0(u), d + mh * HG_NB, r.smem + HG_STAGES * HG_STAGE_BYTES);
    });
}
template <class F, class P> static __device__ __forceinline__ void hg_run(unsigned char *raw, const VmcTmap *const *ta,
                                                                          const VmcTmap *const *tb, F f, P prefetch) {
    hg_run(raw, ta, tb, f, prefetch, [](int, int, unsigned char *) {});
}
template <class F> static __device__ __forceinline__ void hg_run(unsigned char *raw, const VmcTmap *const *ta,
                                                                 const VmcTmap *const *tb, F f) {
    hg_run(raw, ta, tb, f, [](int, int) {});
}

// Calls f(row, col, i) for this thread's accumulator places of the warpgroup's 64-row block (from row r0) that lie
// inside C: accumulators i, i + 1 hold columns col, col + 1 of row (col + 1 may lie past N; f checks).
template <class F> static __device__ __forceinline__ void hg_for_each_pair(int r0, int n0, F f) {
    const int w = threadIdx.x % 128 / 32, l = threadIdx.x % 32;   // (consumers)
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int row = r0 + w * 16 + l / 4 + 8 * h;
        if (row >= HG_M) continue;
#pragma unroll
        for (int j = 0; j < HG_BN / 8; j++) {
            const int col = n0 + 8 * j + 2 * (l % 4);
            if (col < HG_N) f(row, col, 4 * j + 2 * h);
        }
    }
}

#if !HG_DUAL
#if HG_VEC
// The consumers' tile through shared memory, so that C and acc are accessed in whole rows, 4 elements a thread
// (HG_VEC: N a multiple of 4, C and acc aligned to 4 elements), where the accumulators' places would give each warp
// 8 rows of 16 bytes (measured: 0.176 -> 0.138 ms at 25216x2048x768). Each warpgroup's 64 rows go in two halves
// (h: the accumulators' rows 8 h + 16 k + 0..7) through its own buffer of 32 f32 rows of HG_PITCH, beside the
// stages, which the producer is already refilling for the next tile (two half-warps' 8-byte stores of 4 rows each
// fall in distinct banks).
static __device__ __forceinline__ void hg_store_staged(unsigned char *epi, int r0, int n0, const float *d,
                                                       C_T *__restrict__ C, const C_T *__restrict__ acc) {
    const int wg = threadIdx.x / 128, t = threadIdx.x % 128, w = t / 32, l = t % 32;
    float *mine = (float *)epi + wg * 32 * HG_PITCH;
    auto wg_sync = [&] {
        if (wg == 0) vmc_bar_sync<2, 128>();
        else vmc_bar_sync<3, 128>();
    };
    constexpr int CH = HG_BN / 4, ROWS = 128 / CH;   // 4-column chunks a row, rows a pass
    const int c = t % CH, col = n0 + 4 * c;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        wg_sync();   // the warpgroup is done reading the buffer (the last half, or the last tile's)
#pragma unroll
        for (int j = 0; j < HG_BN / 8; j++) {
            const float2 v = {HG_ALPHA * d[4 * j + 2 * h], HG_ALPHA * d[4 * j + 2 * h + 1]};
            *reinterpret_cast<float2 *>(mine + (w * 8 + l / 4) * HG_PITCH + 8 * j + 2 * (l % 4)) = v;
        }
        wg_sync();   // this half's rows are in
#pragma unroll 4
        for (int r = t / CH; r < 32; r += ROWS) {
            const int row = r0 + r / 8 * 16 + 8 * h + r % 8;
            if (row >= HG_M || col >= HG_N) continue;
            const float4 q = *reinterpret_cast<const float4 *>(mine + r * HG_PITCH + 4 * c);
            float v[4] = {q.x, q.y, q.z, q.w}, a[4] = {0.f, 0.f, 0.f, 0.f};
            const size_t at = (size_t)row * HG_N + col;
            if (HG_ACC) load_vec<4>(acc + at, a);
#pragma unroll
            for (int e = 0; e < 4; e++) v[e] += a[e];
            store_vec<4>(C + at, v);
        }
    }
}
#endif
#endif

#if HG_STORE_REGS
static_assert(!HG_ACC && !HG_VEC && !HG_STORE_TMA && HG_BN % 32 == 0 && HG_N % 8 == 0,
              "hopper GEMM: stores from registers of a bf16 C without acc");
// One round of a 4 x 4 transpose within each quad of lanes (bit B of the lane and of the index): the lane keeps the
// two values whose index bit B equals its own and gets the partner's other two.
template <int B> static __device__ __forceinline__ void hg_quad_round(unsigned *v, bool hi) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
        if (i & B) continue;
        const unsigned give = hi ? v[i] : v[i | B];
        const unsigned got = __float_as_uint(__shfl_xor_sync(0xffffffffu, __uint_as_float(give), B));
        if (hi) v[i] = got;
        else v[i | B] = got;
    }
}
// The consumers' tile from registers (HG_STORE_REGS), in groups of 8 consecutive columns: value(i, col) is the
// element at accumulator place i, column col of the tile. A lane holds two columns of each 8 of its rows (wgmma's D
// places); each quad transposes its 4 x 4 blocks of bf16 pairs (two xor-shuffle rounds), so that a lane holds 8
// consecutive columns, then f(g, h, row, col, v) gets them: v[i] columns col + 2 i, col + 2 i + 1 of row, a quad's
// 64 contiguous bytes; group g (columns 32 g .. 32 g + 31 of the tile), h (rows 8 h below). Every lane calls f for
// every group, in and outside C (row < HG_M and col < HG_N inside: N a multiple of 8, so a group lies wholly in or
// out), so that f may shuffle.
template <class V, class F> static __device__ __forceinline__ void hg_regs_groups(int r0, int n0, V value, F f) {
    const int w = threadIdx.x % 128 / 32, l = threadIdx.x % 32, q = l % 4;
#pragma unroll
    for (int g = 0; g < HG_BN / 32; g++) {   // columns 32 g .. 32 g + 31 of the tile: 4 groups of 8
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int row = r0 + w * 16 + l / 4 + 8 * h;
            unsigned v[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {   // group 4 g + i, this lane's columns 2 q, 2 q + 1 of it
                const int j = 4 * g + i, c = 8 * j + 2 * q;
                v[i] = (unsigned)from_f32<bf16>(value(4 * j + 2 * h, c)).x |
                       (unsigned)from_f32<bf16>(value(4 * j + 2 * h + 1, c + 1)).x << 16;
            }
            hg_quad_round<1>(v, q & 1);
            hg_quad_round<2>(v, q & 2);   // now v[i]: columns 2 i, 2 i + 1 of group 4 g + q
            f(g, h, row, n0 + 32 * g + 8 * q, v);
        }
    }
}
// The tile stored from registers: one 16-byte store a lane and group. No shared memory, so the stages take it all
// (4 of 48 KB, against 3 beside the TMA stores' buffer).
template <class V> static __device__ __forceinline__ void hg_store_regs(int r0, int n0, V value, bf16 *__restrict__ C) {
    hg_regs_groups(r0, n0, value, [&](int, int, int row, int col, const unsigned *v) {
        if (row < HG_M && col < HG_N)
            *reinterpret_cast<uint4 *>(C + (size_t)row * HG_N + col) = uint4{v[0], v[1], v[2], v[3]};
    });
}
#endif

#if HG_STORE_TMA
static_assert(!HG_ACC && !HG_VEC && HG_BN % 64 == 0, "hopper GEMM: stores by TMA of bf16 C without acc");
// The consumers' tiles stored by TMA (HG_STORE_TMA; each output a tensor map of bf16 boxes 64 rows by 64 columns):
// each warpgroup writes its 64 rows as bf16 into a buffer of its own, HG_BN / 64 boxes in the 128-byte swizzle (the
// 4-byte writes of a warp's 8 rows fall in distinct banks), and one thread hands them to the TMA; the warpgroup goes
// on at once, and waits for those stores to have read a buffer only before writing it again.
static __device__ __forceinline__ void hg_wg_sync() {
    if (threadIdx.x < 128) vmc_bar_sync<2, 128>();
    else vmc_bar_sync<3, 128>();
}
// Before the warpgroup writes its buffers again: at most PENDING of its store groups may still be reading them.
template <int PENDING> static __device__ __forceinline__ void hg_tma_buffers_free() {
    if (threadIdx.x % 128 == 0) vmc_tma_store_wait_read<PENDING>();
    hg_wg_sync();
}
// This warpgroup's 64 x HG_BN block of output C at (r0, n0) through buf: value(i, col) is the element at accumulator
// place i, column col of the tile.
template <class V> static __device__ __forceinline__ void hg_tma_tile(unsigned char *buf, int r0, int n0, V value,
                                                                      const VmcTmap *C) {
    const int t = threadIdx.x % 128, w = t / 32, l = t % 32;
#pragma unroll
    for (int j = 0; j < HG_BN / 8; j++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const unsigned r = w * 16 + l / 4 + 8 * h, col = 8 * j + 2 * (l % 4);
            unsigned a = col / 64 * 8192 + r * 128 + col % 64 * 2;
            a ^= ((a >> 7) & 7) << 4;
            const float v[2] = {value(4 * j + 2 * h, col), value(4 * j + 2 * h + 1, col + 1)};
            store_vec<2>(reinterpret_cast<bf16 *>(buf + a), v);
        }
    vmc_fence_async_shared();   // the writes, visible to the TMA
    hg_wg_sync();
    if (t == 0) {
#pragma unroll
        for (int b = 0; b < HG_BN / 64; b++) vmc_tma_store_2d(C, n0 + 64 * b, r0, buf + b * 8192);
        vmc_tma_store_commit();
    }
}
#define HG_TMA_TILE_BYTES (64 * HG_BN * 2)   // a warpgroup's tile of one output
#endif

// (as the generated kernels' vmc_sigmoid, a division by __fdividef, not common.cuh's sigmoid_f: the one launches
// then compute what the launches they replace compute)
static __device__ __forceinline__ float hg_sigmoid(float x) {
    return __fdividef(1.0f, 1.0f + exp2_ftz(-x * VMC_LOG2E));
}
static __device__ __forceinline__ float hg_bf16(float v) { return to_f32(from_f32<bf16>(v)); }

#if !HG_DUAL && !HG_SWIGLU_BWD
// E elements of C at p: stored, or with K split in parts (HG_SPLITK) this part's added (f32 reductions into the
// zeroed C; T is float then: the branch for another C_T is discarded)
template <int E, class T> static __device__ __forceinline__ void hg_put(T *p, const float *v) {
    if constexpr (HG_SPLITK > 1) {
        if constexpr (E == 2) vmc_red_add_f32x2(p, v[0], v[1]);
        else atomicAdd(p, v[0]);
    } else {
        store_vec<E>(p, v);
    }
}
#if HG_STORE_TMA
#define HG_C_PARAM const __grid_constant__ VmcTmap C
#else
#define HG_C_PARAM C_T *__restrict__ C
#endif

#if HG_KCAT
#define HG_KCAT_PARAMS , const __grid_constant__ VmcTmap A2, const __grid_constant__ VmcTmap B2
#else
#define HG_KCAT_PARAMS
#endif

extern "C" __global__ void __launch_bounds__(HG_THREADS, HG_CTAS) HG_CLUSTER_DIMS
vmc_gemm_hopper(const __grid_constant__ VmcTmap A, const __grid_constant__ VmcTmap B, HG_C_PARAM,
                const C_T *__restrict__ acc HG_KCAT_PARAMS) {
    vmc_grid_entry();
    VMC_DYN_SMEM(raw, HG_SMEM);
#if HG_KCAT
    const VmcTmap *As[2] = {&A, &A2}, *Bs[2] = {&B, &B2};
#else
    const VmcTmap *As[1] = {&A}, *Bs[1] = {&B};
#endif
#if HG_STORE_TMA
    hg_run(raw, As, Bs, [&](int r0, int n0, float (*d)[HG_BN / 2], unsigned char *epi) {
        hg_tma_buffers_free<0>();
        hg_tma_tile(epi + threadIdx.x / 128 * HG_TMA_TILE_BYTES, r0, n0,
                    [&](int i, int) { return HG_ALPHA * d[0][i]; }, &C);
    });
    if (threadIdx.x % 128 == 0) vmc_tma_store_wait<0>();   // (the buffer stays until they have read it)
#else
    hg_run(raw, As, Bs, [&](int r0, int n0, float (*d)[HG_BN / 2], unsigned char *epi) {
#if HG_VEC
        hg_store_staged(epi, r0, n0, d[0], C, acc);
        return;
#elif HG_STORE_REGS
        hg_store_regs(r0, n0, [&](int i, int) { return HG_ALPHA * d[0][i]; }, C);
        return;
#endif
        hg_for_each_pair(r0, n0, [&](int row, int col, int i) {
            const size_t at = (size_t)row * HG_N + col;
            float v[2] = {HG_ALPHA * d[0][i], HG_ALPHA * d[0][i + 1]}, a[2] = {0.f, 0.f};
            if (HG_PAIRS && col + 1 < HG_N) {   // one aligned pair
                if (HG_ACC) load_vec<2>(acc + at, a);
                v[0] += a[0]; v[1] += a[1];
                hg_put<2>(C + at, v);
                return;
            }
#pragma unroll
            for (int e = 0; e < 2; e++) {
                if (col + e >= HG_N) break;
                if (HG_ACC) load_vec<1>(acc + at + e, a + e);
                v[e] += a[e];
                hg_put<1>(C + at + e, v + e);
            }
        });
    });
#endif
}
#elif HG_SWIGLU_BWD
static_assert(HG_STORE_REGS && !HG_ACC, "hopper GEMM: SwiGLU's backward stores from registers");
static_assert(HG_BWD_RING == 0 || (HG_BWD_AHEAD == 0 && HG_BWD_RING <= HG_MH * HG_BN / 16),
              "hopper GEMM: SwiGLU's backward's ring (at most a tile's visits ahead)");
// SwiGLU's backward in the epilogue of the product of its output's gradient (HG_SWIGLU_BWD): dh = A B^T rounded to
// bf16 (as where it is a bf16 GEMM output that a generated kernel finishes), H = silu(x) y with x = P1 + bias1,
// y = P2 + bias2 (P1, P2 the forward's bf16 products [M][N], bias f32 [N]): G1 = dh y silu'(x) and G2 = dh silu(x),
// bf16 [M][N], and their column sums (before rounding: the biases' gradients) added into S1 and S2 [N] (f32, zeroed
// first). The order of operations is the generated kernel's for the same graph.
// One round of a reduce-scatter over the lanes that differ in lane bit B: of the 2 HALF sums s, this lane keeps the
// half its bit selects, adding the partner's.
template <int B, int HALF> static __device__ __forceinline__ void hg_sum_round(const float *s, float *t) {
    const bool hi = threadIdx.x & B;
#pragma unroll
    for (int i = 0; i < HALF; i++) {
        const float give = hi ? s[i] : s[i + HALF], keep = hi ? s[i + HALF] : s[i];
        t[i] = keep + __shfl_xor_sync(0xffffffffu, give, B);
    }
}
// The warp's column sums of one group: s[16] (G1's 8 columns from col, then G2's) summed over the 8 lanes that hold
// those columns (lane bits 2-4) in three rounds that leave each lane 2 of the 16, which it adds into S1 or S2.
static __device__ __forceinline__ void hg_column_sums(const float *s, int col, float *S1, float *S2) {
    float t8[8], t4[4], t2[2];
    hg_sum_round<16, 8>(s, t8);
    hg_sum_round<8, 4>(t8, t4);
    hg_sum_round<4, 2>(t4, t2);
    const int l = threadIdx.x % 32, k = (l & 16 ? 8 : 0) + (l & 8 ? 4 : 0) + (l & 4 ? 2 : 0);
    float *S = k < 8 ? S1 : S2;
    if (col < HG_N) {
        atomicAdd(S + col + k % 8, t2[0]);
        atomicAdd(S + col + k % 8 + 1, t2[1]);
    }
}
// B for the product: the weight W as the step stores it, [K][N] (dh = dy W), copied transposed into the stream's
// GEMM workspace before each product (3 MB at ARM-B's 768 x 2048): 32 x 32 tiles through shared memory, grid
// (N / 32, K / 32) rounded up, 256 threads.
extern "C" __global__ void __launch_bounds__(256)
vmc_transpose_bf16(const bf16 *__restrict__ W, bf16 *__restrict__ WT) {
    vmc_grid_entry();
    __shared__ unsigned short tile[32][33];
    const int l = threadIdx.x % 32, n0 = blockIdx.x * 32, k0 = blockIdx.y * 32;
    for (int i = threadIdx.x / 32; i < 32; i += 8)
        if (k0 + i < HG_K && n0 + l < HG_N) tile[i][l] = W[(size_t)(k0 + i) * HG_N + n0 + l].x;
    __syncthreads();
    for (int i = threadIdx.x / 32; i < 32; i += 8)
        if (n0 + i < HG_N && k0 + l < HG_K) WT[(size_t)(n0 + i) * HG_K + k0 + l].x = tile[l][i];
}
extern "C" __global__ void __launch_bounds__(HG_THREADS, HG_CTAS) HG_CLUSTER_DIMS
vmc_gemm_swiglu_bwd(const __grid_constant__ VmcTmap A, const __grid_constant__ VmcTmap B, const bf16 *__restrict__ P1,
                    const bf16 *__restrict__ P2, const float *__restrict__ bias1, const float *__restrict__ bias2,
                    bf16 *__restrict__ G1, bf16 *__restrict__ G2, float *__restrict__ S1, float *__restrict__ S2) {
    vmc_grid_entry();
    VMC_DYN_SMEM(raw, HG_SMEM);
    const VmcTmap *As[1] = {&A}, *Bs[1] = {&B};
    // This lane's rows and columns of P1 and P2 in the order hg_regs_groups visits them (it = 2 g + h)
    constexpr int VISITS = HG_BN / 16, RING = HG_BWD_RING > 0 ? HG_BWD_RING : 1;
    auto place = [](int r0, int n0, int it, int &row, int &col) {
        row = r0 + threadIdx.x % 128 / 32 * 16 + threadIdx.x % 32 / 4 + 8 * (it % 2);
        col = n0 + 8 * (threadIdx.x % 4) + 32 * (it / 2);
        return it < VISITS && row < HG_M && col < HG_N;
    };
    // With HG_BWD_RING, each consumer thread's 16 bytes of P1 and P2 for visit v of its tile are copied by cp.async
    // into slot v % HG_BWD_RING of its own (epi: [slot][P1, P2][thread] of 16 bytes), HG_BWD_RING visits ahead, the
    // first ones before the tile's slices are computed: no registers wait on them, and one commit group a visit
    // (empty past the tile) keeps the wait for the oldest one exact. A tile's visits: its warpgroup's 64-row block's
    // (cooperative), or with ping-pong both blocks' in turn (v = block x VISITS + it; rb: the tile's first row).
    auto slot = [](unsigned char *epi, int v, int which) {
        return reinterpret_cast<uint4 *>(epi) + ((v % RING) * 2 + which) * 256 + threadIdx.x;
    };
    auto copy_ahead = [&](unsigned char *epi, int rb, int n0, int v) {
        int row, col;
        if (v < HG_MH * VISITS && place(rb + 64 * (v / VISITS), n0, v % VISITS, row, col)) {
            const size_t at = (size_t)row * HG_N + col;
            vmc_cp_async16(slot(epi, v, 0), P1 + at);
            vmc_cp_async16(slot(epi, v, 1), P2 + at);
        }
        vmc_cp_async_commit();
    };
    hg_run(raw, As, Bs, [&](int r0, int n0, float (*d)[HG_BN / 2], unsigned char *epi) {
        // Without the ring, loaded HG_BWD_AHEAD visits ahead of their use into registers, so that each lane keeps
        // that many 16-byte loads of each in flight instead of one (the loads' latency is the epilogue's, which
        // nothing else hides).
        constexpr int AHEAD = HG_BWD_AHEAD > 0 ? HG_BWD_AHEAD : 1;
        uint4 q1[AHEAD], q2[AHEAD];
        auto fetch = [&](int it) {
            int row, col;
            if (!place(r0, n0, it, row, col)) return;
            const size_t at = (size_t)row * HG_N + col;
            q1[it % AHEAD] = *reinterpret_cast<const uint4 *>(P1 + at);
            q2[it % AHEAD] = *reinterpret_cast<const uint4 *>(P2 + at);
        };
        if (HG_BWD_AHEAD > 0)
#pragma unroll
            for (int it = 0; it < AHEAD; it++) fetch(it);
        float s[16];   // this lane's sums of its group's columns over its two rows: G1's 8, then G2's
        hg_regs_groups(r0, n0, [&](int i, int) { return d[0][i]; },
                       [&](int g, int h, int row, int col, const unsigned *v) {
            if (h == 0)
#pragma unroll
                for (int e = 0; e < 16; e++) s[e] = 0.f;
            const int it = 2 * g + h;
            uint4 r1 = HG_BWD_AHEAD > 0 ? q1[it % AHEAD] : uint4{}, r2 = HG_BWD_AHEAD > 0 ? q2[it % AHEAD] : uint4{};
            if (HG_BWD_AHEAD > 0) fetch(it + AHEAD);   // (into the place just read)
            const int blk = HG_PINGPONG ? r0 / 64 % 2 : 0, tv = blk * VISITS + it;   // (the tile's visit)
            if (HG_BWD_RING > 0) {   // visit tv's copies have landed (the groups after it may still be in flight)
                vmc_cp_async_wait<RING - 1>();
                r1 = *slot(epi, tv, 0);
                r2 = *slot(epi, tv, 1);
            }
            if (row < HG_M && col < HG_N) {
                const size_t at = (size_t)row * HG_N + col;
                float dh[8], p1[8], p2[8], g1[8], g2[8];
                unpack_bf16x8(uint4{v[0], v[1], v[2], v[3]}, dh);
                if (HG_BWD_AHEAD > 0 || HG_BWD_RING > 0) {
                    unpack_bf16x8(r1, p1);
                    unpack_bf16x8(r2, p2);
                } else {
                    load_vec<8>(P1 + at, p1);
                    load_vec<8>(P2 + at, p2);
                }
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    const float x = p1[e] + bias1[col + e], y = p2[e] + bias2[col + e], sg = hg_sigmoid(x);
                    g2[e] = dh[e] * (x * sg);
                    g1[e] = dh[e] * y * (sg * (1.0f + x * (1.0f - sg)));
                    s[e] += g1[e];
                    s[8 + e] += g2[e];
                }
                store_vec<8>(G1 + at, g1);
                store_vec<8>(G2 + at, g2);
            }
            // the slot just read (its values used above: the read is done) takes visit tv + RING's copies
            if (HG_BWD_RING > 0) copy_ahead(epi, r0 - 64 * blk, n0, tv + RING);
            if (h == 1) hg_column_sums(s, col, S1, S2);
        });
    }, [&](int m0, int n0) {   // (the producer: the tile's rows of P1 and P2 into L2 while its slices are computed)
        const unsigned bytes = (unsigned)((HG_N - n0 < HG_BN ? HG_N - n0 : HG_BN) * 2);
        for (int row = m0; row < m0 + HG_BM && row < HG_M; row++) {
            prefetch_l2_bulk(P1 + (size_t)row * HG_N + n0, bytes);
            prefetch_l2_bulk(P2 + (size_t)row * HG_N + n0, bytes);
        }
    }, [&](int r0, int n0, unsigned char *epi) {   // (the consumers, before the tile's slices: the ring's first copies)
        if (HG_BWD_RING > 0)
#pragma unroll
            for (int v = 0; v < RING; v++) copy_ahead(epi, r0, n0, v);
    });
}
#else
// SwiGLU's input products in one kernel (HG_DUAL): H = silu(p1 + bias1) * (p2 + bias2) with p_b = A B_b^T rounded to
// bf16 first, as where each product is a bf16 GEMM output that a generated kernel finishes; P1, P2 get p1, p2 for the
// backward where HG_PRODUCTS. H, P1, P2 [M][N] bf16: tensor maps with HG_STORE_TMA (P1 and P2 then
// stored from one buffer, H from the other once P1's stores have read it), else pointers (HG_PAIRS: pairs aligned);
// bias [N] f32. A CTA computes a 128 x HG_TILE_N / 2 tile of both products (two wgmmas a k16 step) from one staged
// slice of A.
static __device__ __forceinline__ float hg_swiglu(float p1, float p2, float b1, float b2) {
    const float x = p1 + b1, y = p2 + b2;
    return x * hg_sigmoid(x) * y;
}
#if HG_STORE_TMA
#define HG_OUT_PARAM(name) const __grid_constant__ VmcTmap name
#else
#define HG_OUT_PARAM(name) bf16 *__restrict__ name
#endif
extern "C" __global__ void __launch_bounds__(HG_THREADS, HG_CTAS) HG_CLUSTER_DIMS
vmc_gemm_swiglu(const __grid_constant__ VmcTmap A, const __grid_constant__ VmcTmap B1, const __grid_constant__ VmcTmap B2,
                const float *__restrict__ bias1, const float *__restrict__ bias2, HG_OUT_PARAM(H),
                HG_OUT_PARAM(P1), HG_OUT_PARAM(P2)) {
    vmc_grid_entry();
    VMC_DYN_SMEM(raw, HG_SMEM);
    const VmcTmap *As[1] = {&A}, *Bs[2] = {&B1, &B2};
#if HG_STORE_TMA
    hg_run(raw, As, Bs, [&](int r0, int n0, float (*d)[HG_BN / 2], unsigned char *epi) {
        unsigned char *buf = epi + threadIdx.x / 128 * (HG_PRODUCTS ? 2 : 1) * HG_TMA_TILE_BYTES;
        hg_tma_buffers_free<0>();
        if (HG_PRODUCTS) {
            hg_tma_tile(buf, r0, n0, [&](int i, int) { return d[0][i]; }, &P1);
            hg_tma_tile(buf + HG_TMA_TILE_BYTES, r0, n0, [&](int i, int) { return d[1][i]; }, &P2);
            hg_tma_buffers_free<1>();   // P1's stores have read the first buffer
        }
        hg_tma_tile(buf, r0, n0, [&](int i, int col) {
            const bool in = n0 + col < HG_N;   // (past N: a column the TMA does not store)
            return hg_swiglu(hg_bf16(d[0][i]), hg_bf16(d[1][i]), in ? bias1[n0 + col] : 0.f, in ? bias2[n0 + col] : 0.f);
        }, &H);
    });
    if (threadIdx.x % 128 == 0) vmc_tma_store_wait<0>();   // (the buffers stay until the stores have read them)
#elif HG_STORE_REGS
    hg_run(raw, As, Bs, [&](int r0, int n0, float (*d)[HG_BN / 2], unsigned char *) {
        if (HG_PRODUCTS) {
            hg_store_regs(r0, n0, [&](int i, int) { return d[0][i]; }, P1);
            hg_store_regs(r0, n0, [&](int i, int) { return d[1][i]; }, P2);
        }
        hg_store_regs(r0, n0, [&](int i, int col) {
            const bool in = n0 + col < HG_N;   // (past N: a column not stored)
            return hg_swiglu(hg_bf16(d[0][i]), hg_bf16(d[1][i]), in ? bias1[n0 + col] : 0.f,
                             in ? bias2[n0 + col] : 0.f);
        }, H);
    });
#else
    hg_run(raw, As, Bs, [&](int r0, int n0, float (*d)[HG_BN / 2], unsigned char *) { hg_for_each_pair(r0, n0, [&](int row, int col, int i) {
        const size_t at = (size_t)row * HG_N + col;
        const int ne = col + 1 < HG_N ? 2 : 1;
        float p1[2], p2[2], h[2];
#pragma unroll
        for (int e = 0; e < 2; e++) {
            p1[e] = hg_bf16(d[0][i + e]);
            p2[e] = hg_bf16(d[1][i + e]);
            h[e] = hg_swiglu(p1[e], p2[e], e < ne ? bias1[col + e] : 0.f, e < ne ? bias2[col + e] : 0.f);
        }
        if (HG_PAIRS && ne == 2) {
            store_vec<2>(H + at, h);
            if (HG_PRODUCTS) store_vec<2>(P1 + at, p1);
            if (HG_PRODUCTS) store_vec<2>(P2 + at, p2);
            return;
        }
        for (int e = 0; e < ne; e++) {
            store_vec<1>(H + at + e, h + e);
            if (HG_PRODUCTS) store_vec<1>(P1 + at + e, p1 + e);
            if (HG_PRODUCTS) store_vec<1>(P2 + at + e, p2 + e);
        }
    }); });
#endif
}
#endif
