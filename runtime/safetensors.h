/* safetensors.h — reading and writing safetensors files (8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the raw little-endian data).
 * The reader validates everything and reports errors naming the path; the writer is atomic (temp file in the
 * same directory, fsync, rename), so a failed write leaves any previous file intact. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef enum StDType { ST_F32, ST_BF16, ST_I32, ST_I64 } StDType;
const char *safetensors_dtype_name(StDType t);   /* "F32", "BF16", "I32", "I64" */
int         safetensors_dtype_size(StDType t);

typedef struct StTensor {
    char *name;
    StDType dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data;          /* inside the file buffer; little-endian, maybe unaligned */
    int64_t nbytes;
} StTensor;

typedef struct StFile {
    char *path;
    uint8_t *buf; size_t size;
    StTensor *t; int n;        /* in header order */
    char **meta_key, **meta_val; int nmeta;
} StFile;

StFile         *safetensors_read(const char *path, char *err, int errlen);   /* NULL + message naming the path */
void            safetensors_free(StFile *f);
const StTensor *safetensors_find(const StFile *f, const char *name);
const char     *safetensors_meta(const StFile *f, const char *key);          /* NULL when absent */
/* Converts any dtype to f32 (I64/I32 by value, BF16 widened). out holds t->numel floats. */
void            safetensors_to_f32(const StTensor *t, float *out);

typedef struct StWriter StWriter;
StWriter *safetensors_writer_new(void);
/* data is borrowed until safetensors_write returns; names must be unique. */
void      safetensors_add(StWriter *w, const char *name, StDType t, int ndim, const int64_t *shape, const void *data);
void      safetensors_set_meta(StWriter *w, const char *key, const char *value);
bool      safetensors_write(StWriter *w, const char *path, char *err, int errlen);
/* Same, but the bytes go to fault_sink instead of the temp file when it is non-NULL: tests pass "/dev/full" to
 * simulate a full disk and check that the previous file survives and the error names the path. */
bool      safetensors_write_ex(StWriter *w, const char *path, const char *fault_sink, char *err, int errlen);
void      safetensors_writer_free(StWriter *w);
