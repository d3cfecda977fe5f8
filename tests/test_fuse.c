/* test_fuse.c — kernel-count assertions for the fusion pass (tinygrad check_schedule style), invariants of the
 * memory plan (no two live activations overlap), views, in-place optimizer updates and the shape of a few generated
 * kernels. Graphs are built by hand with the graph builders; nothing is compiled (NVRTC is not run). */
#include "autodiff.h"
#include "codegen.h"
#include "optim.h"
#include "pass.h"
#include "program.h"
#include "packed_copy.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } while (0)

static Node *bin(Graph *g, OpKind op, Node *a, Node *b) { Node *n = g_binary(g, op, a, b, LOC_NONE); ASSERT(n, "%s", g->err); return n; }
static Node *un(Graph *g, OpKind op, Node *a) { return g_unary(g, op, a, LOC_NONE); }
static Node *red(Graph *g, OpKind op, Node *a, int ax) { return g_reduce(g, op, a, ax, LOC_NONE); }
static Node *cst(Graph *g, double v) { return g_scalar(g, v); }
static int count_of(const char *text, const char *what) {
    int n = 0;
    for (const char *p = strstr(text, what); p; p = strstr(p + 1, what)) n++;
    return n;
}
static Node *param(Graph *g, const char *name, Shape s) {
    ParamInfo pi = {.init = INIT_ZEROS, .lr_layer = -1};
    return g_param(g, name, s, DT_F32, pi, LOC_NONE);
}

/* Checks the plan: activations whose group intervals overlap must not overlap in memory. */
static void check_plan(const Fusion *f) {
    const Graph *g = f->g;
    for (int k = 0; k < f->ngroups; k++)   /* every input is produced earlier (a source: no group) */
        for (int j = 0; j < f->groups[k].nins; j++) {
            const int p = f->group_of[fus_owner(f, f->groups[k].ins[j])->id];
            CHECK(p < k, "group %d reads %%%u, which group %d computes", k, f->groups[k].ins[j]->id, p);
        }
    int *first = calloc((size_t)g->nnodes, sizeof(int)), *last = calloc((size_t)g->nnodes, sizeof(int));
    for (int k = 0; k < g->nnodes; k++) { first[k] = f->group_of[k]; last[k] = first[k]; }
    for (int k = 0; k < f->ngroups; k++)
        for (int j = 0; j < f->groups[k].nins; j++) {
            int id = (int)f->groups[k].ins[j]->id;
            if (k > last[id]) last[id] = k;
        }
    for (int a = 0; a < g->nnodes; a++) {
        if (!f->mat[a] || !f->live[a] || f->buf[a].arena != AR_ACT || f->view[a]) continue;
        CHECK(f->buf[a].offset + f->buf[a].bytes <= f->arena_bytes[AR_ACT], "node %d outside the arena", a);
        for (int b = a + 1; b < g->nnodes; b++) {
            if (!f->mat[b] || !f->live[b] || f->buf[b].arena != AR_ACT || f->view[b]) continue;
            bool time = first[a] <= last[b] && first[b] <= last[a];
            bool space = f->buf[a].offset < f->buf[b].offset + f->buf[b].bytes &&
                         f->buf[b].offset < f->buf[a].offset + f->buf[a].bytes;
            CHECK(!(time && space), "nodes %d and %d are live together and overlap", a, b);
        }
    }
    free(first); free(last);
}

/* Simplified, fused and planned, the plan checked. */
static Fusion *fuse_planned(const Graph *g) {
    Fusion *f = pass_simplify(g, NULL, 0);
    pass_fuse(f);
    pass_plan(f);
    check_plan(f);
    return f;
}

static int kernels(Graph *g, Node *const *keep, int nkeep, const char *what) {
    Fusion *f = pass_simplify(g, keep, nkeep);
    pass_fuse(f);
    pass_plan(f);
    check_plan(f);
    int n = fusion_kernel_count(f);
    printf("%s: %d kernel(s)\n", what, n);
    fusion_dump(f, stdout);
    fusion_free(f);
    return n;
}

static void test_chain(void) {
    Graph *g = graph_new();
    Shape s = shape_of(2, (int64_t)64, (int64_t)32);
    Node *x = g_input(g, "x", s, DT_F32, LOC_NONE), *y = g_input(g, "y", s, DT_F32, LOC_NONE);
    Node *h = bin(g, OP_ADD, bin(g, OP_MUL, un(g, OP_EXP, x), cst(g, 2)), y);
    h = un(g, OP_SIGMOID, un(g, OP_TANH, h));
    graph_add_named(g, "out", h, NF_OUTPUT);
    CHECK(kernels(g, NULL, 0, "5 elementwise ops") == 1, "a chain of 5 elementwise ops is one kernel");
    graph_free(g);
}

/* y = LayerNorm(x + r) with h = x + r also written (the residual stream). */
static Node *layernorm(Graph *g, Node *h, Node *w, Node *b, int64_t C) {
    Node *mean = bin(g, OP_DIV, red(g, OP_SUM, h, -1), cst(g, (double)C));
    Node *xc = bin(g, OP_SUB, h, mean);
    Node *var = bin(g, OP_DIV, red(g, OP_SUM, bin(g, OP_MUL, xc, xc), -1), cst(g, (double)C));
    Node *rstd = un(g, OP_RSQRT, bin(g, OP_ADD, var, cst(g, 1e-5)));
    return bin(g, OP_ADD, bin(g, OP_MUL, bin(g, OP_MUL, xc, rstd), w), b);
}

static void test_layernorm(void) {
    Graph *g = graph_new();
    int64_t C = 48;
    Shape s = shape_of(3, (int64_t)2, (int64_t)10, C);
    Node *x = g_input(g, "x", s, DT_F32, LOC_NONE), *r = g_input(g, "r", s, DT_F32, LOC_NONE);
    Node *w = param(g, "w", shape_of(1, C)), *b = param(g, "b", shape_of(1, C));
    Node *h = bin(g, OP_ADD, x, r);
    Node *y = layernorm(g, h, w, b, C);
    graph_add_named(g, "h", h, NF_OUTPUT);
    graph_add_named(g, "y", y, NF_OUTPUT);
    CHECK(kernels(g, NULL, 0, "layernorm + residual") == 1, "layernorm + residual add is one kernel");
    graph_free(g);
}

/* Training: the centred input and 1/std are also read by a later kernel (a column sum standing in for the
 * backward), so the norm stores them; it stays one kernel. Then the norm's backward (two row sums whose per-row
 * results are broadcast back with explicit expands, as autodiff writes them) is one kernel too. */
static void test_layernorm_training(void) {
    Graph *g = graph_new();
    int64_t C = 48;
    Shape s = shape_of(3, (int64_t)2, (int64_t)10, C);
    Node *h = g_input(g, "x", s, DT_F32, LOC_NONE), *dy = g_input(g, "dy", s, DT_F32, LOC_NONE);
    Node *w = param(g, "w", shape_of(1, C)), *b = param(g, "b", shape_of(1, C));
    Node *mean = bin(g, OP_DIV, red(g, OP_SUM, h, -1), cst(g, (double)C));
    Node *xc = bin(g, OP_SUB, h, mean);
    Node *var = bin(g, OP_DIV, red(g, OP_SUM, bin(g, OP_MUL, xc, xc), -1), cst(g, (double)C));
    Node *rstd = un(g, OP_RSQRT, bin(g, OP_ADD, var, cst(g, 1e-5)));
    Node *y = bin(g, OP_ADD, bin(g, OP_MUL, bin(g, OP_MUL, xc, rstd), w), b);
    graph_add_named(g, "y", y, NF_OUTPUT);
    Node *xhat = bin(g, OP_MUL, xc, rstd);   /* recomputed from the stored xc and rstd: a later kernel */
    graph_add_named(g, "dw", red(g, OP_SUM, red(g, OP_SUM, bin(g, OP_MUL, dy, xhat), 0), 1), NF_OUTPUT);
    Node *gy = bin(g, OP_MUL, dy, w);
    Node *m1 = g_expand(g, bin(g, OP_DIV, red(g, OP_SUM, gy, -1), cst(g, (double)C)), s, LOC_NONE);
    Node *m2 = g_expand(g, bin(g, OP_DIV, red(g, OP_SUM, bin(g, OP_MUL, gy, xhat), -1), cst(g, (double)C)), s, LOC_NONE);
    Node *dx = bin(g, OP_MUL, bin(g, OP_SUB, bin(g, OP_SUB, gy, m1), bin(g, OP_MUL, xhat, m2)), rstd);
    graph_add_named(g, "dx", dx, NF_OUTPUT);
    /* norm; its backward; the column sum dw (two axes: two kernels) */
    CHECK(kernels(g, NULL, 0, "layernorm with stored statistics + its backward") == 4,
          "layernorm storing xc and 1/std is one kernel, its backward another");
    /* The backward recomputes xc from x and the mean, which the forward stores beside 1/std (a float per row
     * each), so the forward writes no full-size value besides y */
    Fusion *f = fuse_planned(g);
    const Node *XC = f->repl[xc->id], *RSTD = f->repl[rstd->id];
    CHECK(f->dup[XC->id] && !f->mat[XC->id], "x - mean is recomputed, not stored");
    CHECK(f->mat[RSTD->id] && !f->dup[RSTD->id], "1/std (per row) is stored, not recomputed per element");
    const Group *fwd = &f->groups[f->group_of[f->repl[y->id]->id]];
    int full = 0;
    for (int k = 0; k < fwd->nouts; k++) full += shape_numel(fwd->outs[k]->shape) == shape_numel(s);
    CHECK(full == 1 && fwd->nouts == 3, "the norm kernel stores y, the mean and 1/std: %d outputs, %d full-size",
          fwd->nouts, full);
    fusion_free(f);
    graph_free(g);
}

/* A LayerNorm's parameter gradients, sum(dy xhat) and sum(dy) over the tokens, both read dy: pass_merge makes them
 * one column kernel writing both (one loop, two accumulators, split over blocks with both outputs zeroed first).
 * A third column sum of another buffer stays a kernel of its own. */
static void test_merged_column_sums(void) {
    Graph *g = graph_new();
    const Shape s = shape_of(3, (int64_t)4, (int64_t)256, (int64_t)64), cols = shape_of(2, (int64_t)1024, (int64_t)64);
    Node *dy = g_input(g, "dy", s, DT_F32, LOC_NONE), *x = g_input(g, "x", s, DT_F32, LOC_NONE);
    Node *other = g_input(g, "other", s, DT_F32, LOC_NONE);
    Node *dw = red(g, OP_SUM, g_reshape(g, bin(g, OP_MUL, dy, un(g, OP_TANH, x)), cols, LOC_NONE), 0);
    Node *db = red(g, OP_SUM, g_reshape(g, dy, cols, LOC_NONE), 0);
    Node *dother = red(g, OP_SUM, g_reshape(g, un(g, OP_EXP, other), cols, LOC_NONE), 0);
    graph_add_named(g, "dw", dw, NF_OUTPUT);
    graph_add_named(g, "db", db, NF_OUTPUT);
    graph_add_named(g, "dother", dother, NF_OUTPUT);
    Fusion *f = fuse_planned(g);
    const int gw = f->group_of[f->repl[dw->id]->id], gb = f->group_of[f->repl[db->id]->id];
    const int go = f->group_of[f->repl[dother->id]->id];
    printf("merged column sums: dw in group %d, db in %d, the other sum in %d (%d groups)\n", gw, gb, go, f->ngroups);
    CHECK(gw == gb && gw != go && f->ngroups == 2, "the two column sums of dy are one kernel, the third its own");
    KernelSource ks;
    codegen_group(f, &f->groups[gw], &ks);
    CHECK(ks.zero_outs && ks.grid > 2 && strstr(ks.body, "acc1 +=") && count_of(ks.body, "atomicAdd(&out") == 2 &&
              count_of(ks.body, "for (int j") == 1,
          "the merged kernel sums both in one loop split over blocks:\n%s", ks.body);
    kernel_source_free(&ks);
    fusion_free(f);
    graph_free(g);
}

/* Column sums join the row kernel that reads the same dy (pass_merge_column_sums), moving down to it, but not where
 * that kernel reads one of the sums itself (it would read a value it is still accumulating). */
