/* cuda_tma.h — TMA tensor maps for the kernels that take them (KernelLaunch.tma_rows; common.cuh VmcTmap). */
#pragma once
#include "cuda_api.h"
#include "template.h"
#include <stdint.h>

/* The tensor map of a bf16 matrix [rows][cols] at base, rows ld elements apart, copied in boxes of box_rows rows by
 * 64 columns (128 bytes) into the 128-byte swizzle, zeros past its edges. base 16-byte aligned, ld a multiple of 8
 * (the kernels' templates refuse others); a driver refusal exits with its error (CU_CHECK). */
void cuda_tma_bf16(const CudaApi *cu, CUtensorMap *map, CUdeviceptr base, int64_t rows, int64_t cols, int64_t ld,
                   unsigned box_rows);

/* The parameters of vmc's Hopper GEMM (template_gemm_hopper; launch l) for C = op(A) op(B), A [M][lda] or [K][lda]
 * (ta), B [N][ldb] (tb) or [K][ldb], C [M][N] (and a pair's A2, B2 laid out as A, B: parameters 4 and 5, where ptrs,
 * maps and params hold 6): params[i] = &ptrs[i] for A, B and C, but for each parameter l->tma_rows names (A, B, C when
 * it is stored by TMA, A2, B2) &maps[i], its tensor map made here. */
void cuda_tma_gemm_params(const CudaApi *cu, const KernelLaunch *l, int64_t M, int64_t N, int64_t K, int64_t lda,
                          int64_t ldb, bool ta, bool tb, CUdeviceptr *ptrs, CUtensorMap *maps, void **params);

/* The parameters of SwiGLU's kernel (template_gemm_swiglu; launch l): ptrs = A [M][lda], B1, B2 [N][ldb], bias1,
 * bias2, H, P1, P2 [M][N] (P1, P2 0 without the products); params[i] = &ptrs[i], or &maps[i] where l->tma_rows[i]
 * makes parameter i a tensor map (P1 and P2 then H's when 0: the kernel does not store them). */
void cuda_tma_swiglu_params(const CudaApi *cu, const KernelLaunch *l, int64_t M, int64_t N, int64_t K, int64_t lda,
                            int64_t ldb, CUdeviceptr *ptrs, CUtensorMap *maps, void **params);

/* The grid to launch vmc's Hopper GEMM or SwiGLU kernel (fn, launch l) with on this GPU: l->grid, sized at code
 * generation for the 132 SMs of an H100 SXM or H200, or as many CTAs (whole clusters) as run at once here where
 * that is fewer. Its CTAs take tiles in turn (hopper_gemm.cuh HG_FOR_EACH_UNIT), so any grid computes all of C;
 * one larger than what runs at once leaves its last CTAs waiting for a second round. */
unsigned cuda_hopper_grid(const CudaApi *cu, CUfunction fn, const KernelLaunch *l);
