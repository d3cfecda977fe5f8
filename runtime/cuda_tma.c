/* cuda_tma.c — TMA tensor maps (cuda_tma.h). */
#include "cuda_tma.h"

void cuda_tma_bf16(const CudaApi *cu, CUtensorMap *map, CUdeviceptr base, int64_t rows, int64_t cols, int64_t ld,
                   unsigned box_rows) {
    const cuuint64_t dims[2] = {(cuuint64_t)cols, (cuuint64_t)rows}, strides[1] = {(cuuint64_t)ld * 2};
    const cuuint32_t box[2] = {64, box_rows}, elem_strides[2] = {1, 1};
    CU_CHECK(cu->cuTensorMapEncodeTiled(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, (void *)base, dims, strides, box,
                                        elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                        CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
}

void cuda_tma_gemm_params(const CudaApi *cu, const KernelLaunch *l, int64_t M, int64_t N, int64_t K, int64_t lda,
                          int64_t ldb, bool ta, bool tb, CUdeviceptr *ptrs, CUtensorMap *maps, void **params) {
    /* A, B, C, (acc), then a pair's A2 and B2, laid out as A and B */
    const int64_t rows[6] = {ta ? K : M, tb ? N : K, M, 0, ta ? K : M, tb ? N : K};
    const int64_t cols[6] = {ta ? M : K, tb ? K : N, N, 0, ta ? M : K, tb ? K : N}, ld[6] = {lda, ldb, N, 0, lda, ldb};
    for (int i = 0; i < 6; i++) {
        if (i >= 3 && !l->tma_rows[i]) continue;   /* (acc a pointer; A2 and B2 with a pair only) */
        params[i] = &ptrs[i];
        if (!l->tma_rows[i]) continue;
        cuda_tma_bf16(cu, &maps[i], ptrs[i], rows[i], cols[i], ld[i], l->tma_rows[i]);
        params[i] = &maps[i];
    }
}

void cuda_tma_swiglu_params(const CudaApi *cu, const KernelLaunch *l, int64_t M, int64_t N, int64_t K, int64_t lda,
                            int64_t ldb, CUdeviceptr *ptrs, CUtensorMap *maps, void **params) {
    const int64_t rows[8] = {M, N, N, 0, 0, M, M, M}, cols[8] = {K, K, K, 0, 0, N, N, N};
    const int64_t ld[8] = {lda, ldb, ldb, 0, 0, N, N, N};
    for (int i = 0; i < 8; i++) {
        params[i] = &ptrs[i];
        if (!l->tma_rows[i]) continue;
        const CUdeviceptr at = ptrs[i] ? ptrs[i] : ptrs[5];
        cuda_tma_bf16(cu, &maps[i], at, rows[i], cols[i], ld[i], l->tma_rows[i]);
        params[i] = &maps[i];
    }
}

unsigned cuda_hopper_grid(const CudaApi *cu, CUfunction fn, const KernelLaunch *l) {
    const unsigned cluster = l->cluster > 1 ? l->cluster : 1, threads = l->block[0] * l->block[1] * l->block[2];
    int resident = 0;
    if (cluster > 1) {   /* (the kernel's __cluster_dims__ give the cluster's size) */
        CUlaunchConfig cfg = {.gridDimX = l->grid[0], .gridDimY = 1, .gridDimZ = 1, .blockDimX = l->block[0],
                              .blockDimY = l->block[1], .blockDimZ = l->block[2], .sharedMemBytes = l->smem};
        CU_CHECK(cu->cuOccupancyMaxActiveClusters(&resident, fn, &cfg));
        resident *= (int)cluster;
    } else {
        CUdevice dev;
        int per_sm = 0, sms = 0;
        CU_CHECK(cu->cuOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn, (int)threads, l->smem));
        CU_CHECK(cu->cuCtxGetDevice(&dev));
        CU_CHECK(cu->cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev));
        resident = per_sm * sms;
    }
    return resident > 0 && (unsigned)resident < l->grid[0] ? (unsigned)resident : l->grid[0];
}