static void test_column_sums_in_row_kernel(void) {
    for (int reads_sum = 0; reads_sum < 2; reads_sum++) {
        Graph *g = graph_new();
        const Shape s = shape_of(3, (int64_t)4, (int64_t)64, (int64_t)96), cols = shape_of(2, (int64_t)256, (int64_t)96);
        Node *dy = g_input(g, "dy", s, DT_F32, LOC_NONE), *x = g_input(g, "x", s, DT_F32, LOC_NONE);
        Node *db = red(g, OP_SUM, g_reshape(g, dy, cols, LOC_NONE), 0);
        Node *xc = bin(g, OP_SUB, x, bin(g, OP_MUL, red(g, OP_SUM, x, 2), g_scalar(g, 1.0 / 96)));
        Node *dx = bin(g, OP_MUL, dy, xc);
        if (reads_sum) dx = bin(g, OP_ADD, dx, g_expand(g, g_reshape(g, db, shape_of(3, (int64_t)1, (int64_t)1, (int64_t)96),
                                                                          LOC_NONE), s, LOC_NONE));
        graph_add_named(g, "db", db, NF_OUTPUT);
        graph_add_named(g, "dx", dx, NF_OUTPUT);
        Fusion *f = fuse_planned(g);
        const int gb = f->group_of[f->repl[db->id]->id], gx = f->group_of[f->repl[dx->id]->id];
        printf("column sum %s: db in group %d, dx in %d (%d groups)\n", reads_sum ? "read by the row kernel" : "beside it",
               gb, gx, f->ngroups);
        if (reads_sum) CHECK(gb != gx && f->groups[gx].ncsums == 0, "a row kernel that reads the sum does not compute it");
        else CHECK(gb == gx && f->groups[gx].ncsums == 1 && f->ngroups == 1, "the sum of dy is computed by dx's row kernel");
        fusion_free(f);
        graph_free(g);
    }
}

static void test_softmax(void) {
    Graph *g = graph_new();
    int64_t L = 16;
    Node *sc = g_input(g, "scores", shape_of(3, (int64_t)4, L, L), DT_F32, LOC_NONE);
    Node *mask = param(g, "mask", shape_of(2, L, L));
    Node *s = bin(g, OP_ADD, bin(g, OP_MUL, sc, cst(g, 0.125)), mask);
    Node *m = red(g, OP_AMAX, s, -1);
    Node *e = un(g, OP_EXP, bin(g, OP_SUB, s, m));
    Node *p = bin(g, OP_DIV, e, red(g, OP_SUM, e, -1));
    graph_add_named(g, "p", p, NF_OUTPUT);
    CHECK(kernels(g, NULL, 0, "softmax + mask + scale") == 1, "softmax + mask + scale is one kernel");
    graph_free(g);
}

/* ARM's target: per-patch normalised pixels; loss = mean over rows of the per-row MSE. */
static void test_mse(void) {
    Graph *g = graph_new();
    int64_t P = 32;
    Shape s = shape_of(3, (int64_t)2, (int64_t)6, P);
    Node *pred = g_input(g, "pred", s, DT_F32, LOC_NONE), *t = g_input(g, "t", s, DT_F32, LOC_NONE);
    Node *mean = bin(g, OP_DIV, red(g, OP_SUM, t, -1), cst(g, (double)P));
    Node *tc = bin(g, OP_SUB, t, mean);
    Node *var = bin(g, OP_DIV, red(g, OP_SUM, bin(g, OP_MUL, tc, tc), -1), cst(g, (double)(P - 1)));
    Node *target = bin(g, OP_DIV, tc, un(g, OP_SQRT, bin(g, OP_ADD, var, cst(g, 1e-6))));
    Node *d = bin(g, OP_SUB, pred, target);
    Node *rowloss = bin(g, OP_DIV, red(g, OP_SUM, bin(g, OP_MUL, d, d), -1), cst(g, (double)P));
    Node *flat = g_reshape(g, rowloss, shape_of(1, (int64_t)12), LOC_NONE);
    Node *loss = bin(g, OP_DIV, red(g, OP_SUM, flat, 0), cst(g, 12));
    graph_set_loss(g, loss);
    CHECK(kernels(g, NULL, 0, "normalised target + mse") == 2, "row part one kernel, mean over rows another");
    graph_free(g);
}

static void test_linear(void) {
    Graph *g = graph_new();
    Node *x = g_input(g, "x", shape_of(2, (int64_t)32, (int64_t)16), DT_F32, LOC_NONE);
    Node *w = param(g, "w", shape_of(2, (int64_t)24, (int64_t)16)), *b = param(g, "b", shape_of(1, (int64_t)24));
    Node *y = g_matmul(g, un(g, OP_RELU, x), w, false, true, LOC_NONE);
    Node *z = un(g, OP_SILU, bin(g, OP_ADD, y, b));
    graph_add_named(g, "z", z, NF_OUTPUT);
    CHECK(kernels(g, NULL, 0, "relu -> linear -> bias + silu") == 3, "prologue, gemm, epilogue");
    graph_free(g);
}

/* Dead nodes are not computed; x + 0 folds to x (the named output itself is kept as written). */
static void test_fold_and_dead(void) {
    Graph *g = graph_new();
    Shape s = shape_of(1, (int64_t)10);
    Node *x = g_input(g, "x", s, DT_F32, LOC_NONE);
    Node *dead = un(g, OP_EXP, x);
    (void)dead;
    Node *y = bin(g, OP_MUL, bin(g, OP_ADD, un(g, OP_TANH, x), g_const(g, 0, s, DT_F32)), g_const(g, 1, s, DT_F32));
    graph_add_named(g, "y", y, NF_OUTPUT);
    Fusion *f = pass_simplify(g, NULL, 0);
    CHECK(!f->live[dead->id], "an unused node is dead");
    pass_fuse(f);
    CHECK(f->ngroups == 1 && f->groups[0].nmembers == 2, "x+0 folds away (members %d)", f->groups[0].nmembers);
    fusion_free(f);
    graph_free(g);
}

/* Drop path in evaluation (graph_eval_mode: p = 0) folds away, also through the bf16 cast of the mask; in training
 * (p > 0) the mask stays. */
static void test_eval_drop_path(void) {
    for (int mode = 0; mode < 3; mode++) {   /* eval f32, eval bf16, training */
        Graph *g = graph_new();
        Shape s = shape_of(3, (int64_t)4, (int64_t)5, (int64_t)8), ms = shape_of(3, (int64_t)4, (int64_t)1, (int64_t)1);
        const DType t = mode == 1 ? DT_BF16 : DT_F32;
        Node *x = g_input(g, "x", s, t, LOC_NONE);
        Node *mask = g_drop_mask(g, ms, 0.25, 7, LOC_NONE);
        if (t != DT_F32) mask = g_cast(g, mask, t, LOC_NONE);
        Node *y = un(g, OP_EXP, bin(g, OP_MUL, un(g, OP_TANH, x), mask));   /* (named outputs are not folded) */
        graph_add_named(g, "y", y, NF_OUTPUT);
        if (mode < 2) graph_eval_mode(g);
        Fusion *f = pass_simplify(g, NULL, 0);
        int masks = 0;
        for (int id = 0; id < g->nnodes; id++) masks += f->live[id] && g->nodes[id]->op == OP_DROP_MASK;
        CHECK(masks == (mode == 2), "%s: %d drop masks live", mode == 2 ? "training" : "evaluation", masks);
        fusion_free(f);
        graph_free(g);
    }
}

/* reshape feeding a GEMM is a view; an AdamW-like update writes its targets in place (no copy). */
static void test_views_and_inplace(void) {
    Graph *g = graph_new();
    Node *x = g_input(g, "x", shape_of(3, (int64_t)4, (int64_t)8, (int64_t)16), DT_F32, LOC_NONE);
    Node *w = param(g, "w", shape_of(2, (int64_t)16, (int64_t)16));
    Node *m = g_state(g, "m", shape_of(2, (int64_t)16, (int64_t)16), DT_F32);
    Node *flat = g_reshape(g, g_unary(g, OP_TANH, x, LOC_NONE), shape_of(2, (int64_t)32, (int64_t)16), LOC_NONE);
    Node *y = g_matmul(g, flat, w, false, true, LOC_NONE);
    Node *loss = red(g, OP_SUM, g_reshape(g, y, shape_of(1, (int64_t)512), LOC_NONE), 0);
    graph_set_loss(g, loss);
    Node *grad = g_matmul(g, y, flat, true, false, LOC_NONE);            /* stand-in gradient [16, 16] */
    Node *mn = bin(g, OP_ADD, bin(g, OP_MUL, m, cst(g, 0.9)), bin(g, OP_MUL, grad, cst(g, 0.1)));
    Node *wn = bin(g, OP_SUB, w, bin(g, OP_MUL, mn, cst(g, 1e-3)));
    g_assign(g, m, mn);
    g_assign(g, w, wn);
    Fusion *f = pass_simplify(g, NULL, 0);
    pass_fuse(f);
    pass_plan(f);
    fusion_dump(f, stdout);
    check_plan(f);
    CHECK(f->view[flat->id] != NULL, "a reshape read by a GEMM is a view of its input");
    int copies = 0, kernels = 0;
    for (int k = 0; k < f->ngroups; k++) {
        copies += f->groups[k].kind == GK_ASSIGN && !f->groups[k].inplace;
        kernels += f->groups[k].kind != GK_ASSIGN;
    }
    CHECK(copies == 0, "both ASSIGNs are written in place (%d copies)", copies);
    CHECK(f->buf[mn->id].arena == AR_STATE && f->buf[wn->id].arena == AR_PARAM, "new values live in their targets");
    CHECK(kernels == 5, "tanh, 2 GEMMs, loss, update: %d", kernels);
    fusion_free(f);
    graph_free(g);
}

/* Generated text: layernorm runs a warp per row without block barriers, its loops unrolled; a bias-gradient
 * column sum is split over blocks with atomics. */
static void test_row_kernels(void) {
    Graph *g = graph_new();
    int64_t C = 64;
    Node *x = g_input(g, "x", shape_of(2, (int64_t)1000, C), DT_F32, LOC_NONE);
    Node *w = param(g, "w", shape_of(1, C)), *b = param(g, "b", shape_of(1, C));
    graph_add_named(g, "ln", layernorm(g, x, w, b, C), NF_OUTPUT);
    Node *t = g_input(g, "t", shape_of(2, (int64_t)8192, (int64_t)48), DT_F32, LOC_NONE);
    graph_add_named(g, "colsum", red(g, OP_SUM, bin(g, OP_MUL, t, t), 0), NF_OUTPUT);
    Fusion *f = pass_simplify(g, NULL, 0);
    pass_fuse(f);
    pass_plan(f);
    CHECK(f->ngroups == 2, "layernorm and column sum: %d groups", f->ngroups);
    for (int k = 0; k < f->ngroups; k++) {
        KernelSource ks;
        codegen_group(f, &f->groups[k], &ks);
        if (f->groups[k].root->op == OP_SUM) {
            CHECK(strstr(ks.body, "atomicAdd") && ks.zero_outs && ks.grid > 1, "split column sum");
        } else {
            CHECK(strstr(ks.body, "vmc_warp_sum") && !strstr(ks.body, "__syncthreads"), "warp-per-row layernorm");
            /* rows of 64 = two whole warps: the loops over a row have a constant trip count and unroll */
            CHECK(strstr(ks.body, "#pragma unroll") && strstr(ks.body, "jj < 2;"), "unrolled row loops");
            CHECK(ks.grid == 125 && ks.block == 256, "1000 rows, 8 per block: grid %u block %u", ks.grid, ks.block);
        }
        kernel_source_free(&ks);
    }
    fusion_free(f);
    graph_free(g);
}

/* The program of g (generated, not compiled); NULL after a failed check. */
static Program *build(Graph *g, bool bf16) {
    ProgramOptions po = {.arch = 90, .bf16 = bf16, .no_compile = true};
    char err[256];
    Program *p = program_build(g, NULL, 0, &po, err, sizeof err);
    CHECK(p, "program_build: %s", err);
    return p;
}

/* The source of group k's kernel (caller frees). */
static char *kernel_text(const Fusion *f, int k) {
    KernelSource ks;
    codegen_group(f, &f->groups[k], &ks);
    char *body = ks.body;
    ks.body = NULL;
    kernel_source_free(&ks);
    return body;
}

/* A column sum of bf16 values (a GEMM output's bias gradient) over 768 columns: each lane sums 4 adjacent columns
 * with one 8-byte load, also through a reshape; an f32 column sum stays one column per lane. An elementwise kernel
 * reading an input through a reshape of its domain uses 4-wide loads too, and a per-row value broadcast over the 4
 * elements is read at the row's index computed once (from the base index eb, not from e). */
