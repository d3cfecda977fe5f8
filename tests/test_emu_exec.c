/* test_emu_exec.c CXX EMU_DIR — [cpu] whole steps of the cuda backend's compiled program, run on the CPU by the
 * emulator (tests/emu/emu_exec.h), against the cpu backend: the tiny models at batch 2, the loss and every
 * parameter gradient of one step (fp32 and bf16 GEMM operands, with the off-by-default program variants, and with
 * Vim blocks, a random cluster order and the raw target), then fp32 training steps whose losses must agree to 1e-4. What test_cuda_exec checks on a GPU, short of cuBLASLt,
 * streams and the captured graph: every generated and template kernel in place, with the memory plan, arguments,
 * memsets and launch order of the real step. */
#include "autodiff.h"
#include "cuda_exec.h"
#include "dsl.h"
#include "emu_exec.h"
#include "init.h"
#include "program.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static const char *cxx, *emu_dir;
static double worst;   /* the largest error of the current comparison set */

static void fill_node(const Node *n, uint64_t key, void *buf) {
    const size_t len = (size_t)shape_numel(n->shape);
    for (size_t i = 0; i < len; i++) {
        RngBlock r = rng_philox(11, key, i, 0);
        if (n->dtype == DT_I32) ((int32_t *)buf)[i] = (int32_t)rng_below(r.x[0], 10);
        else ((float *)buf)[i] = (float)rng_normal(r.x[0], r.x[1]);
    }
}

/* Parameters from their initialisers, inputs (but lr and step) random, the same into both backends. */
static void fill_model(Exec *a, Exec *b, const Graph *g) {
    for (int k = 0; k < g->params.n + g->inputs.n; k++) {
        const bool param = k < g->params.n;
        const Node *n = param ? g->params.items[k] : g->inputs.items[k - g->params.n];
        if (!param && (!strcmp(n->name, "lr") || !strcmp(n->name, "step"))) continue;
        const size_t len = (size_t)shape_numel(n->shape);
        void *buf = xmalloc(len * 4 + 4);
        if (param) {
            init_param(n, 1, buf);
            if (n->dtype == DT_I32) for (size_t i = 0; i < len; i++) ((int32_t *)buf)[i] = (int32_t)((float *)buf)[i];
        } else fill_node(n, 400 + (uint64_t)k, buf);
        exec_write(a, n, buf, len * 4);
        exec_write(b, n, buf, len * 4);
        free(buf);
    }
}

/* Max |emu - cpu| over max |cpu| of a float node; fails above tol. */
static void compare(const char *what, Exec *cpu, Exec *emu, const Node *n, double tol) {
    const size_t len = (size_t)shape_numel(n->shape);
    float *x = xmalloc(len * 4 + 4), *y = xmalloc(len * 4 + 4);
    exec_read(cpu, n, x, len * 4);
    exec_read(emu, n, y, len * 4);
    double maxd = 0, maxr = 0;
    bool nan = false;
    for (size_t i = 0; i < len; i++) {
        nan |= isnan(x[i]) != isnan(y[i]) || isnan(y[i]);
        if (fabs((double)x[i] - y[i]) > maxd) maxd = fabs((double)x[i] - y[i]);
        if (fabs(x[i]) > maxr) maxr = fabs(x[i]);
    }
    const double rel = maxd / (maxr > 0 ? maxr : 1);
    const bool ok = rel <= tol && !nan;
    if (!ok || !strcmp(what, "loss")) printf("  %-44s n=%-7zu rel=%.3g%s\n", what, len, rel, ok ? "" : nan ? "  NaN" : "  FAIL");
    failures += !ok;
    if (rel > worst) worst = rel;
    free(x);
    free(y);
}

static bool scan_recompute;   /* for the executors made next */

static Exec *emu(const Graph *g, Node *const *keep, int nkeep, bool bf16) {
    char err[1200];
    const EmuExecOptions o = {cxx, emu_dir, bf16, scan_recompute};
    Exec *e = emu_exec_new(g, keep, nkeep, &o, err, sizeof err);
    if (!e) { fprintf(stderr, "%s\n", err); exit(1); }
    return e;
}

/* Loss and every parameter gradient of one step; `recomputed`: the program must recompute some kernel's root in
 * its generated readers (pass_fuse recompute_roots: the decoder softmax's P in its backward). */
static void grads(DslModule *m, const char *model, bool bf16, double tol, bool recomputed) {
    Diag d;
    diag_init(&d, stderr);
    Graph *g = dsl_build_model(m, model, &d);
    Node **gr = xcalloc((size_t)g->params.n + 1, sizeof(Node *)), **keep = xcalloc((size_t)g->params.n + 2, sizeof(Node *));
    char err[512];
    ASSERT(autodiff_backward(g, g->loss, gr, err, sizeof err), "%s", err);
    int nk = 0;
    keep[nk++] = g->loss;
    for (int k = 0; k < g->params.n; k++) if (gr[k]) keep[nk++] = gr[k];
    Exec *cpu = cpu_exec_new(g, keep, nk), *e = emu(g, keep, nk, bf16);
    fill_model(cpu, e, g);
    const Fusion *f = emu_exec_program(e)->f;
    int nrec = 0, paired = 0;   /* (paired: scans whose backward reads the forward's saved chunk states) */
    for (int k = 0; k < g->nnodes; k++) {
        nrec += f->recompute[k];
        paired += g->nodes[k]->op == OP_SCAN && f->scan_pair[k];
    }
    if (recomputed && !nrec) { printf("  FAIL: no value recomputed by its generated readers\n"); failures++; }
    if (scan_recompute == (paired > 0)) { printf("  FAIL: %d scans with saved states\n", paired); failures++; }
    StepInfo s = {.seed = 3, .step = 1};
    exec_run(cpu, &s);
    exec_run(e, &s);
    const int before = failures;
    worst = 0;
    compare("loss", cpu, e, g->loss, tol / 10);
    for (int k = 0; k < g->params.n; k++) {
        if (!gr[k]) continue;
        char name[160];
        snprintf(name, sizeof name, "d %s", ((Node *)g->params.items[k])->name);
        compare(name, cpu, e, gr[k], tol);
    }
    printf("  %d gradients, the largest error %.3g of the largest value (tolerance %.0e)%s\n", nk - 1, worst, tol,
           failures == before ? "" : ": FAILED");
    exec_free(cpu);
    exec_free(e);
    free(gr);
    free(keep);
    graph_free(g);
}

