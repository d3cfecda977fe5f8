/* conv_multi.c — one launch for the conv1d forwards that read the same input under different row orders. A
 * fine-tuning layer's 4 scan directions each convolve in_proj's x half, read through its own permutation of the
 * tokens (a row map: pass_fuse); one kernel staging x once in shared memory and writing every direction's output
 * reads it once instead of 4 times (ARM-B inference: 3 x 77 MB less per layer). The first conv of a set keeps its
 * group and launch; the others are elided (Group.elided, Fusion.conv_lead) and their outputs, written at the
 * first's place in the schedule, are planned live from there (pass_plan). */
#include "pass.h"
#include "packed_copy.h"
#include <stdlib.h>
#include <string.h>

/* Can conv group b join the launch of conv group a (both candidates: one output each): same source buffer and
 * channel offset, same shapes, kernel size, SiLU and output storage? */
static bool joins(const Fusion *f, const Group *a, const Group *b) {
    const Node *na = a->root, *nb = b->root;
    int64_t oa, ob;
    const Node *sa = fus_row_chain(f, fus_src(f, na, 0), &oa, NULL), *sb = fus_row_chain(f, fus_src(f, nb, 0), &ob, NULL);
    return sa == sb && oa == ob && shape_eq(na->shape, nb->shape) &&
           shape_eq(fus_src(f, na, 1)->shape, fus_src(f, nb, 1)->shape) && f->conv_silu[na->id] == f->conv_silu[nb->id] &&
           f->store_bf16[na->id] == f->store_bf16[nb->id] && !f->kept[nb->id];
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
    const Node *src = fus_row_chain(f, fus_src(f, gr->root, 0), &off, NULL);
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

/* ---------------------------------------------------------------- backward: the directions' dx summed */
/* The backward of those convs (CONV1D_SILU_BWD, one per direction) can be one launch too, at the last of them (when
 * every direction's gradients exist), that also sums the directions' dx in x's row order (vmc_conv1d_bwd_multi).
 * That is valid only where that sum is all anyone reads of the dx parts: their one reader, the direction merge (an
 * elementwise group), must add the four dx, each gathered back by the inverse of its direction's row order, through
 * ADD and row GATHER nodes only; then the sum goes into the dx part of the direction read in x's own order, and the
 * merge reads the other directions' dx parts as zero (Fusion.part_zero). */

/* x's row order of a conv backward (its input 1, through the row map chain), as a table of L rows; false if the
 * chain's source does not have L rows. */
static bool x_rows(const Fusion *f, const Node *n, int32_t *rows, int64_t L) {
    int64_t off;
    const Node *x = fus_row_chain(f, fus_src(f, n, 1), &off, rows);
    return x->shape.ndim == 3 && x->shape.d[1] == L;
}

static bool bwd_candidate(const Fusion *f, const Group *gr) {
    const Node *n = gr->root;
    if (gr->kind != GK_OPAQUE || n->op != OP_CONV1D_SILU_BWD || gr->nouts != 1 || gr->elided || f->kept[n->id] ||
        f->into[n->id] || f->conv_lead[n->id])
        return false;
    const Node *x = fus_src(f, n, 1);
    int64_t off;
    return x->shape.ndim == 3 && fus_row_chain(f, x, &off, NULL)->shape.d[1] == x->shape.d[1] &&
           x->shape.d[1] <= CONV_MULTI_BWD_MAX_ROWS;
}

static bool bwd_joins(const Fusion *f, const Node *a, const Node *b) {
    int64_t oa, ob;
    const Node *sa = fus_row_chain(f, fus_src(f, a, 1), &oa, NULL), *sb = fus_row_chain(f, fus_src(f, b, 1), &ob, NULL);
    return sa == sb && oa == ob && shape_eq(a->shape, b->shape) && a->nsrc == b->nsrc &&
           shape_eq(fus_src(f, a, 2)->shape, fus_src(f, b, 2)->shape) && f->shadow[a->id] == f->shadow[b->id] &&
           f->part_copy[a->id] == f->part_copy[b->id] && f->part_f32[a->id] == f->part_f32[b->id];
}

/* The member of group gr that is the EXTRACT of p's dx part, or NULL (none, or more than one). */
static const Node *dx_extract(const Fusion *f, const Group *gr, const Node *p) {
    const Node *e = NULL;
    for (int k = 0; k < gr->nmembers; k++) {
        const Node *m = gr->members[k];
        if (m->op != OP_EXTRACT || fus_src(f, m, 0) != p || !(packed_part(p, m->i[0], shape_numel(m->shape)) & CONV_PART_DX))
            continue;
        if (e || m->i[0] != 0 || shape_numel(m->shape) != shape_numel(fus_src(f, p, 1)->shape)) return NULL;
        e = m;
    }
    return e;
}

/* The one consumer of v inside group gr, NULL if v has others (anywhere) or is one of gr's outputs. */
static const Node *only_consumer(const Fusion *f, const Group *gr, const Node *v) {
    if (f->nuse[v->id] != 1) return NULL;
    for (int k = 0; k < gr->nouts; k++) if (gr->outs[k] == v) return NULL;
    for (int k = 0; k < gr->nmembers; k++) {
        const Node *m = gr->members[k];
        for (int j = 0; j < m->nsrc; j++) if (fus_src(f, m, j) == v) return m;
    }
    return NULL;
}

/* Follows leaf e up through ADD and row GATHER nodes (each the only reader of the one below) to the first node that
 * is neither; *top receives the last ADD/GATHER node (or e), map[t] the row of e that row t of *top adds. */
static bool leaf_path(const Fusion *f, const Group *gr, const Node *e, int64_t L, int32_t *map, const Node **top) {
    for (int64_t t = 0; t < L; t++) map[t] = (int32_t)t;
    const Node *v = e;
    for (;;) {
        const Node *c = only_consumer(f, gr, v);
        if (!c) return false;
        if (c->op == OP_ADD && shape_eq(c->shape, v->shape)) {
            v = c;
            continue;
        }
        if (c->op == OP_GATHER && c->i[0] == 1 && c->ndata == L && shape_eq(c->shape, v->shape)) {
            int32_t *tmp = xmalloc(sizeof(int32_t) * (size_t)L);
            for (int64_t t = 0; t < L; t++) tmp[t] = map[c->idata[t]];
            memcpy(map, tmp, sizeof(int32_t) * (size_t)L);
            free(tmp);
            v = c;
            continue;
        }
        *top = v;
        return true;
    }
}

/* Does a group other than `merge` read p's dx part? */
static bool dx_read_elsewhere(const Fusion *f, const Node *p, const Group *merge) {
    for (int k = 0; k < f->ngroups; k++) {
        const Group *gr = &f->groups[k];
        if (gr == merge) continue;
        for (int j = 0; j < gr->nins; j++)
            if (fus_owner(f, gr->ins[j]) == p && (packed_parts_read(f, gr, gr->ins[j], p) & CONV_PART_DX)) return true;
    }
    return false;
}

/* Checks the set set[0 .. n) (schedule order) and marks it: true if it becomes one launch. */
static bool bwd_set(Fusion *f, Group **set, int n) {
    const Node *p[CONV_MULTI_MAX_DIRS];
    for (int j = 0; j < n; j++) p[j] = set[j]->root;
    const int64_t L = fus_src(f, p[0], 1)->shape.d[1];
    const bool copy = f->shadow[p[0]->id] && (f->part_copy[p[0]->id] & CONV_PART_DX);
    const bool f32 = !copy || (f->part_f32[p[0]->id] & CONV_PART_DX);
    if (copy && f32) return false;   /* (the sum goes to one of them) */
    const Group *merge = NULL;   /* the group reading every direction's dx */
    for (int k = 0; k < f->ngroups && !merge; k++) {
        bool all = f->groups[k].kind == GK_EW;
        for (int j = 0; all && j < n; j++) all = dx_extract(f, &f->groups[k], p[j]) != NULL;
        if (all) merge = &f->groups[k];
    }
    if (!merge) return false;
    int32_t *map = xmalloc(sizeof(int32_t) * (size_t)L), *rows = xmalloc(sizeof(int32_t) * (size_t)L);
    const Node *top = NULL;
    int ident = -1;
    bool ok = true;
    for (int j = 0; ok && j < n; j++) {
        const Node *t = NULL;
        ok = !dx_read_elsewhere(f, p[j], merge) && leaf_path(f, merge, dx_extract(f, merge, p[j]), L, map, &t) &&
             (!top || t == top) && x_rows(f, p[j], rows, L);
        top = t;
        bool id = true;
        for (int64_t r = 0; ok && r < L; r++) {
            ok = rows[map[r]] == r;   /* the merge adds dx_j at row t where x_j read row t: the inverse order */
            id &= map[r] == r;
        }
        if (ok && id && ident < 0) ident = j;
    }
    free(map);
    free(rows);
    if (!ok || ident < 0) return false;
    Group *lead = set[n - 1];
    for (int j = 0; j < n; j++) {
        if (j != ident) f->part_zero[p[j]->id] |= CONV_PART_DX;
        if (set[j] == lead) continue;
        f->conv_lead[p[j]->id] = lead->root;
        set[j]->elided = true;
    }
    f->conv_sum_to[lead->root->id] = (Node *)p[ident];
    return true;
}

void pass_conv_multi_bwd(Fusion *f) {
    for (int k = 0; k < f->ngroups; k++) {
        Group *set[CONV_MULTI_MAX_DIRS] = {&f->groups[k]};
        if (!bwd_candidate(f, set[0])) continue;
        int n = 1;
        for (int j = k + 1; j < f->ngroups && n < CONV_MULTI_MAX_DIRS; j++)
            if (bwd_candidate(f, &f->groups[j]) && bwd_joins(f, set[0]->root, f->groups[j].root)) set[n++] = &f->groups[j];
        if (n >= 2) bwd_set(f, set, n);
    }
}

/* After the final order: does every reader of an elided backward's output come after the launch that writes it?
 * (hoist_tail places the tail's gradient-norm sums there; a reader earlier in the backward makes pass_plan undo the
 * sets.) */
bool conv_multi_bwd_ordered(const Fusion *f) {
    for (int k = 0; k < f->ngroups; k++) {
        const Node *n = f->groups[k].root, *lead = f->conv_lead[n->id];
        if (!f->groups[k].elided || n->op != OP_CONV1D_SILU_BWD || !lead) continue;
        for (int r = 0; r < f->ngroups; r++)
            for (int j = 0; j < f->groups[r].nins; j++)
                if (fus_owner(f, f->groups[r].ins[j]) == n && r <= f->group_of[lead->id]) return false;
    }
    return true;
}
