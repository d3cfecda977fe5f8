// cuda_emu.cpp — the CPU stand-ins declared in cuda_emu.h. Built with EMU_FIBERS, a block's threads are fibers of
// one OS thread instead of pthreads (emu_launch, below): the same semantics without the futex waits, several times
// faster (test_emu_exec: 195 -> 52 s), but in one fixed order, so a race between a block's threads cannot show. The
// kernel tests keep pthreads for that; whole steps (emu_exec.c) take fibers.
#include "cuda_emu.h"
#include <atomic>
#include <condition_variable>
#include <map>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <pthread.h>
#include <vector>
#ifdef EMU_FIBERS
#include <sys/mman.h>
#include <ucontext.h>
#endif

thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
static float warp_slot[32][32];
static std::mutex atomic_mu;

// A cluster's CTAs run together (emu_launch_cluster): the calling thread's rank, and the cluster's size. Per-thread
// and per-warp state is indexed by flat_tid(), which counts the cluster's threads rank after rank.
static thread_local unsigned cluster_rank;
static unsigned cluster_size = 1;
unsigned emu_cluster_rank() { return cluster_rank; }
static int block_tid() { return (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)); }
static int flat_tid() { return block_tid() + (int)(cluster_rank * blockDim.x * blockDim.y * blockDim.z); }
static void block_sync();
static void warp_sync(int w);   // the 32 lanes of warp w
void __syncthreads() { block_sync(); }

float __shfl_xor_sync(unsigned, float v, int lane_mask) {
    int t = flat_tid(), w = t / 32, l = t % 32;
    warp_slot[w][l] = v;
    warp_sync(w);
    float r = warp_slot[w][l ^ lane_mask];
    warp_sync(w);
    return r;
}

void __syncwarp(unsigned) { warp_sync(flat_tid() / 32); }

float atomicAdd(float *p, float v) {
    std::lock_guard<std::mutex> g(atomic_mu);
    float old = *p;
    *p = old + v;
    return old;
}

unsigned atomicAdd(unsigned *p, unsigned v) {
    std::lock_guard<std::mutex> g(atomic_mu);
    unsigned old = *p;
    *p = old + v;
    return old;
}

// Each lane posts its fragments, then computes its own four results from all of them. Lane 4g + t holds A's
// (g, 2t..2t+1) in a[0], (g+8, ..) in a[1], (g, 2t+8..) in a[2], (g+8, 2t+8..) in a[3]; B's (k 2t..2t+1, n g) in b[0],
// (k 2t+8.., n g) in b[1]; D's (g, 2t..2t+1) in d[0..1], (g+8, ..) in d[2..3]. The lower half of a register holds
// the lower k.
static unsigned mma_a[32][32][4], mma_b[32][32][2];
static float bf16_at(unsigned reg, int k) { return __uint_as_float((k & 1 ? reg >> 16 : reg & 0xffffu) << 16); }
void emu_mma_bf16_16816(float *d, const unsigned *a, const unsigned *b) {
    int t = flat_tid(), w = t / 32, l = t % 32;
    std::memcpy(mma_a[w][l], a, sizeof mma_a[w][l]);
    std::memcpy(mma_b[w][l], b, sizeof mma_b[w][l]);
    warp_sync(w);
    const int g = l >> 2, tq = l & 3;
    for (int q = 0; q < 4; q++) {
        const int row = g + (q >= 2 ? 8 : 0), col = 2 * tq + (q & 1);
        double s = 0;
        for (int k = 0; k < 16; k++) {
            const float av = bf16_at(mma_a[w][(row % 8) * 4 + (k % 8) / 2][(row >= 8) + 2 * (k >= 8)], k);
            const float bv = bf16_at(mma_b[w][col * 4 + (k % 8) / 2][k >= 8], k);
            s += (double)av * bv;
        }
        d[q] = (float)((double)d[q] + s);
    }
    warp_sync(w);
}

