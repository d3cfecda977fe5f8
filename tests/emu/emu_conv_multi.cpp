// emu_conv_multi.cpp — the conv1d forward of one input under three row orders in one launch (vmc_conv1d_fwd_multi,
// conv_multi.c): x is the upper channel half of a [B, L, 2D] buffer, read in order, reversed and through a
// permutation table, each direction with its own weights, bias and output, with SiLU; D = 72 leaves the second
// block of 64 channels partial. Each output against scan_ref.h's conv on the materialised direction.
#include "cuda_emu.h"
#include "../scan_ref.h"
#include <cstdio>
#include <vector>
#define CONV_B 3
#define CONV_L 11
#define CONV_D 72
#define CONV_K 4
#define X_T float
#define W_T float
#define BIAS_T float
#define OUT_T float
#define CONV_NDIR 3
#define CONV_SILU 1
#define CONV_VEC 2
#define CONV_MWARPS 4
static const int multi_perm[CONV_L] = {3, 0, 10, 7, 1, 9, 2, 8, 5, 4, 6};
#define X_LROWS CONV_L
#define X_STRIDE (2 * CONV_D)
#define X_OFF CONV_D
#define X0_ROW(t) (t)
#define X1_ROW(t) (CONV_L - 1 - (t))
#define X2_ROW(t) multi_perm[t]
#define vmc_conv1d_fwd_multi emu_conv1d_fwd_multi
#include "../../codegen/templates/common.cuh"
#include "../../codegen/templates/conv1d.cuh"

extern "C" int emu_check_conv_multi(void) {
    constexpr int B = CONV_B, L = CONV_L, D = CONV_D, K = CONV_K, ND = CONV_NDIR;
    const size_t n = (size_t)B * L * D;
    RefRng r = {19};
    std::vector<float> wide(2 * n), x(n), w[ND], bias[ND], y[ND];
    for (auto &v : wide) v = (float)ref_normal(&r);
    for (int j = 0; j < ND; j++) {
        w[j].resize((size_t)D * K);
        bias[j].resize(D);
        y[j].assign(n, NAN);
        for (auto &v : w[j]) v = (float)(0.5 * ref_normal(&r));
        for (auto &v : bias[j]) v = (float)(0.1 * ref_normal(&r));
    }
    emu_launch({(D + 32 * CONV_VEC - 1) / (32 * CONV_VEC), B, 1}, {32, CONV_MWARPS, 1}, [&] {
        emu_conv1d_fwd_multi(wide.data(), w[0].data(), bias[0].data(), y[0].data(), w[1].data(), bias[1].data(),
                             y[1].data(), w[2].data(), bias[2].data(), y[2].data(), nullptr, nullptr, nullptr);
    });
    int bad = 0;
    for (int j = 0; j < ND; j++) {
        for (int b = 0; b < B; b++)   // direction j's input, materialised for the reference
            for (int t = 0; t < L; t++) {
                const int row = j == 0 ? t : j == 1 ? L - 1 - t : multi_perm[t];
                for (int d = 0; d < D; d++) x[((size_t)b * L + t) * D + d] = wide[((size_t)b * L + row) * 2 * D + D + d];
            }
        std::vector<double> ref(n);
        ref_conv_fwd(B, L, D, K, x.data(), w[j].data(), bias[j].data(), 1, ref.data());
        const double e = rel_l2(y[j].data(), ref.data(), n);
        printf("conv1d multi   direction %d   rel L2 %.3e\n", j, e);
        bad += !(e < 1e-5);
    }
    return bad;
}
