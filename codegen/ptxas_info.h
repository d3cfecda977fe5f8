/* ptxas_info.h — what ptxas reports per kernel when NVRTC runs it verbosely (--ptxas-options=-v): registers,
 * stack frame and spills. Read on a machine without a GPU, so a kernel that spills shows up where it is compiled. */
#pragma once
#include <stdio.h>

#define PTXAS_VERBOSE "--ptxas-options=-v"

typedef struct PtxasKernel {
    char name[64];
    int registers;
    int stack, spill_stores, spill_loads;   /* bytes */
} PtxasKernel;

/* Kernels (entry functions) of one NVRTC program log, in order, at most max; returns how many were found. */
int ptxas_parse(const char *log, PtxasKernel *out, int max);

struct Program;
/* One line for a program compiled with ProgramOptions.ptxas_info: its kernels, the most registers one takes, and
 * every kernel with a stack frame or spills (or "none"), then "no ptxas lines" if the logs held none. Returns how
 * many kernels have a stack frame or spill, -1 without ptxas lines. */
int ptxas_report(const struct Program *p, FILE *out);
