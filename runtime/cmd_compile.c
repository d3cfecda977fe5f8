/* cmd_compile.c — `vmc compile FILE [--model NAME] [--arch sm_90] [--dump-kernels DIR] [--train] [--bf16]
 * [--no-nvrtc] [--dump-groups] [--threads N] [--set k=v] [-I DIR]`: builds each model's step graph (forward; with
 * --train also the backward and the AdamW update of its recipe), fuses it, generates and NVRTC-compiles every kernel.
 * Needs no GPU.
 * Also owns the step-graph builder that `vmc bench` shares (cuda_exec.h). */
#include "autodiff.h"
#include "cli.h"
#include "commands.h"
#include "cuda_exec.h"
#include "optim.h"
#include "program_knobs.h"
#include "ptxas_info.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double rnum(const Recipe *r, const char *key, int idx, double def) {
    const RecipeEntry *e = r ? recipe_get(r, key) : NULL;
    if (!e) return def;
    if (e->kind == RV_LIST) return idx < e->nlist ? e->list[idx] : def;
    return e->kind == RV_NUM || e->kind == RV_BOOL ? e->num : def;
}

/* AdamW settings from the model's recipe (torch defaults without one). */
static OptimConfig recipe_optim(DslModule *m, int model, Diag *d) {
    const char *rname = dsl_model_recipe(m, model);
    const Recipe *r = rname ? dsl_build_recipe(m, rname, d) : NULL;
    return (OptimConfig){rnum(r, "betas", 0, 0.9), rnum(r, "betas", 1, 0.999), rnum(r, "eps", 0, 1e-8),
                         rnum(r, "weight_decay", 0, 0.05), rnum(r, "clip_grad", 0, 0), rnum(r, "layer_decay", 0, 1),
                         rnum(r, "ema_decay", 0, 0)};
}

bool step_graph_build(DslModule *m, const char *model, bool train, StepGraph *out, Diag *d) {
    memset(out, 0, sizeof *out);
    int idx = -1;
    for (int k = 0; k < dsl_model_count(m); k++) if (!strcmp(dsl_model_name(m, k), model)) idx = k;
    if (idx < 0) { fprintf(stderr, "vmc: no model named '%s'\n", model); return false; }
    Graph *g = dsl_build_model(m, model, d);
    if (!g) return false;
    out->g = g;
    if (!train) {
        graph_eval_mode(g);
        return true;
    }
    if (!g->loss) { fprintf(stderr, "vmc: model '%s' has no loss to train\n", model); return false; }
    Node **grads = xcalloc((size_t)g->params.n + 1, sizeof(Node *));
    OptimConfig oc = recipe_optim(m, idx, d);
    OptimNodes on;
    char err[512];
    bool ok = autodiff_backward(g, g->loss, grads, err, sizeof err) && optim_append(g, grads, &oc, &on, err, sizeof err);
    free(grads);
    if (!ok) { fprintf(stderr, "vmc: model '%s': %s\n", model, err); return false; }
    out->lr = on.lr;
    out->step = on.step;
    out->train = true;
    return true;
}

typedef struct Args {
    const char *file, *model, *dump;
    int arch, threads;
    bool train, bf16, no_nvrtc, groups, launches, help, scan_recompute, ptxas;
    FloorRates rates;   /* --rates: what --dump-launches' floor is estimated at */
    DslSet *sets; int nsets;
    const char **inc; int ninc;
} Args;

