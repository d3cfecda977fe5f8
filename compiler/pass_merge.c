/* pass_merge.c — horizontal fusion, run at the end of pass_fuse: two kernels over the same domain that read the same
 * full-size buffer become one kernel with the outputs of both, so the buffer is read once.
 * - Elementwise kernels: SwiGLU's backward is the case that pays: dy * silu(a) and dy * b * silu'(a) both read a, b
 *   and dy (3 reads of the 5 the two kernels made, and one launch).
 * - Column sums (reductions over an outer axis whose every output is a sum): LayerNorm's weight and bias gradients,
 *   sum(dy * xhat) and sum(dy) over the tokens, both read dy; one kernel accumulates both in the same loop.
 * Then column sums join the elementwise or row kernel (pass_merge_column_sums) that computes or reads what they sum,
 * over the same elements: SwiGLU's backward with the sums of its two outputs (fc1's bias gradient), LayerNorm's
 * backward with its weight and bias gradients. Each thread keeps to fixed columns while it walks rows, adding into
 * partial sums (registers, or the warp's row of shared memory); a block's go to the zeroed outputs with one
 * atomicAdd per column (codegen/emit_ew.c, emit_row.c).
 * The later kernel moves up to the earlier one's place in the schedule (column sums may also move down to a later
 * kernel when nothing in between reads them). That is legal when everything it reads is
 * written before that place and not by the earlier kernel: its outputs then only appear earlier, which their readers
 * (all later still) do not mind, and no path leads from either kernel to the other. */
#include "pass.h"
#include <stdlib.h>
#include <string.h>

enum { MERGE_MAX_MEMBERS = 192, MERGE_MAX_SUMS = 4 };

static bool has_member(const Group *gr, const Node *n) {
    for (int m = 0; m < gr->nmembers; m++) if (gr->members[m] == n) return true;
    return false;
}

bool group_sums_only(const Fusion *f, const Group *gr) {
    if (gr->kind != GK_ROW) return false;
    for (int k = 0; k < gr->nouts; k++) if (gr->outs[k]->op != OP_SUM) return false;
    for (int m = 0; m < gr->nmembers; m++) {
        const Node *n = gr->members[m];
        if (n->op == OP_AMAX) return false;
        bool out = false;
        for (int k = 0; k < gr->nouts; k++) out |= gr->outs[k] == n;
        if (n->op == OP_SUM && !out) return false;
        for (int s = 0; s < n->nsrc; s++)
            if (fus_src(f, n, s)->op == OP_SUM && has_member(gr, fus_src(f, n, s))) return false;
    }
    return true;
}

bool group_columns(const Group *gr) {
    if (gr->kind != GK_ROW || gr->dom.d[gr->axis] == 1) return false;
    int64_t inner = 1;
    for (int k = gr->axis + 1; k < gr->dom.ndim; k++) inner *= gr->dom.d[k];
    if (inner == 1) return false;
    for (int k = 0; k < gr->nouts; k++) if (gr->outs[k]->shape.d[gr->axis] != 1) return false;
    return true;
}

/* Reads a full-size parameter or state: the optimizer's, whose updates may write their target in place (pass_plan),
 * which a merged partner must not read. */
static bool reads_full_weights(const Group *gr) {
    for (int k = 0; k < gr->nins; k++) {
        const Node *x = gr->ins[k];
        if ((x->op == OP_PARAM || x->op == OP_STATE) && shape_numel(x->shape) >= shape_numel(gr->dom)) return true;
    }
    return false;
}

/* A computing elementwise kernel (not a fill or a copy), or column sums, that reads no full-size weight. */
static bool mergeable(const Fusion *f, const Group *gr) {
    if (gr->kind == GK_EW) {
        if (op_class(gr->root->op) == K_SOURCE || op_class(gr->root->op) == K_MOVE) return false;
    } else if (!group_columns(gr) || !group_sums_only(f, gr) || gr->nouts > MERGE_MAX_SUMS) {
        return false;   /* (not column sums, outputs only) */
    }
    return !reads_full_weights(gr);
}

/* The group that writes x's memory (its view owner's), or -1 for sources. */
static int producer(const Fusion *f, const Node *x) { return f->group_of[fus_owner(f, x)->id]; }

static bool reads(const Group *gr, const Node *x) {
    for (int k = 0; k < gr->nins; k++) if (gr->ins[k] == x) return true;
    return false;
}

