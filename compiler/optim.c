/* optim.c — appends the optimizer step to a differentiated graph (see optim.h): grad-norm and clipping,
 * AdamW per parameter with the reference groups (weight decay, layer-wise lr scale), EMA. Only graph
 * nodes are built here; the host feeds "lr" and "step" and the backend applies the ASSIGNs. */
#include "optim.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCALAR ((Shape){0})

/* Builders cannot fail on the shapes used here: a NULL is a vmc bug. */
static Node *chk(Graph *g, Node *n) {
    ASSERT(n, "optimizer node: %s", g->err);
    return n;
}
static Node *add(Graph *g, Node *a, Node *b) { return chk(g, g_binary(g, OP_ADD, a, b, LOC_NONE)); }
static Node *sub(Graph *g, Node *a, Node *b) { return chk(g, g_binary(g, OP_SUB, a, b, LOC_NONE)); }
static Node *mul(Graph *g, Node *a, Node *b) { return chk(g, g_binary(g, OP_MUL, a, b, LOC_NONE)); }
static Node *dvd(Graph *g, Node *a, Node *b) { return chk(g, g_binary(g, OP_DIV, a, b, LOC_NONE)); }
static Node *num(Graph *g, double v) { return g_scalar(g, v); }
static Node *to_scalar(Graph *g, Node *x) { return chk(g, g_reshape(g, x, SCALAR, LOC_NONE)); }

bool optim_decays(const Node *p) {
    /* timm add_weight_decay / MAE param_groups_lrd: no decay for 1-D tensors (biases, norms, D, dt bias) and
     * explicit skips; A_log, conv1d weights and ar_token are >= 2-D and decayed (ARM_SPEC §8-9). */
    return p->shape.ndim >= 2 && !(p->param->tags & TAG_NODECAY);
}

int optim_num_layers(const Graph *g) {
    int m = -1;
    for (int k = 0; k < g->params.n; k++) {
        const Node *p = g->params.items[k];
        if (p->param->lr_layer > m) m = p->param->lr_layer;
    }
    return m;
}

double optim_lr_scale(const Graph *g, const Node *p, double layer_decay) {
    if (layer_decay >= 1.0 || layer_decay <= 0.0 || p->param->lr_layer < 0) return 1.0;
    return pow(layer_decay, optim_num_layers(g) - p->param->lr_layer);
}

/* Sum of squares of every element, as a [] scalar. */
static Node *sumsq(Graph *g, Node *x) {
    Node *flat = chk(g, g_reshape(g, x, shape_of(1, shape_numel(x->shape)), LOC_NONE));
    return to_scalar(g, chk(g, g_reduce(g, OP_SUM, mul(g, flat, flat), 0, LOC_NONE)));
}

/* 1 - b^t for t >= 1 computed as -expm1(t ln b) = -2 th / (1 - th), th = tanh(t ln b / 2): in fp32 this keeps
 * full relative precision for small t, where 1 - exp(t ln b) would cancel (b = 0.999, t = 1: 1e-3). */
static Node *bias_correction(Graph *g, Node *t, double b) {
    Node *th = chk(g, g_unary(g, OP_TANH, mul(g, t, num(g, 0.5 * log(b))), LOC_NONE));
    return dvd(g, mul(g, num(g, -2.0), th), sub(g, num(g, 1.0), th));
}

/* Total L2 norm over all gradients and the clip factor min(1, clip / (norm + 1e-6)) (torch clip_grad_norm_). */
static Node *grad_norm(Graph *g, Node **grads, int n) {
    Node *acc = NULL;
    for (int k = 0; k < n; k++) {
        if (!grads[k]) continue;
        Node *s = sumsq(g, grads[k]);
        acc = acc ? add(g, acc, s) : s;
    }
    return chk(g, g_unary(g, OP_SQRT, acc ? acc : num(g, 0.0), LOC_NONE));
}

typedef struct StepCtx {
    const OptimConfig *cfg;
    Node *lr, *clip_scale, *bc1, *bc2_sqrt;
    Node **assign;           /* (target, value) pairs, written as ASSIGNs after every update (see optim_append) */
    int nassign;
} StepCtx;

static void defer_assign(StepCtx *c, Node *target, Node *value) {
    c->assign[2 * c->nassign] = target;
    c->assign[2 * c->nassign + 1] = value;
    c->nassign++;
}

static Node *state_like(Graph *g, const char *prefix, const Node *p) {
    char name[512];
    snprintf(name, sizeof name, "%s%s", prefix, p->name);
    return g_state(g, name, p->shape, DT_F32);
}

