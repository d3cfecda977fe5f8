// emu_scan_bf16.cpp — scan templates with bf16 activations (u, delta, Bm, Cm, z, dout, y) and f32 weights, for
// B=3, L=8 (exactly one chunk: no pass-1 checkpoints), D=64, N=16, checked on the CPU emulator. The reference
// sees the same bf16-rounded inputs; y is compared after its bf16 rounding.
#include "cuda_emu.h"
#define SCAN_B 3
#define SCAN_L 8
#define SCAN_D 64
#define SCAN_N 16
#include "scan_bf16_types.h"
#define SCAN_CHUNK 8
#define SCAN_COPY_PARTS 7   // all three copies beside the f32 parts
#define vmc_scan_fwd emu_scan_fwd_bf16
#define vmc_scan_bwd emu_scan_bwd_bf16
#include "../../codegen/templates/common.cuh"
#include "plain_rows.h"
#define SCAN_THREADS 128
#include "../../codegen/templates/selective_scan_fwd.cuh"
#undef SCAN_THREADS
#define SCAN_THREADS 64
#include "../../codegen/templates/selective_scan_bwd.cuh"
#define EMU_FWD emu_scan_fwd_bf16
#define EMU_BWD emu_scan_bwd_bf16
#define EMU_ENTRY emu_check_scan_bf16
#define EMU_NAME "scan bf16"
#define EMU_SEED 2
#define EMU_TOL 1e-2
#include "emu_scan_check.inc"