static void test_vec4_loads(void) {
    Graph *g = graph_new();
    Node *t = g_input(g, "t", shape_of(3, (int64_t)16, (int64_t)64, (int64_t)768), DT_F32, LOC_NONE);
    Node *u = g_input(g, "u", shape_of(2, (int64_t)1024, (int64_t)768), DT_F32, LOC_NONE);
    Node *x = g_input(g, "x", shape_of(3, (int64_t)16, (int64_t)512, (int64_t)48), DT_F32, LOC_NONE);
    Node *r = g_input(g, "r", shape_of(3, (int64_t)16, (int64_t)512, (int64_t)1), DT_F32, LOC_NONE);
    Node *cs = red(g, OP_SUM, g_reshape(g, t, shape_of(2, (int64_t)1024, (int64_t)768), LOC_NONE), 0);
    Node *cs32 = red(g, OP_SUM, u, 0);
    Node *xr = bin(g, OP_MUL, x, g_expand(g, r, x->shape, LOC_NONE));   /* r is read through the reshape below */
    Node *ew = bin(g, OP_ADD, g_reshape(g, xr, shape_of(2, (int64_t)8192, (int64_t)48), LOC_NONE), cst(g, 1.0));
    graph_add_named(g, "cs", cs, NF_OUTPUT);
    graph_add_named(g, "cs32", cs32, NF_OUTPUT);
    graph_add_named(g, "ew", ew, NF_OUTPUT);
    Fusion *f = pass_simplify(g, NULL, 0);
    pass_fuse(f);
    f->store_bf16[t->id] = true;   /* as a bf16 GEMM output (program_bf16.c's pg_mark_bf16_outputs) */
    pass_plan(f);
    CHECK(f->ngroups == 3, "two column sums and an elementwise kernel: %d groups", f->ngroups);
    char *a = kernel_text(f, f->group_of[f->repl[cs->id]->id]), *b = kernel_text(f, f->group_of[f->repl[cs32->id]->id]);
    char *c = kernel_text(f, f->group_of[f->repl[ew->id]->id]);
    CHECK(strstr(a, "4 columns per lane") && strstr(a, "reinterpret_cast<const uint2*>(in0)[e4]") &&
          strstr(a, "atomicAdd(&out0[c0 + k], red0)"), "bf16 column sum, 4 columns per lane:\n%s", a);
    CHECK(!strstr(b, "4 columns per lane") && strstr(b, "column kernel"), "f32 column sum, scalar:\n%s", b);
    CHECK(strstr(c, "reinterpret_cast<const float4*>(in1)[e4]") && strstr(c, "eb / ") && !strstr(c, "e / "),
          "x through its reshape as float4, r's row from eb:\n%s", c);
    free(a); free(b); free(c);
    fusion_free(f);
    graph_free(g);
}

/* 4-wide loads at indices other than e: a row gather (the scan directions' inverse permutations) and a channel pad
 * by a multiple of 4 read each input once per 4 elements (at k = 0); a pad by 2 would split the 4 elements between
 * its branches, so the padded input is read element by element there. */
static void test_vec4_gathered_loads(void) {
    for (int shift = 4; shift >= 2; shift -= 2) {
        Graph *g = graph_new();
        Node *a = g_input(g, "a", shape_of(3, (int64_t)4, (int64_t)10, (int64_t)64), DT_F32, LOC_NONE);
        Node *b = g_input(g, "b", shape_of(3, (int64_t)4, (int64_t)10, (int64_t)60), DT_F32, LOC_NONE);
        int32_t rev[10];
        for (int t = 0; t < 10; t++) rev[t] = 9 - t;
        Node *y = bin(g, OP_ADD, g_gather(g, a, 1, rev, 10, LOC_NONE), g_pad(g, b, 2, shift, 64, LOC_NONE));
        graph_add_named(g, "y", y, NF_OUTPUT);
        Fusion *f = pass_simplify(g, NULL, 0);
        pass_fuse(f);
        pass_plan(f);
        char *c = kernel_text(f, f->group_of[f->repl[y->id]->id]);
        int wide = 0;   /* inputs read 4-wide at k = 0 */
        for (const char *q = c; (q = strstr(q, "if (k == 0) { const float4 t")); q++) wide++;
        printf("vec4 loads, pad by %d: %d of 2 inputs read 4-wide\n", shift, wide);
        CHECK(wide == (shift == 4 ? 2 : 1), "pad by %d:\n%s", shift, c);
        free(c);
        fusion_free(f);
        graph_free(g);
    }
}

/* A warp-per-row kernel over rows of a multiple of 128 takes 4 adjacent elements per lane, read and written 4-wide
 * (a LayerNorm over 768 channels); rows of 80 keep one element per lane. */
static void test_row_vec4(void) {
    for (int width = 768; width >= 80; width -= 688) {
        Graph *g = graph_new();
        Node *x = g_input(g, "x", shape_of(3, (int64_t)4, (int64_t)10, (int64_t)width), DT_F32, LOC_NONE);
        Node *w = param(g, "w", shape_of(1, (int64_t)width));
        Node *xc = bin(g, OP_SUB, x, bin(g, OP_MUL, red(g, OP_SUM, x, 2), cst(g, 1.0 / width)));
        Node *var = bin(g, OP_MUL, red(g, OP_SUM, bin(g, OP_MUL, xc, xc), 2), cst(g, 1.0 / width));
        Node *y = bin(g, OP_MUL, bin(g, OP_MUL, xc, un(g, OP_RSQRT, bin(g, OP_ADD, var, cst(g, 1e-5)))), w);
        graph_add_named(g, "y", y, NF_OUTPUT);
        Fusion *f = pass_simplify(g, NULL, 0);
        pass_fuse(f);
        pass_plan(f);
        char *c = kernel_text(f, f->group_of[f->repl[y->id]->id]);
        const bool wide = strstr(c, "const int j = (lane + 32 * jj) * 4;") && strstr(c, "reinterpret_cast<const float4*>(in0)[e4]") &&
                          strstr(c, "reinterpret_cast<float4*>(out0)[e4]");
        printf("row kernel over %d: %s\n", width, wide ? "4 elements per lane" : "1 element per lane");
        CHECK(wide == (width == 768), "rows of %d:\n%s", width, c);
        free(c);
        fusion_free(f);
        graph_free(g);
    }
}

/* A training graph: loss = sum of y's squares, differentiated, every parameter gradient a named output. Returns the
 * gradients by parameter (caller frees). */
static Node **sum_of_squares_grads(Graph *g, Node *y) {
    Node *loss = red(g, OP_SUM, g_reshape(g, bin(g, OP_MUL, y, y), shape_of(1, shape_numel(y->shape)), LOC_NONE), 0);
    graph_set_loss(g, loss);
    Node **grads = calloc((size_t)g->params.n, sizeof(Node *));
    char err[256];
    CHECK(autodiff_backward(g, loss, grads, err, sizeof err), "autodiff: %s", err);
    for (int k = 0; k < g->params.n; k++) if (grads[k]) graph_add_named(g, ((Node *)g->params.items[k])->name, grads[k], NF_OUTPUT);
    return grads;
}
static void train_sum_of_squares(Graph *g, Node *y) { free(sum_of_squares_grads(g, y)); }

/* Two scan directions (forward and reversed) over the x/z halves of one in_proj output, merged, trained: the
 * templates read the halves and the reversed rows through row maps, so no gather or slice of [B, L, D] runs as a
 * kernel, forward or backward (the permutation's gradient is the inverse permutation, read the same way). */
static Node *scan_dir(Graph *g, Node *x, Node *z, Node *dbc, const char *sfx) {
    char nm[32];
    int64_t D = x->shape.d[2];
    snprintf(nm, sizeof nm, "conv_w%s", sfx); Node *cw = param(g, nm, shape_of(3, D, (int64_t)1, (int64_t)4));
    snprintf(nm, sizeof nm, "conv_b%s", sfx); Node *cb = param(g, nm, shape_of(1, D));
    snprintf(nm, sizeof nm, "A_log%s", sfx); Node *al = param(g, nm, shape_of(2, D, (int64_t)16));
    snprintf(nm, sizeof nm, "D%s", sfx); Node *dd = param(g, nm, shape_of(1, D));
    snprintf(nm, sizeof nm, "dt_bias%s", sfx); Node *dtb = param(g, nm, shape_of(1, D));
    Node *u = un(g, OP_SILU, g_conv1d(g, x, cw, cb, LOC_NONE));
    Node *in[8] = {u, g_slice(g, dbc, 2, 0, D, LOC_NONE), al, g_slice(g, dbc, 2, D, D + 16, LOC_NONE),
                   g_slice(g, dbc, 2, D + 16, D + 32, LOC_NONE), dd, dtb, z};
    return g_scan(g, in, z ? 8 : 7, LOC_NONE);   /* z NULL: ungated */
}

/* The two-direction training graph above, with every parameter gradient an output; *yf is the forward scan. With
 * gate_once the scans are ungated and their merged sum is gated by silu(z) (models/lib/mamba.vmc's mixers). */
static Graph *two_dir_scan_graph(Node **yf_out, bool gate_once) {
    Graph *g = graph_new();
    int64_t B = 2, L = 9, C = 8, D = 32;
    Node *h = g_input(g, "h", shape_of(3, B, L, C), DT_F32, LOC_NONE);
    Node *xz = g_matmul(g, h, param(g, "in_proj", shape_of(2, 2 * D, C)), false, true, LOC_NONE);
    Node *dbc = g_matmul(g, h, param(g, "x_proj", shape_of(2, D + 32, C)), false, true, LOC_NONE);
    Node *x = g_slice(g, xz, 2, 0, D, LOC_NONE), *z = g_slice(g, xz, 2, D, 2 * D, LOC_NONE);
    int32_t rev[9];
    for (int t = 0; t < L; t++) rev[t] = (int32_t)(L - 1 - t);
    Node *zf = gate_once ? NULL : z, *zb = gate_once ? NULL : g_gather(g, z, 1, rev, L, LOC_NONE);
    Node *yf = scan_dir(g, x, zf, dbc, ""), *yb = scan_dir(g, g_gather(g, x, 1, rev, L, LOC_NONE), zb, dbc, "_b");
    Node *merged = bin(g, OP_ADD, yf, g_gather(g, yb, 1, rev, L, LOC_NONE));
    train_sum_of_squares(g, gate_once ? bin(g, OP_MUL, un(g, OP_SILU, z), merged) : merged);
    *yf_out = yf;
    return g;
}

static void test_scan_row_maps(void) {
    Node *yf;
    Graph *g = two_dir_scan_graph(&yf, false);
    int64_t D = yf->shape.d[2];
    Fusion *f = pass_simplify(g, NULL, 0);
    pass_fuse(f);
    pass_plan(f);
    fusion_dump(f, stdout);
    check_plan(f);
    int moves = 0, maps = 0, templates = 0;
    for (int k = 0; k < f->ngroups; k++) {
        const Node *r = f->groups[k].root;
        moves += (r->op == OP_GATHER || r->op == OP_SLICE || r->op == OP_SCATTER_ADD) && r->shape.d[r->shape.ndim - 1] == D;
        templates += f->groups[k].kind == GK_OPAQUE;
    }
    for (int k = 0; k < g->nnodes; k++) maps += f->rowmap[k];
    printf("scan row maps: %d templates, %d row-mapped nodes, %d gather/slice kernels of [.., D]\n", templates, maps, moves);
    CHECK(moves == 0, "no gather/slice kernel feeds a template: %d", moves);
    CHECK(templates == 8, "conv, scan, scan_bwd and one conv backward (dx, dw, db) per direction: %d", templates);
    CHECK(maps >= 8, "x, z halves, reversed x/z, Bm/Cm/delta slices are row maps: %d", maps);
    fusion_free(f);
    graph_free(g);
}

/* Two directions gated once, as models/lib/mamba.vmc builds every mixer of several directions: ungated scans (7
 * inputs) merged, then silu(z) * merge. Each scan template gets no z (a NULL argument), its backward no dz part;
 * silu(z) is computed by the forward's merge kernel, and the gate's gradient by one elementwise kernel. */
static void test_factored_gate(void) {
    Node *yf;
    Graph *g = two_dir_scan_graph(&yf, true);
    const int64_t B = yf->shape.d[0], L = yf->shape.d[1], D = yf->shape.d[2];
    Program *p = build(g, true);
    if (!p) { graph_free(g); return; }
    const Fusion *f = p->f;
    int scans = 0, bwds = 0, gate_fwd = 0, gate_bwd = 0;
    for (int id = 0; id < g->nnodes; id++) {
        const Node *n = g->nodes[id];
        if (!f->live[id]) continue;
        if (n->op == OP_SCAN) scans += n->nsrc == 7 && !scan_gated(n);
        if (n->op == OP_SCAN_BWD) bwds += n->nsrc == 8 && shape_numel(n->shape) == 2 * B * L * D + D * 16 + 2 * B * L * 16 + 2 * D;
    }
    for (int k = 0; k < f->ngroups; k++) {
        const Group *gr = &f->groups[k];
        bool silu = false, gather = false;
        for (int m = 0; m < gr->nmembers; m++) {
            silu |= gr->members[m]->op == OP_SILU;
            gather |= gr->members[m]->op == OP_GATHER;
            gate_bwd += gr->members[m]->op == OP_SIGMOID;
        }
        gate_fwd += gr->kind == GK_EW && silu && gather;
    }
    int null_z = 0;
    for (int k = 0; k < p->nlaunches; k++) {
        const Launch *l = &p->launches[k];
        if (l->kind == LK_KERNEL && (!strcmp(l->name, "vmc_scan_fwd") || !strcmp(l->name, "vmc_scan_bwd")))
            null_z += l->nargs > 7 && l->args[7].arena == AR_COUNT_;
    }
    printf("factored gate: %d ungated scans, %d backwards without dz, %d scan launches with no z, silu(z) in the merge "
           "kernel %d, sigmoid members %d\n", scans, bwds, null_z, gate_fwd, gate_bwd);
    CHECK(scans == 2 && bwds == 2, "both scans ungated (7 inputs), both backwards without dz: %d, %d", scans, bwds);
    CHECK(null_z == 4, "every scan launch passes no z: %d of 4", null_z);
    CHECK(gate_fwd == 1, "the merge (the reversed direction's gather, the sum) and the gate in one kernel: %d", gate_fwd);
    CHECK(gate_bwd == 1, "the gate's gradient (its one sigmoid) in one kernel: %d", gate_bwd);
    program_free(p);
    graph_free(g);
}

