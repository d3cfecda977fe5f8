/* gemm_tune_cache.h — the GEMM algorithms that autotuning picked, kept on disk beside the NVRTC cache so that a
 * warm start does not time them again, and whether vmc's own kernel beat them. One file per device name; an entry is used only while cuBLASLt still
 * offers that algorithm for the shape (a different cuBLASLt or GPU re-tunes). */
#pragma once
#include "cuda_api.h"
#include "program.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct TuneCache TuneCache;

/* Reads the cache file for this device (none yet, or no cache directory: an empty cache). */
TuneCache *tune_cache_open(const char *device_name);
/* What the tuning found of vmc's own kernel for a shape: not timed (none then), slower, faster than cuBLASLt. */
typedef enum TuneOwn { TUNE_OWN_UNTIMED, TUNE_OWN_SLOWER, TUNE_OWN_FASTER } TuneOwn;
/* The cached algorithm for shape d if it is one of cand[0..n): true, *out and *own set. own_key names vmc's own
 * kernel for the shape (a hash of its source: tune_own_key; 0 for none): an entry made with another kernel (an older
 * vmc, another knob setting) misses, so that kernel is timed and checked against cuBLASLt again. */
bool tune_cache_find(const TuneCache *t, const GemmDesc *d, uint64_t own_key, const cublasLtMatmulAlgo_t *cand,
                     int n, cublasLtMatmulAlgo_t *out, TuneOwn *own);
void tune_cache_put(TuneCache *t, const GemmDesc *d, uint64_t own_key, const cublasLtMatmulAlgo_t *algo, TuneOwn own);
/* The own_key of a kernel: its module's source text and its name. */
uint64_t tune_own_key(const char *src, const char *name);
/* Writes the file if entries were added (atomically: a temporary file renamed), then frees. */
void tune_cache_close(TuneCache *t);
