/* template.h — hand-written device code for the opaque ops (codegen/templates/NAME.cuh, embedded into the binary at
 * build time) and its instantiation: shape constants and dtypes become #defines in front of the template text.
 * Every instantiation is one NVRTC translation unit: defines, templates/common.cuh, then the template.
 * Kernels are extern "C"; their parameter lists, grids and zeroing needs are documented per op below. */
#pragma once
#include "graph.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct TemplateDef { const char *name; const char *value; } TemplateDef;

/* Embedded text of codegen/templates/<file> ("common.cuh", "selective_scan_fwd.cuh", ...), NULL if unknown.
 * $VMC_TEMPLATE_DIR/<file>, when it exists, is used instead (template development without a rebuild). */
const char *template_text(const char *file);
/* Names of all embedded templates; *n receives the count. */
const char *const *template_files(int *n);
/* "#define NAME VALUE" for each def, then common.cuh, then templates/<file>; malloc'd; NULL if file is unknown. */
char *template_instantiate(const char *file, const TemplateDef *defs, int ndefs);
/* The C++ type name a template uses for a dtype: "float", "bf16" (common.cuh's storage type), "int". */
const char *template_ctype(DType t);

/* How to launch an instantiated kernel. Before each launch, zero the byte ranges listed in zero[] of the
 * buffers passed as parameter number zero[k].param (0-based): those outputs are accumulated with atomics. */
typedef struct KernelLaunch {
    char name[48];                 /* extern "C" symbol for cuModuleGetFunction */
    unsigned grid[3], block[3];
    unsigned smem;                 /* dynamic shared memory bytes */
    struct { int param; size_t offset, bytes; } zero[4];
    int nzero;
    unsigned tma_rows[8];          /* parameter i is a TMA tensor map (common.cuh VmcTmap) of a bf16 matrix in boxes of
                                      tma_rows[i] rows by 64 columns, in the 128-byte swizzle; 0: not a tensor map */
    unsigned cluster;              /* CTAs a cluster (the kernel's __cluster_dims__ along x); 0 or 1: none */
    bool tiles_in_turn;            /* the CTAs take the tiles in turn, so any grid (a multiple of cluster) computes
                                      them all: the runtime launches only as many as run at once (cuda_hopper_grid) */
} KernelLaunch;

/* How a template reads a [B, L, C] input that is a row gather or a channel slice of a larger buffer (pass_fuse's
 * row maps): row t of batch b starts at element (b * lrows + rows[t]) * stride + off of the buffer passed.
 * All zero: the input is its own contiguous buffer. rows NULL: rows[t] = t. */
typedef struct RowMap { int64_t lrows, stride, off; const int32_t *rows; } RowMap;

/* Selective scan (ARM_SPEC §2.3): u, delta, z [B,L,D]; Bm, Cm [B,L,N]; A_log [D,N]; D, delta_bias [D].
 * All arithmetic fp32; each tensor's storage dtype may be DT_F32 or DT_BF16. N <= 16. All pointers 16-byte
 * aligned. */
typedef struct ScanSpec {
    int B, L, D, N;
    bool gated;                                    /* y * silu(z); else y, z unused (NULL) and no dz */
    DType u, delta, a_log, bc, d, delta_bias, z;   /* input dtypes (bc: Bm and Cm) */
    DType out;                                     /* forward output y (graph: f32) */
    DType dout;                                    /* backward incoming gradient */
    int copy_parts;                                /* backward: parts (SCAN_PART_*, packed_copy.h) also written in */
    int skip_f32_parts;                            /* bf16 to the copy, and parts whose f32 store is skipped */
    bool states;                                   /* the forward saves the chunk-start states, the backward
                                                    * reads them (scan_states_numel floats) */
    int64_t dz_copy_ld;                            /* backward: 0, dz's copy in `copy`; else in dz_copy, rows
                                                    * this many elements apart (a column block of a wider buffer) */
    RowMap u_map, delta_map, bm_map, cm_map, z_map, dout_map;
    const char *epi;                               /* forward: an elementwise group computed at each row instead of
                                                    * storing y (codegen_scan_epilogue's text), or NULL */
} ScanSpec;

