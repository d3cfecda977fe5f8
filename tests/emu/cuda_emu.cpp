// cuda_emu.cpp — the CPU stand-ins declared in cuda_emu.h.
#include "cuda_emu.h"
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <pthread.h>
#include <vector>

thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
static pthread_barrier_t block_bar, block_end, warp_bar[32];
static float warp_slot[32][32];
static std::mutex atomic_mu;

static int flat_tid() { return (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)); }
void __syncthreads() { pthread_barrier_wait(&block_bar); }

float __shfl_xor_sync(unsigned, float v, int lane_mask) {
    int t = flat_tid(), w = t / 32, l = t % 32;
    warp_slot[w][l] = v;
    pthread_barrier_wait(&warp_bar[w]);
    float r = warp_slot[w][l ^ lane_mask];
    pthread_barrier_wait(&warp_bar[w]);
    return r;
}

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
    pthread_barrier_wait(&warp_bar[w]);
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
    pthread_barrier_wait(&warp_bar[w]);
}

// Every lane posts its row address, then gathers its elements: of matrix j, (row g, columns 2t..2t+1), or with trans
// (rows 2t..2t+1, column g), lane = 4g + t. Only lanes below 8 * count name rows.
static const unsigned short *ldm_row[32][32];
void emu_ldmatrix(unsigned *r, const unsigned short *p, int count, bool trans) {
    int t = flat_tid(), w = t / 32, l = t % 32;
    ldm_row[w][l] = p;
    pthread_barrier_wait(&warp_bar[w]);
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
    pthread_barrier_wait(&warp_bar[w]);
}

// Each thread of the block runs every block of the grid in turn; a barrier after each keeps them in step
// (a block's shared memory, a static, is free once all have left it). Creating the threads once a launch, not once
// a block, made the whole-step emulation (test_emu_exec) several times faster.
struct ThreadArg { dim3 idx; const std::function<void()> *body; };
static void *thread_main(void *p) {
    ThreadArg *a = (ThreadArg *)p;
    threadIdx = a->idx;
    for (unsigned bz = 0; bz < gridDim.z; bz++)
        for (unsigned by = 0; by < gridDim.y; by++)
            for (unsigned bx = 0; bx < gridDim.x; bx++) {
                blockIdx = {bx, by, bz};
                (*a->body)();
                pthread_barrier_wait(&block_end);
            }
    return nullptr;
}

void emu_launch(dim3 grid, dim3 block, const std::function<void()> &body) {
    int n = (int)(block.x * block.y * block.z);
    if (n % 32 || n > 1024) { fprintf(stderr, "emu_launch: block of %d threads\n", n); abort(); }
    gridDim = grid;
    blockDim = block;
    std::vector<pthread_t> th((size_t)n);
    std::vector<ThreadArg> args((size_t)n);
    pthread_barrier_init(&block_bar, nullptr, (unsigned)n);
    pthread_barrier_init(&block_end, nullptr, (unsigned)n);
    for (int w = 0; w < n / 32; w++) pthread_barrier_init(&warp_bar[w], nullptr, 32);
    for (int t = 0; t < n; t++) {
        args[(size_t)t] = {{(unsigned)t % block.x, ((unsigned)t / block.x) % block.y, (unsigned)t / (block.x * block.y)},
                           &body};
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setstacksize(&at, 1 << 20);
        if (pthread_create(&th[(size_t)t], &at, thread_main, &args[(size_t)t])) abort();
        pthread_attr_destroy(&at);
    }
    for (int t = 0; t < n; t++) pthread_join(th[(size_t)t], nullptr);
    pthread_barrier_destroy(&block_bar);
    pthread_barrier_destroy(&block_end);
    for (int w = 0; w < n / 32; w++) pthread_barrier_destroy(&warp_bar[w]);
}
