/* train.c — the driver of `vmc pretrain|finetune|eval` (see train.h): model + recipe -> training graph
 * (autodiff + optim_append) -> Exec, weights from init/--init/--resume, the per-step loop feeding batches, lr
 * and step, metrics.jsonl and checkpoints, and top-1/top-5 evaluation. Backend-neutral: only exec.h is used. */
#include "train.h"
#include "autodiff.h"
#include "checkpoint.h"
#include "cuda_api.h"
#include "cuda_exec.h"
#include "gpu_clocks.h"
#include "data.h"
#include "exec.h"
#include "init.h"
#include "metrics.h"
#include "optim.h"
#include "plot.h"
#include "schedule.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Set by the SIGINT handler, polled between steps: the one piece of process state a signal may touch. */
static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

typedef struct Run {
    const TrainOptions *o;
    DslModule *mod;
    const Recipe *rec;
    char *model_name, *recipe_name;      /* owned copies */
    Graph *g;
    Node *images, *labels, *targets, *logits, *grad_norm, *lr_in, *step_in;
    Exec *e;
    bool cuda;                           /* the backend in use */
    bool env_error;                      /* the backend could not start (no GPU, out of memory): exit 2 */
    uint64_t seed;
    int batch, classes;
    OptimConfig opt;
    bool *class_mask;                    /* eval --classes: the logits scored (NULL: all) */
} Run;

/* ---------------------------------------------------------------- recipe values */
static double rnum(const Recipe *r, const char *key, double def) {
    const RecipeEntry *e = r ? recipe_get(r, key) : NULL;
    return e && (e->kind == RV_NUM || e->kind == RV_BOOL) ? e->num : def;
}
static const char *rstr(const Recipe *r, const char *key, const char *def) {
    const RecipeEntry *e = r ? recipe_get(r, key) : NULL;
    return e && e->kind == RV_STR ? e->str : def;
}
static double rlist(const Recipe *r, const char *key, int k, double def) {
    const RecipeEntry *e = r ? recipe_get(r, key) : NULL;
    return e && e->kind == RV_LIST && e->nlist > k ? e->list[k] : def;
}

/* ---------------------------------------------------------------- model and recipe selection */
static const char *MODE_WORD[] = {"pretrain", "ft", "ft"};
static const char *MODE_RECIPE[] = {"pretrain", "finetune", "finetune"};
static const char *MODE_NAME[] = {"pretrain", "finetune", "eval"};

/* --model, else the only model, else the first whose name contains the mode's word. */
static const char *pick_model(const Run *r) {
    DslModule *m = r->mod;
    if (r->o->model) {
        for (int k = 0; k < dsl_model_count(m); k++) if (!strcmp(dsl_model_name(m, k), r->o->model)) return r->o->model;
        fprintf(stderr, "%s: no model named '%s'; models:", r->o->file, r->o->model);
    } else {
        if (dsl_model_count(m) == 1) return dsl_model_name(m, 0);
        for (int k = 0; k < dsl_model_count(m); k++)
            if (strstr(dsl_model_name(m, k), MODE_WORD[r->o->mode])) return dsl_model_name(m, k);
        fprintf(stderr, "%s: no model matches '%s'; pass --model NAME, one of:", r->o->file, MODE_WORD[r->o->mode]);
    }
    for (int k = 0; k < dsl_model_count(m); k++) fprintf(stderr, " %s", dsl_model_name(m, k));
    fprintf(stderr, "\n");
    return NULL;
}

/* --recipe, else the model's `recipe R`, else the first recipe whose name contains the mode's word. */
static bool pick_recipe(Run *r, Diag *d) {
    DslModule *m = r->mod;
    const char *name = r->o->recipe;
    for (int k = 0; !name && k < dsl_model_count(m); k++)
        if (!strcmp(dsl_model_name(m, k), r->model_name)) name = dsl_model_recipe(m, k);
    for (int k = 0; !name && k < dsl_recipe_count(m); k++)
        if (strstr(dsl_recipe_name(m, k), MODE_RECIPE[r->o->mode])) name = dsl_recipe_name(m, k);
    if (!name) {
        fprintf(stderr, "%s: no recipe for '%s'; pass --recipe NAME (recipes:", r->o->file, MODE_NAME[r->o->mode]);
        for (int k = 0; k < dsl_recipe_count(m); k++) fprintf(stderr, " %s", dsl_recipe_name(m, k));
        fprintf(stderr, ")\n");
        return false;
    }
    r->recipe_name = xstrdup(name);
    r->rec = dsl_build_recipe(m, name, d);
    return r->rec != NULL;
}

/* The recipe's drop_path reaches the model through its drop_path_rate constant when it has one: the module is
 * loaded again with that --set (a model without the constant keeps the first load). */
static void apply_drop_path(Run *r) {
    const RecipeEntry *dp = recipe_get(r->rec, "drop_path");
    if (!dp || dp->kind != RV_NUM || r->o->mode == TRAIN_EVAL) return;
    for (int k = 0; k < r->o->nsets; k++) if (!strcmp(r->o->sets[k].name, "drop_path_rate")) return;
    DslSet *sets = xcalloc((size_t)r->o->nsets + 1, sizeof *sets);
    memcpy(sets, r->o->sets, sizeof *sets * (size_t)r->o->nsets);
    char val[64];
    snprintf(val, sizeof val, "%.17g", dp->num);
    sets[r->o->nsets] = (DslSet){"drop_path_rate", val};
    DslOptions opt = {r->o->include_dirs, r->o->ninclude, sets, r->o->nsets + 1};
    char *buf = NULL; size_t n = 0;
    FILE *quiet = open_memstream(&buf, &n);
    Diag d;
    diag_init(&d, quiet);
    DslModule *m2 = dsl_load(r->o->file, &opt, &d);
    fclose(quiet);
    free(buf);
    Diag d2;
    diag_init(&d2, stderr);
    const Recipe *rec2 = m2 ? dsl_build_recipe(m2, r->recipe_name, &d2) : NULL;
    if (rec2) { dsl_free(r->mod); r->mod = m2; r->rec = rec2; }   /* names are copies: they outlive the swap */
    else if (m2) dsl_free(m2);
    free(sets);
}

