// emu_conv_mapped.cpp — conv1d templates reading mapped inputs (template.c def_rows): x is the reversed rows of the
// upper channel half of a [B, L, 2D] buffer, dy a row permutation (a __constant__-style table) of a [B, L, D]
// buffer. Checked on the CPU emulator against scan_ref.h on the materialised tensors.
#include "cuda_emu.h"
#include "emu_conv_compare.h"
#define CONV_B 3
#define CONV_L 11
#define CONV_D 40
#define CONV_K 4
#define X_T float
#define W_T float
#define BIAS_T float
#define OUT_T float
#define DY_T float
#define vmc_conv1d_fwd emu_conv1d_fwd_mapped
#define vmc_conv1d_bwd emu_conv1d_bwd_mapped
static const int perm_rows[CONV_L] = {3, 0, 10, 7, 1, 9, 2, 8, 5, 4, 6};
#define X_LROWS CONV_L
#define X_STRIDE (2 * CONV_D)
#define X_OFF CONV_D
#define X_ROW(t) (CONV_L - 1 - (t))
#define DY_LROWS CONV_L
#define DY_STRIDE CONV_D
#define DY_OFF 0
#define DY_ROW(t) perm_rows[t]
#include "../../codegen/templates/common.cuh"
#define CONV_SILU 0
#define CONV_VEC 4   // 4 channels per thread (16-byte accesses), as template.c picks for this map
#include "emu_conv_kernels.h"

extern "C" int emu_check_conv_mapped(void) {
    constexpr int B = CONV_B, L = CONV_L, D = CONV_D, K = CONV_K;
    const size_t n = (size_t)B * L * D;
    RefRng r = {11};
    std::vector<float> wide(2 * n), dyraw(n), w((size_t)D * K), bias(D), y(n, NAN), dx(n, NAN);
    std::vector<float> dw((size_t)D * K, 0.f), db(D, 0.f), x(n), dy(n);
    for (auto &v : wide) v = (float)ref_normal(&r);
    for (auto &v : dyraw) v = (float)ref_normal(&r);
    for (auto &v : w) v = (float)(0.5 * ref_normal(&r));
    for (auto &v : bias) v = (float)(0.1 * ref_normal(&r));
    for (int b = 0; b < B; b++)   // the tensors the maps describe, materialised for the reference
        for (int t = 0; t < L; t++)
            for (int d = 0; d < D; d++) {
                x[((size_t)b * L + t) * D + d] = wide[((size_t)b * L + (L - 1 - t)) * 2 * D + D + d];
                dy[((size_t)b * L + t) * D + d] = dyraw[((size_t)b * L + perm_rows[t]) * D + d];
            }
    emu_conv_run(wide.data(), w.data(), bias.data(), y.data(), dyraw.data(), dx.data(), dw.data(), db.data());
    return conv_compare("conv1d mapped", B, L, D, K, 0, x.data(), dy.data(), w.data(), bias.data(), y.data(), dx.data(),
                        dw.data(), db.data());
}
