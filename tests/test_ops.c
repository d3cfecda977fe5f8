/* test_ops.c — every differentiable op: autodiff gradient vs central finite differences on the fp64 cpu
 * backend, on fresh random inputs, with broadcasting and attribute variants; fp32 backend agreement. */
#include "cpu_vexp.h"
#include <float.h>
#include "cpu_check.h"

#define S(...) shape_of(__VA_ARGS__)
#define I64(x) ((int64_t)(x))

static CheckOpts opts(int k0, int k1, int k2) { CheckOpts o = {1e-6, {k0, k1, k2}, 48}; return o; }

static void run(const char *name, Graph *g, Node *out, CheckOpts o) {
    Node *loss = check_weighted_loss(g, out);
    check_grads(name, g, loss, &o);
    graph_free(g);
}

static void unary_ops(void) {
    static const OpKind ops[] = {OP_NEG, OP_EXP, OP_LOG, OP_SQRT, OP_RSQRT, OP_RECIP, OP_TANH, OP_ERF, OP_SIGMOID,
                                 OP_SILU, OP_SOFTPLUS, OP_RELU, OP_ABS};
    for (size_t k = 0; k < COUNTOF(ops); k++) {
        Graph *g = graph_new();
        Node *x = check_param(g, "x", S(2, I64(3), I64(5)));
        bool pos = ops[k] == OP_LOG || ops[k] == OP_SQRT || ops[k] == OP_RSQRT || ops[k] == OP_RECIP;
        char name[64];
        snprintf(name, sizeof name, "op %s", op_name(ops[k]));
        run(name, g, check_ok(g, g_unary(g, ops[k], x, LOC_NONE)), opts(pos ? 1 : 0, 0, 0));
    }
    Graph *g = graph_new();        /* softplus above its linear threshold */
    Node *x = check_param(g, "x", S(1, I64(6)));
    run("op softplus (x + 25)", g, check_ok(g, g_unary(g, OP_SOFTPLUS, g_binary(g, OP_ADD, x, g_scalar(g, 25), LOC_NONE), LOC_NONE)), opts(0, 0, 0));
    g = graph_new();
    x = check_param(g, "x", S(2, I64(3), I64(4)));
    CheckOpts oc = opts(0, 0, 0);
    oc.no32 = true;
    run("op cast (f32 -> bf16 -> f32)", g, g_cast(g, g_cast(g, x, DT_BF16, LOC_NONE), DT_F32, LOC_NONE), oc);
}

static void binary_ops(void) {
    static const OpKind ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_MIN};
    Shape sa[] = {S(3, I64(2), I64(3), I64(4)), S(3, I64(2), I64(3), I64(4)), S(2, I64(3), I64(1)), S(0),
                  S(3, I64(2), I64(3), I64(4)), S(1, I64(4))};
    Shape sb[] = {S(3, I64(2), I64(3), I64(4)), S(2, I64(3), I64(1)), S(3, I64(2), I64(1), I64(4)), S(2, I64(2), I64(2)),
                  S(3, I64(1), I64(1), I64(4)), S(4, I64(2), I64(1), I64(3), I64(1))};
    for (size_t k = 0; k < COUNTOF(ops); k++)
        for (size_t v = 0; v < COUNTOF(sa); v++) {
            Graph *g = graph_new();
            Node *a = check_param(g, "a", sa[v]), *b = check_param(g, "b", sb[v]);
            char name[96], s1[32], s2[32];
            snprintf(name, sizeof name, "op %s %s %s", op_name(ops[k]), shape_str(sa[v], s1, 32), shape_str(sb[v], s2, 32));
            run(name, g, check_ok(g, g_binary(g, ops[k], a, b, LOC_NONE)), opts(0, ops[k] == OP_DIV ? 1 : 0, 0));
        }
    /* a tie in max: torch gives half to each side */
    Graph *g = graph_new();
    Node *a = check_param(g, "a", S(1, I64(4)));
    Node *m = check_ok(g, g_binary(g, OP_MAX, a, a, LOC_NONE));
    run("op max (a, a): ties split", g, m, opts(0, 0, 0));
}

