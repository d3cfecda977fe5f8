/* pass_simplify.c — the first pass: trivial algebraic folding (recorded as replacements, the graph is not
 * rewritten), liveness from the step's roots (loss, named nodes, ASSIGNs, the caller's keep list; gradients are
 * roots only through the optimizer's ASSIGNs or the keep list)
 * and use counts. Also owns the Fusion object's lifetime and its dump. */
#include "pass.h"
#include <stdlib.h>
#include <string.h>

const char *group_kind_name(GroupKind k) {
    switch (k) {
    case GK_EW: return "ew";
    case GK_ROW: return "row";
    case GK_SCATTER: return "scatter";
    case GK_GEMM: return "gemm";
    case GK_OPAQUE: return "opaque";
    case GK_RANDPERM: return "randperm";
    case GK_ASSIGN: return "assign";
    }
    return "?";
}

const char *arena_kind_name(ArenaKind k) {
    static const char *const names[] = {"params", "state", "inputs", "kept", "activations", "workspace"};
    _Static_assert(COUNTOF(names) == AR_COUNT_, "arena names");
    return names[k];
}

static bool is_const(const Node *n, double v) { return n->op == OP_CONST && n->f[0] == v; }

/* A factor of 1: the constant, or a drop-path mask that keeps every sample (p = 0: evaluation sets it so), or a
 * cast of either (the mask of a bf16 value). Folding the mask away also lets every layer's kernel be one text. */
static bool is_one(const Fusion *f, const Node *n) {
    if (n->op == OP_CAST) n = fus_src(f, n, 0);
    return is_const(n, 1) || (n->op == OP_DROP_MASK && n->f[0] == 0);
}

/* The operand that n reduces to, or NULL. Only folds where the result keeps n's shape and dtype. */
static Node *fold(const Fusion *f, const Node *n) {
    if (n->nsrc < 1) return NULL;
    Node *a = fus_src(f, n, 0), *b = n->nsrc > 1 ? fus_src(f, n, 1) : NULL;
    Node *keep = NULL;
    if (n->op == OP_ADD && is_const(b, 0)) keep = a;
    else if (n->op == OP_ADD && is_const(a, 0)) keep = b;
    else if ((n->op == OP_SUB && is_const(b, 0)) || (n->op == OP_DIV && is_const(b, 1))) keep = a;
    else if (n->op == OP_MUL && is_one(f, b)) keep = a;
    else if (n->op == OP_MUL && is_one(f, a)) keep = b;
    else if (n->op == OP_NEG && a->op == OP_NEG) keep = f->repl[a->src[0]->id];
    if (keep && shape_eq(keep->shape, n->shape) && keep->dtype == n->dtype) return keep;
    return NULL;
}

static void mark_live(Fusion *f, Node *n) {
    if (f->live[n->id]) return;
    /* iterative: graphs are deep (thousands of nodes in a chain) */
    PtrVec stack = {0};
    ptrvec_push(&stack, n);
    f->live[n->id] = true;
    while (stack.n) {
        Node *m = stack.items[--stack.n];
        for (int k = 0; k < m->nsrc; k++) {
            Node *s = fus_src(f, m, k);
            if (!f->live[s->id]) { f->live[s->id] = true; ptrvec_push(&stack, s); }
        }
    }
    ptrvec_free(&stack);
}

static void add_root(Fusion *f, Node *n, bool keep) {
    n = f->repl[n->id];
    mark_live(f, n);
    if (keep) f->kept[n->id] = true;
}

