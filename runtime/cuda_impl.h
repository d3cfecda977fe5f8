/* cuda_impl.h — what the cuda backend's files share (cuda_exec.h is the interface): the executor's state, device
 * addresses and copies (cuda_exec.c runs programs; cuda_gemm.c plans, tunes and launches their GEMMs). */
#pragma once
#include "cuda_exec.h"
#include "cuda_api.h"
#include "streams.h"

enum { RNG_RING = 256 };

enum { GEMM_CANDIDATES = 8, GEMM_CANDIDATES_MAX = 32, GEMM_TUNE_REPS = 5 };

typedef struct GemmPlan {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;   /* cuBLASLt operands: la = our B, lb = our A (column-major view) */
    cublasLtMatmulAlgo_t algo;
    float alpha;                         /* the product's scale (GemmDesc.alpha) */
    bool own;                            /* vmc's own kernel (Launch.own_module) runs the product instead */
} GemmPlan;

typedef struct Cuda {
    Exec base;
    Program *p;
    CudaExecOptions opt;
    const CudaApi *cu;
    const CublasLtApi *lt;
    cublasLtHandle_t lth;
    CUstream st;                         /* the step's stream: eager launches, graph replays, host copies */
    StreamPlan *plan;                    /* the captured graph's streams (capture_streams) */
    CUstream side[STREAMS_MAX];          /* capture streams, side[0] = st */
    CUdeviceptr ws[STREAMS_MAX];         /* cuBLASLt workspace per capture stream, ws[0] in the WORK arena */
    CUdeviceptr arena[AR_COUNT_], rng;
    unsigned long long *host_rng;        /* pinned ring of {seed, step} */
    CUevent rng_ev[RNG_RING];            /* each slot's last copy */
    int rng_slot;
    CUmodule *mods;
    CUfunction *fn;                      /* by launch (a GEMM: its own kernel's, Launch.own_module) */
    CUfunction *reduce_fn;               /* by GEMM launch: its own kernel's split-K reduction */
    unsigned *own_grid;                  /* by GEMM launch: its own kernel's grid.x on this GPU (cuda_hopper_grid) */
    CUdeviceptr **vals;                  /* by launch: kernel pointer values */
    void ***params;                      /* by launch: cuLaunchKernel parameter array */
    GemmPlan *gemm;                      /* by launch */
    CUgraphExec gexec;
    bool captured;
    bool pdl;                            /* kernels launched with programmatic stream serialization (sm_90+) */
    bool priority;                       /* the plan's critical launches get the higher priority (streams.h; ARM-B,
                                          * H200: 0.1-0.3 ms less per training step when first measured, nothing
                                          * measurable on 2746226: 32.61 against 32.58 ms pretraining) */
    int prio_high, prio_low;             /* the context's greatest and least stream priorities */
    int graph_kernels, graph_high;       /* the step graph's kernel nodes, and those at the higher priority */
    int own_gemm;                        /* VMC_OWN_GEMM: 0 never, 1 where timed faster (default), 2 always,
                                          * 3 wherever it agrees with cuBLASLt (a check) */
    bool *choice_one;                    /* by choice number (Launch.choice): its one launch runs, not the
                                          * launches it stands for (cuda_choice.c) */
    bool params_dirty;                   /* the host wrote a parameter since the `once` launches last ran */
    int runs;
    struct Stage {                       /* by node id: an INPUT's way in (staged_write) */
        void *host;                      /* pinned buffer for copied writes (NULL while only borrowed ones came) */
        CUdeviceptr dev;                 /* device buffer, the copy stream's target */
        CUevent copied;                  /* the last copy host -> dev (copy stream) */
        CUevent used;                    /* the last copy dev -> the input (the step's stream) */
    } *stage;
    CUstream copy_st;                    /* host-to-device copies of inputs, beside the step */
    struct LateRead {                    /* read_start's copies in flight (pinned bounce, event, destination) */
        void *pinned; CUevent ev; void *host; size_t bytes; bool busy;
    } late[EXEC_READS_IN_FLIGHT];
    int64_t device_bytes;
} Cuda;

static inline CUdeviceptr addr(const Cuda *c, BufRef b) {
    return b.arena == AR_COUNT_ ? 0 : c->arena[b.arena] + (CUdeviceptr)b.offset;
}

/* Host <-> device copies ordered after the step on the exec's stream, complete on return. */
static inline void copy_in(Cuda *c, CUdeviceptr dst, const void *src, size_t bytes) {
    CU_CHECK(c->cu->cuMemcpyHtoDAsync(dst, src, bytes, c->st));
    CU_CHECK(c->cu->cuStreamSynchronize(c->st));
}
static inline void copy_out(Cuda *c, void *dst, CUdeviceptr src, size_t bytes) {
    CU_CHECK(c->cu->cuMemcpyDtoHAsync(dst, src, bytes, c->st));
    CU_CHECK(c->cu->cuStreamSynchronize(c->st));
}

/* Is launch k left out of the step: a one launch not chosen, or a launch it stands for where it is chosen? */
static inline bool cx_skipped(const Cuda *c, int k) {
    const Launch *l = &c->p->launches[k];
    return l->choice > 0 && c->choice_one[l->choice] == launch_choice_part(l);
}

/* cuda_choice.c: chooses for launch k, one launch standing for others (gemm_one_launch; c->choice_one): it where it
 * agrees with the launches it stands for on random operands and (tune) is faster than they are together;
 * VMC_OWN_GEMM's 0, 2 and 3 as for the own GEMM kernels. log: the times, as VMC_GEMM_LOG prints them. */
void cx_plan_choice(Cuda *c, int k, bool tune, bool log);

/* cuda_gemm.c */
void cx_own_gemm_run(Cuda *c, int k, int s);   /* launch k by its own kernel on capture stream s */
/* Launches kernel f with the given grid on capture stream s (programmatic dependent launch where enabled). */
void cx_launch_kernel(Cuda *c, CUfunction f, const unsigned *grid, const unsigned *block, unsigned smem, int s,
                      void **params);
/* GEMM launch k on capture stream s: cuBLASLt, or vmc's own kernel where plan_gemms chose it. */
void cx_gemm_launch(Cuda *c, int k, int s);
/* Milliseconds that run(c, ctx) takes on c's main stream, between events recorded around it (the probes of
 * `vmc bench`: GEMM peak, copy bandwidth; the caller warms up). */
float cx_time_ms(Cuda *c, void (*run)(Cuda *c, void *ctx), void *ctx);
/* Plans every GEMM launch: cuBLASLt descriptors, the tuned algorithm, the own kernel or not (tune cache). */
void cx_plan_gemms(Cuda *c);

