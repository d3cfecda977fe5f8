/* cuda_exec.h — the cuda backend beyond the Exec interface: building it from options, the compiled Program it
 * runs, and the timing hooks `vmc bench` uses (eager per-launch event timing by kernel class, graph replays). */
#pragma once
#include "exec.h"
#include "program.h"

typedef struct CudaExecOptions {
    bool bf16;           /* bf16 GEMM operands (ARM_SPEC §2.5); false: fp32 everywhere (parity) */
    bool no_graph;       /* launch eagerly instead of replaying a captured CUDA graph (debugging) */
    int device;          /* ordinal */
} CudaExecOptions;

/* NULL with a message in err when no GPU is usable or the program fails to compile. */
Exec *cuda_exec_create(const Graph *g, Node *const *keep, int nkeep, const CudaExecOptions *opt, char *err, int errlen);
const Program *cuda_exec_program(const Exec *e);

enum { CLASS_MAX = 8 };
typedef struct CudaProfile {
    const char *names[CLASS_MAX];
    double ms[CLASS_MAX];       /* summed over the profiled steps */
    int n;
} CudaProfile;
/* Runs `steps` steps launch by launch with events around each launch; adds time per kernel class to prof. */
void cuda_exec_profile(Exec *e, const StepInfo *s, int steps, CudaProfile *prof);
/* Milliseconds per step over `steps` replays of the step graph (after the caller warmed it up). */
double cuda_exec_time_steps(Exec *e, const StepInfo *s, int steps);
/* Device memory allocated by this exec (arenas), bytes. */
int64_t cuda_exec_device_bytes(const Exec *e);
