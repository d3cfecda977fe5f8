/* test_tune_cache.c — [cpu] the on-disk cache of autotuned GEMM algorithms (runtime/gemm_tune_cache.h): a choice
 * written by one run is found by the next for the same shape, only while it is among cuBLASLt's candidates, with
 * whether vmc's own kernel won; other shapes, devices and own kernels miss; a damaged line is skipped, not fatal. Needs no GPU (algorithms are opaque bytes). */
#include "gemm_tune_cache.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define EXPECT(c, ...) do { if (!(c)) { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); failures++; } } while (0)

static cublasLtMatmulAlgo_t algo(unsigned char fill) {
    cublasLtMatmulAlgo_t a;
    memset(&a, fill, sizeof a);
    return a;
}

int main(void) {
    char dir[] = "/tmp/vmc-tune-XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    setenv("VMC_CACHE", dir, 1);   /* read once by nvrtc_cache_dir() */
    GemmDesc d = {.M = 25216, .N = 80, .K = 768, .batch = 1, .lda = 768, .ldb = 768, .tb = true, .bf16 = true};
    GemmDesc other = d;
    other.N = 48;
    cublasLtMatmulAlgo_t cand[3] = {algo(1), algo(2), algo(3)}, got;
    TuneOwn own = TUNE_OWN_FASTER;

    TuneCache *t = tune_cache_open("NVIDIA H200");
    EXPECT(!tune_cache_find(t, &d, 0, cand, 3, &got, &own), "an empty cache finds nothing");
    tune_cache_put(t, &d, 0, &cand[2], TUNE_OWN_UNTIMED);
    tune_cache_put(t, &other, 7, &cand[1], TUNE_OWN_FASTER);
    GemmDesc slower = d;
    slower.K = 48;
    tune_cache_put(t, &slower, 0, &cand[0], TUNE_OWN_SLOWER);
    tune_cache_close(t);

    t = tune_cache_open("NVIDIA H200");
    EXPECT(tune_cache_find(t, &d, 0, cand, 3, &got, &own) && !memcmp(&got, &cand[2], sizeof got) &&
           own == TUNE_OWN_UNTIMED, "the next run finds the choice");
    EXPECT(tune_cache_find(t, &other, 7, cand, 3, &got, &own) && !memcmp(&got, &cand[1], sizeof got) &&
           own == TUNE_OWN_FASTER, "and the shape where vmc's own kernel won");
    EXPECT(tune_cache_find(t, &slower, 0, cand, 3, &got, &own) && !memcmp(&got, &cand[0], sizeof got) &&
           own == TUNE_OWN_SLOWER, "and the one where it lost");
    EXPECT(!tune_cache_find(t, &d, 0, cand, 2, &got, &own), "a choice cuBLASLt no longer offers is not used");
    EXPECT(!tune_cache_find(t, &other, 8, cand, 3, &got, &own) && !tune_cache_find(t, &other, 0, cand, 3, &got, &own),
           "another own kernel (or none) for the shape misses: it is timed and checked again");
    EXPECT(tune_own_key("kernel text", "k") != tune_own_key("kernel text 2", "k") &&
           tune_own_key("kernel text", "k") == tune_own_key("kernel text", "k"), "own kernels' keys follow their text");
    GemmDesc third = d;
    third.K = 1536;
    EXPECT(!tune_cache_find(t, &third, 0, cand, 3, &got, &own), "another shape misses");
    tune_cache_close(t);

    t = tune_cache_open("NVIDIA H100 80GB HBM3");
    EXPECT(!tune_cache_find(t, &d, 0, cand, 3, &got, &own), "another device misses");
    tune_cache_close(t);

    char path[256];
    snprintf(path, sizeof path, "%s/gemm-tune3-NVIDIA_H200.txt", dir);
    FILE *f = fopen(path, "a");
    EXPECT(f != NULL, "%s exists", path);
    if (f) { fputs("1 2 3 garbage\n", f); fclose(f); }
    t = tune_cache_open("NVIDIA H200");
    EXPECT(tune_cache_find(t, &d, 0, cand, 3, &got, &own) && tune_cache_find(t, &other, 7, cand, 3, &got, &own) &&
           own == TUNE_OWN_FASTER, "a damaged line is skipped, the others still read");
    tune_cache_close(t);

    remove(path);
    rmdir(dir);
    if (failures) { printf("%d failure(s)\n", failures); return 1; }
    printf("test_tune_cache: ok\n");
    return 0;
}
