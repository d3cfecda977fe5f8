// emu_conv_multi_bwd.cpp — the backward of one input's conv1d + SiLU under three row orders in one launch
// (vmc_conv1d_bwd_multi): x the upper channel half of a [B, L, 2D] buffer read in order, reversed and through a
// permutation table; each direction's gradient dy + dy2 (dy2 a channel slice of a wider buffer); the directions' dx
// summed in x's row order, dw and db per direction; direction 2's dy read reversed and direction 1's dy2 through
// the table (the ConvDy row offsets). B = 5 (a partial group of 4 batches), D = 40 (a partial block of 32
// channels), L = 13 over 3 warps (rows 5w .. 5w + 4: the last warp's 2 past L). Against scan_ref.h's conv backward
// of each materialised direction.
#include "cuda_emu.h"
#include "../scan_ref.h"
#include <cstdio>
#include <vector>
#define CONV_B 5
#define CONV_L 13
#define CONV_D 40
#define CONV_K 4
#define X_T float
#define W_T float
#define BIAS_T float
#define OUT_T float
#define DY_T float
#define CONV_BACKWARD 1
#define CONV_DY2 1
#define DY2_T float
#define CONV_NDIR 3
#define CONV_MWARPS 3
#define CONV_MROWS 5
#define CONV_MBATCH 4
static const int mb_perm[CONV_L] = {3, 0, 10, 7, 1, 12, 9, 2, 8, 5, 11, 4, 6};
#define X_LROWS CONV_L
#define X_STRIDE (2 * CONV_D)
#define X_OFF CONV_D
#define X0_ROW(t) (t)
#define X1_ROW(t) (CONV_L - 1 - (t))
#define X2_ROW(t) mb_perm[t]
#define DYA0_LROWS CONV_L
#define DYA0_STRIDE CONV_D
#define DYA0_OFF 0
#define DYA0_ROW(t) (t)
#define DYA1_LROWS CONV_L
#define DYA1_STRIDE CONV_D
#define DYA1_OFF 0
#define DYA1_ROW(t) (t)
#define DYA2_LROWS CONV_L
#define DYA2_STRIDE CONV_D
#define DYA2_OFF 0
#define DYA2_ROW(t) (CONV_L - 1 - (t))
#define DYB0_LROWS CONV_L
#define DYB0_STRIDE (3 * CONV_D)
#define DYB0_OFF CONV_D
#define DYB0_ROW(t) (t)
#define DYB1_LROWS CONV_L
#define DYB1_STRIDE (3 * CONV_D)
#define DYB1_OFF CONV_D
#define DYB1_ROW(t) mb_perm[t]
#define DYB2_LROWS CONV_L
#define DYB2_STRIDE (3 * CONV_D)
#define DYB2_OFF CONV_D
#define DYB2_ROW(t) (t)
#define vmc_conv1d_bwd_multi emu_conv1d_bwd_multi
#include "../../codegen/templates/common.cuh"
#include "../../codegen/templates/conv1d.cuh"

extern "C" int emu_check_conv_multi_bwd(void) {
    constexpr int B = CONV_B, L = CONV_L, D = CONV_D, K = CONV_K, ND = CONV_NDIR;
    const size_t n = (size_t)B * L * D;
    RefRng r = {23};
    std::vector<float> wide(2 * n), dx_sum(n, NAN), x(n), dyv(n);
    std::vector<float> dy[ND], dy2w[ND], w[ND], bias[ND], dw[ND], db[ND];
    for (auto &v : wide) v = (float)ref_normal(&r);
    for (int j = 0; j < ND; j++) {
        dy[j].resize(n);
        dy2w[j].resize(3 * n);
        w[j].resize((size_t)D * K);
        bias[j].resize(D);
        dw[j].assign((size_t)D * K, 0.f);
        db[j].assign(D, 0.f);
        for (auto &v : dy[j]) v = (float)ref_normal(&r);
        for (auto &v : dy2w[j]) v = (float)ref_normal(&r);
        for (auto &v : w[j]) v = (float)(0.5 * ref_normal(&r));
        for (auto &v : bias[j]) v = (float)(0.1 * ref_normal(&r));
    }
    emu_launch({(D + 31) / 32, (B + CONV_MBATCH - 1) / CONV_MBATCH, 1}, {32, CONV_MWARPS, 1}, [&] {
        emu_conv1d_bwd_multi(wide.data(), dx_sum.data(), dy[0].data(), dy2w[0].data(), w[0].data(), bias[0].data(),
                             dw[0].data(), db[0].data(), dy[1].data(), dy2w[1].data(), w[1].data(), bias[1].data(),
                             dw[1].data(), db[1].data(), dy[2].data(), dy2w[2].data(), w[2].data(), bias[2].data(),
                             dw[2].data(), db[2].data(), nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
    });
    std::vector<double> sum(n, 0.0), p(n), dxr(n), dwr((size_t)D * K), dbr(D);
    int bad = 0;
    for (int j = 0; j < ND; j++) {
        auto row = [&](int t) { return j == 0 ? t : j == 1 ? L - 1 - t : mb_perm[t]; };
        for (int b = 0; b < B; b++)   // direction j's input, materialised
            for (int t = 0; t < L; t++)
                for (int d = 0; d < D; d++) x[((size_t)b * L + t) * D + d] = wide[((size_t)b * L + row(t)) * 2 * D + D + d];
        ref_conv_fwd(B, L, D, K, x.data(), w[j].data(), bias[j].data(), 0, p.data());
        for (int b = 0; b < B; b++)
            for (int t = 0; t < L; t++)
                for (int d = 0; d < D; d++) {
                    const size_t i = ((size_t)b * L + t) * D + d;
                    const int ta = j == 2 ? L - 1 - t : t, tb = j == 1 ? mb_perm[t] : t;   // dy, dy2 row maps
                    const double g = dy[j][((size_t)b * L + ta) * D + d] + dy2w[j][((size_t)b * L + tb) * 3 * D + D + d],
                                 s = ref_sigmoid(p[i]);
                    dyv[i] = (float)(g * s * (1 + p[i] * (1 - s)));
                }
        ref_conv_bwd(B, L, D, K, dyv.data(), x.data(), w[j].data(), dxr.data(), dwr.data(), dbr.data());
        for (int b = 0; b < B; b++)   // direction j's dx back in x's row order
            for (int t = 0; t < L; t++)
                for (int d = 0; d < D; d++) sum[((size_t)b * L + row(t)) * D + d] += dxr[((size_t)b * L + t) * D + d];
        const double ew = rel_l2(dw[j].data(), dwr.data(), (size_t)D * K), eb = rel_l2(db[j].data(), dbr.data(), D);
        printf("conv1d multi bwd direction %d   dw rel L2 %.3e, db %.3e\n", j, ew, eb);
        bad += !(ew < 1e-5) + !(eb < 1e-5);
    }
    const double ex = rel_l2(dx_sum.data(), sum.data(), n);
    printf("conv1d multi bwd summed dx   rel L2 %.3e\n", ex);
    return bad + !(ex < 1e-5);
}
