/* pass_fuse.c — groups live nodes into kernels. Walks the graph from the last node to the first; a fusable node
 * (elementwise, movement, reduction, drop mask) whose consumers all sit in one cluster joins that cluster and is
 * computed inside it by index math (recomputed per use, CSE'd per index by the emitter). Otherwise it gets a
 * buffer and roots its own cluster. A reduction joins only a cluster whose rows it shares, through elementwise
 * row-aligned paths, which makes LayerNorm (+ residual), softmax (+ mask, scale) and MSE one kernel each; an
 * elementwise kernel that stores a per-row value (1/std kept for the backward) becomes a row kernel for this.
 * MATMUL, the opaque templates, RANDPERM and ASSIGN are groups of their own with materialized inputs.
 * A RESHAPE or EXTRACT that would need a buffer of its own is a view of its input's buffer instead (no kernel);
 * so is a SILU that the conv1d template producing its input applies itself. A gather along L or a slice of the
 * channels of a [B, L, C] tensor read only by the conv1d and scan templates is no kernel either: the templates
 * read its source through a row table (the scan directions' permutations, the x/z halves of in_proj).
 * A cheap pointwise or movement chain over stored values (at most one of them full-size) that several kernels
 * read is recomputed by each of them instead of stored (Fusion.dup): bias adds and activations of GEMM outputs
 * that the backward reads again (SwiGLU's x W1 + b1, silu of it, x W2 + b2) cost their inputs' reads, not a
 * store and reads of their own.
 * A GEMM's product that only a scale by a constant or a sum with a stored value reads, where that would be a kernel
 * of its own, is finished by the GEMM itself (cuBLASLt's alpha and beta C: gemm_epilogue), and a column slice that
 * only GEMMs read is their operand in place, its row stride the leading dimension (col_view). A value that moves
 * data (gather, pad, concat, slice) is not recomputed by row kernels, which would do it once per phase.
 * Last, elementwise kernels of one domain that read a common full-size buffer become one (pass_merge.c). */
#include "pass.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_PATHS = 8, MAX_MEMBERS = 192 };

typedef struct Cluster {
    GroupKind kind;          /* GK_EW, GK_ROW or GK_SCATTER while fusing */
    Node *root;
    Shape dom;
    int axis;
    int nmembers;
} Cluster;

typedef struct Ctx {
    Fusion *f;
    int **dset, *ndset;      /* by node id, for dup nodes: the clusters that compute it */
    int *cons_start, *cons;  /* CSR: distinct live consumers of each node */
    int *cluster;            /* by node id, -1 none */
    int *paths;              /* by node id: how many consumer paths lead to the cluster root */
    Cluster *cl; int ncl, capcl;
    int *memo, *memo2; int gen; /* row_aligned / final_path memos: gen*2 + result */
    Node **silu_out;         /* by CONV1D node id: the SILU its template also writes (conv_silu_out) */
} Ctx;

static bool fusable(OpKind op) {
    switch (op) {
    case OP_NEG: case OP_EXP: case OP_LOG: case OP_SQRT: case OP_RSQRT: case OP_RECIP: case OP_TANH: case OP_ERF:
    case OP_SIGMOID: case OP_SILU: case OP_SOFTPLUS: case OP_RELU: case OP_ABS: case OP_CAST:
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_MAX: case OP_MIN: case OP_CMP_GT: case OP_WHERE:
    case OP_SUM: case OP_AMAX:
    case OP_RESHAPE: case OP_PERMUTE: case OP_SLICE: case OP_PAD: case OP_CONCAT: case OP_EXPAND: case OP_GATHER:
    case OP_GATHER_DYN: case OP_EXTRACT: case OP_DROP_MASK:
        return true;
    case OP_PARAM: case OP_INPUT: case OP_STATE: case OP_CONST: case OP_TABLE:
    case OP_SCATTER_ADD: case OP_SCATTER_ADD_DYN: case OP_MATMUL: case OP_CONV1D: case OP_CONV1D_BWD_X:
    case OP_CONV1D_BWD_W: case OP_CONV1D_BWD: case OP_CONV1D_SILU_BWD: case OP_SCAN: case OP_SCAN_BWD:
    case OP_ATTN: case OP_ATTN_BWD: case OP_RANDPERM: case OP_ASSIGN:
        return false;
    }
    return false;
}

static bool is_reduce(OpKind op) { return op == OP_SUM || op == OP_AMAX; }
static bool is_pointwise(OpKind op) {
    OpClass c = op_class(op);
    return c == K_UNARY || c == K_BINARY || c == K_TERNARY;
}

static bool is_view(const Fusion *f, const Node *n) { return f->view[n->id] != NULL; }

/* Does consumer c need input k of itself as a real buffer? */
static bool needs_buffer(const Fusion *f, const Node *c, int k) {
    if (f->epilogue[c->id]) return fus_src(f, c, k)->op != OP_CONST;   /* a GEMM's scale is its alpha */
    if (is_view(f, c) || f->rowmap[c->id]) return true;
    switch (op_class(c->op)) {
    case K_GEMM: case K_OPAQUE: case K_SINK: return true;
    case K_MOVE: return (c->op == OP_GATHER_DYN || c->op == OP_SCATTER_ADD_DYN) && k == 1;
    case K_SOURCE: case K_UNARY: case K_BINARY: case K_TERNARY: case K_REDUCE: case K_RANDOM: return false;
    }
    return false;
}

static Shape reduced(Shape s, int axis) { s.d[axis] = 1; return s; }

/* Every path from n up to the root of its cluster stays on rows of (S, axis): elementwise ops shaped S or
 * reduced-S, expansions of reduced-S to S (a per-row value broadcast over its row), or reductions over the
 * same rows. Then a reduction's per-row scalar is read at its own row. */
