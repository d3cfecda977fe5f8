/* pass.h — the passes that turn a differentiated Graph into a schedule the cuda backend can run:
 * simplify (dead nodes, trivial folding) -> fuse (groups = kernels) -> plan (order, liveness, buffer offsets).
 * The graph itself is never rewritten: passes record their results beside it in a Fusion (replacements,
 * groups, buffers), indexed by node id. Passes report no user errors (sema already ran); violations ASSERT. */
#pragma once
#include "graph.h"

/* What one group becomes at run time. */
typedef enum GroupKind {
    GK_EW,        /* generated kernel: one thread per element of the root's shape */
    GK_ROW,       /* generated kernel: one block per row of dom along axis; row reductions inside */
    GK_SCATTER,   /* generated kernel over the input domain, atomicAdd into the zeroed root */
    GK_GEMM,      /* cuBLASLt matmul */
    GK_OPAQUE,    /* hand-written template (conv1d, scan and their backwards) */
    GK_RANDPERM,  /* generated single-thread kernel: Fisher-Yates with the shared Philox stream */
    GK_ASSIGN,    /* end of step: copy the value buffer into the PARAM/STATE target */
} GroupKind;
const char *group_kind_name(GroupKind k);

typedef struct Group {
    GroupKind kind;
    int index;              /* position in the schedule (after pass_plan) */
    Node *root;             /* the node whose value this group writes (ASSIGN node for GK_ASSIGN) */
    Node **members;         /* nodes computed inside, topological order, root last */
    int nmembers;
    Node **ins;             /* materialized nodes read (buffers), first-use order */
    int nins;
    Node **outs;            /* members written to buffers: the root and extra outputs, topological order */
    int nouts;
    Shape dom;              /* GK_EW: root shape; GK_ROW: the row tensor; GK_SCATTER: the input shape */
    int axis;               /* GK_ROW: the reduced axis of dom */
    bool inplace;           /* GK_ASSIGN: the value's kernel writes straight into the target (no copy) */
    Node **csums;           /* GK_EW or GK_ROW: column sums computed alongside (pass_merge_column_sums): SUMs over
                             * axis 0 of [R, C] values (C the sums' size, R = numel(dom) / C) whose element (r, c)
                             * is flat element r * C + c of dom, accumulated with atomics into their zeroed outputs
                             * (also in outs); at most GROUP_MAX_CSUMS */
    int ncsums;
    bool elided;            /* no launch of its own: GK_EW, its value is written in place by its inputs'
                             * producers (Fusion.into); GK_OPAQUE conv1d, computed by Fusion.conv_lead's launch */
} Group;
/* Column sums one kernel may take, and the shared memory a warp-per-row kernel's partial sums of them may use (each
 * warp a row of C floats a sum: emit_row.c) */
enum { GROUP_MAX_CSUMS = 4, GROUP_CSUM_SHARED = 48 * 1024 };

typedef enum ArenaKind { AR_PARAM, AR_STATE, AR_INPUT, AR_KEEP, AR_ACT, AR_WORK, AR_COUNT_ } ArenaKind;
const char *arena_kind_name(ArenaKind k);

typedef struct Buf { ArenaKind arena; int64_t offset, bytes; } Buf;