static bool load_module(Run *r) {
    const TrainOptions *o = r->o;
    Diag d;
    diag_init(&d, stderr);
    DslOptions opt = {o->include_dirs, o->ninclude, o->sets, o->nsets};
    r->mod = dsl_load(o->file, &opt, &d);
    if (!r->mod) return false;
    const char *model = pick_model(r);
    if (!model) return false;
    r->model_name = xstrdup(model);
    if (!pick_recipe(r, &d)) return false;
    apply_drop_path(r);
    return true;
}

/* ---------------------------------------------------------------- the training graph */
static Node *find_input(const Graph *g, const char *name) {
    for (int k = 0; k < g->inputs.n; k++) {
        Node *n = g->inputs.items[k];
        if (!strcmp(n->name, name)) return n;
    }
    return NULL;
}

static void optim_config(Run *r) {
    const Recipe *rc = r->rec;
    r->opt = (OptimConfig){rlist(rc, "betas", 0, 0.9), rlist(rc, "betas", 1, 0.999), rnum(rc, "eps", 1e-8),
                           rnum(rc, "weight_decay", 0.05), rnum(rc, "clip_grad", 0), rnum(rc, "layer_decay", 1),
                           rnum(rc, "ema_decay", 0)};
}

static bool check_inputs(Run *r) {
    Graph *g = r->g;
    r->images = find_input(g, "images");
    r->labels = find_input(g, "labels");
    r->targets = find_input(g, "targets");
    r->logits = graph_find_named(g, "logits");
    const char *why = NULL;
    if (!r->images || r->images->shape.ndim != 4 || r->images->shape.d[2] != r->images->shape.d[3])
        why = "an input images[batch, channels, size, size]";
    else if (r->o->mode != TRAIN_EVAL && !g->loss) why = "a loss";
    else if (r->o->mode == TRAIN_EVAL && (!r->logits || r->logits->shape.ndim != 2)) why = "an output logits[batch, classes]";
    else if (r->targets && r->targets->shape.ndim != 2) why = "targets[batch, classes]";
    if (why) { fprintf(stderr, "%s: model '%s' has no %s\n", r->o->file, r->model_name, why); return false; }
    r->batch = (int)r->images->shape.d[0];
    r->classes = r->targets ? (int)r->targets->shape.d[1] : r->logits ? (int)r->logits->shape.d[1] : 0;
    return true;
}

static bool build_graph(Run *r) {
    Diag d;
    diag_init(&d, stderr);
    r->g = dsl_build_model(r->mod, r->model_name, &d);
    if (!r->g || !check_inputs(r)) return false;
    char err[512];
    if (r->o->mode == TRAIN_EVAL) {
        graph_eval_mode(r->g);
    } else {
        Node **grads = xcalloc((size_t)r->g->params.n + 1, sizeof(Node *));
        OptimNodes on;
        optim_config(r);
        bool ok = autodiff_backward(r->g, r->g->loss, grads, err, sizeof err) &&
                  optim_append(r->g, grads, &r->opt, &on, err, sizeof err);
        free(grads);
        if (!ok) { fprintf(stderr, "%s: model '%s': %s\n", r->o->file, r->model_name, err); return false; }
        r->grad_norm = on.grad_norm; r->lr_in = on.lr; r->step_in = on.step;
    }
    ASSERT(graph_verify(r->g, err, sizeof err), "%s", err);
    return true;
}

/* Bytes of the parameters and optimizer/EMA states (and one gradient per parameter): the part of the device
 * memory that does not grow with the batch, for the out-of-memory estimate. */
static int64_t fixed_bytes(const Graph *g) {
    int64_t b = 0;
    for (int k = 0; k < g->params.n; k++) { const Node *n = g->params.items[k]; b += 2 * shape_numel(n->shape) * dtype_size(n->dtype); }
    for (int k = 0; k < g->states.n; k++) { const Node *n = g->states.items[k]; b += shape_numel(n->shape) * dtype_size(n->dtype); }
    return b;
}

int64_t train_fitting_batch(int64_t fixed, int64_t per_image, int64_t free_bytes) {
    int64_t room = free_bytes - fixed - free_bytes / 20;     /* 5% for cuBLAS workspaces and staging buffers */
    if (per_image <= 0 || room < per_image) return 0;
    int64_t b = room / per_image;
    return b > 1 ? b & ~(int64_t)1 : b;                       /* even: mixup pairs the batch with its flip */
}

void train_oom_message(int64_t need, int64_t free_bytes, int64_t fixed, int64_t per_image, int batch, char *buf, int len) {
    int64_t fit = train_fitting_batch(fixed, per_image, free_bytes);
    int n = snprintf(buf, (size_t)len, "out of GPU memory: batch %d needs %.2f GiB (%lld bytes), %.2f GiB (%lld bytes) are free; ",
                     batch, (double)need / (1 << 30), (long long)need, (double)free_bytes / (1 << 30), (long long)free_bytes);
    if (n < 0 || n >= len) return;
    if (fit > 0)
        snprintf(buf + n, (size_t)(len - n), "a batch of about %lld would fit (%.1f MiB per image, %.1f MiB fixed): pass --batch_size %lld",
                 (long long)fit, (double)per_image / (1 << 20), (double)fixed / (1 << 20), (long long)fit);
    else
        snprintf(buf + n, (size_t)(len - n), "even a batch of 1 would not fit (%.1f MiB per image, %.1f MiB fixed)",
                 (double)per_image / (1 << 20), (double)fixed / (1 << 20));
}