static bool row_aligned(Ctx *c, const Node *n, Shape S, int axis) {
    if (c->memo[n->id] >> 1 == c->gen) return c->memo[n->id] & 1;
    Cluster *cl = &c->cl[c->cluster[n->id]];
    Shape Sr = reduced(S, axis);
    bool ok = shape_eq(n->shape, S) || shape_eq(n->shape, Sr);
    if (ok && is_reduce(n->op)) ok = shape_eq(fus_src(c->f, n, 0)->shape, S) && n->i[0] == axis;
    else if (ok && n->op == OP_EXPAND) ok = shape_eq(n->shape, S) && shape_eq(fus_src(c->f, n, 0)->shape, Sr);
    else if (ok) ok = is_pointwise(n->op);
    if (ok && n != cl->root)   /* consumers in other clusters read n's stored buffer: no path to this root */
        for (int k = c->cons_start[n->id]; ok && k < c->cons_start[n->id + 1]; k++)
            if (c->cluster[c->cons[k]] == c->cluster[n->id]) ok = row_aligned(c, c->f->g->nodes[c->cons[k]], S, axis);
    c->memo[n->id] = c->gen * 2 + ok;
    return ok;
}

/* An extra output of an EW cluster is stored where it is evaluated; every element must be reached through
 * pointwise ops of the root's shape. */
static bool ident_path(Ctx *c, const Node *n, int k, Shape T) {
    const Cluster *cl = &c->cl[k];
    for (int j = c->cons_start[n->id]; j < c->cons_start[n->id + 1]; j++) {
        const Node *m = c->f->g->nodes[c->cons[j]];
        if (c->cluster[m->id] != k || !is_pointwise(m->op) || !shape_eq(m->shape, T)) continue;
        if (m == cl->root || ident_path(c, m, k, T)) return true;
    }
    return false;
}

/* Some path from n reaches the root of cluster k without crossing a reduction (so the final phase of a row
 * kernel evaluates n). */
static bool final_path(Ctx *c, const Node *n, int k) {
    if (c->memo2[n->id] >> 1 == c->gen) return c->memo2[n->id] & 1;
    bool ok = false;
    for (int j = c->cons_start[n->id]; !ok && j < c->cons_start[n->id + 1]; j++) {
        const Node *m = c->f->g->nodes[c->cons[j]];
        if (c->cluster[m->id] != k || is_reduce(m->op)) continue;
        ok = m == c->cl[k].root || final_path(c, m, k);
    }
    c->memo2[n->id] = c->gen * 2 + ok;
    return ok;
}

static bool can_join(Ctx *c, Node *n, int k, bool multi);

/* The one axis over which n is a per-row value of shape s (extent 1 there, equal elsewhere), or -1. */
static int row_axis(Shape s, Shape n) {
    if (s.ndim != n.ndim) return -1;
    int axis = -1;
    for (int a = 0; a < s.ndim; a++) {
        if (s.d[a] == n.d[a]) continue;
        if (n.d[a] != 1 || axis >= 0) return -1;
        axis = a;
    }
    return axis;
}

/* A per-row value (LayerNorm's 1/std, which the backward reads too) stored by the elementwise kernel that
 * applies it: that kernel becomes a row kernel, so the reductions the value comes from can join it too and the
 * norm is one kernel instead of three (mean, variance, apply). Reverted if the row checks fail. */
static bool row_value(Ctx *c, Node *n, int k) {
    Cluster *cl = &c->cl[k];
    int axis = row_axis(cl->dom, n->shape);
    if (axis < 0 || !is_pointwise(n->op) || !shape_eq(cl->root->shape, cl->dom)) return false;
    for (int a = axis + 1; a < cl->dom.ndim; a++)
        if (cl->dom.d[a] != 1) return false;   /* rows must be contiguous: a row kernel reads them coalesced */
    cl->kind = GK_ROW;
    cl->axis = axis;
    if (can_join(c, n, k, true)) return true;
    cl->kind = GK_EW;
    cl->axis = 0;
    return false;
}

/* May n be computed inside cluster k? Without multi, all of n's consumers are in k; with multi, n also has
 * consumers in later clusters, so k stores it: every element of n must then be evaluated in k's final phase
 * (row kernels: reductions are stored per row by their block). Updates the cluster's domain. */
static bool can_join(Ctx *c, Node *n, int k, bool multi) {
    Cluster *cl = &c->cl[k];
    if (cl->nmembers >= MAX_MEMBERS) return false;
    if (!is_reduce(n->op)) {
        if (!multi) return true;
        if (cl->kind == GK_EW && shape_eq(n->shape, cl->dom))
            return is_pointwise(n->op) && ident_path(c, n, k, cl->dom);
        if (cl->kind == GK_EW) return row_value(c, n, k);
        if (cl->kind != GK_ROW || !shape_eq(c->cl[k].root->shape, cl->dom)) return false;
        c->gen++;
        bool aligned = true;
        for (int j = c->cons_start[n->id]; aligned && j < c->cons_start[n->id + 1]; j++) {
            const Node *m = c->f->g->nodes[c->cons[j]];
            if (c->cluster[m->id] == k) aligned = row_aligned(c, m, cl->dom, cl->axis);
        }
        Shape Sr = reduced(cl->dom, cl->axis);
        return aligned && is_pointwise(n->op) && (shape_eq(n->shape, cl->dom) || shape_eq(n->shape, Sr)) &&
               final_path(c, n, k);
    }
    if (cl->kind == GK_SCATTER) return false;
    Shape S = fus_src(c->f, n, 0)->shape;
    int axis = (int)n->i[0];
    if (cl->kind == GK_ROW && (!shape_eq(cl->dom, S) || cl->axis != axis)) return false;
    if (cl->kind == GK_EW && !shape_eq(cl->dom, S) && !shape_eq(cl->dom, reduced(S, axis))) return false;
    c->gen++;
    for (int j = c->cons_start[n->id]; j < c->cons_start[n->id + 1]; j++) {
        const Node *m = c->f->g->nodes[c->cons[j]];
        if ((!multi || c->cluster[m->id] == k) && !row_aligned(c, m, S, axis)) return false;
    }
    cl->kind = GK_ROW;
    cl->dom = S;
    cl->axis = axis;
    return true;
}