static void where_cmp(void) {
    Graph *g = graph_new();
    Node *c = check_param(g, "c", S(2, I64(3), I64(1)));
    Node *a = check_param(g, "a", S(2, I64(3), I64(4))), *b = check_param(g, "b", S(1, I64(4)));
    Node *cond = check_ok(g, g_binary(g, OP_CMP_GT, c, g_scalar(g, 0), LOC_NONE));
    run("op where (cmp_gt cond, broadcast a b)", g, check_ok(g, g_where(g, cond, a, b, LOC_NONE)), opts(0, 0, 0));
    /* cmp_gt carries no gradient: the parameter behind it gets none */
    g = graph_new();
    c = check_param(g, "c", S(1, I64(3)));
    Node *loss = check_weighted_loss(g, check_ok(g, g_binary(g, OP_CMP_GT, c, g_scalar(g, 0), LOC_NONE)));
    Node *grads[1];
    char err[128];
    CHECK(autodiff_backward(g, loss, grads, err, sizeof err) && grads[0] == NULL, "cmp_gt must not produce a gradient");
    printf("ok   op cmp_gt: no gradient\n");
    graph_free(g);
}

static void reductions(void) {
    for (int ax = 0; ax < 3; ax++) {
        OpKind ops[2] = {OP_SUM, OP_AMAX};
        for (int k = 0; k < 2; k++) {
            Graph *g = graph_new();
            Node *x = check_param(g, "x", S(3, I64(2), I64(3), I64(4)));
            char name[64];
            snprintf(name, sizeof name, "op %s axis %d", op_name(ops[k]), ax);
            run(name, g, check_ok(g, g_reduce(g, ops[k], x, ax, LOC_NONE)), opts(0, 0, 0));
        }
    }
    /* amax with ties: the gradient is shared equally; FD cannot see it, so check the values directly */
    Graph *g = graph_new();
    Node *x = check_param(g, "x", S(1, I64(4)));
    Node *m = check_ok(g, g_reduce(g, OP_AMAX, x, 0, LOC_NONE));
    Node *grads[1];
    char err[128];
    CHECK(autodiff_backward(g, m, grads, err, sizeof err), "autodiff");
    Exec *e = cpu_exec_new_f64(g, grads, 1);
    double v[4] = {1, 3, 3, 2}, dv[4];
    exec_write(e, x, v, sizeof v);
    exec_run(e, &(StepInfo){0, 0});
    exec_read(e, grads[0], dv, sizeof dv);
    CHECK(dv[0] == 0 && dv[1] == 0.5 && dv[2] == 0.5 && dv[3] == 0, "amax tie gradient %g %g %g %g", dv[0], dv[1], dv[2], dv[3]);
    printf("ok   op amax ties: gradient [%g %g %g %g]\n", dv[0], dv[1], dv[2], dv[3]);
    exec_free(e);
    graph_free(g);
}

