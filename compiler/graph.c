/* graph.c — node creation with shape rules, hash-consing, named outputs, verification. */
#include "graph.h"
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- op table */
static const char *const OP_NAMES[] = {
#define OP(name, arity, kind) #name,
#include "ops.def"
#undef OP
};
static const int OP_ARITY[] = {
#define OP(name, arity, kind) arity,
#include "ops.def"
#undef OP
};
static const OpClass OP_CLASS[] = {
#define OP(name, arity, kind) kind,
#include "ops.def"
#undef OP
};
_Static_assert(COUNTOF(OP_NAMES) == OP_COUNT_, "op table");

const char *op_name(OpKind op) {
    static char lower[OP_COUNT_][20];
    if (!lower[op][0]) {
        const char *s = OP_NAMES[op];
        size_t k = 0;
        for (; s[k] && k < sizeof lower[op] - 1; k++) lower[op][k] = (char)(s[k] >= 'A' && s[k] <= 'Z' ? s[k] + 32 : s[k]);
        lower[op][k] = 0;
    }
    return lower[op];
}
int op_arity(OpKind op) { return OP_ARITY[op]; }
OpClass op_class(OpKind op) { return OP_CLASS[op]; }

const char *dtype_name(DType t) {
    switch (t) { case DT_F32: return "f32"; case DT_BF16: return "bf16"; case DT_I32: return "i32"; }
    return "?";
}
int dtype_size(DType t) {
    switch (t) { case DT_F32: return 4; case DT_BF16: return 2; case DT_I32: return 4; }
    return 0;
}

const char *init_name(InitKind k) {
    static const char *const names[] = {"zeros", "ones", "fill", "uniform", "normal", "trunc_normal",
        "lecun_normal", "xavier_uniform", "kaiming_uniform", "torch_linear", "torch_conv", "dt_bias",
        "s4d_real", "sincos_2d", "block_causal"};
    _Static_assert(COUNTOF(names) == INIT_COUNT_, "init names");
    return names[k];
}

/* ---------------------------------------------------------------- shapes */
Shape shape_make(int ndim, const int64_t *d) {
    Shape s = {0};
    ASSERT(ndim >= 0 && ndim <= MAX_DIMS, "ndim %d", ndim);
    s.ndim = ndim;
    for (int k = 0; k < ndim; k++) s.d[k] = d[k];
    return s;
}
Shape shape_of(int ndim, ...) {
    Shape s = {0};
    va_list ap;
    va_start(ap, ndim);
    s.ndim = ndim;
    for (int k = 0; k < ndim; k++) s.d[k] = va_arg(ap, int64_t);
    va_end(ap);
    return s;
}
int64_t shape_numel(Shape s) { int64_t n = 1; for (int k = 0; k < s.ndim; k++) n *= s.d[k]; return n; }
bool shape_eq(Shape a, Shape b) {
    if (a.ndim != b.ndim) return false;
    for (int k = 0; k < a.ndim; k++) if (a.d[k] != b.d[k]) return false;
    return true;
}
char *shape_str(Shape s, char *buf, int n) {
    int w = snprintf(buf, (size_t)n, "[");
    for (int k = 0; k < s.ndim && w < n; k++) w += snprintf(buf + w, (size_t)(n - w), k ? ", %lld" : "%lld", (long long)s.d[k]);
    if (w < n) snprintf(buf + w, (size_t)(n - w), "]");
    return buf;
}
bool shape_broadcast(Shape a, Shape b, Shape *out) {
    Shape o = {0};
    o.ndim = a.ndim > b.ndim ? a.ndim : b.ndim;
    for (int k = 0; k < o.ndim; k++) {
        int ka = k - (o.ndim - a.ndim), kb = k - (o.ndim - b.ndim);
        int64_t da = ka >= 0 ? a.d[ka] : 1, db = kb >= 0 ? b.d[kb] : 1;
        if (da != db && da != 1 && db != 1) return false;
        o.d[k] = da == 1 ? db : da;
    }
    *out = o;
    return true;
}

/* ---------------------------------------------------------------- graph and interning */
Graph *graph_new(void) {
    Graph *g = xcalloc(1, sizeof *g);
    g->arena = arena_new(1 << 20);
    g->hcap = 1024;
    g->hash = xcalloc((size_t)g->hcap, sizeof(Node *));
    return g;
}

void graph_free(Graph *g) {
    if (!g) return;
    arena_free(g->arena);
    free(g->nodes); free(g->hash); free(g->named);
    ptrvec_free(&g->params); ptrvec_free(&g->inputs); ptrvec_free(&g->states);
    free(g);
}

static bool interned(OpKind op) {
    OpClass c = op_class(op);
    if (c == K_SOURCE) return op == OP_CONST || op == OP_TABLE;
    return c != K_RANDOM && c != K_SINK;
}