// Element (r, k) of a bf16 tile in the 128-byte swizzle behind a wgmma descriptor (PTX ISA "matrix descriptor";
// CUTLASS's canonical GMMA layouts): start address bits 0-13, leading byte offset bits 16-29, stride byte offset bits
// 32-45, all in 16-byte units, swizzle mode bits 62-63 (1: 128 bytes). K-major: rows (r) 128 bytes apart within a
// group of 8, groups SBO apart, k the element within the row. MN-major (mn): rows of 64 elements of r, 128 bytes
// apart for each k within a group of 8, k's groups of 8 SBO apart, r's blocks of 64 LBO apart. Then the 16-byte
// chunk index (address bits 4-6) is XORed with the row within the 1024-byte atom (address bits 7-9).
static float wgmma_elem(const unsigned char *smem, unsigned long long desc, int r, int k, bool mn) {
    if (desc >> 62 != 1) { fprintf(stderr, "emu_wgmma_bf16: only the 128-byte swizzle is emulated\n"); abort(); }
    const unsigned start = (unsigned)(desc & 0x3fff) << 4, lbo = (unsigned)((desc >> 16) & 0x3fff) << 4;
    const unsigned sbo = (unsigned)((desc >> 32) & 0x3fff) << 4;
    unsigned a = mn ? start + (unsigned)(r / 64) * lbo + (unsigned)(k / 8) * sbo + (unsigned)(k % 8) * 128 +
                          (unsigned)(r % 64) * 2
                    : start + (unsigned)(r / 8) * sbo + (unsigned)(r % 8) * 128 + (unsigned)k * 2;
    a ^= ((a >> 7) & 7) << 4;
    unsigned short h;
    std::memcpy(&h, smem + a, 2);
    return __uint_as_float((unsigned)h << 16);
}
// Thread t of the warpgroup (warp w = t / 32, lane l) holds, for each 8 columns j of D, d[4j .. 4j+1] at row 16 w + l / 4,
// columns 8 j + 2 (l % 4) + 0..1, and d[4j+2 .. 4j+3] 8 rows below (PTX ISA "wgmma .m64nNk16" D fragments).
void emu_wgmma_bf16(float *d, int n, const unsigned char *smem, unsigned long long da, unsigned long long db,
                    bool accumulate, bool ta, bool tb) {
    const int t = block_tid() % 128, w = t / 32, l = t % 32;
    for (int i = 0; i < n / 2; i++) {
        const int row = 16 * w + l / 4 + 8 * ((i % 4) / 2), col = 8 * (i / 4) + 2 * (l % 4) + i % 2;
        double s = 0;
        for (int k = 0; k < 16; k++) s += (double)wgmma_elem(smem, da, row, k, ta) * wgmma_elem(smem, db, col, k, tb);
        d[i] = (float)((accumulate ? (double)d[i] : 0.0) + s);
    }
}

// Every lane posts its row address, then gathers its elements: of matrix j, (row g, columns 2t..2t+1), or with trans
// (rows 2t..2t+1, column g), lane = 4g + t. Only lanes below 8 * count name rows.
static const unsigned short *ldm_row[32][32];
void emu_ldmatrix(unsigned *r, const unsigned short *p, int count, bool trans) {
    int t = flat_tid(), w = t / 32, l = t % 32;
    ldm_row[w][l] = p;
    warp_sync(w);
    const int g = l >> 2, tq = l & 3;
    for (int j = 0; j < count; j++) {
        unsigned lo, hi;
        if (!trans) {
            lo = ldm_row[w][8 * j + g][2 * tq];
            hi = ldm_row[w][8 * j + g][2 * tq + 1];
        } else {
            lo = ldm_row[w][8 * j + 2 * tq][g];
            hi = ldm_row[w][8 * j + 2 * tq + 1][g];
        }
        r[j] = lo | hi << 16;
    }
    warp_sync(w);
}

