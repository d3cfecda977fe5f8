/* test_cuda_exec.c — [gpu] the cuda backend against the cpu oracle on random inputs: small graphs covering every
 * op class and fusion pattern (each generated kernel kind, GEMM layouts, templates), then the tiny models'
 * losses and every parameter gradient, then 50 fp32 training steps whose losses must match the cpu backend's.
 * Prints max abs / normalised errors per tensor (llm.c check_tensor style). Exit 77 (skip) without a GPU. */
#include "autodiff.h"
#include "cuda_api.h"
#include "cuda_exec.h"
#include "dsl.h"
#include "init.h"
#include "optim.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static double worst;

/* ---------------------------------------------------------------- helpers */
static void fill_node(const Node *n, uint64_t key, void *buf) {
    size_t len = (size_t)shape_numel(n->shape);
    for (size_t i = 0; i < len; i++) {
        RngBlock r = rng_philox(11, key, i, 0);
        if (n->dtype == DT_I32) ((int32_t *)buf)[i] = (int32_t)rng_below(r.x[0], 10);
        else ((float *)buf)[i] = (float)rng_normal(r.x[0], r.x[1]);
    }
}

/* Same values into both backends. Params from their initialisers unless random is asked for. */
static void write_both(Exec *a, Exec *b, const Node *n, uint64_t key, bool init) {
    size_t len = (size_t)shape_numel(n->shape);
    void *buf = xmalloc(len * 4 + 4);
    if (init && n->op == OP_PARAM) init_param(n, 1, buf);
    else fill_node(n, key, buf);
    if (init && n->op == OP_PARAM && n->dtype == DT_I32) for (size_t i = 0; i < len; i++) ((int32_t *)buf)[i] = (int32_t)((float *)buf)[i];
    exec_write(a, n, buf, len * 4);
    exec_write(b, n, buf, len * 4);
    free(buf);
}

/* Max |gpu - cpu| normalised by max |cpu| (1 when cpu is all zero). */
static double compare(const char *what, Exec *cpu, Exec *gpu, const Node *n, double tol) {
    size_t len = (size_t)shape_numel(n->shape), esz = (size_t)dtype_size(n->dtype);
    float *x = xmalloc(len * 4 + 4), *y = xmalloc(len * 4 + 4);
    exec_read(cpu, n, x, len * esz);
    exec_read(gpu, n, y, len * esz);
    if (n->dtype == DT_BF16)   /* widen in place, back to front */
        for (size_t i = len; i-- > 0;) {
            uint32_t ux = (uint32_t)((uint16_t *)x)[i] << 16, uy = (uint32_t)((uint16_t *)y)[i] << 16;
            memcpy(&x[i], &ux, 4);
            memcpy(&y[i], &uy, 4);
        }
    double maxd = 0, maxr = 0;
    bool nan = false;
    for (size_t i = 0; i < len; i++) {
        double a = n->dtype == DT_I32 ? ((int32_t *)x)[i] : x[i], b = n->dtype == DT_I32 ? ((int32_t *)y)[i] : y[i];
        if (isnan(a) != isnan(b)) nan = true;
        if (isnan(a) || isnan(b)) continue;
        if (fabs(a - b) > maxd) maxd = fabs(a - b);
        if (fabs(a) > maxr) maxr = fabs(a);
    }
    double rel = maxd / (maxr > 0 ? maxr : 1);
    bool ok = rel <= tol && !nan;
    printf("  %-44s n=%-8zu max|d|=%.3g rel=%.3g (%.0f%% of tol)%s\n", what, len, maxd, rel, 100 * rel / tol,
           ok ? "" : nan ? "  NaN MISMATCH" : "  FAIL");
    if (!ok) failures++;
    if (rel > worst) worst = rel;
    free(x); free(y);
    return rel;
}

static bool bf16_mode;   /* GEMM operands in bf16 for the executors made next */

static Exec *gpu_exec(const Graph *g, Node *const *keep, int nkeep) {
    CudaExecOptions o = {.bf16 = bf16_mode};
    char err[2048];
    Exec *e = cuda_exec_create(g, keep, nkeep, &o, err, sizeof err);
    if (!e) { fprintf(stderr, "cuda exec: %s\n", err); exit(1); }
    return e;
}

