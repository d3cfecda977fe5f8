// emu_conv_silu_out.cpp — the conv1d forward of a graph that reads both y = conv(x) and y2 = silu(y), the latter in
// bf16 (ARM training did, before CONV1D_SILU_BWD recomputed y). B=2, L=21, D=40, K=4, 2 channels per thread,
// checked on the CPU emulator against scan_ref.h.
#include "cuda_emu.h"
#include "emu_conv_compare.h"
#define CONV_B 2
#define CONV_L 21
#define CONV_D 40
#define CONV_K 4
#define X_T float
#define W_T float
#define BIAS_T float
#define OUT_T float
#define OUT2_T bf16
#define DY_T float
#define CONV_SILU 0
#define CONV_SILU_OUT 1
#define CONV_VEC 2   // as template.c picks
#define vmc_conv1d_fwd emu_conv1d_fwd_silu_out
#define vmc_conv1d_bwd emu_conv1d_bwd_silu_out
#include "../../codegen/templates/common.cuh"
#include "plain_rows.h"
#include "emu_conv_kernels.h"

extern "C" int emu_check_conv_silu_out(void) {
    constexpr int B = CONV_B, L = CONV_L, D = CONV_D, K = CONV_K;
    const size_t n = (size_t)B * L * D;
    RefRng r = {11};
    std::vector<float> x(n), w((size_t)D * K), bias(D), y(n, NAN);
    std::vector<bf16> y2(n, from_f32<bf16>(NAN));
    for (auto &v : x) v = (float)ref_normal(&r);
    for (auto &v : w) v = (float)(0.5 * ref_normal(&r));
    for (auto &v : bias) v = (float)(0.1 * ref_normal(&r));
    emu_launch({(D + CONV_THREADS * CONV_VEC - 1) / (CONV_THREADS * CONV_VEC), (L + EMU_FWD_ROWS - 1) / EMU_FWD_ROWS, B}, {CONV_THREADS, 1, 1},
               [&] { vmc_conv1d_fwd(x.data(), w.data(), bias.data(), y.data(), y2.data()); });
    std::vector<double> yr(n), y2r(n);
    ref_conv_fwd(B, L, D, K, x.data(), w.data(), bias.data(), 0, yr.data());
    ref_conv_fwd(B, L, D, K, x.data(), w.data(), bias.data(), 1, y2r.data());
    std::vector<float> y2f(n);
    for (size_t i = 0; i < n; i++) y2f[i] = to_f32(y2[i]);
    const double e = rel_l2(y.data(), yr.data(), n), e2 = rel_l2(y2f.data(), y2r.data(), n);
    printf("%-14s fwd y          rel L2 %.3e\n%-14s fwd silu(y) bf16 rel L2 %.3e\n", "conv silu_out", e, "conv silu_out", e2);
    return !(e < 1e-5) + !(e2 < 1e-2);
}
