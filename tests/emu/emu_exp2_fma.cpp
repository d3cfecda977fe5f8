// emu_exp2_fma.cpp — common.cuh's exp2_fma (2^x for x <= 0 on the FMA pipe, the scan forward's SCAN_POLY_EXP) against
// the double 2^x over [-125, 0] in steps of 1/4096 and the floats either side of each, the clamp below -125, 2^0.
#include "cuda_emu.h"
#include "../../codegen/templates/common.cuh"
#include <cmath>
#include <cstdio>

extern "C" int emu_check_exp2_fma(void) {
    double worst = 0, worst_x = 0;
    for (int i = 0; i <= 125 * 4096; i++) {
        const float x0 = -(float)i / 4096.f, xs[3] = {std::nextafter(x0, -INFINITY), x0, std::nextafter(x0, 0.f)};
        for (float x : xs) {
            if (x > 0.f || x < -125.f) continue;
            const double e = std::fabs(exp2_fma(x) / std::exp2((double)x) - 1);
            if (e > worst) worst = e, worst_x = x;
        }
    }
    const float below = exp2_fma(-300.f), at0 = exp2_fma(0.f);
    const bool ok = worst < 2.5e-7 && below > 0.f && below <= std::exp2(-124.5) && at0 == 1.f;
    printf("exp2_fma       worst relative error %.2e at x = %.6f over [-125, 0]; 2^-300 -> %.3e, 2^0 -> %.9g%s\n",
           worst, worst_x, below, at0, ok ? "" : " FAILED");
    return !ok;
}
