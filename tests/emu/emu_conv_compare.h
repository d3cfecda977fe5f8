// emu_conv_compare.h — the conv1d emulator tests' check: runs the double-precision reference (scan_ref.h) on the
// materialised x and dy and compares the kernels' y, dx, dw and db (relative L2, tolerance 1e-5).
#pragma once
#include "../scan_ref.h"
#include <cstdio>
#include <vector>

static int conv_compare(const char *name, int B, int L, int D, int K, int silu, const float *x, const float *dy,
                        const float *w, const float *bias, const float *y, const float *dx, const float *dw,
                        const float *db) {
    const size_t n = (size_t)B * L * D;
    std::vector<double> yr(n), dxr(n), dwr((size_t)D * K), dbr(D);
    ref_conv_fwd(B, L, D, K, x, w, bias, silu, yr.data());
    ref_conv_bwd(B, L, D, K, dy, x, w, dxr.data(), dwr.data(), dbr.data());
    double e[4] = {rel_l2(y, yr.data(), n), rel_l2(dx, dxr.data(), n), rel_l2(dw, dwr.data(), (size_t)D * K),
                   rel_l2(db, dbr.data(), D)};
    static const char *names[4] = {"fwd y", "bwd dx", "bwd dw", "bwd db"};
    int bad = 0;
    for (int k = 0; k < 4; k++) {
        printf("%-14s %-14s rel L2 %.3e\n", name, names[k], e[k]);
        bad += !(e[k] < 1e-5);
    }
    return bad;
}
