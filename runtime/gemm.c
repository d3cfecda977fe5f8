/* gemm.c — cuBLASLt wrapper: translates row-major graph products into cuBLASLt's column-major calls, plans each
 * distinct descriptor once (layouts, matmul descriptor, heuristic algorithm) and replays the plan.
 * Row-major C[m,n] = A[m,k] B[k,n] is column-major C'[n,m] = B'[n,k] A'[k,m] with the same memory, so cuBLASLt
 * sees (M, N, K) = (n, m, k) with the operands swapped, and the bias [n] is its per-row (M) bias. */
#include "gemm.h"
#include "util.h"
#include <stdlib.h>
#include <string.h>

typedef struct Plan {
    GemmDesc key;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;     /* cuBLASLt's A (= our B), B (= our A), C/D */
    cublasLtMatmulAlgo_t algo;
} Plan;

struct Gemm {
    cublasLtHandle_t handle;
    CUdeviceptr workspace;
    size_t ws_bytes;
    Plan *plans;
    int nplans, cap;
};

Gemm *gemm_new(size_t workspace_bytes) {
    const CudaApi *cu = cuda_api();
    const CublasLtApi *lt = cublaslt_api();
    Gemm *g = xcalloc(1, sizeof *g);
    g->ws_bytes = workspace_bytes ? workspace_bytes : (size_t)32 << 20;   /* NVIDIA's suggestion for Hopper */
    CUBLAS_CHECK(lt->cublasLtCreate(&g->handle));
    CU_CHECK(cu->cuMemAlloc(&g->workspace, g->ws_bytes));
    return g;
}

void gemm_free(Gemm *g) {
    if (!g) return;
    const CublasLtApi *lt = cublaslt_api();
    for (int i = 0; i < g->nplans; i++) {
        Plan *p = &g->plans[i];
        lt->cublasLtMatrixLayoutDestroy(p->la);
        lt->cublasLtMatrixLayoutDestroy(p->lb);
        lt->cublasLtMatrixLayoutDestroy(p->lc);
        lt->cublasLtMatmulDescDestroy(p->op);
    }
    CU_CHECK(cuda_api()->cuMemFree(g->workspace));
    lt->cublasLtDestroy(g->handle);
    free(g->plans);
    free(g);
}

int gemm_plans(const Gemm *g) { return g->nplans; }

static cudaDataType_t cuda_type(DType t) {
    switch (t) {
    case DT_F32: return CUDA_R_32F;
    case DT_BF16: return CUDA_R_16BF;
    case DT_I32: break;
    }
    ASSERT(false, "gemm: operands must be f32 or bf16, not %s", dtype_name(t));
    return CUDA_R_32F;
}

/* Column-major layout of a row-major [rows, cols] matrix: cols x rows with leading dimension cols. */
static cublasLtMatrixLayout_t layout(const GemmDesc *d, DType t, int rows, int cols, int64_t stride) {
    const CublasLtApi *lt = cublaslt_api();
    cublasLtMatrixLayout_t l;
    CUBLAS_CHECK(lt->cublasLtMatrixLayoutCreate(&l, cuda_type(t), (uint64_t)cols, (uint64_t)rows, cols));
    if (d->batch > 1) {
        int32_t count = d->batch;
        CUBLAS_CHECK(lt->cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
        CUBLAS_CHECK(lt->cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                          sizeof stride));
    }
    return l;
}