/* cuda_exec_create failed: an out-of-memory message with a batch estimate (exit 2), else its message. */
static void report_cuda_failure(const Run *r, const char *err) {
    long long need, fr;
    if (sscanf(err, CUDA_OOM_FORMAT, &need, &fr) != 2) {
        fprintf(stderr, "vmc %s: cuda backend: %s\n", MODE_NAME[r->o->mode], err);
        return;
    }
    int64_t fixed = fixed_bytes(r->g), per = need > fixed ? (need - fixed) / r->batch : 0;
    char msg[1024];
    train_oom_message(need, fr, fixed, per, r->batch, msg, sizeof msg);
    fprintf(stderr, "vmc %s: %s%s\n", MODE_NAME[r->o->mode], msg,
            r->o->scan_recompute || r->o->mode == TRAIN_EVAL ? "" : " (--scan-recompute also needs less per image)");
}

/* --backend auto (or none): cuda when a GPU is usable, else cpu. */
static const char *pick_backend(const TrainOptions *o) {
    const char *b = o->backend ? o->backend : "auto";
    if (strcmp(b, "auto")) return b;
    return cuda_available() ? "cuda" : "cpu";
}

static bool make_exec(Run *r) {
    const char *b = pick_backend(r->o);
    Node *keep[4];
    int nk = 0;
    if (r->g->loss) keep[nk++] = r->g->loss;
    if (r->grad_norm) keep[nk++] = r->grad_norm;
    if (r->logits) keep[nk++] = r->logits;
    if (!strcmp(b, "cpu")) {
        r->e = cpu_exec_new(r->g, keep, nk);
    } else if (!strcmp(b, "cuda")) {
        /* precision "bf16": bf16 GEMM operands, fp32 elsewhere (ARM_SPEC §2.5); "fp32": fp32 parity mode */
        const char *prec = r->o->precision ? r->o->precision : rstr(r->rec, "precision", "fp32");
        if (strcmp(prec, "bf16") && strcmp(prec, "fp32")) {
            fprintf(stderr, "vmc %s: unknown precision '%s' (expected bf16 or fp32)\n", MODE_NAME[r->o->mode], prec);
            return false;
        }
        CudaExecOptions opt = {.bf16 = !strcmp(prec, "bf16"), .scan_recompute = r->o->scan_recompute};
        char err[1024];
        r->e = cuda_exec_create(r->g, keep, nk, &opt, err, sizeof err);
        if (!r->e) report_cuda_failure(r, err), r->env_error = true;
        r->cuda = true;
    } else {
        fprintf(stderr, "vmc %s: unknown backend '%s' (expected cpu, cuda or auto)\n", MODE_NAME[r->o->mode], b);
    }
    return r->e != NULL;
}

/* ---------------------------------------------------------------- weights */
static uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   /* quiet NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);                   /* round to nearest even */
}

static void write_param_f32(Exec *e, const Node *p, const float *v) {
    size_t n = (size_t)shape_numel(p->shape);
    if (p->dtype == DT_F32) { exec_write(e, p, v, n * sizeof(float)); return; }
    void *b = xmalloc(n * 4 + 1);
    for (size_t i = 0; i < n; i++) {
        if (p->dtype == DT_I32) ((int32_t *)b)[i] = (int32_t)v[i];
        else ((uint16_t *)b)[i] = f32_to_bf16(v[i]);
    }
    exec_write(e, p, b, n * (size_t)dtype_size(p->dtype));
    free(b);
}

static void init_params(Run *r) {
    for (int k = 0; k < r->g->params.n; k++) {
        const Node *p = r->g->params.items[k];
        float *v = xmalloc(sizeof(float) * (size_t)shape_numel(p->shape) + 1);
        init_param(p, r->seed, v);
        write_param_f32(r->e, p, v);
        free(v);
    }
}

/* timm ModelEma starts as a copy of the model (after any --init). */
static void copy_params_to_ema(Run *r) {
    for (int k = 0; k < r->g->states.n; k++) {
        Node *s = r->g->states.items[k];
        if (strncmp(s->name, "ema.", 4)) continue;
        Node *p = graph_find_param(r->g, s->name + 4);
        ASSERT(p && p->dtype == DT_F32, "ema state without an f32 param: %s", s->name);
        size_t bytes = sizeof(float) * (size_t)shape_numel(p->shape);
        float *v = xmalloc(bytes + 1);
        exec_read(r->e, p, v, bytes);
        exec_write(r->e, s, v, bytes);
        free(v);
    }
}

/* Fresh init, then --init (weights only) or --resume (everything, and the cursor in *m). */
static bool load_weights(Run *r, CkptMeta *m) {
    char err[1024];
    memset(m, 0, sizeof *m);
    init_params(r);
    const char *path = r->o->resume ? r->o->resume : r->o->init;
    if (path) {
        CkptMode mode = r->o->resume && r->o->mode != TRAIN_EVAL ? CKPT_RESUME : r->o->ema ? CKPT_INIT_EMA : CKPT_INIT;
        CkptMeta got;
        if (!checkpoint_load(r->e, r->g, path, mode, &got, stderr, err, sizeof err)) { fprintf(stderr, "%s\n", err); return false; }
        if (mode == CKPT_RESUME) *m = got;
        else if (r->o->mode == TRAIN_EVAL) m->step = got.step;    /* reported with the accuracy */
    }
    if (!r->o->resume || r->o->mode == TRAIN_EVAL) copy_params_to_ema(r);
    return true;
}

/* ---------------------------------------------------------------- data */
/* Pinned host memory for batch buffers on cuda: the uploads are DMA'd without a staging copy. The exec made the
 * device's context current on this thread. */
static void *pinned_alloc(size_t bytes, void *ctx) {
    (void)ctx;
    void *p = NULL;
    CU_CHECK(cuda_api()->cuMemAllocHost(&p, bytes ? bytes : 1));
    return p;
}
static void pinned_free(void *p, void *ctx) { (void)ctx; if (p) cuda_api()->cuMemFreeHost(p); }

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 2;
}