typedef struct Fusion {
    const Graph *g;
    Arena *arena;           /* owns everything below */
    bool *live;             /* by node id: needed by the step */
    bool *kept;             /* by node id: readable after the step (loss, outputs, taps, keep list) */
    Node **repl;            /* by node id: the node it is replaced by (simplify); itself otherwise */
    int *nuse;              /* by node id: live consumers (an input used twice counts twice) */
    bool *mat;              /* by node id: has its own buffer */
    int *group_of;          /* by node id: the group computing it, -1 for sources, views and dead nodes */
    Node **view;            /* by node id: for a RESHAPE/EXTRACT of a buffer, the node owning the memory */
    int64_t *view_off;      /* by node id: element offset of a view inside its owner */
    bool *conv_silu;        /* by node id: this CONV1D writes silu(conv) (its only reader, a SILU, is a view) */
    bool *rowmap;           /* by node id: a row gather or column slice of a [B, L, C] tensor that only templates
                             * read; they read its source through a row table (no kernel, no buffer) */
    bool *colview;          /* by node id: a column slice of a stored [.., W] value (or a reshape of one keeping the
                             * last extent) that only GEMMs read, as an operand in place with a row stride of W: no
                             * kernel, no buffer (pass_fuse col_view; program_bf16.c pg_gemm_base) */
    bool *epilogue;         /* by node id: a scale or sum of a GEMM's product that the GEMM applies itself (its
                             * group's root; pass_fuse gemm_epilogue) */
    bool *dup;              /* by node id: recomputed by every generated kernel that reads it (no buffer): a cheap
                             * function of stored values, cheaper to recompute than to store and read back */
    bool *recompute;        /* by node id: a generated kernel's root that GEMMs read from its buffer and the generated
                             * kernels reading it recompute (members there, not inputs; pass_fuse recompute_roots) */
    Group *groups;          /* in schedule order after pass_plan */
    int ngroups;
    Buf *buf;               /* by node id: valid where mat[] */
    bool *shadow;           /* by node id: also stored as bf16 (set between fuse and plan: GEMM operands) */
    Buf *sbuf;              /* by node id: the bf16 copy's buffer, where shadow[] (activations arena) */
    bool *shadow_only;      /* by node id: shadow[] and only GEMMs read it, from the bf16 copy: the f32 value is
                             * neither stored nor given memory */
    bool *store_bf16;       /* by node id: the buffer holds bf16, 2 bytes per element (precision bf16: a GEMM output
                             * every reader of which takes bf16, as under the reference's autocast) */
    unsigned char *part_copy;   /* by node id, a packed backward output: its parts with a bf16 copy, and */
    unsigned char *part_f32;    /* the parts some reader takes in f32 (compiler/packed_copy.h; set with shadow[]) */
    Node **into;            /* by node id, a packed backward output: the value whose bf16 copy receives the copy
                             * of its one copied part (scan dz, conv dx), as a column block from into_col; the
                             * elementwise kernel that would assemble that value is elided (packed_copy.h) */
    int64_t *into_col;
    Node **conv_lead;       /* by node id, a conv1d forward: the earlier conv1d whose launch also computes it (the
                             * same input under another row order: conv_multi.c), or NULL */
    bool conv_multi;        /* set before pass_plan: find such sets (conv_multi.c) */
    bool conv_multi_bwd;    /* set before pass_plan: also their backward, the directions' dx summed (conv_multi.c) */
    bool no_hoist_tail;     /* set before pass_plan: the step's tail row kernels stay at its end (pass_plan.c) */
    Node **conv_sum_to;     /* by node id, a CONV1D_SILU_BWD computing its set's backward: the set's member whose dx
                             * part receives the directions' summed dx (the direction read in x's own order) */
    unsigned char *part_zero;   /* by node id, a packed backward output: parts nothing writes, read as zero (the
                                 * other directions' dx, summed into conv_sum_to's) */
    Node **swiglu_x;        /* by node id, the root of SwiGLU's gate silu(x W1^T + b1) * (x W2^T + b2) whose two
                             * products and gate one launch computes (pass_swiglu.c, program_swiglu.c): x, which that
                             * launch reads where the gate's group stands (pass_plan keeps it alive until then) */
    Node **pair_first;      /* by node id, the root of a GEMM group whose acc is another's plain product (pass.h
                             * product_pair_match): that product, whose operands one launch of both products reads
                             * where this group stands (pass_plan keeps them alive until then) */
    Node **scan_pair;       /* by node id: an OP_SCAN and the OP_SCAN_BWD of the same inputs, each the other's, when
                             * the forward saves its chunk-start states for the backward (set before pass_plan) */
    Buf *states;            /* by OP_SCAN node id, where paired: those states (bytes set with the pair, placed by
                             * pass_plan in the activations arena, live from the forward to the backward) */
    Node **scan_epi;        /* by OP_SCAN node id: the root of the elementwise group its launch computes as an
                             * epilogue (that group elided, the scan's own output neither written nor read back;
                             * scan_epi.c), or NULL */
    int32_t **scan_epi_tok; /* by OP_SCAN node id, with scan_epi: the group's token at each of the scan's rows */
    bool scan_epi_on;       /* set before pass_plan: find such groups (scan_epi.c) */
    int64_t arena_bytes[AR_COUNT_];
    int64_t act_naive_bytes;/* activations without reuse, for reports */
    int reuse_delay;        /* pass_plan: an activation's memory is free only this many groups after its last
                             * reader (0: at once); fewer write-after-read waits between streams, more memory */
} Fusion;

/* Is member n of gr the group's own value (gr writes it or, unstored, computes it only there), not a value other
 * groups store or that every reader recomputes (dup)? Such a member's group is group_of[n]. */
static inline bool fus_own_member(const Fusion *f, const Group *gr, const Node *n) {
    if (f->dup[n->id]) return false;
    if (!f->recompute[n->id]) return true;
    for (int k = 0; k < gr->nouts; k++) if (gr->outs[k] == n) return true;
    return false;
}

