/* train.h — the training and evaluation driver behind `vmc pretrain|finetune|eval`: builds the model graph,
 * differentiates it and appends the optimizer, initialises or loads weights, feeds batches and the schedule,
 * logs metrics.jsonl and the console progress, draws loss/lr/accuracy PNGs, evaluates fine-tuning (model and
 * EMA) every epoch, writes checkpoints (keep last k; Ctrl-C saves one), stops on a non-finite loss. */
#pragma once
#include "dsl.h"
#include <stdbool.h>
#include <stdint.h>

typedef enum TrainMode { TRAIN_PRETRAIN, TRAIN_FINETUNE, TRAIN_EVAL } TrainMode;

typedef struct TrainOptions {
    TrainMode mode;
    const char *file, *model, *recipe;    /* model/recipe NULL: chosen by mode (see train_setup.c) */
    const char *data, *out;
    const char *resume, *init;            /* checkpoints: exact continuation / weights only */
    const char *backend;                  /* "cpu", "cuda" or "auto"/NULL (cuda when cuda_available()) */
    const char *precision;                /* cuda: "bf16" or "fp32"; NULL: the recipe's precision */
    const char *classes;                  /* eval: class subset, "3,5,7" or "@file" of indices; NULL: all */
    int64_t steps;                        /* < 0: epochs from the recipe; eval: at most this many batches */
    int64_t eval_steps;                   /* fine-tuning: test evaluations use the first N batches (0: all) */
    int64_t stop_at;                      /* > 0: stop (with a checkpoint) after this step; the schedule is unchanged */
    bool seed_set; uint64_t seed;         /* default: the recipe's seed, else 0 */
    const DslSet *sets; int nsets;        /* --set and the named flags (--batch_size ...) */
    const char **include_dirs; int ninclude;
    int log_every, ckpt_every, keep, threads;
    bool ema;                             /* eval: use the EMA weights of a training checkpoint */
    bool quiet;                           /* no per-step console lines */
    bool scan_recompute;                  /* cuda: the scan backward recomputes its chunk states (less memory) */
} TrainOptions;

/* Runs the command; returns the exit status (0 ok, 1 user error, 2 environment error, 3 non-finite loss,
 * 130 interrupted after saving a checkpoint). */
int train_run(const TrainOptions *o);

/* The out-of-memory report: bytes needed and free on the device, and the largest batch that would fit given the
 * bytes that do not scale with the batch (fixed) and those per image. Writes one message into buf. */
int64_t train_fitting_batch(int64_t fixed, int64_t per_image, int64_t free_bytes);
void train_oom_message(int64_t need, int64_t free_bytes, int64_t fixed, int64_t per_image, int batch, char *buf, int len);

/* Parses a class list ("3,5,7" or "@path" holding indices separated by commas/whitespace) into out (at most max
 * entries), each in [0, classes); returns the count, or -1 with a message in err. */
int train_parse_classes(const char *spec, int classes, int32_t *out, int max, char *err, int errlen);
