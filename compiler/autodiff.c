/* autodiff.c — reverse-mode autodiff over the graph: one rule per op (switch without default), fan-in
 * accumulated by ADD, broadcasting undone by SUM + RESHAPE, and only nodes on a path trainable param -> loss
 * get gradients. Opaque ops use their explicit backward ops (CONV1D_BWD_*, SCAN_BWD + EXTRACT); a SiLU of a causal
 * conv is differentiated with the conv (CONV1D_SILU_BWD). */
#include "autodiff.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Ctx {
    Graph *g;
    Node **grad;    /* by node id, forward nodes only */
    bool *dep;      /* depends on a trainable parameter through differentiable ops */
    int n0;         /* number of forward nodes */
    int *uses;      /* by forward node id: how many forward nodes read it */
    Loc loc;        /* of the node being differentiated: gradient nodes point back at it */
} Ctx;

static Node *ok(Graph *g, Node *n) {
    ASSERT(n, "autodiff built an invalid node: %s", g->err);
    return n;
}
static Node *sc(Ctx *c, double v) { return g_scalar(c->g, v); }
static Node *bin(Ctx *c, OpKind op, Node *a, Node *b) { return ok(c->g, g_binary(c->g, op, a, b, c->loc)); }
static Node *mul(Ctx *c, Node *a, Node *b) { return bin(c, OP_MUL, a, b); }
static Node *un(Ctx *c, OpKind op, Node *x) { return ok(c->g, g_unary(c->g, op, x, c->loc)); }
static bool need(Ctx *c, const Node *x) { return (int)x->id < c->n0 && c->dep[x->id]; }

/* A leading run of reduced axes becomes one axis first (one reduction instead of several: a bias gradient
 * [B, L, C] -> [C] is a single SUM over B*L rows). */
Node *autodiff_unbroadcast(Graph *g, Node *grad, Shape shape) {
    if (shape_eq(grad->shape, shape)) return grad;
    int off = grad->shape.ndim - shape.ndim;
    ASSERT(off >= 0, "unbroadcast to a larger rank");
#define TARGET1(k) ((k) < off || shape.d[(k) - off] == 1)
#define REDUCED(k) (TARGET1(k) && grad->shape.d[k] != 1)
    int lead = 0, nred = 0;
    for (; lead < grad->shape.ndim && TARGET1(lead); lead++) nred += REDUCED(lead);
    if (nred >= 2) {
        Shape s = {0};
        s.d[s.ndim++] = 1;
        for (int k = 0; k < lead; k++) s.d[0] *= grad->shape.d[k];
        for (int k = lead; k < grad->shape.ndim; k++) s.d[s.ndim++] = grad->shape.d[k];
        grad = ok(g, g_reduce(g, OP_SUM, ok(g, g_reshape(g, grad, s, grad->loc)), 0, grad->loc));
        off = grad->shape.ndim - shape.ndim;      /* the merged axis is now one leading or size-1 axis */
        if (off < 0) return ok(g, g_reshape(g, grad, shape, grad->loc));
    }
    for (int k = 0; k < grad->shape.ndim; k++)
        if (REDUCED(k)) grad = ok(g, g_reduce(g, OP_SUM, grad, k, grad->loc));
#undef REDUCED
#undef TARGET1
    return ok(g, g_reshape(g, grad, shape, grad->loc));
}

/* Add dx to x's gradient (fan-in), after undoing broadcasting. */
static void acc(Ctx *c, Node *x, Node *dx) {
    if (!need(c, x)) return;
    dx = autodiff_unbroadcast(c->g, dx, x->shape);
    c->grad[x->id] = c->grad[x->id] ? bin(c, OP_ADD, c->grad[x->id], dx) : dx;
}

static Node *sigmoid(Ctx *c, Node *x) { return un(c, OP_SIGMOID, x); }

