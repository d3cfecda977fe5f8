/* program.h — a compiled training or inference step: the ordered launches (generated kernels, opaque templates,
 * cuBLASLt GEMMs, memsets for atomically accumulated outputs, end-of-step ASSIGN copies) over a static buffer
 * plan (pass_plan's arenas). Building one runs every pass, generates every kernel and NVRTC-compiles all of them
 * (modules in parallel, disk-cached); it needs no GPU. Program outlives nothing but the Graph it was built from. */
#pragma once
#include "codegen.h"
#include "nvrtc_compile.h"
#include "template.h"
#include <stdint.h>

typedef struct BufRef { ArenaKind arena; int64_t offset; } BufRef;   /* device address = arena base + offset */

typedef enum LaunchKind { LK_KERNEL, LK_GEMM, LK_MEMSET, LK_COPY } LaunchKind;

/* Row-major C[b] (M x N, f32) = op(A[b]) op(B[b]); op = transpose where ta/tb; strides in elements, 0 = shared. */
typedef struct GemmDesc {
    bool ta, tb;
    int64_t M, N, K, batch;
    int64_t lda, ldb;          /* leading dimensions of A and B as stored (row-major) */
    int64_t sa, sb, sc;
    BufRef a, b, c;
    bool bf16;                 /* A and B are bf16 (copies, or bf16-stored values); accumulation stays f32 */
    bool c_bf16;               /* C is stored bf16 (Fusion.store_bf16), else f32 */
    float alpha;               /* C = alpha A B (+ acc): the group's epilogue (pass.h GemmEpilogue) */
    bool has_acc;              /* ... + acc, a buffer of C's shape and type */
    BufRef acc;
    /* SwiGLU's products and gate in one launch (program_swiglu.c; vmc's own kernel: hopper_gemm.cuh
     * vmc_gemm_swiglu): h = silu(bf16(A B^T) + bias1) * (bf16(A B2^T) + bias2), bf16 [M][N]; C and C2 get the two
     * products where `products`, else they are not written. B2 has B's shape and ldb. */
    bool swiglu, products;
    BufRef b2, c2, bias1, bias2, h;
    /* With `backward` too, SwiGLU's backward in one launch (program_swiglu.c pg_swiglu_bwd; hopper_gemm.cuh
     * vmc_gemm_swiglu_bwd): dh = bf16(A B) with B the weight as stored, [K][N] (ldb = N; the runtime transposes it
     * into the stream's GEMM workspace first), then with x = P1 + bias1, y = P2 + bias2: C = dh y silu'(x),
     * C2 = dh silu(x) (bf16 [M][N]) and their column sums added into S1, S2 (f32 [N], zeroed before). */
    bool backward;
    BufRef p1, p2, s1, s2;
    /* `pair`: a sum of two products in one launch (program_pair.c; hopper_gemm.cuh HG_KCAT): C = A B + A2 B2, A2 and
     * B2 laid out as A and B (M, N, K, lda, ldb, ta, tb), for the GEMM whose acc was the first product (SwiGLU's
     * input gradient dy1 W1 + dy2 W2); no acc. */
    bool pair;
    BufRef a2;
} GemmDesc;

/* The multiply-adds of a GEMM launch's products, times 2 (SwiGLU's forward: two products). */
static inline double gemm_flops(const GemmDesc *g) {
    const double products = (g->swiglu && !g->backward) || g->pair ? 2 : 1;
    return products * 2.0 * (double)g->M * (double)g->N * (double)g->K * (double)g->batch;
}

/* Memory a launch touches: at, bytes is the range the multi-stream graph (streams.h) orders launches by: the whole
 * buffer of every value read or written, a view's owner's whole buffer (unless ProgramOptions.exact_view_deps).
 * moved: the bytes the launch reads or writes there, a view's own (what dumps and `vmc bench` report). The cuBLASLt
 * workspace is per stream, not listed. */
typedef struct Access { BufRef at; int64_t bytes; bool write; int64_t moved; } Access;