static int new_cluster(Ctx *c, Node *root) {
    if (c->ncl == c->capcl) {
        c->capcl = c->capcl ? c->capcl * 2 : 256;
        c->cl = xrealloc(c->cl, sizeof(Cluster) * (size_t)c->capcl);
    }
    Cluster *cl = &c->cl[c->ncl];
    memset(cl, 0, sizeof *cl);
    cl->root = root;
    cl->kind = GK_EW;
    cl->dom = root->shape;
    if (is_reduce(root->op)) { cl->kind = GK_ROW; cl->dom = fus_src(c->f, root, 0)->shape; cl->axis = (int)root->i[0]; }
    if (root->op == OP_SCATTER_ADD || root->op == OP_SCATTER_ADD_DYN) { cl->kind = GK_SCATTER; cl->dom = fus_src(c->f, root, 0)->shape; }
    cl->nmembers = 1;
    c->cluster[root->id] = c->ncl;
    c->paths[root->id] = 1;
    c->f->mat[root->id] = true;
    return c->ncl++;
}

/* The one cluster holding every consumer of n, or -1; also sums the consumer paths. */
static int consumer_cluster(Ctx *c, const Node *n, int *paths) {
    int k = -1;
    *paths = 0;
    for (int j = c->cons_start[n->id]; j < c->cons_start[n->id + 1]; j++) {
        const Node *m = c->f->g->nodes[c->cons[j]];
        int km = c->cluster[m->id];
        for (int s = 0; s < m->nsrc; s++)
            if (fus_src(c->f, m, s) == n && needs_buffer(c->f, m, s)) return -1;
        if (km < 0 || (k >= 0 && km != k)) return -1;
        k = km;
        *paths += c->paths[m->id];
    }
    return k;
}

/* For a node read by several clusters: the one that runs first (smallest root), if it is a generated kernel.
 * The others have larger roots, so no path leads from them back into it: storing n there makes no cycle. */
static int first_cluster(Ctx *c, const Node *n, int *paths) {
    int k = -1;
    *paths = 0;
    for (int j = c->cons_start[n->id]; j < c->cons_start[n->id + 1]; j++) {
        int km = c->cluster[c->cons[j]];
        if (km < 0) return -1;
        if (k < 0 || c->cl[km].root->id < c->cl[k].root->id) k = km;
    }
    if (k < 0 || (c->cl[k].kind != GK_EW && c->cl[k].kind != GK_ROW) || !fusable(c->cl[k].root->op)) return -1;
    for (int j = c->cons_start[n->id]; j < c->cons_start[n->id + 1]; j++) {
        const Node *m = c->f->g->nodes[c->cons[j]];
        if (c->cluster[m->id] != k) continue;
        for (int s = 0; s < m->nsrc; s++)
            if (fus_src(c->f, m, s) == n && needs_buffer(c->f, m, s)) return -1;
        *paths += c->paths[m->id];
    }
    return k;
}

static void build_consumers(Ctx *c) {
    const Graph *g = c->f->g;
    int nn = g->nnodes;
    c->cons_start = xcalloc((size_t)nn + 1, sizeof(int));
    for (int pass = 0; pass < 2; pass++) {
        int *fill = pass ? xcalloc((size_t)nn, sizeof(int)) : NULL;
        for (int k = 0; k < nn; k++) {
            Node *m = g->nodes[k];
            if (!c->f->live[k] || c->f->repl[k] != m) continue;
            for (int s = 0; s < m->nsrc; s++) {
                Node *src = fus_src(c->f, m, s);
                bool dup = false;
                for (int t = 0; t < s; t++) dup |= fus_src(c->f, m, t) == src;
                if (dup) continue;
                if (!pass) c->cons_start[src->id + 1]++;
                else c->cons[c->cons_start[src->id] + fill[src->id]++] = k;
            }
        }
        if (!pass) {
            for (int k = 0; k < nn; k++) c->cons_start[k + 1] += c->cons_start[k];
            c->cons = xcalloc((size_t)c->cons_start[nn] + 1, sizeof(int));
        }
        free(fill);
    }
}

/* A reshape or extract of a buffer reads the same bytes: alias them (chains resolve to the first owner). */
static void make_view(Fusion *f, Node *n) {
    f->view[n->id] = fus_src(f, n, 0);
    f->view_off[n->id] = n->op == OP_EXTRACT ? n->i[0] : 0;
    f->mat[n->id] = true;
}

/* SILU of a causal conv read by nothing else (inference, and training too: the backward of both is one op that
 * recomputes the conv output, CONV1D_SILU_BWD): the conv template applies it, and the SILU node reads the conv's
 * memory. */
static bool conv_silu(Ctx *c, Node *n) {
    Fusion *f = c->f;
    if (n->op != OP_SILU || f->kept[n->id]) return false;
    Node *cv = fus_src(f, n, 0);
    if (cv->op != OP_CONV1D || f->kept[cv->id] || f->nuse[cv->id] != 1) return false;
    f->conv_silu[cv->id] = true;
    make_view(f, n);
    return true;
}

/* SILU of a causal conv that other nodes read too (a graph that also uses the conv output itself): the conv
 * template writes both, so no kernel reads the conv output back to apply the SiLU. The SILU joins the conv's
 * group as a second output when the conv is reached (nodes are visited last first). */