static uint64_t node_hash(const Node *n) {
    uint64_t h = HASH_SEED;
    h = hash_bytes(h, &n->op, sizeof n->op);
    h = hash_bytes(h, &n->dtype, sizeof n->dtype);
    h = hash_bytes(h, &n->shape, sizeof n->shape);
    for (int k = 0; k < n->nsrc; k++) h = hash_bytes(h, &n->src[k]->id, sizeof n->src[k]->id);
    h = hash_bytes(h, n->i, sizeof n->i);
    h = hash_bytes(h, n->f, sizeof n->f);
    if (n->idata) h = hash_bytes(h, n->idata, sizeof(int32_t) * (size_t)n->ndata);
    if (n->fdata) h = hash_bytes(h, n->fdata, sizeof(float) * (size_t)n->ndata);
    return h;
}

static bool node_same(const Node *a, const Node *b) {
    if (a->op != b->op || a->dtype != b->dtype || !shape_eq(a->shape, b->shape) || a->nsrc != b->nsrc) return false;
    for (int k = 0; k < a->nsrc; k++) if (a->src[k] != b->src[k]) return false;
    if (memcmp(a->i, b->i, sizeof a->i) || memcmp(a->f, b->f, sizeof a->f) || a->ndata != b->ndata) return false;
    if ((a->idata == NULL) != (b->idata == NULL) || (a->fdata == NULL) != (b->fdata == NULL)) return false;
    if (a->idata && memcmp(a->idata, b->idata, sizeof(int32_t) * (size_t)a->ndata)) return false;
    if (a->fdata && memcmp(a->fdata, b->fdata, sizeof(float) * (size_t)a->ndata)) return false;
    return true;
}

static void rehash(Graph *g) {
    int cap = g->hcap * 2;
    Node **t = xcalloc((size_t)cap, sizeof(Node *));
    for (int k = 0; k < g->hcap; k++) {
        Node *n = g->hash[k];
        if (!n) continue;
        uint64_t h = node_hash(n);
        int j = (int)(h & (uint64_t)(cap - 1));
        while (t[j]) j = (j + 1) & (cap - 1);
        t[j] = n;
    }
    free(g->hash);
    g->hash = t;
    g->hcap = cap;
}

/* Copy the template into the graph, or return an existing identical node. */
static Node *make(Graph *g, const Node *tmpl) {
    ASSERT(op_arity(tmpl->op) < 0 || op_arity(tmpl->op) == tmpl->nsrc, "%s arity", op_name(tmpl->op));
    int slot = -1;
    if (interned(tmpl->op)) {
        uint64_t h = node_hash(tmpl);
        slot = (int)(h & (uint64_t)(g->hcap - 1));
        while (g->hash[slot]) {
            if (node_same(g->hash[slot], tmpl)) return g->hash[slot];
            slot = (slot + 1) & (g->hcap - 1);
        }
    }
    Node *n = arena_alloc(g->arena, sizeof *n);
    *n = *tmpl;
    n->id = (uint32_t)g->nnodes;
    if (g->nnodes == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 256;
        g->nodes = xrealloc(g->nodes, sizeof(Node *) * (size_t)g->cap);
    }
    g->nodes[g->nnodes++] = n;
    if (slot >= 0) {
        g->hash[slot] = n;
        if ((int64_t)g->nnodes * 2 > g->hcap) rehash(g);
    }
    return n;
}

static Node tmpl_of(OpKind op, DType t, Shape s, Loc loc) {
    Node n;
    memset(&n, 0, sizeof n);
    n.op = op; n.dtype = t; n.shape = s; n.loc = loc;
    return n;
}

static Node *fail(Graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static Node *fail(Graph *g, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, sizeof g->err, fmt, ap);
    va_end(ap);
    return NULL;
}

static int norm_axis(int axis, int ndim) { return axis < 0 ? axis + ndim : axis; }

/* ---------------------------------------------------------------- sources */
Node *graph_find_param(const Graph *g, const char *name) {
    for (int k = 0; k < g->params.n; k++) {
        Node *p = g->params.items[k];
        if (!strcmp(p->name, name)) return p;
    }
    return NULL;
}

Node *g_param(Graph *g, const char *name, Shape s, DType t, ParamInfo info, Loc loc) {
    if (graph_find_param(g, name)) return fail(g, "parameter '%s' is declared twice", name);
    Node n = tmpl_of(OP_PARAM, t, s, loc);
    n.name = arena_strdup(g->arena, name);
    n.param = arena_memdup(g->arena, &info, sizeof info);
    n.param->index = g->params.n;
    Node *p = make(g, &n);
    ptrvec_push(&g->params, p);
    return p;
}

Node *g_input(Graph *g, const char *name, Shape s, DType t, Loc loc) {
    for (int k = 0; k < g->inputs.n; k++)
        if (!strcmp(((Node *)g->inputs.items[k])->name, name)) return fail(g, "input '%s' is declared twice", name);
    Node n = tmpl_of(OP_INPUT, t, s, loc);
    n.name = arena_strdup(g->arena, name);
    Node *p = make(g, &n);
    ptrvec_push(&g->inputs, p);
    return p;
}