/* fp32 training steps (the recipe's AdamW, clipping, EMA) on both backends, a new batch each: losses within 1e-4. */
static void training(DslModule *m, const char *model, int steps) {
    printf("%s: %d fp32 training steps\n", model, steps);
    Diag d;
    diag_init(&d, stderr);
    StepGraph sg;
    ASSERT(step_graph_build(m, model, true, &sg, &d), "step graph");
    Graph *g = sg.g;
    Node *keep[1] = {g->loss};
    Exec *cpu = cpu_exec_new(g, keep, 1), *e = emu(g, keep, 1, false);
    fill_model(cpu, e, g);
    for (int t = 1; t <= steps; t++) {
        for (int k = 0; k < g->inputs.n; k++) {
            const Node *n = g->inputs.items[k];
            if (!strcmp(n->name, "lr") || !strcmp(n->name, "step")) continue;
            const size_t bytes = (size_t)shape_numel(n->shape) * 4;
            void *buf = xmalloc(bytes);
            fill_node(n, 400 + (uint64_t)k + 1000 * (uint64_t)t, buf);
            exec_write(cpu, n, buf, bytes);
            exec_write(e, n, buf, bytes);
            free(buf);
        }
        float lr = 1e-3f, st = (float)t, a, b;
        exec_write(cpu, sg.lr, &lr, 4); exec_write(e, sg.lr, &lr, 4);
        exec_write(cpu, sg.step, &st, 4); exec_write(e, sg.step, &st, 4);
        StepInfo s = {.seed = 3, .step = (uint64_t)t};
        exec_run(cpu, &s);
        exec_run(e, &s);
        exec_read(cpu, g->loss, &a, 4);
        exec_read(e, g->loss, &b, 4);
        const double rel = fabs((double)a - b) / fmax(fabs(a), 1e-12);
        const bool ok = rel <= 1e-4;
        printf("  step %d  cpu %.7f  emulated %.7f  rel %.2e%s\n", t, a, b, rel, ok ? "" : "  FAIL");
        failures += !ok;
    }
    exec_free(cpu);
    exec_free(e);
    graph_free(g);
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: test_emu_exec CXX EMU_DIR\n"); return 2; }
    cxx = argv[1];
    emu_dir = argv[2];
    Diag d;
    diag_init(&d, stderr);
    char path[1024];
    snprintf(path, sizeof path, "%s/models/tiny.vmc", getenv("VMC_ROOT") ? getenv("VMC_ROOT") : VMC_ROOT);
    const DslSet small[] = {{"batch", "2"}};
    DslOptions o = {.sets = small, .nsets = 1};
    DslModule *m = dsl_load(path, &o, &d);
    if (!m) { fprintf(stderr, "cannot load %s\n", path); return 1; }
    printf("tiny_pretrain, fp32: loss and every gradient\n");
    grads(m, "tiny_pretrain", false, 1e-5, false);   /* (the same arithmetic but for summation orders) */
    printf("tiny_ft, fp32: loss and every gradient\n");
    grads(m, "tiny_ft", false, 1e-5, false);
    printf("tiny_pretrain, bf16 GEMM operands (the decoder's softmax recomputed in its backward)\n");
    grads(m, "tiny_pretrain", true, 1e-1, true);
    printf("tiny_ft, bf16 GEMM operands (4 directions: conv1d forward as one launch, scan copies in bf16)\n");
    grads(m, "tiny_ft", true, 1e-1, false);
    setenv("VMC_CONV_MULTI_BWD", "1", 1);
    setenv("VMC_ZERO_MERGE", "1", 1);
    printf("tiny_ft, bf16, VMC_CONV_MULTI_BWD=1 VMC_ZERO_MERGE=1\n");
    grads(m, "tiny_ft", true, 1e-1, false);
    unsetenv("VMC_CONV_MULTI_BWD");
    unsetenv("VMC_ZERO_MERGE");
    scan_recompute = true;   /* the scan backward's pass 1 instead of the forward's saved chunk states */
    printf("tiny_ft, bf16, --scan-recompute\n");
    grads(m, "tiny_ft", true, 1e-1, false);
    scan_recompute = false;
    training(m, "tiny_pretrain", 3);
    dsl_free(m);
    /* the other encoder block and the ablations' options: Vim's bidirectional mixer (two scans of one conv input,
     * ungated, merged), clusters in a random order each step, the raw-pixel target */
    const DslSet vim[] = {{"batch", "2"}, {"block", "vim"}, {"order", "random"}, {"target", "raw"}};
    DslOptions ov = {.sets = vim, .nsets = 4};
    if (!(m = dsl_load(path, &ov, &d))) { fprintf(stderr, "cannot load %s\n", path); return 1; }
    printf("tiny_pretrain with Vim blocks, random cluster order, raw target, fp32\n");
    grads(m, "tiny_pretrain", false, 1e-5, false);
    printf("the same, bf16 GEMM operands\n");
    grads(m, "tiny_pretrain", true, 1e-1, true);
    dsl_free(m);
    printf("test_emu_exec: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