Fusion *pass_simplify(const Graph *g, Node *const *keep, int nkeep) {
    Fusion *f = xcalloc(1, sizeof *f);
    int nn = g->nnodes;
    f->g = g;
    f->arena = arena_new(1 << 16);
    f->live = arena_alloc(f->arena, sizeof(bool) * (size_t)nn);
    f->kept = arena_alloc(f->arena, sizeof(bool) * (size_t)nn);
    f->mat = arena_alloc(f->arena, sizeof(bool) * (size_t)nn);
    f->repl = arena_alloc(f->arena, sizeof(Node *) * (size_t)nn);
    f->nuse = arena_alloc(f->arena, sizeof(int) * (size_t)nn);
    f->group_of = arena_alloc(f->arena, sizeof(int) * (size_t)nn);
    f->buf = arena_alloc(f->arena, sizeof(Buf) * (size_t)nn);
    f->view = arena_alloc(f->arena, sizeof(Node *) * (size_t)nn);
    f->shadow = arena_alloc(f->arena, sizeof(bool) * (size_t)nn);
    f->shadow_only = arena_alloc(f->arena, sizeof(bool) * (size_t)nn);
    f->store_bf16 = arena_alloc(f->arena, sizeof(bool) * (size_t)nn);
    f->part_copy = arena_alloc(f->arena, (size_t)nn);
    f->part_f32 = arena_alloc(f->arena, (size_t)nn);
    f->into = arena_alloc(f->arena, sizeof(Node *) * (size_t)nn);
    f->into_col = arena_alloc(f->arena, sizeof(int64_t) * (size_t)nn);
    f->scan_pair = arena_alloc(f->arena, sizeof(Node *) * (size_t)nn);
    f->conv_lead = arena_alloc(f->arena, sizeof(Node *) * (size_t)nn);
    f->scan_epi = arena_alloc(f->arena, sizeof(Node *) * (size_t)nn);
    f->scan_epi_tok = arena_alloc(f->arena, sizeof(int32_t *) * (size_t)nn);
    f->swiglu_x = arena_alloc(f->arena, sizeof(Node *) * (size_t)nn);
    f->pair_first = arena_alloc(f->arena, sizeof(Node *) * (size_t)nn);
    f->conv_sum_to = arena_alloc(f->arena, sizeof(Node *) * (size_t)nn);
    f->part_zero = arena_alloc(f->arena, (size_t)nn);
    f->states = arena_alloc(f->arena, sizeof(Buf) * (size_t)nn);
    f->conv_silu = arena_alloc(f->arena, sizeof(bool) * (size_t)nn);
    f->rowmap = arena_alloc(f->arena, sizeof(bool) * (size_t)nn);
    f->dup = arena_alloc(f->arena, sizeof(bool) * (size_t)nn);
    f->recompute = arena_alloc(f->arena, sizeof(bool) * (size_t)nn);
    f->epilogue = arena_alloc(f->arena, sizeof(bool) * (size_t)nn);
    f->colview = arena_alloc(f->arena, sizeof(bool) * (size_t)nn);
    f->sbuf = arena_alloc(f->arena, sizeof(Buf) * (size_t)nn);
    f->view_off = arena_alloc(f->arena, sizeof(int64_t) * (size_t)nn);
    bool *pinned = arena_alloc(f->arena, sizeof(bool) * (size_t)nn);   /* must not be folded away */
    for (int k = 0; k < nkeep; k++) pinned[keep[k]->id] = true;
    for (int k = 0; k < g->nnamed; k++) pinned[g->named[k].node->id] = true;
    if (g->loss) pinned[g->loss->id] = true;
    for (int k = 0; k < nn; k++) {
        Node *n = g->nodes[k];
        f->group_of[k] = -1;
        f->repl[k] = n;
        if (n->flags & (NF_LOSS | NF_OUTPUT | NF_TAP)) pinned[k] = true;
        Node *r = pinned[k] ? NULL : fold(f, n);
        if (r) f->repl[k] = r;
    }
    if (g->loss) add_root(f, g->loss, true);
    for (int k = 0; k < g->nnamed; k++) add_root(f, g->named[k].node, true);
    for (int k = 0; k < nkeep; k++) add_root(f, keep[k], true);
    for (int k = 0; k < nn; k++) {
        Node *n = g->nodes[k];
        if (n->op == OP_ASSIGN) add_root(f, n, false);
    }
    /* sources are always live: the backend owns their storage whether or not this step reads them */
    for (int k = 0; k < g->params.n; k++) f->live[((Node *)g->params.items[k])->id] = true;
    for (int k = 0; k < g->inputs.n; k++) f->live[((Node *)g->inputs.items[k])->id] = true;
    for (int k = 0; k < g->states.n; k++) f->live[((Node *)g->states.items[k])->id] = true;
    for (int k = 0; k < nn; k++) {
        Node *n = g->nodes[k];
        if (!f->live[k] || f->repl[k] != n) continue;
        for (int j = 0; j < n->nsrc; j++) f->nuse[fus_src(f, n, j)->id]++;
    }
    return f;
}

void fusion_free(Fusion *f) {
    if (!f) return;
    arena_free(f->arena);
    free(f);
}

int fusion_kernel_count(const Fusion *f) { return f->ngroups; }

void fusion_dump(const Fusion *f, FILE *out) {
    for (int k = 0; k < f->ngroups; k++) {
        const Group *gr = &f->groups[k];
        char s[96];
        fprintf(out, "k%d %-8s root=%%%u %s %s:", k, group_kind_name(gr->kind), gr->root->id, op_name(gr->root->op),
                shape_str(gr->root->shape, s, sizeof s));
        for (int j = 0; j < gr->nmembers; j++) fprintf(out, " %s%%%u", op_name(gr->members[j]->op), gr->members[j]->id);
        fprintf(out, "  <-");
        int64_t bytes = 0;
        for (int j = 0; j < gr->nins; j++) {
            fprintf(out, " %%%u", gr->ins[j]->id);
            bytes += shape_numel(gr->ins[j]->shape) * 4;
        }
        for (int j = 0; j < gr->nouts; j++) bytes += shape_numel(gr->outs[j]->shape) * 4;
        fprintf(out, "  [%.1f MB]%s\n", (double)bytes / 1e6,
                gr->kind == GK_ASSIGN ? (gr->inplace ? " in place" : " copy")
                : gr->elided && gr->kind == GK_OPAQUE ? " computed by another conv1d's launch (conv_multi.c)"
                : gr->elided                          ? " assembled in place by its inputs' templates"
                                                      : "");
    }
}