/* Is n computed inside gr's kernel (a member there, recomputed or duplicated), not read from a buffer? */
static inline bool fus_computed_in(const Fusion *f, const Group *gr, const Node *n) {
    if (f->dup[n->id] || f->group_of[n->id] == gr->index) return true;
    for (int k = 0; f->recompute[n->id] && k < gr->nmembers; k++) if (gr->members[k] == n) return true;
    return false;
}

/* The input of n after simplification (always use this instead of n->src[k]). */
static inline Node *fus_src(const Fusion *f, const Node *n, int k) { return f->repl[n->src[k]->id]; }
/* The node whose buffer a view (reshape, extract) reads; n itself otherwise. */
static inline const Node *fus_owner(const Fusion *f, const Node *n) {
    while (f->view[n->id]) n = f->view[n->id];
    return n;
}
/* The node whose buffer a template reads for its input x: x, or the source under x's row map (Fusion.rowmap). */
static inline const Node *fus_unmapped(const Fusion *f, const Node *x) {
    while (f->rowmap[x->id]) x = fus_src(f, x, 0);
    return x;
}
/* The buffer a template reads for its [B, L, C] input x (fus_unmapped) with the row map that gets there: *off the
 * channel offset the chain's SLICEs add and, when rows is not NULL, rows[t] for t < L the buffer's row that x's row t
 * is (the GATHERs composed). */
static inline const Node *fus_row_chain(const Fusion *f, const Node *x, int64_t *off, int32_t *rows) {
    const int64_t L = x->shape.d[1];
    *off = 0;
    for (int64_t t = 0; rows && t < L; t++) rows[t] = (int32_t)t;
    for (; f->rowmap[x->id]; x = fus_src(f, x, 0)) {
        if (x->op == OP_GATHER) for (int64_t t = 0; rows && t < L; t++) rows[t] = x->idata[rows[t]];
        else *off += x->i[1];   /* a SLICE of the channel axis */
    }
    return x;
}
/* Does n's memory hold bf16 (store_bf16 of its owner)? */
static inline bool fus_bf16(const Fusion *f, const Node *n) { return f->store_bf16[fus_owner(f, n)->id]; }
/* Does any group but gr read x (or is x kept for the host)? */
static inline bool fus_read_elsewhere(const Fusion *f, const Group *gr, const Node *x) {
    if (f->kept[x->id]) return true;
    for (int k = 0; k < f->ngroups; k++)
        for (int j = 0; &f->groups[k] != gr && j < f->groups[k].nins; j++)
            if (fus_owner(f, f->groups[k].ins[j]) == x) return true;
    return false;
}

/* What a GEMM group computes: D = alpha * (A B) + C, C = acc (a stored value of D's shape and storage) or none. */
typedef struct GemmEpilogue {
    Node *matmul;           /* the MATMUL: the group's root, or the member under an epilogue root */
    double alpha;
    Node *acc;
} GemmEpilogue;
GemmEpilogue group_gemm(const Fusion *f, const Group *gr);

/* SwiGLU's gate h = silu(p1 + b1) * (p2 + b2) over two products p_i = x W_i^T of one input (two GEMM groups of the
 * same shape, neither scaled nor accumulated), the biases [N] parameters: gr is the gate's elementwise group. */
typedef struct SwigluMatch {
    const Node *p1, *p2;    /* the GEMM groups' roots (MATMULs) */
    const Node *b1, *b2;    /* the bias parameters */
    const Node *x;          /* the products' shared first operand */
    bool products;          /* p1 or p2 has readers besides the gate (a training step's backward) */
} SwigluMatch;
bool swiglu_match(const Fusion *f, const Group *gr, SwigluMatch *m);
/* SwiGLU's backward as autodiff writes it, one elementwise group with two column sums: with x = p1 + b1,
 * y = p2 + b2 (the forward's products and biases, recomputed), g2 = dh silu(x), g1 = (dh y) (s (1 + x (1 - s)))
 * with s = sigmoid(x), their column sums s1, s2 (the biases' gradients), dh the product dy W of a GEMM group (W
 * stored [K][N]: not transposed, neither scaled nor accumulated). The cuda backend's one kernel for dh's product and
 * this group (codegen/program_swiglu.c, hopper_gemm.cuh vmc_gemm_swiglu_bwd) starts from it. */
typedef struct SwigluBwdMatch {
    const Node *dh;         /* the GEMM group's root (a MATMUL) */
    const Node *p1, *p2, *b1, *b2;
    const Node *g1, *g2;    /* the gradients of p1 and p2 (outputs of the group) */
    const Node *s1, *s2;    /* their column sums (the group's csums) */
} SwigluBwdMatch;
bool swiglu_bwd_match(const Fusion *f, const Group *gr, SwigluBwdMatch *m);
/* Marks Fusion.swiglu_x for every such gate whose products no other group reads (with_products: all of them);
 * call between pass_fuse and pass_plan. */