static bool conv_silu_out(Ctx *c, Node *n) {
    Fusion *f = c->f;
    if (n->op != OP_SILU || f->kept[n->id]) return false;
    Node *cv = fus_src(f, n, 0);
    if (cv->op != OP_CONV1D || f->conv_silu[cv->id] || c->silu_out[cv->id]) return false;
    c->silu_out[cv->id] = n;
    f->mat[n->id] = true;
    return true;
}

/* Inputs that the conv1d and scan templates read row by row through a row map (templates/common.cuh VMC_AT). */
static bool row_mapped_input(const Node *m, int s) {
    switch ((int)m->op) {
    case OP_CONV1D: case OP_CONV1D_BWD_X: return s == 0;
    case OP_CONV1D_BWD_W: case OP_CONV1D_BWD: return s == 0 || s == 1;
    case OP_CONV1D_SILU_BWD: return s == 0 || s == 1 || s == 4;   /* dy, x, dy2 */
    case OP_SCAN: return s == 0 || s == 1 || s == 3 || s == 4 || s == 7;
    case OP_SCAN_BWD: return s == 0 || s == 1 || s == 3 || s == 4 || s == 7 || s == 8;
    case OP_ATTN: return s <= 2;   /* q, k, v */
    case OP_ATTN_BWD: return s <= 2 || s == 4;
    default: return false;
    }
}

/* A GATHER along axis 1 or a SLICE of axis 2 of a [B, L, C] tensor whose readers are all row-mapped template
 * inputs (or such nodes themselves) needs no kernel: the templates compose the chain down to a buffer. Slices
 * keep 16-byte alignment (the scan loads Bm/Cm rows as float4). */
static bool row_map(Ctx *c, Node *n) {
    Fusion *f = c->f;
    bool slice = n->op == OP_SLICE && n->i[0] == 2, gather = n->op == OP_GATHER && n->i[0] == 1;
    if ((!slice && !gather) || n->shape.ndim != 3 || f->kept[n->id]) return false;
    if (slice && (n->i[1] % 4 || fus_src(f, n, 0)->shape.d[2] % 4)) return false;
    if (c->cons_start[n->id] == c->cons_start[n->id + 1]) return false;
    for (int j = c->cons_start[n->id]; j < c->cons_start[n->id + 1]; j++) {
        const Node *m = f->g->nodes[c->cons[j]];
        if (f->rowmap[m->id]) continue;
        for (int s = 0; s < m->nsrc; s++)
            if (fus_src(f, m, s) == n && !row_mapped_input(m, s)) return false;
    }
    f->rowmap[n->id] = true;
    return true;
}

/* ---------------------------------------------------------------- recomputation */
enum { DUP_DEPTH = 4 };

/* Is x stored whatever the fusion decides: a source, a GEMM or template output, or a reshape/extract of one
 * (those become views of its buffer)? */
static bool stored_anyway(const Fusion *f, const Node *x) {
    while (x->op == OP_RESHAPE || x->op == OP_EXTRACT) x = fus_src(f, x, 0);
    return (op_class(x->op) == K_SOURCE && x->op != OP_CONST) || !fusable(x->op);
}

/* A column slice of a stored [.., W] value that only GEMMs read (the mixer's dt rows of x_proj's output, [.., 80] ->
 * [.., 48], read by dt_proj and by its weight gradient through a reshape) is their operand in place, with row
 * stride W: no kernel copies it out. The GEMM must run unbatched (cuBLASLt's layout is then rows, columns and a
 * leading dimension), and 16-byte alignment is kept (first column and W multiples of 8). */
static bool col_operand_ok(const Fusion *f, const Node *m) {
    Shape as = fus_src(f, m, 0)->shape, bs = fus_src(f, m, 1)->shape;
    as.ndim -= 2; bs.ndim -= 2;
    return shape_numel(bs) == 1 && (shape_numel(as) == 1 || !m->i[0]);
}

static bool col_readers_ok(Ctx *c, const Node *x) {
    const Fusion *f = c->f;
    if (c->cons_start[x->id] == c->cons_start[x->id + 1]) return false;
    for (int j = c->cons_start[x->id]; j < c->cons_start[x->id + 1]; j++) {
        const Node *m = f->g->nodes[c->cons[j]];
        if (m->op == OP_RESHAPE) {
            if (f->kept[m->id] || m->shape.d[m->shape.ndim - 1] != x->shape.d[x->shape.ndim - 1] || !col_readers_ok(c, m))
                return false;
        } else if (m->op != OP_MATMUL || !col_operand_ok(f, m)) return false;
    }
    return true;
}

/* Marks x and the reshapes under it (already visited: views of x until now) as column views. */
static void mark_col(Ctx *c, Node *x) {
    Fusion *f = c->f;
    f->colview[x->id] = true;
    f->mat[x->id] = false;
    f->view[x->id] = NULL;
    for (int j = c->cons_start[x->id]; j < c->cons_start[x->id + 1]; j++) {
        Node *m = f->g->nodes[c->cons[j]];
        if (m->op == OP_RESHAPE) mark_col(c, m);
    }
}

static bool col_view(Ctx *c, Node *n) {
    Fusion *f = c->f;
    if (n->op != OP_SLICE || f->kept[n->id] || n->i[0] != n->shape.ndim - 1 || n->dtype != DT_F32) return false;
    const Node *src = fus_src(f, n, 0);
    if (n->i[1] % 8 || src->shape.d[src->shape.ndim - 1] % 8 || !stored_anyway(f, src) || src->op == OP_RESHAPE ||
        src->op == OP_EXTRACT || src->op == OP_CONST || !col_readers_ok(c, n))
        return false;
    mark_col(c, n);
    return true;
}

/* May n be computed by index math in any kernel that reads it: pointwise or movement (no reduction, no drop
 * mask, no dynamic gather), not a template's row map? */
