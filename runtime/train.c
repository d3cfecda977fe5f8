/* train.c — the driver of `vmc pretrain|finetune|eval` (see train.h): the per-step loop feeding batches, lr and
 * step, metrics.jsonl, checkpoints, progress and plots, evaluation along the way; the run's setup (model + recipe ->
 * training graph -> Exec, weights from init/--init/--resume, data) is train_setup.c's, evaluation train_eval.c's.
 * Backend-neutral: only exec.h is used. */
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
/* Set by the SIGINT handler, polled between steps: the one piece of process state a signal may touch. */
static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

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
    double epochs = tr_rnum(rc, "epochs", 1), warm = tr_rnum(rc, "warmup_epochs", 0), blr = tr_rnum(rc, "blr", 0);
    double lr = recipe_get(rc, "blr") ? schedule_scaled_lr(blr, lp->r->batch) : tr_rnum(rc, "lr", 1e-3);
    double scale = tr_rnum(rc, "world", 1) * tr_rnum(rc, "accum_iter", 1);
    if (scale != 1 && recipe_get(rc, "blr"))
        fprintf(stderr, "note: the recipe's world x accum_iter = %g is not run here (one process, no accumulation): "
                "lr %.3e for batch %d instead of the recipe's %.3e\n", scale, lr, lp->r->batch, lr * scale);
    lp->s = (Schedule){lr, tr_rnum(rc, "min_lr", 0), warm, epochs, lp->ipe};
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
    double t = tr_now_s(), ips = (double)(it + 1 - lp->it_log) * lp->r->batch / (t - lp->t_log);
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
    double el = tr_now_s() - lp->t_start, done = (double)(it + 1 - lp->it_start);
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
    return tr_build_graph(lp->ev) && tr_make_exec(lp->ev);
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
        if (tr_eval_split(lp->ev, lp->r->o->eval_steps, NULL, 0, &a)) return false;
        tr_log_eval(lp->mx, lp->ev, step, ema ? "ema" : "model", &a);
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
    if (!tr_next_batch(lp->l, &b)) return false;
    tr_feed_batch(r, &b, true);
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
    lp->t_log = lp->t_start = tr_now_s();
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
    if (!(lp.l = tr_open_loader(r, SPLIT_TRAIN, &ds, NULL, 0))) return 1;
    lp.ipe = loader_batches_per_epoch(lp.l);
    int rc = 1;
    if (lp.ipe <= 0) { fprintf(stderr, "%s: fewer images than one batch of %d\n", r->o->data, r->batch); goto done; }
    lp.total = plan_schedule(&lp);
    tr_write_recipe_txt(r, lp.s.lr, lp.total, lp.ipe);
    lp.cur = *m;
    snprintf(lp.cur.model, sizeof lp.cur.model, "%s", r->model_name);
    lp.cur.seed = r->seed;
    if (r->o->resume) loader_seek(lp.l, m->epoch, m->index);
    char path[1024], err[1200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", r->o->out);
    if (r->o->resume) trim_metrics(path, m->step);
    if (!(lp.mx = metrics_open(path, r->o->resume != NULL, err, sizeof err))) { fprintf(stderr, "%s\n", err); rc = 2; goto done; }
    printf("vmc %s: model %s, recipe %s, %" PRId64 " params, batch %d, %" PRId64 " steps (%" PRId64 " per epoch), lr %.3e, from step %" PRId64 "\n",
           tr_mode_name(r), r->model_name, r->recipe_name, graph_param_count(r->g, true), r->batch, lp.total, lp.ipe,
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
    if (!tr_load_module(&r)) goto done;
    r.seed = o->seed_set ? o->seed : (uint64_t)tr_rnum(r.rec, "seed", 0);
    if (!tr_build_graph(&r)) goto done;
    if (!tr_make_exec(&r)) { rc = r.env_error ? 2 : 1; goto done; }
    if (!tr_make_dirs(o->out)) { rc = 2; goto done; }
    if (!tr_load_weights(&r, &m)) goto done;
    if (o->resume && o->mode != TRAIN_EVAL && m.seed != r.seed) r.seed = m.seed;   /* continue the same streams */
    rc = o->mode == TRAIN_EVAL ? tr_run_eval(&r, m.step) : run_train(&r, &m);
done:
    exec_free(r.e);
    graph_free(r.g);
    if (r.mod) dsl_free(r.mod);
    free(r.model_name); free(r.recipe_name);
    return rc;
}
