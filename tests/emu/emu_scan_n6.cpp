// emu_scan_n6.cpp — the scan templates with N=6 (scalar row loads, 12 of 32 reduce-scatter slots) and 4-row chunks
// (checkpoints in both du and ddelta rows), bf16 activations, B=1, L=21, D=40, on the emulator.
#include "cuda_emu.h"
#define SCAN_B 1
#define SCAN_L 21
#define SCAN_D 40
#define SCAN_N 6
#include "scan_bf16_types.h"
#define SCAN_CHUNK 4
#define vmc_scan_fwd emu_scan_fwd_n6
#define vmc_scan_bwd emu_scan_bwd_n6
#include "../../codegen/templates/common.cuh"
#include "plain_rows.h"
#define SCAN_THREADS 128
#include "../../codegen/templates/selective_scan_fwd.cuh"
#undef SCAN_THREADS
#define SCAN_THREADS 64
#include "../../codegen/templates/selective_scan_bwd.cuh"
#define EMU_FWD emu_scan_fwd_n6
#define EMU_BWD emu_scan_bwd_n6
#define EMU_ENTRY emu_check_scan_n6
#define EMU_NAME "scan n6"
#define EMU_SEED 5
#define EMU_TOL 1e-2
#include "emu_scan_check.inc"
