/* data.h — datasets (ImageFolder JPEG/PNG, IDX, CIFAR binary) and a threaded batch loader with the
 * augmentations of ARM_SPEC §5. Errors on bad input are returned as messages naming the path. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

typedef enum DataSplit { SPLIT_TRAIN, SPLIT_TEST } DataSplit;
typedef struct Dataset Dataset;

/* Detects the format under path: IDX files (train-images-idx3-ubyte[.gz] ...), CIFAR-10 binary (data_batch_*.bin,
 * test_batch.bin) or an ImageFolder tree (path/train/<class>/*.jpg|png, path/val/... ; or path/<class>/... for both). */
Dataset *dataset_open(const char *path, DataSplit split, char *err, int errlen);
int64_t  dataset_len(const Dataset *d);
int      dataset_num_classes(const Dataset *d);
void     dataset_free(Dataset *d);

typedef struct AugmentConfig {
    int size;                    /* output side (square) */
    bool train;                  /* false: eval resize + centre crop */
    float scale_min, scale_max;  /* RandomResizedCrop scale; ratio 3/4..4/3; bicubic */
    float hflip;                 /* probability */
    bool randaugment;            /* rand-m9-mstd0.5-inc1 */
    float reprob;                /* random erasing probability (pixel mode, count 1) */
    float crop_pct;              /* eval: resize to size/crop_pct (square, as ARM_SPEC §5.2), then centre crop */
    bool normalize;              /* ImageNet mean/std (else [0,1]) */
    int channels;                /* 3: grayscale is replicated; 1: keep one channel */
} AugmentConfig;

typedef struct MixConfig { float mixup, cutmix, prob, switch_prob, smoothing; int num_classes; } MixConfig;

typedef struct LoaderConfig {
    int batch;
    AugmentConfig aug;
    MixConfig mix;               /* all zero: hard labels */
    uint64_t seed;               /* epoch e shuffles with (seed, e) */
    int threads;                 /* decode/augment workers */
    bool drop_last;
    bool shuffle;
    const int32_t *class_subset; int nsubset;   /* evaluate on a subset of classes (ImageNet-A/R style) */
} LoaderConfig;

typedef struct Batch {
    float *images;     /* [batch, channels, size, size] */
    int32_t *labels;   /* [batch] */
    float *targets;    /* [batch, num_classes] soft targets when mixing, else NULL */
    int n;             /* images in this batch (may be < batch at the end without drop_last) */
    int64_t epoch, index; /* cursor: epoch and batch index within it */
} Batch;

typedef struct Loader Loader;
Loader *loader_new(Dataset *d, const LoaderConfig *cfg);
bool    loader_next(Loader *l, Batch *out);      /* false at the end of an epoch; the next call starts the next */
void    loader_seek(Loader *l, int64_t epoch, int64_t index);   /* resume exactly */
int64_t loader_skipped(const Loader *l);         /* corrupt images skipped so far */
void    loader_free(Loader *l);
