// test_emu.cpp — [cpu] runs the hand-written CUDA templates (scan fwd/bwd, conv1d fwd/bwd) on the CPU emulator
// (cuda_emu.h) against the double-precision references, conv1d and the scan also through mapped inputs, conv1d also
// of one input under several row orders in one launch: the kernels' algorithms are checked without a GPU.
#include <cstdio>
extern "C" int emu_check_scan_f32(void);
extern "C" int emu_check_scan_bf16(void);
extern "C" int emu_check_scan_long(void);
extern "C" int emu_check_conv(void);
extern "C" int emu_check_conv_vec2(void);
extern "C" int emu_check_conv_mapped(void);
extern "C" int emu_check_conv_silu_out(void);
extern "C" int emu_check_conv_silu_bwd(void);
extern "C" int emu_check_scan_mapped(void);
extern "C" int emu_check_scan_n6(void);
extern "C" int emu_check_scan_ungated(void);
extern "C" int emu_check_conv_multi(void);
extern "C" int emu_check_conv_multi_bwd(void);
extern "C" int emu_check_attn(void);
extern "C" int emu_check_exp2_fma(void);

int main() {
    int bad = emu_check_scan_f32() + emu_check_scan_bf16() + emu_check_scan_long() + emu_check_conv() + emu_check_conv_vec2() + emu_check_conv_mapped() + emu_check_conv_silu_out() + emu_check_conv_silu_bwd() +
              emu_check_scan_mapped() +
              emu_check_scan_n6() + emu_check_scan_ungated() + emu_check_conv_multi() +
              emu_check_conv_multi_bwd() + emu_check_attn() + emu_check_exp2_fma();
    printf(bad ? "test_emu: %d checks FAILED\n" : "test_emu: ok\n", bad);
    return bad != 0;
}
