// emu_scan_ungated.cpp — scan templates without the gate (SCAN_GATED 0: no z, y = C h + D u, no dz), as the
// 4-direction mixer runs them before gating the merged output once; bf16 activations, B=2, L=137 (three forward
// tiles, the last partial, their Bm/Cm rows copied by cp.async a tile ahead; a partial last chunk), D=80 (lanes past
// D), N=16 (5 decays of the forward on the FMA pipe, its y in 4 partial sums), the backward from the forward's saved
// states, du and ddelta with bf16 copies.
#include "cuda_emu.h"
#define SCAN_B 2
#define SCAN_L 137
#define SCAN_D 80
#define SCAN_N 16
#include "scan_bf16_types.h"
#define SCAN_GATED 0
#define SCAN_CHUNK 8
#define SCAN_STATES 1
#define SCAN_COPY_PARTS 3
#define SCAN_POLY_EXP 5   // the forward's timing knobs: 5 of 16 decays by exp2_fma, y in 4 partial sums
#define SCAN_Y_SPLIT 4
#define vmc_scan_fwd emu_scan_fwd_ungated
#define vmc_scan_bwd emu_scan_bwd_ungated
#include "../../codegen/templates/common.cuh"
#include "plain_rows.h"
#define SCAN_THREADS 128
#include "../../codegen/templates/selective_scan_fwd.cuh"
#undef SCAN_THREADS
#define SCAN_THREADS 64
#include "../../codegen/templates/selective_scan_bwd.cuh"
#define EMU_FWD emu_scan_fwd_ungated
#define EMU_BWD emu_scan_bwd_ungated
#define EMU_ENTRY emu_check_scan_ungated
#define EMU_NAME "scan ungated"
#define EMU_SEED 3
#define EMU_TOL 1e-2
#include "emu_scan_check.inc"
