// emu_scan_f32.cpp — scan templates instantiated for B=2, L=37 (a partial last chunk), D=80 (a partial block:
// lanes past D), N=16, all f32 (template.c's block sizes), the backward starting from the forward's saved chunk states, checked on
// the CPU emulator.
#include "cuda_emu.h"
#define SCAN_B 2
#define SCAN_L 37
#define SCAN_D 80
#define SCAN_N 16
#include "scan_f32_types.h"
#define SCAN_CHUNK 8
#define SCAN_STATES 1   // the forward saves the chunk-start states, the backward reads them
#define SCAN_POLY_EXP 16   // every decay of the forward by exp2_fma (the FMA pipe), checked at f32's tolerance
#define SCAN_Y_SPLIT 2
#define vmc_scan_fwd emu_scan_fwd_f32
#define vmc_scan_bwd emu_scan_bwd_f32
#include "../../codegen/templates/common.cuh"
#include "plain_rows.h"
#define SCAN_THREADS 128
#include "../../codegen/templates/selective_scan_fwd.cuh"
#undef SCAN_THREADS
#define SCAN_THREADS 64
#include "../../codegen/templates/selective_scan_bwd.cuh"
#define EMU_FWD emu_scan_fwd_f32
#define EMU_BWD emu_scan_bwd_f32
#define EMU_ENTRY emu_check_scan_f32
#define EMU_NAME "scan f32"
#define EMU_SEED 1
#define EMU_TOL 1e-4
#include "emu_scan_check.inc"