static Loader *open_loader(Run *r, DataSplit split, Dataset **ds, const int32_t *subset, int nsubset) {
    char err[1024];
    *ds = dataset_open(r->o->data, split, err, sizeof err);
    if (!*ds) { fprintf(stderr, "%s\n", err); return NULL; }
    const Recipe *rc = r->rec;
    LoaderConfig c;
    memset(&c, 0, sizeof c);
    c.batch = r->batch;
    c.aug.size = (int)r->images->shape.d[2];
    c.aug.channels = (int)r->images->shape.d[1];
    c.aug.train = split == SPLIT_TRAIN;
    c.aug.scale_min = (float)rlist(rc, "augment.scale", 0, 0.08);
    c.aug.scale_max = (float)rlist(rc, "augment.scale", 1, 1.0);
    c.aug.hflip = (float)rnum(rc, "augment.hflip", 0.5);
    c.aug.randaugment = rnum(rc, "augment.randaugment", 0) != 0 || strlen(rstr(rc, "augment.aa", "")) > 0;
    c.aug.reprob = (float)rnum(rc, "augment.reprob", 0);
    c.aug.crop_pct = (float)rnum(rc, "augment.eval_crop_pct", 0.875);
    c.aug.normalize = strcmp(rstr(rc, "augment.normalize", "imagenet"), "none") != 0;
    if (split == SPLIT_TRAIN && r->targets) {
        c.mix = (MixConfig){(float)rnum(rc, "mix.mixup", 0), (float)rnum(rc, "mix.cutmix", 0), (float)rnum(rc, "mix.prob", 1),
                            (float)rnum(rc, "mix.switch_prob", 0.5), (float)rnum(rc, "mix.smoothing", 0), r->classes};
    }
    c.seed = r->seed;
    c.threads = r->o->threads > 0 ? r->o->threads : default_threads();
    c.class_subset = subset; c.nsubset = nsubset;
    if (r->cuda) c.allocator = (DataAllocator){pinned_alloc, pinned_free, NULL};
    c.drop_last = split == SPLIT_TRAIN;     /* the graph has a static batch */
    c.shuffle = split == SPLIT_TRAIN;
    Loader *l = loader_new(*ds, &c);
    if (!l) { dataset_free(*ds); *ds = NULL; }
    return l;
}

/* The next batch, crossing epoch boundaries; false on a loader error (reported). */
static bool next_batch(Loader *l, Batch *b) {
    for (int tries = 0; tries < 2; tries++) {
        if (loader_next(l, b)) return true;
        if (loader_error(l)) { fprintf(stderr, "data: %s\n", loader_error(l)); return false; }
    }
    fprintf(stderr, "data: the dataset yields no full batch\n");
    return false;
}

/* images, labels and targets of a batch into the graph's inputs (one-hot targets, smoothed, when not mixed). lend:
 * the images are the loader's (pinned) batch, lent until exec_write_release instead of copied at once. */
static void feed_batch(Run *r, const Batch *b, bool lend) {
    const size_t img_bytes = sizeof(float) * (size_t)shape_numel(r->images->shape);
    if (lend) exec_write_borrowed(r->e, r->images, b->images, img_bytes);
    else exec_write(r->e, r->images, b->images, img_bytes);
    if (r->labels) exec_write(r->e, r->labels, b->labels, sizeof(int32_t) * (size_t)r->batch);
    if (!r->targets) return;
    size_t bytes = sizeof(float) * (size_t)r->batch * (size_t)r->classes;
    if (b->targets) { exec_write(r->e, r->targets, b->targets, bytes); return; }
    float *t = xmalloc(bytes);
    mix_targets(b->labels, r->batch, r->classes, 1.0, rnum(r->rec, "mix.smoothing", 0) * (r->o->mode != TRAIN_EVAL), t);
    exec_write(r->e, r->targets, t, bytes);
    free(t);
}

/* ---------------------------------------------------------------- run directory */
static bool make_dirs(const char *path) {
    char *p = xstrdup(path);
    bool ok = true;
    for (char *s = p + 1; ok; s++) {
        char c = *s;
        if (c != '/' && c) continue;
        *s = 0;
        ok = mkdir(p, 0755) == 0 || errno == EEXIST;
        *s = c;
        if (!c) break;
    }
    if (!ok) fprintf(stderr, "%s: cannot create directory: %s\n", p, strerror(errno));
    free(p);
    return ok;
}

static void write_recipe_txt(const Run *r, double lr, int64_t steps, int64_t ipe) {
    char path[1024];
    snprintf(path, sizeof path, "%s/recipe.txt", r->o->out);
    FILE *f = fopen(path, "w");
    if (!f) { fprintf(stderr, "%s: cannot write: %s\n", path, strerror(errno)); return; }
    fprintf(f, "# resolved by vmc %s\nfile = %s\nmodel = %s\nrecipe = %s\n", MODE_NAME[r->o->mode], r->o->file, r->model_name, r->recipe_name);
    for (int k = 0; k < r->o->nsets; k++) fprintf(f, "set %s = %s\n", r->o->sets[k].name, r->o->sets[k].value);
    for (int k = 0; k < r->rec->n; k++) {
        const RecipeEntry *e = &r->rec->entries[k];
        fprintf(f, "%s = ", e->key);
        switch (e->kind) {
        case RV_NUM: fprintf(f, "%.10g\n", e->num); break;
        case RV_BOOL: fprintf(f, "%s\n", e->num ? "true" : "false"); break;
        case RV_STR: fprintf(f, "\"%s\"\n", e->str); break;
        case RV_LIST:
            fprintf(f, "[");
            for (int i = 0; i < e->nlist; i++) fprintf(f, i ? ", %.10g" : "%.10g", e->list[i]);
            fprintf(f, "]\n");
            break;
        }
    }
    fprintf(f, "# derived\nbatch_size = %d\neffective_lr = %.10g\nsteps = %" PRId64 "\niters_per_epoch = %" PRId64 "\nseed = %" PRIu64 "\n",
            r->batch, lr, steps, ipe, r->seed);
    fclose(f);
}

