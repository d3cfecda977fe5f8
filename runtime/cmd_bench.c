/* cmd_bench.c — `vmc bench FILE --model NAME --batch N [--train|--infer] [--fp32] [--steps N] [--set k=v]`:
 * throughput of one model's step on the GPU: images/s, ms/step, achieved GEMM TFLOP/s against a bf16 cuBLASLt
 * GEMM peak measured in the same run, device memory, time per kernel class beside its floor, cold compile (empty
 * NVRTC cache) and warm start (cache hit) times. Parameters come from their initialisers, inputs are random. With
 * --data it is the data-loader benchmark (cmd_bench_data.c). Prints figures; never asserts on them. */
#include "bench_gaps.h"
#include "cli.h"
#include "commands.h"
#include "cuda_api.h"
#include "cuda_exec.h"
#include "gpu_clocks.h"
#include "init.h"
#include "rng.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { PROFILE_STEPS = 2 };   /* eager steps timed launch by launch (the per-class and per-kernel lists) */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct Args {
    const char *file, *model;
    int batch, steps, top;
    double warmup_s;
    bool train, fp32, help, scan_recompute;
    DslSet *sets; int nsets;
    const char **inc; int ninc;
} Args;

static void sample_clocks(void *ctx) { gpu_clocks_sample(ctx); }

static bool parse(int argc, char **argv, Args *a) {
    memset(a, 0, sizeof *a);
    a->steps = 20;
    a->top = 12;
    a->warmup_s = 2;
    a->train = true;
    a->sets = xcalloc((size_t)argc + 1, sizeof(DslSet));
    a->inc = xcalloc((size_t)argc + 1, sizeof(char *));
    for (int k = 1; k < argc; k++) {
        const char *s = argv[k];
        bool more = k + 1 < argc;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) { a->help = true; break; }
        if (!strcmp(s, "--train")) a->train = true;
        else if (!strcmp(s, "--infer")) a->train = false;
        else if (!strcmp(s, "--fp32")) a->fp32 = true;
        else if (!strcmp(s, "--bf16")) a->fp32 = false;
        else if (!strcmp(s, "--scan-recompute")) a->scan_recompute = true;
        else if (!strcmp(s, "--model") && more) a->model = argv[++k];
        else if ((!strcmp(s, "--batch") || !strcmp(s, "--steps")) && more) {
            long long v;
            if (!cli_int("vmc bench", s, argv[++k], 1, 1 << 20, &v)) return false;
            *(!strcmp(s, "--batch") ? &a->batch : &a->steps) = (int)v;
        } else if (!strcmp(s, "--warmup") && more) {
            long long v;
            if (!cli_int("vmc bench", s, argv[++k], 0, 600, &v)) return false;
            a->warmup_s = (double)v;
        } else if (!strcmp(s, "--top") && more) {   /* --top 0: no kernel list */
            long long v;
            if (!cli_int("vmc bench", s, argv[++k], 0, 1 << 20, &v)) return false;
            a->top = (int)v;
        }
        else if (!strcmp(s, "-I") && more) a->inc[a->ninc++] = argv[++k];
        else if (!strcmp(s, "--set") && more) {
            char *eq = strchr(argv[++k], '=');
            if (!eq || eq == argv[k]) { fprintf(stderr, "vmc bench: --set expects NAME=VALUE, found '%s'\n", argv[k]); return false; }
            *eq = 0;
            a->sets[a->nsets++] = (DslSet){argv[k], eq + 1};
        } else if (s[0] != '-' && !a->file) a->file = s;
        else { fprintf(stderr, "vmc bench: unexpected argument '%s' (see vmc bench --help)\n", s); return false; }
    }
    if (a->help || !a->file || !a->model || a->steps < 1 || a->top < 0) {
        fprintf(a->help ? stdout : stderr,
                "usage: vmc bench FILE --model NAME [--batch N] [--train|--infer] [--fp32|--bf16] [--steps N] [--top N]\n"
                "                 [--warmup S] [--scan-recompute] [--set NAME=VALUE]... [-I DIR]...\n"
                "       vmc bench --data PATH|synthetic:N [--size 192] [--threads N] [--batches N] [--batch B]\n"
                "                 [--eval] [--exact] [--randaugment] [--keep]   (data loader throughput, no GPU)\n"
                "  a model's step on the GPU: images/s, TFLOP/s against the measured bf16 GEMM peak, memory, time per\n"
                "  kernel class beside its floor on this GPU (measured GEMM peak and copy bandwidth), cold and warm\n"
                "  compile times.\n"
                "  --model NAME          the model in FILE\n"
                "  --batch N             = --set batch=N\n"
                "  --train | --infer     training step (default) or inference\n"
                "  --fp32 | --bf16       fp32 or bf16 (default) GEMM operands\n"
                "  --steps N             timed steps (default 20)\n"
                "  --warmup S            seconds of untimed steps first, so that the GPU runs at its sustained clocks\n"
                "                        (default 2; an H200 at its 700 W cap lowers them within a second)\n"
                "  --top N               list the N slowest kernels, with calls and time per step, and the N\n"
                "                        furthest above their floor (default 12)\n"
                "  --scan-recompute      the scan backward recomputes its chunk states: less memory, more time\n"
                "  --set NAME=VALUE      override a model constant or recipe key (repeatable)\n"
                "  -I DIR                add an import directory\n"
                "  --data PATH           loader throughput instead: decode + RandomResizedCrop + flip of an image folder;\n"
                "                        synthetic:N writes N 500x375 JPEGs into a temporary folder first\n"
                "  --size S              crop size (default 192)\n"
                "  --threads N           loader threads (default: the number of cores)\n"
                "  --batches N           timed batches (default 20); --batch B: their size (default 128)\n"
                "  --eval                resize + centre crop instead of the training crop\n"
                "  --exact               full-size decode (default: DCT-scaled when the crop allows)\n"
                "  --randaugment         add RandAugment\n"
                "  --keep                keep the synthetic folder\n");
        return false;
    }
    if (a->batch > 0) {
        static char buf[32];
        snprintf(buf, sizeof buf, "%d", a->batch);
        a->sets[a->nsets++] = (DslSet){"batch", buf};
    }
    return true;
}

