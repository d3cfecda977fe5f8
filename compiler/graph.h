/* graph.h — the static tensor graph: nodes with op, dtype, shape, inputs, attributes and a source Loc.
 * Nodes are hash-consed (identical subexpressions are one node) except sources and random ops, which are
 * unique. Creation order is a topological order: a node's inputs always exist before it.
 * Builders check shapes; on a user-visible mismatch they return NULL and leave a message in g->err
 * (the DSL evaluator reports it at its Loc); internal callers (autodiff, passes) ASSERT on NULL. */
#pragma once
#include "arena.h"
#include "ops.h"
#include "source.h"
#include "util.h"
#include <stdint.h>
#include <stdio.h>

#define MAX_DIMS 6
#define MAX_SRC 12

typedef enum DType { DT_F32, DT_BF16, DT_I32 } DType;
const char *dtype_name(DType t);          /* "f32", "bf16", "i32" */
int dtype_size(DType t);

typedef struct Shape { int ndim; int64_t d[MAX_DIMS]; } Shape;
Shape   shape_make(int ndim, const int64_t *d);
Shape   shape_of(int ndim, ...);          /* shape_of(2, (int64_t)3, (int64_t)4) */
int64_t shape_numel(Shape s);
bool    shape_eq(Shape a, Shape b);
char   *shape_str(Shape s, char *buf, int n); /* "[2, 3, 4]" */

/* Initialisers of ARM_SPEC §1.8, §2.4, §3; args documented in init.c. */
typedef enum InitKind {
    INIT_ZEROS, INIT_ONES, INIT_FILL, INIT_UNIFORM, INIT_NORMAL, INIT_TRUNC_NORMAL, INIT_LECUN_NORMAL,
    INIT_XAVIER_UNIFORM, INIT_KAIMING_UNIFORM, INIT_TORCH_LINEAR, INIT_TORCH_CONV, INIT_DT_BIAS, INIT_S4D_REAL,
    INIT_SINCOS_2D, INIT_BLOCK_CAUSAL, INIT_COUNT_
} InitKind;
const char *init_name(InitKind k);

enum ParamTag { TAG_FROZEN = 1, TAG_BUFFER = 2, TAG_NODECAY = 4 };

/* ParamInfo.args per InitKind, as the DSL fills them (dsl/eval.c) and init.c reads them:
 *   FILL value | UNIFORM lo, hi | NORMAL mean, std | TRUNC_NORMAL std, lo, hi (mean 0, absolute cut)
 *   LECUN_NORMAL, XAVIER_UNIFORM (gain 1), TORCH_LINEAR, TORCH_CONV (= kaiming_uniform a=sqrt 5, scale 1): none
 *   KAIMING_UNIFORM a, scale | DT_BIAS dt_min, dt_max, floor | S4D_REAL none | SINCOS_2D gh, gw
 *   BLOCK_CAUSAL block (n is the parameter's [n, n] shape) | ZEROS, ONES none
 * Tags: frozen, buffer, nodecay bits; lr_layer(k) -> lr_layer = k (a sub's tags reach every parameter inside,
 * an inner explicit lr_layer wins), else -1. */
typedef struct ParamInfo {
    InitKind init;
    double args[4];     /* meaning per InitKind (init.c) */
    uint32_t tags;      /* ParamTag bits */
    int lr_layer;       /* layer-wise lr decay id, -1 when untagged */
    int index;          /* position in Graph.params (state-dict order) */
} ParamInfo;

enum NodeFlag { NF_LOSS = 1, NF_OUTPUT = 2, NF_TAP = 4, NF_GRAD = 8 };

typedef struct Node {
    uint32_t id;            /* index in Graph.nodes */
    OpKind op;
    DType dtype;
    Shape shape;
    int nsrc;
    struct Node *src[MAX_SRC];
    int64_t i[MAX_DIMS + 2];   /* integer attributes (axis, start, perm, trans flags, key, n) */
    double f[2];               /* float attributes (CONST value, drop prob) */
    const int32_t *idata;      /* GATHER/SCATTER index table or i32 TABLE data (numel entries) */
    const float *fdata;        /* f32 TABLE data */
    int64_t ndata;
    uint32_t flags;            /* NodeFlag */
    const char *name;          /* sources: state-dict / input name; others: optional label */
    ParamInfo *param;          /* PARAM only */
    Loc loc;
} Node;

typedef struct Named { const char *name; Node *node; } Named;

typedef struct Graph {
    Arena *arena;
    Node **nodes; int nnodes, cap;
    Node **hash; int hcap;          /* open addressing table for interning */
    PtrVec params;                  /* PARAM nodes in declaration (state-dict) order */
    PtrVec inputs, states;
    Node *loss;
    Named *named; int nnamed, named_cap;  /* taps and outputs, in order */
    char err[512];                  /* last builder error (user-visible text) */
} Graph;

Graph *graph_new(void);
void   graph_free(Graph *g);

/* --- sources --- */
Node *g_param(Graph *g, const char *name, Shape s, DType t, ParamInfo info, Loc loc);  /* NULL: duplicate name */
Node *g_input(Graph *g, const char *name, Shape s, DType t, Loc loc);
Node *g_state(Graph *g, const char *name, Shape s, DType t);
Node *g_const(Graph *g, double v, Shape s, DType t);
Node *g_scalar(Graph *g, double v);                           /* f32 [] */
Node *g_table_f32(Graph *g, Shape s, const float *data);      /* data copied */
Node *g_table_i32(Graph *g, Shape s, const int32_t *data);

