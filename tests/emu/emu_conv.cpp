// emu_conv.cpp — conv1d templates (forward with fused SiLU, backward dx/dw/db) for B=5 (a partial batch group),
// L=37, D=40 (partial blocks), K=4, f32, checked on the CPU emulator against scan_ref.h.
#include "cuda_emu.h"
#include "emu_conv_compare.h"
#define CONV_B 5
#define CONV_L 37
#define CONV_D 40
#define CONV_K 4
#define X_T float
#define W_T float
#define BIAS_T float
#define OUT_T float
#define DY_T float
#include "../../codegen/templates/common.cuh"
#include "plain_rows.h"
#define CONV_SILU 1
#include "emu_conv_kernels.h"

extern "C" int emu_check_conv(void) {
    constexpr int B = CONV_B, L = CONV_L, D = CONV_D, K = CONV_K;
    const size_t n = (size_t)B * L * D;
    RefRng r = {7};
    std::vector<float> x(n), dy(n), w((size_t)D * K), bias(D), y(n), dx(n, NAN), dw((size_t)D * K, 0.f), db(D, 0.f);
    for (auto &v : x) v = (float)ref_normal(&r);
    for (auto &v : dy) v = (float)ref_normal(&r);
    for (auto &v : w) v = (float)(0.5 * ref_normal(&r));
    for (auto &v : bias) v = (float)(0.1 * ref_normal(&r));
    for (auto &v : y) v = NAN;
    emu_conv_run(x.data(), w.data(), bias.data(), y.data(), dy.data(), dx.data(), dw.data(), db.data());
    return conv_compare("conv1d f32", B, L, D, K, 1, x.data(), dy.data(), w.data(), bias.data(), y.data(), dx.data(),
                        dw.data(), db.data());
}