/* vmc_scan_fwd(const u*, const delta*, const A_log*, const Bm*, const Cm*, const D*, const delta_bias*,
 *              const z*, out* y, float *states)      y = (sum_n C h + D u) * silu(z), or without the gate
 * states (NULL unless s->states) receives the state at the start of every chunk but the first, for the backward.
 * With s->epi, y is not stored (out unused) and the epilogue's pointers follow states (SCAN_EPI_PARAMS). */
char *template_scan_fwd(const ScanSpec *s, KernelLaunch *l);
/* The special-function operations (exp2, reciprocal) the scan's arithmetic takes at the least, forward or
 * backward from saved states: a floor on its time (program_dump_launches). */
double template_scan_sfu_ops(const ScanSpec *s, bool backward);
/* vmc_scan_bwd(the 8 forward inputs as above, const dout*, float *packed, bf16 *copy, const float *states,
 *              bf16 *dz_copy)
 * packed (f32) is g_scan_bwd's layout: [du BLD | ddelta BLD | dA_log DN | dBm BLN | dCm BLN | dD D |
 * ddelta_bias D | dz BLD (gated only)]; ddelta is w.r.t. the pre-softplus delta. l->zero lists the accumulated part.
 * copy, the packed layout in bf16 (same element offsets), receives the parts in s->copy_parts (NULL if none);
 * the parts in s->skip_f32_parts are not stored in packed (whose du/ddelta rows still serve as scratch unless
 * s->states). With s->dz_copy_ld, dz's copy goes to dz_copy instead (NULL otherwise). */
char *template_scan_bwd(const ScanSpec *s, KernelLaunch *l);
/* Floats of the chunk-start states (s->states); 0 when L fits one chunk. */
size_t scan_states_numel(const ScanSpec *s);
/* Floats in the packed backward result (= numel of the g_scan_bwd node). */
size_t scan_bwd_numel(const ScanSpec *s);

/* Causal depthwise conv1d: x [B,L,D], w [D,1,K], bias [D]; y[b,t,d] = bias[d] + sum_k w[d,k] x[b,t-K+1+k,d],
 * optionally followed by SiLU (forward only). */
typedef struct Conv1dSpec {
    int B, L, D, K;
    DType x, w, bias, out;     /* out: y (forward) or dx (backward) */
    DType dy;                  /* backward incoming gradient */
    bool silu;                 /* forward: fuse SiLU after the bias */
    bool want_dx, want_dw, want_db;   /* backward: which gradients to compute */
    RowMap x_map, dy_map;
    bool unaligned;            /* some buffer is not 16-byte aligned (a view at an odd offset): 1 channel per thread */
    bool silu_out;             /* forward: also write silu(y) to y2 (when something reads y itself too) */
    DType out2;                /* forward: y2's dtype */
    bool silu_dy;              /* backward: dy is the gradient at silu(conv(x)) (OP_CONV1D_SILU_BWD): needs bias */
    bool has_dy2;              /* backward with silu_dy: the gradient is dy + dy2 */
    DType dy2;
    RowMap dy2_map;
    bool copy_dx, skip_f32_dx; /* backward (packed_copy.h): dx also as a bf16 copy into dx_copy, and not in f32 */
    int64_t dx_copy_ld;        /* backward: dx_copy's row stride in elements; 0: D (a buffer of dx's shape) */
} Conv1dSpec;

/* vmc_conv1d_fwd(const x*, const w*, const bias*, out* y, out2* y2); y2 (silu(y)) may be NULL unless s->silu_out */
char *template_conv1d_fwd(const Conv1dSpec *s, KernelLaunch *l);
/* vmc_conv1d_fwd_multi(const x*, then per direction j < 4: const w*, const bias*, out* y) for ndir (2 to 4) forwards
 * of one input under the row maps maps[0 .. ndir) (each a map of the same buffer: equal lrows, stride, off); s->x_map
 * is ignored. NULL when the input's rows do not fit the shared memory it stages them in. */