Node *g_state(Graph *g, const char *name, Shape s, DType t) {
    Node n = tmpl_of(OP_STATE, t, s, LOC_NONE);
    n.name = arena_strdup(g->arena, name);
    Node *p = make(g, &n);
    ptrvec_push(&g->states, p);
    return p;
}

Node *g_const(Graph *g, double v, Shape s, DType t) {
    Node n = tmpl_of(OP_CONST, t, s, LOC_NONE);
    n.f[0] = v;
    return make(g, &n);
}
Node *g_scalar(Graph *g, double v) { return g_const(g, v, (Shape){0}, DT_F32); }

Node *g_table_f32(Graph *g, Shape s, const float *data) {
    Node n = tmpl_of(OP_TABLE, DT_F32, s, LOC_NONE);
    n.ndata = shape_numel(s);
    n.fdata = arena_memdup(g->arena, data, sizeof(float) * (size_t)n.ndata);
    return make(g, &n);
}
Node *g_table_i32(Graph *g, Shape s, const int32_t *data) {
    Node n = tmpl_of(OP_TABLE, DT_I32, s, LOC_NONE);
    n.ndata = shape_numel(s);
    n.idata = arena_memdup(g->arena, data, sizeof(int32_t) * (size_t)n.ndata);
    return make(g, &n);
}

/* ---------------------------------------------------------------- elementwise */
Node *g_unary(Graph *g, OpKind op, Node *x, Loc loc) {
    ASSERT(op_class(op) == K_UNARY && op != OP_CAST, "%s is not unary", op_name(op));
    if (x->dtype == DT_I32) return fail(g, "%s expects a float tensor, found an i32 tensor", op_name(op));
    Node n = tmpl_of(op, x->dtype, x->shape, loc);
    n.nsrc = 1; n.src[0] = x;
    return make(g, &n);
}

Node *g_cast(Graph *g, Node *x, DType t, Loc loc) {
    if (x->dtype == t) return x;
    Node n = tmpl_of(OP_CAST, t, x->shape, loc);
    n.nsrc = 1; n.src[0] = x;
    return make(g, &n);
}

static DType promote(DType a, DType b) {
    if (a == b) return a;
    if (a == DT_F32 || b == DT_F32) return DT_F32;
    return a == DT_BF16 || b == DT_BF16 ? DT_BF16 : a;
}

Node *g_binary(Graph *g, OpKind op, Node *a, Node *b, Loc loc) {
    ASSERT(op_class(op) == K_BINARY, "%s is not binary", op_name(op));
    Shape s;
    char sa[96], sb[96];
    if (!shape_broadcast(a->shape, b->shape, &s))
        return fail(g, "shapes %s and %s cannot be broadcast together for '%s'", shape_str(a->shape, sa, 96),
                    shape_str(b->shape, sb, 96), op_name(op));
    if ((a->dtype == DT_I32) != (b->dtype == DT_I32))
        return fail(g, "'%s' mixes an integer tensor with a float tensor", op_name(op));
    Node n = tmpl_of(op, promote(a->dtype, b->dtype), s, loc);
    if (op == OP_CMP_GT) n.dtype = a->dtype == DT_I32 ? DT_F32 : n.dtype;
    n.nsrc = 2; n.src[0] = a; n.src[1] = b;
    return make(g, &n);
}

Node *g_where(Graph *g, Node *c, Node *a, Node *b, Loc loc) {
    Shape s, s2;
    char sa[96], sb[96], sc[96];
    if (!shape_broadcast(a->shape, b->shape, &s) || !shape_broadcast(s, c->shape, &s2))
        return fail(g, "where: shapes %s, %s and %s cannot be broadcast together", shape_str(c->shape, sc, 96),
                    shape_str(a->shape, sa, 96), shape_str(b->shape, sb, 96));
    Node n = tmpl_of(OP_WHERE, promote(a->dtype, b->dtype), s2, loc);
    n.nsrc = 3; n.src[0] = c; n.src[1] = a; n.src[2] = b;
    return make(g, &n);
}

/* ---------------------------------------------------------------- reductions */
Node *g_reduce(Graph *g, OpKind op, Node *x, int axis, Loc loc) {
    ASSERT(op_class(op) == K_REDUCE, "%s", op_name(op));
    int ax = norm_axis(axis, x->shape.ndim);
    char sx[96];
    if (ax < 0 || ax >= x->shape.ndim)
        return fail(g, "axis %d is out of range for a tensor of shape %s", axis, shape_str(x->shape, sx, 96));
    Shape s = x->shape;
    s.d[ax] = 1;
    Node n = tmpl_of(op, x->dtype, s, loc);
    n.nsrc = 1; n.src[0] = x; n.i[0] = ax;
    return make(g, &n);
}

