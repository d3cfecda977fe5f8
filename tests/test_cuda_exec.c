/* test_cuda_exec.c — [gpu] the cuda backend against the cpu oracle on random inputs: small graphs covering every
 * op class and fusion pattern (each generated kernel kind, GEMM layouts, templates), then the tiny models'
 * losses and every parameter gradient, then 50 fp32 training steps whose losses must match the cpu backend's.
 * Prints max abs / normalised errors per tensor (tests/backend_pair.c, shared with test_emu_exec). Exit 77 (skip)
 * without a GPU. */
#include "backend_pair.h"
#include "autodiff.h"
#include "cuda_api.h"
#include "cuda_exec.h"
#include "dsl.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    for (int k = 0; k < g->params.n; k++) bp_write_both(cpu, gpu, g->params.items[k], 100 + (uint64_t)k, false);
    for (int k = 0; k < g->inputs.n; k++) bp_write_both(cpu, gpu, g->inputs.items[k], 200 + (uint64_t)k, false);
    StepInfo s = {.seed = 5, .step = 3};
    exec_run(cpu, &s);
    exec_run(gpu, &s);
    for (int k = 0; k < g->nnamed; k++) bp_compare(g->named[k].name, cpu, gpu, g->named[k].node, tol);
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
static DslModule *load_tiny_set(const DslSet *sets, int nsets) {
    Diag d;
    diag_init(&d, stderr);
    DslOptions o = {.sets = sets, .nsets = nsets};
    char path[1024];
    snprintf(path, sizeof path, "%s/models/tiny.vmc", getenv("VMC_ROOT") ? getenv("VMC_ROOT") : VMC_ROOT);
    DslModule *m = dsl_load(path, &o, &d);
    if (!m) { fprintf(stderr, "cannot load models/tiny.vmc\n"); exit(1); }
    return m;
}
static DslModule *load_tiny(void) { return load_tiny_set(NULL, 0); }

/* SwiGLU's backward as one launch (VMC_SWIGLU_BWD=1, program_swiglu.c pg_swiglu_bwd) where the hidden width is a
 * multiple of 256 (C = 96: 256), on sm_90 with bf16 operands: every MLP's, in the step's program; or (pair) its
 * input gradient's two products as one (VMC_GEMM_PAIRS=1, program_pair.c). */
static void check_swiglu_bwd_launches(DslModule *m, const char *model, bool pair) {
    Diag d;
    diag_init(&d, stderr);
    Graph *g = dsl_build_model(m, model, &d);
    Node **grads = xcalloc((size_t)g->params.n + 1, sizeof(Node *)), **keep = xcalloc((size_t)g->params.n + 2, sizeof(Node *));
    char err[512];
    ASSERT(autodiff_backward(g, g->loss, grads, err, sizeof err), "%s", err);
    int nk = 0;   /* (the gradients kept: else the backward is dead code) */
    keep[nk++] = g->loss;
    for (int k = 0; k < g->params.n; k++) if (grads[k]) keep[nk++] = grads[k];
    Exec *gpu = gpu_exec(g, keep, nk);
    const Program *p = cuda_exec_program(gpu);
    int n = 0;
    for (int k = 0; k < p->nlaunches; k++)
        n += p->launches[k].kind == LK_GEMM && (pair ? p->launches[k].gemm.pair : p->launches[k].gemm.backward);
    const int want = p->opt.arch == 90 ? 4 : 0;
    printf("%s: %d SwiGLU %s launches%s\n", model, n, pair ? "input-gradient pair" : "backward", n == want ? "" : "  FAIL");
    if (n != want) bp_failures++;
    exec_free(gpu);
    free(grads);
    free(keep);
    graph_free(g);
}

/* Loss and every parameter gradient of one step. */
static void test_model_grads(DslModule *m, const char *model, double tol) {
    printf("%s: loss and every gradient%s\n", model, bf16_mode ? " (bf16 GEMM operands)" : "");
    bp_model_grads(m, model, tol, gpu_exec);
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
    bp_fill_model(cpu, gpu, g);
    StepInfo s = {.seed = 3, .step = 1};
    exec_run(cpu, &s);
    exec_run(gpu, &s);
    bp_compare(output, cpu, gpu, out, tol);
    bp_compare("loss", cpu, gpu, g->loss, tol);
    const Program *p = cuda_exec_program(gpu);
    int swiglu = 0;   /* (on Hopper with bf16: SwiGLU's products and gate as one launch, program_swiglu.c) */
    for (int k = 0; k < p->nlaunches; k++) swiglu += p->launches[k].kind == LK_GEMM && p->launches[k].gemm.swiglu;
    const int want = bf16_mode && p->opt.arch == 90 ? 4 : 0;
    printf("  %d SwiGLU launches%s\n", swiglu, swiglu == want ? "" : "  FAIL");
    if (swiglu != want) bp_failures++;
    exec_free(cpu);
    exec_free(gpu);
    graph_free(g);
}

