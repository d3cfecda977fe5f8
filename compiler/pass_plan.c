/* pass_plan.c — the static memory plan: final group order (ASSIGN copies after everything that may still read
 * the old values), one arena per kind of storage, and offsets inside each. Activations share the activation
 * arena by liveness (first-fit by decreasing size over [first write, last read] intervals). */
#include "pass.h"
#include <stdlib.h>
#include <string.h>

enum { BUF_ALIGN = 256 };

static int64_t align_up(int64_t x) { return (x + BUF_ALIGN - 1) / BUF_ALIGN * BUF_ALIGN; }

/* ASSIGN groups go last, keeping the relative order of everything else. */
static void order_groups(Fusion *f) {
    Group *tmp = xmalloc(sizeof(Group) * (size_t)(f->ngroups ? f->ngroups : 1));
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < f->ngroups; k++)
            if ((f->groups[k].kind == GK_ASSIGN) == (pass == 1)) tmp[n++] = f->groups[k];
    memcpy(f->groups, tmp, sizeof(Group) * (size_t)f->ngroups);
    free(tmp);
    for (int k = 0; k < f->ngroups; k++) {
        f->groups[k].index = k;
        for (int j = 0; j < f->groups[k].nmembers; j++) f->group_of[f->groups[k].members[j]->id] = k;
    }
}

static ArenaKind arena_of(const Fusion *f, const Node *n) {
    if (n->op == OP_PARAM) return AR_PARAM;
    if (n->op == OP_STATE) return AR_STATE;
    if (n->op == OP_INPUT || n->op == OP_TABLE) return AR_INPUT;
    return f->kept[n->id] ? AR_KEEP : AR_ACT;
}

typedef struct Iv { int id; int64_t bytes; int first, last; } Iv;

static int by_size_desc(const void *a, const void *b) {
    const Iv *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->id - y->id;
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
            if (iv[j].first <= iv[k].last && iv[k].first <= iv[j].last) busy[nb++] = &f->buf[iv[j].id];
        qsort(busy, (size_t)nb, sizeof(Buf *), by_offset);
        int64_t off = 0;
        for (int j = 0; j < nb; j++) {
            if (busy[j]->offset >= off + iv[k].bytes) break;
            int64_t end = busy[j]->offset + busy[j]->bytes;
            if (end > off) off = end;
        }
        f->buf[iv[k].id] = (Buf){AR_ACT, off, iv[k].bytes};
        if (off + iv[k].bytes > top) top = off + iv[k].bytes;
    }
    free(busy);
    return top;
}

void pass_plan(Fusion *f) {
    const Graph *g = f->g;
    order_groups(f);
    int *last = xmalloc(sizeof(int) * (size_t)g->nnodes);
    for (int k = 0; k < g->nnodes; k++) last[k] = -1;
    for (int k = 0; k < f->ngroups; k++)
        for (int j = 0; j < f->groups[k].nins; j++) last[f->groups[k].ins[j]->id] = k;
    Iv *iv = xmalloc(sizeof(Iv) * (size_t)(g->nnodes ? g->nnodes : 1));
    int niv = 0;
    memset(f->arena_bytes, 0, sizeof f->arena_bytes);
    f->act_naive_bytes = 0;
    for (int id = 0; id < g->nnodes; id++) {
        Node *n = g->nodes[id];
        if (!f->mat[id] || !f->live[id] || f->repl[id] != n) continue;
        int64_t bytes = align_up(shape_numel(n->shape) * 4);   /* device storage: f32 or i32 (codegen.h) */
        ArenaKind a = arena_of(f, n);
        if (a != AR_ACT) {
            f->buf[id] = (Buf){a, f->arena_bytes[a], bytes};
            f->arena_bytes[a] += bytes;
            continue;
        }
        int first = f->group_of[id];
        iv[niv++] = (Iv){id, bytes, first, last[id] > first ? last[id] : first};
        f->act_naive_bytes += bytes;
    }
    f->arena_bytes[AR_ACT] = place(f, iv, niv);
    free(iv);
    free(last);
}