typedef struct Launch {
    LaunchKind kind;
    int group;                  /* Fusion group index */
    const char *kclass;         /* time-per-class label */
    /* LK_KERNEL */
    int module;
    int same_as;                /* launch whose kernel this one reuses (identical text), -1 */
    char name[64];
    unsigned grid[3], block[3], smem;
    BufRef *args; int nargs;    /* pointer parameters in order (NULL pointer: arena AR_COUNT_) */
    int instances;              /* > 1: a batched launch (codegen_group_batched, grid.y): args holds instances x nargs
                                 * pointers, passed by value as one struct (each instance's, then the rng pointer) */
    bool rng_args;              /* a pointer to the device's {seed, step} follows the pointers */
    /* LK_GEMM */
    GemmDesc gemm;
    int own_module;             /* vmc's own kernel for a skinny product (template.h), timed against cuBLASLt's
                                 * algorithms before the first step; -1 none. Its launch: own (split-K partials in
                                 * the stream's GEMM workspace, as cuBLASLt's would be) */
    SkinnyGemmLaunch own;
    /* LK_MEMSET (zero), LK_COPY (device to device) */
    bool bf16_cast;             /* LK_KERNEL: a GEMM operand's cast to bf16 (args: source, workspace copy) */
    int choice;                 /* > 0: this launch takes part in choice number `choice`: one launch that stands for
                                 * launches before it (gemm_one_launch: SwiGLU's kernels, program_swiglu.c; a pair
                                 * of products, program_pair.c) or one of those parts (launch_choice_part); the
                                 * runtime runs either form (runtime/cuda_choice.c), floors count the one launch */
    bool once;                  /* not part of the step: runs before it whenever the parameters may have changed
                                 * (a program that never writes its parameters keeps their bf16 copies) */
    BufRef dst, src;
    int64_t bytes;
    Access *acc; int nacc, capacc;
    double sfu_ops;             /* special-function operations (exp2, reciprocal) its arithmetic takes at the
                                 * least: the scans' (template_scan_sfu_ops), for program_dump_launches' floor */
} Launch;

typedef struct Module {
    char *src;                  /* one NVRTC translation unit */
    char *label;
    bool arch_specific;         /* compiled for sm_<arch>a (the Hopper GEMM's wgmma: NVRTC_ARCH_SPECIFIC) */
    NvrtcBinary bin;
} Module;

/* A training step's activation memory is reused only this many groups after its last reader: side streams (the
 * weight gradients, the norm sums) then seldom hold up the next writer of memory they read. ARM-B on an H200 (same
 * run, ms per step): fine-tuning 69.15 / 68.62 / 68.66 / 68.88 / 68.63 / 68.64 with delays 0 / 20 / 40 / 80 / 160 /
 * never (activations 20.5 / 21.4 / 21.6 / 23.1 / 25.7 / 55.9 GiB), pretraining 32.30 / 32.23 / 32.19 / 32.09 with
 * 0 / 80 / 160 / never. Inference too (H100, ARM-B b256, 1 stream at once / 4 streams delayed 20, two rounds:
 * 34.965 / 34.867 -> 34.191 / 34.239 ms; activations 0.8 -> 2.9 GiB): at once, every launch waits for the one before. */
enum { PROGRAM_REUSE_DELAY = 20, PROGRAM_REUSE_AT_ONCE = -1 };   /* ProgramOptions.reuse_delay's default, and none */

