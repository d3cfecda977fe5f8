/* pass_swiglu.c — finds SwiGLU's gate over two GEMM products of one input (pass.h swiglu_match), which the cuda
 * backend computes with both products in one launch (codegen/program_swiglu.c, hopper_gemm.cuh vmc_gemm_swiglu):
 * the products are then not read back from memory, nor, where nothing else reads them, written. */
#include "pass.h"

/* The parameter under a bias operand's broadcasts and reshapes, or NULL. */
static const Node *bias_param(const Fusion *f, const Node *n) {
    while (n->op == OP_EXPAND || n->op == OP_RESHAPE) n = fus_src(f, n, 0);
    return n->op == OP_PARAM ? n : NULL;
}

/* The plain product x W^T that GEMM group root p is (no scale, no acc), or NULL. */
static const Node *plain_product(const Fusion *f, const Node *p) {
    const int k = f->group_of[p->id];
    if (k < 0 || f->groups[k].kind != GK_GEMM) return NULL;
    const GemmEpilogue e = group_gemm(f, &f->groups[k]);
    if (e.matmul != p || e.acc || e.alpha != 1.0 || p->i[0] || !p->i[1]) return NULL;
    return p;
}

/* add(p, bias) in either order: the product and the bias parameter (N of them, p's last extent). */
static bool product_plus_bias(const Fusion *f, const Node *add, const Node **p, const Node **b) {
    if (add->op != OP_ADD) return false;
    for (int k = 0; k < 2; k++) {
        const Node *q = plain_product(f, fus_src(f, add, k)), *c = bias_param(f, fus_src(f, add, 1 - k));
        if (q && c && shape_numel(c->shape) == q->shape.d[q->shape.ndim - 1]) {
            *p = q;
            *b = c;
            return true;
        }
    }
    return false;
}

bool swiglu_match(const Fusion *f, const Group *gr, SwigluMatch *m) {
    const Node *r = gr->root;
    if (gr->kind != GK_EW || gr->elided || gr->ncsums || gr->nouts != 1 || gr->nmembers != 4 || r->op != OP_MUL)
        return false;
    for (int k = 0; k < 2; k++) {
        const Node *s = fus_src(f, r, k), *a2 = fus_src(f, r, 1 - k);
        if (s->op != OP_SILU || !product_plus_bias(f, fus_src(f, s, 0), &m->p1, &m->b1) ||
            !product_plus_bias(f, a2, &m->p2, &m->b2))
            continue;
        const Node *x = fus_src(f, m->p1, 0);
        if (m->p1 == m->p2 || x != fus_src(f, m->p2, 0) || !shape_eq(m->p1->shape, m->p2->shape) ||
            !shape_eq(fus_src(f, m->p1, 1)->shape, fus_src(f, m->p2, 1)->shape))
            return false;
        for (int j = 0; j < gr->nmembers; j++)   /* the four: the gate, its silu and the two sums */
            if (gr->members[j] != r && gr->members[j] != s && gr->members[j] != a2 && gr->members[j] != fus_src(f, s, 0))
                return false;
        m->x = x;
        m->products = f->kept[m->p1->id] || f->kept[m->p2->id];   /* read by another group (the backward, through
                                                                     * its recomputed sums) */
        for (int k = 0; k < f->ngroups && !m->products; k++)
            for (int j = 0; &f->groups[k] != gr && j < f->groups[k].nins; j++)
                m->products |= f->groups[k].ins[j] == m->p1 || f->groups[k].ins[j] == m->p2;
        return true;
    }
    return false;
}

/* ---------------------------------------------------------------- the backward */
/* A constant 1 under broadcasts and reshapes. */
static bool is_one(const Fusion *f, const Node *n) {
    while (n->op == OP_EXPAND || n->op == OP_RESHAPE) n = fus_src(f, n, 0);
    return n->op == OP_CONST && n->f[0] == 1.0;
}

/* op(a, b) in either order with one operand `want`: the other, or NULL. */
static const Node *other_of(const Fusion *f, const Node *n, OpKind op, const Node *want) {
    if (n->op != op) return NULL;
    for (int k = 0; k < 2; k++)
        if (fus_src(f, n, k) == want) return fus_src(f, n, 1 - k);
    return NULL;
}

/* The product dy W (W stored [K][N]) that GEMM group root p is (no scale, no acc), or NULL. */
static const Node *plain_product_ab(const Fusion *f, const Node *p) {
    const int k = f->group_of[p->id];
    if (k < 0 || f->groups[k].kind != GK_GEMM || p->op != OP_MATMUL) return NULL;
    const GemmEpilogue e = group_gemm(f, &f->groups[k]);
    return e.matmul == p && !e.acc && e.alpha == 1.0 && !p->i[0] && !p->i[1] ? p : NULL;
}

/* Is d silu's derivative at x, s (1 + x (1 - s)) with s = sigmoid(x), as autodiff writes it? Its nodes into seen. */
static bool silu_grad(const Fusion *f, const Node *d, const Node *x, const Node **seen) {
    if (d->op != OP_MUL) return false;
    for (int k = 0; k < 2; k++) {
        const Node *s = fus_src(f, d, k), *a = fus_src(f, d, 1 - k);
        if (s->op != OP_SIGMOID || fus_src(f, s, 0) != x || a->op != OP_ADD) continue;
        for (int j = 0; j < 2; j++) {
            const Node *xm = fus_src(f, a, j), *sub = other_of(f, xm, OP_MUL, x);
            if (!is_one(f, fus_src(f, a, 1 - j)) || !sub || sub->op != OP_SUB || !is_one(f, fus_src(f, sub, 0)) ||
                fus_src(f, sub, 1) != s)
                continue;
            seen[0] = d; seen[1] = s; seen[2] = a; seen[3] = xm; seen[4] = sub;
            return true;
        }
    }
    return false;
}

