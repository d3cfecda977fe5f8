/* conv_multi.c — one launch for the conv1d forwards that read the same input under different row orders. A
 * fine-tuning layer's 4 scan directions each convolve in_proj's x half, read through its own permutation of the
 * tokens (a row map: pass_fuse); one kernel staging x once in shared memory and writing every direction's output
 * reads it once instead of 4 times (ARM-B inference: 3 x 77 MB less per layer). The first conv of a set keeps its
 * group and launch; the others are elided (Group.elided, Fusion.conv_lead) and their outputs, written at the
 * first's place in the schedule, are planned live from there (pass_plan). */
#include "pass.h"

/* The buffer x's row map reads and the channel offset it adds (the SLICEs of the chain; GATHERs permute rows). */
static const Node *mapped_source(const Fusion *f, const Node *x, int64_t *off) {
    *off = 0;
    for (; f->rowmap[x->id]; x = fus_src(f, x, 0))
        if (x->op == OP_SLICE) *off += x->i[1];
    return x;
}

/* Can conv group b join the launch of conv group a: same source buffer and channel offset, same shapes, kernel
 * size, SiLU and output storage, and no second output (pass_fuse's conv_silu_out)? */
static bool joins(const Fusion *f, const Group *a, const Group *b) {
    const Node *na = a->root, *nb = b->root;
    int64_t oa, ob;
    const Node *sa = mapped_source(f, fus_src(f, na, 0), &oa), *sb = mapped_source(f, fus_src(f, nb, 0), &ob);
    return sa == sb && oa == ob && shape_eq(na->shape, nb->shape) &&
           shape_eq(fus_src(f, na, 1)->shape, fus_src(f, nb, 1)->shape) && f->conv_silu[na->id] == f->conv_silu[nb->id] &&
           f->store_bf16[na->id] == f->store_bf16[nb->id] && b->nouts == 1 && !f->kept[nb->id];
}

/* Are conv n's weight and bias ready before group `at` (parameters, or computed earlier)? */
static bool ready_before(const Fusion *f, const Node *n, int at) {
    for (int k = 1; k < 3; k++)
        if (f->group_of[fus_src(f, n, k)->id] >= at) return false;
    return true;
}

static bool candidate(const Fusion *f, const Group *gr) {
    if (gr->kind != GK_OPAQUE || gr->root->op != OP_CONV1D || gr->nouts != 1 || gr->elided) return false;
    int64_t off;
    const Node *src = mapped_source(f, fus_src(f, gr->root, 0), &off);
    return src->shape.ndim == 3 && src->shape.d[1] <= CONV_MULTI_MAX_ROWS;
}

void pass_conv_multi(Fusion *f) {
    for (int k = 0; k < f->ngroups; k++) {
        Group *lead = &f->groups[k];
        if (!candidate(f, lead) || f->conv_lead[lead->root->id]) continue;
        int n = 1;
        for (int j = k + 1; j < f->ngroups && n < CONV_MULTI_MAX_DIRS; j++) {
            Group *gr = &f->groups[j];
            if (!candidate(f, gr) || f->conv_lead[gr->root->id] || !joins(f, lead, gr) || !ready_before(f, gr->root, k))
                continue;
            f->conv_lead[gr->root->id] = lead->root;
            gr->elided = true;
            n++;
        }
    }
}
