// emu_scan_long.cpp — scan templates for B=1, L=130 (three forward tiles and prefetch past the end, 17 backward
// chunks), D=40 (lanes past D in every warp-pair), N=12 (short rows: scalar bf16 loads, 24 of 32 reduce-scatter
// slots), bf16 Bm/Cm and f32 elsewhere, checked on the CPU emulator. dz's copy goes into a column block of a wider
// buffer (pass.h Fusion.into).
#include "cuda_emu.h"
#define SCAN_B 1
#define SCAN_L 130
#define SCAN_D 40
#define SCAN_N 12
#define U_T float
#define DELTA_T float
#define ALOG_T float
#define BC_T bf16
#define DSKIP_T float
#define DBIAS_T float
#define Z_T float
#define OUT_T float
#define DOUT_T float
#define SCAN_CHUNK 8
#define SCAN_STATES 1   // the forward saves the chunk-start states, the backward reads them
#define SCAN_COPY_PARTS 7   // du and dz in bf16 only, ddelta in both
#define SCAN_F32_PARTS 2
#define SCAN_DZ_COPY_LD 56  // dz's copy into columns 8..47 of rows 56 wide, as the in_proj gradient [dx | dz] takes it
#define EMU_DZ_COL 8
#define vmc_scan_fwd emu_scan_fwd_long
#define vmc_scan_bwd emu_scan_bwd_long
#include "../../codegen/templates/common.cuh"
#include "plain_rows.h"
#define SCAN_THREADS 128
#include "../../codegen/templates/selective_scan_fwd.cuh"
#undef SCAN_THREADS
#define SCAN_THREADS 64
#include "../../codegen/templates/selective_scan_bwd.cuh"
#define EMU_FWD emu_scan_fwd_long
#define EMU_BWD emu_scan_bwd_long
#define EMU_ENTRY emu_check_scan_long
#define EMU_NAME "scan long N12"
#define EMU_SEED 3
#define EMU_TOL 1e-4
#include "emu_scan_check.inc"