/* Training: each scan forward saves its chunk-start states for the backward of the same inputs (program_templates.c
 * pg_mark_scan_states): paired, sized B (chunks - 1) N D floats, placed where no other activation lives from the
 * forward to the backward, and both templates instantiated with SCAN_STATES 1 and the buffer among their arguments.
 * ProgramOptions.scan_recompute leaves them out. */
static void test_scan_states(void) {
    for (int mode = 0; mode < 3; mode++) {   /* fp32, bf16, bf16 recomputing */
        Node *yf;
        Graph *g = two_dir_scan_graph(&yf, false);
        ProgramOptions po = {.arch = 90, .bf16 = mode > 0, .no_compile = true, .scan_recompute = mode == 2};
        char err[256];
        Program *p = program_build(g, NULL, 0, &po, err, sizeof err);
        CHECK(p, "program_build: %s", err);
        if (!p) { graph_free(g); continue; }
        const Fusion *f = p->f;
        int pairs = 0;
        for (int id = 0; id < g->nnodes; id++) {
            const Node *fw = g->nodes[id], *bw = f->scan_pair[id];
            if (fw->op != OP_SCAN || !f->live[id]) continue;
            CHECK(!bw == (mode == 2), "scan %%%d paired exactly when not recomputing", id);
            if (!bw) continue;
            pairs++;
            CHECK(bw->op == OP_SCAN_BWD && f->scan_pair[bw->id] == fw, "scan %%%d pairs with a backward", id);
            for (int k = 0; k < 8; k++) CHECK(fus_src(f, bw, k) == fus_src(f, fw, k), "paired scans share input %d", k);
            const int64_t B = fw->shape.d[0], L = fw->shape.d[1], D = fw->shape.d[2], N = 16;
            const Buf *st = &f->states[id];
            CHECK(st->arena == AR_ACT && st->bytes == B * ((L + 7) / 8 - 1) * N * D * 4, "states of %%%d: %lld bytes", id,
                  (long long)st->bytes);
            const int first = f->group_of[id], last = f->group_of[bw->id];
            for (int a = 0; a < g->nnodes; a++) {   /* no other activation in that memory meanwhile */
                const Buf *o = &f->buf[a];
                if (!f->mat[a] || !f->live[a] || o->arena != AR_ACT || f->view[a] || f->shadow_only[a]) continue;
                int end = f->group_of[a];
                for (int k = 0; k < f->ngroups; k++)
                    for (int j = 0; j < f->groups[k].nins; j++) if (fus_owner(f, f->groups[k].ins[j])->id == (uint32_t)a && k > end) end = k;
                const bool time = f->group_of[a] <= last && first <= end;
                const bool space = o->offset < st->offset + st->bytes && st->offset < o->offset + o->bytes;
                CHECK(!(time && space), "states of %%%d overlap node %d while both live", id, a);
            }
        }
        CHECK(pairs == (mode == 2 ? 0 : 2), "scan forward/backward pairs: %d", pairs);
        int fwd = 0, bwd = 0;
        for (int k = 0; k < p->nmodules; k++) {
            const char *src = p->modules[k].src, *def = strstr(src, "#define SCAN_STATES ");
            if (!def || (!strstr(src, "vmc_scan_fwd(") && !strstr(src, "vmc_scan_bwd("))) continue;
            const bool on = atoi(def + 20) == 1;
            CHECK(on == (mode != 2), "a scan module instantiated with SCAN_STATES %d", on);
            fwd += strstr(src, "vmc_scan_fwd(") != NULL;
            bwd += strstr(src, "vmc_scan_bwd(") != NULL;
        }
        CHECK(fwd >= 1 && bwd >= 1, "scan modules: %d forward, %d backward", fwd, bwd);
        for (int k = 0; k < p->nlaunches; k++) {   /* the forward writes the states, its backward reads them */
            const Launch *l = &p->launches[k];
            if (l->kind != LK_KERNEL || (strcmp(l->name, "vmc_scan_fwd") && strcmp(l->name, "vmc_scan_bwd"))) continue;
            const bool fw = !strcmp(l->name, "vmc_scan_fwd");
            const BufRef a = l->args[l->nargs - (fw ? 1 : 2)];   /* (the backward's last: dz's copy into place) */
            CHECK((a.arena == AR_COUNT_) == (mode == 2), "%s: states argument", l->name);
            bool listed = false;
            for (int j = 0; j < l->nacc; j++)
                listed |= a.arena != AR_COUNT_ && l->acc[j].at.arena == a.arena && l->acc[j].at.offset == a.offset &&
                          l->acc[j].write == fw;
            CHECK(listed == (mode != 2), "%s: the states access (write in the forward) is listed", l->name);
        }
        program_free(p);
        graph_free(g);
    }
}

/* u = silu(conv(x)) in training: the SiLU's backward and the conv's are one template per direction
 * (OP_CONV1D_SILU_BWD), which takes the two addends of u's gradient (the scan's du, x_proj's input gradient) and
 * recomputes the conv output. So no kernel stores the conv output in the forward, none reads it in the backward,
 * and no kernel adds du to the GEMM's gradient or multiplies by silu'. */
static void conv_silu_backward(Graph *g, int want_addends) {
    Fusion *f = fuse_planned(g);
    int silu_bwd = 0, addends = 0, plain_bwd = 0, silu_fwd = 0, conv_readers = 0;
    for (int k = 0; k < f->ngroups; k++) {
        const Group *gr = &f->groups[k];
        const Node *r = gr->root;
        silu_bwd += r->op == OP_CONV1D_SILU_BWD;
        addends += r->op == OP_CONV1D_SILU_BWD && r->nsrc == 4 + want_addends - 1;
        plain_bwd += r->op == OP_CONV1D_BWD;
        silu_fwd += r->op == OP_CONV1D && f->conv_silu[r->id];
        const bool generated = gr->kind == GK_EW || gr->kind == GK_ROW;
        for (int j = 0; generated && j < gr->nins; j++) conv_readers += fus_owner(f, gr->ins[j])->op == OP_CONV1D;
    }
    const int dirs = silu_fwd;
    printf("conv SiLU backward: %d templates (%d with %d addends), %d plain conv backward, %d conv forwards applying "
           "the SiLU, %d generated kernels reading a conv output\n", silu_bwd, addends, want_addends, plain_bwd, silu_fwd,
           conv_readers);
    CHECK(dirs >= 1 && silu_bwd == dirs && addends == dirs && plain_bwd == 0,
          "one SiLU-conv backward per direction taking %d addends: %d (%d) of %d", want_addends, silu_bwd, addends, dirs);
    CHECK(conv_readers == 0, "no generated kernel reads a conv output: %d", conv_readers);
    fusion_free(f);
    graph_free(g);
}

static void test_conv_silu_backward(void) {
    Node *yf;
    conv_silu_backward(two_dir_scan_graph(&yf, false), 1);   /* u read by the scan only */
    /* a Mamba mixer: x_proj reads u too, so u's gradient is du + x_proj's input gradient */
    Graph *g = graph_new();
    int64_t B = 2, L = 9, C = 8, D = 32;
    Node *h = g_input(g, "h", shape_of(3, B, L, C), DT_F32, LOC_NONE);
    Node *xz = g_matmul(g, h, param(g, "in_proj", shape_of(2, 2 * D, C)), false, true, LOC_NONE);
    Node *x = g_slice(g, xz, 2, 0, D, LOC_NONE), *z = g_slice(g, xz, 2, D, 2 * D, LOC_NONE);
    Node *u = un(g, OP_SILU, g_conv1d(g, x, param(g, "conv_w", shape_of(3, D, (int64_t)1, (int64_t)4)),
                                      param(g, "conv_b", shape_of(1, D)), LOC_NONE));
    Node *dbc = g_matmul(g, u, param(g, "x_proj", shape_of(2, D + 32, D)), false, true, LOC_NONE);
    Node *in[8] = {u, g_slice(g, dbc, 2, 0, D, LOC_NONE), param(g, "A_log", shape_of(2, D, (int64_t)16)),
                   g_slice(g, dbc, 2, D, D + 16, LOC_NONE), g_slice(g, dbc, 2, D + 16, D + 32, LOC_NONE),
                   param(g, "D", shape_of(1, D)), param(g, "dt_bias", shape_of(1, D)), z};
    train_sum_of_squares(g, g_scan(g, in, 8, LOC_NONE));
    conv_silu_backward(g, 2);
    /* a graph that reads the conv output itself too: the conv template writes it and, beside it, the SiLU (which a
     * GEMM reads: a buffer) */
    g = graph_new();
    Node *xs = g_input(g, "x", shape_of(3, B, L, D), DT_F32, LOC_NONE);
    Node *cv = g_conv1d(g, xs, param(g, "conv_w", shape_of(3, D, (int64_t)1, (int64_t)4)), param(g, "conv_b", shape_of(1, D)),
                        LOC_NONE);
    Node *proj = g_matmul(g, un(g, OP_SILU, cv), param(g, "proj", shape_of(2, D, D)), false, true, LOC_NONE);
    graph_add_named(g, "out", bin(g, OP_ADD, proj, bin(g, OP_MUL, cv, cst(g, 2))), NF_OUTPUT);
    Fusion *f = pass_simplify(g, NULL, 0);
    pass_fuse(f);
    int two = 0;
    for (int k = 0; k < f->ngroups; k++)
        two += f->groups[k].root->op == OP_CONV1D && f->groups[k].nouts == 2 && f->groups[k].outs[1]->op == OP_SILU;
    CHECK(two == 1 && !f->conv_silu[cv->id], "conv1d writes its output and the SiLU beside it: %d", two);
    fusion_free(f);
    graph_free(g);
}

/* An MLP's input x [2, 64, 32] and parameters: w1, w2 [n, 32], b1, b2 [n], w3 [32, n]. */
typedef struct MlpInputs { Node *x, *w1, *b1, *w2, *b2, *w3; } MlpInputs;
static MlpInputs mlp_inputs(Graph *g, int64_t n) {
    return (MlpInputs){g_input(g, "x", shape_of(3, (int64_t)2, (int64_t)64, (int64_t)32), DT_F32, LOC_NONE),
                       param(g, "w1", shape_of(2, n, (int64_t)32)), param(g, "b1", shape_of(1, n)),
                       param(g, "w2", shape_of(2, n, (int64_t)32)), param(g, "b2", shape_of(1, n)),
                       param(g, "w3", shape_of(2, (int64_t)32, n))};
}

/* Training SwiGLU: x W1 + b1, its silu and x W2 + b2 are read by the forward's gate kernel and again by the
 * backward. Each is a cheap function of one GEMM output, so it is recomputed where read (Fusion.dup): the forward
 * kernel stores only the gate, and the backward kernels read the GEMM outputs instead. */
static void test_recompute(void) {
    Graph *g = graph_new();
    const MlpInputs in = mlp_inputs(g, 48);
    Node *x = in.x, *w1 = in.w1, *b1 = in.b1, *w2 = in.w2, *b2 = in.b2, *w3 = in.w3;
    Node *mm1 = g_matmul(g, x, w1, false, true, LOC_NONE), *mm2 = g_matmul(g, x, w2, false, true, LOC_NONE);
    Node *h1 = bin(g, OP_ADD, mm1, b1), *h2 = bin(g, OP_ADD, mm2, b2), *s1 = un(g, OP_SILU, h1);
    Node *gate = bin(g, OP_MUL, s1, h2);
    Node *y = g_matmul(g, gate, w3, false, true, LOC_NONE);
    Node **grads = sum_of_squares_grads(g, y);
    Fusion *f = fuse_planned(g);
    const Node *H1 = f->repl[h1->id], *H2 = f->repl[h2->id], *S1 = f->repl[s1->id], *G = f->repl[gate->id];
    CHECK(f->dup[H1->id] && f->dup[H2->id] && f->dup[S1->id], "x W1 + b1, its silu and x W2 + b2 are recomputed");
    CHECK(!f->mat[H1->id] && !f->mat[H2->id] && !f->mat[S1->id], "and get no buffer");
    const Group *fwd = &f->groups[f->group_of[G->id]];
    CHECK(fwd->nouts == 1 && fwd->outs[0] == G, "the forward gate kernel stores the gate alone: %d outputs", fwd->nouts);
    int readers = 0;   /* generated kernels other than the forward's that read x W1 */
    for (int k = 0; k < f->ngroups; k++) {
        const Group *gr = &f->groups[k];
        if (gr == fwd || (gr->kind != GK_EW && gr->kind != GK_ROW)) continue;
        for (int j = 0; j < gr->nins; j++) readers += gr->ins[j] == f->repl[mm1->id];
    }
    CHECK(readers >= 1, "the backward reads x W1 itself: %d kernels", readers);
    printf("recompute: gate kernel %d outputs, %d backward kernels read x W1\n", fwd->nouts, readers);
    free(grads);
    fusion_free(f);
    graph_free(g);
}

