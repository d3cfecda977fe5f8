/* bench_gaps.h — which kernels of a profiled step stand furthest above their floor: each kernel's eager time a step
 * (CudaProfile, by launch name) beside the floor of its launches (launch_floor_ms at the rates of the GPU it ran
 * on), for `vmc bench`'s list of where the step loses the most time. */
#pragma once
#include "cuda_exec.h"
#include "program.h"

/* The name a launch is profiled under: its kernel's (GEMMs by shape), "memset" for every memset. */
const char *launch_profile_name(const Launch *l);

typedef struct KernelGap {
    const char *name;
    int calls;         /* launches a step */
    double ms;         /* eager time a step */
    double floor_ms;   /* its launches' floors a step */
    int blocks;        /* blocks an SM holds (CudaProfile.kblocks), 0 where that does not apply */
} KernelGap;

/* gaps[0..prof->nk): prof's kernels (summed over `steps` profiled steps) with their floors in program p at rates r,
 * sorted by ms - floor_ms, the largest first. Returns how many. */
int kernel_gaps(const Program *p, const FloorRates *r, const CudaProfile *prof, int steps, KernelGap *gaps);
