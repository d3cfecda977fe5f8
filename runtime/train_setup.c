/* train_setup.c — a run's pieces (train_run.h): recipe values, the model and recipe chosen, the training graph
 * (autodiff + optim_append), the backend, weights from init/--init/--resume, the data loaders and batches fed to the
 * step, the run directory. */
#include "train_run.h"
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

/* ---------------------------------------------------------------- recipe values */
double tr_rnum(const Recipe *r, const char *key, double def) {
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
const char *tr_mode_name(const Run *r) { return MODE_NAME[r->o->mode]; }

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

bool tr_load_module(Run *r) {
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
    r->opt = (OptimConfig){rlist(rc, "betas", 0, 0.9), rlist(rc, "betas", 1, 0.999), tr_rnum(rc, "eps", 1e-8),
                           tr_rnum(rc, "weight_decay", 0.05), tr_rnum(rc, "clip_grad", 0), tr_rnum(rc, "layer_decay", 1),
                           tr_rnum(rc, "ema_decay", 0)};
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

bool tr_build_graph(Run *r) {
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

bool tr_make_exec(Run *r) {
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
bool tr_load_weights(Run *r, CkptMeta *m) {
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

Loader *tr_open_loader(Run *r, DataSplit split, Dataset **ds, const int32_t *subset, int nsubset) {
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
    c.aug.hflip = (float)tr_rnum(rc, "augment.hflip", 0.5);
    c.aug.randaugment = tr_rnum(rc, "augment.randaugment", 0) != 0 || strlen(rstr(rc, "augment.aa", "")) > 0;
    c.aug.reprob = (float)tr_rnum(rc, "augment.reprob", 0);
    c.aug.crop_pct = (float)tr_rnum(rc, "augment.eval_crop_pct", 0.875);
    c.aug.normalize = strcmp(rstr(rc, "augment.normalize", "imagenet"), "none") != 0;
    if (split == SPLIT_TRAIN && r->targets) {
        c.mix = (MixConfig){(float)tr_rnum(rc, "mix.mixup", 0), (float)tr_rnum(rc, "mix.cutmix", 0), (float)tr_rnum(rc, "mix.prob", 1),
                            (float)tr_rnum(rc, "mix.switch_prob", 0.5), (float)tr_rnum(rc, "mix.smoothing", 0), r->classes};
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
bool tr_next_batch(Loader *l, Batch *b) {
    for (int tries = 0; tries < 2; tries++) {
        if (loader_next(l, b)) return true;
        if (loader_error(l)) { fprintf(stderr, "data: %s\n", loader_error(l)); return false; }
    }
    fprintf(stderr, "data: the dataset yields no full batch\n");
    return false;
}

/* images, labels and targets of a batch into the graph's inputs (one-hot targets, smoothed, when not mixed). lend:
 * the images are the loader's (pinned) batch, lent until exec_write_release instead of copied at once. */
void tr_feed_batch(Run *r, const Batch *b, bool lend) {
    const size_t img_bytes = sizeof(float) * (size_t)shape_numel(r->images->shape);
    if (lend) exec_write_borrowed(r->e, r->images, b->images, img_bytes);
    else exec_write(r->e, r->images, b->images, img_bytes);
    if (r->labels) exec_write(r->e, r->labels, b->labels, sizeof(int32_t) * (size_t)r->batch);
    if (!r->targets) return;
    size_t bytes = sizeof(float) * (size_t)r->batch * (size_t)r->classes;
    if (b->targets) { exec_write(r->e, r->targets, b->targets, bytes); return; }
    float *t = xmalloc(bytes);
    mix_targets(b->labels, r->batch, r->classes, 1.0, tr_rnum(r->rec, "mix.smoothing", 0) * (r->o->mode != TRAIN_EVAL), t);
    exec_write(r->e, r->targets, t, bytes);
    free(t);
}

/* ---------------------------------------------------------------- run directory */
bool tr_make_dirs(const char *path) {
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

void tr_write_recipe_txt(const Run *r, double lr, int64_t steps, int64_t ipe) {
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