/* Runs a hand-built graph on both backends and compares every named output. */
static void check_graph(const char *what, Graph *g, double tol) {
    printf("%s\n", what);
    Node **keep = xcalloc((size_t)g->nnamed + 1, sizeof(Node *));
    for (int k = 0; k < g->nnamed; k++) keep[k] = g->named[k].node;
    Exec *cpu = cpu_exec_new(g, keep, g->nnamed), *gpu = gpu_exec(g, keep, g->nnamed);
    free(keep);
    for (int k = 0; k < g->params.n; k++) write_both(cpu, gpu, g->params.items[k], 100 + (uint64_t)k, false);
    for (int k = 0; k < g->inputs.n; k++) write_both(cpu, gpu, g->inputs.items[k], 200 + (uint64_t)k, false);
    StepInfo s = {.seed = 5, .step = 3};
    exec_run(cpu, &s);
    exec_run(gpu, &s);
    for (int k = 0; k < g->nnamed; k++) compare(g->named[k].name, cpu, gpu, g->named[k].node, tol);
    exec_free(cpu);
    exec_free(gpu);
    graph_free(g);
}

static Node *in(Graph *g, const char *name, Shape s) { return g_input(g, name, s, DT_F32, LOC_NONE); }
static Node *bin(Graph *g, OpKind op, Node *a, Node *b) { Node *n = g_binary(g, op, a, b, LOC_NONE); ASSERT(n, "%s", g->err); return n; }
static void out(Graph *g, const char *name, Node *n) { graph_add_named(g, name, n, NF_OUTPUT); }
#define S2(a, b) shape_of(2, (int64_t)(a), (int64_t)(b))
#define S3(a, b, c) shape_of(3, (int64_t)(a), (int64_t)(b), (int64_t)(c))

/* ---------------------------------------------------------------- small graphs */
static void test_elementwise(void) {
    Graph *g = graph_new();
    Node *x = in(g, "x", S3(3, 17, 33)), *y = in(g, "y", S2(17, 1)), *p = in(g, "p", S3(3, 17, 33));
    static const OpKind un[] = {OP_NEG, OP_EXP, OP_TANH, OP_ERF, OP_SIGMOID, OP_SILU, OP_SOFTPLUS, OP_RELU, OP_ABS};
    for (size_t k = 0; k < COUNTOF(un); k++) out(g, op_name(un[k]), g_unary(g, un[k], x, LOC_NONE));
    Node *pos = bin(g, OP_ADD, g_unary(g, OP_ABS, p, LOC_NONE), g_scalar(g, 0.5));
    out(g, "log", g_unary(g, OP_LOG, pos, LOC_NONE));
    out(g, "sqrt", g_unary(g, OP_SQRT, pos, LOC_NONE));
    out(g, "rsqrt", g_unary(g, OP_RSQRT, pos, LOC_NONE));
    out(g, "recip", g_unary(g, OP_RECIP, pos, LOC_NONE));
    static const OpKind bi[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_MIN, OP_CMP_GT};
    for (size_t k = 0; k < COUNTOF(bi); k++) out(g, op_name(bi[k]), bin(g, bi[k], x, bi[k] == OP_DIV ? pos : y));
    out(g, "where", g_where(g, bin(g, OP_CMP_GT, x, y), p, y, LOC_NONE));
    out(g, "cast_bf16", g_cast(g, x, DT_BF16, LOC_NONE));
    out(g, "cast_i32", g_cast(g, bin(g, OP_MUL, x, g_scalar(g, 10)), DT_I32, LOC_NONE));
    out(g, "drop_mask", bin(g, OP_MUL, x, g_drop_mask(g, S3(3, 1, 1), 0.4, 9, LOC_NONE)));
    out(g, "chain", g_unary(g, OP_SIGMOID, bin(g, OP_MUL, g_unary(g, OP_TANH, bin(g, OP_ADD, x, y), LOC_NONE), p), LOC_NONE));
    check_graph("elementwise ops, broadcasting, casts, drop mask", g, 1e-5);
}

