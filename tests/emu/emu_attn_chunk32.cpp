// emu_attn_chunk32.cpp — attention.cuh's tensor-core path with backward chunks of 32 keys (ATTN_CHUNK 32, what
// template.c picks where 64 does not fit, as Ada's 99 KB at ARM-B's shapes): B=1, H=2, E=32, L=48, S=99 (four
// chunks, the last a partial tile; odd, so the mask is read an element at a time, not in pairs), k and v slices of
// one buffer, a block-causal mask.
#include "cuda_emu.h"
#define ATTN_B 1
#define ATTN_L 48
#define ATTN_S 99
#define ATTN_H 2
#define ATTN_E 32
#define ATTN_SCALE 0.176776695f
#include "attn_bf16_types.h"
#define O_T bf16
#define MASK_T float
#define ATTN_FAST 1
#define ATTN_CHUNK 32
#define ATTN_COPY_PARTS 7
#define EMU_KV_FUSED 1
#include "attn_rows.h"
#define vmc_attn_fwd emu_attn_fwd_chunk32
#define vmc_attn_bwd emu_attn_bwd_chunk32
#include "../../codegen/templates/common.cuh"
#include "../../codegen/templates/attention.cuh"
static_assert(ATTN_SC == 32 && ATTN_NCH == 4, "four chunks of 32 keys");
#define EMU_FWD emu_attn_fwd_chunk32
#define EMU_BWD emu_attn_bwd_chunk32
#define EMU_ENTRY emu_check_attn_chunk32
#define EMU_NAME "attn chunk 32"
#define EMU_SEED 6
#define EMU_TOL 1e-2
#define EMU_MASK 1
#include "emu_attn_check.inc"