/* ---------------------------------------------------------------- movement */
Node *g_reshape(Graph *g, Node *x, Shape s, Loc loc) {
    int neg = -1;
    int64_t known = 1;
    char sx[96], ss[96];
    for (int k = 0; k < s.ndim; k++) {
        if (s.d[k] == -1) {
            if (neg >= 0) return fail(g, "reshape: only one dimension may be -1");
            neg = k;
        } else if (s.d[k] <= 0) {
            return fail(g, "reshape: dimension %d is %lld, expected a positive size or -1", k, (long long)s.d[k]);
        } else {
            known *= s.d[k];
        }
    }
    int64_t total = shape_numel(x->shape);
    if (neg >= 0) {
        if (known == 0 || total % known) return fail(g, "reshape: cannot infer -1 when reshaping %s (%lld elements) to %s",
                                                     shape_str(x->shape, sx, 96), (long long)total, shape_str(s, ss, 96));
        s.d[neg] = total / known;
    }
    if (shape_numel(s) != total)
        return fail(g, "reshape: %s has %lld elements but %s has %lld", shape_str(x->shape, sx, 96), (long long)total,
                    shape_str(s, ss, 96), (long long)shape_numel(s));
    if (shape_eq(s, x->shape)) return x;
    if (x->op == OP_RESHAPE) x = x->src[0];             /* reshape of reshape is one reshape */
    if (shape_eq(s, x->shape)) return x;
    Node n = tmpl_of(OP_RESHAPE, x->dtype, s, loc);
    n.nsrc = 1; n.src[0] = x;
    return make(g, &n);
}

Node *g_permute(Graph *g, Node *x, const int *perm, Loc loc) {
    int nd = x->shape.ndim;
    bool seen[MAX_DIMS] = {0}, identity = true;
    Node n = tmpl_of(OP_PERMUTE, x->dtype, x->shape, loc);
    for (int k = 0; k < nd; k++) {
        if (perm[k] < 0 || perm[k] >= nd || seen[perm[k]])
            return fail(g, "permute: the axes are not a permutation of 0..%d", nd - 1);
        seen[perm[k]] = true;
        n.shape.d[k] = x->shape.d[perm[k]];
        n.i[k] = perm[k];
        identity &= perm[k] == k;
    }
    if (identity) return x;
    n.nsrc = 1; n.src[0] = x;
    return make(g, &n);
}

Node *g_slice(Graph *g, Node *x, int axis, int64_t start, int64_t end, Loc loc) {
    int ax = norm_axis(axis, x->shape.ndim);
    char sx[96];
    if (ax < 0 || ax >= x->shape.ndim)
        return fail(g, "slice: axis %d is out of range for shape %s", axis, shape_str(x->shape, sx, 96));
    int64_t dim = x->shape.d[ax];
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    if (start < 0 || end > dim || start >= end)
        return fail(g, "slice: range %lld..%lld is empty or outside 0..%lld on axis %d of shape %s", (long long)start,
                    (long long)end, (long long)dim, ax, shape_str(x->shape, sx, 96));
    if (start == 0 && end == dim) return x;
    Node n = tmpl_of(OP_SLICE, x->dtype, x->shape, loc);
    n.shape.d[ax] = end - start;
    n.nsrc = 1; n.src[0] = x; n.i[0] = ax; n.i[1] = start;
    return make(g, &n);
}

Node *g_pad(Graph *g, Node *x, int axis, int64_t start, int64_t total, Loc loc) {
    int ax = norm_axis(axis, x->shape.ndim);
    ASSERT(ax >= 0 && ax < x->shape.ndim && start >= 0 && start + x->shape.d[ax] <= total, "pad");
    Node n = tmpl_of(OP_PAD, x->dtype, x->shape, loc);
    n.shape.d[ax] = total;
    n.nsrc = 1; n.src[0] = x; n.i[0] = ax; n.i[1] = start;
    return make(g, &n);
}

Node *g_concat(Graph *g, Node **xs, int nx, int axis, Loc loc) {
    if (nx < 1) return fail(g, "concat needs at least one tensor");
    if (nx == 1) return xs[0];
    if (nx > MAX_SRC) {                      /* split wide concatenations into a tree */
        int half = nx / 2;
        Node *parts[2] = {g_concat(g, xs, half, axis, loc), g_concat(g, xs + half, nx - half, axis, loc)};
        if (!parts[0] || !parts[1]) return NULL;
        return g_concat(g, parts, 2, axis, loc);
    }
    Shape s = xs[0]->shape;
    int ax = norm_axis(axis, s.ndim);
    char s0[96], sk[96];
    if (ax < 0 || ax >= s.ndim) return fail(g, "concat: axis %d is out of range for shape %s", axis, shape_str(s, s0, 96));
    Node n = tmpl_of(OP_CONCAT, xs[0]->dtype, s, loc);
    n.shape.d[ax] = 0;
    for (int k = 0; k < nx; k++) {
        Shape t = xs[k]->shape;
        bool ok = t.ndim == s.ndim && xs[k]->dtype == xs[0]->dtype;
        for (int j = 0; ok && j < s.ndim; j++) ok = j == ax || t.d[j] == s.d[j];
        if (!ok) return fail(g, "concat on axis %d: tensor %d has shape %s, expected %s except on that axis", ax, k,
                             shape_str(t, sk, 96), shape_str(s, s0, 96));
        n.shape.d[ax] += t.d[ax];
        n.src[k] = xs[k];
    }
    n.nsrc = nx; n.i[0] = ax;
    return make(g, &n);
}