static void test_reductions(void) {
    Graph *g = graph_new();
    Node *x = in(g, "x", S3(5, 300, 7));
    for (int ax = 0; ax < 3; ax++) {
        char name[32];
        snprintf(name, sizeof name, "sum_axis%d", ax);
        out(g, name, g_reduce(g, OP_SUM, bin(g, OP_MUL, x, x), ax, LOC_NONE));
        snprintf(name, sizeof name, "amax_axis%d", ax);
        out(g, name, g_reduce(g, OP_AMAX, x, ax, LOC_NONE));
    }
    /* column sums over a long axis, split over blocks (bias gradients); one long row split over blocks (losses) */
    Node *t = in(g, "t", S2(4096, 96));
    out(g, "column_split_sum", g_reduce(g, OP_SUM, bin(g, OP_MUL, t, t), 0, LOC_NONE));
    out(g, "long_row_sum", g_reduce(g, OP_SUM, g_reshape(g, t, shape_of(1, (int64_t)(4096 * 96)), LOC_NONE), 0, LOC_NONE));
    /* layernorm + residual, softmax with mask and scale */
    Node *r = in(g, "r", S3(5, 300, 7)), *h = bin(g, OP_ADD, x, r);
    Node *mean = bin(g, OP_DIV, g_reduce(g, OP_SUM, h, 1, LOC_NONE), g_scalar(g, 300));
    Node *xc = bin(g, OP_SUB, h, mean);
    Node *var = bin(g, OP_DIV, g_reduce(g, OP_SUM, bin(g, OP_MUL, xc, xc), 1, LOC_NONE), g_scalar(g, 300));
    out(g, "layernorm", bin(g, OP_MUL, xc, g_unary(g, OP_RSQRT, bin(g, OP_ADD, var, g_scalar(g, 1e-5)), LOC_NONE)));
    out(g, "residual", h);
    Node *sc = in(g, "scores", S3(4, 64, 64)), *mask = in(g, "mask", S2(64, 64));
    Node *s = bin(g, OP_ADD, bin(g, OP_MUL, sc, g_scalar(g, 0.125)), mask);
    Node *e = g_unary(g, OP_EXP, bin(g, OP_SUB, s, g_reduce(g, OP_AMAX, s, -1, LOC_NONE)), LOC_NONE);
    out(g, "softmax", bin(g, OP_DIV, e, g_reduce(g, OP_SUM, e, -1, LOC_NONE)));
    check_graph("reductions (every axis), layernorm + residual, softmax + mask + scale", g, 1e-5);
}

static void test_movement(void) {
    Graph *g = graph_new();
    Node *x = in(g, "x", S3(4, 12, 10));
    int perm[3] = {2, 0, 1};
    out(g, "permute", g_unary(g, OP_EXP, g_permute(g, x, perm, LOC_NONE), LOC_NONE));
    out(g, "reshape", g_reshape(g, g_unary(g, OP_TANH, x, LOC_NONE), S2(48, 10), LOC_NONE));
    out(g, "slice", g_slice(g, x, 1, 3, 9, LOC_NONE));
    out(g, "pad", g_pad(g, g_unary(g, OP_NEG, x, LOC_NONE), 2, 2, 15, LOC_NONE));
    Node *parts[3] = {x, g_slice(g, x, 2, 0, 4, LOC_NONE), g_unary(g, OP_ABS, x, LOC_NONE)};
    out(g, "concat", g_concat(g, parts, 3, 2, LOC_NONE));
    out(g, "expand", bin(g, OP_MUL, g_expand(g, g_slice(g, x, 0, 0, 1, LOC_NONE), S3(4, 12, 10), LOC_NONE), x));
    int32_t idx[12] = {11, 0, 3, 3, 7, 1, 2, 9, 8, 4, 5, 6};
    out(g, "gather", g_gather(g, g_unary(g, OP_SIGMOID, x, LOC_NONE), 1, idx, 12, LOC_NONE));
    out(g, "scatter_add", g_scatter_add(g, g_unary(g, OP_SIGMOID, x, LOC_NONE), 1, idx, 12, LOC_NONE));
    Node *rp = g_randperm(g, 12, 4, LOC_NONE);
    out(g, "randperm", rp);
    out(g, "gather_dyn", g_gather_dyn(g, x, 1, rp, LOC_NONE));
    out(g, "scatter_add_dyn", g_scatter_add_dyn(g, bin(g, OP_MUL, x, x), 1, rp, LOC_NONE));
    out(g, "extract", g_extract(g, g_reshape(g, g_unary(g, OP_EXP, x, LOC_NONE), shape_of(1, (int64_t)480), LOC_NONE), 40,
                                S2(4, 10), LOC_NONE));
    check_graph("movement ops as index math, randperm, scatters", g, 1e-5);
}

