/* test_bench_gaps.c — `vmc bench`'s list of the kernels furthest above their floor (runtime/bench_gaps.c), without
 * a GPU: ARM-B pretraining's step built into a program (no NVRTC), a stand-in profile that gives every kernel its
 * launches' floor times a factor (3 for the scan backward, 1.25 for the rest), then the list must start with the
 * scan backward, hold every kernel with its launches a step, its time, its floor (the floors summing to the
 * step's, program_class_totals) and the profile's blocks an SM, sorted by the gap. */
#include "bench_gaps.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } while (0)

enum { STEPS = 2 };

static double factor(const char *name) { return strcmp(name, "vmc_scan_bwd") ? 1.25 : 3.0; }
static int blocks_of(const char *name) { return (int)(strlen(name) % 7) + 1; }   /* a stand-in occupancy */

int main(void) {
    Diag d;
    diag_init(&d, stderr);
    char path[1024];
    snprintf(path, sizeof path, "%s/models/arm_b.vmc", getenv("VMC_ROOT") ? getenv("VMC_ROOT") : VMC_ROOT);
    DslSet batch = {"batch", "16"};
    DslOptions o = {.sets = &batch, .nsets = 1};
    DslModule *m = dsl_load(path, &o, &d);
    if (!m) { fprintf(stderr, "cannot load %s\n", path); return 1; }
    StepGraph sg;
    if (!step_graph_build(m, "arm_b_pretrain", true, &sg, &d)) { fprintf(stderr, "step graph\n"); return 1; }
    ProgramOptions po = {.arch = 90, .bf16 = true, .no_compile = true};
    char err[1024];
    Program *p = program_build(sg.g, NULL, 0, &po, err, sizeof err);
    if (!p) { fprintf(stderr, "program_build: %s\n", err); return 1; }
    const FloorRates r = {865, 2.98, 3.9};

    /* the stand-in profile, summed over STEPS steps as cuda_exec_profile sums */
    CudaProfile prof = {0};
    int scan_bwd_launches = 0;
    for (int s = 0; s < STEPS; s++)
        for (int k = 0; k < p->nlaunches; k++) {
            const Launch *l = &p->launches[k];
            if (l->once) continue;
            const char *name = launch_profile_name(l);
            int j = 0;
            while (j < prof.nk && strcmp(prof.knames[j], name)) j++;
            if (j == prof.nk) { prof.knames[prof.nk++] = name; prof.kblocks[j] = blocks_of(name); }
            prof.kms[j] += factor(name) * launch_floor_ms(l, &r, NULL);
            prof.kcalls[j]++;
            scan_bwd_launches += s == 0 && !strcmp(name, "vmc_scan_bwd");
        }
    KernelGap *g = calloc((size_t)prof.nk, sizeof *g);
    const int n = kernel_gaps(p, &r, &prof, STEPS, g);
    CHECK(n == prof.nk && n > 20, "%d kernels listed of %d", n, prof.nk);
    CHECK(n > 0 && !strcmp(g[0].name, "vmc_scan_bwd"), "first: %s", n > 0 ? g[0].name : "none");
    CHECK(n > 0 && g[0].calls == scan_bwd_launches && scan_bwd_launches == 12, "scan backward: %d launches a step, %d "
          "in the program", n > 0 ? g[0].calls : -1, scan_bwd_launches);
    double floors = 0;
    for (int j = 0; j < n; j++) {
        floors += g[j].floor_ms;
        CHECK(g[j].floor_ms >= 0 && fabs(g[j].ms - factor(g[j].name) * g[j].floor_ms) <= 1e-9 * (1 + g[j].ms),
              "%s: %.6f ms against a floor of %.6f", g[j].name, g[j].ms, g[j].floor_ms);
        CHECK(g[j].blocks == blocks_of(g[j].name), "%s: %d blocks an SM, the profile said %d", g[j].name, g[j].blocks,
              blocks_of(g[j].name));
        CHECK(j == 0 || g[j - 1].ms - g[j - 1].floor_ms >= g[j].ms - g[j].floor_ms, "%s before %s: not by gap",
              g[j - 1].name, g[j].name);
    }
    ClassTotals c;
    program_class_totals(p, &r, &c);
    double step = 0;
    for (int j = 0; j < c.n; j++) step += c.floor_ms[j];
    CHECK(fabs(floors - step) <= 1e-9 * step, "the kernels' floors sum to %.6f ms, the step's is %.6f", floors, step);
    printf("bench gaps: %d kernels, first %s (%.3f / %.3f ms), floors sum to %.3f ms\n", n, g[0].name, g[0].ms,
           g[0].floor_ms, floors);
    free(g);
    program_free(p);
    graph_free(sg.g);
    dsl_free(m);
    if (failures) { fprintf(stderr, "test_bench_gaps: %d failure(s)\n", failures); return 1; }
    printf("test_bench_gaps: all passed\n");
    return 0;
}