Node *g_expand(Graph *g, Node *x, Shape s, Loc loc) {
    Shape b;
    char sx[96], ss[96];
    if (!shape_broadcast(x->shape, s, &b) || !shape_eq(b, s))
        return fail(g, "cannot expand shape %s to %s", shape_str(x->shape, sx, 96), shape_str(s, ss, 96));
    if (shape_eq(x->shape, s)) return x;
    Node n = tmpl_of(OP_EXPAND, x->dtype, s, loc);
    n.nsrc = 1; n.src[0] = x;
    return make(g, &n);
}

static Node *index_op(Graph *g, OpKind op, Node *x, int axis, const int32_t *idx, int64_t nidx, int64_t out_dim,
                      int64_t bound, Loc loc) {
    int ax = norm_axis(axis, x->shape.ndim);
    char sx[96];
    if (ax < 0 || ax >= x->shape.ndim)
        return fail(g, "%s: axis %d is out of range for shape %s", op_name(op), axis, shape_str(x->shape, sx, 96));
    for (int64_t k = 0; k < nidx; k++)
        if (idx[k] < 0 || idx[k] >= bound)
            return fail(g, "%s: index %d at position %lld is outside 0..%lld", op_name(op), idx[k], (long long)k,
                        (long long)bound - 1);
    Node n = tmpl_of(op, x->dtype, x->shape, loc);
    n.shape.d[ax] = out_dim;
    n.nsrc = 1; n.src[0] = x; n.i[0] = ax;
    n.ndata = nidx;
    n.idata = arena_memdup(g->arena, idx, sizeof(int32_t) * (size_t)nidx);
    return make(g, &n);
}

Node *g_gather(Graph *g, Node *x, int axis, const int32_t *idx, int64_t n, Loc loc) {
    int ax = norm_axis(axis, x->shape.ndim);
    int64_t bound = ax >= 0 && ax < x->shape.ndim ? x->shape.d[ax] : 0;
    return index_op(g, OP_GATHER, x, axis, idx, n, n, bound, loc);
}

Node *g_scatter_add(Graph *g, Node *x, int axis, const int32_t *idx, int64_t out_dim, Loc loc) {
    int ax = norm_axis(axis, x->shape.ndim);
    ASSERT(ax >= 0 && ax < x->shape.ndim, "scatter axis");
    return index_op(g, OP_SCATTER_ADD, x, axis, idx, x->shape.d[ax], out_dim, out_dim, loc);
}

static Node *dyn_index_op(Graph *g, OpKind op, Node *x, int axis, Node *idx, Loc loc) {
    int ax = norm_axis(axis, x->shape.ndim);
    char sx[96];
    if (ax < 0 || ax >= x->shape.ndim)
        return fail(g, "%s: axis %d is out of range for shape %s", op_name(op), axis, shape_str(x->shape, sx, 96));
    if (idx->dtype != DT_I32 || idx->shape.ndim != 1)
        return fail(g, "%s: the index must be a 1-D i32 tensor, found %s %s", op_name(op), dtype_name(idx->dtype),
                    shape_str(idx->shape, sx, 96));
    if (op == OP_GATHER_DYN || op == OP_SCATTER_ADD_DYN) {
        if (idx->shape.d[0] != x->shape.d[ax])
            return fail(g, "%s: %lld indices for an axis of size %lld (a permutation is expected)", op_name(op),
                        (long long)idx->shape.d[0], (long long)x->shape.d[ax]);
    }
    Node n = tmpl_of(op, x->dtype, x->shape, loc);
    n.nsrc = 2; n.src[0] = x; n.src[1] = idx; n.i[0] = ax;
    return make(g, &n);
}
Node *g_gather_dyn(Graph *g, Node *x, int axis, Node *idx, Loc loc) { return dyn_index_op(g, OP_GATHER_DYN, x, axis, idx, loc); }
Node *g_scatter_add_dyn(Graph *g, Node *x, int axis, Node *idx, Loc loc) { return dyn_index_op(g, OP_SCATTER_ADD_DYN, x, axis, idx, loc); }

Node *g_extract(Graph *g, Node *packed, int64_t offset, Shape s, Loc loc) {
    ASSERT(offset >= 0 && offset + shape_numel(s) <= shape_numel(packed->shape), "extract range");
    Node n = tmpl_of(OP_EXTRACT, packed->dtype, s, loc);
    n.nsrc = 1; n.src[0] = packed; n.i[0] = offset;
    return make(g, &n);
}

