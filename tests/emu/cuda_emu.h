// cuda_emu.h — just enough of CUDA to run vmc's hand-written templates on the CPU in tests: blocks (or a cluster's
// blocks together) run one at a time, each thread of a block is a pthread (the same ones go through every block of a launch, in step); __syncthreads is a block barrier, a warp shuffle goes through a
// per-warp exchange slot between two warp barriers, atomics take one lock. Catches indexing, chunking, reduction
// and race-free-ness bugs (a thread waiting on a barrier others skip deadlocks the test) before a GPU run.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <math.h>

struct dim3 { unsigned x = 1, y = 1, z = 1; };
struct float4 { float x, y, z, w; };
struct float2 { float x, y; };
struct uint4 { unsigned x, y, z, w; };
struct uint2 { unsigned x, y; };
extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __cluster_dims__(...)
#define __grid_constant__
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static   // one block at a time: a static is that block's shared memory
#define __constant__        // row tables: plain globals

inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __fdividef(float a, float b) { return a / b; }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
using std::min;
using std::max;
void __syncthreads();
float __shfl_xor_sync(unsigned mask, float v, int lane_mask);
void __syncwarp(unsigned mask = 0xffffffffu);   // the calling thread's whole warp
float atomicAdd(float *p, float v);
unsigned atomicAdd(unsigned *p, unsigned v);
inline void __threadfence() {}   // blocks run one after another here
// mma.sync.m16n8k16 (bf16 in, f32 accumulate) of one warp: d += A B from every lane's fragments (PTX ISA layouts).
void emu_mma_bf16_16816(float *d, const unsigned *a, const unsigned *b);
// ldmatrix.sync.aligned.m8n8.x{count}[.trans].shared.b16 of one warp: lane l names row l % 8 of matrix l / 8.
void emu_ldmatrix(unsigned *r, const unsigned short *p, int count, bool trans);
// cp.async of 16 bytes: the source is read at issue, the destination written at the wait that covers its commit
// group (emu_cp_async_wait(n): all but this thread's n most recent groups).
void emu_cp_async16(void *dst, const void *src);
void emu_cp_async_commit();
void emu_cp_async_wait(int n);
unsigned long emu_cp_async_issued();   // copies issued since the program started (tests check a path took them)
// wgmma.commit_group: the warpgroup's wgmmas are one collective operation on the GPU, so its threads meet here
// (all of them have read the shared memory their wgmmas name before any goes on to release it).
void emu_wgmma_commit();
// wgmma.mma_async m64nNk16 (bf16 in, f32 accumulate) of the calling thread's warpgroup (4 aligned warps), run at
// issue: this thread's N/2 accumulators of D (+)= A B^T, A (64 x 16) and B (N x 16) bf16 tiles in the 128-byte
// swizzle, K-major or where ta / tb MN-major, read through their shared-memory descriptors (common.cuh
// vmc_wgmma_desc), whose addresses are offsets into smem.
void emu_wgmma_bf16(float *d, int n, const unsigned char *smem, unsigned long long da, unsigned long long db,
                    bool accumulate, bool ta, bool tb);
// Hopper's shared-memory barriers (mbarrier) and TMA copies, blocking across the block's threads (pthreads only):
// a barrier's state lives beside its 8 bytes; a phase completes when its arrivals and announced bytes are all in.
void emu_mbar_init(unsigned long long *bar, unsigned count);
void emu_mbar_expect_tx(unsigned long long *bar, unsigned bytes);   // arrive, announcing bytes
void emu_mbar_arrive(unsigned long long *bar);
void emu_mbar_wait(unsigned long long *bar, unsigned parity);       // until the phase of that parity completed
void emu_bar_sync(int id, int count);   // named barrier (bar.sync id, count)
void emu_bar_arrive(int id, int count);   // bar.arrive id, count: counts, does not wait
// A 2-D bf16 tensor map (common.cuh VmcTmap): rows x cols elements, rows ld apart, boxes of box_rows x 64 columns
// (128 bytes) in the 128-byte swizzle.
struct EmuTmap { const void *base; long long rows, cols, ld; unsigned box_rows; };
// The box at columns c0.., rows r0.. into dst (zeros past the edges), copied at issue; then its bytes complete on bar.
void emu_tma_load_2d(void *dst, const EmuTmap *map, int c0, int r0, unsigned long long *bar);
// The box in src (swizzled) to columns c0.., rows r0.. of the map (nothing past its edges), copied at issue.
void emu_tma_store_2d(const EmuTmap *map, int c0, int r0, const void *src);
// Thread block clusters along x (pthreads only): a cluster's CTAs run together, each with its own dynamic shared
// memory (common.cuh VMC_DYN_SMEM registers it: emu_dyn_smem), which the others reach through emu_mapa.
enum { EMU_CLUSTER_MAX = 2 };
unsigned emu_cluster_rank();   // %cluster_ctarank of the calling thread's CTA (0 outside clusters)
unsigned char *emu_dyn_smem(unsigned char *mine, unsigned long bytes);   // registers and returns mine
void *emu_mapa(const void *p, unsigned rank);   // p's offset in the dynamic shared memory of CTA `rank`
void emu_cluster_sync();   // barrier.cluster.arrive + wait: every thread of the cluster
// The box into dst's offset in every CTA of mask (bit r: rank r), its bytes completing on bar's offset in each.
void emu_tma_load_2d_multicast(void *dst, const EmuTmap *map, int c0, int r0, unsigned long long *bar, unsigned mask);
// Programmatic dependent launch has nothing to wait for here (codegen.h CODEGEN_GRID_ENTRY steps aside for this).
#define VMC_EMU_GRID_ENTRY
inline void vmc_grid_entry() {}

// Runs body once per thread of every block of the grid (block threads a multiple of 32).
void emu_launch(dim3 grid, dim3 block, const std::function<void()> &body);
// The same in clusters of `cluster` CTAs along x (grid.x a multiple of it; at most 1024 threads a cluster).
void emu_launch_cluster(dim3 grid, dim3 block, unsigned cluster, const std::function<void()> &body);
