// scan_bf16_types.h — bf16 activations (u, delta, Bm, Cm, z, y, dout) and f32 weights, as the templates see them
// under bf16 precision, for the emulator tests that instantiate them so.
#pragma once
#define U_T bf16
#define DELTA_T bf16
#define ALOG_T float
#define BC_T bf16
#define DSKIP_T float
#define DBIAS_T float
#define Z_T bf16
#define OUT_T bf16
#define DOUT_T bf16