/* ---------------------------------------------------------------- opaque */
Node *g_matmul(Graph *g, Node *a, Node *b, bool ta, bool tb, Loc loc) {
    char sa[96], sb[96];
    if (a->shape.ndim < 2 || b->shape.ndim < 2)
        return fail(g, "matmul needs tensors of rank >= 2, found %s and %s", shape_str(a->shape, sa, 96), shape_str(b->shape, sb, 96));
    int na = a->shape.ndim, nb = b->shape.ndim;
    int64_t m = ta ? a->shape.d[na - 1] : a->shape.d[na - 2], ka = ta ? a->shape.d[na - 2] : a->shape.d[na - 1];
    int64_t kb = tb ? b->shape.d[nb - 1] : b->shape.d[nb - 2], nn = tb ? b->shape.d[nb - 2] : b->shape.d[nb - 1];
    if (ka != kb)
        return fail(g, "matmul shapes do not match: %s%s x %s%s (inner sizes %lld and %lld)", shape_str(a->shape, sa, 96),
                    ta ? "^T" : "", shape_str(b->shape, sb, 96), tb ? "^T" : "", (long long)ka, (long long)kb);
    Shape ba = a->shape, bb = b->shape, bo;
    ba.ndim -= 2; bb.ndim -= 2;
    if (!shape_broadcast(ba, bb, &bo))
        return fail(g, "matmul batch dimensions of %s and %s cannot be broadcast", shape_str(a->shape, sa, 96), shape_str(b->shape, sb, 96));
    if (a->dtype == DT_I32 || b->dtype == DT_I32) return fail(g, "matmul expects float tensors");
    Node n = tmpl_of(OP_MATMUL, promote(a->dtype, b->dtype), bo, loc);
    n.shape.ndim = bo.ndim + 2;
    n.shape.d[bo.ndim] = m;
    n.shape.d[bo.ndim + 1] = nn;
    n.nsrc = 2; n.src[0] = a; n.src[1] = b; n.i[0] = ta; n.i[1] = tb;
    return make(g, &n);
}

Node *g_conv1d(Graph *g, Node *x, Node *w, Node *b, Loc loc) {
    char sx[96], sw[96], sb[96];
    bool ok = x->shape.ndim == 3 && w->shape.ndim == 3 && w->shape.d[1] == 1 && w->shape.d[0] == x->shape.d[2] &&
              b->shape.ndim == 1 && b->shape.d[0] == x->shape.d[2];
    if (!ok)
        return fail(g, "conv1d_causal expects x [B, L, D], w [D, 1, K], b [D]; found %s, %s, %s",
                    shape_str(x->shape, sx, 96), shape_str(w->shape, sw, 96), shape_str(b->shape, sb, 96));
    Node n = tmpl_of(OP_CONV1D, x->dtype, x->shape, loc);
    n.nsrc = 3; n.src[0] = x; n.src[1] = w; n.src[2] = b;
    return make(g, &n);
}

Node *g_conv1d_bwd_x(Graph *g, Node *dy, Node *w, Loc loc) {
    Node n = tmpl_of(OP_CONV1D_BWD_X, dy->dtype, dy->shape, loc);
    n.nsrc = 2; n.src[0] = dy; n.src[1] = w;
    return make(g, &n);
}

Node *g_conv1d_bwd_w(Graph *g, Node *dy, Node *x, int64_t k, Loc loc) {
    Node n = tmpl_of(OP_CONV1D_BWD_W, dy->dtype, shape_of(3, dy->shape.d[2], (int64_t)1, k), loc);
    n.nsrc = 2; n.src[0] = dy; n.src[1] = x;
    return make(g, &n);
}

/* The packed [dx | dw | db] of a conv1d backward. */
static Node conv1d_bwd_tmpl(OpKind op, Node *dy, Node *x, Node *w, Loc loc) {
    ASSERT(shape_eq(dy->shape, x->shape) && x->shape.ndim == 3 && w->shape.ndim == 3 && w->shape.d[0] == x->shape.d[2],
           "conv1d_bwd shapes");
    int64_t D = x->shape.d[2], total = shape_numel(x->shape) + D * w->shape.d[2] + D;
    Node n = tmpl_of(op, DT_F32, shape_of(1, total), loc);
    n.nsrc = 3; n.src[0] = dy; n.src[1] = x; n.src[2] = w;
    return n;
}

Node *g_conv1d_bwd(Graph *g, Node *dy, Node *x, Node *w, Loc loc) {
    Node n = conv1d_bwd_tmpl(OP_CONV1D_BWD, dy, x, w, loc);
    return make(g, &n);
}

Node *g_conv1d_silu_bwd(Graph *g, Node *dy, Node *dy2, Node *x, Node *w, Node *b, Loc loc) {
    ASSERT(shape_eq(b->shape, shape_of(1, x->shape.d[2])) && (!dy2 || shape_eq(dy2->shape, x->shape)),
           "conv1d_silu_bwd shapes");
    Node n = conv1d_bwd_tmpl(OP_CONV1D_SILU_BWD, dy, x, w, loc);
    n.src[n.nsrc++] = b;
    if (dy2) n.src[n.nsrc++] = dy2;
    return make(g, &n);
}