/* The node a column sum adds up (under its reshapes). */
static const Node *summed(const Fusion *f, const Node *sum) {
    const Node *n = fus_src(f, sum, 0);
    while (n->op == OP_RESHAPE) n = fus_src(f, n, 0);
    return n;
}

bool swiglu_bwd_match(const Fusion *f, const Group *gr, SwigluBwdMatch *m) {
    if (gr->kind != GK_EW || gr->elided || gr->ncsums != 2 || gr->nouts != 4) return false;
    const Node *o[4];   /* the outputs that are not column sums */
    int no = 0;
    for (int k = 0; k < gr->nouts; k++)
        if (gr->outs[k] != gr->csums[0] && gr->outs[k] != gr->csums[1]) o[no++] = gr->outs[k];
    if (no != 2) return false;
    for (int k = 0; k < 2; k++) {   /* o[k] = g2 = dh silu(x), o[1 - k] = g1 = (dh y) silu'(x) */
        const Node *g2 = o[k], *g1 = o[1 - k];
        if (g2->op != OP_MUL || g1->op != OP_MUL) continue;
        for (int j = 0; j < 2; j++) {
            const Node *dh = fus_src(f, g2, j), *silu = fus_src(f, g2, 1 - j);
            if (silu->op != OP_SILU || !plain_product_ab(f, dh) ||
                !product_plus_bias(f, fus_src(f, silu, 0), &m->p1, &m->b1))
                continue;
            const Node *x = fus_src(f, silu, 0), *nodes[16] = {g1, g2, silu, x, gr->csums[0], gr->csums[1]};
            int nn = 6;
            for (int i = 0; i < 2; i++) {
                const Node *t = fus_src(f, g1, i), *y = other_of(f, t, OP_MUL, dh);
                if (!y || !product_plus_bias(f, y, &m->p2, &m->b2) ||
                    !silu_grad(f, fus_src(f, g1, 1 - i), x, nodes + nn))
                    continue;
                nn += 5;
                nodes[nn++] = t;
                nodes[nn++] = y;
                bool all = true;   /* nothing else computed in the group */
                for (int q = 0; q < gr->nmembers && all; q++) {
                    const Node *mq = gr->members[q];   /* (views, and broadcasts of a bias or a constant) */
                    bool known = mq->op == OP_RESHAPE || (mq->op == OP_EXPAND && (bias_param(f, mq) || is_one(f, mq)));
                    for (int r = 0; r < nn && !known; r++) known = gr->members[q] == nodes[r];
                    all = known;
                }
                const Node *c0 = summed(f, gr->csums[0]), *c1 = summed(f, gr->csums[1]);
                if (!all || m->p1 == m->p2 || !((c0 == g1 && c1 == g2) || (c0 == g2 && c1 == g1))) return false;
                m->dh = dh;
                m->g1 = g1;
                m->g2 = g2;
                m->s1 = c0 == g1 ? gr->csums[0] : gr->csums[1];
                m->s2 = c0 == g1 ? gr->csums[1] : gr->csums[0];
                return true;
            }
        }
    }
    return false;
}

void pass_mark_swiglu(Fusion *f, bool with_products) {
    for (int k = 0; k < f->ngroups; k++) {
        SwigluMatch m;
        if (swiglu_match(f, &f->groups[k], &m) && (with_products || !m.products))
            f->swiglu_x[f->groups[k].root->id] = (Node *)m.x;
    }
}

/* ---------------------------------------------------------------- sums of two products */
const Node *product_pair_match(const Fusion *f, const Group *gr) {
    if (gr->kind != GK_GEMM) return NULL;
    const GemmEpilogue e2 = group_gemm(f, gr);
    const Node *m2 = e2.matmul, *m1 = e2.acc;
    if (!m1 || e2.alpha != 1.0 || m1->op != OP_MATMUL) return NULL;
    const int k1 = f->group_of[m1->id];
    if (k1 < 0 || f->groups[k1].kind != GK_GEMM || f->groups[k1].root != m1) return NULL;
    const GemmEpilogue e1 = group_gemm(f, &f->groups[k1]);
    if (e1.matmul != m1 || e1.acc || e1.alpha != 1.0 || m2->i[0] || m1->i[0] != m2->i[0] || m1->i[1] != m2->i[1] ||
        !shape_eq(m1->shape, m2->shape))
        return NULL;
    for (int s = 0; s < 2; s++) {
        const Node *x1 = fus_src(f, m1, s), *x2 = fus_src(f, m2, s);
        if (!shape_eq(x1->shape, x2->shape) || f->colview[x1->id] || f->colview[x2->id]) return NULL;
    }
    return fus_read_elsewhere(f, gr, m1) ? NULL : m1;
}

void pass_mark_product_pairs(Fusion *f) {
    for (int k = 0; k < f->ngroups; k++) f->pair_first[f->groups[k].root->id] = (Node *)product_pair_match(f, &f->groups[k]);
}