char *template_conv1d_fwd_multi(const Conv1dSpec *s, int ndir, const RowMap *maps, KernelLaunch *l);
/* vmc_conv1d_bwd_multi(const x*, out* dx_sum, then per direction j < 4: const dy*, const dy2*, const w*, const bias*,
 * float *dw, float *db): ndir (2 to 4) backwards of conv1d + SiLU of one input under the row maps xmaps (as
 * template_conv1d_fwd_multi; x must have L rows), gradients dy (dymaps) + dy2 (dy2maps, s->has_dy2), the directions'
 * dx summed in x's row order into dx_sum ([B, L, D] of s->out); dw, db accumulated (zero them first). */
char *template_conv1d_bwd_multi(const Conv1dSpec *s, int ndir, const RowMap *xmaps, const RowMap *dymaps,
                                const RowMap *dy2maps, KernelLaunch *l);
/* vmc_conv1d_bwd(const dy*, const x*, const w*, out* dx, float *dw [D,K], float *db [D], const bias*, const dy2*,
 *                bf16 *dx_copy); pointers of gradients not wanted may be NULL, bias and dy2 unless s->silu_dy
 * (s->has_dy2), dx if s->skip_f32_dx, dx_copy unless s->copy_dx. dw and db are accumulated (listed in l->zero). */
char *template_conv1d_bwd(const Conv1dSpec *s, KernelLaunch *l);

/* Fused multi-head attention (attention.cuh): q [B, L, H*E], k and v [B, S, H*E] (row maps: channel slices of a
 * wider buffer, as k and v of one [k | v] projection), mask [L, S] additive; all arithmetic f32. The tensor-core
 * path (bf16 q, k, v and dout, E a multiple of 16 up to 128, L and S up to 256) rounds P and dS to bf16 as mma
 * operands; any other case runs the scalar path (exact f32; fp32 precision's parity runs). */
typedef struct AttnSpec {
    int B, L, S, H, E;
    float scale;
    DType q, k, v, mask, dout, out;                /* storage types (out: the forward's o) */
    int copy_parts, skip_f32_parts;                /* backward: ATTN_PART_* bits (packed_copy.h), as ScanSpec's */
    RowMap q_map, k_map, v_map, dout_map;
    int smem_limit;                                /* dynamic shared memory a block may have (template_smem_limit;
                                                    * 0: sm_90's) */
} AttnSpec;
/* The dynamic shared memory a block of architecture sm_<arch> may opt into, in bytes. */
int template_smem_limit(int arch);
/* Does the tensor-core path take s (VMC_ATTN_FAST=0: never)? */
bool template_attn_fast(const AttnSpec *s, bool backward);
/* vmc_attn_fwd(const q*, const k*, const v*, const mask*, out* o); o [B, L, H*E] contiguous. */
char *template_attn_fwd(const AttnSpec *s, KernelLaunch *l);
/* vmc_attn_bwd(const q*, const k*, const v*, const mask*, const dout*, float *packed, bf16 *copy): packed f32
 * [dq BLC | dk BSC | dv BSC] (graph.h g_attention_bwd), every element of its stored parts written (no zeroing);
 * copy the same layout in bf16 for the parts in s->copy_parts (NULL if none). */
char *template_attn_bwd(const AttnSpec *s, KernelLaunch *l);

/* vmc's own GEMM for skinny products (skinny_gemm.cuh, template_gemm.c): C = alpha op(A) op(B) (+ acc) with bf16 A
 * and B, f32 accumulation, row-major as GemmDesc (op(A) M x K, op(B) K x N, C and acc [M][N]). */
