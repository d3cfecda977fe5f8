// emu_attn_f32.cpp — attention.cuh's scalar path, all f32, in the shape of emu_attn.cpp (B=2, H=2, E=64, L=S=60,
// k and v slices of one buffer, block-causal mask): exact f32 arithmetic against the double reference.
#include "cuda_emu.h"
#define ATTN_B 2
#define ATTN_L 60
#define ATTN_S 60
#define ATTN_H 2
#define ATTN_E 64
#define ATTN_SCALE 0.125f
#define Q_T float
#define K_T float
#define V_T float
#define DO_T float
#define O_T float
#define MASK_T float
#define ATTN_FAST 0
#define EMU_KV_FUSED 1
#include "attn_rows.h"
#define vmc_attn_fwd emu_attn_fwd_f32
#define vmc_attn_bwd emu_attn_bwd_f32
#include "../../codegen/templates/common.cuh"
#include "../../codegen/templates/attention.cuh"
#define EMU_FWD emu_attn_fwd_f32
#define EMU_BWD emu_attn_bwd_f32
#define EMU_ENTRY emu_check_attn_f32
#define EMU_NAME "attn f32 60x60"
#define EMU_SEED 3
#define EMU_TOL 1e-5
#define EMU_MASK 1
#include "emu_attn_check.inc"
