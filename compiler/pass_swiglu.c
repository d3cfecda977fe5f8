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

void pass_mark_swiglu(Fusion *f, bool with_products) {
    for (int k = 0; k < f->ngroups; k++) {
        SwigluMatch m;
        if (swiglu_match(f, &f->groups[k], &m) && (with_products || !m.products))
            f->swiglu_x[f->groups[k].root->id] = (Node *)m.x;
    }
}