static void movement(void) {
    Graph *g = graph_new();
    Node *x = check_param(g, "x", S(3, I64(2), I64(3), I64(4)));
    run("op reshape", g, check_ok(g, g_reshape(g, x, S(2, I64(4), I64(6)), LOC_NONE)), opts(0, 0, 0));
    g = graph_new();
    x = check_param(g, "x", S(4, I64(2), I64(3), I64(4), I64(2)));
    run("op permute [2,0,3,1]", g, check_ok(g, g_permute(g, x, (int[]){2, 0, 3, 1}, LOC_NONE)), opts(0, 0, 0));
    g = graph_new();
    x = check_param(g, "x", S(3, I64(2), I64(5), I64(3)));
    run("op slice axis 1 [1,4)", g, check_ok(g, g_slice(g, x, 1, 1, 4, LOC_NONE)), opts(0, 0, 0));
    g = graph_new();
    x = check_param(g, "x", S(3, I64(2), I64(3), I64(3)));
    run("op pad axis 2 at 2 to 7", g, check_ok(g, g_pad(g, x, 2, 2, 7, LOC_NONE)), opts(0, 0, 0));
    g = graph_new();
    Node *parts[3] = {check_param(g, "a", S(2, I64(2), I64(1))), check_param(g, "b", S(2, I64(2), I64(3))),
                      check_param(g, "c", S(2, I64(2), I64(2)))};
    run("op concat axis 1", g, check_ok(g, g_concat(g, parts, 3, 1, LOC_NONE)), opts(0, 0, 0));
    g = graph_new();
    x = check_param(g, "x", S(2, I64(3), I64(1)));
    run("op expand [3,1] -> [2,3,4]", g, check_ok(g, g_expand(g, x, S(3, I64(2), I64(3), I64(4)), LOC_NONE)), opts(0, 0, 0));
    g = graph_new();
    x = check_param(g, "x", S(3, I64(2), I64(4), I64(3)));
    run("op gather axis 1 (repeats)", g, check_ok(g, g_gather(g, x, 1, (int32_t[]){3, 0, 0, 2, 3}, 5, LOC_NONE)), opts(0, 0, 0));
    g = graph_new();
    x = check_param(g, "x", S(2, I64(5), I64(3)));
    run("op scatter_add axis 0 (collisions)", g, check_ok(g, g_scatter_add(g, x, 0, (int32_t[]){1, 0, 1, 3, 1}, 4, LOC_NONE)), opts(0, 0, 0));
    g = graph_new();
    x = check_param(g, "x", S(3, I64(2), I64(6), I64(3)));
    Node *perm = g_randperm(g, 6, 11, LOC_NONE);
    run("op gather_dyn axis 1 (randperm)", g, check_ok(g, g_gather_dyn(g, x, 1, perm, LOC_NONE)), opts(0, 0, 0));
    g = graph_new();
    x = check_param(g, "x", S(2, I64(6), I64(2)));
    perm = g_randperm(g, 6, 12, LOC_NONE);
    run("op scatter_add_dyn axis 0 (randperm)", g, check_ok(g, g_scatter_add_dyn(g, x, 0, perm, LOC_NONE)), opts(0, 0, 0));
    g = graph_new();
    x = check_param(g, "x", S(1, I64(20)));
    run("op extract [5, 5+2*3)", g, check_ok(g, g_extract(g, x, 5, S(2, I64(2), I64(3)), LOC_NONE)), opts(0, 0, 0));
    g = graph_new();
    x = check_param(g, "x", S(3, I64(4), I64(1), I64(3)));
    Node *mask = g_drop_mask(g, S(3, I64(4), I64(1), I64(1)), 0.5, 5, LOC_NONE);
    run("op mul by drop_mask", g, check_ok(g, g_binary(g, OP_MUL, x, mask, LOC_NONE)), opts(0, 0, 0));
}

