// plain_rows.h — the row maps template.c defines for inputs that are their own contiguous buffers (VMC_AT in
// common.cuh): include after the template's shape defines. Files testing mapped inputs define their own.
#pragma once
#ifdef SCAN_L
#define U_LROWS SCAN_L
#define U_STRIDE SCAN_D
#define U_OFF 0
#define U_ROW(t) (t)
#define DL_LROWS SCAN_L
#define DL_STRIDE SCAN_D
#define DL_OFF 0
#define DL_ROW(t) (t)
#define Z_LROWS SCAN_L
#define Z_STRIDE SCAN_D
#define Z_OFF 0
#define Z_ROW(t) (t)
#define DO_LROWS SCAN_L
#define DO_STRIDE SCAN_D
#define DO_OFF 0
#define DO_ROW(t) (t)
#define BM_LROWS SCAN_L
#define BM_STRIDE SCAN_N
#define BM_OFF 0
#define BM_ROW(t) (t)
#define CM_LROWS SCAN_L
#define CM_STRIDE SCAN_N
#define CM_OFF 0
#define CM_ROW(t) (t)
#endif
#ifdef CONV_L
#define X_LROWS CONV_L
#define X_STRIDE CONV_D
#define X_OFF 0
#define X_ROW(t) (t)
#define DY_LROWS CONV_L
#define DY_STRIDE CONV_D
#define DY_OFF 0
#define DY_ROW(t) (t)
#endif
