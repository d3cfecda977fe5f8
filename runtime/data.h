/* data.h — datasets (ImageFolder JPEG/PNG, IDX, CIFAR binary), image decoding, the augmentations of ARM_SPEC §5
 * (PIL/torchvision/timm semantics) and a threaded, deterministic batch loader. Errors on bad input are returned as
 * messages naming the path. The lower half declares the building blocks (decode, resize, augment, mix) that the
 * loader uses; they are public so that tests and benchmarks can check each one on hand-made cases. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum DataSplit { SPLIT_TRAIN, SPLIT_TEST } DataSplit;
typedef struct Dataset Dataset;

/* Detects the format under path: IDX files (train-images-idx3-ubyte[.gz] ...), CIFAR-10 binary (data_batch_*.bin,
 * test_batch.bin, also inside cifar-10-batches-bin/) or an ImageFolder tree (path/train/<class>/..., path/val/<class>/...;
 * or path/<class>/... for both splits). ImageFolder classes are sorted by name; files are found recursively, sorted,
 * and recognised as JPEG or PNG by content (extension only short-cuts the sniffing). NULL + message on error. */
Dataset    *dataset_open(const char *path, DataSplit split, char *err, int errlen);
int64_t     dataset_len(const Dataset *d);
int         dataset_num_classes(const Dataset *d);
int32_t     dataset_label(const Dataset *d, int64_t i);
const char *dataset_class_name(const Dataset *d, int k);     /* folder name, or "0".."9" for IDX/CIFAR */
const char *dataset_file(const Dataset *d, int64_t i);       /* ImageFolder: path of sample i; else NULL */
void        dataset_free(Dataset *d);

typedef struct AugmentConfig {
    int size;                    /* output side (square) */
    bool train;                  /* false: eval resize + centre crop */
    float scale_min, scale_max;  /* RandomResizedCrop scale; ratio 3/4..4/3; bicubic. Both 0: (0.08, 1) */
    float hflip;                 /* probability */
    bool randaugment;            /* rand-m9-mstd0.5-inc1 (timm), fill = ImageNet mean, bicubic */
    float reprob;                /* random erasing probability (pixel mode, count 1), after normalisation */
    float crop_pct;              /* eval: resize to int(size/crop_pct) square (ARM_SPEC §5.2), centre crop; 0 = 1 */
    bool normalize;              /* ImageNet mean/std (else [0,1]); one channel uses the means of the three */
    int channels;                /* 3: grayscale is replicated; 1: RGB is converted to L (PIL weights) */
    bool exact_decode;           /* false: JPEGs are decoded with DCT scaling (1/2, 1/4, 1/8) when the crop is at
                                    least that many times the output size; true: always full size (PIL-exact) */
} AugmentConfig;

typedef struct MixConfig { float mixup, cutmix, prob, switch_prob, smoothing; int num_classes; } MixConfig;

/* Where batch buffers live: the cuda backend gives pinned host memory. NULL alloc: 64-byte aligned malloc. */
typedef struct DataAllocator {
    void *(*alloc)(size_t bytes, void *ctx);
    void (*free)(void *p, void *ctx);
    void *ctx;
} DataAllocator;

typedef struct LoaderConfig {
    int batch;
    AugmentConfig aug;
    MixConfig mix;               /* all zero: hard labels, targets NULL */
    uint64_t seed;               /* epoch e shuffles with (seed, e); sample i of epoch e augments with (seed, e, i) */
    int threads;                 /* decode/augment workers (0: 1) */
    bool drop_last;
    bool shuffle;
    const int32_t *class_subset; int nsubset;   /* keep only these classes (ImageNet-A/R style); labels stay the
                                                   dataset's class ids, the caller masks the logits */
    int rank, world;             /* DistributedSampler-style shard (world 0 or 1: everything) */
    float max_skip_frac;         /* corrupt images tolerated, as a fraction of the samples (0: 0.01) */
    int prefetch;                /* batch buffers in the ring (0: 4) */
    DataAllocator allocator;
} LoaderConfig;

