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