static bool cheap_op(const Fusion *f, const Node *n) {
    if (!fusable(n->op) || is_reduce(n->op) || n->op == OP_GATHER_DYN || f->rowmap[n->id]) return false;
    return is_pointwise(n->op) || op_class(n->op) == K_MOVE;
}

/* Does some reader of n need it as a buffer (a GEMM, a template, a view)? */
static bool read_as_buffer(const Ctx *c, const Node *n) {
    for (int j = c->cons_start[n->id]; j < c->cons_start[n->id + 1]; j++) {
        const Node *m = c->f->g->nodes[c->cons[j]];
        for (int s = 0; s < m->nsrc; s++)
            if (fus_src(c->f, m, s) == n && needs_buffer(c->f, m, s)) return true;
    }
    return false;
}

/* Full-size buffers (n's element count or more) a recomputation of n reads, or -1 when n may not be recomputed:
 * n must be cheap (not a reshape or extract: those are free views), kept by nobody, read through no buffer, and
 * built from stored values within DUP_DEPTH ops. */
static int recompute_reads(Ctx *c, const Node *n, int depth) {
    Fusion *f = c->f;
    if (depth > DUP_DEPTH || f->kept[n->id] || !cheap_op(f, n) || is_view(f, n)) return -1;
    if (n->op == OP_RESHAPE || n->op == OP_EXTRACT || read_as_buffer(c, n)) return -1;
    int reads = 0;
    for (int s = 0; s < n->nsrc; s++) {
        const Node *x = fus_src(f, n, s);
        if (x->op == OP_CONST) continue;
        if (stored_anyway(f, x)) {
            reads += shape_numel(x->shape) >= shape_numel(n->shape);
            continue;
        }
        int r = recompute_reads(c, x, depth + 1);
        if (r < 0) return -1;
        reads += r;
    }
    return reads;
}

/* Adds cluster k to the clusters computing dup node id. */
static void dset_add(Ctx *c, int id, int k) {
    for (int q = 0; q < c->ndset[id]; q++) if (c->dset[id][q] == k) return;
    c->dset[id] = xrealloc(c->dset[id], sizeof(int) * (size_t)(c->ndset[id] + 1));
    c->dset[id][c->ndset[id]++] = k;
}

/* Is every reader of n a generated element/row kernel (or a dup node, computed in such kernels)? */
static bool generated_readers(Ctx *c, const Node *n) {
    for (int j = c->cons_start[n->id]; j < c->cons_start[n->id + 1]; j++) {
        const int m = c->cons[j], k = c->cluster[m];
        if (c->f->dup[m]) continue;
        if (k < 0 || (c->cl[k].kind != GK_EW && c->cl[k].kind != GK_ROW) || !fusable(c->cl[k].root->op)) return false;
    }
    return true;
}

/* Makes n dup, computed in `also` (when >= 0) and wherever its readers are. */
static void make_dup(Ctx *c, const Node *n, int also) {
    c->f->dup[n->id] = true;
    if (also >= 0) dset_add(c, n->id, also);
    for (int j = c->cons_start[n->id]; j < c->cons_start[n->id + 1]; j++) {
        const int m = c->cons[j];
        if (!c->f->dup[m]) { dset_add(c, n->id, c->cluster[m]); continue; }
        for (int q = 0; q < c->ndset[m]; q++) dset_add(c, n->id, c->dset[m][q]);
    }
}

/* Does n, or the unstored chain under it, gather, concatenate, pad or slice? */
static bool moves(const Fusion *f, const Node *n, int depth) {
    if (n->op == OP_GATHER || n->op == OP_CONCAT || n->op == OP_PAD || n->op == OP_SLICE) return true;
    for (int s = 0; s < n->nsrc && depth <= DUP_DEPTH; s++) {
        const Node *x = fus_src(f, n, s);
        if (!f->mat[x->id] && op_class(x->op) != K_SOURCE && moves(f, x, depth + 1)) return true;
    }
    return false;
}

/* Is n (or a dup node computed from it) read by a row kernel, which evaluates it once per phase? */
static bool row_reader(Ctx *c, const Node *n) {
    for (int j = c->cons_start[n->id]; j < c->cons_start[n->id + 1]; j++) {
        const int m = c->cons[j], k = c->cluster[m];
        if (c->f->dup[m] ? row_reader(c, c->f->g->nodes[m]) : k >= 0 && c->cl[k].kind == GK_ROW) return true;
    }
    return false;
}

/* Recompute n in every kernel that reads it? Only generated element/row kernels read it, and recomputing reads
 * at most one full-size buffer: never more than reading n back, and n's store is saved. */
static bool dup_node(Ctx *c, Node *n) {
    int r = recompute_reads(c, n, 0);
    if (r < 0 || r > 1 || !generated_readers(c, n)) return false;
    make_dup(c, n, -1);
    return true;
}

/* ---------------------------------------------------------------- GEMM epilogues */
/* A GEMM's product scaled by a constant (x * s, or x / 2^k: exact) or summed with a value stored anyway of its shape
 * (x + y) that would be a kernel of its own is applied by the GEMM, as cuBLASLt's alpha and beta C: no kernel, and
 * the product is never stored. The scale or sum roots the GEMM's group; the MATMUL is a member. The product must be
 * f32 and read by that node alone. (The 4-direction mixer's output gradient / 4; SwiGLU's input gradient, the sum
 * of its two branches' products.) */
static bool const_scalar(const Node *x, double *v) {
    if (x->op != OP_CONST || shape_numel(x->shape) != 1) return false;
    *v = x->f[0];
    return true;
}

static bool epilogue_product(const Fusion *f, const Node *n, const Node *m) {
    return m->op == OP_MATMUL && !f->kept[m->id] && f->nuse[m->id] == 1 && m->dtype == DT_F32 &&
           shape_eq(m->shape, n->shape);
}

