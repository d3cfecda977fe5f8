/* pass_plan.c — the static memory plan: final group order (ASSIGN copies after everything that may still read
 * the old values), one arena per kind of storage, and offsets inside each. Activations share the activation
 * arena by liveness (first-fit by decreasing size over [first write, last read] intervals). Views (reshape,
 * extract) get their owner's memory at an offset and extend its lifetime. */
#include "pass.h"
#include "packed_copy.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { BUF_ALIGN = 256 };

static int64_t align_up(int64_t x) { return (x + BUF_ALIGN - 1) / BUF_ALIGN * BUF_ALIGN; }

int fusion_last_heavy_group(const Fusion *f) {
    for (int k = f->ngroups - 1; k >= 0; k--)
        if (f->groups[k].kind == GK_GEMM || f->groups[k].kind == GK_OPAQUE) return k;
    return -1;
}

/* Adds group d to the groups that tail group h waits for (once). */
static void add_dep(int **deps, int *ndeps, int *cap, int h, int d) {
    for (int k = 0; k < ndeps[h]; k++) if (deps[h][k] == d) return;
    if (ndeps[h] == cap[h]) {
        cap[h] = cap[h] ? 2 * cap[h] : 8;
        deps[h] = xrealloc(deps[h], sizeof(int) * (size_t)cap[h]);
    }
    deps[h][ndeps[h]++] = d;
}

/* Does group gr read the buffer of node t (t itself or a view of it)? */
static bool group_reads(const Fusion *f, const Group *gr, const Node *t) {
    for (int j = 0; j < gr->nins; j++) if (fus_owner(f, gr->ins[j]) == t) return true;
    return false;
}

/* The row kernels after a training step's last GEMM or template (each parameter gradient's sum of squares for the
 * gradient norm, the last column sums) move up to just after the groups they wait for: what produces their
 * inputs and, where one computes a value that an ASSIGN stores in place of a parameter or state t, every other
 * reader of t. They then run beside the rest of the backward on the step's other streams, not in the
 * latency-bound tail of small kernels at its end. Group order is program order: the memory plan and the stream
 * schedule follow it. ARM-B (H200, same run, two rounds): pretraining 32.92 / 33.03 -> 32.72 / 32.60 ms,
 * fine-tuning 70.53 / 70.56 -> 70.15 / 70.25. Hoisting the optimizer's updates too (fine-tuning does not clip,
 * so they need not wait for the norm) slowed fine-tuning, 68.69 / 68.77 -> 69.02 / 69.02 ms: hundreds of small
 * kernels between the backward's launches on its streams; 70.0 / 70.1 -> 70.7 / 71.0 on a stream of their own. */