static void test_gemm(void) {
    Graph *g = graph_new();
    Node *a = in(g, "a", S3(3, 33, 70)), *w = in(g, "w", S2(50, 70)), *b = in(g, "b", S3(3, 70, 20));
    Node *at = in(g, "at", S3(3, 70, 33)), *bias = in(g, "bias", shape_of(1, (int64_t)50));
    out(g, "linear_bias_gelu", g_unary(g, OP_SILU, bin(g, OP_ADD, g_matmul(g, a, w, false, true, LOC_NONE), bias), LOC_NONE));
    out(g, "batched", g_matmul(g, a, b, false, false, LOC_NONE));
    out(g, "batched_ta", g_matmul(g, at, b, true, false, LOC_NONE));
    out(g, "weight_grad", g_matmul(g, g_reshape(g, a, S2(99, 70), LOC_NONE), g_reshape(g, at, S2(99, 70), LOC_NONE), true, false, LOC_NONE));
    out(g, "shared_b", g_matmul(g, a, g_permute(g, w, (int[]){1, 0}, LOC_NONE), false, false, LOC_NONE));
    check_graph("GEMMs: linear + epilogue, batched, transposed, shared operand", g, 1e-5);
}

/* The mixer's skinny products in bf16, where vmc's own kernel (skinny_gemm.cuh) competes with cuBLASLt (with
 * VMC_OWN_GEMM=2, ctest cuda_exec_own_gemm, it runs every one): x_proj and dt_proj forward (dt_proj reading a
 * column view), their input gradients (one accumulated), and the weight gradients over all tokens (K split). */
static void test_skinny_gemms(void) {
    Graph *g = graph_new();
    const int64_t T = 1200, D = 96, R = 48, X = 80;
    Node *u = in(g, "u", S2(T, D)), *wx = in(g, "wx", S2(X, D)), *wdt = in(g, "wdt", S2(D, R));
    Node *dd = in(g, "ddelta", S2(T, D)), *dxd = in(g, "dxdbl", S2(T, X)), *other = in(g, "other", S2(T, D));
    Node *xdbl = g_matmul(g, u, wx, false, true, LOC_NONE);
    Node *dt = g_slice(g, xdbl, 1, 0, R, LOC_NONE);
    out(g, "x_proj", xdbl);
    out(g, "dt_proj", g_matmul(g, dt, wdt, false, true, LOC_NONE));
    out(g, "dt_proj_dx", g_matmul(g, dd, wdt, false, false, LOC_NONE));
    out(g, "x_proj_dx_plus", bin(g, OP_ADD, g_matmul(g, dxd, wx, false, false, LOC_NONE), other));
    out(g, "x_proj_dw", g_matmul(g, dxd, u, true, false, LOC_NONE));
    out(g, "dt_proj_dw", g_matmul(g, dd, dt, true, false, LOC_NONE));
    check_graph("skinny GEMMs (bf16): x_proj / dt_proj forward, input and weight gradients", g, 2e-2);
}

