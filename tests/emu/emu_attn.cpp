// emu_attn.cpp — attention.cuh on the CPU emulator. This file: the tensor-core path (bf16) at B=2, H=2, E=64,
// L = S = 60 (partial m16 / k16 tiles), k and v channel slices of one [B, S, 2 H E] buffer, a block-causal mask,
// o stored bf16, all three gradients also as bf16 copies. emu_check_attn() runs every attention check (the other
// instantiations live in emu_attn_*.cpp: their defines would clash here).
#include "cuda_emu.h"
#define ATTN_B 2
#define ATTN_L 60
#define ATTN_S 60
#define ATTN_H 2
#define ATTN_E 64
#define ATTN_SCALE 0.125f
#include "attn_bf16_types.h"
#define O_T bf16
#define MASK_T float
#define ATTN_FAST 1
#define ATTN_COPY_PARTS 7
#define EMU_KV_FUSED 1
#include "attn_rows.h"
#define vmc_attn_fwd emu_attn_fwd_fast
#define vmc_attn_bwd emu_attn_bwd_fast
#include "../../codegen/templates/common.cuh"
#include "../../codegen/templates/attention.cuh"
#define EMU_FWD emu_attn_fwd_fast
#define EMU_BWD emu_attn_bwd_fast
#define EMU_ENTRY emu_check_attn_fast
#define EMU_NAME "attn bf16 60x60"
#define EMU_SEED 1
#define EMU_TOL 1e-2
#define EMU_MASK 1
#include "emu_attn_check.inc"

extern "C" int emu_check_attn_ls(void);
extern "C" int emu_check_attn_f32(void);
extern "C" int emu_check_attn_inf(void);
extern "C" int emu_check_attn_inf_fast(void);
extern "C" int emu_check_attn_chunk32(void);
extern "C" int emu_check_attn(void) {
    return emu_check_attn_fast() + emu_check_attn_ls() + emu_check_attn_f32() + emu_check_attn_inf() +
           emu_check_attn_inf_fast() + emu_check_attn_chunk32();
}
