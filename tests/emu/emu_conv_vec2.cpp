// emu_conv_vec2.cpp — the conv1d templates in f32 with 2 channels per thread (8-byte accesses, a conv tuning knob's
// width), on the CPU emulator (emu_conv_f32.inc).
#define CONV_VEC 2
#define vmc_conv1d_fwd emu_conv1d_fwd_vec2
#define vmc_conv1d_bwd emu_conv1d_bwd_vec2
#define EMU_ENTRY emu_check_conv_vec2
#define EMU_NAME "conv1d f32 x2"
#include "emu_conv_f32.inc"