/* SwiGLU's backward (pass_swiglu.c swiglu_bwd_match): the one elementwise kernel of the gradients of x W1 and x W2,
 * with the biases' gradients as its column sums (N = 256: whole column groups), over dh = dy W3 (W3 stored [K][N]);
 * silu(h1 + h2) has none. */
static void test_swiglu_bwd_match(void) {
    for (int gelu = 0; gelu < 2; gelu++) {
        Graph *g = graph_new();
        const MlpInputs in = mlp_inputs(g, 256);
        Node *x = in.x, *w1 = in.w1, *b1 = in.b1, *w2 = in.w2, *b2 = in.b2, *w3 = in.w3;
        Node *mm1 = g_matmul(g, x, w1, false, true, LOC_NONE), *mm2 = g_matmul(g, x, w2, false, true, LOC_NONE);
        Node *h1 = bin(g, OP_ADD, mm1, b1), *h2 = bin(g, OP_ADD, mm2, b2);
        Node *gate = gelu ? un(g, OP_SILU, bin(g, OP_ADD, h1, h2)) : bin(g, OP_MUL, un(g, OP_SILU, h1), h2);
        Node *y = g_matmul(g, gate, w3, false, true, LOC_NONE);
        Node **grads = sum_of_squares_grads(g, y);
        Fusion *f = fuse_planned(g);
        int found = 0;
        SwigluBwdMatch m = {0};
        for (int k = 0; k < f->ngroups; k++) found += swiglu_bwd_match(f, &f->groups[k], &m);
        if (gelu) {
            CHECK(found == 0, "silu(h1 + h2) matched as SwiGLU's backward: %d groups", found);
        } else {
            CHECK(found == 1, "SwiGLU's backward: %d groups matched", found);
            CHECK(found != 1 || (m.p1 == f->repl[mm1->id] && m.p2 == f->repl[mm2->id] && m.b1 == b1 && m.b2 == b2),
                  "SwiGLU's backward: the forward's products and biases");
            CHECK(found != 1 || fus_owner(f, fus_src(f, m.dh, 1)) == w3, "SwiGLU's backward: dh = dy W3");
            CHECK(found != 1 || (m.s1 != m.s2 && m.g1 != m.g2), "SwiGLU's backward: two gradients, two sums");
            printf("swiglu backward: group %d, dh %%%d\n", found ? f->group_of[m.g1->id] : -1, m.dh ? (int)m.dh->id : -1);
        }
        free(grads);
        fusion_free(f);
        graph_free(g);
    }
}

/* Training attention: the softmax P is read by the P V GEMM, by the dV GEMM and by the softmax backward, which reads
 * the scores anyway. P stays stored (the GEMMs read it) but the backward recomputes it from the scores and the row
 * max and sum the forward stores (Fusion.recompute): no generated kernel but the forward's reads or writes P. */
static void test_recompute_softmax(void) {
    Graph *g = graph_new();
    Node *q = g_input(g, "q", shape_of(3, (int64_t)2, (int64_t)16, (int64_t)8), DT_F32, LOC_NONE);
    Node *k = param(g, "k", shape_of(2, (int64_t)24, (int64_t)8)), *v = param(g, "v", shape_of(2, (int64_t)24, (int64_t)8));
    Node *mask = g_input(g, "mask", shape_of(2, (int64_t)16, (int64_t)24), DT_F32, LOC_NONE);
    Node *s = bin(g, OP_ADD, bin(g, OP_MUL, g_matmul(g, q, k, false, true, LOC_NONE), g_scalar(g, 0.35)), mask);
    Node *e = un(g, OP_EXP, bin(g, OP_SUB, s, g_reduce(g, OP_AMAX, s, 2, LOC_NONE)));
    Node *p = bin(g, OP_DIV, e, g_reduce(g, OP_SUM, e, 2, LOC_NONE));
    Node *y = g_matmul(g, p, v, false, false, LOC_NONE);
    Node **grads = sum_of_squares_grads(g, y);
    Fusion *f = fuse_planned(g);
    const Node *P = f->repl[p->id];
    CHECK(f->recompute[P->id] && f->mat[P->id], "softmax P: stored and recomputed by its generated readers");
    int gemm_readers = 0, other = 0;
    for (int j = 0; j < f->ngroups; j++) {
        const Group *gr = &f->groups[j];
        for (int i = 0; i < gr->nins; i++) {
            if (fus_owner(f, gr->ins[i]) != P) continue;   /* (the dV GEMM reads a reshape of it) */
            if (gr->kind == GK_GEMM) gemm_readers++;
            else other++;
        }
    }
    CHECK(gemm_readers == 2 && other == 0, "P read by %d GEMMs (want 2) and %d other kernels (want 0)", gemm_readers, other);
    printf("recompute softmax: P read by %d GEMMs, recomputed by the softmax backward\n", gemm_readers);
    free(grads);
    fusion_free(f);
    graph_free(g);
}

/* Sibling elementwise kernels that read the same full-size buffer are one kernel (pass_merge.c), when the later one
 * reads nothing written after the earlier one: SwiGLU's two input gradients; and in a small graph, y3 = exp(x) joins
 * its nearest sibling y2 = x + x W, which may not join y1 = 2 x (x W is computed after y1). */
static void test_sibling_merge(void) {
    Graph *g = graph_new();
    Node *x = g_input(g, "x", shape_of(3, (int64_t)2, (int64_t)64, (int64_t)32), DT_F32, LOC_NONE);
    Node *w1 = param(g, "w1", shape_of(2, (int64_t)48, (int64_t)32)), *w2 = param(g, "w2", shape_of(2, (int64_t)48, (int64_t)32));
    Node *w3 = param(g, "w3", shape_of(2, (int64_t)32, (int64_t)48));
    Node *h1 = g_matmul(g, x, w1, false, true, LOC_NONE), *h2 = g_matmul(g, x, w2, false, true, LOC_NONE);
    Node *y = g_matmul(g, bin(g, OP_MUL, un(g, OP_SILU, h1), h2), w3, false, true, LOC_NONE);
    Node **grads = sum_of_squares_grads(g, y);
    Fusion *f = fuse_planned(g);
    /* the weight gradients of w1 and w2 are GEMMs over the gradients of h1 and h2 */
    int dh[2] = {-1, -1};
    for (int k = 0; k < 2; k++) {
        const Node *gw = f->repl[grads[k]->id];
        for (int s = 0; s < 2 && gw->op == OP_MATMUL; s++) {
            const Node *o = fus_owner(f, fus_src(f, gw, s));
            if (o->op != OP_INPUT && f->group_of[o->id] >= 0) dh[k] = f->group_of[o->id];
        }
    }
    CHECK(dh[0] >= 0 && dh[0] == dh[1], "SwiGLU's two input gradients in one kernel: groups %d and %d", dh[0], dh[1]);
    CHECK(dh[0] >= 0 && f->groups[dh[0]].kind == GK_EW && f->groups[dh[0]].nouts == 2, "one elementwise kernel, 2 outputs");
    printf("sibling merge: SwiGLU's input gradients in group %d\n", dh[0]);
    fusion_free(f);
    free(grads);
    graph_free(g);

    g = graph_new();
    x = g_input(g, "x", shape_of(2, (int64_t)64, (int64_t)32), DT_F32, LOC_NONE);
    Node *w = param(g, "w", shape_of(2, (int64_t)32, (int64_t)32));
    Node *y1 = bin(g, OP_MUL, x, cst(g, 2.0)), *xw = g_matmul(g, x, w, false, false, LOC_NONE);
    Node *y2 = bin(g, OP_ADD, x, un(g, OP_TANH, xw)), *y3 = un(g, OP_EXP, x);   /* (x + x W: a GEMM epilogue) */
    graph_add_named(g, "y1", y1, NF_OUTPUT);
    graph_add_named(g, "y2", y2, NF_OUTPUT);
    graph_add_named(g, "y3", y3, NF_OUTPUT);
    f = pass_simplify(g, NULL, 0);
    pass_fuse(f);
    pass_plan(f);
    check_plan(f);
    CHECK(fusion_kernel_count(f) == 3, "y1, x W, y2 + y3: %d kernels", fusion_kernel_count(f));
    CHECK(f->group_of[y2->id] == f->group_of[y3->id], "y3 joins y2");
    CHECK(f->group_of[y1->id] != f->group_of[y2->id], "y2 reads x W, written after y1's kernel");
    fusion_free(f);
    graph_free(g);
}

/* In bf16 precision the scan's output is stored in bf16 (as the reference kernel's output under autocast) and the
 * template is instantiated to write it so, and its input u in bf16 too; in fp32 both stay f32. */
static void test_scan_out_bf16(void) {
    for (int bf16 = 0; bf16 < 2; bf16++) {
        Node *yf;
        Graph *g = two_dir_scan_graph(&yf, false);
        Program *p = build(g, bf16);
        if (!p) { graph_free(g); continue; }
        const Node *y = p->f->repl[yf->id];
        CHECK(y->op == OP_SCAN && p->f->store_bf16[y->id] == bf16, "the scan output is stored in bf16 exactly in bf16 precision");
        int fwd = 0, bf16_out = 0, bf16_u = 0;
        for (int k = 0; k < p->nmodules; k++) {
            const char *src = p->modules[k].src;
            if (!strstr(src, "vmc_scan_fwd(")) continue;
            fwd++;
            bf16_out += strstr(src, "#define OUT_T bf16") != NULL;
            bf16_u += strstr(src, "#define U_T bf16") != NULL;
        }
        CHECK(fwd >= 1 && bf16_out == (bf16 ? fwd : 0), "scan forward modules writing bf16: %d of %d", bf16_out, fwd);
        /* u = silu(conv) is what the conv template writes (its backward recomputes the conv output, so training does
         * not keep it); read by templates and the x_proj GEMMs only, it is stored in bf16 exactly in bf16 */
        const Node *u = fus_src(p->f, y, 0), *cv = fus_owner(p->f, u);
        CHECK(u->op == OP_SILU && cv->op == OP_CONV1D && p->f->conv_silu[cv->id] && p->f->view[u->id] == cv,
              "silu(conv) is written by the conv1d template in place of the conv output");
        CHECK(p->f->store_bf16[cv->id] == bf16 && !p->f->shadow[cv->id], "silu(conv) is stored in bf16 exactly in bf16");
        int conv = 0, conv2 = 0;
        for (int k = 0; k < p->nmodules; k++) {
            const char *src = p->modules[k].src;
            if (!strstr(src, "vmc_conv1d_fwd(")) continue;
            conv += strstr(src, "#define CONV_SILU 1") && strstr(src, bf16 ? "#define OUT_T bf16" : "#define OUT_T float");
            conv2 += strstr(src, "#define CONV_SILU_OUT 1") != NULL;
        }
        CHECK(conv >= 1 && conv2 == 0, "conv1d forward modules apply the SiLU (%d) and write no second output (%d)", conv, conv2);
        CHECK(bf16_u == (bf16 ? fwd : 0), "scan forward modules reading bf16 u: %d of %d", bf16_u, fwd);
        program_free(p);
        graph_free(g);
    }
}

/* The scan backward's du, ddelta and dz (compiler/packed_copy.h): in bf16 precision the parts that generated kernels,
 * GEMMs and the conv's SiLU backward read get bf16 copies and, where nothing reads them in f32, no f32 store; the
 * templates are instantiated to match and the readers take the copy. Here du (the conv's SiLU backward) and dz (the
 * gate's) are copied; ddelta is
 * read with dBm and dCm by x_proj's backward concat, which reads parameter-gradient parts, so it stays f32. In
 * fp32 nothing changes. A packed output the host reads keeps every part in f32. */