/* --- elementwise --- */
Node *g_unary(Graph *g, OpKind op, Node *x, Loc loc);
Node *g_cast(Graph *g, Node *x, DType t, Loc loc);
Node *g_binary(Graph *g, OpKind op, Node *a, Node *b, Loc loc);       /* broadcasting; NULL on mismatch */
Node *g_where(Graph *g, Node *c, Node *a, Node *b, Loc loc);

/* --- reductions (axis may be negative) --- */
Node *g_reduce(Graph *g, OpKind op, Node *x, int axis, Loc loc);

/* --- movement --- */
Node *g_reshape(Graph *g, Node *x, Shape s, Loc loc);                 /* one -1 allowed */
Node *g_permute(Graph *g, Node *x, const int *perm, Loc loc);
Node *g_slice(Graph *g, Node *x, int axis, int64_t start, int64_t end, Loc loc);
Node *g_pad(Graph *g, Node *x, int axis, int64_t start, int64_t total, Loc loc);
Node *g_concat(Graph *g, Node **xs, int n, int axis, Loc loc);
Node *g_expand(Graph *g, Node *x, Shape s, Loc loc);
Node *g_gather(Graph *g, Node *x, int axis, const int32_t *idx, int64_t n, Loc loc);
Node *g_scatter_add(Graph *g, Node *x, int axis, const int32_t *idx, int64_t out_dim, Loc loc);
Node *g_gather_dyn(Graph *g, Node *x, int axis, Node *idx, Loc loc);
Node *g_scatter_add_dyn(Graph *g, Node *x, int axis, Node *idx, Loc loc);
Node *g_extract(Graph *g, Node *packed, int64_t offset, Shape s, Loc loc);

/* --- opaque --- */
Node *g_matmul(Graph *g, Node *a, Node *b, bool ta, bool tb, Loc loc);
Node *g_conv1d(Graph *g, Node *x, Node *w, Node *b, Loc loc);
Node *g_conv1d_bwd_x(Graph *g, Node *dy, Node *w, Loc loc);
Node *g_conv1d_bwd_w(Graph *g, Node *dy, Node *x, int64_t k, Loc loc);
/* All three gradients of conv1d(x, w, bias) in one packed f32 node [dx | dw | db] (read with g_extract). */
Node *g_conv1d_bwd(Graph *g, Node *dy, Node *x, Node *w, Loc loc);
/* The same packed gradient of silu(conv1d(x, w, b)) from the gradient of the SiLU's output, dy + dy2 (dy2 may be
 * NULL): one pass that recomputes the conv output instead of reading it back. */
Node *g_conv1d_silu_bwd(Graph *g, Node *dy, Node *dy2, Node *x, Node *w, Node *b, Loc loc);
/* The selective scan of in[0..nin): u, delta, A_log, Bm, Cm, D, delta_bias and, when nin is 8, the gate z
 * (y * silu(z)); with 7 the output is y itself, for mixers that gate once after merging directions. */
Node *g_scan(Graph *g, Node *const *in, int nin, Loc loc);
Node *g_scan_bwd(Graph *g, Node *const *in, int nin, Node *dy, Loc loc);
/* Multi-head attention softmax(q k^T * scale + mask) v: q [B, L, H*E], k, v [B, S, H*E], mask [L, S] (additive; no
 * gradient), head h on channels h*E .. h*E+E-1. Its backward: packed f32 [dq | dk | dv] (read with g_extract). */
Node *g_attention(Graph *g, Node *q, Node *k, Node *v, Node *mask, int64_t heads, double scale, Loc loc);
Node *g_attention_bwd(Graph *g, const Node *fwd, Node *dy, Loc loc);
/* Is this OP_SCAN or OP_SCAN_BWD gated (has z)? */
bool scan_gated(const Node *n);

/* --- randomness and the training step --- */
Node *g_drop_mask(Graph *g, Shape s, double p, uint64_t key, Loc loc);
Node *g_randperm(Graph *g, int64_t n, uint64_t key, Loc loc);
Node *g_assign(Graph *g, Node *target, Node *value);
/* Evaluation (torch's eval mode): every drop-path mask keeps all samples (p = 0; pass_simplify folds them away). */
void  graph_eval_mode(Graph *g);

/* --- outputs --- */
void  graph_set_loss(Graph *g, Node *loss);
void  graph_add_named(Graph *g, const char *name, Node *n, uint32_t flag);   /* NF_TAP or NF_OUTPUT */
Node *graph_find_named(const Graph *g, const char *name);
Node *graph_find_param(const Graph *g, const char *name);
/* The batch of the step's images (the input named "images"), 0 if it has none. */
int64_t graph_image_batch(const Graph *g);

/* --- checks and dumps --- */
bool  graph_verify(const Graph *g, char *err, int errlen);   /* internal consistency; false = vmc bug */
void  graph_dump_text(const Graph *g, FILE *out);
void  graph_dump_dot(const Graph *g, FILE *out);
int64_t graph_param_count(const Graph *g, bool trainable_only);
static inline bool param_trainable(const Node *p) { return !(p->param->tags & (TAG_FROZEN | TAG_BUFFER)); }

/* Shared by ops that broadcast: numpy rules; false if incompatible. */
bool shape_broadcast(Shape a, Shape b, Shape *out);
