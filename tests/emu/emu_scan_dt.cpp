// emu_scan_dt.cpp — the scan forward computing delta itself from dt_proj's input and weight (SCAN_DT_R, inference):
// `delta` points at the 48 dt columns of x_proj's output [rows][48 + 2N] (Bm and Cm its next columns, as the mixer
// lays them out), dt_w at W [D][48]; bf16, ungated, B=2, L=137 (three tiles, the last partial: its dt rows past L
// repeat row L-1), D=80 (a warp wholly past D, one partly). Against the double-precision reference fed delta =
// bf16(dt W^T) (the GEMM's stored product), once with the tiles staged by cp.async and once by loads.
#include "cuda_emu.h"
#define SCAN_B 2
#define SCAN_L 137
#define SCAN_D 80
#define SCAN_N 16
#define SCAN_DT_R 48
#include "scan_bf16_types.h"
#define SCAN_GATED 0
#define SCAN_CHUNK 8
#define SCAN_STATES 0
#define XW (SCAN_DT_R + 2 * SCAN_N)   // x_proj's output row: [dt | Bm | Cm]
#include "plain_rows.h"   // u and z as stored; delta (dt), Bm and Cm: columns of x_proj's output rows
#undef DL_STRIDE
#define DL_STRIDE XW
#undef BM_STRIDE
#define BM_STRIDE XW
#undef BM_OFF
#define BM_OFF SCAN_DT_R
#undef CM_STRIDE
#define CM_STRIDE XW
#undef CM_OFF
#define CM_OFF (SCAN_DT_R + SCAN_N)
#include "../../codegen/templates/common.cuh"
#define SCAN_THREADS 128
#define vmc_scan_fwd emu_scan_fwd_dt
#include "../../codegen/templates/selective_scan_fwd.cuh"
#undef vmc_scan_fwd
#include "../scan_ref.h"
#include <cstdio>
#include <vector>

extern "C" int emu_check_scan_dt(void) {
    constexpr int B = SCAN_B, L = SCAN_L, D = SCAN_D, N = SCAN_N, R = SCAN_DT_R;
    const size_t BLD = (size_t)B * L * D, BLN = (size_t)B * L * N, BL = (size_t)B * L;
    std::vector<float> u(BLD), dl(BLD), z(BLD), go(BLD), Al((size_t)D * N), Bm(BLN), Cm(BLN), Dv(D), bias(D);
    ref_scan_inputs(B, L, D, N, 11, u.data(), dl.data(), Al.data(), Bm.data(), Cm.data(), Dv.data(), bias.data(),
                    z.data(), go.data());
    // dt_proj's input and weight (bf16), and delta = bf16(dt W^T) as the GEMM would store it
    RefRng r = {12345};
    std::vector<float> dt(BL * R), W((size_t)D * R);
    for (float &v : dt) v = ref_round_bf16((float)ref_normal(&r));
    for (float &v : W) v = ref_round_bf16((float)(0.3 * ref_normal(&r)));
    for (size_t row = 0; row < BL; row++)
        for (int d = 0; d < D; d++) {
            double s = 0;
            for (int k = 0; k < R; k++) s += (double)dt[row * R + k] * W[(size_t)d * R + k];
            dl[row * D + d] = ref_round_bf16((float)s);
        }
    std::vector<bf16> xdbl(BL * XW), tw((size_t)D * R), tu(BLD);
    for (size_t row = 0; row < BL; row++) {
        for (int k = 0; k < R; k++) xdbl[row * XW + k] = from_f32<bf16>(dt[row * R + k]);
        for (int n = 0; n < N; n++) {
            Bm[row * N + n] = ref_round_bf16(Bm[row * N + n]);
            Cm[row * N + n] = ref_round_bf16(Cm[row * N + n]);
            xdbl[row * XW + R + n] = from_f32<bf16>(Bm[row * N + n]);
            xdbl[row * XW + R + N + n] = from_f32<bf16>(Cm[row * N + n]);
        }
    }
    for (size_t i = 0; i < W.size(); i++) tw[i] = from_f32<bf16>(W[i]);
    for (size_t i = 0; i < BLD; i++) { tu[i] = from_f32<bf16>(u[i]); u[i] = to_f32(tu[i]); }
    std::vector<double> yref(BLD);
    ref_scan_fwd(B, L, D, N, u.data(), dl.data(), Al.data(), Bm.data(), Cm.data(), Dv.data(), bias.data(), nullptr,
                 yref.data());
    int bad = 0;
    for (int pass = 0; pass < 2; pass++) {   // 0: cp.async staging; 1: loads (x_proj's output not 16-byte aligned)
        std::vector<bf16> buf(BL * XW + 8);
        bf16 *x = buf.data() + pass;   // (2 bytes off 16: the template falls back to its loads)
        for (size_t i = 0; i < BL * XW; i++) x[i] = xdbl[i];
        std::vector<bf16> y(BLD, from_f32<bf16>(NAN));
        const unsigned long copies0 = emu_cp_async_issued();
        emu_launch({(unsigned)((D + 127) / 128), (unsigned)B, 1}, {128, 1, 1}, [&] {
            emu_scan_fwd_dt(tu.data(), x, Al.data(), x, x, Dv.data(), bias.data(), nullptr, y.data(),
                            nullptr, tw.data());
        });
        const unsigned long copies = emu_cp_async_issued() - copies0;
        // a tile's dt rows (all 64, R/8 copies each) and its Bm/Cm rows (the rows there are, 4 copies each) per block
        const unsigned long want = pass ? 0 : (unsigned long)B * ((L + 63) / 64 * 64 * (R / 8) + L * 2 * N * 2 / 16);
        std::vector<float> yf(BLD);
        for (size_t i = 0; i < BLD; i++) yf[i] = to_f32(y[i]);
        const double e = rel_l2(yf.data(), yref.data(), BLD);
        printf("%-14s fwd y      rel L2 %.3e (delta = dt_proj's product inside, %s; %lu copies by cp.async, want %lu)\n",
               "scan dt", e, pass ? "loads" : "cp.async", copies, want);
        bad += !(e < 2.5e-3) + (copies != want);   // (3.8e-3 with delta left unrounded: the GEMM stored it in bf16)
    }
    return bad;
}