static void test_templates(void) {
    Graph *g = graph_new();
    int64_t B = 2, L = 37, D = 24, N = 16, K = 4;
    Node *x = in(g, "x", S3(B, L, D)), *w = in(g, "w", S3(D, 1, K)), *cb = in(g, "cb", shape_of(1, D));
    Node *dy = in(g, "dy", S3(B, L, D));
    out(g, "conv1d", g_conv1d(g, x, w, cb, LOC_NONE));
    Node *x2 = bin(g, OP_MUL, x, g_scalar(g, 0.5));     /* a conv read only by its SILU: the template applies it */
    out(g, "conv1d_silu", bin(g, OP_MUL, g_unary(g, OP_SILU, g_conv1d(g, x2, w, cb, LOC_NONE), LOC_NONE), g_scalar(g, 2)));
    out(g, "conv1d_bwd_x", g_conv1d_bwd_x(g, dy, w, LOC_NONE));
    out(g, "conv1d_bwd_w", g_conv1d_bwd_w(g, dy, x, K, LOC_NONE));
    Node *sin[8] = {in(g, "u", S3(B, L, D)), bin(g, OP_MUL, in(g, "delta", S3(B, L, D)), g_scalar(g, 0.3)),
                    bin(g, OP_MUL, in(g, "A_log", S2(D, N)), g_scalar(g, 0.5)), in(g, "Bm", S3(B, L, N)),
                    in(g, "Cm", S3(B, L, N)), in(g, "D", shape_of(1, D)), in(g, "delta_bias", shape_of(1, D)),
                    in(g, "z", S3(B, L, D))};
    out(g, "scan", g_scan(g, sin, 8, LOC_NONE));
    out(g, "scan_bwd", g_scan_bwd(g, sin, 8, dy, LOC_NONE));
    out(g, "scan_ungated", g_scan(g, sin, 7, LOC_NONE));
    out(g, "scan_bwd_ungated", g_scan_bwd(g, sin, 7, dy, LOC_NONE));
    out(g, "conv1d_bwd", g_conv1d_bwd(g, dy, x, w, LOC_NONE));
    /* row maps (pass_fuse): a reversed x into the conv; the scan's u, z, Bm, Cm as channel slices of one wide
     * tensor, z also reversed; the reversed dy into the packed conv backward */
    int32_t rev[37];
    for (int t = 0; t < L; t++) rev[t] = (int32_t)(L - 1 - t);
    Node *wide = in(g, "wide", S3(B, L, 2 * D + 2 * N));
    out(g, "conv1d_mapped", g_conv1d(g, g_gather(g, x, 1, rev, L, LOC_NONE), w, cb, LOC_NONE));
    Node *min[8] = {g_slice(g, wide, 2, 0, D, LOC_NONE), sin[1], sin[2], g_slice(g, wide, 2, 2 * D, 2 * D + N, LOC_NONE),
                    g_slice(g, wide, 2, 2 * D + N, 2 * D + 2 * N, LOC_NONE), sin[5], sin[6],
                    g_gather(g, g_slice(g, wide, 2, D, 2 * D, LOC_NONE), 1, rev, L, LOC_NONE)};
    out(g, "scan_mapped", g_scan(g, min, 8, LOC_NONE));
    out(g, "conv1d_bwd_mapped", g_conv1d_bwd(g, g_gather(g, dy, 1, rev, L, LOC_NONE), x, w, LOC_NONE));
    check_graph("templates: causal conv1d (+ backward), selective scan (+ backward), row-mapped inputs", g, 1e-4);
}

/* ---------------------------------------------------------------- whole models */
static DslModule *load_tiny(void) {
    Diag d;
    diag_init(&d, stderr);
    DslOptions o = {0};
    char path[1024];
    snprintf(path, sizeof path, "%s/models/tiny.vmc", getenv("VMC_ROOT") ? getenv("VMC_ROOT") : VMC_ROOT);
    DslModule *m = dsl_load(path, &o, &d);
    if (!m) { fprintf(stderr, "cannot load models/tiny.vmc\n"); exit(1); }
    return m;
}

static void fill_model(Exec *cpu, Exec *gpu, const Graph *g) {
    for (int k = 0; k < g->params.n; k++) write_both(cpu, gpu, g->params.items[k], 300 + (uint64_t)k, true);
    for (int k = 0; k < g->inputs.n; k++) {
        const Node *n = g->inputs.items[k];
        if (!strcmp(n->name, "lr") || !strcmp(n->name, "step")) continue;
        write_both(cpu, gpu, n, 400 + (uint64_t)k, false);
    }
}