/* With VMC_SCAN_EPI=1 each of tiny_ft's 4 layers computes its direction merge in its last scan forward's launch; none
 * without. */
static void check_scan_epi(Exec *x, bool on) {
    const Program *p = cuda_exec_program(x);
    int n = 0;
    for (int k = 0; k < p->nlaunches; k++)
        n += p->launches[k].kind == LK_KERNEL && strstr(p->modules[p->launches[k].module].src, "#define SCAN_EPI 1\n");
    if (n != (on ? 4 : 0)) { printf("  FAIL: %d scans with an epilogue, not %d\n", n, on ? 4 : 0); bp_failures++; }
}

/* Inference with each layer's direction merge computed by its last scan (VMC_SCAN_EPI=1): the logits against the
 * same program's with the merge's own kernel (the same arithmetic; the GEMMs' tuned algorithms may differ). */
static void test_scan_epi(DslModule *m) {
    printf("tiny_ft: forward, VMC_SCAN_EPI=1 against the merge's own kernel\n");
    bp_knob_forward(m, "tiny_ft", "logits", "VMC_SCAN_EPI", "1", 2e-2, gpu_exec, check_scan_epi);
    bp_knob_forward(m, "tiny_ft", "logits", "VMC_SCAN_EPI", "2", 2e-2, gpu_exec, check_scan_epi);   /* (+ L2 prefetches) */
}

static void *pinned_alloc(size_t bytes) {
    void *p;
    CU_CHECK(cuda_api()->cuMemAllocHost(&p, bytes));
    return p;
}
static void pinned_free(void *p) { cuda_api()->cuMemFreeHost(p); }

/* The captured step's critical kernels take their capture stream's higher priority (cuda_exec.c set_priority). */
static void check_priorities(Exec *gpu) {
    int gk = 0, gh = 0;
    cuda_exec_graph_priorities(gpu, &gk, &gh);
    const char *prio = getenv("VMC_PRIORITY");
    const bool prio_ok = gk > 0 && gh <= gk && (gh > 0 || cuda_exec_streams(gpu) == 1 || (prio && !strcmp(prio, "0")));
    printf("  step graph: %d kernel nodes, %d at the higher priority%s\n", gk, gh, prio_ok ? "" : "  FAIL");
    if (!prio_ok) bp_failures++;
}

/* 50 AdamW steps in fp32 on both backends, the batch lent from page-locked memory and the loss read as the
 * training loop does (runtime/train.c): losses within 1e-4 relative. */
static void test_training(DslModule *m, const char *model, int steps) {
    bp_training(m, model, steps, gpu_exec, (BpHost){pinned_alloc, pinned_free}, check_priorities);
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
    test_scan_epi(m);
    setenv("VMC_SWIGLU_GEMM", "1", 1);   /* SwiGLU's products by their own GEMMs in training, the gate apart */
    test_model_grads(m, "tiny_ft", 1e-1);
    unsetenv("VMC_SWIGLU_GEMM");
    setenv("VMC_SWIGLU_BWD", "1", 1);   /* SwiGLU's backward in one launch (with VMC_OWN_GEMM=2: always run) */
    const DslSet c96 = {"C", "96"};
    DslModule *m96 = load_tiny_set(&c96, 1);
    check_swiglu_bwd_launches(m96, "tiny_pretrain", false);
    test_model_grads(m96, "tiny_pretrain", 1e-1);
    test_model_grads(m96, "tiny_ft", 1e-1);
    setenv("VMC_SWIGLU_BWD_RING", "4", 1);   /* its P1 and P2 copied by cp.async into a ring 4 visits ahead */
    test_model_grads(m96, "tiny_pretrain", 1e-1);
    unsetenv("VMC_SWIGLU_BWD_RING");
    unsetenv("VMC_SWIGLU_BWD");
    /* SwiGLU's input gradient dy1 W1 + dy2 W2 as one product of K = 512 (the default where, as here, the hidden width
     * is whole 64-deep slices) */
    check_swiglu_bwd_launches(m96, "tiny_pretrain", true);
    test_model_grads(m96, "tiny_pretrain", 1e-1);
    test_model_grads(m96, "tiny_ft", 1e-1);
    dsl_free(m96);
    bf16_mode = false;
    test_model_forward(m, "tiny_ft", "logits", 1e-3);
    if (!quick) {
        test_training(m, "tiny_pretrain", 50);
        test_training(m, "tiny_ft", 50);
    }
    dsl_free(m);
    printf("worst normalised error %.3g; %s\n", bp_worst, bp_failures ? "FAILED" : "ok");
    return bp_failures ? 1 : 0;
}