// Each thread's copies not yet landed: (destination, the 16 bytes read at issue, commit group), by flat thread
// index (fibers share one OS thread); groups count up from 0, and copies issued after the last commit belong to the
// open group. A copy left pending when its block ends (the block never waited: on a GPU it lands unread) is dropped.
struct EmuCopy { void *dst; unsigned char bytes[16]; int group; unsigned block; };
static std::vector<EmuCopy> cp_pending[1024];
static int cp_group[1024];
static unsigned block_id() { return blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z); }
static std::atomic<unsigned long> cp_issued;
unsigned long emu_cp_async_issued() { return cp_issued.load(); }
void emu_cp_async16(void *dst, const void *src) {
    cp_issued++;
    EmuCopy c;
    c.dst = dst;
    std::memcpy(c.bytes, src, 16);
    c.group = cp_group[flat_tid()];
    c.block = block_id();
    cp_pending[flat_tid()].push_back(c);
}
void emu_cp_async_commit() { cp_group[flat_tid()]++; }
void emu_cp_async_wait(int n) {   // groups below cp_group - n complete (the open group is not committed)
    const int t = flat_tid();
    std::vector<EmuCopy> keep;
    for (const EmuCopy &c : cp_pending[t]) {
        if (c.block != block_id()) continue;
        if (c.group < cp_group[t] - n) std::memcpy(c.dst, c.bytes, 16);
        else keep.push_back(c);
    }
    cp_pending[t].swap(keep);
}

// mbarriers: one lock and condition for all (a block's threads are the only users), each barrier's state in a
// table by address. Under fibers a wait cannot block: the kernels that use them run on pthreads (test_emu_instances).
struct EmuMbar { unsigned count, pending; long long tx; unsigned phase; };
static std::mutex mbar_mu;
static std::condition_variable mbar_cv;
static std::map<const void *, EmuMbar> mbars;
void emu_mbar_init(unsigned long long *bar, unsigned count) {
    std::lock_guard<std::mutex> g(mbar_mu);
    mbars[bar] = EmuMbar{count, count, 0, 0};
}
static void mbar_update(unsigned long long *bar, int arrivals, long long tx) {
    std::lock_guard<std::mutex> g(mbar_mu);
    auto it = mbars.find(bar);
    if (it == mbars.end()) { fprintf(stderr, "emu: mbarrier %p used before its init\n", (void *)bar); abort(); }
    EmuMbar &m = it->second;
    if ((int)m.pending < arrivals) { fprintf(stderr, "emu: mbarrier %p: more arrivals than its count\n", (void *)bar); abort(); }
    m.pending -= (unsigned)arrivals;
    m.tx += tx;
    if (m.pending == 0 && m.tx == 0) {
        m.phase++;
        m.pending = m.count;
        mbar_cv.notify_all();
    }
}
void emu_mbar_expect_tx(unsigned long long *bar, unsigned bytes) { mbar_update(bar, 1, bytes); }
void emu_mbar_arrive(unsigned long long *bar) { mbar_update(bar, 1, 0); }
void emu_mbar_wait(unsigned long long *bar, unsigned parity) {
#ifdef EMU_FIBERS
    fprintf(stderr, "emu: mbarrier waits need pthreads (build without EMU_FIBERS)\n");
    abort();
#endif
    std::unique_lock<std::mutex> g(mbar_mu);
    mbar_cv.wait(g, [&] { return (mbars.at(bar).phase & 1u) != (parity & 1u); });
}
// Named barriers by generation: the last of `count` arrivals releases those waiting (bar.arrive counts, not waits).
static int bar_arrived[EMU_CLUSTER_MAX][16];   // (a CTA's own)
static unsigned bar_generation[EMU_CLUSTER_MAX][16];
static void bar_arrive(int id, int count, bool wait) {
#ifdef EMU_FIBERS
    fprintf(stderr, "emu: named barriers need pthreads (build without EMU_FIBERS)\n");
    abort();
#endif
    std::unique_lock<std::mutex> g(mbar_mu);
    int &a = bar_arrived[cluster_rank][id];
    unsigned &gen_now = bar_generation[cluster_rank][id];
    const unsigned gen = gen_now;
    if (++a == count) {
        a = 0;
        gen_now++;
        mbar_cv.notify_all();
    } else if (wait) mbar_cv.wait(g, [&] { return gen_now != gen; });
}
void emu_bar_sync(int id, int count) { bar_arrive(id, count, true); }
void emu_bar_arrive(int id, int count) { bar_arrive(id, count, false); }