static void matmuls(void) {
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        Graph *g = graph_new();
        Node *a = check_param(g, "a", ta ? S(3, I64(2), I64(4), I64(3)) : S(3, I64(2), I64(3), I64(4)));
        Node *b = check_param(g, "b", tb ? S(3, I64(2), I64(5), I64(4)) : S(3, I64(2), I64(4), I64(5)));
        char name[64];
        snprintf(name, sizeof name, "op matmul batched ta=%d tb=%d", ta, tb);
        run(name, g, check_ok(g, g_matmul(g, a, b, ta, tb, LOC_NONE)), opts(0, 0, 0));
    }
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        Graph *g = graph_new();
        Node *a = check_param(g, "a", ta ? S(4, I64(2), I64(1), I64(4), I64(3)) : S(4, I64(2), I64(1), I64(3), I64(4)));
        Node *b = check_param(g, "b", tb ? S(3, I64(3), I64(5), I64(4)) : S(3, I64(3), I64(4), I64(5)));
        char name[64];
        snprintf(name, sizeof name, "op matmul batch broadcast ta=%d tb=%d", ta, tb);
        run(name, g, check_ok(g, g_matmul(g, a, b, ta, tb, LOC_NONE)), opts(0, 0, 0));
    }
    for (int tb = 0; tb < 2; tb++) {
        Graph *g = graph_new();
        Node *a = check_param(g, "a", S(3, I64(2), I64(3), I64(4)));
        Node *w = check_param(g, "w", tb ? S(2, I64(5), I64(4)) : S(2, I64(4), I64(5)));
        char name[64];
        snprintf(name, sizeof name, "op matmul by 2-D weight tb=%d", tb);
        run(name, g, check_ok(g, g_matmul(g, a, w, false, tb, LOC_NONE)), opts(0, 0, 0));
    }
    Graph *g = graph_new();   /* a 2-D left operand against a batched right one */
    Node *a = check_param(g, "a", S(2, I64(3), I64(4))), *b = check_param(g, "b", S(3, I64(2), I64(4), I64(2)));
    run("op matmul 2-D x batched", g, check_ok(g, g_matmul(g, a, b, false, false, LOC_NONE)), opts(0, 0, 0));
}

/* Differentiating through a backward op (second order) is refused with a message naming it; frees g. */
static void check_refused(Graph *g, Node *bwd, const char *name) {
    Node *loss = check_weighted_loss(g, bwd);
    Node **grads = calloc((size_t)g->params.n + 1, sizeof(Node *));
    char err[256] = "";
    bool okd = autodiff_backward(g, loss, grads, err, sizeof err);
    CHECK(!okd && strstr(err, name), "second order through %s should be refused", name);
    printf("ok   op %s: refused (%s)\n", name, err);
    free(grads);
    graph_free(g);
}

static void convs(void) {
    Graph *g = graph_new();
    Node *x = check_param(g, "x", S(3, I64(2), I64(6), I64(3))), *w = check_param(g, "w", S(3, I64(3), I64(1), I64(4)));
    Node *b = check_param(g, "b", S(1, I64(3)));
    run("op conv1d", g, check_ok(g, g_conv1d(g, x, w, b, LOC_NONE)), opts(0, 0, 0));
    g = graph_new();
    Node *dy = check_param(g, "dy", S(3, I64(2), I64(6), I64(3)));
    w = check_param(g, "w", S(3, I64(3), I64(1), I64(4)));
    run("op conv1d_bwd_x", g, check_ok(g, g_conv1d_bwd_x(g, dy, w, LOC_NONE)), opts(0, 0, 0));
    g = graph_new();
    dy = check_param(g, "dy", S(3, I64(2), I64(6), I64(3)));
    x = check_param(g, "x", S(3, I64(2), I64(6), I64(3)));
    run("op conv1d_bwd_w", g, check_ok(g, g_conv1d_bwd_w(g, dy, x, 4, LOC_NONE)), opts(0, 0, 0));
    /* conv1d's gradient is the packed conv1d_bwd (checked above through "op conv1d"); second order is refused */
    g = graph_new();
    dy = check_param(g, "dy", S(3, I64(2), I64(6), I64(3)));
    x = check_param(g, "x", S(3, I64(2), I64(6), I64(3)));
    w = check_param(g, "w", S(3, I64(3), I64(1), I64(4)));
    check_refused(g, g_conv1d_bwd(g, dy, x, w, LOC_NONE), "conv1d_bwd");
}

