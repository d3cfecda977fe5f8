/* cpu_exec.c — the cpu backend: an unfused interpreter of a verified Graph, the oracle for every GPU kernel
 * and gradient. Owns storage of sources and kept nodes; frees other intermediates after their last use.
 * Kernels live in cpu_ops.inc, compiled twice (fp32 and the fp64 gradient-check variant); OpenMP parallelises
 * the outer loops, OpenBLAS does the GEMMs. bf16 nodes are held as fp32; only CAST to bf16 rounds. */
#include "cpu_vexp.h"
#include "exec.h"
#include "rng.h"
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define SCAN_MAX_N 256

typedef struct Cpu {
    Exec base;
    bool f64;
    size_t esz;           /* bytes per stored element: 4 or 8 */
    void **buf;           /* per node id; NULL when not materialised */
    bool *needed, *kept;  /* needed: on a path to a kept node, the loss or an ASSIGN */
    int32_t *last;        /* id of the last needed consumer; INT32_MAX: lives to the end of the step */
    size_t bytes, peak;   /* node storage now and at most (cpu_exec_peak_bytes) */
} Cpu;

/* ---------------------------------------------------------------- shared helpers */
typedef struct Split3 { int64_t outer, n, inner; } Split3;

static Split3 split3(Shape s, int ax) {
    Split3 r = {1, s.d[ax], 1};
    for (int k = 0; k < ax; k++) r.outer *= s.d[k];
    for (int k = ax + 1; k < s.ndim; k++) r.inner *= s.d[k];
    return r;
}

/* Element strides of `in` seen through the broadcast output shape `out` (0 on broadcast axes). */
static void bcast_strides(Shape in, Shape out, int64_t *st) {
    int off = out.ndim - in.ndim;
    int64_t acc = 1;
    for (int k = out.ndim - 1; k >= 0; k--) {
        int ki = k - off;
        st[k] = ki < 0 || in.d[ki] == 1 ? 0 : acc;
        if (ki >= 0) acc *= in.d[ki];
    }
}

/* Offset of the first element of output row r (rows = all axes but the last). */
static inline int64_t row_offset(Shape os, const int64_t *st, int64_t r) {
    int64_t off = 0;
    for (int k = os.ndim - 2; k >= 0; k--) { off += (r % os.d[k]) * st[k]; r /= os.d[k]; }
    return off;
}

/* Round to the nearest bf16 (ties to even), returned as float. */
static float bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    else if (u & 0xffffu) u |= 0x00400000u;       /* keep NaN a NaN */
    memcpy(&f, &u, 4);
    return f;
}

/* ---------------------------------------------------------------- the two precisions */
/* RXPV(x, y, n): exp of an array at the storage precision (vectorised for f32, cpu_vexp.h). */
static inline void vexp_f64(const double *x, double *y, int n) { for (int i = 0; i < n; i++) y[i] = exp(x[i]); }
#define REAL float
#define F(name) name##_f32
#define CBLAS_GEMM cblas_sgemm
#define RXP expf
#define RXPV vmc_vexpf
#define RLOG1P log1pf
#include "cpu_ops.inc"
#undef REAL
#undef F
#undef CBLAS_GEMM
#undef RXP
#undef RXPV
#undef RLOG1P
#define REAL double
#define F(name) name##_f64
#define CBLAS_GEMM cblas_dgemm
#define RXP exp
#define RXPV vexp_f64
#define RLOG1P log1p
#include "cpu_ops.inc"
#undef REAL
#undef F
#undef CBLAS_GEMM
#undef RXP
#undef RXPV
#undef RLOG1P

/* ---------------------------------------------------------------- storage and liveness */
static bool is_storage(const Node *n) { return n->op == OP_PARAM || n->op == OP_INPUT || n->op == OP_STATE; }

static size_t node_bytes(const Cpu *c, const Node *n) { return (size_t)shape_numel(n->shape) * c->esz; }