static void test_scan_bwd_copies(void) {
    for (int mode = 0; mode < 3; mode++) {   /* fp32; bf16; bf16 with the first scan backward kept */
        const bool bf16 = mode > 0;
        Node *yf;
        Graph *g = two_dir_scan_graph(&yf, false);
        Node *keep[1];
        int nkeep = 0;
        for (int k = 0; mode == 2 && k < g->nnodes && !nkeep; k++)
            if (g->nodes[k]->op == OP_SCAN_BWD) keep[nkeep++] = g->nodes[k];
        ProgramOptions po = {.arch = 90, .bf16 = bf16, .no_compile = true};
        char err[256];
        Program *p = program_build(g, keep, nkeep, &po, err, sizeof err);
        CHECK(p, "program_build: %s", err);
        if (!p) { graph_free(g); continue; }
        const Fusion *f = p->f;
        const int copied = SCAN_PART_DU | SCAN_PART_DZ;
        int scans = 0, copy_readers = 0;
        for (int id = 0; id < g->nnodes; id++) {
            const Node *o = g->nodes[id];
            if (o->op != OP_SCAN_BWD || !f->live[id] || f->repl[id] != o) continue;
            scans++;
            const bool is_kept = nkeep && o == keep[0];   /* kept: no copy, every part in f32 */
            const int want_copy = bf16 && !is_kept ? copied : 0, want_f32 = is_kept ? 0 : SCAN_PART_DDL;
            printf("scan backward %%%u (%s%s): copies %d, f32 %d\n", o->id, bf16 ? "bf16" : "fp32",
                   nkeep && o == keep[0] ? ", kept" : "", f->part_copy[id], f->part_f32[id]);
            CHECK(f->shadow[id] == (want_copy != 0) && f->part_copy[id] == want_copy, "copies: %d", f->part_copy[id]);
            CHECK(!want_copy || f->part_f32[id] == want_f32, "f32 parts: %d, want %d", f->part_f32[id], want_f32);
            for (int k = 0; k < f->ngroups; k++) {
                const Group *gr = &f->groups[k];
                if (gr->kind != GK_EW && gr->kind != GK_ROW) continue;
                for (int j = 0; j < gr->nins; j++) {
                    if (fus_owner(f, gr->ins[j]) != o) continue;
                    const int parts = packed_parts_read(f, gr, gr->ins[j], o);
                    const bool copy = codegen_reads_copy(f, gr, gr->ins[j]);
                    copy_readers += copy;
                    CHECK(copy == (want_copy && !(parts & ~copied)), "group %d reads parts %d %s its copy", k, parts,
                          copy ? "from" : "not from");
                }
            }
        }
        CHECK(scans == 2, "two scan backwards: %d", scans);
        CHECK(bf16 ? copy_readers >= 1 : copy_readers == 0, "generated kernels reading a copy: %d", copy_readers);
        int silu_bwd = 0, silu_bwd_bf16 = 0;   /* the conv's SiLU backward reads du in bf16 where it is copied */
        for (int k = 0; k < p->nmodules; k++) {
            const char *src = p->modules[k].src;
            if (!strstr(src, "vmc_conv1d_bwd(") || !strstr(src, "#define CONV_SILU_DY 1")) continue;
            silu_bwd++;
            silu_bwd_bf16 += strstr(src, "#define DY_T bf16") != NULL;
        }
        CHECK(silu_bwd >= 1 && silu_bwd_bf16 == (bf16 ? silu_bwd - (mode == 2) : 0),
              "conv SiLU backward modules reading du in bf16: %d of %d", silu_bwd_bf16, silu_bwd);
        /* the conv backward's dx, read by the generated kernel that forms in_proj's gradient: a bf16 copy only */
        int convs = 0, dx_copy_only = 0;
        for (int id = 0; id < g->nnodes; id++) {
            const Node *o = g->nodes[id];
            if (o->op != OP_CONV1D_SILU_BWD || !f->live[id] || f->repl[id] != o) continue;
            convs++;
            CHECK(f->part_copy[id] == (bf16 ? CONV_PART_DX : 0) && !(f->part_f32[id] & CONV_PART_DX),
                  "conv backward %%%d: copies %d, f32 %d", id, f->part_copy[id], f->part_f32[id]);
        }
        for (int k = 0; k < p->nmodules; k++) {
            const char *src = p->modules[k].src;
            if (!strstr(src, "vmc_conv1d_bwd(")) continue;
            const char *c = strstr(src, "#define CONV_COPY_DX "), *x = strstr(src, "#define CONV_F32_DX ");
            dx_copy_only += c && x && atoi(c + 21) == 1 && atoi(x + 20) == 0;
        }
        CHECK(convs == 2 && (dx_copy_only >= 1) == bf16, "conv backward modules writing dx as bf16 only: %d", dx_copy_only);
        int bwd = 0, plain = 0, kept = 0;   /* the instantiation's defines come first (the template's defaults later) */
        for (int k = 0; k < p->nmodules; k++) {
            const char *src = p->modules[k].src, *c = strstr(src, "#define SCAN_COPY_PARTS "),
                       *f32 = strstr(src, "#define SCAN_F32_PARTS ");
            if (!strstr(src, "vmc_scan_bwd(")) continue;
            bwd++;
            const int nc = c ? atoi(c + 24) : -1, nf = f32 ? atoi(f32 + 23) : -1;
            plain += nc == (bf16 ? copied : 0) && nf == (bf16 ? SCAN_PART_DDL : SCAN_PARTS);
            kept += bf16 && nc == 0 && nf == SCAN_PARTS;
        }
        CHECK(bwd >= 1 && plain >= 1 && plain + kept == bwd && kept == (mode == 2),
              "scan backward modules instantiated as planned: %d + %d of %d", plain, kept, bwd);
        program_free(p);
        graph_free(g);
    }
}

/* One direction, as ARM pretraining's mixer: in bf16 the in_proj output gradient [dx | dz] is the conv backward's dx
 * and the scan backward's dz side by side, read by in_proj's two gradient GEMMs only. No kernel assembles it: each
 * template writes its part's bf16 copy into its column block (Fusion.into), and that copy's memory is live from the
 * first of them on. In fp32 the assembling kernel stays. */
static void test_copies_into_place(void) {
    for (int mode = 0; mode < 3; mode++) {   /* fp32; bf16; bf16 with ProgramOptions.no_into_place */
        const bool bf16 = mode > 0;
        Graph *g = graph_new();
        const int64_t B = 2, L = 9, C = 8, D = 32;
        Node *h = g_input(g, "h", shape_of(3, B, L, C), DT_F32, LOC_NONE);
        Node *xz = g_matmul(g, h, param(g, "in_proj", shape_of(2, 2 * D, C)), false, true, LOC_NONE);
        Node *dbc = g_matmul(g, h, param(g, "x_proj", shape_of(2, D + 32, C)), false, true, LOC_NONE);
        Node *x = g_slice(g, xz, 2, 0, D, LOC_NONE), *z = g_slice(g, xz, 2, D, 2 * D, LOC_NONE);
        train_sum_of_squares(g, scan_dir(g, x, z, dbc, ""));
        ProgramOptions po = {.arch = 90, .bf16 = bf16, .no_compile = true, .no_into_place = mode == 2};
        char err[256];
        Program *p = program_build(g, NULL, 0, &po, err, sizeof err);
        CHECK(p, "program_build: %s", err);
        if (!p) { graph_free(g); continue; }
        const Fusion *f = p->f;
        int elided = 0, launched = 0;
        const Group *asm_gr = NULL;
        for (int k = 0; k < f->ngroups; k++) if (f->groups[k].elided) { elided++; asm_gr = &f->groups[k]; }
        for (int k = 0; k < p->nlaunches; k++) launched += asm_gr && p->launches[k].group == asm_gr->index;
        printf("copies into place (%s): %d elided group(s), %d launch(es) of it\n",
               mode == 2 ? "bf16, no_into_place" : bf16 ? "bf16" : "fp32", elided, launched);
        CHECK(elided == (mode == 1) && launched == 0, "the [dx | dz] assembly is elided exactly in bf16: %d", elided);
        if (!asm_gr) { program_free(p); graph_free(g); continue; }
        const Node *c = asm_gr->root;
        CHECK(c->shape.d[2] == 2 * D && f->shadow_only[c->id], "the assembled value is [.., 2D], read as bf16 only");
        int producers = 0, first = asm_gr->index;
        for (int id = 0; id < g->nnodes; id++) {
            if (f->into[id] != c) continue;
            const Node *o = g->nodes[id];
            const int64_t col = o->op == OP_SCAN_BWD ? D : 0;
            CHECK((o->op == OP_SCAN_BWD || o->op == OP_CONV1D_SILU_BWD) && f->into_col[id] == col,
                  "%s writes its copy from column %lld", op_name(o->op), (long long)f->into_col[id]);
            producers++;
            if (f->group_of[id] < first) first = f->group_of[id];
            /* its launch (not a zeroing kernel placed in its group): that block's address, and the write listed */
            const char *tpl = o->op == OP_SCAN_BWD ? "vmc_scan_bwd" : "vmc_conv1d_bwd";
            int found = 0;
            for (int k = 0; k < p->nlaunches; k++) {
                const Launch *l = &p->launches[k];
                if (l->kind != LK_KERNEL || l->group != f->group_of[id] || strncmp(l->name, tpl, strlen(tpl))) continue;
                found++;
                const BufRef a = l->args[o->op == OP_SCAN_BWD ? l->nargs - 1 : 8];
                CHECK(a.arena == f->sbuf[c->id].arena && a.offset == f->sbuf[c->id].offset + col * 2,
                      "%s: the copy's address", l->name);
                bool listed = false;
                for (int j = 0; j < l->nacc; j++) listed |= l->acc[j].write && l->acc[j].at.offset == f->sbuf[c->id].offset;
                CHECK(listed, "%s: the write of the assembled copy is listed", l->name);
            }
            CHECK(found == 1, "%s: %d launches", tpl, found);
        }
        CHECK(producers == 2, "two templates write into place: %d", producers);
        int defs = 0;
        for (int k = 0; k < p->nmodules; k++) {
            const char *src = p->modules[k].src, *sd = strstr(src, "#define SCAN_DZ_COPY_LD "),
                       *cd = strstr(src, "#define CONV_DX_COPY_LD ");
            defs += (strstr(src, "vmc_scan_bwd(") && sd && atoi(sd + 24) == 2 * D) +
                    (strstr(src, "vmc_conv1d_bwd(") && cd && atoi(cd + 24) == 2 * D);
        }
        CHECK(defs == 2, "both templates instantiated with rows 2D wide: %d", defs);
        /* nothing else in the activations arena that is live meanwhile shares the copy's memory */
        int last = first;
        for (int k = 0; k < f->ngroups; k++)
            for (int j = 0; j < f->groups[k].nins; j++) if (fus_owner(f, f->groups[k].ins[j]) == c && k > last) last = k;
        const Buf cb = f->sbuf[c->id];
        for (int id = 0; id < g->nnodes; id++) {
            if (id == (int)c->id || !f->mat[id] || !f->live[id] || f->view[id] || f->group_of[id] < 0) continue;
            int lo = f->group_of[id], hi = lo;
            for (int k = 0; k < f->ngroups; k++)
                for (int j = 0; j < f->groups[k].nins; j++) if (fus_owner(f, f->groups[k].ins[j])->id == (unsigned)id && k > hi) hi = k;
            if (hi + f->reuse_delay < first || lo > last) continue;
            for (int s = 0; s < 2; s++) {
                const Buf b = s ? f->sbuf[id] : f->buf[id];
                if ((s && !f->shadow[id]) || b.arena != AR_ACT || !b.bytes) continue;
                CHECK(b.offset >= cb.offset + cb.bytes || cb.offset >= b.offset + b.bytes,
                      "%%%d's %s buffer overlaps the assembled copy while both are live", id, s ? "bf16" : "");
            }
        }
        program_free(p);
        graph_free(g);
    }
}

/* The optimizer step: per parameter, AdamW's m, v and the new weight and the EMA are one kernel (the values are
 * extra outputs, written in place into their states), whatever the gradient's kernel; no ASSIGN copies. */
