// emu_conv_silu_bwd.cpp — the conv1d backward through the SiLU after it (OP_CONV1D_SILU_BWD), as ARM training runs
// it: the gradient at silu(conv(x)) arrives as two addends (the scan's du, f32 here, and x_proj's input gradient in
// bf16), x is bf16, the conv output is recomputed. B=3, L=21, D=40, K=4, 2 channels per thread, checked on the CPU
// emulator against scan_ref.h: g = (dy + dy2) silu'(p), then the plain conv backward of g. dx's bf16 copy goes into
// a column block of a wider buffer.
#include "cuda_emu.h"
#include "emu_conv_compare.h"
#define CONV_B 3
#define CONV_L 21
#define CONV_D 40
#define CONV_K 4
#define X_T bf16
#define W_T float
#define BIAS_T float
#define OUT_T float
#define DY_T float
#define DY2_T bf16
#define CONV_SILU 1
#define CONV_SILU_DY 1
#define CONV_DY2 1
#define CONV_VEC 2   // as template.c picks
#define CONV_COPY_DX 1   // dx also as a bf16 copy (compiler/packed_copy.h): the rounded f32 value, into columns
#define CONV_DX_COPY_LD 56   // 8..47 of rows 56 wide, as the in_proj gradient [dx | dz] takes it (pass.h Fusion.into)
enum { DX_COL = 8 };
#define vmc_conv1d_fwd emu_conv1d_fwd_silu_bwd
#define vmc_conv1d_bwd emu_conv1d_bwd_silu_bwd
#include "../../codegen/templates/common.cuh"
#include "plain_rows.h"
#define DY2_LROWS CONV_L
#define DY2_STRIDE CONV_D
#define DY2_OFF 0
#define DY2_ROW(t) (t)
#include "emu_conv_kernels.h"

extern "C" int emu_check_conv_silu_bwd(void) {
    constexpr int B = CONV_B, L = CONV_L, D = CONV_D, K = CONV_K;
    const size_t n = (size_t)B * L * D;
    RefRng r = {13};
    std::vector<bf16> xb(n), dy2b(n);
    std::vector<float> x(n), dy(n), dy2(n), w((size_t)D * K), bias(D), dx(n, NAN), dw((size_t)D * K, 0.f), db(D, 0.f);
    for (size_t i = 0; i < n; i++) {
        xb[i] = from_f32<bf16>((float)ref_normal(&r));
        x[i] = to_f32(xb[i]);
        dy[i] = (float)ref_normal(&r);
        dy2b[i] = from_f32<bf16>((float)ref_normal(&r));
        dy2[i] = to_f32(dy2b[i]);
    }
    for (auto &v : w) v = (float)(0.5 * ref_normal(&r));
    for (auto &v : bias) v = (float)(0.1 * ref_normal(&r));
    std::vector<bf16> dxc((size_t)B * L * CONV_DX_COPY_LD, from_f32<bf16>(NAN));
    emu_conv_bwd_run(dy.data(), xb.data(), w.data(), dx.data(), dw.data(), db.data(), bias.data(), dy2b.data(),
                     dxc.data() + DX_COL);
    size_t wrong = 0, outside = 0;
    for (size_t i = 0; i < n; i++) wrong += dxc[i / D * CONV_DX_COPY_LD + DX_COL + i % D].x != from_f32<bf16>(dx[i]).x;
    for (size_t i = 0; i < dxc.size(); i++) {
        const size_t c = i % CONV_DX_COPY_LD;
        outside += (c < DX_COL || c >= DX_COL + D) && to_f32(dxc[i]) == to_f32(dxc[i]);
    }
    printf("%-14s bwd dx bf16 copy (columns %d..%d of rows %d wide): %zu of %zu elements differ from the rounded f32 "
           "value, %zu written outside\n", "conv silu_bwd", DX_COL, DX_COL + D - 1, CONV_DX_COPY_LD, wrong, n, outside);
    wrong += outside;
    std::vector<double> p(n), dxr(n), dwr((size_t)D * K), dbr(D);
    ref_conv_fwd(B, L, D, K, x.data(), w.data(), bias.data(), 0, p.data());
    std::vector<float> g(n);
    for (size_t i = 0; i < n; i++) {
        const double s = ref_sigmoid(p[i]);
        g[i] = (float)(((double)dy[i] + dy2[i]) * s * (1 + p[i] * (1 - s)));
    }
    ref_conv_bwd(B, L, D, K, g.data(), x.data(), w.data(), dxr.data(), dwr.data(), dbr.data());
    const double e[3] = {rel_l2(dx.data(), dxr.data(), n), rel_l2(dw.data(), dwr.data(), (size_t)D * K),
                         rel_l2(db.data(), dbr.data(), D)};
    static const char *names[3] = {"bwd dx", "bwd dw", "bwd db"};
    int bad = wrong != 0;
    for (int k = 0; k < 3; k++) {
        printf("%-14s %-14s rel L2 %.3e\n", "conv silu_bwd", names[k], e[k]);
        bad += !(e[k] < 1e-5);
    }
    return bad;
}