/* Scan inputs: u, delta [B,L,D]; A_log [D,N]; Bm, Cm [B,L,N]; D, delta_bias [D]; z [B,L,D] when gated. */
static bool scan_shapes_ok(Graph *g, Node *const *in, int nin) {
    static const char *const names[8] = {"u", "delta", "A_log", "Bm", "Cm", "D", "delta_bias", "z"};
    if (nin != 7 && nin != 8) { fail(g, "selective_scan: takes 7 inputs (ungated) or 8 (gated by z), found %d", nin); return false; }
    Shape u = in[0]->shape;
    char s0[96], sk[96];
    if (u.ndim != 3) { fail(g, "selective_scan: u must be [B, L, D], found %s", shape_str(u, s0, 96)); return false; }
    int64_t B = u.d[0], L = u.d[1], D = u.d[2], N = in[2]->shape.ndim == 2 ? in[2]->shape.d[1] : -1;
    Shape want[8] = {u, u, shape_of(2, D, N), shape_of(3, B, L, N), shape_of(3, B, L, N), shape_of(1, D), shape_of(1, D), u};
    for (int k = 0; k < nin; k++) {
        if (!shape_eq(in[k]->shape, want[k]) || in[k]->dtype == DT_I32) {
            fail(g, "selective_scan: %s has shape %s, expected %s", names[k], shape_str(in[k]->shape, sk, 96),
                 N < 0 ? "[D, N]" : shape_str(want[k], s0, 96));
            return false;
        }
    }
    return true;
}

Node *g_scan(Graph *g, Node *const *in, int nin, Loc loc) {
    if (!scan_shapes_ok(g, in, nin)) return NULL;
    Node n = tmpl_of(OP_SCAN, DT_F32, in[0]->shape, loc);
    n.nsrc = nin;
    for (int k = 0; k < nin; k++) n.src[k] = in[k];
    return make(g, &n);
}

Node *g_scan_bwd(Graph *g, Node *const *in, int nin, Node *dy, Loc loc) {
    ASSERT(scan_shapes_ok(g, in, nin) && shape_eq(dy->shape, in[0]->shape), "scan_bwd shapes");
    int64_t total = 0;
    for (int k = 0; k < nin; k++) total += shape_numel(in[k]->shape);
    Node n = tmpl_of(OP_SCAN_BWD, DT_F32, shape_of(1, total), loc);
    n.nsrc = nin + 1;
    for (int k = 0; k < nin; k++) n.src[k] = in[k];
    n.src[nin] = dy;
    return make(g, &n);
}

bool scan_gated(const Node *n) { return n->nsrc == (n->op == OP_SCAN ? 8 : 9); }

/* Attention inputs: q [B, L, H*E], k and v [B, S, H*E], mask [L, S]; heads H divides the channels. */
static bool attn_shapes_ok(Graph *g, Node *q, Node *k, Node *v, Node *mask, int64_t heads) {
    char s0[96], s1[96], s2[96];
    if (q->shape.ndim != 3 || k->shape.ndim != 3 || !shape_eq(k->shape, v->shape) || q->shape.d[0] != k->shape.d[0] ||
        q->shape.d[2] != k->shape.d[2]) {
        fail(g, "attention: q must be [B, L, C] and k, v [B, S, C], found q %s, k %s, v %s", shape_str(q->shape, s0, 96),
             shape_str(k->shape, s1, 96), shape_str(v->shape, s2, 96));
        return false;
    }
    const int64_t L = q->shape.d[1], S = k->shape.d[1], C = q->shape.d[2];
    if (!shape_eq(mask->shape, shape_of(2, L, S))) {
        fail(g, "attention: the mask must be [L, S] = [%lld, %lld], found %s", (long long)L, (long long)S,
             shape_str(mask->shape, s0, 96));
        return false;
    }
    if (heads < 1 || C % heads) {
        fail(g, "attention: %lld heads do not divide %lld channels", (long long)heads, (long long)C);
        return false;
    }
    Node *in[4] = {q, k, v, mask};
    for (int j = 0; j < 4; j++)
        if (in[j]->dtype == DT_I32) { fail(g, "attention: input %d is an integer tensor", j + 1); return false; }
    return true;
}

Node *g_attention(Graph *g, Node *q, Node *k, Node *v, Node *mask, int64_t heads, double scale, Loc loc) {
    if (!attn_shapes_ok(g, q, k, v, mask, heads)) return NULL;
    Node n = tmpl_of(OP_ATTN, DT_F32, q->shape, loc);
    n.nsrc = 4; n.src[0] = q; n.src[1] = k; n.src[2] = v; n.src[3] = mask;
    n.i[0] = heads; n.f[0] = scale;
    return make(g, &n);
}

Node *g_attention_bwd(Graph *g, const Node *fwd, Node *dy, Loc loc) {
    ASSERT(fwd->op == OP_ATTN && shape_eq(dy->shape, fwd->shape), "attention_bwd shapes");
    const int64_t total = shape_numel(fwd->src[0]->shape) + 2 * shape_numel(fwd->src[1]->shape);
    Node n = tmpl_of(OP_ATTN_BWD, DT_F32, shape_of(1, total), loc);
    n.nsrc = 5;
    for (int j = 0; j < 4; j++) n.src[j] = fwd->src[j];
    n.src[4] = dy;
    n.i[0] = fwd->i[0]; n.f[0] = fwd->f[0];
    return make(g, &n);
}

