/* scan_epi.c — an elementwise group that reads a scan forward's output, and nothing computed after that scan, is
 * computed by the scan's own launch as its epilogue (Fusion.scan_epi): the scan's output is neither written nor
 * read back, and the group has no launch. The case it is for: a multi-direction mixer's merge, silu(z) * (the
 * directions' outputs, each gathered back to token order) / dirs, computed by the layer's last scan. The scan's
 * thread at its row t holds the group's element at token tok[t] (the gathers on the way inverted), computes every
 * output of the group there and stores them (codegen_scan_epilogue). Only where no other group reads the scan's
 * output: a training step's backward reads the directions' outputs, so this is inference's. */
#include "pass.h"
#include <stdlib.h>
#include <string.h>

/* Walks gr's expression from n, whose token tau is read at token cur[tau] of the domain, to own: sets *found to
 * the tokens of own read (own's token at each domain token) and counts the reads in *reads. Only elementwise ops
 * of one shape and gathers along the tokens (axis 1) may lie on the way; anything else reaching own sets *reads to
 * -1 (not a candidate). */
static void walk(const Fusion *f, const Group *gr, const Node *n, const Node *own, const int32_t *cur, int32_t *found,
                 int *reads) {
    if (*reads < 0) return;
    const int64_t L = own->shape.d[1];
    if (n == own) {
        memcpy(found, cur, sizeof(int32_t) * (size_t)L);
        (*reads)++;
        return;
    }
    if (!fus_computed_in(f, gr, n)) return;
    const OpClass c = op_class(n->op);
    if (c == K_UNARY || c == K_BINARY || c == K_TERNARY) {
        for (int k = 0; k < n->nsrc; k++) {
            const Node *s = fus_src(f, n, k);
            if (shape_eq(s->shape, n->shape)) {
                walk(f, gr, s, own, cur, found, reads);
                continue;
            }
            int r = 0;   /* a broadcast operand: own must not be under it */
            walk(f, gr, s, own, cur, found, &r);
            if (r) *reads = -1;
        }
        return;
    }
    if (n->op == OP_GATHER && n->i[0] == 1 && n->ndata == L && n->shape.ndim == 3) {
        int32_t *next = malloc(sizeof(int32_t) * (size_t)L);
        for (int64_t t = 0; t < L; t++) next[t] = n->idata[cur[t]];
        walk(f, gr, fus_src(f, n, 0), own, next, found, reads);
        free(next);
        return;
    }
    for (int k = 0; k < n->nsrc; k++) {   /* any other op: own must not be under it */
        int r = 0;
        walk(f, gr, fus_src(f, n, k), own, cur, found, &r);
        if (r) *reads = -1;
    }
}

/* Group index of the launch that writes x (a view's owner; -1 for sources), or INT_MAX where that is not plain. */
static int written_by(const Fusion *f, const Node *x) {
    const Node *o = fus_owner(f, x);
    const int gi = f->group_of[o->id];
    if (gi < 0) return -1;
    return f->groups[gi].elided ? 1 << 30 : gi;
}

/* The scan forward whose launch can compute gr, with its row -> token table in tok (L entries), or NULL. */
static Node *epilogue_scan(const Fusion *f, const Group *gr, int32_t *tok) {
    if (gr->kind != GK_EW || gr->elided || gr->ncsums || gr->dom.ndim != 3 || gr->root->op == OP_CONST) return NULL;
    for (int k = 0; k < gr->nmembers; k++) if (op_class(gr->members[k]->op) == K_RANDOM) return NULL;
    Node *own = NULL;
    for (int k = 0; k < gr->nins; k++) {   /* the scan forward written last */
        Node *x = gr->ins[k];
        const int gi = f->group_of[x->id];
        if (x->op == OP_SCAN && gi >= 0 && f->groups[gi].kind == GK_OPAQUE && !f->groups[gi].elided &&
            (!own || gi > f->group_of[own->id]))
            own = x;
    }
    if (!own || !shape_eq(own->shape, gr->dom) || f->kept[own->id] || f->scan_pair[own->id] ||
        fus_read_elsewhere(f, gr, own))
        return NULL;
    const int at = f->group_of[own->id];
    for (int k = 0; k < gr->nins; k++)   /* everything else it reads is there before that scan runs */
        if (gr->ins[k] != own && written_by(f, gr->ins[k]) >= at) return NULL;
    const int64_t L = own->shape.d[1];
    int32_t *id = malloc(sizeof(int32_t) * (size_t)L), *rows = malloc(sizeof(int32_t) * (size_t)L);
    for (int64_t t = 0; t < L; t++) id[t] = (int32_t)t;
    int reads = 0;
    walk(f, gr, gr->root, own, id, rows, &reads);
    for (int k = 0; reads >= 0 && k < gr->nouts; k++)   /* outputs off the root's expression (pass_merge) */
        if (gr->outs[k] != gr->root) walk(f, gr, gr->outs[k], own, id, rows, &reads);
    bool ok = reads == 1;
    for (int64_t t = 0; t < L; t++) tok[t] = -1;
    for (int64_t t = 0; ok && t < L; t++) {   /* domain token t reads own's row rows[t]: a permutation, inverted */
        ok = rows[t] >= 0 && rows[t] < L && tok[rows[t]] < 0;
        if (ok) tok[rows[t]] = (int32_t)t;
    }
    free(id);
    free(rows);
    return ok ? own : NULL;
}

void pass_scan_epilogues(Fusion *f) {
    for (int k = 0; k < f->ngroups; k++) {
        Group *gr = &f->groups[k];
        if (gr->kind != GK_EW) continue;
        const int64_t L = gr->dom.ndim == 3 ? gr->dom.d[1] : 0;
        int32_t *tok = L ? malloc(sizeof(int32_t) * (size_t)L) : NULL;
        Node *s = L ? epilogue_scan(f, gr, tok) : NULL;
        if (s) {
            f->scan_epi[s->id] = gr->root;
            f->scan_epi_tok[s->id] = arena_alloc(f->arena, sizeof(int32_t) * (size_t)L);
            memcpy(f->scan_epi_tok[s->id], tok, sizeof(int32_t) * (size_t)L);
            gr->elided = true;
        }
        free(tok);
    }
}
