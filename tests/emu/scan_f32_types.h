// scan_f32_types.h — every scan template tensor stored in f32, for the emulator tests that instantiate it so.
#pragma once
#define U_T float
#define DELTA_T float
#define ALOG_T float
#define BC_T float
#define DSKIP_T float
#define DBIAS_T float
#define Z_T float
#define OUT_T float
#define DOUT_T float
