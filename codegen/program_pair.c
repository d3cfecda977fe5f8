/* program_pair.c — a GEMM whose acc is another GEMM's product, C = A2 B2 + A B (pass.h product_pair_match: SwiGLU's
 * input gradient dy1 W1 + dy2 W2), as one launch of vmc's own Hopper kernel over both products' K (hopper_gemm.cuh
 * HG_KCAT): the first product is neither written nor read back, and C is rounded once. The runtime runs it instead
 * of the two GEMMs where it agrees with them and is faster (runtime/cuda_choice.c), as it does SwiGLU's launches
 * (Launch.choice). */
#include "program_impl.h"
#include <stdio.h>

/* The two launches as one kernel takes them: plain bf16 products of one layout and shape, A stored [M][K] (as the
 * runtime's check of the pair fills it: cuda_choice.c), operands in place (not cast into the GEMM workspace, which
 * later GEMMs reuse), the second adding the first's C. */
static bool pair_operands(const GemmDesc *a, const GemmDesc *b) {
    return a->bf16 && b->bf16 && a->batch == 1 && b->batch == 1 && !a->ta && !b->ta && !a->has_acc && b->has_acc &&
           a->alpha == 1.f && b->alpha == 1.f && a->tb == b->tb && a->M == b->M && a->N == b->N && a->K == b->K &&
           a->lda == b->lda && a->ldb == b->ldb && a->c_bf16 == b->c_bf16 && b->acc.arena == a->c.arena &&
           b->acc.offset == a->c.offset && a->a.arena != AR_WORK && a->b.arena != AR_WORK && b->a.arena != AR_WORK &&
           b->b.arena != AR_WORK;
}

bool pg_product_pair(Program *p, SeenSet *seen, const Group *gr) {
    const Node *first = p->f->pair_first[gr->root->id];
    const int i2 = p->nlaunches - 1;   /* the group's GEMM, just built */
    if (!first || i2 < 0 || p->launches[i2].kind != LK_GEMM || p->launches[i2].group != gr->index) return false;
    const int i1 = pg_product_launch(p, first, i2);
    if (i1 < 0 || !pair_operands(&p->launches[i1].gemm, &p->launches[i2].gemm)) return false;
    const GemmDesc *d1 = &p->launches[i1].gemm;
    GemmDesc d = p->launches[i2].gemm;
    d.pair = true;
    d.has_acc = false;
    d.acc = (BufRef){0};
    d.a2 = d.a;
    d.b2 = d.b;
    d.a = d1->a;
    d.b = d1->b;
    if (d.a2.offset % 16 || d.b2.offset % 16) return false;   /* (tensor maps start on 16 bytes; A's and B's: the spec) */
    const SkinnyGemmSpec s = {.M = d.M, .N = d.N, .K = 2 * d.K, .lda = d.lda, .ldb = d.ldb, .ta = d.ta, .tb = d.tb,
                              .c_bf16 = d.c_bf16, .alpha = 1, .a_off = d.a.offset / 2 % 8, .b_off = d.b.offset / 2 % 8,
                              .c_align = pg_align_of(d.c.offset), .k1 = d.K, .sms = p->opt.sms};
    KernelLaunch kl;
    char *src = template_gemm_hopper(&s, &kl);
    if (!src) return false;
    Launch *l = pg_add_own_launch(p, seen, gr, &d, src, "pair", 1);
    l->own = (SkinnyGemmLaunch){.k = kl, .split = 1};
    snprintf(l->name, sizeof l->name, "pair_%lldx%lldx%lld", (long long)d.M, (long long)d.N, (long long)d.K);
    const int64_t ea = d.M * d.K * 2, eb = d.N * d.K * 2;   /* (lda, ldb: each operand's own K, no views) */
    pg_touch(l, d.a, ea, false);
    pg_touch(l, d.b, eb, false);
    pg_touch(l, d.a2, ea, false);
    pg_touch(l, d.b2, eb, false);
    pg_touch(l, d.c, d.M * d.N * (d.c_bf16 ? 2 : 4), true);
    l->choice = p->launches[i1].choice = p->launches[i2].choice = ++p->nchoices;
    return true;
}
