/* data_loader.c — the threaded batch loader. Workers take chunks of images of the oldest unfinished batch and
 * decode/augment them straight into a ring of batch buffers (from a pluggable allocator: pinned memory for cuda);
 * the worker that finishes a batch applies mixup/cutmix. Every random choice is keyed by (seed, epoch, sample) or
 * (seed, epoch, batch), so batches are identical whatever the thread count or timing, and loader_seek resumes exactly. */
#include "data_impl.h"
#include "util.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { STREAM_SHUFFLE = 1, STREAM_SAMPLE = 2, STREAM_MIX = 3, CHUNK = 4, MAX_TRIES = 16 };
typedef enum SlotState { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_HELD } SlotState;

typedef struct Slot {
    float *images; int32_t *labels; float *targets;
    int64_t *idx;         /* dataset index of each image */
    int64_t seq;          /* global batch number: epoch * per_epoch + index */
    int n, next, pending; /* images, next image to hand out, images not finished */
    SlotState state;
} Slot;

struct Loader {
    Dataset *d;
    LoaderConfig cfg;
    int64_t nsamples, *samples;  /* dataset indices after the class filter */
    int64_t nlocal, per_epoch;   /* this rank's samples and batches per epoch */
    size_t img_floats;
    Slot *slots; int nslots;
    int64_t sched_seq;           /* next batch to start filling */
    int64_t next_seq;            /* next batch loader_next returns */
    bool epoch_end;              /* the last batch returned ended its epoch: next call returns false */
    Slot *held;
    int64_t perm_epoch, *perm;   /* the permutation of sched_seq's epoch */
    int inflight;
    bool stop, pause;
    int64_t skipped, max_skip;
    uint8_t *bad;                /* bitmap over dataset indices: known corrupt */
    char err[1024]; bool failed;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t *threads; int nthreads;
};

static void *default_alloc(size_t bytes, void *ctx) {
    (void)ctx;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64)) ASSERT(0, "out of host memory for batch buffers (%zu bytes)", bytes);
    return p;
}
static void default_free(void *p, void *ctx) { (void)ctx; free(p); }

/* Sample at position k of this rank's epoch order (DistributedSampler: perm[k * world + rank], wrapping). */
static int64_t local_sample(const Loader *l, int64_t k) {
    int64_t world = l->cfg.world > 1 ? l->cfg.world : 1;
    int64_t g = (k * world + l->cfg.rank) % l->nsamples;
    return l->samples[l->perm[g]];
}

static void ensure_perm(Loader *l, int64_t epoch) {
    if (l->perm_epoch == epoch) return;
    for (int64_t i = 0; i < l->nsamples; i++) l->perm[i] = i;
    if (l->cfg.shuffle) {
        DataRng r = drng_key(l->cfg.seed, STREAM_SHUFFLE, (uint64_t)epoch, 0);
        for (int64_t i = l->nsamples - 1; i > 0; i--) {
            int64_t j = drng_int(&r, 0, i), t = l->perm[i];
            l->perm[i] = l->perm[j]; l->perm[j] = t;
        }
    }
    l->perm_epoch = epoch;
}

/* Called with the lock held: start filling the next batch if its ring slot is free. */
static bool start_batch(Loader *l) {
    Slot *s = &l->slots[l->sched_seq % l->nslots];
    if (s->state != SLOT_FREE || l->pause || l->failed) return false;
    int64_t epoch = l->sched_seq / l->per_epoch, index = l->sched_seq % l->per_epoch;
    ensure_perm(l, epoch);
    int64_t start = index * l->cfg.batch, n = l->nlocal - start;
    s->n = (int)(n < l->cfg.batch ? n : l->cfg.batch);
    for (int j = 0; j < s->n; j++) s->idx[j] = local_sample(l, start + j);
    s->seq = l->sched_seq++;
    s->next = 0;
    s->pending = s->n;
    s->state = SLOT_FILLING;
    return true;
}