typedef struct ProgramOptions {
    int arch;                   /* 90 = sm_90 */
    const char *dump_dir;       /* write every module's source there (NULL: no) */
    int threads;                /* parallel NVRTC compiles (0: number of cores) */
    bool bf16;                  /* bf16 GEMM operands (ARM_SPEC §2.5); fp32 everything else */
    bool no_compile;            /* generate only (tests of the generator) */
    bool scan_recompute;        /* training: the scan backward recomputes its chunk-start states instead of reading
                                 * the forward's (less memory, more time: program_templates.c pg_mark_scan_states) */
    bool no_into_place;         /* bf16: keep the kernels packed_copies_into_place would elide (timing comparisons) */
    bool no_own_gemm;           /* bf16: no own kernels for skinny GEMMs (cuBLASLt alone) */
    bool no_conv_multi;         /* a launch per conv1d forward, also where several read one input (conv_multi.c) */
    bool no_conv_multi_bwd;     /* not their backwards as one launch too, the directions' dx summed (conv_multi.c;
                                 * VMC_CONV_MULTI_BWD=0) */
    bool no_hoist_tail;         /* the gradient-norm sums and last column sums stay after the step's last GEMM, batched
                                 * there (pass_plan.c hoist_tail; VMC_HOIST_TAIL=0) */
    int scan_epi;               /* an elementwise group reading a scan forward's output that nothing else reads (a
                                 * mixer's direction merge, in inference) computed by that scan's launch
                                 * (compiler/scan_epi.c; VMC_SCAN_EPI=1; 2: its inputs asked of L2 rows ahead) */
    bool no_merge_memsets;      /* not the small memsets that stand together in the launch list as one zeroing
                                 * kernel (program_zero.c; VMC_ZERO_MERGE=0) */
    bool ptxas_info;            /* NVRTC runs ptxas verbosely: registers and spills per kernel (ptxas_info.h) */
    bool exact_view_deps;       /* a view orders launches by its own range, not its owner's whole buffer (Access;
                                 * VMC_EXACT_DEPS=1; off: no faster on an H100, README) */
    int swiglu_gemm;            /* SwiGLU's two products and gate as one launch, on sm_90 with bf16 operands
                                 * (program_swiglu.c): 0 where nothing else reads the products (inference;
                                 * VMC_SWIGLU_GEMM=1), 2 also where the backward does (the products written too;
                                 * the environment's default), -1 never (VMC_SWIGLU_GEMM=0) */
    bool swiglu_bwd;            /* SwiGLU's backward product with its elementwise kernel as one launch, on sm_90 with
                                 * bf16 operands (program_swiglu.c pg_swiglu_bwd; VMC_SWIGLU_BWD=1; off: slower than
                                 * its parts on an H100, README) */
    int sms;                    /* the GPU's SMs, which the Hopper GEMM's grids and splits of K are sized for (0: 132;
                                 * the cuda backend passes its device's) */
    bool gemm_pairs;            /* a GEMM whose acc is another's product (SwiGLU's input gradient) with it as one launch,
                                 * on sm_90 with bf16 operands (program_pair.c; the environment's default;
                                 * VMC_GEMM_PAIRS=0: none) */
    int reuse_delay;            /* Fusion.reuse_delay: groups an activation's memory stays reserved after its last
                                 * reader; 0 (unset): PROGRAM_REUSE_DELAY;
                                 * PROGRAM_REUSE_AT_ONCE: none */
} ProgramOptions;

typedef struct Program {
    const Graph *g;
    Fusion *f;
    Launch *launches; int nlaunches, caplaunches;
    Module *modules; int nmodules, capmodules;
    int64_t arena_bytes[AR_COUNT_];
    int64_t gemm_flops;         /* 2 M N K summed over the step's GEMMs */
    bool params_constant;       /* no launch writes a parameter (inference): their bf16 casts are `once` launches
                                 * into copies kept at the end of the PARAM arena */
    int64_t param_copy_bytes;   /* those copies' bytes */
    const Node **param_value;   /* by PARAM node id: the value its AdamW kernel writes in place (training), or NULL */
    BufRef *value_copy;         /* by node id, for those values: the parameter's kept bf16 copy, which the AdamW
                                 * kernel rewrites (so training casts its weights only once too); arena AR_COUNT_ none */
    int nchoices;               /* one launch or its parts (Launch.choice 1 .. nchoices) */
    int nkernels, ngemms, ncached;   /* nkernels: distinct compiled kernels */
    int nlaunched;                    /* generated-kernel launches per step (>= distinct generated kernels) */
    double codegen_s, compile_s;
    ProgramOptions opt;
} Program;

