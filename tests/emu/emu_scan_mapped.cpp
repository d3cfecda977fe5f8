// emu_scan_mapped.cpp — scan templates reading every row-mappable input through a map (template.c def_rows), f32:
// u reversed rows; delta a channel slice; Bm and Cm slices of one x_proj-like [B, L, 40] buffer; z the upper half of
// an in_proj-like [B, L, 2D] buffer in a permuted row order; dout permuted. Checked on the CPU emulator against
// scan_ref.h on the materialised tensors.
#include "cuda_emu.h"
#include "../scan_ref.h"
#include <cstdio>
#include <vector>
#define SCAN_B 2
#define SCAN_L 13
#define SCAN_D 40
#define SCAN_N 16
#include "scan_f32_types.h"
#define SCAN_CHUNK 8
#define vmc_scan_fwd emu_scan_fwd_mapped
#define vmc_scan_bwd emu_scan_bwd_mapped
static const int perm13[SCAN_L] = {5, 12, 0, 3, 9, 1, 11, 7, 2, 10, 4, 8, 6};
enum { XP = 40, BOFF = 8, COFF = 24, DLW = SCAN_D + 8, DLOFF = 4 };   // buffer widths and slice offsets
#define U_LROWS SCAN_L
#define U_STRIDE SCAN_D
#define U_OFF 0
#define U_ROW(t) (SCAN_L - 1 - (t))
#define DL_LROWS SCAN_L
#define DL_STRIDE DLW
#define DL_OFF DLOFF
#define DL_ROW(t) (t)
#define BM_LROWS SCAN_L
#define BM_STRIDE XP
#define BM_OFF BOFF
#define BM_ROW(t) (t)
#define CM_LROWS SCAN_L
#define CM_STRIDE XP
#define CM_OFF COFF
#define CM_ROW(t) (t)
#define Z_LROWS SCAN_L
#define Z_STRIDE (2 * SCAN_D)
#define Z_OFF SCAN_D
#define Z_ROW(t) perm13[t]
#define DO_LROWS SCAN_L
#define DO_STRIDE SCAN_D
#define DO_OFF 0
#define DO_ROW(t) perm13[SCAN_L - 1 - (t)]
#include "../../codegen/templates/common.cuh"
#define SCAN_THREADS 128
#include "../../codegen/templates/selective_scan_fwd.cuh"
#undef SCAN_THREADS
#define SCAN_THREADS 64
#include "../../codegen/templates/selective_scan_bwd.cuh"

extern "C" int emu_check_scan_mapped(void) {
    constexpr int B = SCAN_B, L = SCAN_L, D = SCAN_D, N = SCAN_N;
    const size_t BLD = (size_t)B * L * D, BLN = (size_t)B * L * N;
    std::vector<float> u(BLD), dl(BLD), z(BLD), go(BLD), Al((size_t)D * N), Bm(BLN), Cm(BLN), Dv(D), bias(D);
    ref_scan_inputs(B, L, D, N, 5, u.data(), dl.data(), Al.data(), Bm.data(), Cm.data(), Dv.data(), bias.data(),
                    z.data(), go.data());
    // the buffers the maps point into, holding the reference tensors where the maps say (NaN elsewhere)
    std::vector<float> ub(BLD), dlb((size_t)B * L * DLW, NAN), xp((size_t)B * L * XP, NAN), zb(2 * BLD, NAN), gob(BLD);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            const size_t r = (size_t)b * L + t;
            for (int d = 0; d < D; d++) {
                ub[((size_t)b * L + (L - 1 - t)) * D + d] = u[r * D + d];
                dlb[r * DLW + DLOFF + d] = dl[r * D + d];
                zb[((size_t)b * L + perm13[t]) * 2 * D + D + d] = z[r * D + d];
                gob[((size_t)b * L + perm13[L - 1 - t]) * D + d] = go[r * D + d];
            }
            for (int n = 0; n < N; n++) { xp[r * XP + BOFF + n] = Bm[r * N + n]; xp[r * XP + COFF + n] = Cm[r * N + n]; }
        }
    std::vector<float> y(BLD, NAN);
    emu_launch({(unsigned)((D + 127) / 128), (unsigned)B, 1}, {128, 1, 1}, [&] {
        vmc_scan_fwd(ub.data(), dlb.data(), Al.data(), xp.data(), xp.data(), Dv.data(), bias.data(), zb.data(), y.data(), nullptr);
    });
    std::vector<double> yref(BLD);
    ref_scan_fwd(B, L, D, N, u.data(), dl.data(), Al.data(), Bm.data(), Cm.data(), Dv.data(), bias.data(), z.data(),
                 yref.data());
    int bad = 0;
    double e = rel_l2(y.data(), yref.data(), BLD);
    printf("%-14s fwd y      rel L2 %.3e\n", "scan mapped", e);
    bad += !(e < 1e-4);
    const size_t total = 3 * BLD + 2 * BLN + (size_t)D * N + 2 * (size_t)D;
    std::vector<float> packed(total, 0.f);
    emu_launch({(unsigned)((D + 63) / 64), (unsigned)B, 1}, {64, 1, 1}, [&] {
        vmc_scan_bwd(ub.data(), dlb.data(), Al.data(), xp.data(), xp.data(), Dv.data(), bias.data(), zb.data(), gob.data(),
                     packed.data(), nullptr, nullptr, nullptr);
    });
    std::vector<double> ref(total);
    ref_scan_bwd(B, L, D, N, u.data(), dl.data(), Al.data(), Bm.data(), Cm.data(), Dv.data(), bias.data(), z.data(),
                 go.data(), ref.data());
    static const char *names[8] = {"du", "ddelta", "dA_log", "dBm", "dCm", "dD", "ddelta_bias", "dz"};
    const size_t sizes[8] = {BLD, BLD, (size_t)D * N, BLN, BLN, (size_t)D, (size_t)D, BLD};
    size_t off = 0;
    for (int k = 0; k < 8; k++) {
        e = rel_l2(packed.data() + off, ref.data() + off, sizes[k]);
        printf("%-14s bwd %-11s rel L2 %.3e\n", "scan mapped", names[k], e);
        bad += !(e < 1e-4);
        off += sizes[k];
    }
    return bad;
}