static bool is_bad(const Loader *l, int64_t idx) { return l->bad[idx >> 3] >> (idx & 7) & 1; }

/* Next sample after idx in dataset order (within the class filter): the stand-in for a corrupt image, so batches
 * still do not depend on timing. */
static int64_t substitute(const Loader *l, int64_t idx) {
    int64_t lo = 0, hi = l->nsamples;
    while (lo < hi) { int64_t mid = (lo + hi) / 2; if (l->samples[mid] < idx) lo = mid + 1; else hi = mid; }
    return l->samples[(lo + 1) % l->nsamples];
}

/* One image: sample `first`, or its substitutes when corrupt. Each corrupt file is reported and counted once. */
static void make_image(Loader *l, Slot *s, int j, int64_t first, SampleCtx *w) {
    int64_t epoch = s->seq / l->per_epoch, idx = first;
    char err[512];
    float *out = s->images + (size_t)j * l->img_floats;
    for (int t = 0; t < MAX_TRIES; t++, idx = substitute(l, idx)) {
        pthread_mutex_lock(&l->mu);
        bool bad = is_bad(l, idx);
        pthread_mutex_unlock(&l->mu);
        DataRng r = drng_key(l->cfg.seed, STREAM_SAMPLE, (uint64_t)epoch, (uint64_t)idx);
        if (!bad && sample_make(l->d, idx, &l->cfg.aug, &r, w, out, err, sizeof err)) { s->labels[j] = dataset_label(l->d, idx); return; }
        if (bad) continue;
        pthread_mutex_lock(&l->mu);
        if (!is_bad(l, idx)) {
            l->bad[idx >> 3] |= (uint8_t)(1u << (idx & 7));
            l->skipped++;
            fprintf(stderr, "vmc: warning: skipping %s\n", err);
        }
        if (l->skipped > l->max_skip && !l->failed) {
            snprintf(l->err, sizeof l->err, "%s: %lld corrupt images skipped, more than %g%% of %lld (last: %s)", l->d->path,
                     (long long)l->skipped, 100.0 * (l->cfg.max_skip_frac > 0 ? l->cfg.max_skip_frac : 0.01),
                     (long long)l->nsamples, err);
            l->failed = true;
            pthread_cond_broadcast(&l->done);
        }
        pthread_mutex_unlock(&l->mu);
    }
    memset(out, 0, l->img_floats * sizeof(float));   /* only when MAX_TRIES files in a row are corrupt */
    s->labels[j] = dataset_label(l->d, first);
}

static void finish_batch(Loader *l, Slot *s) {
    if (s->targets) {
        int64_t epoch = s->seq / l->per_epoch, index = s->seq % l->per_epoch;
        DataRng r = drng_key(l->cfg.seed, STREAM_MIX, (uint64_t)epoch, (uint64_t)index);
        int S = l->cfg.aug.size;
        mix_batch(&l->cfg.mix, &r, s->images, s->n, l->cfg.aug.channels, S, S, s->labels, s->targets, NULL);
    }
}

static void *worker(void *arg) {
    Loader *l = arg;
    SampleCtx w = {0};
    int64_t first[CHUNK];
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        Slot *s = NULL;
        for (int k = 0; k < l->nslots && !s; k++) {   /* oldest filling batch with images left */
            Slot *c = &l->slots[(l->next_seq + k) % l->nslots];
            if (c->state == SLOT_FILLING && c->next < c->n && !l->pause) s = c;
        }
        if (!s && start_batch(l)) continue;
        if (!s) { pthread_cond_wait(&l->work, &l->mu); continue; }
        int j0 = s->next, cnt = s->n - j0 < CHUNK ? s->n - j0 : CHUNK;
        s->next += cnt;
        for (int j = 0; j < cnt; j++) first[j] = s->idx[j0 + j];
        l->inflight++;
        pthread_mutex_unlock(&l->mu);
        for (int j = 0; j < cnt; j++) make_image(l, s, j0 + j, first[j], &w);
        pthread_mutex_lock(&l->mu);
        s->pending -= cnt;
        if (s->pending == 0) {
            pthread_mutex_unlock(&l->mu);
            finish_batch(l, s);
            pthread_mutex_lock(&l->mu);
            s->state = SLOT_READY;
            pthread_cond_broadcast(&l->done);
        }
        l->inflight--;
        if (l->inflight == 0) pthread_cond_broadcast(&l->done);
    }
    pthread_mutex_unlock(&l->mu);
    sample_ctx_free(&w);
    return NULL;
}

