// emu_attn_ls.cpp — attention.cuh's tensor-core path at B=1, H=1, E=32, L=128 (8 warps), S=48 (L != S), a random
// finite bf16 mask, separate k and v buffers, q read through a reversed row map and dout as a channel slice at an
// offset that is not 16-byte aligned (the 2-byte staging loads); dq and dk stored f32, dk and dv as bf16 copies
// (dv only as its copy).
#include "cuda_emu.h"
#define ATTN_B 1
#define ATTN_L 128
#define ATTN_S 48
#define ATTN_H 1
#define ATTN_E 32
#define ATTN_SCALE 0.176776695f
#include "attn_bf16_types.h"
#define O_T float
#define MASK_T bf16
#define ATTN_FAST 1
#define ATTN_F32_PARTS 3
#define ATTN_COPY_PARTS 6
#define Q_LROWS 128
#define Q_STRIDE 32
#define Q_OFF 0
#define Q_ROW(t) (127 - (t))
#define DO_LROWS 128
#define DO_STRIDE 40
#define DO_OFF 4
#define DO_ROW(t) (t)
#define K_LROWS 48
#define K_STRIDE 32
#define K_OFF 0
#define K_ROW(t) (t)
#define V_LROWS 48
#define V_STRIDE 32
#define V_OFF 0
#define V_ROW(t) (t)
#define vmc_attn_fwd emu_attn_fwd_ls
#define vmc_attn_bwd emu_attn_bwd_ls
#include "../../codegen/templates/common.cuh"
#include "../../codegen/templates/attention.cuh"
#define EMU_FWD emu_attn_fwd_ls
#define EMU_BWD emu_attn_bwd_ls
#define EMU_ENTRY emu_check_attn_ls
#define EMU_NAME "attn bf16 128x48"
#define EMU_SEED 2
#define EMU_TOL 1e-2
#define EMU_MASK 0
#define EMU_KV_FUSED 0
#include "emu_attn_check.inc"