static void scans(void) {
    int64_t B = 2, L = 5, D = 3, N = 4;
    Shape sh[8] = {S(3, B, L, D), S(3, B, L, D), S(2, D, N), S(3, B, L, N), S(3, B, L, N), S(1, D), S(1, D), S(3, B, L, D)};
    static const char *const names[8] = {"u", "delta", "A_log", "Bm", "Cm", "D", "delta_bias", "z"};
    Graph *g = graph_new();
    Node *in[8];
    for (int k = 0; k < 8; k++) in[k] = check_param(g, names[k], sh[k]);
    CheckOpts o = {1e-6, {0, 0, 2, 0, 0, 0, 0, 0}, 48};
    run("op scan (all 8 inputs)", g, check_ok(g, g_scan(g, in, 8, LOC_NONE)), o);
    g = graph_new();   /* without the gate (7 inputs): y itself, no dz */
    for (int k = 0; k < 7; k++) in[k] = check_param(g, names[k], sh[k]);
    run("op scan (ungated, 7 inputs)", g, check_ok(g, g_scan(g, in, 7, LOC_NONE)), o);
    /* second order through the scan is refused with a message */
    g = graph_new();
    for (int k = 0; k < 8; k++) in[k] = check_param(g, names[k], sh[k]);
    Node *dy = check_param(g, "dy", sh[0]);
    check_refused(g, g_scan_bwd(g, in, 8, dy, LOC_NONE), "scan_bwd");
}

/* Fused attention: gradients of q, k, v (2 heads, L != S, an additive mask with a -inf entry); its mask must not be
 * trainable; second order is refused; and it equals softmax(q k^T * scale + mask) v spelt out with matmuls. */
