/* cpu_layers.h — composite layers built from graph primitives, as the DSL lowers them (layernorm, softmax,
 * linear, attention, a Mamba mixer, 4-direction gathers), shared by test_autodiff.c and test_layers.c. */
#pragma once
#include "cpu_check.h"

#define I64(x) ((int64_t)(x))
static inline Node *B2(Graph *g, OpKind op, Node *a, Node *b) { return check_ok(g, g_binary(g, op, a, b, LOC_NONE)); }
static inline Node *U1(Graph *g, OpKind op, Node *x) { return check_ok(g, g_unary(g, op, x, LOC_NONE)); }
static inline Node *RED(Graph *g, OpKind op, Node *x, int ax) { return check_ok(g, g_reduce(g, op, x, ax, LOC_NONE)); }
static inline Node *SC(Graph *g, double v) { return g_scalar(g, v); }

static inline Node *mean_last(Graph *g, Node *x) {
    return B2(g, OP_MUL, RED(g, OP_SUM, x, -1), SC(g, 1.0 / (double)x->shape.d[x->shape.ndim - 1]));
}

/* nn.LayerNorm over the last axis (biased variance). */
static inline Node *layernorm(Graph *g, Node *x, Node *w, Node *b, double eps) {
    Node *xc = B2(g, OP_SUB, x, mean_last(g, x));
    Node *var = mean_last(g, B2(g, OP_MUL, xc, xc));
    Node *y = B2(g, OP_MUL, xc, U1(g, OP_RSQRT, B2(g, OP_ADD, var, SC(g, eps))));
    return w ? B2(g, OP_ADD, B2(g, OP_MUL, y, w), b) : y;
}

/* softmax over the last axis, max-subtracted (rows may hold -inf from a mask). */
static inline Node *softmax(Graph *g, Node *x) {
    Node *e = U1(g, OP_EXP, B2(g, OP_SUB, x, RED(g, OP_AMAX, x, -1)));
    return B2(g, OP_DIV, e, RED(g, OP_SUM, e, -1));
}

/* x @ w^T (+ b), w [out, in] as nn.Linear. */
static inline Node *linear(Graph *g, Node *x, Node *w, Node *b) {
    Node *y = check_ok(g, g_matmul(g, x, w, false, true, LOC_NONE));
    return b ? B2(g, OP_ADD, y, b) : y;
}

/* softmax(q k^T * scale + mask) v for q [.., Lq, dh], k, v [.., Lk, dh]. */
static inline Node *attention(Graph *g, Node *q, Node *k, Node *v, Node *mask, double scale) {
    Node *s = B2(g, OP_MUL, check_ok(g, g_matmul(g, q, k, false, true, LOC_NONE)), SC(g, scale));
    if (mask) s = B2(g, OP_ADD, s, mask);
    return check_ok(g, g_matmul(g, softmax(g, s), v, false, false, LOC_NONE));
}

/* The Mamba mixer of ARM_SPEC §2.3 (expand 1), x [B, L, C]; parameters named prefix.*. */
typedef struct Mixer { Node *in_proj, *conv_w, *conv_b, *x_proj, *dt_w, *dt_b, *A_log, *D, *out_proj; } Mixer;

static inline Mixer mixer_params(Graph *g, const char *prefix, int64_t C, int64_t N, int64_t R, int64_t K) {
    char name[128];
#define MP(field, ...) (snprintf(name, sizeof name, "%s." field, prefix), check_param(g, name, shape_of(__VA_ARGS__)))
    Mixer m = {MP("in_proj.weight", 2, 2 * C, C), MP("conv1d.weight", 3, C, I64(1), K), MP("conv1d.bias", 1, C),
               MP("x_proj.weight", 2, R + 2 * N, C), MP("dt_proj.weight", 2, C, R), MP("dt_proj.bias", 1, C),
               MP("A_log", 2, C, N), MP("D", 1, C), MP("out_proj.weight", 2, C, C)};
#undef MP
    return m;
}

static inline Node *mixer(Graph *g, const Mixer *m, Node *x) {
    int64_t C = x->shape.d[2], N = m->A_log->shape.d[1], R = m->dt_w->shape.d[1];
    Node *xz = linear(g, x, m->in_proj, NULL);
    Node *xi = check_ok(g, g_slice(g, xz, 2, 0, C, LOC_NONE)), *z = check_ok(g, g_slice(g, xz, 2, C, 2 * C, LOC_NONE));
    Node *u = U1(g, OP_SILU, check_ok(g, g_conv1d(g, xi, m->conv_w, m->conv_b, LOC_NONE)));
    Node *xdbl = linear(g, u, m->x_proj, NULL);
    Node *dt = check_ok(g, g_slice(g, xdbl, 2, 0, R, LOC_NONE));
    Node *Bm = check_ok(g, g_slice(g, xdbl, 2, R, R + N, LOC_NONE)), *Cm = check_ok(g, g_slice(g, xdbl, 2, R + N, R + 2 * N, LOC_NONE));
    Node *delta = linear(g, dt, m->dt_w, NULL);
    Node *in[8] = {u, delta, m->A_log, Bm, Cm, m->D, m->dt_b, z};
    return linear(g, check_ok(g, g_scan(g, in, 8, LOC_NONE)), m->out_proj, NULL);
}

/* The four scan orders of a gh x gw grid (row-forward, row-backward, column-forward, column-backward). */
static inline void four_orders(int gh, int gw, int32_t *ord /* [4][gh*gw] */) {
    int L = gh * gw;
    for (int i = 0; i < L; i++) {
        int col = (i % gh) * gw + i / gh;      /* i-th token in column-major order */
        ord[i] = i; ord[L + i] = L - 1 - i; ord[2 * L + i] = col; ord[3 * L + L - 1 - i] = col;
    }
}

/* merge = sum_k unorder_k( f_k( order_k(x) ) ) along axis 1; f_k = causal prefix sum (lower-triangular
 * matmul) scaled by wk (may be NULL); unordering alternates scatter_add and gather by the inverse order. */
static inline Node *four_dir_merge(Graph *g, Node *x, int gh, int gw, Node *const wk[4]) {
    int L = gh * gw;
    int32_t ord[4 * 64], inv[64];
    float *tri = calloc((size_t)(L * L), sizeof(float));
    for (int i = 0; i < L; i++) for (int j = 0; j <= i; j++) tri[i * L + j] = 1;
    Node *T = g_table_f32(g, shape_of(2, I64(L), I64(L)), tri);
    free(tri);
    four_orders(gh, gw, ord);
    Node *sum = NULL;
    for (int k = 0; k < 4; k++) {
        Node *o = check_ok(g, g_gather(g, x, 1, ord + k * L, L, LOC_NONE));
        Node *y = check_ok(g, g_matmul(g, T, o, false, false, LOC_NONE));
        if (wk && wk[k]) y = B2(g, OP_MUL, y, wk[k]);
        for (int i = 0; i < L; i++) inv[ord[k * L + i]] = i;
        Node *back = k % 2 ? check_ok(g, g_gather(g, y, 1, inv, L, LOC_NONE))
                           : check_ok(g, g_scatter_add(g, y, 1, ord + k * L, L, LOC_NONE));
        sum = sum ? B2(g, OP_ADD, sum, back) : back;
    }
    return sum;
}