static void make_plan(Gemm *g, const GemmDesc *d, Plan *p) {
    const CublasLtApi *lt = cublaslt_api();
    ASSERT(d->a == d->b && d->m > 0 && d->n > 0 && d->k > 0 && d->batch >= 1, "gemm descriptor");
    p->key = *d;
    cublasComputeType_t compute = d->a == DT_F32 && d->allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    CUBLAS_CHECK(lt->cublasLtMatmulDescCreate(&p->op, compute, CUDA_R_32F));
    /* cuBLASLt's A is our B: stored [k,n] (no transpose) or [n,k] (tb). Its B is our A: [m,k] or [k,m] (ta). */
    cublasOperation_t opa = d->tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = d->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(lt->cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    CUBLAS_CHECK(lt->cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    if (d->bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        cudaDataType_t bt = cuda_type(d->c);
        CUBLAS_CHECK(lt->cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        CUBLAS_CHECK(lt->cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
    }
    p->la = d->tb ? layout(d, d->b, d->n, d->k, d->stride_b) : layout(d, d->b, d->k, d->n, d->stride_b);
    p->lb = d->ta ? layout(d, d->a, d->k, d->m, d->stride_a) : layout(d, d->a, d->m, d->k, d->stride_a);
    p->lc = layout(d, d->c, d->m, d->n, d->stride_c);

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(lt->cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(lt->cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                          &g->ws_bytes, sizeof g->ws_bytes));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    CUBLAS_CHECK(lt->cublasLtMatmulAlgoGetHeuristic(g->handle, p->op, p->la, p->lb, p->lc, p->lc, pref, 1, &res,
                                                    &found));
    lt->cublasLtMatmulPreferenceDestroy(pref);
    if (found == 0) CUBLAS_CHECK(CUBLAS_STATUS_NOT_SUPPORTED);
    p->algo = res.algo;
}

static bool same_desc(const GemmDesc *a, const GemmDesc *b) {
    return a->m == b->m && a->n == b->n && a->k == b->k && a->ta == b->ta && a->tb == b->tb &&
           a->batch == b->batch && a->stride_a == b->stride_a && a->stride_b == b->stride_b &&
           a->stride_c == b->stride_c && a->a == b->a && a->b == b->b && a->c == b->c && a->bias == b->bias &&
           a->allow_tf32 == b->allow_tf32;
}

static Plan *find_plan(Gemm *g, const GemmDesc *d) {
    for (int i = 0; i < g->nplans; i++)
        if (same_desc(&g->plans[i].key, d)) return &g->plans[i];
    if (g->nplans == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 16;
        g->plans = xrealloc(g->plans, sizeof(Plan) * (size_t)g->cap);
    }
    Plan *p = &g->plans[g->nplans];
    memset(p, 0, sizeof *p);
    make_plan(g, d, p);
    g->nplans++;
    return p;
}

void gemm_describe(Gemm *g, const GemmDesc *d, char *buf, size_t n) {
    const CublasLtApi *lt = cublaslt_api();
    const cublasLtMatmulAlgoConfigAttributes_t attr[6] = {
        CUBLASLT_ALGO_CONFIG_ID, CUBLASLT_ALGO_CONFIG_TILE_ID, CUBLASLT_ALGO_CONFIG_STAGES_ID,
        CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING};
    uint32_t v[6] = {0};
    const Plan *p = find_plan(g, d);
    for (int i = 0; i < 6; i++) {
        size_t got = 0;
        if (lt->cublasLtMatmulAlgoConfigGetAttribute(&p->algo, attr[i], &v[i], sizeof v[i], &got) != CUBLAS_STATUS_SUCCESS)
            v[i] = 0xffffffffu;
    }
    snprintf(buf, n, "algo %u tile %u stages %u cluster %u split-K %u swizzle %u", v[0], v[1], v[2], v[3], v[4], v[5]);
}

void gemm_run(Gemm *g, const GemmDesc *d, CUdeviceptr A, CUdeviceptr B, CUdeviceptr C, CUdeviceptr bias,
              float alpha, float beta, CUstream stream) {
    const CublasLtApi *lt = cublaslt_api();
    Plan *p = find_plan(g, d);
    if (d->bias) {
        ASSERT(bias != 0, "gemm: bias epilogue without a bias pointer");
        CUBLAS_CHECK(lt->cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                        sizeof bias));
    }
    CUBLAS_CHECK(lt->cublasLtMatmul(g->handle, p->op, &alpha, (const void *)B, p->la, (const void *)A, p->lb, &beta,
                                    (const void *)C, p->lc, (void *)C, p->lc, &p->algo, (void *)g->workspace,
                                    g->ws_bytes, (cudaStream_t)stream));
}
