// emu_attn_inf_fast.cpp — attention.cuh's tensor-core path at its smallest head dim, B=1, H=1, E=16, L=20, S=72 (two
// backward key chunks, 64 + 16 padded keys), query row 3 masked all -inf (its o and dq exactly 0, no NaN).
#include "cuda_emu.h"
#define ATTN_B 1
#define ATTN_L 20
#define ATTN_S 72
#define ATTN_H 1
#define ATTN_E 16
#define ATTN_SCALE 0.25f
#include "attn_bf16_types.h"
#define O_T float
#define MASK_T float
#define ATTN_FAST 1
#define EMU_KV_FUSED 0
#include "attn_rows.h"
#define vmc_attn_fwd emu_attn_fwd_inf_fast
#define vmc_attn_bwd emu_attn_bwd_inf_fast
#include "../../codegen/templates/common.cuh"
#include "../../codegen/templates/attention.cuh"
#define EMU_FWD emu_attn_fwd_inf_fast
#define EMU_BWD emu_attn_bwd_inf_fast
#define EMU_ENTRY emu_check_attn_inf_fast
#define EMU_NAME "attn bf16 -inf"
#define EMU_SEED 5
#define EMU_TOL 1e-2
#define EMU_MASK 0
#define EMU_INF_ROW 3
#include "emu_attn_check.inc"