/* ---------------------------------------------------------------- evaluation */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct EvalAcc { int64_t n, top1, top5; double nll, secs; } EvalAcc;

/* Rank of the true class (classes with a strictly larger logit) and its cross-entropy, over the classes in mask. */
static void score(EvalAcc *a, const float *z, int classes, int32_t label, const bool *mask) {
    int above = 0;
    double mx = z[label], se = 0;
    for (int c = 0; c < classes; c++) {
        if (mask && !mask[c]) continue;
        above += z[c] > z[label];
        if (z[c] > mx) mx = z[c];
    }
    for (int c = 0; c < classes; c++) if (!mask || mask[c]) se += exp((double)z[c] - mx);
    a->nll += log(se) + mx - z[label];
    a->n++; a->top1 += above < 1; a->top5 += above < 5;
}

/* A possibly partial batch padded to the graph's batch: the padding rows are computed and ignored. */
static void eval_batch(Run *r, const Batch *b, EvalAcc *a, float *img, int32_t *lab, float *z) {
    size_t per = (size_t)shape_numel(r->images->shape) / (size_t)r->batch;
    memset(img, 0, sizeof(float) * per * (size_t)r->batch);
    memcpy(img, b->images, sizeof(float) * per * (size_t)b->n);
    memset(lab, 0, sizeof(int32_t) * (size_t)r->batch);
    memcpy(lab, b->labels, sizeof(int32_t) * (size_t)b->n);
    Batch pb = *b;
    pb.images = img; pb.labels = lab; pb.targets = NULL;
    feed_batch(r, &pb, false);
    StepInfo si = {r->seed, 0};
    exec_run(r->e, &si);
    exec_read(r->e, r->logits, z, sizeof(float) * (size_t)r->batch * (size_t)r->classes);
    for (int i = 0; i < b->n; i++) score(a, z + (size_t)i * (size_t)r->classes, r->classes, lab[i], r->class_mask);
}

/* Scores the test split (the first max_batches batches when > 0) with r's exec; 0, 1 (bad data) or 2 (read error). */
static int eval_split(Run *r, int64_t max_batches, const int32_t *subset, int nsubset, EvalAcc *a) {
    Dataset *ds;
    Loader *l = open_loader(r, SPLIT_TEST, &ds, subset, nsubset);
    if (!l) return 1;
    float *img = xmalloc(sizeof(float) * (size_t)shape_numel(r->images->shape));
    int32_t *lab = xmalloc(sizeof(int32_t) * (size_t)r->batch);
    float *z = xmalloc(sizeof(float) * (size_t)r->batch * (size_t)r->classes);
    memset(a, 0, sizeof *a);
    Batch b;
    double t0 = now_s();
    for (int64_t k = 0; (max_batches <= 0 || k < max_batches) && loader_next(l, &b); k++) eval_batch(r, &b, a, img, lab, z);
    a->secs = now_s() - t0;
    int rc = 0;
    if (loader_error(l)) { fprintf(stderr, "data: %s\n", loader_error(l)); rc = 2; }
    free(img); free(lab); free(z);
    loader_free(l);
    dataset_free(ds);
    return rc;
}

static void log_eval(Metrics *mx, const Run *r, int64_t step, const char *weights, const EvalAcc *a) {
    if (!a->n) return;
    double t1 = 100.0 * (double)a->top1 / (double)a->n, t5 = 100.0 * (double)a->top5 / (double)a->n;
    metrics_begin(mx);
    metrics_str(mx, "split", "test");
    metrics_int(mx, "step", step);
    metrics_int(mx, "n", a->n);
    metrics_num(mx, "top1", t1);
    metrics_num(mx, "top5", t5);
    metrics_num(mx, "loss", a->nll / (double)a->n);
    metrics_num(mx, "img_per_s", (double)a->n / a->secs);
    metrics_str(mx, "weights", weights);
    metrics_end(mx);
    printf("eval %s (%s weights, step %lld): %" PRId64 " images, top-1 %.2f%%, top-5 %.2f%%, loss %.4f\n", r->model_name,
           weights, (long long)step, a->n, t1, t5, a->nll / (double)a->n);
    fflush(stdout);
}

int train_parse_classes(const char *spec, int classes, int32_t *out, int max, char *err, int errlen) {
    char *text = NULL;
    if (spec[0] == '@') {
        FILE *f = fopen(spec + 1, "r");
        if (!f) { snprintf(err, (size_t)errlen, "%s: cannot read the class list: %s", spec + 1, strerror(errno)); return -1; }
        size_t n = 0;
        FILE *m = open_memstream(&text, &n);
        int ch;
        while ((ch = fgetc(f)) != EOF) fputc(ch, m);
        fclose(m);
        fclose(f);
    } else {
        text = xstrdup(spec);
    }
    int n = 0;
    const char *where = spec[0] == '@' ? spec + 1 : "--classes";
    for (char *p = text; *p;) {
        if (*p == ',' || *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') { p++; continue; }
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v >= classes) {
            snprintf(err, (size_t)errlen, "%s: '%.*s' is not a class index in [0, %d)", where, (int)strcspn(p, ", \n\t"), p, classes);
            n = -1; break;
        }
        if (n == max) { snprintf(err, (size_t)errlen, "%s: more than %d classes", where, max); n = -1; break; }
        out[n++] = (int32_t)v;
        p = end;
    }
    if (n == 0) snprintf(err, (size_t)errlen, "%s: no class indices", where), n = -1;
    free(text);
    return n;
}

