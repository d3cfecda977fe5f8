// emu_conv_vec2.cpp — as emu_conv.cpp with 2 channels per thread: conv1d templates (forward with fused SiLU, backward dx/dw/db) for B=5 (a partial batch group),
// L=37, D=40 (partial blocks), K=4, f32, checked on the CPU emulator against scan_ref.h.
#include "cuda_emu.h"
#include "emu_conv_compare.h"
#define CONV_B 5
#define CONV_L 37
#define CONV_D 40
#define CONV_K 4
#define X_T float
#define W_T float
#define BIAS_T float
#define OUT_T float
#define DY_T float
#include "../../codegen/templates/common.cuh"
#include "plain_rows.h"
#define CONV_SILU 1
#define CONV_VEC 2   // 2 channels per thread (8-byte f32 accesses): a conv tuning knob's narrower width
#define vmc_conv1d_fwd emu_conv1d_fwd_vec2
#define vmc_conv1d_bwd emu_conv1d_bwd_vec2
#include "emu_conv_kernels.h"

#define EMU_ENTRY emu_check_conv_vec2
#define EMU_NAME "conv1d f32 x2"
#include "emu_conv_check.inc"
