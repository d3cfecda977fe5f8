/* program_swiglu.c — SwiGLU's gate h = silu(x W1^T + b1) * (x W2^T + b2) and its two products as one launch of vmc's
 * own Hopper kernel (hopper_gemm.cuh vmc_gemm_swiglu), which the runtime runs instead of the two cuBLASLt GEMMs and
 * the elementwise kernel that reads both products back, where it agrees with them and is faster
 * (runtime/cuda_choice.c): inference saves those reads and the products' writes; a training step, whose backward
 * reads the products, saves the reads (ProgramOptions.swiglu_gemm). The three launches stay in the step, each marked with the
 * SwiGLU launch's choice number (Launch.choice), and the one launch follows them: the stream plan orders both forms.
 * pass_mark_swiglu marked the gates before planning, so that x stays alive until the gate's group. */
#include "program_impl.h"
#include <stdio.h>
#include <stdlib.h>

int pg_product_launch(const Program *p, const Node *x, int before) {
    const BufRef c = pg_bufref(p, x);
    for (int k = before - 1; k >= 0; k--) {
        const Launch *l = &p->launches[k];
        if (l->kind == LK_GEMM && !l->choice && l->gemm.c.arena == c.arena && l->gemm.c.offset == c.offset) return k;
    }
    return -1;
}

/* Both products as the kernel takes them: bf16 x [M][K] and W_i [N][K] in place (no cast into the GEMM workspace,
 * which later GEMMs reuse), one x, bf16 products. */
static bool same_operands(const GemmDesc *a, const GemmDesc *b) {
    return a->bf16 && b->bf16 && a->batch == 1 && b->batch == 1 && !a->ta && a->tb && !b->ta && b->tb && a->c_bf16 &&
           b->c_bf16 && !a->has_acc && !b->has_acc && a->alpha == 1.f && b->alpha == 1.f && a->M == b->M &&
           a->N == b->N && a->K == b->K && a->lda == b->lda && a->ldb == b->ldb && a->a.arena == b->a.arena &&
           a->a.offset == b->a.offset && a->a.arena != AR_WORK && a->b.arena != AR_WORK && b->b.arena != AR_WORK;
}

Launch *pg_add_own_launch(Program *p, SeenSet *seen, const Group *gr, const GemmDesc *d, char *src, const char *what,
                          int kernels) {
    Launch *l = pg_add_launch(p, LK_GEMM, gr->index, "gemm");
    l->gemm = *d;
    const int first = pg_seen_find(seen, src, p->nlaunches - 1);
    if (first >= 0) {
        l->own_module = p->launches[first].own_module;
        free(src);
        return l;
    }
    char label[96];
    snprintf(label, sizeof label, "g%d_%s_%lldx%lldx%lld", gr->index, what, (long long)d->M, (long long)d->N,
             (long long)d->K);
    l->own_module = pg_add_module(p, src, label);
    p->modules[l->own_module].arch_specific = true;
    p->nkernels += kernels;
    return l;
}

bool pg_swiglu(Program *p, SeenSet *seen, const Group *gr) {
    const Fusion *f = p->f;
    SwigluMatch m;
    if (!f->swiglu_x[gr->root->id] || !swiglu_match(f, gr, &m)) return false;
    const Node *h = gr->root;
    if (!f->shadow_only[h->id] && !f->store_bf16[h->id]) return false;   /* (the kernel writes h as bf16 only) */
    const int gate = p->nlaunches - 1;   /* the gate's kernel, just built */
    if (gate < 0 || p->launches[gate].kind != LK_KERNEL || p->launches[gate].group != gr->index) return false;
    const int i1 = pg_product_launch(p, m.p1, gate), i2 = pg_product_launch(p, m.p2, gate);
    if (i1 < 0 || i2 < 0 || !same_operands(&p->launches[i1].gemm, &p->launches[i2].gemm)) return false;
    GemmDesc d = p->launches[i1].gemm;
    d.swiglu = true;
    d.products = m.products;
    d.b2 = p->launches[i2].gemm.b;
    d.c2 = p->launches[i2].gemm.c;
    d.bias1 = pg_bufref(p, m.b1);
    d.bias2 = pg_bufref(p, m.b2);
    d.h = f->shadow_only[h->id] ? pg_shadow_ref(f, h) : pg_bufref(p, h);
    int align = pg_align_of(d.h.offset);
    if (d.products) {
        const int a1 = pg_align_of(d.c.offset), a2 = pg_align_of(d.c2.offset);
        align = a1 < align ? a1 : align;
        align = a2 < align ? a2 : align;
    }
    const SkinnyGemmSpec s = {.M = d.M, .N = d.N, .K = d.K, .lda = d.lda, .ldb = d.ldb, .tb = true, .c_bf16 = true,
                              .alpha = 1, .a_off = d.a.offset / 2 % 8, .b_off = d.b.offset / 2 % 8, .c_align = align,
                              .sms = p->opt.sms};
    KernelLaunch kl;
    char *src = d.b2.offset / 2 % 8 == s.b_off ? template_gemm_swiglu(&s, d.products, &kl) : NULL;
    if (!src) return false;
    Launch *l = pg_add_own_launch(p, seen, gr, &d, src, "swiglu", 1);
    l->own = (SkinnyGemmLaunch){.k = kl, .split = 1};
    snprintf(l->name, sizeof l->name, "swiglu_%lldx%lldx%lld%s", (long long)d.M, (long long)d.N, (long long)d.K,
             d.products ? "_products" : "");
    pg_touch(l, d.a, d.M * d.K * 2, false);
    pg_touch(l, d.b, d.N * d.K * 2, false);
    pg_touch(l, d.b2, d.N * d.K * 2, false);
    pg_touch_node(l, p, m.b1, false, false);
    pg_touch_node(l, p, m.b2, false, false);
    pg_touch(l, d.h, d.M * d.N * 2, true);
    if (d.products) {
        pg_touch(l, d.c, d.M * d.N * 2, true);
        pg_touch(l, d.c2, d.M * d.N * 2, true);
    }
    l->choice = p->launches[i1].choice = p->launches[i2].choice = p->launches[gate].choice = ++p->nchoices;
    return true;
}

