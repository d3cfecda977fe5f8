/* train_run.h — what the training driver's files share (train.h is the interface): one run's state (Run) and the
 * steps train.c's loop takes from train_setup.c (recipe, graph, backend, weights, data, run directory) and
 * train_eval.c (top-1/top-5 evaluation). */
#pragma once
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

/* Accumulated evaluation: images, top-1 and top-5 hits, summed negative log-likelihood, seconds. */
typedef struct EvalAcc { int64_t n, top1, top5; double nll, secs; } EvalAcc;

/* train_setup.c */
const char *tr_mode_name(const Run *r);   /* "pretrain", "finetune" or "eval" */
double tr_rnum(const Recipe *r, const char *key, double def);
bool tr_load_module(Run *r);
bool tr_build_graph(Run *r);
bool tr_make_exec(Run *r);
bool tr_load_weights(Run *r, CkptMeta *m);
Loader *tr_open_loader(Run *r, DataSplit split, Dataset **ds, const int32_t *subset, int nsubset);
bool tr_next_batch(Loader *l, Batch *b);
void tr_feed_batch(Run *r, const Batch *b, bool lend);
bool tr_make_dirs(const char *path);
void tr_write_recipe_txt(const Run *r, double lr, int64_t steps, int64_t ipe);
/* train_eval.c */
double tr_now_s(void);
int tr_eval_split(Run *r, int64_t max_batches, const int32_t *subset, int nsubset, EvalAcc *a);
void tr_log_eval(Metrics *mx, const Run *r, int64_t step, const char *weights, const EvalAcc *a);
int tr_run_eval(Run *r, int64_t ckpt_step);