/* Do a and b read a common buffer of at least the domain's size? */
static bool share_full_input(const Group *a, const Group *b) {
    const int64_t full = shape_numel(a->dom);
    for (int k = 0; k < b->nins; k++)
        if (shape_numel(b->ins[k]->shape) >= full && reads(a, b->ins[k])) return true;
    return false;
}

/* May group b (later) run inside group a (at a's place, index ia)? */
static bool can_merge(const Fusion *f, const Group *a, int ia, const Group *b) {
    if (!mergeable(f, a) || a->kind != b->kind || !shape_eq(a->dom, b->dom) || a->nmembers + b->nmembers > MERGE_MAX_MEMBERS)
        return false;
    if (a->kind == GK_ROW && (a->axis != b->axis || a->nouts + b->nouts > MERGE_MAX_SUMS)) return false;
    for (int k = 0; k < b->nins; k++) {
        const int p = producer(f, b->ins[k]);
        if (p >= ia) return false;   /* written by a itself, or between a and b */
    }
    return share_full_input(a, b);
}

/* Merges two node lists sorted by id (members and outputs are in id order, which is topological), without the
 * duplicates that recomputed (dup) nodes make. */
static Node **merge_sorted(Arena *ar, Node **x, int nx, Node **y, int ny, int *n) {
    Node **r = arena_alloc(ar, sizeof(Node *) * (size_t)(nx + ny + 1));
    int i = 0, j = 0;
    *n = 0;
    while (i < nx || j < ny) {
        Node *next = j >= ny || (i < nx && x[i]->id <= y[j]->id) ? x[i++] : y[j++];
        if (!*n || r[*n - 1] != next) r[(*n)++] = next;
    }
    return r;
}

static bool writes(const Group *gr, const Node *x) {
    for (int k = 0; k < gr->nouts; k++) if (gr->outs[k] == x) return true;
    return false;
}

/* b's inputs that a writes are computed by the merged kernel, not read back (pass_merge_column_sums). */
static void absorb(Fusion *f, Group *a, const Group *b) {
    a->members = merge_sorted(f->arena, a->members, a->nmembers, b->members, b->nmembers, &a->nmembers);
    a->outs = merge_sorted(f->arena, a->outs, a->nouts, b->outs, b->nouts, &a->nouts);
    Node **ins = arena_alloc(f->arena, sizeof(Node *) * (size_t)(a->nins + b->nins + 1));
    int n = a->nins;
    memcpy(ins, a->ins, sizeof(Node *) * (size_t)a->nins);
    for (int k = 0; k < b->nins; k++)
        if (!reads(a, b->ins[k]) && !writes(a, fus_owner(f, b->ins[k]))) ins[n++] = b->ins[k];
    a->ins = ins;
    a->nins = n;
}

/* Moves group b into group a and drops b from the schedule (marked in gone; compacted by drop_gone). */
static void move_into(Fusion *f, int j, int k, bool *gone) {
    const Group *b = &f->groups[k];
    absorb(f, &f->groups[j], b);
    /* b's values are now written at j: later groups that read them must see j as their producer */
    for (int m = 0; m < b->nmembers; m++)
        if (fus_own_member(f, b, b->members[m])) f->group_of[b->members[m]->id] = j;
    gone[k] = true;
}

static void drop_gone(Fusion *f, const bool *gone) {
    int n = 0;
    for (int k = 0; k < f->ngroups; k++) {
        if (gone[k]) continue;
        f->groups[n] = f->groups[k];
        f->groups[n].index = n;
        for (int m = 0; m < f->groups[n].nmembers; m++)
            if (fus_own_member(f, &f->groups[n], f->groups[n].members[m])) f->group_of[f->groups[n].members[m]->id] = n;
        n++;
    }
    f->ngroups = n;
}

void pass_merge_siblings(Fusion *f) {
    bool *gone = xcalloc((size_t)f->ngroups + 1, sizeof(bool));
    for (int k = 0; k < f->ngroups; k++) {
        const Group *b = &f->groups[k];
        if (!mergeable(f, b)) continue;
        for (int j = k - 1; j >= 0; j--) {   /* the nearest partner: the shortest move */
            if (gone[j] || !can_merge(f, &f->groups[j], j, b)) continue;
            move_into(f, j, k, gone);
            break;
        }
    }
    drop_gone(f, gone);
    free(gone);
}

/* ---------------------------------------------------------------- column sums into their producer */
bool group_is_csum(const Group *gr, const Node *n) {
    for (int k = 0; k < gr->ncsums; k++) if (gr->csums[k] == n) return true;
    return false;
}