typedef struct Batch {
    float *images;     /* [batch, channels, size, size]; valid until the next loader_next/seek/free */
    int32_t *labels;   /* [batch] */
    float *targets;    /* [batch, num_classes] soft targets when mixing or smoothing, else NULL */
    int n;             /* images in this batch (may be < batch at the end without drop_last) */
    int64_t epoch, index; /* cursor: epoch and batch index within it */
} Batch;

typedef struct Loader Loader;
/* NULL on a bad configuration (message printed to stderr, naming the dataset path). */
Loader     *loader_new(Dataset *d, const LoaderConfig *cfg);
bool        loader_next(Loader *l, Batch *out);      /* false at the end of an epoch (the next call starts the next
                                                        one) or on error (loader_error says which) */
void        loader_seek(Loader *l, int64_t epoch, int64_t index);   /* resume exactly: the next batch is this one */
int64_t     loader_skipped(const Loader *l);         /* distinct corrupt images found so far (each is warned about
                                                        once, then replaced by the next sample in dataset order) */
const char *loader_error(const Loader *l);           /* NULL, or why loader_next failed */
int64_t     loader_batches_per_epoch(const Loader *l);
void        loader_free(Loader *l);

/* ---------------------------------------------------------------------------------------------------------------
 * Building blocks (data_rng.c, data_decode.c, data_resize.c, data_augment.c, data_randaug.c, data_mix.c) */

/* Counter-keyed random numbers (xoshiro256** seeded by splitmix64 of the key): the same key gives the same stream
 * on any thread. Distributions match what torchvision/timm draw, not their bit streams. */
typedef struct DataRng { uint64_t s[4]; } DataRng;
DataRng drng_key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
uint64_t drng_u64(DataRng *r);
double  drng_uniform(DataRng *r);                             /* [0, 1) */
double  drng_range(DataRng *r, double lo, double hi);         /* [lo, hi) */
int64_t drng_int(DataRng *r, int64_t lo, int64_t hi);         /* [lo, hi] inclusive, as Python's random.randint */
double  drng_normal(DataRng *r);
double  drng_beta(DataRng *r, double a, double b);

/* 8-bit interleaved image (HWC), c = 1 (L) or 3 (RGB). cap: bytes owned by px (0: borrowed). */
typedef struct Image { uint8_t *px; int w, h, c; size_t cap; } Image;
void image_reserve(Image *im, int w, int h, int c);      /* grows px; sets w, h, c */
void image_release(Image *im);

typedef enum ImageFormat { IMG_UNKNOWN, IMG_JPEG, IMG_PNG } ImageFormat;
ImageFormat image_sniff(const uint8_t *buf, size_t n);
typedef struct Decoder Decoder;                         /* one per thread: holds the turbojpeg handle */
Decoder *decoder_new(void);
void     decoder_free(Decoder *dec);
bool     image_probe(Decoder *dec, const uint8_t *buf, size_t n, int *w, int *h, char *err, int errlen);
/* Decodes to RGB (or L for grayscale sources); denom in {1, 2, 4, 8} scales JPEGs by 1/denom (PNG: must be 1). */
bool     image_decode(Decoder *dec, const uint8_t *buf, size_t n, int denom, Image *out, char *err, int errlen);
bool     image_encode_png(const char *path, const Image *im, char *err, int errlen);   /* for fixtures */
bool     image_encode_jpeg(const char *path, const Image *im, int quality, char *err, int errlen);

/* PIL Image.resize(BICUBIC) on the box [x0,x1)x[y0,y1) of src (pixels outside src are clamped): a = -0.5 cubic,
 * support widened by the scale when downsampling (antialias), 22-bit fixed-point weights, horizontal pass first,
 * each pass rounded to 8 bits — the same arithmetic as Pillow's Resample.c (bit-exact with Pillow 9.5 and 12.3,
 * tests/data_pil_check.py; Pillow 13 sometimes runs the vertical pass first: within 1 level). dst is ow x oh. */