/* Parameters from their initialisers; inputs: images ~ N(0,1), integer inputs uniform in [0, 10), "lr" 1e-4,
 * "step" 1, other float inputs (soft targets) uniform. */
static void fill(Exec *e, const Graph *g) {
    for (int k = 0; k < g->params.n; k++) {
        const Node *p = g->params.items[k];
        size_t n = (size_t)shape_numel(p->shape);
        float *v = xmalloc(n * 4);
        init_param(p, 1, v);
        if (p->dtype == DT_I32) for (size_t i = 0; i < n; i++) ((int32_t *)v)[i] = (int32_t)v[i];
        if (p->dtype != DT_BF16) exec_write(e, p, v, n * 4);
        free(v);
    }
    for (int k = 0; k < g->inputs.n; k++) {
        const Node *in = g->inputs.items[k];
        size_t n = (size_t)shape_numel(in->shape);
        if (in->dtype == DT_BF16) continue;
        void *v = xmalloc(n * 4);
        for (size_t i = 0; i < n; i++) {
            RngBlock r = rng_philox(7, (uint64_t)k, i, 0);
            if (in->dtype == DT_I32) ((int32_t *)v)[i] = (int32_t)rng_below(r.x[0], 10);
            else if (!strcmp(in->name, "lr")) ((float *)v)[i] = 1e-4f;
            else if (!strcmp(in->name, "step")) ((float *)v)[i] = 1.0f;
            else if (!strcmp(in->name, "images")) ((float *)v)[i] = (float)rng_normal(r.x[0], r.x[1]);
            else ((float *)v)[i] = rng_uniform(r.x[0]) * 0.1f;
        }
        exec_write(e, in, v, n * 4);
        free(v);
    }
}

