/* cuda_exec.h — the cuda backend beyond the Exec interface: building it from options, the compiled Program it
 * runs, and the timing hooks `vmc bench` uses (eager per-launch event timing by kernel class, graph replays). */
#pragma once
#include "dsl.h"
#include "exec.h"
#include "program.h"

/* A model's step graph for `vmc compile` and `vmc bench` (runtime/cmd_compile.c): the forward graph with drop path
 * off, or (train) forward + backward + the AdamW update of the model's recipe (INPUTs "lr" and "step").
 * Errors are printed; free g (graph_free) before the module. */
typedef struct StepGraph { Graph *g; Node *lr, *step; bool train; } StepGraph;
bool step_graph_build(DslModule *m, const char *model, bool train, StepGraph *out, Diag *d);

typedef struct CudaExecOptions {
    bool bf16;           /* bf16 GEMM operands (ARM_SPEC §2.5); false: fp32 everywhere (parity) */
    bool no_graph;       /* launch eagerly instead of replaying a captured CUDA graph (debugging) */
    int device;          /* ordinal */
    bool scan_recompute; /* training: the scan backward recomputes its chunk states (ProgramOptions.scan_recompute) */
} CudaExecOptions;

/* NULL with a message in err when no GPU is usable, the program fails to compile or its arenas do not fit in the
 * free device memory (then err is CUDA_OOM_FORMAT: bytes needed, bytes free). */
#define CUDA_OOM_FORMAT "out of device memory: %lld bytes needed, %lld bytes free"
Exec *cuda_exec_create(const Graph *g, Node *const *keep, int nkeep, const CudaExecOptions *opt, char *err, int errlen);
const Program *cuda_exec_program(const Exec *e);

enum { CLASS_MAX = 8, TOP_MAX = 1024 };
typedef struct CudaProfile {
    const char *names[CLASS_MAX];
    double ms[CLASS_MAX];       /* summed over the profiled steps */
    int n;
    const char *knames[TOP_MAX];/* per kernel (launch name; GEMMs by shape), summed over launches and steps */
    double kms[TOP_MAX];
    int kcalls[TOP_MAX];
    double kbytes[TOP_MAX];     /* memory its launches declare (Launch.acc: whole buffers), summed like kms */
    int kblocks[TOP_MAX];       /* blocks an SM can hold (the occupancy calculator: registers, shared memory,
                                 * threads), of its first launch; 0 for GEMMs and memsets */
    int nk;
} CudaProfile;
/* Runs `steps` steps launch by launch with events around each launch; adds time per kernel class to prof. */
void cuda_exec_profile(Exec *e, const StepInfo *s, int steps, CudaProfile *prof);
/* Milliseconds per step over `steps` replays of the step graph (after the caller warmed it up). */
double cuda_exec_time_steps(Exec *e, const StepInfo *s, int steps);
/* The same, calling sample(ctx) every few milliseconds while the steps run (the host would only wait). */
double cuda_exec_time_steps_sampled(Exec *e, const StepInfo *s, int steps, void (*sample)(void *), void *ctx);
/* Opens NVML's clock readings (gpu_clocks.h) for this exec's GPU, named by its PCI bus id; false with why. */
bool cuda_exec_clocks_open(const Exec *e, char *why, size_t whylen);
/* Streams the captured step graph is spread over (VMC_STREAMS; 8 for training, 4 for inference by default). */
int cuda_exec_streams(const Exec *e);
/* The captured step graph's kernel nodes (GEMMs' included) and how many of them run at the higher priority. */
void cuda_exec_graph_priorities(const Exec *e, int *kernels, int *high);
/* Device memory allocated by this exec (arenas), bytes. */
int64_t cuda_exec_device_bytes(const Exec *e);
/* GEMM launches that have vmc's own kernel (skinny products, bf16), and how many of them run it (timed faster). */
void cuda_exec_own_gemms(const Exec *e, int *own, int *eligible);
/* Launches that may stand for others (program.h gemm_one_launch: SwiGLU's, codegen/program_swiglu.c; pairs of
 * products, codegen/program_pair.c): how many run instead of their parts, of how many. */
void cuda_exec_choices(const Exec *e, int *one, int *all);
/* bf16 x bf16 -> f32 cuBLASLt GEMM of n x n x n, timed over reps: the peak `vmc bench` compares against. */
double cuda_gemm_peak_tflops(Exec *e, int64_t n, int reps);
/* TB/s (bytes read plus written) of device-to-device copies of `bytes`, timed over reps. */
double cuda_copy_bandwidth_tbps(Exec *e, size_t bytes, int reps);
/* The GPU's streaming multiprocessors. */
int cuda_exec_sm_count(const Exec *e);
/* Device memory in use by the whole process (cuMemGetInfo) and the device total, bytes. */
void cuda_exec_memory(const Exec *e, int64_t *used, int64_t *total);
