/* codegen.h — fused group -> CUDA C source (emit_cuda.c, with emit_expr.c, emit_ew.c and emit_row.c: emit.h).
 * Every size is a compile-time constant in the text;
 * kernels are extern "C", named k<idx>_<ops>, headed by a comment listing the fused nodes and their .vmc Locs.
 * Storage on the device: every float tensor (f32 or bf16 in the graph) is an f32 array holding exactly the
 * values the cpu backend holds (bf16 nodes carry bf16-rounded values); i32 tensors are int arrays. Precision bf16
 * adds bf16 copies of GEMM operands (Fusion.shadow) and stores most GEMM outputs in bf16 only (store_bf16): a
 * generated kernel reads those as unsigned short words. */
#pragma once
#include "pass.h"
#include <stdio.h>

typedef struct KernelSource {
    char *name;           /* malloc'd: the extern "C" symbol */
    char *body;           /* malloc'd: kernel text without the shared preamble */
    char *key;            /* malloc'd: the text without header comment and with the name left out: equal keys
                           * mean interchangeable kernels (same shapes in every layer) */
    unsigned grid, block;
    bool zero_outs;       /* the outputs are accumulated with atomics: zero them before the launch */
    const char *kclass;   /* "norm", "elementwise", "optimizer", "scatter", "rng": time per class in bench */
} KernelSource;

/* The device helpers every generated kernel uses (bf16 rounding, Philox as compiler/rng.h, block reductions). */
const char *codegen_preamble(void);
const char *codegen_helpers(void);   /* the same without the grid entry (for a template's text) */
/* vmc_grid_entry(), which every kernel (generated or template) calls first: with programmatic dependent launch
 * (sm_90, runtime/cuda_exec.c) a kernel may start while the previous one in its stream finishes; it lets its own
 * successor launch, then waits until its predecessors are complete and their writes visible. Part of the preamble
 * and of every template instantiation (template.c); the CPU emulator (tests/emu/cuda_emu.h) has its own no-op. */
#define CODEGEN_GRID_ENTRY                                                                                      \
    "#ifndef VMC_EMU_GRID_ENTRY\n"                                                                            \
    "__device__ __forceinline__ void vmc_grid_entry() {\n"                                                    \
    "#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900\n"                                                   \
    "    asm volatile(\"griddepcontrol.launch_dependents;\" ::: \"memory\");\n"                               \
    "    asm volatile(\"griddepcontrol.wait;\" ::: \"memory\");\n"                                            \
    "#endif\n"                                                                                                \
    "}\n"                                                                                                     \
    "#endif\n"
/* Emits the kernel of a GK_EW, GK_ROW, GK_SCATTER or GK_RANDPERM group. Parameters, in order: one pointer per
 * gr->ins (const), one per gr->outs, one per out with a bf16 shadow (f->shadow), then a pointer to the step's
 * {seed, step} (two unsigned long long). */
void codegen_group(const Fusion *f, const Group *gr, KernelSource *out);
/* gr (GK_EW) as the epilogue of the scan forward whose output own it reads, tok[t] the group's token at the scan's row
 * t (compiler/scan_epi.c): text to place before the scan template (defines SCAN_EPI, SCAN_EPI_PARAMS, SCAN_EPI_ARGS,
 * vmc_epi_tok and vmc_scan_epi; with prefetch also vmc_scan_epi_pf, which asks L2 for an element's inputs); the caller
 * frees it. */
char *codegen_scan_epilogue(const Fusion *f, const Group *gr, const Node *own, const int32_t *tok, bool prefetch);
/* The same kernel as `instances` independent instances in one launch: the kernel is a device function NAME_one,
 * and NAME_x(const __grid_constant__ VmcArgs_NAME a), grid (x, instances), calls it for instance blockIdx.y with
 * a.p[blockIdx.y]: that instance's pointer parameters in codegen_group's order, its {seed, step} pointer last.
 * Kernel parameters are passed by value (at most 32 KB). */
void codegen_group_batched(const Fusion *f, const Group *gr, int instances, KernelSource *out);
void kernel_source_free(KernelSource *k);
/* A buffer the zeroing kernel clears: its bytes (a multiple of 4), and whether address and size allow float4 stores. */
typedef struct ZeroRange { int64_t bytes; bool vec4; } ZeroRange;
/* One kernel that zeroes n buffers (emit_zero.c), its k-th pointer parameter the start of range k; no {seed, step}
 * pointer. Named by the ranges' sizes, so equal lists give equal kernels. kclass "memset". */
void codegen_zero_kernel(const ZeroRange *r, int n, KernelSource *out);
/* Does generated group gr read input x from x's bf16 copy (Fusion.shadow) instead of its f32 value? A column sum of
 * a value that has one does: that value is a GEMM operand, in the backward a Linear's output gradient, which the
 * reference's autocast holds in bf16; the sum is that Linear's bias gradient, read at half the bytes (and when
 * nothing else reads the f32 value, it is never written). So does any generated kernel reading parts of a packed
 * backward output that have copies (the scan's du, dz; the conv's dx: packed_copy.h). */
bool codegen_reads_copy(const Fusion *f, const Group *gr, const Node *x);

/* A tuning knob from the environment: "A,B,..." into up to n ints (those not given stay 0); false when unset or
 * malformed (the default then applies). */
bool codegen_knob_ints(const char *name, int *v, int n);
/* (A knob of one integer: env_int, compiler/env_int.h, which names a bad value once.) */
/* Kernel-class label for a group of any kind ("gemm", "scan", "conv", "norm", "elementwise", "optimizer", ...). */
const char *codegen_group_class(const Fusion *f, const Group *gr);