/* The step's floor on this GPU (program_dump_launches' model): each launch at the largest of its GEMM work at the
 * measured GEMM peak, its bytes at the measured copy bandwidth and its special-function work at 16 per SM and clock
 * (the mean clock NVML saw while timing; left out without readings), launches one after another; per class beside
 * the eager times above. */
static bool print_floor(Exec *e, const CudaProfile *prof, double peak_tflops, double mhz, int64_t batch, double ms,
                        FloorRates *rates) {
    const double tbps = cuda_copy_bandwidth_tbps(e, (size_t)512 << 20, 20);   /* 512 MiB: 10x the L2 */
    if (tbps <= 0) { printf("\n  floor: no room for the bandwidth probe's 1 GiB\n"); return false; }
    const int sms = cuda_exec_sm_count(e);
    const FloorRates r = {peak_tflops, tbps, mhz > 0 ? 16.0 * sms * mhz * 1e-6 : 1e30};
    *rates = r;
    ClassTotals c;
    program_class_totals(cuda_exec_program(e), &r, &c);
    double total = 0;
    for (int j = 0; j < c.n; j++) total += c.floor_ms[j];
    printf("\n  floor at %.0f TFLOP/s, %.2f TB/s (copies measured now)", r.gemm_tflops, r.mem_tbps);
    if (mhz > 0) printf(", %.2f T special-function ops/s (16 per SM and clock, %d SMs, %.0f MHz)", r.sfu_tops, sms, mhz);
    else printf(" (special-function work left out: no clock readings)");
    printf(": %.3f ms a step, %.1f images/s; the step takes %.2fx it\n", total, (double)batch / (total * 1e-3), ms / total);
    const OverlapFloor o = program_overlap_floor(cuda_exec_program(e), &r);
    printf("  with launches side by side: at least %.3f ms a step, %.1f images/s (the longest dependency path %.3f; all "
           "GEMM work %.3f, all bytes %.3f, all special-function work %.3f)\n  per class, eager ms / floor ms:",
           o.ms, (double)batch / (o.ms * 1e-3), o.path_ms, o.gemm_ms, o.bytes_ms, o.sfu_ms);
    for (int j = 0; j < prof->n; j++) {
        double floor = 0;
        for (int i = 0; i < c.n; i++) if (!strcmp(c.name[i], prof->names[j])) floor = c.floor_ms[i];
        printf(" %s %.3f / %.3f", prof->names[j], prof->ms[j] / PROFILE_STEPS, floor);
    }
    printf("\n");
    return true;
}

/* The `top` kernels furthest above their floor (bench_gaps.h), from the eager profile of PROFILE_STEPS steps. */
static void print_gaps(Exec *e, const FloorRates *r, const CudaProfile *prof, int top) {
    KernelGap *g = xcalloc((size_t)prof->nk + 1, sizeof *g);
    const int n = kernel_gaps(cuda_exec_program(e), r, prof, PROFILE_STEPS, g);
    printf("  furthest above their floor (per step, eager ms / floor ms of the kernel's launches; blocks an SM holds):");
    for (int t = 0; t < top && t < n; t++) {
        printf("%s%s x%d %.3f / %.3f", t % 3 ? ", " : "\n    ", g[t].name, g[t].calls, g[t].ms, g[t].floor_ms);
        if (g[t].blocks > 0) printf(" %d/SM", g[t].blocks);
    }
    printf("\n");
    free(g);
}