static bool check_config(const Dataset *d, const LoaderConfig *c, int64_t nsamples, char *err, int errlen) {
    const AugmentConfig *a = &c->aug;
    if (c->batch <= 0) snprintf(err, errlen, "batch must be positive (got %d)", c->batch);
    else if (a->size <= 0) snprintf(err, errlen, "image size must be positive (got %d)", a->size);
    else if (a->channels != 1 && a->channels != 3) snprintf(err, errlen, "channels must be 1 or 3 (got %d)", a->channels);
    else if (c->world > 1 && (c->rank < 0 || c->rank >= c->world)) snprintf(err, errlen, "rank %d outside world %d", c->rank, c->world);
    else if (nsamples == 0) snprintf(err, errlen, "no samples (class subset matches no image)");
    else if (mix_enabled(&c->mix) && c->mix.num_classes < dataset_num_classes(d))
        snprintf(err, errlen, "mix num_classes %d < the dataset's %d classes", c->mix.num_classes, dataset_num_classes(d));
    else return true;
    return false;
}

Loader *loader_new(Dataset *d, const LoaderConfig *cfg) {
    Loader *l = xcalloc(1, sizeof *l);
    l->d = d;
    l->cfg = *cfg;
    if (l->cfg.threads <= 0) l->cfg.threads = 1;
    if (!l->cfg.allocator.alloc) l->cfg.allocator = (DataAllocator){default_alloc, default_free, NULL};
    l->samples = xmalloc(sizeof(int64_t) * (size_t)(d->n ? d->n : 1));
    for (int64_t i = 0; i < d->n; i++) {
        bool keep = cfg->nsubset == 0;
        for (int k = 0; k < cfg->nsubset && !keep; k++) keep = cfg->class_subset[k] == d->labels[i];
        if (keep) l->samples[l->nsamples++] = i;
    }
    char err[256];
    if (!check_config(d, cfg, l->nsamples, err, sizeof err)) {
        fprintf(stderr, "vmc: error: %s: loader: %s\n", d->path, err);
        free(l->samples); free(l);
        return NULL;
    }
    int64_t world = cfg->world > 1 ? cfg->world : 1;
    l->nlocal = (l->nsamples + world - 1) / world;
    l->per_epoch = cfg->drop_last ? l->nlocal / cfg->batch : (l->nlocal + cfg->batch - 1) / cfg->batch;
    if (l->per_epoch == 0) {
        fprintf(stderr, "vmc: error: %s: loader: %lld samples per rank, fewer than one batch of %d with drop_last\n",
                d->path, (long long)l->nlocal, cfg->batch);
        free(l->samples); free(l);
        return NULL;
    }
    float frac = cfg->max_skip_frac > 0 ? cfg->max_skip_frac : 0.01f;
    l->max_skip = (int64_t)(frac * (double)l->nsamples);
    l->img_floats = (size_t)cfg->aug.channels * (size_t)cfg->aug.size * (size_t)cfg->aug.size;
    l->perm = xmalloc(sizeof(int64_t) * (size_t)l->nsamples);
    l->bad = xcalloc((size_t)d->n / 8 + 1, 1);
    l->perm_epoch = -1;
    l->nslots = cfg->prefetch > 0 ? cfg->prefetch : 4;
    l->slots = xcalloc((size_t)l->nslots, sizeof(Slot));
    DataAllocator *A = &l->cfg.allocator;
    for (int k = 0; k < l->nslots; k++) {
        Slot *s = &l->slots[k];
        s->images = A->alloc(sizeof(float) * l->img_floats * (size_t)cfg->batch, A->ctx);
        s->labels = A->alloc(sizeof(int32_t) * (size_t)cfg->batch, A->ctx);
        s->idx = xmalloc(sizeof(int64_t) * (size_t)cfg->batch);
        if (mix_enabled(&cfg->mix))
            s->targets = A->alloc(sizeof(float) * (size_t)cfg->mix.num_classes * (size_t)cfg->batch, A->ctx);
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->done, NULL);
    l->nthreads = l->cfg.threads;
    l->threads = xcalloc((size_t)l->nthreads, sizeof(pthread_t));
    for (int k = 0; k < l->nthreads; k++) ASSERT(pthread_create(&l->threads[k], NULL, worker, l) == 0, "pthread_create");
    return l;
}