/* d/dx of the elementwise unary ops, times dy. */
static Node *unary_grad(Ctx *c, Node *n, Node *dy) {
    Node *x = n->src[0];
    switch ((int)n->op) {   /* K_UNARY only; the full per-op switch is in backward_node */
    case OP_NEG: return un(c, OP_NEG, dy);
    case OP_EXP: return mul(c, dy, n);
    case OP_LOG: return bin(c, OP_DIV, dy, x);
    case OP_SQRT: return bin(c, OP_DIV, mul(c, dy, sc(c, 0.5)), n);
    case OP_RSQRT: return mul(c, dy, mul(c, sc(c, -0.5), mul(c, n, mul(c, n, n))));
    case OP_RECIP: return un(c, OP_NEG, mul(c, dy, mul(c, n, n)));
    case OP_TANH: return mul(c, dy, bin(c, OP_SUB, sc(c, 1), mul(c, n, n)));
    case OP_ERF: return mul(c, dy, mul(c, sc(c, 2 / sqrt(M_PI)), un(c, OP_EXP, un(c, OP_NEG, mul(c, x, x)))));
    case OP_SIGMOID: return mul(c, dy, mul(c, n, bin(c, OP_SUB, sc(c, 1), n)));
    case OP_SILU: {
        Node *s = sigmoid(c, x);
        return mul(c, dy, mul(c, s, bin(c, OP_ADD, sc(c, 1), mul(c, x, bin(c, OP_SUB, sc(c, 1), s)))));
    }
    case OP_SOFTPLUS: return mul(c, dy, sigmoid(c, x));
    case OP_RELU: return mul(c, dy, bin(c, OP_CMP_GT, x, sc(c, 0)));
    case OP_ABS: return mul(c, dy, bin(c, OP_SUB, bin(c, OP_CMP_GT, x, sc(c, 0)), bin(c, OP_CMP_GT, sc(c, 0), x)));
    case OP_CAST: return dy;
    }
    UNREACHABLE();
}

/* MAX/MIN: weight 1 to the winner, 1/2 to each on a tie. */
static void minmax_grad(Ctx *c, Node *n, Node *dy) {
    Node *a = n->src[0], *b = n->src[1];
    Node *gt = bin(c, OP_CMP_GT, a, b), *lt = bin(c, OP_CMP_GT, b, a);
    Node *win = n->op == OP_MAX ? bin(c, OP_SUB, gt, lt) : bin(c, OP_SUB, lt, gt);   /* +1 a wins, -1 b wins, 0 tie */
    if (need(c, a)) acc(c, a, mul(c, dy, mul(c, sc(c, 0.5), bin(c, OP_ADD, sc(c, 1), win))));
    if (need(c, b)) acc(c, b, mul(c, dy, mul(c, sc(c, 0.5), bin(c, OP_SUB, sc(c, 1), win))));
}

static void binary_grad(Ctx *c, Node *n, Node *dy) {
    Node *a = n->src[0], *b = n->src[1];
    switch ((int)n->op) {
    case OP_ADD: acc(c, a, dy); acc(c, b, dy); return;
    case OP_SUB: acc(c, a, dy); if (need(c, b)) acc(c, b, un(c, OP_NEG, dy)); return;
    case OP_MUL:
        if (need(c, a)) acc(c, a, mul(c, dy, b));
        if (need(c, b)) acc(c, b, mul(c, dy, a));
        return;
    case OP_DIV:
        if (need(c, a)) acc(c, a, bin(c, OP_DIV, dy, b));
        if (need(c, b)) acc(c, b, un(c, OP_NEG, bin(c, OP_DIV, mul(c, dy, n), b)));
        return;
    case OP_MAX: case OP_MIN: minmax_grad(c, n, dy); return;
    }
    UNREACHABLE();
}

/* AMAX: the gradient is shared equally among the maxima of each reduced row (torch.amax). */
static void amax_grad(Ctx *c, Node *n, Node *dy) {
    Node *x = n->src[0];
    Node *hit = bin(c, OP_SUB, sc(c, 1), bin(c, OP_CMP_GT, n, x));
    Node *cnt = ok(c->g, g_reduce(c->g, OP_SUM, hit, (int)n->i[0], c->loc));
    acc(c, x, mul(c, hit, bin(c, OP_DIV, dy, cnt)));
}

static void matmul_grad(Ctx *c, Node *n, Node *dy) {
    Graph *g = c->g;
    Node *a = n->src[0], *b = n->src[1];
    bool ta = n->i[0], tb = n->i[1];
    if (need(c, a)) {
        Node *da = ta ? g_matmul(g, b, dy, tb, true, c->loc) : g_matmul(g, dy, b, false, !tb, c->loc);
        acc(c, a, ok(g, da));
    }
    if (!need(c, b)) return;
    if (b->shape.ndim == 2 && a->shape.ndim > 2 && !ta) {      /* a weight: fold the batch into one GEMM */
        int64_t K = a->shape.d[a->shape.ndim - 1], N = dy->shape.d[dy->shape.ndim - 1];
        Node *a2 = ok(g, g_reshape(g, a, shape_of(2, (int64_t)-1, K), c->loc));
        Node *d2 = ok(g, g_reshape(g, dy, shape_of(2, (int64_t)-1, N), c->loc));
        acc(c, b, ok(g, tb ? g_matmul(g, d2, a2, true, false, c->loc) : g_matmul(g, a2, d2, true, false, c->loc)));
        return;
    }
    Node *db = tb ? g_matmul(g, dy, a, true, ta, c->loc) : g_matmul(g, a, dy, !ta, false, c->loc);
    acc(c, b, ok(g, db));
}

