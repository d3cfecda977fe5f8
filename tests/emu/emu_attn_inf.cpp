// emu_attn_inf.cpp — attention.cuh's scalar path with mixed storage types (bf16 q, v, mask; f32 k, dout, o) at
// B=1, H=2, E=40 (lanes past E), L=37, S=45, query row 5 masked all -inf (its o and dq exactly 0, no NaN); dq also
// as a bf16 copy.
#include "cuda_emu.h"
#define ATTN_B 1
#define ATTN_L 37
#define ATTN_S 45
#define ATTN_H 2
#define ATTN_E 40
#define ATTN_SCALE 0.158113883f
#define Q_T bf16
#define K_T float
#define V_T bf16
#define DO_T float
#define O_T float
#define MASK_T bf16
#define ATTN_FAST 0
#define ATTN_COPY_PARTS 1
#define EMU_KV_FUSED 0
#include "attn_rows.h"
#define vmc_attn_fwd emu_attn_fwd_inf
#define vmc_attn_bwd emu_attn_bwd_inf
#include "../../codegen/templates/common.cuh"
#include "../../codegen/templates/attention.cuh"
#define EMU_FWD emu_attn_fwd_inf
#define EMU_BWD emu_attn_bwd_inf
#define EMU_ENTRY emu_check_attn_inf
#define EMU_NAME "attn mixed -inf"
#define EMU_SEED 4
#define EMU_TOL 1e-5
#define EMU_MASK 0
#define EMU_INF_ROW 5
#include "emu_attn_check.inc"