/* ---------------------------------------------------------------- the backward */
/* The bf16 memory of an output of the group: its buffer where it holds bf16, its only copy where that is bf16. */
static bool bf16_out(const Program *p, const Node *x, BufRef *r) {
    const Fusion *f = p->f;
    if (f->shadow_only[x->id]) *r = pg_shadow_ref(f, x);
    else if (f->mat[x->id] && f->store_bf16[x->id]) *r = pg_bufref(p, x);
    else return false;
    return true;
}

bool pg_swiglu_bwd(Program *p, SeenSet *seen, const Group *gr) {
    const Fusion *f = p->f;
    SwigluBwdMatch m;
    if (!swiglu_bwd_match(f, gr, &m)) return false;
    const int kernel = p->nlaunches - 1;   /* the group's kernel, just built */
    if (kernel < 0 || p->launches[kernel].kind != LK_KERNEL || p->launches[kernel].group != gr->index) return false;
    const int i = pg_product_launch(p, m.dh, kernel);
    if (i < 0 || fus_read_elsewhere(f, gr, m.dh)) return false;   /* (the one launch does not write dh) */
    GemmDesc d = p->launches[i].gemm;
    /* A [M][K] and W [K][N] bf16 in place (not cast into the GEMM workspace, which the transposed W takes), dh bf16 */
    if (!d.bf16 || d.batch != 1 || d.ta || d.tb || !d.c_bf16 || d.has_acc || d.alpha != 1.f || d.ldb != d.N ||
        d.a.arena == AR_WORK || d.b.arena == AR_WORK || d.N * d.K * 2 > PROGRAM_GEMM_WORKSPACE)
        return false;
    if (!fus_bf16(f, m.p1) || !fus_bf16(f, m.p2) || !bf16_out(p, m.g1, &d.c) || !bf16_out(p, m.g2, &d.c2) ||
        !f->mat[m.s1->id] || !f->mat[m.s2->id])
        return false;
    d.swiglu = d.backward = true;
    d.p1 = pg_bufref(p, fus_owner(f, m.p1));
    d.p2 = pg_bufref(p, fus_owner(f, m.p2));
    d.bias1 = pg_bufref(p, m.b1);
    d.bias2 = pg_bufref(p, m.b2);
    d.s1 = pg_bufref(p, m.s1);
    d.s2 = pg_bufref(p, m.s2);
    int align = 16;
    const BufRef rows[4] = {d.p1, d.p2, d.c, d.c2};
    for (int k = 0; k < 4; k++) {
        const int a = pg_align_of(rows[k].offset);
        align = a < align ? a : align;
    }
    /* the product as the kernel takes it: A B^T with B = W^T [N][K] (ldb K), the transposed copy */
    const SkinnyGemmSpec s = {.M = d.M, .N = d.N, .K = d.K, .lda = d.lda, .ldb = d.K, .tb = true, .c_bf16 = true,
                              .alpha = 1, .a_off = d.a.offset / 2 % 8, .c_align = align, .sms = p->opt.sms};
    KernelLaunch kl, kt;
    char *src = template_gemm_swiglu_bwd(&s, &kl, &kt);
    if (!src) return false;
    Launch *l = pg_add_own_launch(p, seen, gr, &d, src, "swiglu_bwd", 2);
    l->own = (SkinnyGemmLaunch){.k = kl, .reduce = kt, .split = 1};   /* (reduce: the transpose, launched first) */
    snprintf(l->name, sizeof l->name, "swiglu_bwd_%lldx%lldx%lld", (long long)d.M, (long long)d.N, (long long)d.K);
    pg_touch(l, d.a, d.M * d.K * 2, false);
    pg_touch(l, d.b, d.N * d.K * 2, false);
    pg_touch(l, d.p1, d.M * d.N * 2, false);
    pg_touch(l, d.p2, d.M * d.N * 2, false);
    pg_touch_node(l, p, m.b1, false, false);
    pg_touch_node(l, p, m.b2, false, false);
    pg_touch(l, d.c, d.M * d.N * 2, true);
    pg_touch(l, d.c2, d.M * d.N * 2, true);
    pg_touch(l, d.s1, d.N * 4, true);
    pg_touch(l, d.s2, d.N * 4, true);
    l->choice = p->launches[i].choice = p->launches[kernel].choice = ++p->nchoices;
    return true;
}
