// selective_scan_fwd.cuh — forward of the gated selective scan (ARM_SPEC §2.3), one thread per (b, d) channel.
// Needs: SCAN_B, SCAN_L, SCAN_D, SCAN_N (<= 16), SCAN_THREADS; dtypes U_T, DELTA_T, ALOG_T, BC_T, DSKIP_T, DBIAS_T,
// Z_T, OUT_T. Grid (ceil(D/SCAN_THREADS), B). The N states live in registers across t; a warp reads 32
// consecutive d of each row (coalesced), and the Bm/Cm row of time t is one broadcast vector load for the block.
// One pass over the inputs; the cost is the N exp2 per element (MUFU), so A is pre-scaled by log2(e).

extern "C" __global__ void __launch_bounds__(SCAN_THREADS)
vmc_scan_fwd(const U_T *__restrict__ u, const DELTA_T *__restrict__ delta, const ALOG_T *__restrict__ A_log,
             const BC_T *__restrict__ Bm, const BC_T *__restrict__ Cm, const DSKIP_T *__restrict__ Dskip,
             const DBIAS_T *__restrict__ delta_bias, const Z_T *__restrict__ z, OUT_T *__restrict__ out) {
    const int d = blockIdx.x * SCAN_THREADS + threadIdx.x, b = blockIdx.y;
    if (d >= SCAN_D) return;
    float A2[SCAN_N], h[SCAN_N];
#pragma unroll
    for (int n = 0; n < SCAN_N; n++) {
        A2[n] = -expf(to_f32(A_log[d * SCAN_N + n])) * VMC_LOG2E;
        h[n] = 0.f;
    }
    const float Dd = to_f32(Dskip[d]), bias = to_f32(delta_bias[d]);
    const size_t row0 = (size_t)b * SCAN_L;
#pragma unroll 2
    for (int t = 0; t < SCAN_L; t++) {
        const size_t i = (row0 + t) * SCAN_D + d;
        const float uu = to_f32(u[i]), dl = softplus_f(to_f32(delta[i]) + bias), zz = to_f32(z[i]);
        float Bv[SCAN_N], Cv[SCAN_N];
        load_row<SCAN_N>(Bm + (row0 + t) * SCAN_N, Bv);
        load_row<SCAN_N>(Cm + (row0 + t) * SCAN_N, Cv);
        const float dlu = dl * uu;
        float y = Dd * uu;
#pragma unroll
        for (int n = 0; n < SCAN_N; n++) {
            h[n] = fmaf(exp2f(dl * A2[n]), h[n], dlu * Bv[n]);
            y = fmaf(Cv[n], h[n], y);
        }
        out[i] = from_f32<OUT_T>(y * zz * sigmoid_f(zz));
    }
}
