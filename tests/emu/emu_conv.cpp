// emu_conv.cpp — the conv1d templates in f32, 1 channel per thread, on the CPU emulator (emu_conv_f32.inc).
#define EMU_ENTRY emu_check_conv
#define EMU_NAME "conv1d f32"
#include "emu_conv_f32.inc"