static void usage(FILE *f) {
    fprintf(f,
        "usage: vmc compile FILE [--model NAME] [--arch sm_90] [--train] [--bf16] [--dump-kernels DIR] [--dump-groups]\n"
        "                   [--dump-launches [--rates TFLOPS,TBPS,TSFU]] [--no-nvrtc] [--ptxas-info] [--scan-recompute]\n"
        "                   [--threads N] [--set NAME=VALUE]... [-I DIR]...\n"
        "  builds each model's step graph, fuses it, generates CUDA C for every group and NVRTC-compiles it (disk\n"
        "  cache); prints nodes, groups, kernels, GEMMs and timings per model. Needs no GPU.\n"
        "  --model NAME        only this model (default: every model in FILE)\n"
        "  --arch sm_XX        target GPU architecture (default sm_90)\n"
        "  --train             the training step: forward, backward and the recipe's AdamW update (default: inference)\n"
        "  --bf16              bf16 GEMM operands (default: fp32 everywhere)\n"
        "  --dump-kernels DIR  write every generated module's CUDA source into DIR\n"
        "  --dump-groups       print the fusion groups\n"
        "  --dump-launches     print the step's launches in order (kernels, GEMMs, memsets, copies): grid, and the\n"
        "                      bytes each declares it reads and writes; then the step's totals per kernel class\n"
        "                      (launches, GB read and written, GEMM GFLOP, floor ms) and the step's floor: each\n"
        "                      launch at the largest of its GEMM work, bytes and special-function work (the scans'\n"
        "                      exp2 and reciprocals) at the --rates, one after another, and the images/s it gives\n"
        "  --rates P,B,S       TFLOP/s, TB/s and tera special-function operations/s for that floor (default\n"
        "                      865,4,3.8: an H200 under ARM-B's load; an H100 about 865,2.85,3.8)\n"
        "  --no-nvrtc          generate the sources only, do not compile them\n"
        "  --ptxas-info        NVRTC runs ptxas verbosely: prints the most registers a kernel takes and every kernel\n"
        "                      with a stack frame or spills\n"
        "  --scan-recompute    training: the scan backward recomputes its chunk states instead of reading the\n"
        "                      forward's (less memory, more time)\n"
        "  --threads N         parallel NVRTC compiles (default: the number of cores)\n"
        "  --set NAME=VALUE    override a model constant or recipe key (repeatable)\n"
        "  -I DIR              add an import directory\n");
}

static bool parse(int argc, char **argv, Args *a) {
    memset(a, 0, sizeof *a);
    a->arch = 90;
    a->rates = FLOOR_RATES_H200;
    a->sets = xcalloc((size_t)argc, sizeof(DslSet));
    a->inc = xcalloc((size_t)argc, sizeof(char *));
    for (int k = 1; k < argc; k++) {
        const char *s = argv[k];
        bool more = k + 1 < argc;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) { a->help = true; return true; }
        static const char *const VALUED[] = {"--model", "--dump-kernels", "--threads", "-I", "--arch", "--set", "--rates"};
        for (size_t v = 0; v < sizeof VALUED / sizeof VALUED[0] && !more; v++)
            if (!strcmp(s, VALUED[v])) { fprintf(stderr, "vmc compile: %s needs a value\n", s); return false; }
        if (!strcmp(s, "--train")) a->train = true;
        else if (!strcmp(s, "--bf16")) a->bf16 = true;
        else if (!strcmp(s, "--no-nvrtc")) a->no_nvrtc = true;
        else if (!strcmp(s, "--scan-recompute")) a->scan_recompute = true;
        else if (!strcmp(s, "--ptxas-info")) a->ptxas = true;
        else if (!strcmp(s, "--dump-groups")) a->groups = true;
        else if (!strcmp(s, "--dump-launches")) a->launches = true;
        else if (!strcmp(s, "--model") && more) a->model = argv[++k];
        else if (!strcmp(s, "--dump-kernels") && more) a->dump = argv[++k];
        else if (!strcmp(s, "--threads") && more) {
            long long v;
            if (!cli_int("vmc compile", s, argv[++k], 1, 1024, &v)) return false;
            a->threads = (int)v;
        }
        else if (!strcmp(s, "-I") && more) a->inc[a->ninc++] = argv[++k];
        else if (!strcmp(s, "--rates") && more) {
            FloorRates *r = &a->rates;
            char tail;
            if (sscanf(argv[++k], "%lf,%lf,%lf%c", &r->gemm_tflops, &r->mem_tbps, &r->sfu_tops, &tail) != 3 ||
                !(r->gemm_tflops > 0) || !(r->mem_tbps > 0) || !(r->sfu_tops > 0)) {
                fprintf(stderr, "vmc compile: --rates expects three positive numbers TFLOPS,TBPS,TSFU, found '%s'\n",
                        argv[k]);
                return false;
            }
        }
        else if (!strcmp(s, "--arch") && more) {
            const char *v = argv[++k];
            long long n;
            if (strncmp(v, "sm_", 3)) { fprintf(stderr, "vmc compile: --arch expects sm_XX, found '%s'\n", v); return false; }
            if (!cli_int("vmc compile", "--arch sm_XX", v + 3, 50, 999, &n)) return false;
            a->arch = (int)n;
        } else if (!strcmp(s, "--set") && more) {
            char *eq = strchr(argv[++k], '=');
            if (!eq || eq == argv[k]) { fprintf(stderr, "vmc compile: --set expects NAME=VALUE, found '%s'\n", argv[k]); return false; }
            *eq = 0;
            a->sets[a->nsets++] = (DslSet){argv[k], eq + 1};
        } else if (s[0] != '-' && !a->file) a->file = s;
        else if (s[0] != '-') { fprintf(stderr, "vmc compile: one FILE expected, found '%s' and '%s'\n", a->file, s); return false; }
        else { fprintf(stderr, "vmc compile: unknown option '%s' (see vmc compile --help)\n", s); return false; }
    }
    if (!a->file) { usage(stderr); return false; }
    return true;
}

