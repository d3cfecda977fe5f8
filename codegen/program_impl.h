/* program_impl.h — what program.c and its helpers share (program.h is the interface): launch and module building
 * (program.c), which values get bf16 copies (program_bf16.c), the opaque templates' launches (program_templates.c),
 * the step's tail batched and memsets hoisted (program_tail.c), and memsets that stand together merged into one kernel
 * (program_zero.c). */
#pragma once
#include "program.h"
#include "packed_copy.h"
#include "template.h"

/* Generated kernels accumulate into an open module (preamble + bodies) until it is full. */
typedef struct Batch { FILE *f; char *text; size_t len; int count; char label[64]; PtrVec launches; } Batch;
/* Kernels already generated, by text (codegen.h's key): a repeat reuses the first one's function. */
typedef struct Seen { uint64_t hash; char *key; int launch; } Seen;
typedef struct SeenSet { Seen *items; int n, cap; } SeenSet;
static const BufRef NO_BUF = {AR_COUNT_, 0};   /* a NULL pointer argument */

/* program.c */
BufRef pg_bufref(const Program *p, const Node *n);
Launch *pg_add_launch(Program *p, LaunchKind kind, int group, const char *kclass);
int pg_add_module(Program *p, char *src, const char *label);
void pg_batch_flush(Program *p, Batch *b);
void pg_batch_add(Program *p, Batch *b, const char *body, const char *name, int launch);
void pg_set_args(Launch *l, int n);
void pg_touch(Launch *l, BufRef at, int64_t bytes, bool write);
void pg_touch_node(Launch *l, const Program *p, const Node *x, bool shadow, bool write);
void pg_touch_as(Launch *l, Access a);   /* an access copied from another launch */
/* A read of x (its bf16 copy when shadow) of which the launch moves only `elements` elements (parts of it). */
void pg_touch_read_part(Launch *l, const Program *p, const Node *x, bool shadow, int64_t elements);
int pg_seen_find(SeenSet *s, const char *key, int launch);
/* Points every launch that reuses an earlier one's kernel (same_as) at that kernel's module (once modules are set). */
void pg_resolve_same_as(Program *p);
/* program_bf16.c */
const Node *pg_view_owner(const Fusion *f, const Node *n, int64_t *off);
bool pg_has_bf16_copy(const Fusion *f, const Node *x);
BufRef pg_shadow_ref(const Fusion *f, const Node *x);
const Node *pg_gemm_base(const Fusion *f, const Node *x, int64_t *col, int64_t *ld);
void pg_mark_shadows(Fusion *f);
void pg_mark_bf16_outputs(Fusion *f);
/* program_templates.c */
bool pg_opaque(Program *p, SeenSet *seen, const Group *gr, char *err, int errlen);
/* A generated kernel's pointer arguments for group gr (its inputs, outputs and their bf16 copies, in codegen_group's
 * order, {seed, step} aside): how many, and into l->args from at on, each touched as that kernel reads or writes it;
 * skip, an input the launch has at hand otherwise (a scan's epilogue: scan_epi.c), gets no buffer. */
int pg_group_nargs(const Fusion *f, const Group *gr);
void pg_group_args(Program *p, Launch *l, const Group *gr, int at, const Node *skip);
void pg_mark_scan_states(Fusion *f);
void pg_own_gemm(Program *p, SeenSet *seen, int launch);
bool pg_hopper_gemm(const Program *p);   /* sm_90 and not VMC_HOPPER_GEMM=0: the Hopper GEMM's kernels may be built */
/* program_swiglu.c: after the launch of SwiGLU's gate group gr (Fusion.swiglu_x), one launch computing the gate
 * with its two products, which the runtime may run instead of those three launches (Launch.choice); false
 * (nothing added) where the products' launches do not allow it */
bool pg_swiglu(Program *p, SeenSet *seen, const Group *gr);
/* ... and after the launch of SwiGLU's backward group gr (pass.h swiglu_bwd_match), one launch of dh's product with
 * it (GemmDesc.backward), which the runtime may run instead of the two; false (nothing added) where not allowed */
bool pg_swiglu_bwd(Program *p, SeenSet *seen, const Group *gr);
/* The GEMM launch built for product x (before launch `before`), or -1. */
int pg_product_launch(const Program *p, const Node *x, int before);
/* One launch of vmc's own kernel(s) in src (`kernels` of them) for group gr's product d, its module shared with an
 * earlier launch of the same text (seen) or added, labelled g<group>_<what>_MxNxK. */
Launch *pg_add_own_launch(Program *p, SeenSet *seen, const Group *gr, const GemmDesc *d, char *src, const char *what,
                          int kernels);
/* program_pair.c: after the launch of GEMM group gr whose acc is another's product (Fusion.pair_first), one launch
 * of both products (GemmDesc.pair), which the runtime may run instead of the two; false (nothing added) where
 * their launches do not allow it */
bool pg_product_pair(Program *p, SeenSet *seen, const Group *gr);
int pg_align_of(int64_t offset);
/* program_tail.c */
void pg_batch_tail(Program *p);
/* Removes the launches whose keep[] is false, keeping the order; same_as is reset (call once modules are set). */
void pg_drop_launches(Program *p, const bool *keep);
void pg_hoist_memsets(Program *p);
/* program_zero.c */
void pg_merge_memsets(Program *p);