static void hoist_tail(Fusion *f) {
    const int n = f->ngroups, last_main = fusion_last_heavy_group(f);
    Group *order = f->groups;
    const Graph *g = f->g;
    bool *tail = xcalloc((size_t)n, sizeof(bool));   /* by position in order[]: see above */
    int *pos = xmalloc(sizeof(int) * (size_t)g->nnodes);   /* by node id: its group's position in order[] */
    for (int id = 0; id < g->nnodes; id++) pos[id] = -1;
    for (int k = 0; k < n; k++)
        for (int j = 0; j < order[k].nmembers; j++)
            if (fus_own_member(f, &order[k], order[k].members[j])) pos[order[k].members[j]->id] = k;
    for (int id = 0; id < g->nnodes; id++)   /* written by another group's launch (conv_multi.c) */
        if (f->conv_lead[id] && pos[f->conv_lead[id]->id] > pos[id]) pos[id] = pos[f->conv_lead[id]->id];
    for (int k = last_main + 1; k < n; k++) tail[k] = order[k].kind == GK_ROW;
    int **deps = xcalloc((size_t)n, sizeof(int *)), *ndeps = xcalloc((size_t)n, sizeof(int));
    int *cap = xcalloc((size_t)n, sizeof(int));
    for (int k = last_main + 1; k < n; k++) {
        if (!tail[k]) continue;
        for (int j = 0; j < order[k].nins; j++) {
            const int p = pos[fus_owner(f, order[k].ins[j])->id];
            if (p >= 0 && p != k) add_dep(deps, ndeps, cap, k, p);
        }
    }
    for (int a = 0; a < n; a++) {   /* ASSIGN(t, v): v's tail group also waits for every other reader of t */
        if (order[a].kind != GK_ASSIGN) continue;
        const int h = pos[fus_src(f, order[a].root, 1)->id];
        const Node *t = fus_owner(f, fus_src(f, order[a].root, 0));
        if (h < 0 || !tail[h]) continue;
        for (int r = 0; r < n; r++)
            if (r != h && r != a && group_reads(f, &order[r], t)) add_dep(deps, ndeps, cap, h, r);
    }
    /* emit in order, each tail group right after the last group it waits for (tail groups in their own order) */
    int *at = xmalloc(sizeof(int) * (size_t)n);   /* by tail group: its latest wait outside the tail */
    for (int k = 0; k < n; k++) {
        at[k] = -1;
        for (int d = 0; tail[k] && d < ndeps[k]; d++) if (!tail[deps[k][d]] && deps[k][d] > at[k]) at[k] = deps[k][d];
    }
    Group *tmp = xmalloc(sizeof(Group) * (size_t)(n ? n : 1));
    bool *done = xcalloc((size_t)n, sizeof(bool));
    int m = 0;
    for (int k = 0; k < n; k++) {
        if (tail[k]) continue;
        tmp[m++] = order[k];
        done[k] = true;
        for (bool more = true; more;) {   /* tail groups whose waits are all emitted now (chains of them too) */
            more = false;
            for (int h = last_main + 1; h < n; h++) {
                if (!tail[h] || done[h] || at[h] > k) continue;
                bool ready = true;
                for (int d = 0; ready && d < ndeps[h]; d++) ready = done[deps[h][d]];
                if (!ready) continue;
                tmp[m++] = order[h];
                done[h] = more = true;
            }
        }
    }
    for (int k = 0; k < n; k++) if (!done[k]) tmp[m++] = order[k];   /* (none: every wait is emitted by the end) */
    memcpy(order, tmp, sizeof(Group) * (size_t)n);
    for (int k = 0; k < n; k++) free(deps[k]);
    free(deps); free(ndeps); free(cap); free(at); free(tmp); free(done); free(tail);
    free(pos);
}

static void number_groups(Fusion *f) {
    for (int k = 0; k < f->ngroups; k++) {
        f->groups[k].index = k;
        for (int j = 0; j < f->groups[k].nmembers; j++)
            if (fus_own_member(f, &f->groups[k], f->groups[k].members[j])) f->group_of[f->groups[k].members[j]->id] = k;
    }
}

/* Undoes pass_conv_multi_bwd's sets (their readers could not all follow the launch). */
static void undo_conv_multi_bwd(Fusion *f) {
    for (int k = 0; k < f->ngroups; k++) {
        Group *gr = &f->groups[k];
        if (gr->root->op != OP_CONV1D_SILU_BWD) continue;
        gr->elided = false;
        f->conv_lead[gr->root->id] = f->conv_sum_to[gr->root->id] = NULL;
        f->part_zero[gr->root->id] = 0;
    }
}

/* ASSIGN groups go last, keeping the relative order of everything else; then the step's tail moves up
 * (hoist_tail), after the directions' conv1d backwards that become one launch are known (conv_multi.c). */
static void order_groups(Fusion *f) {
    Group *tmp = xmalloc(sizeof(Group) * (size_t)(f->ngroups ? f->ngroups : 1));
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < f->ngroups; k++)
            if ((f->groups[k].kind == GK_ASSIGN) == (pass == 1)) tmp[n++] = f->groups[k];
    memcpy(f->groups, tmp, sizeof(Group) * (size_t)f->ngroups);
    free(tmp);
    number_groups(f);
    if (f->conv_multi_bwd) pass_conv_multi_bwd(f);   /* (before hoist_tail, which places their outputs' readers) */
    if (!f->no_hoist_tail) hoist_tail(f);
    number_groups(f);
    if (f->conv_multi_bwd && !conv_multi_bwd_ordered(f)) undo_conv_multi_bwd(f);
}