/* Compiles one model; returns the exit status. */
static int compile_model(const Args *a, DslModule *m, const char *model) {
    Diag d;
    diag_init(&d, stderr);
    double t0 = now_s();
    StepGraph sg;
    if (!step_graph_build(m, model, a->train, &sg, &d)) { graph_free(sg.g); return 1; }
    double t1 = now_s();
    ProgramOptions po = {.arch = a->arch, .dump_dir = a->dump, .threads = a->threads, .bf16 = a->bf16,
                         .no_compile = a->no_nvrtc, .scan_recompute = a->scan_recompute, .ptxas_info = a->ptxas};
    program_knobs_from_env(&po);   /* (as cuda_exec) */
    char err[2048];
    Program *p = program_build(sg.g, NULL, 0, &po, err, sizeof err);
    if (!p) {
        fprintf(stderr, "vmc compile: %s: %s\n", model, err);
        graph_free(sg.g);
        return 2;
    }
    printf("%s (%s step, sm_%d): %d nodes -> %d groups, %d kernels, %d GEMMs; graph %.2f s, codegen %.2f s, "
           "NVRTC %.2f s (%d of %d modules cached)\n", model, a->train ? "training" : "inference", a->arch,
           sg.g->nnodes, p->f->ngroups, p->nkernels, p->ngemms, t1 - t0, p->codegen_s, p->compile_s, p->ncached,
           p->nmodules);
    program_summary(p, stdout);
    if (a->ptxas && !a->no_nvrtc) ptxas_report(p, stdout);
    if (a->groups) fusion_dump(p->f, stdout);
    if (a->launches) program_dump_launches(p, &a->rates, stdout);
    program_free(p);
    graph_free(sg.g);
    return 0;
}

int cmd_compile(int argc, char **argv) {
    Args a;
    if (!parse(argc, argv, &a) || a.help) {
        if (a.help) usage(stdout);
        free(a.sets); free(a.inc);
        return a.help ? 0 : 1;
    }
    Diag d;
    diag_init(&d, stderr);
    DslOptions opt = {a.inc, a.ninc, a.sets, a.nsets};
    DslModule *m = dsl_load(a.file, &opt, &d);
    int rc = m ? 0 : 1;
    if (m && a.model) rc = compile_model(&a, m, a.model);
    for (int k = 0; m && !a.model && k < dsl_model_count(m) && rc == 0; k++) rc = compile_model(&a, m, dsl_model_name(m, k));
    dsl_free(m);
    free(a.sets);
    free(a.inc);
    return rc;
}
