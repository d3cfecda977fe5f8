/* cmd_train.c — `vmc pretrain`, `vmc finetune` and `vmc eval`: command-line parsing into TrainOptions (flags
 * named as the MAE/timm scripts; the recipe flags become --set overrides) and the --help texts. */
#include "checkpoint.h"
#include "commands.h"
#include "train.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SUMMARY[] = {
    "pretrain a model with its loss (forward + backward + AdamW every step)",
    "fine-tune a classifier with soft targets (mixup/cutmix/label smoothing from the recipe)",
    "top-1 / top-5 accuracy of a checkpoint on the test split",
};
static const char *const CMD[] = {"pretrain", "finetune", "eval"};

/* Named flags that are recipe keys or model constants: they become --set NAME=VALUE. */
static const struct { const char *flag, *key; } SET_FLAGS[] = {
    {"--batch_size", "batch"}, {"--epochs", "epochs"}, {"--blr", "blr"}, {"--lr", "lr"}, {"--min_lr", "min_lr"},
    {"--warmup_epochs", "warmup_epochs"}, {"--weight_decay", "weight_decay"}, {"--drop_path", "drop_path"},
    {"--layer_decay", "layer_decay"}, {"--ema_decay", "ema_decay"}, {"--clip_grad", "clip_grad"},
};

static void usage(TrainMode m, FILE *f) {
    fprintf(f, "usage: vmc %s FILE [--model NAME] [--recipe NAME] --data PATH --out DIR [options]\n\n%s.\n\n", CMD[m], SUMMARY[m]);
    fprintf(f,
            "  --model NAME          model in FILE (default: the only one, else the first named *%s*)\n"
            "  --recipe NAME         recipe (default: the model's, else the first named *%s*)\n"
            "  --data PATH           dataset: IDX (Fashion-MNIST), CIFAR-10 binary or an ImageFolder tree\n"
            "  --out DIR             run directory: recipe.txt, metrics.jsonl%s\n"
            "  --backend B           cpu, cuda or auto (default: cuda when a GPU is usable, else cpu)\n"
            "  --precision P         bf16 or fp32 (cuda; default: the recipe's precision)\n"
            "  --seed S              run seed (default: the recipe's seed, else 0)\n"
            "  --set NAME=VALUE      override a model constant or recipe key (repeatable)\n"
            "  -I DIR                add an import directory\n",
            m == TRAIN_PRETRAIN ? "pretrain" : "ft", m == TRAIN_PRETRAIN ? "pretrain" : "finetune",
            m == TRAIN_EVAL ? "" : ", checkpoint-<step>.safetensors");
    if (m == TRAIN_EVAL) {
        fprintf(f, "  --init CKPT           weights to evaluate (also --resume CKPT)\n"
                   "  --steps N             evaluate the first N batches only\n"
                   "  --ema                 evaluate the checkpoint's EMA weights\n"
                   "  --classes LIST        evaluate on these class indices only (comma list, or @FILE of them)\n"
                   "  --batch_size N        (= --set batch=N)\n");
    } else {
        fprintf(f, "  --steps N             stop after N steps; the warmup+cosine schedule spans these N steps\n"
"  --stop_at K           stop after step K with a checkpoint (the schedule still spans --steps)\n"
                   "  --eval_steps N        finetune: the per-epoch test evaluations (model and EMA) use N batches (default all)\n"
                   "  --resume CKPT         continue exactly (weights, AdamW, EMA, step, data cursor); 'auto': newest in --out\n"
                   "  --init CKPT           start from these weights (matching names; mismatches are listed)\n"
                   "  --log_every N         metrics.jsonl line every N steps (default 1)\n"
                   "  --ckpt_every N        checkpoint every N steps (default 100) and at the end\n"
                   "  --keep K              keep the newest K checkpoints (default 3)\n"
                   "  --batch_size N --epochs N --blr X --lr X --min_lr X --warmup_epochs N --weight_decay X\n"
                   "  --drop_path X --layer_decay X --ema_decay X --clip_grad X      (= --set KEY=VALUE)\n");
    }
    fprintf(f, "  --threads N           data loader threads (default: the number of cores)\n  --quiet               no per-step lines\n");
    if (m != TRAIN_EVAL)
        fprintf(f, "  --scan-recompute      cuda: the scan backward recomputes its chunk states instead of keeping the\n"
                   "                        forward's (less memory, a slower step)\n");
}

typedef struct Args {
    TrainOptions o;
    DslSet sets[64]; int nsets;
    const char *incs[16];
    char latest[1024];
} Args;

static bool add_set(Args *a, const char *name, const char *value) {
    if (a->nsets == (int)(sizeof a->sets / sizeof a->sets[0])) { fprintf(stderr, "too many --set options\n"); return false; }
    a->sets[a->nsets++] = (DslSet){name, value};
    return true;
}

/* --set NAME=VALUE: the name is split off in place (argv strings are writable). */
static bool parse_set(Args *a, char *kv) {
    char *eq = strchr(kv, '=');
    if (!eq || eq == kv) { fprintf(stderr, "--set expects NAME=VALUE, found '%s'\n", kv); return false; }
    *eq = 0;
    return add_set(a, kv, eq + 1);
}

static bool parse_int(const char *flag, const char *s, long long *v) {
    char *end;
    *v = strtoll(s, &end, 10);
    if (*s && !*end && *v >= 0) return true;
    fprintf(stderr, "%s expects a non-negative integer, found '%s'\n", flag, s);
    return false;
}