static void conv_grads(Ctx *c, Node *n, Node *dy) {
    Graph *g = c->g;
    Node *s0 = n->src[0], *s1 = n->src[1];
    switch ((int)n->op) {
    case OP_CONV1D: {   /* one backward op for dx, dw and the bias sum: dy and x are read once */
        Node *bias = n->src[2], *packed = ok(g, g_conv1d_bwd(g, dy, s0, s1, c->loc));
        int64_t nx = shape_numel(s0->shape), nw = shape_numel(s1->shape);
        if (need(c, s0)) acc(c, s0, ok(g, g_extract(g, packed, 0, s0->shape, c->loc)));
        if (need(c, s1)) acc(c, s1, ok(g, g_extract(g, packed, nx, s1->shape, c->loc)));
        if (need(c, bias)) acc(c, bias, ok(g, g_extract(g, packed, nx + nw, bias->shape, c->loc)));
        return;
    }
    case OP_CONV1D_BWD_X: {   /* dx = conv1d_bwd_x(s0 = dy', s1 = w): linear in both */
        Node *zero = g_const(g, 0, shape_of(1, s0->shape.d[2]), s0->dtype);
        if (need(c, s0)) acc(c, s0, ok(g, g_conv1d(g, dy, s1, zero, c->loc)));
        if (need(c, s1)) acc(c, s1, ok(g, g_conv1d_bwd_w(g, s0, dy, s1->shape.d[2], c->loc)));
        return;
    }
    case OP_CONV1D_BWD_W: {   /* dw = conv1d_bwd_w(s0 = dy', s1 = x) */
        Node *zero = g_const(g, 0, shape_of(1, s0->shape.d[2]), s0->dtype);
        if (need(c, s0)) acc(c, s0, ok(g, g_conv1d(g, s1, dy, zero, c->loc)));
        if (need(c, s1)) acc(c, s1, ok(g, g_conv1d_bwd_x(g, s0, dy, c->loc)));
        return;
    }
    }
    UNREACHABLE();
}

/* SILU of a causal conv that nothing else reads: one backward op for both, which recomputes the conv output
 * rather than reading it back (so the forward need not store it), and takes the two addends of a fan-in
 * gradient (the scan's du and x_proj's input gradient in a Mamba mixer) instead of their sum. */
static bool silu_conv_grad(Ctx *c, Node *n, Node *dy) {
    Node *cv = n->src[0];
    if (cv->op != OP_CONV1D || c->uses[cv->id] != 1 || !need(c, cv)) return false;
    Node *dy2 = NULL;
    if (dy->op == OP_ADD && shape_eq(dy->src[0]->shape, dy->shape) && shape_eq(dy->src[1]->shape, dy->shape)) {
        dy2 = dy->src[1];
        dy = dy->src[0];
    }
    Node *x = cv->src[0], *w = cv->src[1], *bias = cv->src[2];
    Node *packed = ok(c->g, g_conv1d_silu_bwd(c->g, dy, dy2, x, w, bias, c->loc));
    int64_t nx = shape_numel(x->shape), nw = shape_numel(w->shape);
    if (need(c, x)) acc(c, x, ok(c->g, g_extract(c->g, packed, 0, x->shape, c->loc)));
    if (need(c, w)) acc(c, w, ok(c->g, g_extract(c->g, packed, nx, w->shape, c->loc)));
    if (need(c, bias)) acc(c, bias, ok(c->g, g_extract(c->g, packed, nx + nw, bias->shape, c->loc)));
    return true;
}

static void scan_grad(Ctx *c, Node *n, Node *dy) {
    Node *packed = ok(c->g, g_scan_bwd(c->g, n->src, n->nsrc, dy, c->loc));
    int64_t off = 0;
    for (int k = 0; k < n->nsrc; k++) {
        Node *x = n->src[k];
        if (need(c, x)) acc(c, x, ok(c->g, g_extract(c->g, packed, off, x->shape, c->loc)));
        off += shape_numel(x->shape);
    }
}

/* Attention: dq, dk, dv from one backward; the mask is additive and gets none (the caller refuses a trainable one). */
static void attn_grad(Ctx *c, Node *n, Node *dy) {
    Node *packed = ok(c->g, g_attention_bwd(c->g, n, dy, c->loc));
    int64_t off = 0;
    for (int k = 0; k < 3; k++) {
        Node *x = n->src[k];
        if (need(c, x)) acc(c, x, ok(c->g, g_extract(c->g, packed, off, x->shape, c->loc)));
        off += shape_numel(x->shape);
    }
}

