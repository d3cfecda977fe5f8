/* cuda_gemm.c — the cuda backend's GEMMs: cuBLASLt descriptors and algorithms (row-major products as cuBLASLt's
 * column-major calls), autotuning per shape with its disk cache, and vmc's own skinny-GEMM kernel (skinny_gemm.cuh)
 * where it timed faster and agrees with cuBLASLt; the bf16 GEMM peak that `vmc bench` reports against. */
#include "cuda_impl.h"
#include "cuda_tma.h"
#include "cli.h"
#include "gemm_tune_cache.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- cuBLASLt */
static void set_layout_batch(const Cuda *c, cublasLtMatrixLayout_t l, int64_t batch, int64_t stride) {
    int32_t b = (int32_t)batch;
    CUBLAS_CHECK(c->lt->cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &b, sizeof b));
    CUBLAS_CHECK(c->lt->cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
}

/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLASLt's first operand is our B.
 * Fills the descriptors and up to ncand of cuBLASLt's heuristic algorithms, best guess first (g->algo = cand[0]);
 * returns how many. */
static int gemm_plan_candidates(Cuda *c, const GemmDesc *d, GemmPlan *g, cublasLtMatmulAlgo_t *cand, int ncand) {
    cudaDataType_t ab = d->bf16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasOperation_t opa = d->tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = d->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    g->alpha = d->alpha;
    CUBLAS_CHECK(c->lt->cublasLtMatmulDescCreate(&g->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CUBLAS_CHECK(c->lt->cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    CUBLAS_CHECK(c->lt->cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    CUBLAS_CHECK(c->lt->cublasLtMatrixLayoutCreate(&g->la, ab, (uint64_t)(d->tb ? d->K : d->N), (uint64_t)(d->tb ? d->N : d->K), d->ldb));
    CUBLAS_CHECK(c->lt->cublasLtMatrixLayoutCreate(&g->lb, ab, (uint64_t)(d->ta ? d->M : d->K), (uint64_t)(d->ta ? d->K : d->M), d->lda));
    CUBLAS_CHECK(c->lt->cublasLtMatrixLayoutCreate(&g->lc, d->c_bf16 ? CUDA_R_16BF : CUDA_R_32F, (uint64_t)d->N,
                                                   (uint64_t)d->M, d->N));
    if (d->batch > 1) {
        set_layout_batch(c, g->la, d->batch, d->sb);
        set_layout_batch(c, g->lb, d->batch, d->sa);
        set_layout_batch(c, g->lc, d->batch, d->sc);
    }
    cublasLtMatmulPreference_t pref;
    uint64_t ws = PROGRAM_GEMM_WORKSPACE;
    CUBLAS_CHECK(c->lt->cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(c->lt->cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    cublasLtMatmulHeuristicResult_t res[GEMM_CANDIDATES_MAX];
    int found = 0, n = 0;
    ASSERT(ncand >= 1 && ncand <= GEMM_CANDIDATES_MAX, "gemm candidates");
    CUBLAS_CHECK(c->lt->cublasLtMatmulAlgoGetHeuristic(c->lth, g->desc, g->la, g->lb, g->lc, g->lc, pref, ncand, res, &found));
    for (int k = 0; k < found; k++) if (res[k].state == CUBLAS_STATUS_SUCCESS) cand[n++] = res[k].algo;
    ASSERT(n > 0, "cuBLASLt has no algorithm for a %lldx%lldx%lld GEMM", (long long)d->M, (long long)d->N, (long long)d->K);
    g->algo = cand[0];
    CUBLAS_CHECK(c->lt->cublasLtMatmulPreferenceDestroy(pref));
    return n;
}

static void gemm_plan(Cuda *c, const GemmDesc *d, GemmPlan *g) {
    cublasLtMatmulAlgo_t cand[1];
    gemm_plan_candidates(c, d, g, cand, 1);
}

/* out = alpha a b (+ acc, where acc is not 0) with plan g and algorithm `algo`, queued on capture stream s (0: the
 * exec's stream) with its workspace. */
static cublasStatus_t matmul(Cuda *c, int s, const GemmPlan *g, const cublasLtMatmulAlgo_t *algo, CUdeviceptr a,
                             CUdeviceptr b, CUdeviceptr out, CUdeviceptr acc) {
    const float beta = acc ? 1.0f : 0.0f;
    return c->lt->cublasLtMatmul(c->lth, g->desc, &g->alpha, (const void *)b, g->la, (const void *)a, g->lb, &beta,
                                 (const void *)(acc ? acc : out), g->lc, (void *)out, g->lc, algo, (void *)c->ws[s],
                                 PROGRAM_GEMM_WORKSPACE, (cudaStream_t)c->side[s]);
}

static void gemm_run(Cuda *c, int s, const GemmPlan *g, CUdeviceptr a, CUdeviceptr b, CUdeviceptr out, CUdeviceptr acc) {
    CUBLAS_CHECK(matmul(c, s, g, &g->algo, a, b, out, acc));
}

/* Launches kernel f with the launch's grid on capture stream s; with pdl it may start while the previous kernel of
 * its stream finishes: every vmc kernel first lets its own successor launch, then waits for its predecessors
 * (vmc_grid_entry), so this only hides launch latency and the previous kernel's tail. (Its priority is the capture
 * stream's, set_priority, as for the GEMMs cuBLASLt launches.) */
void cx_launch_kernel(Cuda *c, CUfunction f, const unsigned *grid, const unsigned *block, unsigned smem, int s,
                          void **params) {
    CUlaunchAttribute attr[1];
    unsigned na = 0;
    if (c->pdl) {
        attr[na] = (CUlaunchAttribute){.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION};
        attr[na++].value.programmaticStreamSerializationAllowed = 1;
    }
    CUlaunchConfig cfg = {.gridDimX = grid[0], .gridDimY = grid[1], .gridDimZ = grid[2], .blockDimX = block[0],
                          .blockDimY = block[1], .blockDimZ = block[2], .sharedMemBytes = smem,
                          .hStream = c->side[s], .attrs = attr, .numAttrs = na};
    CU_CHECK(c->cu->cuLaunchKernelEx(&cfg, f, params, NULL));
}

/* Launch k's product by vmc's own kernel (skinny_gemm.cuh) on capture stream s: A, B, C, acc and the stream's
 * GEMM workspace for split-K partials, then (split K) the kernel that adds them into C. */
void cx_own_gemm_run(Cuda *c, int k, int s) {
    const Launch *l = &c->p->launches[k];
    const GemmDesc *g = &l->gemm;
    const unsigned grid[3] = {c->own_grid[k], l->own.k.grid[1], l->own.k.grid[2]};   /* (cuda_hopper_grid) */
    if (g->swiglu && g->backward) {   /* W^T into the stream's workspace, then vmc_gemm_swiglu_bwd(A, W^T as tensor
                                        * maps; P1, P2, bias1, bias2, G1, G2, S1, S2) */
        CUdeviceptr w = addr(c, g->b);
        void *tparams[2] = {&w, &c->ws[s]};
        cx_launch_kernel(c, c->reduce_fn[k], l->own.reduce.grid, l->own.reduce.block, 0, s, tparams);
        CUdeviceptr v[10] = {addr(c, g->a), c->ws[s], addr(c, g->p1), addr(c, g->p2), addr(c, g->bias1),
                             addr(c, g->bias2), addr(c, g->c), addr(c, g->c2), addr(c, g->s1), addr(c, g->s2)};
        CUtensorMap maps[3];
        void *params[10];
        /* A, W^T */
        cuda_tma_gemm_params(c->cu, &l->own.k, g->M, g->N, g->K, g->lda, g->K, false, true, v, maps, params);
        for (int i = 3; i < 10; i++) params[i] = &v[i];
        cx_launch_kernel(c, c->fn[k], grid, l->own.k.block, l->own.k.smem, s, params);
        return;
    }
    if (g->swiglu) {   /* vmc_gemm_swiglu(A, B1, B2 as tensor maps; bias1, bias2, H, P1, P2) */
        CUdeviceptr v[8] = {addr(c, g->a), addr(c, g->b), addr(c, g->b2), addr(c, g->bias1), addr(c, g->bias2),
                            addr(c, g->h), g->products ? addr(c, g->c) : 0, g->products ? addr(c, g->c2) : 0};
        CUtensorMap maps[8];
        void *params[8];
        cuda_tma_swiglu_params(c->cu, &l->own.k, g->M, g->N, g->K, g->lda, g->ldb, v, maps, params);
        cx_launch_kernel(c, c->fn[k], grid, l->own.k.block, l->own.k.smem, s, params);
        return;
    }
    /* the skinny kernel's fifth parameter is the split's workspace; a pair's Hopper kernel takes A2, B2 last */
    CUdeviceptr v[6] = {addr(c, g->a), addr(c, g->b), addr(c, g->c), g->has_acc ? addr(c, g->acc) : 0,
                        g->pair ? addr(c, g->a2) : c->ws[s], g->pair ? addr(c, g->b2) : 0};
    void *params[6] = {&v[0], &v[1], &v[2], &v[3], &v[4], &v[5]};
    CUtensorMap maps[6];   /* the Hopper kernel's operands as tensor maps (host work: only when captured or timed) */
    cuda_tma_gemm_params(c->cu, &l->own.k, g->M, g->N, g->K, g->lda, g->ldb, g->ta, g->tb, v, maps, params);
    for (int z = 0; z < l->own.k.nzero; z++)   /* (the Hopper kernel's parts of K are added into C) */
        CU_CHECK(c->cu->cuMemsetD8Async(v[l->own.k.zero[z].param] + l->own.k.zero[z].offset, 0, l->own.k.zero[z].bytes,
                                        c->side[s]));
    cx_launch_kernel(c, c->fn[k], grid, l->own.k.block, l->own.k.smem, s, params);
    if (l->own.split > 1) {
        void *rparams[3] = {&v[4], &v[2], &v[3]};
        cx_launch_kernel(c, c->reduce_fn[k], l->own.reduce.grid, l->own.reduce.block, 0, s, rparams);
    }
}

/* GEMM autotuning: the heuristic's first choice is often not the fastest for the skinny products of the mixer
 * (N = 80 or K = 48) and the weight gradients (K = tokens). Before the first step, each distinct shape times its
 * candidates on the launch's own buffers (outputs are overwritten before anything has been computed into them)
 * and keeps the fastest; through the tune cache (gemm_tune_cache.h) later launches of the same shape reuse it, and
 * so does the next start (the cache is kept on disk). VMC_GEMM_TUNE=0 keeps the heuristic's choice. */

/* Milliseconds for GEMM_TUNE_REPS runs of g with `algo`, or -1 when cuBLASLt refuses it. */
static float time_algo(Cuda *c, GemmPlan *g, const cublasLtMatmulAlgo_t *algo, CUdeviceptr a, CUdeviceptr b,
                       CUdeviceptr out, CUevent t0, CUevent t1) {
    for (int k = -1; k < GEMM_TUNE_REPS; k++) {   /* k = -1: a warm-up run, not timed */
        if (k == 0) CU_CHECK(c->cu->cuEventRecord(t0, c->st));
        if (matmul(c, 0, g, algo, a, b, out, 0) != CUBLAS_STATUS_SUCCESS) { CU_CHECK(c->cu->cuStreamSynchronize(c->st)); return -1.f; }
    }
    CU_CHECK(c->cu->cuEventRecord(t1, c->st));
    CU_CHECK(c->cu->cuEventSynchronize(t1));
    float ms = 0;
    CU_CHECK(c->cu->cuEventElapsedTime(&ms, t0, t1));
    return ms;
}

/* Milliseconds for GEMM_TUNE_REPS runs of launch k by vmc's own kernel (after a warm-up run). */
static float time_own(Cuda *c, int k, CUevent t0, CUevent t1) {
    cx_own_gemm_run(c, k, 0);
    CU_CHECK(c->cu->cuEventRecord(t0, c->st));
    for (int r = 0; r < GEMM_TUNE_REPS; r++) cx_own_gemm_run(c, k, 0);
    CU_CHECK(c->cu->cuEventRecord(t1, c->st));
    CU_CHECK(c->cu->cuEventSynchronize(t1));
    float ms = 0;
    CU_CHECK(c->cu->cuEventElapsedTime(&ms, t0, t1));
    return ms;
}

/* Elements an operand's pointer reaches: `rows` rows ld apart, `cols` contiguous in each. */
static size_t operand_span(int64_t rows, int64_t ld, int64_t cols) { return (size_t)((rows - 1) * ld + cols); }

/* Does launch k's own kernel compute what cuBLASLt does (g's algorithm), on random operands written into the
 * launch's own buffers (before the first step: nothing has been computed into them yet)? A kernel new to this GPU
 * must not be picked for being fast if it is wrong. *err: the largest difference over the largest value. */
static bool own_agrees(Cuda *c, int k, GemmPlan *g, double *err) {
    const GemmDesc *d = &c->p->launches[k].gemm;
    const size_t na = operand_span(d->ta ? d->K : d->M, d->lda, d->ta ? d->M : d->K);
    const size_t nb = operand_span(d->tb ? d->N : d->K, d->ldb, d->tb ? d->K : d->N);
    const size_t nc = (size_t)(d->M * d->N), es = d->c_bf16 ? 2 : 4;
    uint16_t *ha = xmalloc(2 * na), *hb = xmalloc(2 * nb);
    unsigned char *c1 = xmalloc(es * nc), *c2 = xmalloc(es * nc);
    uint64_t r = 0x9e3779b97f4a7c15ull ^ (uint64_t)k;
    for (size_t i = 0; i < na + nb; i++) {   /* bf16 values in [-1, 1) */
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        (i < na ? ha : hb)[i < na ? i : i - na] = f32_to_bf16((float)((double)(r >> 11) / 4503599627370496.0 - 1.0));
    }
    const CUdeviceptr a = addr(c, d->a), b = addr(c, d->b), out = addr(c, d->c), acc = d->has_acc ? addr(c, d->acc) : 0;
    copy_in(c, a, ha, 2 * na);
    copy_in(c, b, hb, 2 * nb);
    CUBLAS_CHECK(matmul(c, 0, g, &g->algo, a, b, out, acc));
    copy_out(c, c1, out, es * nc);
    cx_own_gemm_run(c, k, 0);
    copy_out(c, c2, out, es * nc);
    double big = 0, diff = 0;
    for (size_t i = 0; i < nc; i++) {
        const float x = d->c_bf16 ? bf16_to_f32(((uint16_t *)c1)[i]) : ((float *)c1)[i];
        const float y = d->c_bf16 ? bf16_to_f32(((uint16_t *)c2)[i]) : ((float *)c2)[i];
        if (isnan(x) && isnan(y)) continue;   /* (an accumulated input may hold anything yet) */
        if (fabs(x) > big) big = fabs(x);
        if (!(fabs((double)x - y) <= diff)) diff = isnan(x) || isnan(y) ? INFINITY : fabs((double)x - y);
    }
    free(ha); free(hb); free(c1); free(c2);
    *err = big > 0 ? diff / big : diff;
    return *err <= 1.0 / 64;   /* bf16 rounding of the results and f32 sums in another order: well below */
}

static void warn_disagrees(const Launch *l, double err) {
    fprintf(stderr, "vmc: warning: the own kernel for GEMM %s disagrees with cuBLASLt on random operands (largest "
                    "difference %.3g of the largest value); cuBLASLt runs it\n", l->name, err);
}

/* Candidates timed per shape: VMC_GEMM_CANDIDATES (1 to GEMM_CANDIDATES_MAX) overrides the default for tuning
 * experiments (a fresh NVRTC cache directory then, since tuned shapes keep the algorithm chosen first). 32 measured
 * no faster than 8 on ARM-B's steps (H200: 33.64 / 72.22 / 35.76 ms against 33.47 / 72.09 / 35.78, one run). */
static int gemm_candidates(void) {
    return (int)env_int("VMC_GEMM_CANDIDATES", 1, GEMM_CANDIDATES_MAX, GEMM_CANDIDATES);
}

void cx_plan_gemms(Cuda *c) {
    const char *env = getenv("VMC_GEMM_TUNE");
    const bool tune = !(env && !strcmp(env, "0"));
    const int ncand = gemm_candidates();
    const bool log = env_int("VMC_GEMM_LOG", 0, 1, 0) == 1;   /* each timed own kernel against cuBLASLt */
    CUdevice dev;
    char devname[128] = "";
    CU_CHECK(c->cu->cuCtxGetDevice(&dev));
    CU_CHECK(c->cu->cuDeviceGetName(devname, sizeof devname, dev));
    TuneCache *cache = tune_cache_open(devname);
    CUevent t0, t1;
    CU_CHECK(c->cu->cuEventCreate(&t0, CU_EVENT_DEFAULT));
    CU_CHECK(c->cu->cuEventCreate(&t1, CU_EVENT_DEFAULT));
    for (int k = 0; k < c->p->nlaunches; k++) {
        const Launch *l = &c->p->launches[k];
        if (l->kind != LK_GEMM) continue;
        GemmPlan *g = &c->gemm[k];
        if (gemm_one_launch(&l->gemm)) {   /* (against the launches it stands for, planned before it) */
            cx_plan_choice(c, k, tune, log);
            continue;
        }
        cublasLtMatmulAlgo_t cand[GEMM_CANDIDATES_MAX];
        int n = gemm_plan_candidates(c, &l->gemm, g, cand, tune ? ncand : 1);
        const bool own = l->own_module >= 0 && c->own_gemm > 0;
        if (own && c->own_gemm == 2) { g->own = true; continue; }
        if (own && c->own_gemm == 3) {   /* wherever it agrees with cuBLASLt's heuristic choice */
            double err = 0;
            g->own = own_agrees(c, k, g, &err);
            if (!g->own) warn_disagrees(l, err);
            continue;
        }
        const bool own_timed = own && tune;
        TuneOwn found = TUNE_OWN_UNTIMED;
        const uint64_t own_key = own && tune ? tune_own_key(c->p->modules[l->own_module].src, l->own.k.name) : 0;
        const bool cached = tune && tune_cache_find(cache, &l->gemm, own_key, cand, n, &g->algo, &found);
        g->own = found == TUNE_OWN_FASTER;
        /* time unless cached, and where this product has its own kernel, cached with it timed (an entry from a
         * run without own kernels, VMC_OWN_GEMM=0, leaves it untimed) */
        if ((n > 1 || own_timed) && (!cached || (own_timed && found == TUNE_OWN_UNTIMED))) {
            float best = -1.f;
            for (int j = 0; j < n && n > 1; j++) {
                float ms = time_algo(c, g, &cand[j], addr(c, l->gemm.a), addr(c, l->gemm.b), addr(c, l->gemm.c), t0, t1);
                if (ms >= 0.f && (best < 0.f || ms < best)) { best = ms; g->algo = cand[j]; }
            }
            if (n == 1) best = time_algo(c, g, &cand[0], addr(c, l->gemm.a), addr(c, l->gemm.b), addr(c, l->gemm.c), t0, t1);
            g->own = false;
            if (own_timed) {
                const float ms = time_own(c, k, t0, t1);
                g->own = best < 0.f || ms < best;   /* (best < 0: cuBLASLt refused every candidate) */
                double err = 0;
                if (g->own && best >= 0.f && !own_agrees(c, k, g, &err)) {
                    warn_disagrees(l, err);
                    g->own = false;
                }
                if (log)
                    fprintf(stderr, "gemm tune: %s: cuBLASLt %.1f us (best of %d), own kernel %.1f us: %s\n", l->name,
                            1e3 * best / GEMM_TUNE_REPS, n, 1e3 * ms / GEMM_TUNE_REPS, g->own ? "own" : "cuBLASLt");
            }
            tune_cache_put(cache, &l->gemm, own_key, &g->algo,
                           !own_timed ? TUNE_OWN_UNTIMED : g->own ? TUNE_OWN_FASTER : TUNE_OWN_SLOWER);
        }
        g->own = g->own && own;   /* a cached choice of the own kernel, for a launch that has none */
    }
    CU_CHECK(c->cu->cuEventDestroy(t0));
    CU_CHECK(c->cu->cuEventDestroy(t1));
    tune_cache_close(cache);
}

void cx_gemm_launch(Cuda *c, int k, int s) {
    const Launch *l = &c->p->launches[k];
    if (c->gemm[k].own) cx_own_gemm_run(c, k, s);
    else gemm_run(c, s, &c->gemm[k], addr(c, l->gemm.a), addr(c, l->gemm.b), addr(c, l->gemm.c),
                  l->gemm.has_acc ? addr(c, l->gemm.acc) : 0);
}

void cuda_exec_own_gemms(const Exec *e, int *own, int *eligible) {
    const Cuda *c = (const Cuda *)e;
    *own = *eligible = 0;
    for (int k = 0; k < c->p->nlaunches; k++) {
        const Launch *l = &c->p->launches[k];
        if (l->kind != LK_GEMM || l->own_module < 0 || gemm_one_launch(&l->gemm)) continue;   /* (cuda_exec_choices) */
        ++*eligible;
        *own += c->gemm[k].own;
    }
}

void cuda_exec_choices(const Exec *e, int *one, int *all) {
    const Cuda *c = (const Cuda *)e;
    *all = c->p->nchoices;
    *one = 0;
    for (int k = 1; k <= c->p->nchoices; k++) *one += c->choice_one[k];
}

/* ---------------------------------------------------------------- GEMM peak */
typedef struct PeakRun { GemmPlan *g; CUdeviceptr a, b, out; int reps; } PeakRun;
static void peak_runs(Cuda *c, void *ctx) {
    const PeakRun *r = ctx;
    for (int k = 0; k < r->reps; k++) gemm_run(c, 0, r->g, r->a, r->b, r->out, 0);
}

double cuda_gemm_peak_tflops(Exec *e, int64_t n, int reps) {
    Cuda *c = (Cuda *)e;
    GemmDesc d = {.M = n, .N = n, .K = n, .batch = 1, .lda = n, .ldb = n, .bf16 = true, .alpha = 1};
    CUdeviceptr a, b, out;
    CU_CHECK(c->cu->cuMemAlloc(&a, (size_t)(n * n * 2)));
    CU_CHECK(c->cu->cuMemAlloc(&b, (size_t)(n * n * 2)));
    CU_CHECK(c->cu->cuMemAlloc(&out, (size_t)(n * n * 4)));
    CU_CHECK(c->cu->cuMemsetD8(a, 0x3c, (size_t)(n * n * 2)));   /* bf16 0x3c3c ~ 0.0115: finite, no denormals */
    CU_CHECK(c->cu->cuMemsetD8(b, 0x3c, (size_t)(n * n * 2)));
    GemmPlan g;
    gemm_plan(c, &d, &g);
    PeakRun run = {&g, a, b, out, 3};
    peak_runs(c, &run);   /* warm-up */
    run.reps = reps;
    const float ms = cx_time_ms(c, peak_runs, &run);
    c->lt->cublasLtMatrixLayoutDestroy(g.la);
    c->lt->cublasLtMatrixLayoutDestroy(g.lb);
    c->lt->cublasLtMatrixLayoutDestroy(g.lc);
    c->lt->cublasLtMatmulDescDestroy(g.desc);
    c->cu->cuMemFree(a); c->cu->cuMemFree(b); c->cu->cuMemFree(out);
    return 2.0 * (double)n * (double)n * (double)n * reps / ((double)ms * 1e-3) * 1e-12;
}