// Each CTA's dynamic shared memory, by rank (registered at each block's start: emu_dyn_smem), for emu_mapa.
static unsigned char *dyn_base[EMU_CLUSTER_MAX];
static unsigned long dyn_bytes[EMU_CLUSTER_MAX];
unsigned char *emu_dyn_smem(unsigned char *mine, unsigned long bytes) {
    dyn_base[cluster_rank] = mine;
    dyn_bytes[cluster_rank] = bytes;
    return mine;
}
void *emu_mapa(const void *p, unsigned rank) {
    const unsigned char *q = (const unsigned char *)p;
    for (unsigned r = 0; r < cluster_size; r++)
        if (dyn_base[r] && q >= dyn_base[r] && q < dyn_base[r] + dyn_bytes[r] && rank < cluster_size)
            return dyn_base[rank] + (q - dyn_base[r]);
    fprintf(stderr, "emu_mapa: %p is in no CTA's dynamic shared memory (or rank %u is past the cluster)\n", p, rank);
    abort();
}
void emu_tma_load_2d_multicast(void *dst, const EmuTmap *map, int c0, int r0, unsigned long long *bar, unsigned mask) {
    for (unsigned r = 0; r < cluster_size; r++)
        if (mask >> r & 1u) emu_tma_load_2d(emu_mapa(dst, r), map, c0, r0, (unsigned long long *)emu_mapa(bar, r));
}
void emu_tma_load_2d(void *dst, const EmuTmap *map, int c0, int r0, unsigned long long *bar) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned short *src = (const unsigned short *)map->base;
    for (unsigned r = 0; r < map->box_rows; r++)
        for (int c = 0; c < 64; c++) {
            const long long row = r0 + (long long)r, col = c0 + (long long)c;
            const unsigned short v = row < map->rows && col < map->cols ? src[row * map->ld + col] : 0;
            unsigned a = r * 128 + (unsigned)c * 2;
            a ^= ((a >> 7) & 7) << 4;   // the 128-byte swizzle: chunk c of row r at chunk c ^ (r % 8)
            std::memcpy(d + a, &v, 2);
        }
    mbar_update(bar, 0, -(long long)map->box_rows * 128);
}
void emu_tma_store_2d(const EmuTmap *map, int c0, int r0, const void *src) {
    const unsigned char *s = (const unsigned char *)src;
    unsigned short *dst = (unsigned short *)const_cast<void *>(map->base);
    for (unsigned r = 0; r < map->box_rows; r++)
        for (int c = 0; c < 64; c++) {
            const long long row = r0 + (long long)r, col = c0 + (long long)c;
            if (row >= map->rows || col >= map->cols) continue;
            unsigned a = r * 128 + (unsigned)c * 2;
            a ^= ((a >> 7) & 7) << 4;
            std::memcpy(dst + row * map->ld + col, s + a, 2);
        }
}

