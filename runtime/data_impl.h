/* data_impl.h — the Dataset record shared by the format readers (data_idx.c, data_cifar.c, data_folder.c), the
 * sample pipeline (data_sample.c) and the loader (data_loader.c). Not for use outside runtime/data_*.c. */
#pragma once
#include "data.h"

typedef enum DatasetKind { DS_IDX, DS_CIFAR, DS_FOLDER } DatasetKind;

struct Dataset {
    DatasetKind kind;
    char *path;                 /* as given to dataset_open */
    int64_t n;
    int nclasses;
    int32_t *labels;            /* [n] */
    char **class_names;         /* [nclasses] */
    uint8_t *pixels;            /* IDX, CIFAR: n images of h*w*c bytes, HWC */
    int w, h, c;
    char *pool;                 /* ImageFolder: file paths, NUL-separated */
    size_t *file_off;           /* [n] offsets into pool */
};

/* Each returns false with a message naming the file or folder. */
bool idx_load(Dataset *d, const char *dir, DataSplit split, char *err, int errlen);
bool idx_present(const char *dir);
bool cifar_load(Dataset *d, const char *dir, DataSplit split, char *err, int errlen);
const char *cifar_dir(const char *dir, char *buf, int buflen);   /* dir holding data_batch_1.bin, or NULL */
bool folder_load(Dataset *d, const char *dir, DataSplit split, char *err, int errlen);
/* Reads sample i's file into *buf (grown as needed); ImageFolder only. */
bool folder_read(const Dataset *d, int64_t i, uint8_t **buf, size_t *cap, size_t *n, char *err, int errlen);
void dataset_set_digit_names(Dataset *d);

/* One worker's decode/augment state: everything reused from sample to sample. */
typedef struct SampleCtx {
    Decoder *dec;
    Scratch s;
    Image raw, crop, out, tmp;
    uint8_t *file; size_t file_cap;
} SampleCtx;
void sample_ctx_free(SampleCtx *w);
/* Produces sample i as a [channels, size, size] float tensor; false (message) when its image is corrupt. */
bool sample_make(const Dataset *d, int64_t i, const AugmentConfig *cfg, DataRng *r, SampleCtx *w, float *out,
                 char *err, int errlen);