/* Loss and every parameter gradient of one step. */
static void test_model_grads(DslModule *m, const char *model, double tol) {
    printf("%s: loss and every gradient%s\n", model, bf16_mode ? " (bf16 GEMM operands)" : "");
    Diag d;
    diag_init(&d, stderr);
    Graph *g = dsl_build_model(m, model, &d);
    Node **grads = xcalloc((size_t)g->params.n + 1, sizeof(Node *));
    char err[512];
    ASSERT(autodiff_backward(g, g->loss, grads, err, sizeof err), "%s", err);
    Node **keep = xcalloc((size_t)g->params.n + 2, sizeof(Node *));
    int nk = 0;
    keep[nk++] = g->loss;
    for (int k = 0; k < g->params.n; k++) if (grads[k]) keep[nk++] = grads[k];
    Exec *cpu = cpu_exec_new(g, keep, nk), *gpu = gpu_exec(g, keep, nk);
    fill_model(cpu, gpu, g);
    StepInfo s = {.seed = 3, .step = 1};
    exec_run(cpu, &s);
    exec_run(gpu, &s);
    compare("loss", cpu, gpu, g->loss, tol / 10);
    for (int k = 0; k < g->params.n; k++) {
        if (!grads[k]) continue;
        char name[160];
        snprintf(name, sizeof name, "d %s", ((Node *)g->params.items[k])->name);
        compare(name, cpu, gpu, grads[k], tol);
    }
    exec_free(cpu);
    exec_free(gpu);
    free(grads);
    free(keep);
    graph_free(g);
}

/* Forward only (no backward: conv1d writes silu(conv) itself, stored in bf16 under bf16 precision for the scan
 * and x_proj to read). */
static void test_model_forward(DslModule *m, const char *model, const char *output, double tol) {
    printf("%s: forward, %s%s\n", model, output, bf16_mode ? " (bf16 GEMM operands)" : "");
    Diag d;
    diag_init(&d, stderr);
    Graph *g = dsl_build_model(m, model, &d);
    Node *out = NULL;
    for (int k = 0; k < g->nnamed; k++) if (!strcmp(g->named[k].name, output)) out = g->named[k].node;
    ASSERT(out, "%s has no output %s", model, output);
    Node *keep[2] = {out, g->loss};
    Exec *cpu = cpu_exec_new(g, keep, 2), *gpu = gpu_exec(g, keep, 2);
    fill_model(cpu, gpu, g);
    StepInfo s = {.seed = 3, .step = 1};
    exec_run(cpu, &s);
    exec_run(gpu, &s);
    compare(output, cpu, gpu, out, tol);
    compare("loss", cpu, gpu, g->loss, tol);
    exec_free(cpu);
    exec_free(gpu);
    graph_free(g);
}

/* Step t's batch: fresh values of every input but lr and step, into both backends; the cuda one lent from
 * page-locked memory (exec_write_borrowed) as the training loop lends the loader's batch, released before that
 * memory is written again (pinned: two buffers per input, used in turn). */
static void feed_step(Exec *cpu, Exec *gpu, const Graph *g, int t, void **pinned) {
    exec_write_release(gpu);
    for (int k = 0; k < g->inputs.n; k++) {
        const Node *n = g->inputs.items[k];
        if (!strcmp(n->name, "lr") || !strcmp(n->name, "step")) continue;
        const size_t bytes = (size_t)shape_numel(n->shape) * 4;
        void **buf = &pinned[2 * k + (t & 1)];
        if (!*buf) CU_CHECK(cuda_api()->cuMemAllocHost(buf, bytes));
        fill_node(n, 400 + (uint64_t)k + 1000 * (uint64_t)t, *buf);
        exec_write(cpu, n, *buf, bytes);
        exec_write_borrowed(gpu, n, *buf, bytes);
    }
}

/* 50 AdamW steps in fp32 on both backends, a new batch each: the losses must agree to 1e-4 relative. The batch goes
 * in and the cuda loss is read as the training loop does (runtime/train.c): the batch lent, the loss read started
 * after the step and finished after the next step is queued. */