static void *node_alloc(Cpu *c, const Node *n) {
    c->bytes += node_bytes(c, n);
    if (c->bytes > c->peak) c->peak = c->bytes;
    size_t len = (size_t)(shape_numel(n->shape) ? shape_numel(n->shape) : 1);
    return is_storage(n) ? xcalloc(len, c->esz) : xmalloc(len * c->esz);   /* kernels write every element */
}

static void plan(Cpu *c, Node *const *keep, int nkeep) {
    const Graph *g = c->base.g;
    for (int k = 0; k < nkeep; k++) c->kept[keep[k]->id] = c->needed[keep[k]->id] = true;
    if (g->loss) c->needed[g->loss->id] = true;
    for (int k = g->nnodes - 1; k >= 0; k--) {
        const Node *n = g->nodes[k];
        if (n->op == OP_ASSIGN) c->needed[k] = true;
        if (!c->needed[k]) continue;
        for (int j = 0; j < n->nsrc; j++) {
            c->needed[n->src[j]->id] = true;
            int32_t use = n->op == OP_ASSIGN ? INT32_MAX : (int32_t)k;
            if (use > c->last[n->src[j]->id]) c->last[n->src[j]->id] = use;
        }
    }
    for (int k = 0; k < g->nnodes; k++)
        if (is_storage(g->nodes[k])) c->buf[k] = node_alloc(c, g->nodes[k]);
}

static void release(Cpu *c, const Node *n) {
    if (is_storage(n) || c->kept[n->id] || !c->buf[n->id]) return;
    c->bytes -= node_bytes(c, n);
    free(c->buf[n->id]);
    c->buf[n->id] = NULL;
}

/* ---------------------------------------------------------------- the Exec interface */
static void cpu_run(Exec *e, const StepInfo *s) {
    Cpu *c = (Cpu *)e;
    const Graph *g = e->g;
    for (int k = 0; k < g->nnodes; k++) {
        const Node *n = g->nodes[k];
        if (!c->needed[k] || is_storage(n) || n->op == OP_ASSIGN) continue;
        if (!c->buf[k]) c->buf[k] = node_alloc(c, n);
        if (c->f64) exec_node_f64(c, n, s); else exec_node_f32(c, n, s);
        for (int j = 0; j < n->nsrc; j++)
            if (c->last[n->src[j]->id] == k) release(c, n->src[j]);
        if (c->last[k] < 0) release(c, n);          /* needed only as a kept value or root with no consumer */
    }
    for (int k = 0; k < g->nnodes; k++) {          /* ASSIGN: new values replace old ones after the whole step */
        const Node *n = g->nodes[k];
        if (n->op != OP_ASSIGN) continue;
        memcpy(c->buf[n->src[0]->id], c->buf[n->src[1]->id], c->esz * (size_t)shape_numel(n->shape));
    }
    for (int k = 0; k < g->nnodes; k++)
        if (c->buf[k] && c->last[k] == INT32_MAX) release(c, g->nodes[k]);
}

static size_t host_size(const Cpu *c, DType t) {
    if (t == DT_I32) return 4;
    if (c->f64) return 8;
    return (size_t)dtype_size(t);
}

static void cpu_write(Exec *e, const Node *n, const void *host, size_t bytes) {
    Cpu *c = (Cpu *)e;
    int64_t len = shape_numel(n->shape);
    ASSERT(is_storage(n), "write to %s node %u", op_name(n->op), n->id);
    ASSERT(bytes == host_size(c, n->dtype) * (size_t)len, "write of %zu bytes to '%s'", bytes, n->name);
    for (int64_t i = 0; i < len; i++) {
        double v;
        if (n->dtype == DT_I32) v = ((const int32_t *)host)[i];
        else if (c->f64) v = ((const double *)host)[i];
        else if (n->dtype == DT_BF16) v = bf16_to_f32(((const uint16_t *)host)[i]);
        else v = ((const float *)host)[i];
        if (c->f64) ((double *)c->buf[n->id])[i] = v; else ((float *)c->buf[n->id])[i] = (float)v;
    }
}