/* ---------------------------------------------------------------- randomness, step */
Node *g_drop_mask(Graph *g, Shape s, double p, uint64_t key, Loc loc) {
    Node n = tmpl_of(OP_DROP_MASK, DT_F32, s, loc);
    n.f[0] = p; n.i[1] = (int64_t)key;
    return make(g, &n);
}

Node *g_randperm(Graph *g, int64_t len, uint64_t key, Loc loc) {
    Node n = tmpl_of(OP_RANDPERM, DT_I32, shape_of(1, len), loc);
    n.i[0] = len; n.i[1] = (int64_t)key;
    return make(g, &n);
}

Node *g_assign(Graph *g, Node *target, Node *value) {
    ASSERT(target->op == OP_PARAM || target->op == OP_STATE, "assign target must be a PARAM or STATE");
    ASSERT(shape_eq(target->shape, value->shape), "assign shape");
    Node n = tmpl_of(OP_ASSIGN, target->dtype, target->shape, value->loc);
    n.nsrc = 2; n.src[0] = target; n.src[1] = value;
    return make(g, &n);
}

/* DROP_MASK nodes are never interned (each has its own key), so editing p in place is safe. */
void graph_eval_mode(Graph *g) {
    for (int k = 0; k < g->nnodes; k++) if (g->nodes[k]->op == OP_DROP_MASK) g->nodes[k]->f[0] = 0.0;
}

/* ---------------------------------------------------------------- outputs */
void graph_set_loss(Graph *g, Node *loss) {
    ASSERT(shape_numel(loss->shape) == 1, "loss must be a scalar");
    g->loss = loss;
    loss->flags |= NF_LOSS;
}

void graph_add_named(Graph *g, const char *name, Node *n, uint32_t flag) {
    if (g->nnamed == g->named_cap) {
        g->named_cap = g->named_cap ? g->named_cap * 2 : 16;
        g->named = xrealloc(g->named, sizeof(Named) * (size_t)g->named_cap);
    }
    g->named[g->nnamed++] = (Named){arena_strdup(g->arena, name), n};
    n->flags |= flag;
}

Node *graph_find_named(const Graph *g, const char *name) {
    for (int k = 0; k < g->nnamed; k++) if (!strcmp(g->named[k].name, name)) return g->named[k].node;
    return NULL;
}

int64_t graph_image_batch(const Graph *g) {
    for (int k = 0; k < g->inputs.n; k++) {
        const Node *n = g->inputs.items[k];
        if (n->name && !strcmp(n->name, "images") && n->shape.ndim > 0) return n->shape.d[0];
    }
    return 0;
}

int64_t graph_param_count(const Graph *g, bool trainable_only) {
    int64_t total = 0;
    for (int k = 0; k < g->params.n; k++) {
        Node *p = g->params.items[k];
        if (trainable_only && !param_trainable(p)) continue;
        if (!trainable_only && (p->param->tags & TAG_BUFFER)) continue;   /* buffers are not parameters */
        total += shape_numel(p->shape);
    }
    return total;
}

/* ---------------------------------------------------------------- verification */
bool graph_verify(const Graph *g, char *err, int errlen) {
    for (int k = 0; k < g->nnodes; k++) {
        const Node *n = g->nodes[k];
        if (n->id != (uint32_t)k) { snprintf(err, (size_t)errlen, "node %d has id %u", k, n->id); return false; }
        int ar = op_arity(n->op);
        if ((ar >= 0 && n->nsrc != ar) || (ar < 0 && n->nsrc < 1)) {
            snprintf(err, (size_t)errlen, "node %d (%s) has %d inputs, arity %d", k, op_name(n->op), n->nsrc, ar);
            return false;
        }
        for (int j = 0; j < n->nsrc; j++) {
            if (!n->src[j] || n->src[j]->id >= n->id || g->nodes[n->src[j]->id] != n->src[j]) {
                snprintf(err, (size_t)errlen, "node %d (%s) input %d is not an earlier node", k, op_name(n->op), j);
                return false;
            }
        }
        if (n->shape.ndim < 0 || n->shape.ndim > MAX_DIMS) { snprintf(err, (size_t)errlen, "node %d rank", k); return false; }
        for (int j = 0; j < n->shape.ndim; j++)
            if (n->shape.d[j] <= 0) { snprintf(err, (size_t)errlen, "node %d (%s) has dimension %lld", k, op_name(n->op), (long long)n->shape.d[j]); return false; }
        if (n->op == OP_PARAM && (!n->param || g->params.items[n->param->index] != n)) {
            snprintf(err, (size_t)errlen, "param node %d is not registered", k);
            return false;
        }
        if ((n->op == OP_GATHER || n->op == OP_SCATTER_ADD) && !n->idata) {
            snprintf(err, (size_t)errlen, "node %d (%s) has no index table", k, op_name(n->op));
            return false;
        }
    }
    if (g->loss && shape_numel(g->loss->shape) != 1) { snprintf(err, (size_t)errlen, "loss is not a scalar"); return false; }
    return true;
}
