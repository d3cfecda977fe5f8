/* gemm.h — matrix products through cuBLASLt, in the graph's row-major terms: C = op(A) @ op(B) (+ bias), strided
 * batches, bf16 or f32 operands with f32 accumulation. f32 operands run in exact fp32 (no TF32) unless the
 * descriptor allows TF32. The algorithm is chosen once per distinct descriptor (cuBLASLt heuristic) and cached
 * with its cuBLASLt descriptors; one workspace serves all products of a Gemm (one stream at a time). */
#pragma once
#include "cuda_api.h"
#include "graph.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct GemmDesc {
    int m, n, k;          /* C [m, n] = op(A) [m, k] @ op(B) [k, n] */
    bool ta, tb;          /* ta: A is stored [k, m]; tb: B is stored [n, k] (row-major, dense) */
    int batch;            /* >= 1 */
    int64_t stride_a, stride_b, stride_c;   /* elements between batch items; 0 = the same matrix for all */
    DType a, b, c;        /* a == b, each DT_F32 or DT_BF16; c DT_F32 or DT_BF16 */
    bool bias;            /* add bias [n] (dtype c) to every row of C: cuBLASLt's BIAS epilogue */
    bool allow_tf32;      /* f32 operands only: CUBLAS_COMPUTE_32F_FAST_TF32 instead of exact CUBLAS_COMPUTE_32F */
} GemmDesc;

typedef struct Gemm Gemm;

/* Needs a current context (cuda_init_device). workspace_bytes 0 picks 32 MiB. */
Gemm *gemm_new(size_t workspace_bytes);
void  gemm_free(Gemm *g);

/* C = alpha * op(A) @ op(B) + beta * C (+ bias), asynchronously on `stream`. Device pointers; bias may be NULL
 * when !d->bias. Exits (CUBLAS_CHECK) if cuBLASLt has no algorithm for the descriptor. */
void gemm_run(Gemm *g, const GemmDesc *d, CUdeviceptr A, CUdeviceptr B, CUdeviceptr C, CUdeviceptr bias,
              float alpha, float beta, CUstream stream);

/* The algorithm cuBLASLt runs for d (planned by an earlier gemm_run), as its config numbers (cublasLt.h: algo id,
 * tile, stages, cluster shape, split-K, CTA swizzling), into buf; for benches. */
void gemm_describe(Gemm *g, const GemmDesc *d, char *buf, size_t n);

/* Distinct descriptors planned so far (for tests and logs). */
int gemm_plans(const Gemm *g);