/* The MATMUL whose product n scales or sums (with alpha and the summed value), or NULL. */
static Node *epilogue_of(const Fusion *f, const Node *n, double *alpha, Node **acc) {
    *alpha = 1.0;
    *acc = NULL;
    if (n->dtype != DT_F32 || n->nsrc != 2) return NULL;
    Node *a = fus_src(f, n, 0), *b = fus_src(f, n, 1);
    double v;
    int e;
    if (n->op == OP_MUL) {
        if (const_scalar(b, &v) && epilogue_product(f, n, a)) { *alpha = v; return a; }
        if (const_scalar(a, &v) && epilogue_product(f, n, b)) { *alpha = v; return b; }
    } else if (n->op == OP_DIV) {
        if (!const_scalar(b, &v) || v == 0 || fabs(frexp(v, &e)) != 0.5 || !epilogue_product(f, n, a)) return NULL;
        *alpha = 1.0 / v;
        return a;
    } else if (n->op == OP_ADD) {
        for (int s = 1; s >= 0; s--) {
            Node *m = s ? b : a, *y = s ? a : b;
            if (m == y || !epilogue_product(f, n, m) || y->op == OP_CONST || y->dtype != DT_F32 ||
                !shape_eq(y->shape, n->shape) || !stored_anyway(f, y))
                continue;
            *acc = y;
            return m;
        }
    }
    return NULL;
}

GemmEpilogue group_gemm(const Fusion *f, const Group *gr) {
    GemmEpilogue e = {gr->root, 1.0, NULL};
    if (gr->root->op != OP_MATMUL) e.matmul = epilogue_of(f, gr->root, &e.alpha, &e.acc);
    ASSERT(gr->kind == GK_GEMM && e.matmul, "group %d is not a GEMM", gr->index);
    return e;
}

/* Makes n the root of its product's GEMM group when it can be that GEMM's epilogue. */
static bool gemm_epilogue(Ctx *c, Node *n) {
    double alpha;
    Node *acc, *m = epilogue_of(c->f, n, &alpha, &acc);
    if (!m || c->cluster[m->id] >= 0) return false;
    int k = new_cluster(c, n);
    c->cl[k].kind = GK_GEMM;
    c->cluster[m->id] = k;
    c->cl[k].nmembers++;
    c->f->epilogue[n->id] = true;
    return true;
}

/* ---------------------------------------------------------------- recomputed extra outputs */
/* After clustering, an extra output of a kernel (a value later kernels read, e.g. LayerNorm's x - mean and
 * x_hat, which the backward reads) may be recomputed by its readers from what the kernel stores anyway (x) plus
 * per-row values the row kernel can store at little cost (the mean: one float per row). */

/* A per-row value of row cluster k that k can store (evaluated in its final phase). */
static bool row_storable(Ctx *c, Node *n, int k) {
    if (c->cl[k].kind != GK_ROW || c->cluster[n->id] != k || n == c->cl[k].root) return false;
    if (!shape_eq(n->shape, reduced(c->cl[k].dom, c->cl[k].axis))) return false;
    c->gen++;
    return can_join(c, n, k, true);
}

/* Full-size buffers (at least `full` elements) that computing n outside cluster k reads, or -1 when it cannot:
 * the chain down to stored values must be cheap members of k (or dup nodes), per-row values k can store, or
 * constants. */
static int outside_reads(Ctx *c, Node *n, int k, int64_t full, int depth) {
    Fusion *f = c->f;
    if (n->op == OP_CONST) return 0;
    if (f->mat[n->id]) return shape_numel(n->shape) >= full;
    if (depth > DUP_DEPTH || (c->cluster[n->id] != k && !f->dup[n->id])) return -1;
    if (row_storable(c, n, k)) return 0;
    if (!cheap_op(f, n)) return -1;
    int reads = 0;
    for (int s = 0; s < n->nsrc; s++) {
        int r = outside_reads(c, fus_src(f, n, s), k, full, depth + 1);
        if (r < 0) return -1;
        reads += r;
    }
    return reads;
}

/* Can n, a value of cluster k, be computed outside k reading at most one full-size buffer (outside_reads)? */
static bool recomputable_elsewhere(Ctx *c, const Node *n, int k) {
    int reads = 0;
    for (int s = 0; s < n->nsrc && reads >= 0; s++) {
        const int r = outside_reads(c, fus_src(c->f, n, s), k, shape_numel(n->shape), 1);
        reads = r < 0 ? -1 : reads + r;
    }
    return reads >= 0 && reads <= 1;
}

/* The unstored chain under dup node n: dup too (computed in k and n's clusters); per-row values get stored. */
static void dup_chain(Ctx *c, const Node *n, int k) {
    Fusion *f = c->f;
    for (int s = 0; s < n->nsrc; s++) {
        Node *x = fus_src(f, n, s);
        if (x->op == OP_CONST || f->mat[x->id]) continue;
        if (!f->dup[x->id] && row_storable(c, x, k)) { f->mat[x->id] = true; continue; }
        f->dup[x->id] = true;
        dset_add(c, x->id, k);
        for (int q = 0; q < c->ndset[n->id]; q++) dset_add(c, x->id, c->dset[n->id][q]);
        dup_chain(c, x, k);
    }
}