static void test_optimizer_kernels(void) {
    Graph *g = graph_new();
    Node *x = g_input(g, "x", shape_of(2, (int64_t)64, (int64_t)32), DT_F32, LOC_NONE);
    ParamInfo pi = {.init = INIT_ZEROS, .lr_layer = -1};
    Node *w = g_param(g, "w", shape_of(2, (int64_t)48, (int64_t)32), DT_F32, pi, LOC_NONE);
    Node *w2 = g_param(g, "w2", shape_of(4, (int64_t)32, (int64_t)3, (int64_t)4, (int64_t)4), DT_F32, pi, LOC_NONE);
    Node *y = g_matmul(g, x, bin(g, OP_ADD, w, g_reshape(g, w2, shape_of(2, (int64_t)48, (int64_t)32), LOC_NONE)),
                       false, true, LOC_NONE);
    Node *loss = red(g, OP_SUM, g_reshape(g, bin(g, OP_MUL, y, y), shape_of(1, (int64_t)64 * 48), LOC_NONE), 0);
    graph_set_loss(g, loss);
    Node **grads = calloc((size_t)g->params.n, sizeof(Node *));
    char err[256];
    CHECK(autodiff_backward(g, loss, grads, err, sizeof err), "autodiff: %s", err);
    OptimConfig cfg = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05, .clip = 1.0,
                       .layer_decay = 1.0, .ema_decay = 0.999};
    OptimNodes on;
    CHECK(optim_append(g, grads, &cfg, &on, err, sizeof err), "optim: %s", err);
    Fusion *f = pass_simplify(g, NULL, 0);
    pass_fuse(f);
    pass_plan(f);
    fusion_dump(f, stdout);
    check_plan(f);
    int updates = 0, copies = 0;
    for (int k = 0; k < f->ngroups; k++) {
        const Group *gr = &f->groups[k];
        if (gr->kind == GK_ASSIGN) { copies += !gr->inplace; continue; }
        int states = 0;   /* outputs that are new values of an ASSIGN target: m, v, weight, EMA */
        for (int j = 0; j < gr->nouts; j++) states += f->buf[gr->outs[j]->id].arena == AR_STATE ||
                                                       f->buf[gr->outs[j]->id].arena == AR_PARAM;
        updates += states > 0;
        if (states) CHECK(states == 4, "group %d writes %d of m, v, weight, EMA (want all 4)", k, states);
    }
    printf("optimizer: %d update kernels for 2 parameters, %d ASSIGN copies\n", updates, copies);
    CHECK(updates == 2 && copies == 0, "one in-place update kernel per parameter: %d kernels, %d copies", updates, copies);
    free(grads);
    fusion_free(f);
    graph_free(g);
}

/* The gradient norm's sum of squares of a gradient finished early in the backward runs right after it, not in the
 * tail after the last GEMM (pass_plan hoist_tail); every group still follows the producers of its inputs. */
static void test_hoisted_norm_sums(void) {
    Graph *g = graph_new();
    Node *x = g_input(g, "x", shape_of(2, (int64_t)64, (int64_t)32), DT_F32, LOC_NONE);
    Node *w1 = param(g, "w1", shape_of(2, (int64_t)48, (int64_t)32)), *w2 = param(g, "w2", shape_of(2, (int64_t)16, (int64_t)48));
    Node *h = g_matmul(g, x, w1, false, true, LOC_NONE), *y = g_matmul(g, h, w2, false, true, LOC_NONE);
    Node *loss = red(g, OP_SUM, g_reshape(g, bin(g, OP_MUL, y, y), shape_of(1, (int64_t)64 * 16), LOC_NONE), 0);
    graph_set_loss(g, loss);
    Node **grads = calloc((size_t)g->params.n, sizeof(Node *));
    char err[256];
    CHECK(autodiff_backward(g, loss, grads, err, sizeof err), "autodiff: %s", err);
    OptimConfig cfg = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05, .clip = 1.0, .layer_decay = 1.0};
    OptimNodes on;
    CHECK(optim_append(g, grads, &cfg, &on, err, sizeof err), "optim: %s", err);
    Fusion *f = fuse_planned(g);
    int last_gemm = -1, norm_w2 = -1, grad_w2 = f->group_of[fus_owner(f, grads[1])->id];
    for (int k = 0; k < f->ngroups; k++) {
        const Group *gr = &f->groups[k];
        if (gr->kind == GK_GEMM) last_gemm = k;
        for (int j = 0; j < gr->nins; j++)
            if (gr->kind == GK_ROW && fus_owner(f, gr->ins[j]) == fus_owner(f, grads[1])) norm_w2 = k;
    }
    printf("hoisted norm sums: w2's gradient in group %d, its sum of squares in %d, last GEMM %d\n", grad_w2,
           norm_w2, last_gemm);
    CHECK(grad_w2 >= 0 && norm_w2 > grad_w2 && norm_w2 < last_gemm, "w2's gradient-norm sum is not hoisted");
    free(grads);
    fusion_free(f);
    graph_free(g);
}

/* Fusion.reuse_delay keeps an activation's memory reserved that many groups after its last reader: with a delay past
 * the step's end no two activations share memory (and the arena is at least as large as with reuse). */
static void test_reuse_delay(void) {
    int64_t bytes[2];
    for (int mode = 0; mode < 2; mode++) {
        Node *yf;
        Graph *g = two_dir_scan_graph(&yf, false);
        Fusion *f = pass_simplify(g, NULL, 0);
        pass_fuse(f);
        f->reuse_delay = mode ? 1000000 : 0;
        pass_plan(f);
        check_plan(f);
        bytes[mode] = f->arena_bytes[AR_ACT];
        int shared = 0;
        for (int a = 0; mode && a < g->nnodes; a++) {
            const Buf *x = &f->buf[a];
            if (!f->mat[a] || !f->live[a] || x->arena != AR_ACT || f->view[a] || f->repl[a] != g->nodes[a]) continue;
            for (int b = 0; b < a; b++) {
                const Buf *y = &f->buf[b];
                if (!f->mat[b] || !f->live[b] || y->arena != AR_ACT || f->view[b] || f->repl[b] != g->nodes[b]) continue;
                shared += x->bytes && y->bytes && x->offset < y->offset + y->bytes && y->offset < x->offset + x->bytes;
            }
        }
        CHECK(shared == 0, "reuse delayed past the step: %d pairs of activations share memory", shared);
        fusion_free(f);
        graph_free(g);
    }
    printf("reuse delay: activations %lld bytes reused at once, %lld never reused\n", (long long)bytes[0],
           (long long)bytes[1]);
    CHECK(bytes[1] > bytes[0], "no reuse takes more memory than reuse");
}

/* ProgramOptions.reuse_delay reaches the plan: unset is PROGRAM_REUSE_DELAY, PROGRAM_REUSE_AT_ONCE is none, a count
 * is that count, in a training step and in inference alike. */
static void test_reuse_delay_option(void) {
    const int asked[] = {0, PROGRAM_REUSE_AT_ONCE, 7}, want[] = {PROGRAM_REUSE_DELAY, 0, 7};
    for (int training = 0; training < 2; training++)
        for (int k = 0; k < 3; k++) {
            Node *yf;
            Graph *g = two_dir_scan_graph(&yf, false);
            if (training) {   /* one update makes it a training step */
                Node *w = NULL;
                for (int id = 0; id < g->nnodes && !w; id++)
                    if (g->nodes[id]->op == OP_PARAM) w = g->nodes[id];
                g_assign(g, w, bin(g, OP_MUL, w, cst(g, 0.5)));
            }
            ProgramOptions po = {.arch = 90, .no_compile = true, .reuse_delay = asked[k]};
            char err[256];
            Program *p = program_build(g, NULL, 0, &po, err, sizeof err);
            CHECK(p, "program_build: %s", err);
            if (p) {
                CHECK(p->f->reuse_delay == want[k], "%s step, reuse_delay %d asked: plan delays %d groups, want %d",
                      training ? "training" : "inference", asked[k], p->f->reuse_delay, want[k]);
                program_free(p);
            }
            graph_free(g);
        }
}

/* SwiGLU's gate, silu(x W1 + b1) * (x W2 + b2), is read only by the W3 GEMM: in bf16 precision x W1 and x W2
 * are stored in bf16 and the gate kernel writes just the bf16 copy (no f32 value, no f32 memory), 4 elements per
 * thread with 8-byte loads and stores; in fp32 it reads and writes f32 with 16-byte loads and stores. */
static void test_gate_kernel(void) {
    for (int bf16 = 0; bf16 < 2; bf16++) {
        Graph *g = graph_new();
        const MlpInputs in = mlp_inputs(g, 48);
        Node *x = in.x, *w1 = in.w1, *b1 = in.b1, *w2 = in.w2, *b2 = in.b2, *w3 = in.w3;
        Node *h1 = bin(g, OP_ADD, g_matmul(g, x, w1, false, true, LOC_NONE), b1);
        Node *h2 = bin(g, OP_ADD, g_matmul(g, x, w2, false, true, LOC_NONE), b2);
        Node *gate = bin(g, OP_MUL, un(g, OP_SILU, h1), h2);
        Node *y = g_matmul(g, gate, w3, false, true, LOC_NONE);
        graph_add_named(g, "y", y, NF_OUTPUT);
        Node *lr = g_input(g, "lr", shape_of(0), DT_F32, LOC_NONE);
        Node *scalar = un(g, OP_EXP, bin(g, OP_MUL, lr, cst(g, 0.5)));   /* a 0-d elementwise kernel */
        graph_add_named(g, "s", scalar, NF_OUTPUT);
        Program *p = build(g, bf16);
        if (!p) { graph_free(g); continue; }
        const Fusion *f = p->f;
        const Group *gr = &f->groups[f->group_of[gate->id]];
        KernelSource ks;
        codegen_group(f, gr, &ks);
        printf("gate kernel (%s):\n%s", bf16 ? "bf16" : "fp32", ks.body);
        CHECK(strstr(ks.body, "4 per thread") && strstr(ks.body, bf16 ? "reinterpret_cast<const uint2*>(in"
                                                                          : "reinterpret_cast<const float4*>(in"),
              "the gate kernel reads 4 elements per thread (fp32: 16-byte loads, bf16 GEMM outputs: 8-byte loads)");
        const Node *mm1 = fus_src(f, h1, 0), *mm3 = f->repl[y->id];
        CHECK(mm1->op == OP_MATMUL && f->store_bf16[mm1->id] == bf16, "x W1 is stored in bf16 exactly in bf16 precision");
        CHECK(mm3->op == OP_MATMUL && f->kept[mm3->id] && !f->store_bf16[mm3->id], "an output the host reads stays f32");
        if (bf16) {
            CHECK(f->shadow_only[gate->id] && f->buf[gate->id].arena == AR_COUNT_, "the gate has only a bf16 copy");
            CHECK(strstr(ks.body, "reinterpret_cast<uint2*>(outb0)[e4]") && !strstr(ks.body, "out0["),
                  "the gate kernel stores only the bf16 copy, 8 bytes at a time");
        } else {
            CHECK(!f->shadow[gate->id], "fp32: no bf16 copy");
            CHECK(strstr(ks.body, "reinterpret_cast<float4*>(out0)[e4]"), "fp32: the gate is stored 16 bytes at a time");
        }
        kernel_source_free(&ks);
        codegen_group(f, &f->groups[f->group_of[scalar->id]], &ks);
        printf("%s", ks.body);
        CHECK(scalar->shape.ndim == 0 && !strstr(ks.body, "4 per thread") && strstr(ks.body, "e < 1;") && strstr(ks.body, "out0[e] = "),
              "a 0-d kernel computes its one element");
        kernel_source_free(&ks);
        program_free(p);
        graph_free(g);
    }
}

/* Two GEMMs in a row reading the same f32 operand (no kernel writes it a bf16 copy): one cast serves both. */
static void test_shared_cast(void) {
    Graph *g = graph_new();
    Node *x = g_input(g, "x", shape_of(2, (int64_t)64, (int64_t)32), DT_F32, LOC_NONE);
    Node *w1 = param(g, "w1", shape_of(2, (int64_t)48, (int64_t)32)), *w2 = param(g, "w2", shape_of(2, (int64_t)16, (int64_t)32));
    graph_add_named(g, "y1", g_matmul(g, x, w1, false, true, LOC_NONE), NF_OUTPUT);
    graph_add_named(g, "y2", g_matmul(g, x, w2, false, true, LOC_NONE), NF_OUTPUT);
    Program *p = build(g, true);
    int casts_a = 0, gemms = 0;
    for (int k = 0; p && k < p->nlaunches; k++) {
        casts_a += p->launches[k].kind == LK_KERNEL && strstr(p->launches[k].name, "_bf16_a") != NULL;
        gemms += p->launches[k].kind == LK_GEMM;
    }
    printf("shared operand: %d GEMMs, %d casts of x\n", gemms, casts_a);
    CHECK(gemms == 2 && casts_a == 1, "one bf16 cast of x for both GEMMs (got %d)", casts_a);
    program_free(p);
    graph_free(g);
}


/* The mixer's dt rows, a column slice of x_proj's output [.., 80] -> [.., 48], read only by dt_proj and (through a
 * reshape) by dt_proj's weight gradient: both GEMMs read it in place with a row stride of 80, and no kernel copies it
 * out; a slice starting at a column that breaks 16-byte alignment is still a kernel. */
