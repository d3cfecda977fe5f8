// emu_conv_kernels.h — instantiates the conv1d forward and backward templates with template.c's block sizes
// (forward 64 threads x 8 rows, CONV_VEC channels each, default 1; backward 64 channels x 4 row groups x 10
// rows, 4 batches per block) and runs both on the emulator. Include after the CONV_* shape and dtype defines, CONV_SILU and the row maps (plain_rows.h
// or the file's own) and common.cuh; vmc_conv1d_fwd/bwd may be #defined to other names first.
#define CONV_THREADS 64
#define EMU_FWD_ROWS 8   // the forward's CONV_ROWS (redefined for the backward below)
#define CONV_ROWS EMU_FWD_ROWS
#include "../../codegen/templates/conv1d.cuh"
#undef CONV_ROWS
#define CONV_BACKWARD 1
#define CONV_WANT_DX 1
#define CONV_WANT_DW 1
#define CONV_WANT_DB 1
#define CONV_CH 64
#define CONV_GROUPS 4
#define CONV_ROWS 10
#define CONV_BATCH 4
#include "../../codegen/templates/conv1d.cuh"

// y = conv(x) (+ SiLU); dx, dw, db from dy (dw, db accumulated: zero them first). Pointers are the buffers the
// row maps index.
static void emu_conv_bwd_run(const DY_T *dy, const X_T *x, const float *w, float *dx, float *dw, float *db,
                             const float *bias, const DY2_T *dy2, bf16 *dx_copy = nullptr) {
    constexpr unsigned B = CONV_B, L = CONV_L, D = CONV_D;
    emu_launch({(D + CONV_CH * CONV_VEC - 1) / (CONV_CH * CONV_VEC), (L + CONV_GROUPS * CONV_ROWS - 1) / (CONV_GROUPS * CONV_ROWS),
                (B + CONV_BATCH - 1) / CONV_BATCH}, {CONV_CH, CONV_GROUPS, 1},
               [&] { vmc_conv1d_bwd(dy, x, w, dx, dw, db, bias, dy2, dx_copy); });
}

static void emu_conv_run(const X_T *x, const float *w, const float *bias, OUT_T *y, const DY_T *dy, float *dx,
                         float *dw, float *db) {
    constexpr unsigned B = CONV_B, L = CONV_L, D = CONV_D;
    emu_launch({(D + CONV_THREADS * CONV_VEC - 1) / (CONV_THREADS * CONV_VEC), (L + EMU_FWD_ROWS - 1) / EMU_FWD_ROWS, B}, {CONV_THREADS, 1, 1},
               [&] { vmc_conv1d_fwd(x, w, bias, y, nullptr); });
    emu_conv_bwd_run(dy, x, w, dx, dw, db, nullptr, nullptr);
}