static void recompute_outputs(Ctx *c) {
    Fusion *f = c->f;
    for (int id = f->g->nnodes - 1; id >= 0; id--) {
        Node *n = f->g->nodes[id];
        const int k = c->cluster[id];
        if (k < 0 || !f->mat[id] || f->kept[id] || f->dup[id] || c->cl[k].root == n || !cheap_op(f, n)) continue;
        /* full-size values only: a stored per-row value (1/std) is cheaper to read than to recompute per element */
        if (shape_numel(n->shape) != shape_numel(c->cl[k].dom)) continue;
        if (f->view[id] || !generated_readers(c, n) || read_as_buffer(c, n)) continue;
        /* a row kernel evaluates its members once per phase: recomputing the token embedding (a gather and a concat
         * of the class token, from the patch GEMM) in the next LayerNorm made it 3x slower than reading it back */
        if (moves(f, n, 0) && row_reader(c, n)) continue;
        if (!recomputable_elsewhere(c, n, k)) continue;
        f->mat[id] = false;
        make_dup(c, n, k);
        dup_chain(c, n, k);
    }
}

/* ---------------------------------------------------------------- recomputed roots */
/* A generated kernel's root that GEMMs read and generated kernels read too (the decoder attention's softmax P: the
 * P V and dV GEMMs, and the softmax backward) is recomputed by those generated readers, as recompute_outputs does
 * for extra outputs, from what they can read at no more cost: under bf16 only P's bf16 copy for the GEMMs is stored
 * then (program_bf16.c shadow_only), not its f32 value, and the softmax backward reads the scores it reads anyway
 * instead of P (ARM-B pretraining at batch 128: 134 MB written and 134 MB read less in each decoder block). */

/* Is cluster k a GEMM (a MATMUL, or the scale or sum it applies as its epilogue)? */
static bool gemm_cluster(const Ctx *c, int k) { return c->cl[k].kind == GK_GEMM || op_class(c->cl[k].root->op) == K_GEMM; }

/* Is every reader of view v a GEMM, directly or through further views? */
static bool view_for_gemms(const Ctx *c, const Node *v) {
    for (int j = c->cons_start[v->id]; j < c->cons_start[v->id + 1]; j++) {
        const Node *r = c->f->g->nodes[c->cons[j]];
        const int k = c->cluster[r->id];
        if (is_view(c->f, r) ? !view_for_gemms(c, r) : k < 0 || !gemm_cluster(c, k)) return false;
    }
    return true;
}

/* Are n's readers GEMMs (at least one, maybe through views such as a reshape) and generated kernels that may
 * compute it (at least one), nothing else? */
static bool gemm_and_generated_readers(Ctx *c, const Node *n) {
    int gemms = 0, generated = 0;
    for (int j = c->cons_start[n->id]; j < c->cons_start[n->id + 1]; j++) {
        const int m = c->cons[j], k = c->cluster[m];
        const Node *r = c->f->g->nodes[m];
        if (is_view(c->f, r) && view_for_gemms(c, r)) { gemms++; continue; }
        if (c->f->dup[m] || k < 0) return false;
        if (gemm_cluster(c, k)) { gemms++; continue; }
        if ((c->cl[k].kind != GK_EW && c->cl[k].kind != GK_ROW) || !fusable(c->cl[k].root->op)) return false;
        for (int s = 0; s < r->nsrc; s++) if (fus_src(c->f, r, s) == n && needs_buffer(c->f, r, s)) return false;
        generated++;
    }
    return gemms > 0 && generated > 0;
}

static void recompute_roots(Ctx *c) {
    Fusion *f = c->f;
    for (int id = f->g->nnodes - 1; id >= 0; id--) {
        Node *n = f->g->nodes[id];
        const int k = c->cluster[id];
        if (k < 0 || c->cl[k].root != n || (c->cl[k].kind != GK_EW && c->cl[k].kind != GK_ROW)) continue;
        if (!f->mat[id] || f->kept[id] || f->dup[id] || f->view[id] || !cheap_op(f, n)) continue;
        if (shape_numel(n->shape) != shape_numel(c->cl[k].dom) || !gemm_and_generated_readers(c, n)) continue;
        if (moves(f, n, 0) && row_reader(c, n)) continue;   /* (as recompute_outputs) */
        if (!recomputable_elsewhere(c, n, k)) continue;
        f->recompute[id] = true;
        for (int j = c->cons_start[id]; j < c->cons_start[id + 1]; j++) {
            const int m = c->cons[j];
            if (!is_view(f, f->g->nodes[m]) && !gemm_cluster(c, c->cluster[m])) dset_add(c, id, c->cluster[m]);
        }
        dup_chain(c, n, k);
    }
}

static void assign_clusters(Ctx *c) {
    Fusion *f = c->f;
    const Graph *g = f->g;
    for (int id = g->nnodes - 1; id >= 0; id--) {
        Node *n = g->nodes[id];
        if (!f->live[id] || f->repl[id] != n) continue;
        OpClass oc = op_class(n->op);
        if (oc == K_SOURCE && n->op != OP_CONST) { f->mat[id] = true; continue; }
        if (!fusable(n->op) && n->op != OP_CONST) {
            if (c->cluster[id] >= 0) continue;   /* a product under its GEMM epilogue (gemm_epilogue) */
            new_cluster(c, n);
            if (c->silu_out[id]) {
                c->cluster[c->silu_out[id]->id] = c->ncl - 1;
                c->cl[c->ncl - 1].nmembers++;
            }
            continue;
        }
        if (conv_silu(c, n) || conv_silu_out(c, n) || row_map(c, n) || col_view(c, n)) continue;
        if (n->op == OP_CONST) {
            /* constants are inlined wherever they are read, unless kept or a consumer needs a buffer */
            bool buffer = f->kept[id];
            for (int j = c->cons_start[id]; j < c->cons_start[id + 1]; j++) {
                const Node *m = g->nodes[c->cons[j]];
                for (int s = 0; s < m->nsrc; s++) buffer |= fus_src(f, m, s) == n && needs_buffer(f, m, s);
            }
            if (buffer) new_cluster(c, n);
            continue;
        }
        int paths = 0, k = f->kept[id] ? -1 : consumer_cluster(c, n, &paths);
        bool multi = false;
        if (k < 0 || paths > MAX_PATHS || !can_join(c, n, k, false)) {
            if (dup_node(c, n) || gemm_epilogue(c, n)) continue;
            k = first_cluster(c, n, &paths);
            multi = k >= 0 && paths <= MAX_PATHS && can_join(c, n, k, true);
            if (!multi && (n->op == OP_RESHAPE || n->op == OP_EXTRACT) && !f->kept[id]) { make_view(f, n); continue; }
            if (!multi) { new_cluster(c, n); continue; }
        }
        c->cluster[id] = k;
        c->paths[id] = paths;
        c->cl[k].nmembers++;
        f->mat[id] = multi;
    }
}