#ifndef EMU_FIBERS
static pthread_barrier_t block_bar[EMU_CLUSTER_MAX], block_end, cluster_bar, warp_bar[32], wg_bar[8];
static void block_sync() { pthread_barrier_wait(&block_bar[cluster_rank]); }
void emu_cluster_sync() { pthread_barrier_wait(&cluster_bar); }
// A warpgroup: 128 threads of one CTA (a CTA of 288 threads has two and a lone warp; its rank's come after them).
static int wg_per_cta() { return (int)(blockDim.x * blockDim.y * blockDim.z + 127) / 128; }
void emu_wgmma_commit() { pthread_barrier_wait(&wg_bar[(int)cluster_rank * wg_per_cta() + block_tid() / 128]); }
static void warp_sync(int w) { pthread_barrier_wait(&warp_bar[w]); }

// Each thread of the block runs every block of the grid in turn; a barrier after each keeps them in step
// (a block's shared memory, a static, is free once all have left it). Creating the threads once a launch, not once
// a block, made the whole-step emulation (test_emu_exec) several times faster.
struct ThreadArg { dim3 idx; unsigned rank; const std::function<void()> *body; };
static void *thread_main(void *p) {
    ThreadArg *a = (ThreadArg *)p;
    threadIdx = a->idx;
    cluster_rank = a->rank;
    for (unsigned bz = 0; bz < gridDim.z; bz++)
        for (unsigned by = 0; by < gridDim.y; by++)
            for (unsigned bx = a->rank; bx < gridDim.x; bx += cluster_size) {   // (a cluster's CTAs together)
                blockIdx = {bx, by, bz};
                (*a->body)();
                pthread_barrier_wait(&block_end);
            }
    return nullptr;
}

void emu_launch_cluster(dim3 grid, dim3 block, unsigned cluster, const std::function<void()> &body) {
    int n = (int)(block.x * block.y * block.z), all = n * (int)cluster;
    if (n % 32 || all > 1024 || cluster < 1 || cluster > EMU_CLUSTER_MAX || grid.x % cluster) {
        fprintf(stderr, "emu_launch: block of %d threads, clusters of %u, grid.x %u\n", n, cluster, grid.x);
        abort();
    }
    gridDim = grid;
    blockDim = block;
    cluster_size = cluster;
    std::vector<pthread_t> th((size_t)all);
    std::vector<ThreadArg> args((size_t)all);
    for (unsigned r = 0; r < cluster; r++) pthread_barrier_init(&block_bar[r], nullptr, (unsigned)n);
    pthread_barrier_init(&block_end, nullptr, (unsigned)all);
    pthread_barrier_init(&cluster_bar, nullptr, (unsigned)all);
    for (int w = 0; w < all / 32; w++) pthread_barrier_init(&warp_bar[w], nullptr, 32);
    for (int g = 0; g < (int)cluster * wg_per_cta(); g++) pthread_barrier_init(&wg_bar[g], nullptr, 128);
    for (int i = 0; i < all; i++) {
        const unsigned t = (unsigned)(i % n);
        args[(size_t)i] = {{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)}, (unsigned)(i / n), &body};
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setstacksize(&at, 1 << 20);
        if (pthread_create(&th[(size_t)i], &at, thread_main, &args[(size_t)i])) abort();
        pthread_attr_destroy(&at);
    }
    for (int i = 0; i < all; i++) pthread_join(th[(size_t)i], nullptr);
    for (unsigned r = 0; r < cluster; r++) pthread_barrier_destroy(&block_bar[r]);
    pthread_barrier_destroy(&block_end);
    pthread_barrier_destroy(&cluster_bar);
    for (int w = 0; w < all / 32; w++) pthread_barrier_destroy(&warp_bar[w]);
    for (int g = 0; g < (int)cluster * wg_per_cta(); g++) pthread_barrier_destroy(&wg_bar[g]);
    cluster_size = 1;
    for (unsigned r = 0; r < cluster; r++) dyn_base[r] = nullptr;
}