/* torch.optim.AdamW, one parameter: p *= 1 - lr wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps). Returns the updated parameter value. */
static Node *adamw(Graph *g, StepCtx *c, Node *p, Node *grad, double lr_scale) {
    const OptimConfig *cfg = c->cfg;
    Node *gr = c->clip_scale ? mul(g, grad, c->clip_scale) : grad;
    Node *lr = lr_scale == 1.0 ? c->lr : mul(g, c->lr, num(g, lr_scale));
    Node *m = state_like(g, "opt.m.", p), *v = state_like(g, "opt.v.", p);
    Node *m1 = add(g, mul(g, m, num(g, cfg->beta1)), mul(g, gr, num(g, 1.0 - cfg->beta1)));
    /* ((1-b2) g) g: torch's addcmul order, and not the g*g node of the grad-norm sum (a shared node would be a
     * kernel of its own, read by both) */
    Node *v1 = add(g, mul(g, v, num(g, cfg->beta2)), mul(g, mul(g, gr, num(g, 1.0 - cfg->beta2)), gr));
    defer_assign(c, m, m1);
    defer_assign(c, v, v1);
    Node *p0 = p;
    if (cfg->weight_decay > 0 && optim_decays(p))
        p0 = mul(g, p, sub(g, num(g, 1.0), mul(g, lr, num(g, cfg->weight_decay))));
    Node *vs = chk(g, g_unary(g, OP_SQRT, v1, LOC_NONE));
    Node *denom = add(g, dvd(g, vs, c->bc2_sqrt), num(g, cfg->eps));
    Node *step = mul(g, dvd(g, lr, c->bc1), dvd(g, m1, denom));
    Node *p1 = sub(g, p0, step);
    defer_assign(c, p, p1);
    return p1;
}

bool optim_append(Graph *g, Node **grads, const OptimConfig *cfg, OptimNodes *out, char *err, int errlen) {
    memset(out, 0, sizeof *out);
    int np = g->params.n;
    for (int k = 0; k < np; k++) {
        const Node *p = g->params.items[k];
        if (grads[k] && p->dtype != DT_F32) {
            snprintf(err, (size_t)errlen, "parameter '%s' is %s: the optimizer keeps f32 master weights only",
                     p->name, dtype_name(p->dtype));
            return false;
        }
    }
    StepCtx c = {cfg, NULL, NULL, NULL, NULL, xcalloc((size_t)4 * (size_t)(np ? np : 1) * 2, sizeof(Node *)), 0};
    out->lr = c.lr = chk(g, g_input(g, "lr", SCALAR, DT_F32, LOC_NONE));
    out->step = chk(g, g_input(g, "step", SCALAR, DT_F32, LOC_NONE));
    out->grad_norm = grad_norm(g, grads, np);
    graph_add_named(g, "grad_norm", out->grad_norm, NF_OUTPUT);
    if (cfg->clip > 0) {
        Node *ratio = dvd(g, num(g, cfg->clip), add(g, out->grad_norm, num(g, 1e-6)));
        c.clip_scale = chk(g, g_binary(g, OP_MIN, ratio, num(g, 1.0), LOC_NONE));
    }
    c.bc1 = bias_correction(g, out->step, cfg->beta1);
    c.bc2_sqrt = chk(g, g_unary(g, OP_SQRT, bias_correction(g, out->step, cfg->beta2), LOC_NONE));
    Node **updated = xcalloc((size_t)(np ? np : 1), sizeof(Node *));
    for (int k = 0; k < np; k++) {
        Node *p = g->params.items[k];
        if (!grads[k] || !param_trainable(p)) continue;
        updated[k] = adamw(g, &c, p, grads[k], optim_lr_scale(g, p, cfg->layer_decay));
        out->nupdated++;
    }
    /* timm ModelEma v1: e = d e + (1-d) m over every state_dict entry, from the values after the update. */
    for (int k = 0; cfg->ema_decay > 0 && k < np; k++) {
        Node *p = g->params.items[k];
        if (p->dtype != DT_F32) continue;   /* integer buffers have no meaningful average */
        Node *cur = updated[k] ? updated[k] : p;
        Node *e = state_like(g, "ema.", p);
        defer_assign(&c, e, add(g, mul(g, e, num(g, cfg->ema_decay)), mul(g, cur, num(g, 1.0 - cfg->ema_decay))));
        out->nema++;
    }
    /* The ASSIGNs come last, after every new value exists: a value read both by its ASSIGN and by a later update
     * (m and v by the parameter's step, the parameter by its EMA) then fuses into that update's kernel as an extra
     * output, so one kernel per parameter does AdamW and EMA (pass_fuse's first_cluster picks the reader with the
     * smallest root, and an earlier ASSIGN would be it). End-of-step semantics make the order free. */
    for (int k = 0; k < c.nassign; k++) g_assign(g, c.assign[2 * k], c.assign[2 * k + 1]);
    free(c.assign);
    free(updated);
    return true;
}