static void test_training(DslModule *m, const char *model, int steps) {
    printf("%s: %d fp32 training steps, cpu vs cuda losses\n", model, steps);
    Diag d;
    diag_init(&d, stderr);
    StepGraph sg;
    ASSERT(step_graph_build(m, model, true, &sg, &d), "step graph");
    Graph *g = sg.g;
    Node *keep[1] = {g->loss};
    Exec *cpu = cpu_exec_new(g, keep, 1), *gpu = gpu_exec(g, keep, 1);
    fill_model(cpu, gpu, g);
    double maxrel = 0, first = 0, last = 0;
    float a[2], b[2];   /* by step parity: the cpu loss, the cuda loss (read started, finished a step later) */
    int ticket[2];
    void **pinned = xcalloc(2 * (size_t)g->inputs.n, sizeof(void *));
    for (int t = 1; t <= steps + 1; t++) {
        if (t <= steps) {
            feed_step(cpu, gpu, g, t, pinned);
            float lr = 1e-3f, st = (float)t;
            exec_write(cpu, sg.lr, &lr, 4); exec_write(gpu, sg.lr, &lr, 4);
            exec_write(cpu, sg.step, &st, 4); exec_write(gpu, sg.step, &st, 4);
            StepInfo s = {.seed = 3, .step = (uint64_t)t};
            exec_run(cpu, &s);
            exec_run(gpu, &s);
            exec_read(cpu, g->loss, &a[t & 1], 4);
            ticket[t & 1] = exec_read_start(gpu, g->loss, &b[t & 1], 4);
        }
        const int p = t - 1;   /* the step whose cuda loss is finished now */
        if (p < 1) continue;
        exec_read_finish(gpu, ticket[p & 1]);
        const double x = a[p & 1], y = b[p & 1], rel = fabs(x - y) / fmax(fabs(x), 1e-12);
        if (rel > maxrel) maxrel = rel;
        if (p == 1) first = x;
        last = x;
        if (p % 10 == 0 || p == 1) printf("  step %3d  cpu %.7f  cuda %.7f  rel %.2e\n", p, x, y, rel);
    }
    bool ok = maxrel <= 1e-4;
    printf("  max relative loss difference over %d steps: %.3g%s; loss %.5f -> %.5f\n", steps, maxrel, ok ? "" : "  FAIL",
           first, last);
    if (!ok) failures++;
    /* the captured step's critical kernels take their capture stream's higher priority (cuda_exec.c set_priority) */
    int gk = 0, gh = 0;
    cuda_exec_graph_priorities(gpu, &gk, &gh);
    const char *prio = getenv("VMC_PRIORITY");
    const bool prio_ok = gk > 0 && gh <= gk && (gh > 0 || cuda_exec_streams(gpu) == 1 || (prio && !strcmp(prio, "0")));
    printf("  step graph: %d kernel nodes, %d at the higher priority%s\n", gk, gh, prio_ok ? "" : "  FAIL");
    if (!prio_ok) failures++;
    exec_write_release(gpu);
    for (int k = 0; k < 2 * g->inputs.n; k++) if (pinned[k]) cuda_api()->cuMemFreeHost(pinned[k]);
    free(pinned);
    exec_free(cpu);
    exec_free(gpu);
    graph_free(g);
}

int main(int argc, char **argv) {
    if (!cuda_available()) {
        printf("skipped: %s\n", cuda_unavailable_reason());
        return 77;
    }
    bool quick = argc > 1 && !strcmp(argv[1], "--quick");
    test_elementwise();
    test_reductions();
    test_movement();
    test_gemm();
    test_templates();
    DslModule *m = load_tiny();
    test_model_grads(m, "tiny_pretrain", 1e-3);
    test_model_grads(m, "tiny_ft", 1e-3);
    bf16_mode = true;   /* bf16 operands: ~3 significant digits per product, errors average out over K */
    test_skinny_gemms();
    test_model_grads(m, "tiny_pretrain", 1e-1);
    test_model_grads(m, "tiny_ft", 1e-1);   /* 4 directions: du, ddelta, dz read from the scan's bf16 copies */
    test_model_forward(m, "tiny_ft", "logits", 1e-1);
    bf16_mode = false;
    test_model_forward(m, "tiny_ft", "logits", 1e-3);
    if (!quick) {
        test_training(m, "tiny_pretrain", 50);
        test_training(m, "tiny_ft", 50);
    }
    dsl_free(m);
    printf("worst normalised error %.3g; %s\n", worst, failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
