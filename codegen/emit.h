/* emit.h — what the generated-kernel emitter's files share (codegen/emit_*.c; codegen.h is the interface): the
 * emitter state of one kernel (Em), index vectors (Ix), and the helpers each kernel kind builds on.
 *   emit_expr.c  values by recursive index math from a group's root, CSE per scope, loads and movement ops
 *   emit_ew.c    elementwise (and scatter) kernels: 4-wide lanes, column sums taken alongside
 *   emit_row.c   row kernels: a block, warp or split per row, or columns; one phase per dependent reduction
 *   emit_cuda.c  a kernel's header comment and parameters, the batched entry, the text's final clean-up, entry points */
#pragma once
#include "codegen.h"
#include "packed_copy.h"
#include <stdio.h>

enum { EW_THREADS = 256, MAX_REDS = 16, IXLEN = 64, COLUMN_BLOCKS = 1056 };
/* Kernels are emitted with this placeholder for their name, so that identical kernels (every layer has the same
 * shapes) are recognised by their text and compiled once; it is replaced by the real name at the end. */
#define KNAME "KNAME_"

typedef struct Ix { int n; char s[MAX_DIMS][IXLEN]; } Ix;
typedef struct Memo { uint32_t id; char *key; char var[IXLEN]; int depth; } Memo;

enum { MAX_LANE_VARS = 512, MAX_LANE_VECS = 32 };

typedef struct Em {
    const Fusion *f;
    const Group *gr;
    FILE *o, *glob, *head;    /* kernel body; file-scope tables emitted before the kernel; header comment */
    int ind, depth, nvar;
    Memo *memo; int nmemo, capmemo;
    bool final;               /* outputs are stored in this phase */
    const char *jvar;         /* row kernels, final phase: the loop variable along the axis */
    Node *reds[MAX_REDS]; int nreds, red_done;
    bool *csum_early;         /* row kernels, by column sum: its terms read no row reduction (added in phase 0) */
    PtrVec tables;            /* nodes whose index table is already emitted */
    const Ix *root_ix;        /* GK_EW, GK_SCATTER: the coordinates of e (a full-shape access there reads [e]) */
    Shape alias_shape[4];     /* other shapes' coordinates of element e (a reshape of the domain: unflat of "e") */
    Ix alias_ix[4];
    int nalias;
    const char *vbase;        /* vec4 lanes: the variable holding the flat index of element k = 0 (e = vbase + k) */
    char vbase_name[IXLEN];   /* (its storage: the caller's string may not outlive em_lanes_open) */
    bool vec4;                /* GK_EW: 4 consecutive elements per thread; accesses at e use 16-byte loads/stores */
    bool *vload, *vstore;     /* vec4: by input / output, read or written at e (as L<p>[k] / S<p>[k]) */
    /* vec4 lanes: how each index variable varies over the 4 elements (lane_kind), and the 4-wide loads of inputs at
     * other lane-affine indices (a row gather, a pad or slice by multiples of 4), read at k = 0 into LV<j>[4] */
    int lanes_nvar;           /* variables numbered below this were defined before the lanes opened */
    struct { char name[IXLEN]; signed char kind; } lv[MAX_LANE_VARS];
    int nlv;
    int lvec_in[MAX_LANE_VECS], nlvec;   /* by LV array: the input it reads */
    int nonuniform;           /* inside a PAD/CONCAT branch whose condition differs between the 4 elements */
    int instances;            /* > 1: the kernel is a device function called per instance (codegen_group_batched) */
    unsigned threads;         /* the block size em_params() declared */
    const Node *own;          /* a scan's epilogue (codegen_scan_epilogue): the input read as its value `own` */
    bool prefetch;            /* ... its prefetch function: inputs asked of L2 (vmc_epi_prefetch), nothing stored */
} Em;

/* How an index varies over the vec4 lanes: the same for all 4, lane base + k (base a multiple of 4), or neither. */
enum { LANE_DEP, LANE_INV, LANE_AFF };

/* A vec4 body being written: its text is collected apart, then emitted inside the per-lane loop (emit_ew.c). */
typedef struct Lanes { FILE *outer; char *text; size_t len; } Lanes;

/* emit_expr.c */
const char *em_ctype(const Node *n);
void em_line(Em *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void em_lane_set(Em *e, const char *name, int kind);
void em_load4(Em *e, const char *prefix, const char *dst, bool bf16, const char *t, const char *at);
int em_param_of(const Em *e, const Node *n, bool out);
bool em_in_bf16(const Em *e, const Node *x);
bool em_is_member(const Em *e, const Node *n);
void em_flat(Em *e, Shape s, const Ix *ix, char *out);
Ix em_unflat(Em *e, Shape s, const char *fvar);
void em_scope_pop(Em *e);
const char *em_gather_table(Em *e, const Node *n);
const char *em_val(Em *e, const Node *n, const Ix *ix);
/* emit_cuda.c */
void em_header(Em *e, const char *name, const char *what);
void em_params(Em *e, const char *name, unsigned threads);
/* emit_ew.c */
long long em_csum_blocks(void);
bool em_ins_aligned(const Fusion *f, const Group *gr);
bool em_bufs_aligned(const Fusion *f, const Group *gr);
void em_lanes_open(Em *e, Lanes *l, const char *eb, Ix *ix);
void em_lanes_close(Em *e, Lanes *l);
void em_csum_add(Em *e, int s, const Ix *ix, const char *acc, bool assign);
void emit_ew(Em *e, const char *name, KernelSource *ks);
/* emit_row.c */
void emit_row(Em *e, const char *name, KernelSource *ks);