static ArenaKind arena_of(const Fusion *f, const Node *n) {
    if (n->op == OP_PARAM) return AR_PARAM;
    if (n->op == OP_STATE) return AR_STATE;
    if (n->op == OP_INPUT || n->op == OP_TABLE) return AR_INPUT;
    return f->kept[n->id] ? AR_KEEP : AR_ACT;
}

/* Does v (a member of an elementwise group) read t, through members of the same group? */
static bool depends(const Fusion *f, const Node *v, const Node *t, int group, bool *seen) {
    if (v == t) return true;
    if ((f->group_of[v->id] != group && !f->dup[v->id]) || seen[v->id]) return false;   /* dup: computed here too */
    seen[v->id] = true;
    for (int k = 0; k < v->nsrc; k++) if (depends(f, fus_src(f, v, k), t, group, seen)) return true;
    return false;
}

/* ASSIGN(t, v) needs no copy when v's kernel is pointwise over t's shape (each thread reads t[i] before writing
 * v[i] into it) and every other kernel reading t runs before. Returns the value nodes that alias their target. */
static void inplace_assigns(Fusion *f, const Node **alias) {
    const Graph *g = f->g;
    bool *seen = xcalloc((size_t)g->nnodes, sizeof(bool));
    for (int k = 0; k < f->ngroups; k++) {
        Group *a = &f->groups[k];
        if (a->kind != GK_ASSIGN) continue;
        const Node *t = fus_src(f, a->root, 0), *v = fus_src(f, a->root, 1);
        int gi = f->group_of[v->id];
        if (gi < 0 || f->kept[v->id] || f->view[v->id] || alias[v->id]) continue;
        const Group *G = &f->groups[gi];
        bool ok = G->kind == GK_EW && shape_eq(t->shape, G->dom) && shape_eq(v->shape, G->dom), reads = false;
        for (int j = 0; ok && j < G->nmembers; j++) {
            const Node *m = G->members[j];
            OpClass c = op_class(m->op);
            ok = c == K_UNARY || c == K_BINARY || c == K_TERNARY || m->op == OP_RESHAPE;   /* reshape: same flat index */
            for (int s = 0; s < m->nsrc; s++) reads |= fus_src(f, m, s) == t;
        }
        if (ok && reads) {
            memset(seen, 0, sizeof(bool) * (size_t)g->nnodes);
            ok = depends(f, v, t, gi, seen);
        }
        for (int j = gi + 1; ok && j < f->ngroups; j++)
            for (int i = 0; ok && i < f->groups[j].nins; i++) ok = fus_owner(f, f->groups[j].ins[i]) != t || j == k;
        if (!ok) continue;
        alias[v->id] = t;
        a->inplace = true;
    }
    free(seen);
}

/* A buffer's life, [first, last] in group order; order breaks ties of size (bf16 copies first, by descending node
 * id, then values by node id, then scan states). */
typedef struct Iv { Buf *slot; int64_t bytes; int first, last, order; } Iv;

static Iv interval(Buf *slot, int64_t bytes, int first, int last, int order) {
    return (Iv){slot, bytes, first, last > first ? last : first, order};
}

static int by_size_desc(const void *a, const void *b) {
    const Iv *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->order - y->order;
}
static int by_offset(const void *a, const void *b) {
    const Buf *const *x = a, *const *y = b;
    return (*x)->offset < (*y)->offset ? -1 : (*x)->offset > (*y)->offset;
}