static int bench(const Args *a, DslModule *m) {
    Diag d;
    diag_init(&d, stderr);
    StepGraph sg;
    if (!step_graph_build(m, a->model, a->train, &sg, &d)) { graph_free(sg.g); return 1; }
    char err[2048];
    /* cold compile: a fresh NVRTC cache (set before anything compiles) */
    char dir[] = "/tmp/vmc-bench-cache-XXXXXX";
    if (mkdtemp(dir)) setenv("VMC_CACHE", dir, 1);
    const CUdevice dev = cuda_init_device(0);
    ProgramOptions po = {.arch = cuda_device_arch(dev), .sms = cuda_device_sms(dev), .bf16 = !a->fp32,
                         .scan_recompute = a->scan_recompute};
    double t0 = now_s();
    Program *cold = program_build(sg.g, NULL, 0, &po, err, sizeof err);
    double cold_s = now_s() - t0;
    if (!cold) { fprintf(stderr, "vmc bench: %s\n", err); graph_free(sg.g); return 2; }
    int nkernels = cold->nkernels, ngemms = cold->ngemms;
    int64_t flops = cold->gemm_flops;
    program_free(cold);
    CudaExecOptions eo = {.bf16 = !a->fp32, .scan_recompute = a->scan_recompute};
    /* warm start: what the next run of the same model pays, the NVRTC and GEMM-tuning caches both filled (the
     * first creation below tunes the GEMMs and fills the second) */
    Exec *e = cuda_exec_create(sg.g, NULL, 0, &eo, err, sizeof err);
    if (!e) { fprintf(stderr, "vmc bench: %s\n", err); graph_free(sg.g); return 2; }
    exec_free(e);
    t0 = now_s();
    e = cuda_exec_create(sg.g, NULL, 0, &eo, err, sizeof err);
    double warm_s = now_s() - t0;
    if (!e) { fprintf(stderr, "vmc bench: %s\n", err); graph_free(sg.g); return 2; }
    fill(e, sg.g);
    StepInfo si = {.seed = 1, .step = 0};
    double first = now_s();
    exec_run(e, &si);                                     /* capture + first replay */
    cuda_exec_time_steps(e, &si, 2);                      /* warm-up */
    first = now_s() - first;
    const double burst_ms = cuda_exec_time_steps(e, &si, a->steps);
    /* Sustained: the power limit lowers the clocks after about a second of full load (H200: 1980 -> 1700-1850 MHz
     * at 700 W), so the headline figure is timed after warmup_s seconds of steps. */
    for (double t1 = now_s(); now_s() - t1 < a->warmup_s;) cuda_exec_time_steps(e, &si, 5);
    char clocks[256], why[256] = "";
    ClockSamples cs = {0};
    const bool nvml = cuda_exec_clocks_open(e, why, sizeof why);
    double ms = cuda_exec_time_steps_sampled(e, &si, a->steps, sample_clocks, &cs);
    gpu_clocks_describe(&cs, clocks, sizeof clocks);
    CudaProfile prof = {0};
    cuda_exec_profile(e, &si, PROFILE_STEPS, &prof);
    double peak = 0;   /* the best of three: one measurement varied from 727 to 883 TFLOP/s within a run (H200) */
    for (int t = 0; t < 3; t++) {
        const double tf = cuda_gemm_peak_tflops(e, 8192, 20);
        if (tf > peak) peak = tf;
    }
    int64_t used = 0, total = 0;
    cuda_exec_memory(e, &used, &total);
    const int64_t images = graph_image_batch(sg.g), B = images ? images : 1;
    double tflops = (double)flops / (ms * 1e-3) * 1e-12;
    const Program *p = cuda_exec_program(e);
    printf("model %s, %s, batch %lld, %s: %d kernels, %d GEMMs (%.1f GFLOP per step)\n", a->model,
           a->train ? "training step" : "inference", (long long)B, a->fp32 ? "fp32" : "bf16 GEMMs", nkernels, ngemms,
           (double)flops * 1e-9);
    int gk = 0, gh = 0;
    cuda_exec_graph_priorities(e, &gk, &gh);
    printf("  step %.3f ms, %.1f images/s (CUDA graph over %d stream%s, %d of its %d kernels at the higher priority)\n",
           ms, (double)B / (ms * 1e-3), cuda_exec_streams(e), cuda_exec_streams(e) > 1 ? "s" : "", gh, gk);
    printf("  timed after %.0f s of steps (sustained clocks); the %d steps right after the first: %.3f ms, %.1f images/s\n",
           a->warmup_s, a->steps, burst_ms, (double)B / (burst_ms * 1e-3));
    printf("  during the timed steps: %s\n", nvml ? clocks : why);
    printf("  GEMM work %.1f TFLOP/s = %.1f%% of the measured bf16 GEMM peak %.1f TFLOP/s (8192^3)\n", tflops,
           100.0 * tflops / peak, peak);
    int own = 0, eligible = 0;
    cuda_exec_own_gemms(e, &own, &eligible);
    if (eligible)   /* (the skinny kernel, and on sm_90 the Hopper GEMM) */
        printf("  own GEMMs: %d of %d run vmc's own kernel (timed faster than cuBLASLt's best)\n", own, eligible);
    int one = 0, gates = 0;
    cuda_exec_choices(e, &one, &gates);
    if (gates)   /* (sm_90: codegen/program_swiglu.c, program_pair.c) */
        printf("  SwiGLU: %d of %d one-kernel launches (the gates with their two products; where asked, the backward "
               "and the input gradient's two products) run instead of their parts, agreeing with them and timed "
               "faster\n", one, gates);
    printf("  device memory: arenas %.2f GiB, process total %.2f GiB of %.2f GiB\n",
           (double)cuda_exec_device_bytes(e) / (1 << 30), (double)used / (1 << 30), (double)total / (1 << 30));
    double sum = 0;
    for (int k = 0; k < prof.n; k++) sum += prof.ms[k];
    printf("  time per kernel class (eager, events around each launch; %.3f ms per step):", sum / PROFILE_STEPS);
    for (int k = 0; k < prof.n; k++) printf(" %s %.3f ms (%.0f%%)", prof.names[k], prof.ms[k] / PROFILE_STEPS, 100 * prof.ms[k] / sum);
    FloorRates rates;
    if (a->fp32) printf("\n  floor: for bf16 steps only (the GEMM peak it takes is bf16's)\n");
    else if (print_floor(e, &prof, peak, cs.n ? cs.sum_mhz / cs.n : 0, B, ms, &rates) && a->top > 0)
        print_gaps(e, &rates, &prof, a->top);
    printf("  slowest kernels (per step; GB/s: the memory each launch declares, whole buffers, over its time):");
    for (int t = 0; t < a->top; t++) {
        int best = -1;
        for (int k = 0; k < prof.nk; k++) if (prof.kcalls[k] >= 0 && (best < 0 || prof.kms[k] > prof.kms[best])) best = k;
        if (best < 0) break;
        printf("%s%s x%d %.3f ms %.0f GB/s", t % 3 ? ", " : "\n    ", prof.knames[best], prof.kcalls[best] / PROFILE_STEPS,
               prof.kms[best] / PROFILE_STEPS, prof.kbytes[best] / (prof.kms[best] * 1e6));
        if (prof.kblocks[best] > 0) printf(" %d/SM", prof.kblocks[best]);
        prof.kcalls[best] = -1;
    }
    printf("\n  compile: cold %.2f s (empty NVRTC cache, %d modules), warm start %.2f s (NVRTC and GEMM-tuning caches "
           "filled), first step (capture) %.3f s\n",
           cold_s, p->nmodules, warm_s, first);
    exec_free(e);
    graph_free(sg.g);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    for (int k = 1; k < argc; k++) if (!strcmp(argv[k], "--data")) return bench_data(argc, argv);
    Args a;
    if (!parse(argc, argv, &a)) { free(a.sets); free(a.inc); return a.help ? 0 : 1; }
    if (!cuda_available()) {
        fprintf(stderr, "vmc bench: no usable GPU: %s\n", cuda_unavailable_reason());
        free(a.sets); free(a.inc);
        return 2;
    }
    Diag d;
    diag_init(&d, stderr);
    DslOptions opt = {a.inc, a.ninc, a.sets, a.nsets};
    DslModule *m = dsl_load(a.file, &opt, &d);
    int rc = m ? bench(&a, m) : 1;
    dsl_free(m);
    free(a.sets);
    free(a.inc);
    return rc;
}