typedef struct SkinnyGemmSpec {
    int64_t M, N, K, lda, ldb;
    bool ta, tb;
    bool acc;                  /* C = alpha A B + acc */
    bool c_bf16;               /* C (and acc) stored bf16, else f32 */
    float alpha;
    int64_t a_off, b_off;      /* element offsets of A and B past a 16-byte-aligned address */
    int c_align;               /* bytes (a power of two, at most 16) both C's and acc's addresses are multiples of */
    int tile_n;                /* the Hopper GEMM's columns a CTA, 128, 192 or 256 (0: 256, or VMC_HOPPER_GEMM's) */
    int64_t k1;                /* the Hopper GEMM: C = A B + A2 B2, the first k1 (a multiple of 64) of K from A and B,
                                * the rest from A2 and B2, laid out as A and B (their own K); 0: one product */
    int sms;                   /* the Hopper GEMM: the GPU's SMs, which its grid and split of K are sized for (0: 132,
                                * an H100 SXM's or an H200's) */
} SkinnyGemmSpec;
typedef struct SkinnyGemmLaunch {
    KernelLaunch k;            /* vmc_gemm_skinny: grid, block, dynamic shared memory */
    int split;                 /* K ranges: > 1 writes ws_bytes of f32 partials, then reduce runs */
    int64_t ws_bytes;
    KernelLaunch reduce;       /* vmc_gemm_skinny_reduce (split > 1) */
} SkinnyGemmLaunch;
/* A product is skinny when its smallest dimension is at most this. */
enum { SKINNY_GEMM_MAX_DIM = 128 };
/* vmc_gemm_skinny(const bf16 *A, const bf16 *B, C_T *C, const C_T *acc, float *ws), then with split > 1
 * vmc_gemm_skinny_reduce(const float *ws, C_T *C, const C_T *acc) (same module); NULL when the product is not one
 * it handles (no dimension at most SKINNY_GEMM_MAX_DIM, a dimension of 2^31 or more, an operand whose contiguous
 * dimension, leading dimension or offset is odd). */
char *template_gemm_skinny(const SkinnyGemmSpec *s, SkinnyGemmLaunch *l);
/* vmc's own Hopper GEMM (hopper_gemm.cuh; wgmma, so NVRTC must compile it for sm_90a: NVRTC_ARCH_SM90A): C = alpha
 * op(A) op(B) (+ acc) for a product of the same spec, A stored [M][lda] or [K][lda] (ta), B [N][ldb] (tb) or [K][ldb];
 * each operand's contiguous dimension, lda, ldb and the offsets multiples of 8. vmc_gemm_hopper(VmcTmap A, VmcTmap B,
 * C_T *C, const C_T *acc), A and B tensor maps (l->tma_rows: runtime/cuda_tma.h makes them); with s->k1 two more,
 * VmcTmap A2, VmcTmap B2 (C = A B + A2 B2); l->zero names C where it must be zeroed before each launch (its parts of K
 * are added into it). NULL when the product is not one it handles. */
char *template_gemm_hopper(const SkinnyGemmSpec *s, KernelLaunch *l);
/* SwiGLU's input products by the same kernel (hopper_gemm.cuh HG_DUAL): H = silu(A B1^T + bias1) * (A B2^T + bias2),
 * each product rounded to bf16 before its bias is added, and where `products` P1, P2 the two products (bf16). The
 * spec describes A and both B's (one ldb), H, P1, P2 [M][N] bf16 (c_bf16, no acc, alpha 1). vmc_gemm_swiglu(VmcTmap
 * A, VmcTmap B1, VmcTmap B2, const float *bias1, const float *bias2, H, P1, P2): H, P1, P2 bf16 pointers, or tensor
 * maps of [M][N] where l->tma_rows[5..7] say so (then P1 and P2 may be any map when not `products`); NULL when the
 * product is not one it handles. */
char *template_gemm_swiglu(const SkinnyGemmSpec *s, bool products, KernelLaunch *l);
/* SwiGLU's backward in the epilogue of the same kernel's product dh = A B^T (hopper_gemm.cuh HG_SWIGLU_BWD; the spec
 * as for C = dh: c_bf16, no acc, alpha 1, N a multiple of 8, 16-byte aligned): with x = P1 + bias1, y = P2 + bias2,
 * G1 = dh y silu'(x), G2 = dh silu(x) (bf16 [M][N]) and their column sums added into S1, S2 (f32 [N]).
 * vmc_gemm_swiglu_bwd(VmcTmap A, VmcTmap B, const bf16 *P1, const bf16 *P2, const float *bias1, const float *bias2,
 * bf16 *G1, bf16 *G2, float *S1, float *S2); NULL when the product is not one it handles. The same module defines
 * vmc_transpose_bf16(const bf16 *W, bf16 *WT), launch t: B = W^T [N][K] from W [K][N] (dh = dy W as a graph has it). */
char *template_gemm_swiglu_bwd(const SkinnyGemmSpec *s, KernelLaunch *l, KernelLaunch *t);