void emu_launch(dim3 grid, dim3 block, const std::function<void()> &body) { emu_launch_cluster(grid, block, 1, body); }
#else
// Fibers: the scheduler runs every runnable thread of the block until it waits (at a block or warp barrier) or
// ends; then it releases a warp whose 32 lanes all wait at its barrier, else the block barrier once every thread
// waits there. Ended threads count as arrived, as on the GPU. No release possible: the kernel would hang; abort.
enum { RUN, AT_BLOCK, AT_WARP, DONE };
struct Fiber { ucontext_t ctx; dim3 idx; int state; };
static Fiber fib[1024];
static ucontext_t sched_ctx;
static int cur;
static const std::function<void()> *cur_body;
static const size_t STACK = 256 << 10;
static char *stacks;

static void wait_at(int state) {
    fib[cur].state = state;
    swapcontext(&fib[cur].ctx, &sched_ctx);
}
static void block_sync() { wait_at(AT_BLOCK); }
void emu_wgmma_commit() { fprintf(stderr, "emu: wgmma needs pthreads (build without EMU_FIBERS)\n"); abort(); }
void emu_cluster_sync() {}   // (a cluster of one: emu_launch_cluster takes no other)
static void warp_sync(int) { wait_at(AT_WARP); }
static void fiber_main() {
    (*cur_body)();
    fib[cur].state = DONE;
    swapcontext(&fib[cur].ctx, &sched_ctx);
}

static void run_block(int n) {
    for (int t = 0; t < n; t++) {
        Fiber &f = fib[t];
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = stacks + (size_t)t * STACK;
        f.ctx.uc_stack.ss_size = STACK;
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, fiber_main, 0);
        f.idx = {(unsigned)t % blockDim.x, ((unsigned)t / blockDim.x) % blockDim.y, (unsigned)t / (blockDim.x * blockDim.y)};
        f.state = RUN;
    }
    for (;;) {
        for (int t = 0; t < n; t++) {
            if (fib[t].state != RUN) continue;
            cur = t;
            threadIdx = fib[t].idx;
            swapcontext(&sched_ctx, &fib[t].ctx);
        }
        int done = 0, at_block = 0;
        bool released = false;
        for (int w = 0; w < n / 32; w++) {
            int at_warp = 0, ended = 0;
            for (int l = 0; l < 32; l++) {
                const int s = fib[32 * w + l].state;
                at_warp += s == AT_WARP;
                ended += s == DONE;
                at_block += s == AT_BLOCK;
            }
            done += ended;
            if (at_warp > 0 && at_warp + ended == 32) {
                for (int l = 0; l < 32; l++) if (fib[32 * w + l].state == AT_WARP) fib[32 * w + l].state = RUN;
                released = true;
            }
        }
        if (done == n) return;
        if (released) continue;
        if (at_block + done == n) {
            for (int t = 0; t < n; t++) if (fib[t].state == AT_BLOCK) fib[t].state = RUN;
            continue;
        }
        fprintf(stderr, "emu_launch: block (%u, %u, %u) hangs: its threads wait at different barriers\n", blockIdx.x,
                blockIdx.y, blockIdx.z);
        abort();
    }
}

void emu_launch(dim3 grid, dim3 block, const std::function<void()> &body);
void emu_launch_cluster(dim3 grid, dim3 block, unsigned cluster, const std::function<void()> &body) {
    if (cluster != 1) { fprintf(stderr, "emu: clusters need pthreads (build without EMU_FIBERS)\n"); abort(); }
    emu_launch(grid, block, body);
}
void emu_launch(dim3 grid, dim3 block, const std::function<void()> &body) {
    int n = (int)(block.x * block.y * block.z);
    if (n % 32 || n > 1024) { fprintf(stderr, "emu_launch: block of %d threads\n", n); abort(); }
    if (!stacks) {
        void *p = mmap(nullptr, STACK * 1024, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) abort();
        stacks = (char *)p;
    }
    gridDim = grid;
    blockDim = block;
    cur_body = &body;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                blockIdx = {bx, by, bz};
                run_block(n);
            }
}
#endif
