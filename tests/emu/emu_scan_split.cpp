// emu_scan_split.cpp — the scan backward with two threads per channel (SCAN_SPLIT 2, 8 states each) for B=2,
// L=37 (a partial last chunk), D=80 (a partial block), N=16, all f32, checked on the CPU emulator.
#include "cuda_emu.h"
#define SCAN_B 2
#define SCAN_L 37
#define SCAN_D 80
#define SCAN_N 16
#include "scan_f32_types.h"
#define SCAN_CHUNK 8
#define SCAN_SPLIT 2
#define vmc_scan_fwd emu_scan_fwd_split
#define vmc_scan_bwd emu_scan_bwd_split
#include "../../codegen/templates/common.cuh"
#include "plain_rows.h"
#define SCAN_THREADS 128
#include "../../codegen/templates/selective_scan_fwd.cuh"
#undef SCAN_THREADS
#define SCAN_THREADS 64
#include "../../codegen/templates/selective_scan_bwd.cuh"
#define EMU_FWD emu_scan_fwd_split
#define EMU_BWD emu_scan_bwd_split
#define EMU_ENTRY emu_check_scan_split
#define EMU_NAME "scan split"
#define EMU_SEED 4
#define EMU_TOL 1e-4
#include "emu_scan_check.inc"