static void push_node(Arena *a, Node ***arr, int *n, int *cap, Node *x) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 8;
        Node **t = arena_alloc(a, sizeof(Node *) * (size_t)nc);
        if (*n) memcpy(t, *arr, sizeof(Node *) * (size_t)*n);
        *arr = t;
        *cap = nc;
    }
    (*arr)[(*n)++] = x;
}

static GroupKind kind_of_root(const Cluster *cl) {
    switch (op_class(cl->root->op)) {
    case K_GEMM: return GK_GEMM;
    case K_OPAQUE: return GK_OPAQUE;
    case K_SINK: return GK_ASSIGN;
    case K_RANDOM: return cl->root->op == OP_RANDPERM ? GK_RANDPERM : cl->kind;
    case K_SOURCE: case K_UNARY: case K_BINARY: case K_TERNARY: case K_REDUCE: case K_MOVE: return cl->kind;
    }
    return cl->kind;
}

/* Does cluster q recompute the stored root n of another (Fusion.recompute)? */
static bool recomputed_in(const Ctx *c, const Node *n, int q) {
    if (!c->f->recompute[n->id]) return false;
    for (int i = 0; i < c->ndset[n->id]; i++) if (c->dset[n->id][i] == q) return true;
    return false;
}

/* Turns clusters into groups: members in topological order, materialized inputs in first-use order. */
static void make_groups(Ctx *c) {
    Fusion *f = c->f;
    const Graph *g = f->g;
    f->ngroups = c->ncl;
    f->groups = arena_alloc(f->arena, sizeof(Group) * (size_t)(c->ncl ? c->ncl : 1));
    int *capm = xcalloc((size_t)c->ncl + 1, sizeof(int)), *capi = xcalloc((size_t)c->ncl + 1, sizeof(int));
    int *capo = xcalloc((size_t)c->ncl + 1, sizeof(int));
    int *seen = xcalloc((size_t)g->nnodes, sizeof(int));   /* group index + 1 that listed it as an input */
    /* clusters were created last node first: group order = reverse creation = topological order of roots */
    for (int k = 0; k < c->ncl; k++) {
        Cluster *cl = &c->cl[c->ncl - 1 - k];
        Group *gr = &f->groups[k];
        gr->kind = kind_of_root(cl);
        gr->root = cl->root;
        gr->dom = cl->dom;
        gr->axis = cl->axis;
        gr->index = k;
    }
    for (int id = 0; id < g->nnodes; id++) {
        /* a dup node is a member of every group that computes it; a recomputed root (Fusion.recompute) of its own
         * group, which stores it, and of its readers' */
        const bool shared = f->dup[id] || f->recompute[id];
        for (int i = f->dup[id] ? 0 : -1; i < (shared ? c->ndset[id] : 0); i++) {
            const int q = i < 0 ? c->cluster[id] : c->dset[id][i];
            if (q < 0) continue;
            int k = c->ncl - 1 - q;
            Group *gr = &f->groups[k];
            Node *n = g->nodes[id];
            if (i < 0) f->group_of[id] = k;
            push_node(f->arena, &gr->members, &gr->nmembers, &capm[k], n);
            if (f->mat[id] && i < 0) push_node(f->arena, &gr->outs, &gr->nouts, &capo[k], n);
            for (int s = 0; s < n->nsrc; s++) {
                Node *src = fus_src(f, n, s);
                /* a template reads the buffer under a row map, a GEMM the one under a column view */
                while (f->rowmap[src->id] || f->colview[src->id]) src = fus_src(f, src, 0);
                if (!f->mat[src->id] || c->cluster[src->id] == q || seen[src->id] == k + 1 || recomputed_in(c, src, q))
                    continue;
                seen[src->id] = k + 1;
                push_node(f->arena, &gr->ins, &gr->nins, &capi[k], src);
            }
        }
    }
    free(capm); free(capi); free(capo); free(seen);
}

void pass_fuse(Fusion *f) {
    Ctx c = {.f = f};
    int nn = f->g->nnodes;
    c.cluster = xcalloc((size_t)nn, sizeof(int));
    c.paths = xcalloc((size_t)nn, sizeof(int));
    c.memo = xcalloc((size_t)nn, sizeof(int));
    c.memo2 = xcalloc((size_t)nn, sizeof(int));
    c.silu_out = xcalloc((size_t)nn, sizeof(Node *));
    c.dset = xcalloc((size_t)nn, sizeof(int *));
    c.ndset = xcalloc((size_t)nn, sizeof(int));
    for (int k = 0; k < nn; k++) c.cluster[k] = -1;
    build_consumers(&c);
    assign_clusters(&c);
    recompute_outputs(&c);
    recompute_roots(&c);
    make_groups(&c);
    pass_merge_siblings(f);
    pass_merge_column_sums(f);
    for (int k = 0; k < nn; k++) free(c.dset[k]);
    free(c.dset); free(c.ndset);
    free(c.cons_start); free(c.cons); free(c.cluster); free(c.paths); free(c.memo); free(c.memo2); free(c.cl);
    free(c.silu_out);
}
