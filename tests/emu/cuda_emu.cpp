// cuda_emu.cpp — the CPU stand-ins declared in cuda_emu.h.
#include "cuda_emu.h"
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <pthread.h>
#include <vector>

thread_local dim3 threadIdx;
dim3 blockIdx, blockDim, gridDim;
static pthread_barrier_t block_bar, warp_bar[32];
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

struct ThreadArg { dim3 idx; const std::function<void()> *body; };
static void *thread_main(void *p) {
    ThreadArg *a = (ThreadArg *)p;
    threadIdx = a->idx;
    (*a->body)();
    return nullptr;
}

void emu_launch(dim3 grid, dim3 block, const std::function<void()> &body) {
    int n = (int)(block.x * block.y * block.z);
    if (n % 32 || n > 1024) { fprintf(stderr, "emu_launch: block of %d threads\n", n); abort(); }
    gridDim = grid;
    blockDim = block;
    std::vector<pthread_t> th((size_t)n);
    std::vector<ThreadArg> args((size_t)n);
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                blockIdx = {bx, by, bz};
                pthread_barrier_init(&block_bar, nullptr, (unsigned)n);
                for (int w = 0; w < n / 32; w++) pthread_barrier_init(&warp_bar[w], nullptr, 32);
                for (int t = 0; t < n; t++) {
                    args[(size_t)t] = {{(unsigned)t % block.x, ((unsigned)t / block.x) % block.y,
                                        (unsigned)t / (block.x * block.y)}, &body};
                    pthread_attr_t at;
                    pthread_attr_init(&at);
                    pthread_attr_setstacksize(&at, 1 << 20);
                    if (pthread_create(&th[(size_t)t], &at, thread_main, &args[(size_t)t])) abort();
                    pthread_attr_destroy(&at);
                }
                for (int t = 0; t < n; t++) pthread_join(th[(size_t)t], nullptr);
                pthread_barrier_destroy(&block_bar);
                for (int w = 0; w < n / 32; w++) pthread_barrier_destroy(&warp_bar[w]);
            }
}