/* First-fit placement of activation intervals; returns the arena size. */
static int64_t place(Fusion *f, Iv *iv, int n) {
    qsort(iv, (size_t)n, sizeof(Iv), by_size_desc);
    const Buf **busy = xmalloc(sizeof(Buf *) * (size_t)(n ? n : 1));
    int64_t top = 0;
    for (int k = 0; k < n; k++) {
        int nb = 0;
        for (int j = 0; j < k; j++)
            if (iv[j].first <= iv[k].last && iv[k].first <= iv[j].last) busy[nb++] = iv[j].slot;
        qsort(busy, (size_t)nb, sizeof(Buf *), by_offset);
        int64_t off = 0;
        for (int j = 0; j < nb; j++) {
            if (busy[j]->offset >= off + iv[k].bytes) break;
            int64_t end = busy[j]->offset + busy[j]->bytes;
            if (end > off) off = end;
        }
        *iv[k].slot = (Buf){AR_ACT, off, iv[k].bytes};
        if (off + iv[k].bytes > top) top = off + iv[k].bytes;
    }
    free(busy);
    return top;
}

/* Where group k's inputs are read: at k, or for a conv computed by a later group's launch (conv_multi.c), there. */
static int read_at(const Fusion *f, int k) {
    const Node *lead = f->groups[k].elided ? f->conv_lead[f->groups[k].root->id] : NULL;
    return lead && f->group_of[lead->id] > k ? f->group_of[lead->id] : k;
}