/* Does GEMM launch g stand for launches before it (Launch.choice): SwiGLU's one kernels, a pair of products? */
static inline bool gemm_one_launch(const GemmDesc *g) { return g->swiglu || g->pair; }

/* Is l one of the launches such a launch stands for (a product's GEMM, SwiGLU's gate or backward kernel)? */
static inline bool launch_choice_part(const Launch *l) {
    return l->choice > 0 && !(l->kind == LK_GEMM && gemm_one_launch(&l->gemm));
}

/* Runs simplify, fuse and plan on g (keep: nodes to stay readable), generates and compiles every kernel.
 * NULL with a message in err when NVRTC or a template fails (an environment error or a vmc bug). */
Program *program_build(const Graph *g, Node *const *keep, int nkeep, const ProgramOptions *opt, char *err, int errlen);
void program_free(Program *p);
/* Kernel count, GEMMs, modules, arena sizes, codegen and compile time. */
void program_summary(const Program *p, FILE *out);
/* The rates a step's floor is estimated at: GEMM work, bytes moved, special-function operations per second. The
 * defaults are an H200's under ARM-B's load: the bf16 GEMM peak `vmc bench` measured, 85% of the specified 4.8 TB/s,
 * and 16 special-function operations per SM and clock on 132 SMs at the 1.8 GHz the power cap allows. */
typedef struct FloorRates { double gemm_tflops, mem_tbps, sfu_tops; } FloorRates;
#define FLOOR_RATES_H200 ((FloorRates){865.0, 4.0, 3.8})
/* The step's launches in order, a line each: kind, time class, kernel (or GEMM shape), grid, declared reads/writes;
 * then the totals per class and the step's floor at rates r: each launch at the largest of its GEMM work, its bytes
 * and its special-function work at those rates, launches one after another. */
void program_dump_launches(const Program *p, const FloorRates *r, FILE *out);
/* The step's launches summed per kernel class (vmc bench's classes), once-launches left out: how many, the bytes
 * they read and write, their GEMM work and their floor at rates r, to set beside the time per class `vmc bench`
 * measures. */
enum { CLASS_TOTALS_MAX = 16 };
typedef struct ClassTotals {
    int n;
    const char *name[CLASS_TOTALS_MAX];
    double launches[CLASS_TOTALS_MAX], read[CLASS_TOTALS_MAX], written[CLASS_TOTALS_MAX], flops[CLASS_TOTALS_MAX],
        floor_ms[CLASS_TOTALS_MAX], path_ms[CLASS_TOTALS_MAX] /* its launches' floors on the longest dependency path */;
} ClassTotals;
void program_class_totals(const Program *p, const FloorRates *r, ClassTotals *t);
/* Launch l's floor in ms at rates r; *bound (if not NULL): 0 its GEMM work, 1 its bytes, 2 its special-function
 * work, whichever takes longest. */
double launch_floor_ms(const Launch *l, const FloorRates *r, int *bound);
/* What launches running side by side could reach at rates r: no step is shorter than the longest path through its
 * dependencies (each launch at its floor: path_ms), nor than all its GEMM work, all its bytes or all its
 * special-function work at the rates (each launch's, whatever bounds it). ms: the largest of these. */
typedef struct OverlapFloor { double path_ms, gemm_ms, bytes_ms, sfu_ms, ms; } OverlapFloor;
OverlapFloor program_overlap_floor(const Program *p, const FloorRates *r);
/* The bytes launch l declares it reads (or writes): each access's moved bytes, an access repeated once. */
double launch_moved_bytes(const Launch *l, bool write);
/* Size in bytes of the workspace arena part used by cuBLASLt (the rest holds bf16 operand copies). */
enum { PROGRAM_GEMM_WORKSPACE = 32 << 20 };