/* The inverse of idx[0..n) when it is a permutation of 0..n-1 (and n == dim), else NULL. Caller frees. */
static int32_t *inverse_permutation(const int32_t *idx, int64_t n, int64_t dim) {
    if (n != dim) return NULL;
    int32_t *inv = xmalloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    for (int64_t k = 0; k < n; k++) inv[k] = -1;
    for (int64_t k = 0; k < n; k++) {
        if (idx[k] < 0 || idx[k] >= n || inv[idx[k]] >= 0) { free(inv); return NULL; }
        inv[idx[k]] = (int32_t)k;
    }
    return inv;
}

static void move_grad(Ctx *c, Node *n, Node *dy) {
    Graph *g = c->g;
    Node *x = n->src[0];
    int ax = (int)n->i[0];
    switch ((int)n->op) {
    case OP_RESHAPE: acc(c, x, ok(g, g_reshape(g, dy, x->shape, c->loc))); return;
    case OP_PERMUTE: {
        int inv[MAX_DIMS];
        for (int k = 0; k < n->shape.ndim; k++) inv[n->i[k]] = k;
        acc(c, x, ok(g, g_permute(g, dy, inv, c->loc)));
        return;
    }
    case OP_SLICE: acc(c, x, ok(g, g_pad(g, dy, ax, n->i[1], x->shape.d[ax], c->loc))); return;
    case OP_PAD: acc(c, x, ok(g, g_slice(g, dy, ax, n->i[1], n->i[1] + x->shape.d[ax], c->loc))); return;
    case OP_CONCAT: {
        int64_t at = 0;
        for (int k = 0; k < n->nsrc; k++) {
            int64_t len = n->src[k]->shape.d[ax];
            if (need(c, n->src[k])) acc(c, n->src[k], ok(g, g_slice(g, dy, ax, at, at + len, c->loc)));
            at += len;
        }
        return;
    }
    case OP_EXPAND: acc(c, x, dy); return;
    case OP_GATHER: {
        /* A permutation's gradient is the gather by its inverse: fusable index math, no atomics, no zeroing. */
        int32_t *inv = inverse_permutation(n->idata, n->ndata, x->shape.d[ax]);
        acc(c, x, ok(g, inv ? g_gather(g, dy, ax, inv, n->ndata, c->loc)
                            : g_scatter_add(g, dy, ax, n->idata, x->shape.d[ax], c->loc)));
        free(inv);
        return;
    }
    case OP_SCATTER_ADD: acc(c, x, ok(g, g_gather(g, dy, ax, n->idata, n->ndata, c->loc))); return;
    case OP_GATHER_DYN: acc(c, x, ok(g, g_scatter_add_dyn(g, dy, ax, n->src[1], c->loc))); return;
    case OP_SCATTER_ADD_DYN: acc(c, x, ok(g, g_gather_dyn(g, dy, ax, n->src[1], c->loc))); return;
    case OP_EXTRACT: {   /* the packed gradient: zeros around this part */
        int64_t total = shape_numel(x->shape), len = shape_numel(n->shape);
        Node *flat = ok(g, g_reshape(g, dy, shape_of(1, len), c->loc));
        Node *full = len == total ? flat : ok(g, g_pad(g, flat, 0, n->i[0], total, c->loc));
        acc(c, x, ok(g, g_reshape(g, full, x->shape, c->loc)));
        return;
    }
    }
    UNREACHABLE();
}