static void test_gemm_column_view(void) {
    for (int bf16 = 0; bf16 < 2; bf16++) {
        for (int start = 0; start <= 4; start += 4) {
            Graph *g = graph_new();
            Node *u = g_input(g, "u", shape_of(3, (int64_t)4, (int64_t)24, (int64_t)64), DT_F32, LOC_NONE);
            Node *xw = param(g, "x_proj", shape_of(2, (int64_t)80, (int64_t)64));
            Node *dw = param(g, "dt_proj", shape_of(2, (int64_t)64, (int64_t)48));
            Node *xdbl = g_matmul(g, u, xw, false, true, LOC_NONE);
            Node *dt = g_matmul(g, g_slice(g, xdbl, 2, start, start + 48, LOC_NONE), dw, false, true, LOC_NONE);
            Node *bc = g_slice(g, xdbl, 2, 48, 80, LOC_NONE);
            train_sum_of_squares(g, bin(g, OP_ADD, un(g, OP_TANH, dt), red(g, OP_SUM, bc, 2)));
            Program *p = build(g, bf16);
            int strided = 0, slices = 0;
            for (int k = 0; p && k < p->nlaunches; k++) {
                const Launch *l = &p->launches[k];
                if (l->kind == LK_GEMM)   /* dt_proj (A: [.., 48], K = 48) and its weight gradient (B: [tokens, 48]) */
                    strided += (l->gemm.lda == 80 && !l->gemm.ta && l->gemm.K == 48) || (l->gemm.ldb == 80 && l->gemm.N == 48);
                if (l->kind == LK_KERNEL && strstr(l->name, "_slice") && !strstr(l->name, "sum")) slices++;
            }
            printf("column view (%s, first column %d): %d GEMM operands with row stride 80, %d slice kernels\n",
                   bf16 ? "bf16" : "fp32", start, strided, slices);
            if (start == 0) CHECK(strided == 2 && slices == 0, "dt_proj and its weight gradient read the slice in place");
            else CHECK(strided == 0 && slices == 1, "an unaligned slice is a kernel");
            program_free(p);
            graph_free(g);
        }
    }
}

/* GEMM epilogues: a product's scale by a constant (exact: x * s, x / 2^k) or its sum with a stored value is
 * cuBLASLt's alpha and beta C, not a kernel; not when the product has another reader or the division is inexact. */
static void test_gemm_epilogue(void) {
    for (int bf16 = 0; bf16 < 2; bf16++) {
        Graph *g = graph_new();
        Node *x = g_input(g, "x", shape_of(2, (int64_t)64, (int64_t)32), DT_F32, LOC_NONE);
        Node *w[6];   /* one weight per product (the builder would share equal products) */
        for (int k = 0; k < 6; k++) {
            char name[8];
            snprintf(name, sizeof name, "w%d", k);
            w[k] = param(g, name, shape_of(2, (int64_t)48, (int64_t)32));
        }
        Node *p1 = g_matmul(g, x, w[0], false, true, LOC_NONE), *p2 = g_matmul(g, x, w[1], false, true, LOC_NONE);
        graph_add_named(g, "sum", bin(g, OP_ADD, p1, p2), NF_OUTPUT);
        graph_add_named(g, "quarter", bin(g, OP_DIV, g_matmul(g, x, w[2], false, true, LOC_NONE), cst(g, 4)), NF_OUTPUT);
        graph_add_named(g, "third", bin(g, OP_DIV, g_matmul(g, x, w[3], false, true, LOC_NONE), cst(g, 3)), NF_OUTPUT);
        graph_add_named(g, "scaled", bin(g, OP_MUL, cst(g, 0.5), g_matmul(g, x, w[4], false, true, LOC_NONE)), NF_OUTPUT);
        Node *p5 = g_matmul(g, x, w[5], false, true, LOC_NONE);   /* read twice: stored, then scaled by a kernel */
        graph_add_named(g, "twice", bin(g, OP_MUL, bin(g, OP_DIV, p5, cst(g, 2)), p5), NF_OUTPUT);
        Program *p = build(g, bf16);
        int gemms = 0, acc = 0, quarter = 0, half = 0, kernels = 0;
        for (int k = 0; p && k < p->nlaunches; k++) {
            const Launch *l = &p->launches[k];
            if (l->kind == LK_KERNEL && !l->bf16_cast) kernels++;
            if (l->kind != LK_GEMM) continue;
            gemms++;
            acc += l->gemm.has_acc;
            quarter += l->gemm.alpha == 0.25f;
            half += l->gemm.alpha == 0.5f;
            if (l->gemm.has_acc) {   /* C is p1's buffer, in D's storage type */
                const Node *c = p->f->group_of[p1->id] >= 0 ? p1 : p2;
                CHECK(l->gemm.acc.offset == p->f->buf[c->id].offset && l->gemm.acc.arena == p->f->buf[c->id].arena,
                      "the sum's C is the other product");
                CHECK(fus_bf16(p->f, c) == l->gemm.c_bf16, "C and D of one storage type");
            }
        }
        printf("GEMM epilogues (%s): %d GEMMs, %d with C, %d x 1/4, %d x 1/2, %d kernels\n", bf16 ? "bf16" : "fp32",
               gemms, acc, quarter, half, kernels);
        CHECK(gemms == 6 && acc == 1 && quarter == 1 && half == 1, "sum, / 4 and * 0.5 in the GEMM");
        CHECK(kernels == 2, "/ 3 and the twice-read product's update are kernels (got %d)", kernels);
        program_free(p);
        graph_free(g);
    }
}

/* product_pair_match: a GEMM whose acc is another plain product of one layout and shape (SwiGLU's input gradient
 * dy1 W1 + dy2 W2) pairs with it; not with A transposed (the one launch reads A [M][K]), nor when anything else reads
 * the first product, nor when one product is scaled. */
static void test_product_pairs(void) {
    const char *what[] = {"plain", "A transposed", "first product read elsewhere", "second product scaled"};
    for (int c = 0; c < 4; c++) {
        Graph *g = graph_new();
        const bool ta = c == 1;
        const Shape xs = ta ? shape_of(2, (int64_t)32, (int64_t)64) : shape_of(2, (int64_t)64, (int64_t)32);
        Node *x1 = g_input(g, "x1", xs, DT_F32, LOC_NONE), *x2 = g_input(g, "x2", xs, DT_F32, LOC_NONE);
        Node *w1 = param(g, "w1", shape_of(2, (int64_t)48, (int64_t)32));
        Node *w2 = param(g, "w2", shape_of(2, (int64_t)48, (int64_t)32));
        Node *p1 = g_matmul(g, x1, w1, ta, true, LOC_NONE), *p2 = g_matmul(g, x2, w2, ta, true, LOC_NONE);
        if (c == 3) p2 = bin(g, OP_MUL, p2, cst(g, 0.5));
        graph_add_named(g, "sum", bin(g, OP_ADD, p1, p2), NF_OUTPUT);
        if (c == 2) graph_add_named(g, "first", un(g, OP_EXP, p1), NF_OUTPUT);
        Fusion *f = fuse_planned(g);
        int pairs = 0;
        const Node *first = NULL;
        for (int k = 0; k < f->ngroups; k++) {
            const Node *m = product_pair_match(f, &f->groups[k]);
            if (m) { pairs++; first = m; }
        }
        const bool want = c == 0;
        CHECK(pairs == (want ? 1 : 0), "%s: %d pairs", what[c], pairs);
        CHECK(!want || first == f->repl[p1->id] || first == f->repl[p2->id], "%s: the pair's first is a product",
              what[c]);
        printf("product pairs, %s: %d\n", what[c], pairs);
        fusion_free(f);
        graph_free(g);
    }
}

/* Fusion.conv_multi_bwd (conv_multi.c): three directions' CONV1D_SILU_BWD of one x (in order, reversed, a
 * permutation) whose dx the merge adds back each by the inverse of its order become one launch at the last, the sum
 * going to the in-order direction's dx and the others read as zero; not when one direction's dx is gathered back by
 * anything but the inverse (the sum would be wrong), nor when a direction's dw/db is read before the last direction
 * (its launch comes later), nor without the option. */
static void test_conv_multi_bwd(void) {
    for (int mode = 0; mode < 4; mode++) {   /* 0: the inverse orders; 1: one wrong; 2: option off; 3: an early reader */
        Graph *g = graph_new();
        enum { B = 2, L = 9, C = 8, D = 32, K = 4, ND = 3 };
        Node *h = g_input(g, "h", shape_of(3, (int64_t)B, (int64_t)L, (int64_t)C), DT_F32, LOC_NONE);
        Node *x = g_matmul(g, h, param(g, "in_proj", shape_of(2, (int64_t)D, (int64_t)C)), false, true, LOC_NONE);
        int32_t rows[ND][L], inv[ND][L];
        for (int t = 0; t < L; t++) {
            rows[0][t] = t; rows[1][t] = L - 1 - t; rows[2][t] = (t * 4) % L;   /* 4 is coprime to 9 */
            for (int j = 0; j < ND; j++) inv[j][rows[j][t]] = t;
        }
        Node *dx = NULL, *dwbs = NULL;
        for (int j = 0; j < ND; j++) {
            char nm[16];
            Node *xj = j ? g_gather(g, x, 1, rows[j], L, LOC_NONE) : x;
            snprintf(nm, sizeof nm, "dy%d", j);
            Node *dy = g_input(g, nm, x->shape, DT_F32, LOC_NONE);
            snprintf(nm, sizeof nm, "w%d", j);
            Node *w = param(g, nm, shape_of(3, (int64_t)D, (int64_t)1, (int64_t)K));
            snprintf(nm, sizeof nm, "b%d", j);
            Node *pk = g_conv1d_silu_bwd(g, dy, NULL, xj, w, param(g, nm, shape_of(1, (int64_t)D)), LOC_NONE);
            Node *dxj = g_extract(g, pk, 0, x->shape, LOC_NONE);
            Node *dwb = g_extract(g, pk, (int64_t)B * L * D, shape_of(1, (int64_t)D * (K + 1)), LOC_NONE);
            if (mode == 3 && j == 0) graph_add_named(g, "dwb0", dwb, NF_OUTPUT);   /* read before the last direction */
            else dwbs = dwbs ? g_binary(g, OP_ADD, dwbs, dwb, LOC_NONE) : dwb;   /* read after the last direction */
            const int32_t *back = mode == 1 && j == 2 ? rows[j] : inv[j];
            Node *term = j ? g_gather(g, dxj, 1, back, L, LOC_NONE) : dxj;
            dx = dx ? g_binary(g, OP_ADD, dx, term, LOC_NONE) : term;
        }
        graph_add_named(g, "dx", g_binary(g, OP_MUL, dx, g_scalar(g, 2), LOC_NONE), NF_OUTPUT);
        graph_add_named(g, "dwb", dwbs, NF_OUTPUT);
        ProgramOptions po = {.arch = 90, .no_compile = true, .no_conv_multi_bwd = mode == 2};
        char err[256];
        Program *p = program_build(g, NULL, 0, &po, err, sizeof err);
        CHECK(p, "program_build: %s", err);
        if (!p) { graph_free(g); continue; }
        const Fusion *f = p->f;
        int elided = 0, zero = 0, sums = 0, multi = 0, single = 0;
        for (int k = 0; k < f->ngroups; k++) elided += f->groups[k].elided && f->groups[k].root->op == OP_CONV1D_SILU_BWD;
        for (int id = 0; id < g->nnodes; id++) {
            zero += f->part_zero[id] != 0;
            sums += f->conv_sum_to[id] != NULL && f->conv_sum_to[id]->src[1] == x;   /* the in-order direction */
        }
        for (int k = 0; k < p->nlaunches; k++) {
            multi += p->launches[k].kind == LK_KERNEL && !strcmp(p->launches[k].name, "vmc_conv1d_bwd_multi");
            single += p->launches[k].kind == LK_KERNEL && !strcmp(p->launches[k].name, "vmc_conv1d_bwd");
        }
        printf("conv1d backward of 3 directions (%s): %d elided, %d zero part(s), %d launch(es) of the multi kernel, "
               "%d single\n", mode == 0 ? "inverse orders" : mode == 1 ? "one wrong order" : mode == 2 ? "option off"
               : "a gradient read before the last direction", elided, zero, multi, single);
        if (mode == 0)
            CHECK(elided == 2 && zero == 2 && sums == 1 && multi == 1 && single == 0, "one launch summing into direction 0");
        else CHECK(elided == 0 && zero == 0 && multi == 0 && single == 3, "three launches");
        program_free(p);
        graph_free(g);
    }
}

int main(void) {
    test_conv_multi_bwd();
    test_chain();
    test_layernorm();
    test_layernorm_training();
    test_softmax();
    test_mse();
    test_linear();
    test_fold_and_dead();
    test_views_and_inplace();
    test_row_kernels();
    test_scan_row_maps();
    test_scan_out_bf16();
    test_scan_bwd_copies();
    test_copies_into_place();
    test_conv_silu_backward();
    test_scan_states();
    test_factored_gate();
    test_recompute();
    test_swiglu_bwd_match();
    test_recompute_softmax();
    test_sibling_merge();
    test_vec4_loads();
    test_vec4_gathered_loads();
    test_row_vec4();
    test_optimizer_kernels();
    test_hoisted_norm_sums();
    test_product_pairs();
    test_merged_column_sums();
    test_column_sums_in_row_kernel();
    test_eval_drop_path();
    test_reuse_delay();
    test_reuse_delay_option();
    test_gate_kernel();
    test_shared_cast();
    test_gemm_epilogue();
    test_gemm_column_view();
    if (failures) { fprintf(stderr, "%d failure(s)\n", failures); return 1; }
    printf("ok\n");
    return 0;
}