typedef struct Scratch { void *p[7]; size_t n[7]; } Scratch;   /* per-thread buffers reused across calls */
void *scratch_get(Scratch *s, int slot, size_t bytes);
void  scratch_free(Scratch *s);
void  image_resize(const Image *src, double x0, double y0, double x1, double y1, Image *dst, int ow, int oh,
                   Scratch *s);
void  image_crop(const Image *src, int x, int y, int w, int h, Image *dst);
void  image_hflip(Image *im);
void  image_to_rgb(const Image *src, Image *dst);       /* L -> RGB by replication */
void  image_to_gray(const Image *src, Image *dst);      /* RGB -> L, PIL weights */

/* torchvision RandomResizedCrop.get_params: 10 tries, then the ratio-clamped centre crop. */
typedef struct CropBox { int x, y, w, h; } CropBox;
CropBox aug_rrc_box(DataRng *r, int w, int h, double scale_min, double scale_max, double ratio_min, double ratio_max);
CropBox aug_center_box(int w, int h, int cw, int ch);   /* torchvision center_crop (round half to even) */
int     aug_eval_resize(int size, float crop_pct);      /* int(size / crop_pct) */

/* timm RandAugment rand-m9-mstd0.5-inc1 (2 ops with replacement from the 15 "increasing" ops, each applied with
 * p 0.5, magnitude ~ N(9, 0.5) clipped to [0, 10]). RandAugment ops are exposed for tests. */
typedef enum RaOp {
    RA_AUTOCONTRAST, RA_EQUALIZE, RA_INVERT, RA_ROTATE, RA_POSTERIZE, RA_SOLARIZE, RA_SOLARIZE_ADD, RA_COLOR,
    RA_CONTRAST, RA_BRIGHTNESS, RA_SHARPNESS, RA_SHEAR_X, RA_SHEAR_Y, RA_TRANSLATE_X, RA_TRANSLATE_Y, RA_COUNT
} RaOp;
void aug_randaugment(DataRng *r, Image *im, Scratch *s);
/* One op at a level in [0, 10]; sign flips the direction of signed ops (+1 / -1). */
void aug_ra_apply(RaOp op, double level, int sign, Image *im, Scratch *s);
/* PIL affine transform (inverse map: output (x, y) samples input at a*(x+.5)+b*(y+.5)+c, d*...+e*...+f), bicubic
 * (a = -1 convolution, as Pillow's Geometry.c), outside pixels = fill[channel]. */
void aug_affine(const Image *src, Image *dst, const double m[6], const uint8_t fill[3]);

/* HWC uint8 -> CHW float: /255, then (x - mean) / std when normalize; channels as AugmentConfig. */
void aug_to_tensor(const Image *im, const AugmentConfig *cfg, float *out);
/* timm RandomErasing(p, mode='pixel', count 1, area 0.02..1/3, aspect 0.3..1/0.3) on a CHW tensor; returns whether
 * it erased, and the box through *box when not NULL. */
bool aug_random_erase(DataRng *r, float *chw, int c, int h, int w, float p, CropBox *box);

/* Sample pipeline used by the loader: train (RRC + flip + RandAugment + tensor + erasing) or eval (square resize
 * + centre crop + tensor). src is the decoded image; for JPEGs the loader decodes with aug_decode_denom first. */
int  aug_decode_denom(const AugmentConfig *cfg, CropBox box);   /* 1, 2, 4 or 8 */

/* timm Mixup (mode 'batch'): mixes x [n, chw] in place with its flip along the batch and writes soft targets
 * [n, num_classes]; n must be even when mixing (odd n: no mixing, smoothed one-hot). Returns lambda. */
double mix_batch(const MixConfig *m, DataRng *r, float *x, int n, int c, int h, int w, const int32_t *labels,
                 float *targets, CropBox *cut);
void   mix_targets(const int32_t *labels, int n, int num_classes, double lam, double smoothing, float *targets);
bool   mix_enabled(const MixConfig *m);                 /* any of mixup, cutmix, smoothing > 0 */