static bool backward_node(Ctx *c, Node *n, Node *dy, char *err, int errlen) {
    switch (n->op) {
    case OP_PARAM: case OP_INPUT: case OP_STATE: case OP_CONST: case OP_TABLE:
    case OP_DROP_MASK: case OP_RANDPERM: case OP_CMP_GT: case OP_ASSIGN:
        return true;                                         /* sources and non-differentiable ops */
    case OP_NEG: case OP_EXP: case OP_LOG: case OP_SQRT: case OP_RSQRT: case OP_RECIP: case OP_TANH: case OP_ERF:
    case OP_SIGMOID: case OP_SILU: case OP_SOFTPLUS: case OP_RELU: case OP_ABS: case OP_CAST:
        if (n->op == OP_SILU && silu_conv_grad(c, n, dy)) return true;
        if (need(c, n->src[0])) acc(c, n->src[0], unary_grad(c, n, dy));
        return true;
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_MAX: case OP_MIN:
        binary_grad(c, n, dy);
        return true;
    case OP_WHERE:
        if (need(c, n->src[1])) acc(c, n->src[1], ok(c->g, g_where(c->g, n->src[0], dy, sc(c, 0), c->loc)));
        if (need(c, n->src[2])) acc(c, n->src[2], ok(c->g, g_where(c->g, n->src[0], sc(c, 0), dy, c->loc)));
        return true;
    case OP_SUM: acc(c, n->src[0], ok(c->g, g_expand(c->g, dy, n->src[0]->shape, c->loc))); return true;
    case OP_AMAX: amax_grad(c, n, dy); return true;
    case OP_RESHAPE: case OP_PERMUTE: case OP_SLICE: case OP_PAD: case OP_CONCAT: case OP_EXPAND: case OP_GATHER:
    case OP_SCATTER_ADD: case OP_GATHER_DYN: case OP_SCATTER_ADD_DYN: case OP_EXTRACT:
        move_grad(c, n, dy);
        return true;
    case OP_MATMUL: matmul_grad(c, n, dy); return true;
    case OP_CONV1D: case OP_CONV1D_BWD_X: case OP_CONV1D_BWD_W: conv_grads(c, n, dy); return true;
    case OP_SCAN: scan_grad(c, n, dy); return true;
    case OP_ATTN:
        if (need(c, n->src[3])) {   /* named where the model wrote it: the mask's parameter is one of the user's */
            char at[512];
            snprintf(err, (size_t)errlen, "%s: no gradient for attention's mask: it must not depend on trainable "
                     "parameters (make it a buffer)", loc_str(n->loc, at, sizeof at));
            return false;
        }
        attn_grad(c, n, dy);
        return true;
    case OP_ATTN_BWD:
        snprintf(err, (size_t)errlen, "no gradient through attention_bwd (node %u): second-order derivatives of "
                 "attention are not supported", n->id);
        return false;
    case OP_CONV1D_BWD: case OP_CONV1D_SILU_BWD:
        snprintf(err, (size_t)errlen, "no gradient through conv1d_bwd (node %u): second-order derivatives of the "
                 "causal conv are not supported", n->id);
        return false;
    case OP_SCAN_BWD:
        snprintf(err, (size_t)errlen, "no gradient through scan_bwd (node %u): second-order derivatives of the "
                 "selective scan are not supported", n->id);
        return false;
    }
    UNREACHABLE();
}

static void mark_deps(Ctx *c) {
    for (int k = 0; k < c->n0; k++) {
        Node *n = c->g->nodes[k];
        bool d = n->op == OP_PARAM && param_trainable(n);
        for (int j = 0; j < n->nsrc && !d; j++) d = c->dep[n->src[j]->id];
        c->dep[k] = d && n->dtype != DT_I32 && n->op != OP_CMP_GT && n->op != OP_ASSIGN;
    }
}

bool autodiff_backward(Graph *g, Node *loss, Node **grads, char *err, int errlen) {
    Ctx c = {g, NULL, NULL, g->nnodes, NULL, LOC_NONE};
    c.grad = xcalloc((size_t)c.n0 + 1, sizeof(Node *));
    c.dep = xcalloc((size_t)c.n0 + 1, sizeof(bool));
    c.uses = xcalloc((size_t)c.n0 + 1, sizeof(int));
    for (int k = 0; k < c.n0; k++)
        for (int j = 0; j < g->nodes[k]->nsrc; j++) c.uses[g->nodes[k]->src[j]->id]++;
    mark_deps(&c);
    for (int k = 0; k < g->params.n; k++) grads[k] = NULL;
    bool good = true;
    if (c.dep[loss->id]) {
        c.grad[loss->id] = g_const(g, 1.0, loss->shape, DT_F32);
        for (int k = (int)loss->id; k >= 0 && good; k--) {
            Node *n = g->nodes[k];
            if (!c.grad[k] || !c.dep[k]) continue;
            c.loc = n->loc;
            good = backward_node(&c, n, c.grad[k], err, errlen);
        }
    }
    for (int k = 0; good && k < g->params.n; k++) {
        Node *p = g->params.items[k];
        Node *dp = c.grad[p->id];
        if (dp && dp->dtype != p->dtype) dp = g_cast(g, dp, p->dtype, p->loc);
        grads[k] = dp;
    }
    for (int k = c.n0; k < g->nnodes; k++) g->nodes[k]->flags |= NF_GRAD;
    free(c.grad);
    free(c.dep);
    free(c.uses);
    return good;
}