/* Options that take a value; false on a bad value. */
static bool parse_valued(Args *a, const char *f, char *v) {
    TrainOptions *o = &a->o;
    long long n = 0;
    for (size_t k = 0; k < sizeof SET_FLAGS / sizeof SET_FLAGS[0]; k++)
        if (!strcmp(f, SET_FLAGS[k].flag)) return add_set(a, SET_FLAGS[k].key, v);
    if (!strcmp(f, "--set")) return parse_set(a, v);
    if (!strcmp(f, "--model")) o->model = v;
    else if (!strcmp(f, "--recipe")) o->recipe = v;
    else if (!strcmp(f, "--data")) o->data = v;
    else if (!strcmp(f, "--out")) o->out = v;
    else if (!strcmp(f, "--resume")) o->resume = v;
    else if (!strcmp(f, "--init")) o->init = v;
    else if (!strcmp(f, "--backend")) o->backend = v;
    else if (!strcmp(f, "--precision")) o->precision = v;
    else if (!strcmp(f, "--classes")) o->classes = v;
    else if (!strcmp(f, "-I")) {
        if (o->ninclude == 16) { fprintf(stderr, "too many -I options\n"); return false; }
        a->incs[o->ninclude++] = v;
    } else if (!parse_int(f, v, &n)) return false;
    else if (!strcmp(f, "--steps")) o->steps = n;
    else if (!strcmp(f, "--stop_at")) o->stop_at = n;
    else if (!strcmp(f, "--eval_steps")) o->eval_steps = n;
    else if (!strcmp(f, "--seed")) { o->seed = (uint64_t)n; o->seed_set = true; }
    else if (!strcmp(f, "--log_every")) o->log_every = (int)n;
    else if (!strcmp(f, "--ckpt_every")) o->ckpt_every = (int)n;
    else if (!strcmp(f, "--keep")) o->keep = (int)n;
    else if (!strcmp(f, "--threads")) o->threads = (int)n;
    return true;
}

static bool is_valued(const char *f) {
    static const char *const V[] = {"--set", "--model", "--recipe", "--data", "--out", "--resume", "--init", "--backend", "--precision", "--classes",
                                    "-I", "--steps", "--stop_at", "--eval_steps", "--seed", "--log_every", "--ckpt_every", "--keep", "--threads"};
    for (size_t k = 0; k < sizeof V / sizeof V[0]; k++) if (!strcmp(f, V[k])) return true;
    for (size_t k = 0; k < sizeof SET_FLAGS / sizeof SET_FLAGS[0]; k++) if (!strcmp(f, SET_FLAGS[k].flag)) return true;
    return false;
}

/* 0: parsed; otherwise the exit status (help: 0 through *help). */
static int parse(Args *a, TrainMode mode, int argc, char **argv, bool *help) {
    TrainOptions *o = &a->o;
    o->mode = mode; o->steps = -1;
    for (int k = 1; k < argc; k++) {
        const char *f = argv[k];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { *help = true; return 0; }
        if (!strcmp(f, "--ema")) { o->ema = true; continue; }
        if (!strcmp(f, "--quiet")) { o->quiet = true; continue; }
        if (!strcmp(f, "--scan-recompute")) { o->scan_recompute = true; continue; }
        if (is_valued(f)) {
            if (k + 1 >= argc) { fprintf(stderr, "vmc %s: %s needs a value\n", CMD[mode], f); return 1; }
            if (!parse_valued(a, f, argv[++k])) return 1;
        } else if (f[0] == '-') {
            fprintf(stderr, "vmc %s: unknown option '%s' (see vmc %s --help)\n", CMD[mode], f, CMD[mode]);
            return 1;
        } else if (o->file) {
            fprintf(stderr, "vmc %s: one FILE expected, found '%s' and '%s'\n", CMD[mode], o->file, f);
            return 1;
        } else {
            o->file = f;
        }
    }
    const char *missing = !o->file ? "FILE" : !o->data ? "--data PATH" : !o->out ? "--out DIR" : NULL;
    if (!missing && mode == TRAIN_EVAL && !o->init && !o->resume) missing = "--init CKPT";
    if (missing) { fprintf(stderr, "vmc %s: missing %s\n", CMD[mode], missing); usage(mode, stderr); return 1; }
    if (o->resume && !strcmp(o->resume, "auto"))    /* newest checkpoint in --out, or a fresh start */
        o->resume = checkpoint_latest(o->out, a->latest, sizeof a->latest) ? a->latest : NULL;
    o->sets = a->sets; o->nsets = a->nsets;
    o->include_dirs = a->incs;
    return 0;
}

static int run(TrainMode mode, int argc, char **argv) {
    Args *a = calloc(1, sizeof *a);
    bool help = false;
    int rc = parse(a, mode, argc, argv, &help);
    if (help) usage(mode, stdout);
    if (!rc && !help) rc = train_run(&a->o);
    free(a);
    return rc;
}

int cmd_pretrain(int argc, char **argv) { return run(TRAIN_PRETRAIN, argc, argv); }
int cmd_finetune(int argc, char **argv) { return run(TRAIN_FINETUNE, argc, argv); }
int cmd_eval(int argc, char **argv) { return run(TRAIN_EVAL, argc, argv); }