/* Lock held: give the batch handed out last back to the ring. */
static void release_held(Loader *l) {
    if (!l->held) return;
    l->held->state = SLOT_FREE;
    l->held = NULL;
    pthread_cond_broadcast(&l->work);
}

bool loader_next(Loader *l, Batch *out) {
    pthread_mutex_lock(&l->mu);
    release_held(l);
    if (l->epoch_end) { l->epoch_end = false; pthread_mutex_unlock(&l->mu); return false; }
    Slot *s = &l->slots[l->next_seq % l->nslots];
    while (!l->failed && !(s->state == SLOT_READY && s->seq == l->next_seq)) pthread_cond_wait(&l->done, &l->mu);
    if (l->failed) { pthread_mutex_unlock(&l->mu); return false; }
    s->state = SLOT_HELD;
    l->held = s;
    *out = (Batch){s->images, s->labels, s->targets, s->n, s->seq / l->per_epoch, s->seq % l->per_epoch};
    l->next_seq++;
    l->epoch_end = l->next_seq % l->per_epoch == 0;
    pthread_mutex_unlock(&l->mu);
    return true;
}

void loader_seek(Loader *l, int64_t epoch, int64_t index) {
    pthread_mutex_lock(&l->mu);
    l->pause = true;
    while (l->inflight > 0) pthread_cond_wait(&l->done, &l->mu);
    release_held(l);
    for (int k = 0; k < l->nslots; k++) l->slots[k].state = SLOT_FREE;
    if (index >= l->per_epoch) { epoch += index / l->per_epoch; index %= l->per_epoch; }
    l->next_seq = l->sched_seq = epoch * l->per_epoch + index;
    l->epoch_end = false;
    l->pause = false;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
}

int64_t loader_skipped(const Loader *l) {
    pthread_mutex_lock((pthread_mutex_t *)&l->mu);
    int64_t n = l->skipped;
    pthread_mutex_unlock((pthread_mutex_t *)&l->mu);
    return n;
}

const char *loader_error(const Loader *l) { return l->failed ? l->err : NULL; }
int64_t loader_batches_per_epoch(const Loader *l) { return l->per_epoch; }

void loader_free(Loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    for (int k = 0; k < l->nthreads; k++) pthread_join(l->threads[k], NULL);
    DataAllocator *A = &l->cfg.allocator;
    for (int k = 0; k < l->nslots; k++) {
        A->free(l->slots[k].images, A->ctx);
        A->free(l->slots[k].labels, A->ctx);
        free(l->slots[k].idx);
        if (l->slots[k].targets) A->free(l->slots[k].targets, A->ctx);
    }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->done);
    free(l->threads); free(l->slots); free(l->perm); free(l->samples); free(l->bad);
    free(l);
}