static void attention(void) {
    const int64_t B = 2, L = 5, S = 4, H = 2, E = 3;
    float mask[5 * 4];
    for (int k = 0; k < L * S; k++) mask[k] = (float)(0.3 * ((k * 7) % 5) - 0.6);
    mask[1] = -INFINITY;
    Graph *g = graph_new();
    Node *q = check_param(g, "q", S(3, B, L, H * E)), *k = check_param(g, "k", S(3, B, S, H * E));
    Node *v = check_param(g, "v", S(3, B, S, H * E)), *m = g_table_f32(g, S(2, L, S), mask);
    run("op attention (2 heads, L 5, S 4, masked)", g, check_ok(g, g_attention(g, q, k, v, m, H, 0.7, LOC_NONE)),
        opts(0, 0, 0));

    g = graph_new();   /* a trainable mask gets no gradient: refused with a message */
    q = check_param(g, "q", S(3, B, L, H * E)); k = check_param(g, "k", S(3, B, S, H * E));
    v = check_param(g, "v", S(3, B, S, H * E));
    Node *mp = check_param(g, "mask", S(2, L, S));
    check_refused(g, g_attention(g, q, k, v, mp, H, 0.7, LOC_NONE), "mask");

    g = graph_new();
    q = check_param(g, "q", S(3, B, L, H * E)); k = check_param(g, "k", S(3, B, S, H * E));
    v = check_param(g, "v", S(3, B, S, H * E));
    Node *fwd = check_ok(g, g_attention(g, q, k, v, g_table_f32(g, S(2, L, S), mask), H, 0.7, LOC_NONE));
    check_refused(g, g_attention_bwd(g, fwd, check_param(g, "dy", S(3, B, L, H * E)), LOC_NONE), "attention_bwd");

    g = graph_new();   /* against the same attention spelt out per head */
    q = check_param(g, "q", S(3, B, L, H * E)); k = check_param(g, "k", S(3, B, S, H * E));
    v = check_param(g, "v", S(3, B, S, H * E));
    m = g_table_f32(g, S(2, L, S), mask);
    Node *fused = check_ok(g, g_attention(g, q, k, v, m, H, 0.7, LOC_NONE));
    const int pq[4] = {0, 2, 1, 3}, pk[4] = {0, 2, 3, 1};
    Node *Q = g_permute(g, g_reshape(g, q, S(4, B, L, H, E), LOC_NONE), pq, LOC_NONE);
    Node *K = g_permute(g, g_reshape(g, k, S(4, B, S, H, E), LOC_NONE), pk, LOC_NONE);
    Node *V = g_permute(g, g_reshape(g, v, S(4, B, S, H, E), LOC_NONE), pq, LOC_NONE);
    Node *sc = g_binary(g, OP_ADD, g_binary(g, OP_MUL, g_matmul(g, Q, K, false, false, LOC_NONE), g_scalar(g, 0.7),
                                           LOC_NONE), m, LOC_NONE);
    Node *e = g_unary(g, OP_EXP, g_binary(g, OP_SUB, sc, g_reduce(g, OP_AMAX, sc, 3, LOC_NONE), LOC_NONE), LOC_NONE);
    Node *P = g_binary(g, OP_DIV, e, g_reduce(g, OP_SUM, e, 3, LOC_NONE), LOC_NONE);
    Node *O = g_reshape(g, g_permute(g, g_matmul(g, P, V, false, false, LOC_NONE), pq, LOC_NONE), S(3, B, L, H * E),
                        LOC_NONE);
    Node *keep[2] = {fused, check_ok(g, O)};
    Exec *ex = cpu_exec_new_f64(g, keep, 2);
    for (int j = 0; j < g->params.n; j++) {
        const Node *pj = g->params.items[j];
        const int64_t n = shape_numel(pj->shape);
        double *val = malloc(sizeof(double) * (size_t)n);
        for (int64_t i = 0; i < n; i++) val[i] = check_value(0);
        exec_write(ex, g->params.items[j], val, sizeof(double) * (size_t)n);
        free(val);
    }
    StepInfo si = {7, 3};
    exec_run(ex, &si);
    double a[2 * 5 * 6], b[2 * 5 * 6], worst = 0;
    exec_read(ex, fused, a, sizeof a);
    exec_read(ex, keep[1], b, sizeof b);
    for (int i = 0; i < B * L * H * E; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    CHECK(worst < 1e-12, "attention: fused and spelt-out forwards differ by %.3g", worst);
    printf("ok   op attention equals its spelt-out form: max abs difference %.1e\n", worst);
    exec_free(ex);
    graph_free(g);
}

/* cpu_vexp.h's vectorised expf against exp() in double over the whole float range: relative error within 2.5e-7
 * (about 2 ulp) for normal results, subnormal results within one subnormal step, inf past ln(FLT_MAX), NaN kept. */
static void vexp_accuracy(void) {
    enum { M = 4096 };
    float x[M], y[M];
    double worst = 0, at = 0;
    long n = 0, bad = 0;
    for (double a = -110.0; a < 90.0;) {
        int m = 0;
        for (; m < M && a < 90.0; m++, a += 1.0 / 16384) x[m] = (float)a;
        vmc_vexpf(x, y, m);
        for (int i = 0; i < m; i++, n++) {
            double ref = exp((double)x[i]);
            if (ref > FLT_MAX) bad += !isinf(y[i]);
            else if (ref < FLT_MIN) bad += !(fabs(y[i] - ref) <= 1.5e-45);
            else if (fabs(y[i] - ref) / ref > worst) { worst = fabs(y[i] - ref) / ref; at = x[i]; }
        }
    }
    float sx[3] = {NAN, INFINITY, -INFINITY}, sy[3];
    vmc_vexpf(sx, sy, 3);
    bad += !isnan(sy[0]) + !(isinf(sy[1]) && sy[1] > 0) + (sy[2] != 0);
    CHECK(worst < 2.5e-7 && bad == 0, "vmc_vexpf: worst rel err %.3g at %.9g, %ld bad special values", worst, at, bad);
    printf("ok   vmc_vexpf: %ld values, worst rel err %.2e at x = %.6g (tol 2.5e-07), inf/subnormal/NaN exact\n", n,
           worst, at);
}

int main(void) {
    vexp_accuracy();
    unary_ops();
    binary_ops();
    where_cmp();
    reductions();
    movement();
    matmuls();
    convs();
    scans();
    attention();
    printf("%s: %d failure(s)\n", check_failures ? "FAILED" : "PASSED", check_failures);
    return check_failures ? 1 : 0;
}