static int run_eval(Run *r, int64_t ckpt_step) {
    int32_t *subset = NULL;
    int nsub = 0, rc = 0;
    if (r->o->classes) {
        char err[1024];
        subset = xmalloc(sizeof(int32_t) * (size_t)r->classes);
        nsub = train_parse_classes(r->o->classes, r->classes, subset, r->classes, err, sizeof err);
        if (nsub < 0) { fprintf(stderr, "vmc eval: %s\n", err); free(subset); return 1; }
        r->class_mask = xcalloc((size_t)r->classes, sizeof(bool));
        for (int k = 0; k < nsub; k++) r->class_mask[subset[k]] = true;
    }
    EvalAcc a;
    rc = eval_split(r, r->o->steps, subset, nsub, &a);
    char path[1024], err[1200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", r->o->out);
    Metrics *mx = rc ? NULL : metrics_open(path, true, err, sizeof err);
    if (!rc && !mx) { fprintf(stderr, "%s\n", err); rc = 2; }
    if (mx) log_eval(mx, r, ckpt_step, r->o->ema ? "ema" : "model", &a);
    if (mx && !a.n) fprintf(stderr, "vmc eval: no test images%s\n", subset ? " in the selected classes" : "");
    metrics_close(mx);
    if (mx && !plot_run(r->o->out, r->model_name, err, sizeof err)) fprintf(stderr, "warning: %s\n", err);
    free(subset);
    free(r->class_mask);
    return rc;
}

/* ---------------------------------------------------------------- training */

typedef struct Loop {
    Run *r;
    Loader *l;
    Schedule s;
    int64_t total, ipe;
    Metrics *mx;
    CkptMeta cur;              /* step done and the cursor of the next batch */
    char last_ckpt[1024];      /* the newest checkpoint written by this run ("" until one is) */
    double t_log; int64_t it_log;
    double t_start; int64_t it_start;   /* for the ETA */
    bool tty;                  /* stdout is a terminal: one live progress line */
    bool clocks;               /* NVML opened for the GPU: the progress line shows its clock */
    Run *ev; TrainOptions *ev_o;        /* fine-tuning: the eval-mode graph and exec scored on the test split */
    int64_t evaluated;         /* the last step evaluated */
} Loop;

/* MAE: lr = blr * eff_batch / 256 when the recipe gives blr, else its lr. eff_batch is what this run really
 * steps on (one process, no accumulation): the linear scaling rule, as MAE on fewer GPUs. With --steps the
 * warmup + cosine is compressed to those steps, keeping the recipe's warmup fraction. Returns the total steps. */
static int64_t plan_schedule(Loop *lp) {
    const Recipe *rc = lp->r->rec;
    double epochs = rnum(rc, "epochs", 1), warm = rnum(rc, "warmup_epochs", 0), blr = rnum(rc, "blr", 0);
    double lr = recipe_get(rc, "blr") ? schedule_scaled_lr(blr, lp->r->batch) : rnum(rc, "lr", 1e-3);
    double scale = rnum(rc, "world", 1) * rnum(rc, "accum_iter", 1);
    if (scale != 1 && recipe_get(rc, "blr"))
        fprintf(stderr, "note: the recipe's world x accum_iter = %g is not run here (one process, no accumulation): "
                "lr %.3e for batch %d instead of the recipe's %.3e\n", scale, lr, lp->r->batch, lr * scale);
    lp->s = (Schedule){lr, rnum(rc, "min_lr", 0), warm, epochs, lp->ipe};
    int64_t total = (int64_t)llround(epochs * (double)lp->ipe);
    if (lp->r->o->steps >= 0) {
        total = lp->r->o->steps;
        lp->s.epochs = (double)total / (double)lp->ipe;
        lp->s.warmup_epochs = epochs > 0 ? warm * lp->s.epochs / epochs : 0;
    }
    return total;
}

static bool save_ckpt(Loop *lp) {
    char path[1024], err[1200];
    checkpoint_path(lp->r->o->out, lp->cur.step, path, sizeof path);
    if (!checkpoint_save(lp->r->e, lp->r->g, path, &lp->cur, err, sizeof err)) { fprintf(stderr, "%s\n", err); return false; }
    snprintf(lp->last_ckpt, sizeof lp->last_ckpt, "%s", path);
    checkpoint_prune(lp->r->o->out, lp->r->o->keep > 0 ? lp->r->o->keep : 3);
    return true;
}

static void log_step(Loop *lp, int64_t it, double loss, double lr, double gn) {
    double t = now_s(), ips = (double)(it + 1 - lp->it_log) * lp->r->batch / (t - lp->t_log);
    double epoch = (double)(it + 1) / (double)lp->ipe;
    metrics_begin(lp->mx);
    metrics_int(lp->mx, "step", it + 1);
    metrics_num(lp->mx, "epoch", epoch);
    metrics_num(lp->mx, "loss", loss);
    metrics_num(lp->mx, "lr", lr);
    metrics_num(lp->mx, "grad_norm", gn);
    metrics_num(lp->mx, "img_per_s", ips);
    metrics_end(lp->mx);
    lp->t_log = t; lp->it_log = it + 1;
}

static void fmt_duration(double s, char *buf, size_t n) {
    long t = s > 0 && s < 1e8 ? (long)(s + 0.5) : 0;
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

/* The console: on a terminal one line rewritten in place every step; otherwise a plain line every 10 steps. */
static void progress(Loop *lp, int64_t it, int64_t end, double loss, double lr, double gn) {
    if (lp->r->o->quiet || (!lp->tty && (it + 1) % 10 != 0 && it + 1 != end)) return;
    double el = now_s() - lp->t_start, done = (double)(it + 1 - lp->it_start);
    double ips = done * lp->r->batch / el, eta = el / done * (double)(end - it - 1);
    char etas[32], mem[128] = "";
    fmt_duration(eta, etas, sizeof etas);
    if (lp->r->cuda) {
        int64_t used = 0, total = 0;
        cuda_exec_memory(lp->r->e, &used, &total);
        char clk[64] = "";   /* a power or thermal limit lowers the clock within seconds of a full load */
        if (lp->clocks) {
            ClockSamples cs = {0};
            gpu_clocks_sample(&cs);
            gpu_clocks_brief(&cs, clk, sizeof clk);
        }
        snprintf(mem, sizeof mem, "  mem %.1f/%.1f GiB%s%s", (double)used / (1 << 30), (double)total / (1 << 30),
                 clk[0] ? "  " : "", clk);
    }
    printf("%sstep %" PRId64 "/%" PRId64 "  epoch %.3f  loss %.5f  lr %.3e  grad_norm %.4f  %.1f img/s  ETA %s%s%s",
           lp->tty ? "\r" : "", it + 1, end, (double)(it + 1) / (double)lp->ipe, loss, lr, gn, ips, etas, mem,
           lp->tty ? "\x1b[K" : "\n");
    if (lp->tty && it + 1 == end) printf("\n");
    fflush(stdout);
}

/* The eval twin of the training run: same module and model in eval mode (drop path off), its own exec. */
static bool evaluator_open(Loop *lp) {
    Run *r = lp->r;
    if (r->o->mode != TRAIN_FINETUNE || !r->logits) return true;
    lp->ev_o = xmalloc(sizeof *lp->ev_o);
    *lp->ev_o = *r->o;
    lp->ev_o->mode = TRAIN_EVAL;
    lp->ev = xmalloc(sizeof *lp->ev);
    *lp->ev = *r;
    lp->ev->o = lp->ev_o;
    lp->ev->g = NULL; lp->ev->e = NULL; lp->ev->grad_norm = lp->ev->lr_in = lp->ev->step_in = NULL;
    return build_graph(lp->ev) && make_exec(lp->ev);
}

static void evaluator_close(Loop *lp) {
    if (!lp->ev) return;
    exec_free(lp->ev->e);
    graph_free(lp->ev->g);
    free(lp->ev); free(lp->ev_o);
}

/* Parameters (or their EMA) of the training exec into the eval exec, by name. */
static void copy_weights(Run *from, Run *to, bool ema) {
    for (int k = 0; k < to->g->params.n; k++) {
        Node *p = to->g->params.items[k], *q = graph_find_param(from->g, p->name);
        char name[512];
        snprintf(name, sizeof name, "ema.%s", p->name);
        for (int i = 0; ema && i < from->g->states.n; i++) {
            Node *st = from->g->states.items[i];
            if (!strcmp(st->name, name)) q = st;
        }
        if (!q || q->dtype != p->dtype || shape_numel(q->shape) != shape_numel(p->shape)) continue;
        size_t bytes = (size_t)shape_numel(p->shape) * (size_t)dtype_size(p->dtype);
        void *v = xmalloc(bytes + 1);
        exec_read(from->e, q, v, bytes);
        exec_write(to->e, p, v, bytes);
        free(v);
    }
}

static bool has_ema(const Graph *g) {
    for (int k = 0; k < g->states.n; k++) {
        const Node *st = g->states.items[k];
        if (!strncmp(st->name, "ema.", 4)) return true;
    }
    return false;
}

/* Top-1/top-5 of the model and of its EMA after `step` steps, into metrics.jsonl; false on a data error. */
static bool evaluate_now(Loop *lp, int64_t step) {
    if (!lp->ev || lp->evaluated == step) return true;
    lp->evaluated = step;
    for (int ema = 0; ema <= (int)has_ema(lp->r->g); ema++) {
        EvalAcc a;
        copy_weights(lp->r, lp->ev, ema);
        if (eval_split(lp->ev, lp->r->o->eval_steps, NULL, 0, &a)) return false;
        log_eval(lp->mx, lp->ev, step, ema ? "ema" : "model", &a);
    }
    return true;
}

static void replot(Loop *lp) {
    char err[1200];
    static bool warned;          /* a missing libcairo is said once, not at every epoch */
    if (!plot_run(lp->r->o->out, lp->r->model_name, err, sizeof err) && !warned) fprintf(stderr, "warning: %s\n", err), warned = true;
}

/* One optimizer step queued: batch, lr and step counter in, the step run, and the reads of its loss and grad norm
 * started (exec_read_start), finished by finish_step. */
typedef struct StepOut { float loss, gn; double lr; int loss_ticket, gn_ticket; } StepOut;

static bool launch_step(Loop *lp, int64_t it, StepOut *o) {
    Run *r = lp->r;
    Batch b;
    exec_write_release(r->e);   /* the batch lent to the step before goes back to the loader below */
    if (!next_batch(lp->l, &b)) return false;
    feed_batch(r, &b, true);
    float lrf = (float)schedule_lr(&lp->s, it), t = (float)(it + 1);
    exec_write(r->e, r->lr_in, &lrf, sizeof lrf);
    exec_write(r->e, r->step_in, &t, sizeof t);
    StepInfo si = {r->seed, (uint64_t)it};
    exec_run(r->e, &si);
    o->lr = lrf;
    o->loss_ticket = exec_read_start(r->e, r->g->loss, &o->loss, sizeof o->loss);
    o->gn_ticket = exec_read_start(r->e, r->grad_norm, &o->gn, sizeof o->gn);
    lp->cur.step = it + 1; lp->cur.epoch = b.epoch; lp->cur.index = b.index + 1;
    return true;
}

static void finish_step(Loop *lp, StepOut *o) {
    exec_read_finish(lp->r->e, o->loss_ticket);
    exec_read_finish(lp->r->e, o->gn_ticket);
}

/* After these steps the loop stops to look (evaluation, plot, checkpoint, the end): they finish before the next
 * step is queued. Any other step's successor is queued first (its batch lent to the exec, its graph launched) and
 * only then is the step's loss read, so the host's part of a step runs while the GPU computes the one before. */
static bool stops_after(const Loop *lp, int64_t it, int64_t end, int every) {
    return (it + 1) % lp->ipe == 0 || (it + 1) % every == 0 || it + 1 == end;
}

static int train_loop(Loop *lp) {
    const TrainOptions *o = lp->r->o;
    int every = o->ckpt_every > 0 ? o->ckpt_every : 100, log_every = o->log_every > 0 ? o->log_every : 1;
    int64_t end = o->stop_at > 0 && o->stop_at < lp->total ? o->stop_at : lp->total;
    lp->t_log = lp->t_start = now_s();
    lp->it_start = lp->cur.step;
    StepOut out[2];
    bool queued = false;   /* step `it` was queued by the iteration before */
    for (int64_t it = lp->cur.step; it < end; it++) {
        StepOut *so = &out[it & 1];
        if (!queued && !launch_step(lp, it, so)) return 2;
        queued = false;
        bool data_error = false;
        if (!stops_after(lp, it, end, every) && !interrupted) {
            queued = launch_step(lp, it + 1, &out[(it + 1) & 1]);
            data_error = !queued;
        }
        finish_step(lp, so);
        const double loss = so->loss, lr = so->lr, gn = so->gn;
        if (!isfinite(loss)) {
            fprintf(stderr, "error: the loss is %s at step %" PRId64 "; stopping. Last good checkpoint: %s\n",
                    isnan(loss) ? "NaN" : "infinite", it + 1, lp->last_ckpt[0] ? lp->last_ckpt : "(none written yet)");
            if (queued) finish_step(lp, &out[(it + 1) & 1]);
            return 3;
        }
        if ((it + 1) % log_every == 0 || it + 1 == end) log_step(lp, it, loss, lr, gn);
        progress(lp, it, end, loss, lr, gn);
        if (data_error) return 2;
        if (queued) continue;   /* (interrupted meanwhile: the queued step finishes next, then the checkpoint) */
        bool epoch_end = (it + 1) % lp->ipe == 0;
        if ((epoch_end || it + 1 == end) && !evaluate_now(lp, it + 1)) return 2;
        if (epoch_end || it + 1 == end) replot(lp);
        if (((it + 1) % every == 0 || it + 1 == end || interrupted) && !save_ckpt(lp)) return 2;
        if (interrupted) {
            fprintf(stderr, "interrupted at step %" PRId64 ": checkpoint %s written\n", it + 1, lp->last_ckpt);
            return 130;
        }
    }
    return 0;
}

/* Resuming from an older checkpoint: drop the logged training steps after it, so metrics.jsonl reads as one run. */
static void trim_metrics(const char *path, int64_t step) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *kept = NULL, *line = NULL;
    size_t nk = 0, cap = 0;
    FILE *m = open_memstream(&kept, &nk);
    long long s;
    while (getline(&line, &cap, f) > 0) {
        const char *k = strstr(line, "\"step\": ");
        if (!k || sscanf(k, "\"step\": %lld", &s) != 1 || s <= step) fputs(line, m);
    }
    fclose(m);
    fclose(f);
    free(line);
    if ((f = fopen(path, "w"))) { fwrite(kept, 1, nk, f); fclose(f); }
    free(kept);
}

static int run_train(Run *r, const CkptMeta *m) {
    Loop lp;
    memset(&lp, 0, sizeof lp);
    lp.r = r;
    Dataset *ds;
    if (!(lp.l = open_loader(r, SPLIT_TRAIN, &ds, NULL, 0))) return 1;
    lp.ipe = loader_batches_per_epoch(lp.l);
    int rc = 1;
    if (lp.ipe <= 0) { fprintf(stderr, "%s: fewer images than one batch of %d\n", r->o->data, r->batch); goto done; }
    lp.total = plan_schedule(&lp);
    write_recipe_txt(r, lp.s.lr, lp.total, lp.ipe);
    lp.cur = *m;
    snprintf(lp.cur.model, sizeof lp.cur.model, "%s", r->model_name);
    lp.cur.seed = r->seed;
    if (r->o->resume) loader_seek(lp.l, m->epoch, m->index);
    char path[1024], err[1200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", r->o->out);
    if (r->o->resume) trim_metrics(path, m->step);
    if (!(lp.mx = metrics_open(path, r->o->resume != NULL, err, sizeof err))) { fprintf(stderr, "%s\n", err); rc = 2; goto done; }
    printf("vmc %s: model %s, recipe %s, %" PRId64 " params, batch %d, %" PRId64 " steps (%" PRId64 " per epoch), lr %.3e, from step %" PRId64 "\n",
           MODE_NAME[r->o->mode], r->model_name, r->recipe_name, graph_param_count(r->g, true), r->batch, lp.total, lp.ipe,
           lp.s.lr, lp.cur.step);
    lp.tty = isatty(STDOUT_FILENO);
    char why[256];
    lp.clocks = r->cuda && cuda_exec_clocks_open(r->e, why, sizeof why);
    if (!evaluator_open(&lp)) { rc = lp.ev && lp.ev->env_error ? 2 : 1; goto done; }
    interrupted = 0;
    void (*prev)(int) = signal(SIGINT, on_sigint);
    rc = train_loop(&lp);
    signal(SIGINT, prev);
done:
    evaluator_close(&lp);
    metrics_close(lp.mx);
    exec_write_release(r->e);   /* before the loader frees the batch lent last */
    loader_free(lp.l);
    dataset_free(ds);
    return rc;
}

/* ---------------------------------------------------------------- entry */
int train_run(const TrainOptions *o) {
    Run r;
    memset(&r, 0, sizeof r);
    r.o = o;
    int rc = 1;
    CkptMeta m;
    if (!load_module(&r)) goto done;
    r.seed = o->seed_set ? o->seed : (uint64_t)rnum(r.rec, "seed", 0);
    if (!build_graph(&r)) goto done;
    if (!make_exec(&r)) { rc = r.env_error ? 2 : 1; goto done; }
    if (!make_dirs(o->out)) { rc = 2; goto done; }
    if (!load_weights(&r, &m)) goto done;
    if (o->resume && o->mode != TRAIN_EVAL && m.seed != r.seed) r.seed = m.seed;   /* continue the same streams */
    rc = o->mode == TRAIN_EVAL ? run_eval(&r, m.step) : run_train(&r, &m);
done:
    exec_free(r.e);
    graph_free(r.g);
    if (r.mod) dsl_free(r.mod);
    free(r.model_name); free(r.recipe_name);
    return rc;
}