void pass_plan(Fusion *f) {
    const Graph *g = f->g;
    order_groups(f);
    if (f->conv_multi) pass_conv_multi(f);
    if (f->scan_epi_on) pass_scan_epilogues(f);
    int *last = xmalloc(sizeof(int) * (size_t)g->nnodes);
    for (int k = 0; k < g->nnodes; k++) last[k] = -1;
    for (int k = 0; k < f->ngroups; k++) {
        const int at = read_at(f, k);
        for (int j = 0; j < f->groups[k].nins; j++)
            if (at > last[f->groups[k].ins[j]->id]) last[f->groups[k].ins[j]->id] = at;
    }
    for (int k = 0; k < f->ngroups; k++) {   /* SwiGLU's products computed with its gate: x read there too */
        const Node *x = f->swiglu_x[f->groups[k].root->id];
        if (x && k > last[x->id]) last[x->id] = k;
    }
    for (int k = 0; k < f->ngroups; k++) {   /* a sum of two products in one launch: the first's operands too */
        const Node *m = f->pair_first[f->groups[k].root->id];
        for (int s = 0; m && s < 2; s++) {
            const Node *x = fus_src(f, m, s);
            if (k > last[x->id]) last[x->id] = k;
        }
    }
    for (int id = g->nnodes - 1; id >= 0; id--) {     /* a view keeps its owner's memory alive */
        Node *o = f->view[id];
        if (o && last[id] > last[o->id]) last[o->id] = last[id];
    }
    /* The bf16 copy of a packed backward output (scan, conv1d) is read soon after it (dt_proj's gradient GEMMs, the
     * conv's SiLU backward, the direction merge) while the f32 result lives on for its small parameter-gradient
     * parts: the copy's life ends with its last reader of copied parts (packed_copy.h). */
    int *slast = xmalloc(sizeof(int) * (size_t)g->nnodes);
    for (int k = 0; k < g->nnodes; k++) slast[k] = -1;
    for (int k = 0; k < f->ngroups; k++) {
        const Group *gr = &f->groups[k];
        for (int j = 0; j < gr->nins; j++) {
            const Node *x = fus_unmapped(f, gr->ins[j]), *o = fus_owner(f, x);
            /* (a superset of the copy's readers: any reader of copied parts only) */
            if (packed_has_parts(o) && !(packed_parts_read(f, gr, x, o) & ~f->part_copy[o->id]) && read_at(f, k) > slast[o->id])
                slast[o->id] = read_at(f, k);
        }
    }
    /* A value assembled in place (Fusion.into) is first written by the earliest template writing a block of it; a
     * conv1d computed by another's launch (Fusion.conv_lead), by that launch. */
    int *into_first = xmalloc(sizeof(int) * (size_t)g->nnodes);
    for (int id = 0; id < g->nnodes; id++) into_first[id] = INT_MAX;
    for (int id = 0; id < g->nnodes; id++) {
        const Node *c = f->into[id];
        if (c && f->group_of[id] < into_first[c->id]) into_first[c->id] = f->group_of[id];
        if (f->conv_lead[id]) into_first[id] = f->group_of[f->conv_lead[id]->id];
    }
    bool *early = xcalloc((size_t)g->nnodes, sizeof(bool));   /* written by an earlier launch than its group's */
    for (int k = 0; k < f->ngroups; k++) {   /* a scan's epilogue group: its outputs written by the scan's launch */
        const Node *r = f->groups[k].root, *e = r->op == OP_SCAN ? f->scan_epi[r->id] : NULL;
        const Group *eg = e ? &f->groups[f->group_of[e->id]] : NULL;
        for (int j = 0; eg && j < eg->nouts; j++) {
            into_first[eg->outs[j]->id] = k;
            early[eg->outs[j]->id] = true;
        }
    }
    const Node **alias = xcalloc((size_t)g->nnodes, sizeof(Node *));
    inplace_assigns(f, alias);
    Iv *iv = xmalloc(sizeof(Iv) * (size_t)(3 * g->nnodes + 1));
    int niv = 0;
    memset(f->arena_bytes, 0, sizeof f->arena_bytes);
    f->act_naive_bytes = 0;
    for (int id = 0; id < g->nnodes; id++) {
        Node *n = g->nodes[id];
        if (!f->mat[id] || !f->live[id] || f->repl[id] != n || f->view[id] || alias[id]) continue;
        int64_t bytes = align_up(shape_numel(n->shape) * (f->store_bf16[id] ? 2 : 4));   /* f32, i32 or bf16 */
        ArenaKind a = arena_of(f, n);
        if (a != AR_ACT) {
            f->buf[id] = (Buf){a, f->arena_bytes[a], bytes};
            f->arena_bytes[a] += bytes;
            continue;
        }
        int first = f->group_of[id];
        if (f->conv_lead[id] || early[id]) first = into_first[id];
        if (f->shadow_only[id]) f->buf[id] = (Buf){AR_COUNT_, 0, 0};   /* no f32 copy: a NULL pointer */
        else iv[niv++] = interval(&f->buf[id], bytes, first, last[id], id);
        const int send = packed_has_parts(n) ? slast[id] : last[id];
        const int sfirst = into_first[id] < first ? into_first[id] : first;
        if (f->shadow[id]) iv[niv++] = interval(&f->sbuf[id], align_up(shape_numel(n->shape) * 2), sfirst, send, -id - 1);
        f->act_naive_bytes += bytes;
    }
    for (int id = 0; id < g->nnodes; id++) {   /* a scan's chunk-start states, until its backward reads them */
        const Node *bw = g->nodes[id]->op == OP_SCAN ? f->scan_pair[id] : NULL;
        if (!bw) continue;
        const int64_t sb = align_up(f->states[id].bytes);
        iv[niv++] = interval(&f->states[id], sb, f->group_of[id], f->group_of[bw->id], g->nnodes + id);
        f->act_naive_bytes += sb;
    }
    for (int k = 0; k < niv; k++) iv[k].last += iv[k].last < INT_MAX - f->reuse_delay ? f->reuse_delay : 0;
    f->arena_bytes[AR_ACT] = place(f, iv, niv);
    for (int id = 0; id < g->nnodes; id++) if (alias[id]) f->buf[id] = f->buf[alias[id]->id];
    free(alias);
    for (int id = 0; id < g->nnodes; id++) {
        Node *o = f->view[id];
        if (!o) continue;
        Buf b = f->buf[o->id];
        int64_t es = fus_bf16(f, o) ? 2 : 4;
        f->buf[id] = (Buf){b.arena, b.offset + f->view_off[id] * es, shape_numel(g->nodes[id]->shape) * es};
    }
    free(iv);
    free(into_first);
    free(early);
    free(last);
    free(slast);
}