int64_t group_csum_cols(const Group *gr) { return gr->ncsums ? shape_numel(gr->csums[0]->shape) : 0; }

const Node *group_csum_source(const Fusion *f, const Group *gr, const Node *sum) {
    const Node *x = fus_src(f, sum, 0);
    while (x->op == OP_RESHAPE && !shape_eq(x->shape, gr->dom)) x = fus_src(f, x, 0);
    return shape_eq(x->shape, gr->dom) ? x : NULL;
}

/* Column sums b over [R, C] (axis 0) whose every output can be computed per element by a kernel over R * C
 * elements in row-major order. */
static bool csum_candidate(const Fusion *f, const Group *b) {
    return b->dom.ndim == 2 && b->axis == 0 && group_columns(b) && group_sums_only(f, b) && mergeable(f, b);
}

/* May column sums b (later, over [R, C]) be computed by group a (at index ia)? a is an elementwise kernel over
 * R * C elements (C a multiple of 256: whole 64-thread column groups of 4 columns each), or a warp-per-row kernel
 * over R rows of C <= 1024 (C a multiple of 32: each lane's columns fixed) that writes a full-row value. */
static bool can_take_csums(const Fusion *f, const Group *a, int ia, const Group *b) {
    const int64_t R = b->dom.d[0], C = b->dom.d[1];
    if ((a->ncsums && group_csum_cols(a) != C) || a->ncsums + b->nouts > GROUP_MAX_CSUMS ||
        a->nmembers + b->nmembers > MERGE_MAX_MEMBERS || shape_numel(a->dom) != R * C || reads_full_weights(a))
        return false;
    const int last = a->dom.ndim - 1;
    if (a->kind == GK_EW) {
        if (!mergeable(f, a) || C % 256 || a->dom.d[last] % 4) return false;
    } else if (a->kind == GK_ROW) {
        /* (with 4 warps a block, at the least, their partial sums fit GROUP_CSUM_SHARED) */
        if (group_columns(a) || group_sums_only(f, a) || a->axis != last || a->dom.d[last] != C || C % 32 ||
            C > 1024 || R < 128 || !shape_eq(a->root->shape, a->dom) ||
            (a->ncsums + b->nouts) * 4 * C * (int64_t)sizeof(float) > GROUP_CSUM_SHARED)
            return false;
    } else {
        return false;
    }
    bool related = share_full_input(a, b);
    for (int k = 0; k < b->nins; k++) {
        const int p = producer(f, b->ins[k]);
        if (p == ia && writes(a, fus_owner(f, b->ins[k]))) related = true;
        else if (p >= ia) return false;   /* written between a and b (or after b: a is later) */
    }
    if (ia > b->index) {   /* b moves down to a: nothing in between may read its sums, nor update what it reads */
        for (int k = 0; k < b->nins; k++)
            if (b->ins[k]->op == OP_PARAM || b->ins[k]->op == OP_STATE) return false;
        for (int g = b->index + 1; g <= ia; g++)
            for (int k = 0; k < f->groups[g].nins; k++)
                if (writes(b, fus_owner(f, f->groups[g].ins[k]))) return false;
    }
    for (int k = 0; k < b->nouts; k++)
        if (!group_csum_source(f, a, b->outs[k])) return false;
    return related;
}

void pass_merge_column_sums(Fusion *f) {
    bool *gone = xcalloc((size_t)f->ngroups + 1, sizeof(bool));
    for (int k = 0; k < f->ngroups; k++) {
        const Group *b = &f->groups[k];
        if (!csum_candidate(f, b)) continue;
        /* the nearest kernel, before or after b, that can take the sums */
        for (int d = 1, j = k - 1; d < 2 * f->ngroups; d++, j = d & 1 ? k - (d + 1) / 2 : k + d / 2) {
            if (j < 0 || j >= f->ngroups) continue;
            Group *a = &f->groups[j];
            if (gone[j] || !can_take_csums(f, a, j, b)) continue;
            Node **cs = arena_alloc(f->arena, sizeof(Node *) * (size_t)(a->ncsums + b->nouts));
            if (a->ncsums) memcpy(cs, a->csums, sizeof(Node *) * (size_t)a->ncsums);
            memcpy(cs + a->ncsums, b->outs, sizeof(Node *) * (size_t)b->nouts);
            a->csums = cs;
            a->ncsums += b->nouts;
            move_into(f, j, k, gone);
            break;
        }
    }
    drop_gone(f, gone);
    free(gone);
}