void pass_mark_swiglu(Fusion *f, bool with_products);

/* GEMM group gr adds another GEMM group's product to its own, C = A2 B2 + A1 B1 (an acc epilogue; SwiGLU's input
 * gradient dy1 W1 + dy2 W2): both plain (no scale), of one layout and shape, A not transposed (the one launch reads
 * A [M][K]), their operands not column views, and nothing but gr reading A1 B1. Returns A1 B1's MATMUL, or NULL.
 * The cuda backend may compute both in one launch (codegen/program_pair.c). */
const Node *product_pair_match(const Fusion *f, const Group *gr);
/* Marks Fusion.pair_first for every such group; call between pass_fuse and pass_plan. */
void pass_mark_product_pairs(Fusion *f);

/* Liveness from the loss, named nodes, ASSIGNs and keep[]; folds x+0, x*1, x-0, x/1, neg(neg(x)). */
Fusion *pass_simplify(const Graph *g, Node *const *keep, int nkeep);
/* Groups live computed nodes into kernels (see pass_fuse.c for the rules). */
void pass_fuse(Fusion *f);
/* Elementwise kernels (or column sums) of one domain that read a common full-size buffer become one (pass_merge.c;
 * pass_fuse's last step). */
void pass_merge_siblings(Fusion *f);
/* Column sums (bias and norm-weight gradients) computed by the elementwise or row kernel that produces or reads
 * what they sum, instead of by a kernel of their own that reads it again (pass_merge.c; after the siblings). */
void pass_merge_column_sums(Fusion *f);
/* The value whose elements a merged column sum adds, in the coordinates of gr's domain: the sum's source with
 * reshapes peeled off until its shape is dom's; NULL when none is (pass_merge.c) */
const Node *group_csum_source(const Fusion *f, const Group *gr, const Node *sum);
/* Is n one of gr's column sums? */
bool group_is_csum(const Group *gr, const Node *n);
/* The columns of gr's column sums (0 without). */
int64_t group_csum_cols(const Group *gr);
/* A row group whose every reduction is a sum that it outputs and none of its members reads: all of them can
 * accumulate in one loop, split over blocks with atomics (pass_merge.c) */
bool group_sums_only(const Fusion *f, const Group *gr);
/* A row group reducing over an outer axis (rows not contiguous) whose outputs are all per-row values: a column
 * kernel in codegen, 32 adjacent rows a block (pass_merge.c) */
bool group_columns(const Group *gr);
/* Orders groups (ASSIGN copies last), assigns arenas and offsets; activations share memory by liveness. */
void pass_plan(Fusion *f);
/* Called by pass_plan once the group order is final (with f->conv_multi): the conv1d forwards reading one input
 * under different row orders (a fine-tuning layer's scan directions) become one launch at the first of them, the
 * others elided (Fusion.conv_lead); their outputs are then written there. */
void pass_conv_multi(Fusion *f);
/* After the final order: each elementwise group that reads a scan forward's output, which nothing else reads, and
 * nothing computed after that scan, computed by the scan's launch (Fusion.scan_epi; the group elided). */
void pass_scan_epilogues(Fusion *f);
/* The same for the directions' CONV1D_SILU_BWD (f->conv_multi_bwd): one launch at the last of them, their dx summed
 * into one direction's dx part where the only reader adds them back in x's row order; called before hoist_tail,
 * which then places the readers of the elided ones' outputs after that launch (checked by conv_multi_bwd_ordered). */
void pass_conv_multi_bwd(Fusion *f);
bool conv_multi_bwd_ordered(const Fusion *f);
/* Rows of the input such a launch stages in shared memory at most (f32 rows of 32 channels: 128 KiB); the backward
 * stages three such arrays (x, the sum, one direction's gradient: 3 x 64 KiB). */
enum { CONV_MULTI_MAX_ROWS = 1024, CONV_MULTI_BWD_MAX_ROWS = 512, CONV_MULTI_MAX_DIRS = 4 };
/* The position of the last GEMM or template group in f's order, -1 if none: what follows in a training step only
 * finishes the gradients and applies them (pass_plan's hoist_tail, program_tail.c's pg_batch_tail). */
int fusion_last_heavy_group(const Fusion *f);
void fusion_free(Fusion *f);
/* One line per group: index, kind, root, members. */
void fusion_dump(const Fusion *f, FILE *out);
/* Counts groups that are kernels or library calls (everything but sources). */
int fusion_kernel_count(const Fusion *f);