static void cpu_read(Exec *e, const Node *n, void *host, size_t bytes) {
    Cpu *c = (Cpu *)e;
    int64_t len = shape_numel(n->shape);
    ASSERT(c->buf[n->id], "read of node %u (%s), which is neither storage nor kept", n->id, op_name(n->op));
    ASSERT(bytes == host_size(c, n->dtype) * (size_t)len, "read of %zu bytes from node %u", bytes, n->id);
    for (int64_t i = 0; i < len; i++) {
        double v = c->f64 ? ((double *)c->buf[n->id])[i] : ((float *)c->buf[n->id])[i];
        if (n->dtype == DT_I32) ((int32_t *)host)[i] = (int32_t)v;
        else if (c->f64) ((double *)host)[i] = v;
        else if (n->dtype == DT_BF16) { float f = bf16_round((float)v); uint32_t u; memcpy(&u, &f, 4); ((uint16_t *)host)[i] = (uint16_t)(u >> 16); }
        else ((float *)host)[i] = (float)v;
    }
}

static void cpu_free(Exec *e) {
    Cpu *c = (Cpu *)e;
    for (int k = 0; k < e->g->nnodes; k++) free(c->buf[k]);
    free(c->buf); free(c->needed); free(c->kept); free(c->last);
    free(c);
}

/* A step here is done when run returns: the read happens at once. */
static int cpu_read_start(Exec *e, const Node *n, void *host, size_t bytes) {
    cpu_read(e, n, host, bytes);
    return 0;
}
static void cpu_read_finish(Exec *e, int ticket) { (void)e; (void)ticket; }

static void cpu_write_release(Exec *e) { (void)e; }   /* cpu_write copied already */

static const ExecVT CPU_VT = {"cpu", cpu_run, cpu_write, cpu_read, cpu_read_start, cpu_read_finish,
                              cpu_write, cpu_write_release, cpu_free};

static Exec *cpu_new(const Graph *g, Node *const *keep, int nkeep, bool f64) {
    char err[256];
    ASSERT(graph_verify(g, err, sizeof err), "cpu backend given an invalid graph: %s", err);
    openblas_set_num_threads(1);      /* threads come from OpenMP (gemm in cpu_ops.inc) */
    Cpu *c = xcalloc(1, sizeof *c);
    c->base.vt = &CPU_VT;
    c->base.g = g;
    c->f64 = f64;
    c->esz = f64 ? 8 : 4;
    int nn = g->nnodes ? g->nnodes : 1;
    c->buf = xcalloc((size_t)nn, sizeof(void *));
    c->needed = xcalloc((size_t)nn, sizeof(bool));
    c->kept = xcalloc((size_t)nn, sizeof(bool));
    c->last = xmalloc(sizeof(int32_t) * (size_t)nn);
    for (int k = 0; k < nn; k++) c->last[k] = -1;
    for (int k = 0; k < g->nnodes; k++)
        if (g->nodes[k]->op == OP_SCAN || g->nodes[k]->op == OP_SCAN_BWD)
            ASSERT(g->nodes[k]->src[2]->shape.d[1] <= SCAN_MAX_N, "scan d_state above %d", SCAN_MAX_N);
    plan(c, keep, nkeep);
    return &c->base;
}

Exec *cpu_exec_new(const Graph *g, Node *const *keep, int nkeep) { return cpu_new(g, keep, nkeep, false); }
size_t cpu_exec_peak_bytes(const Exec *e) { return ((const Cpu *)e)->peak; }
Exec *cpu_exec_new_f64(const Graph *g, Node *const *keep, int nkeep) { return cpu_new(g, keep, nkeep, true); }
