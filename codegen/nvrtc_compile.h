/* nvrtc_compile.h — CUDA C++ source -> cubin through NVRTC, loaded at run time (dlopen; nvrtc.h is used for types only),
 * with a disk cache keyed by a hash of source + options + arch + NVRTC version ($VMC_CACHE, default
 * ~/.cache/vmc; VMC_CACHE=off disables it). Works on machines without a GPU. Never exits: every failure is
 * returned with a message (a compile error also prints the NVRTC log and writes the source to a file). */
#pragma once
#include <nvrtc.h>   /* CUDA's, for types only */
#include <stdbool.h>
#include <stddef.h>

/* The NVRTC entry points vmc uses; member names are the library's. */
#define NVRTC_FUNCS(X)                                                                                         \
    X(nvrtcVersion) X(nvrtcGetErrorString) X(nvrtcCreateProgram) X(nvrtcDestroyProgram) X(nvrtcCompileProgram) \
    X(nvrtcGetProgramLogSize) X(nvrtcGetProgramLog) X(nvrtcGetCUBINSize) X(nvrtcGetCUBIN) X(nvrtcGetPTXSize)   \
    X(nvrtcGetPTX)

typedef struct NvrtcApi {
#define NVRTC_MEMBER_(f) __typeof__(f) *f;
    NVRTC_FUNCS(NVRTC_MEMBER_)
#undef NVRTC_MEMBER_
    int major, minor;   /* nvrtcVersion() */
} NvrtcApi;

/* The loaded table, or NULL with the reason in err (libnvrtc.so.13 / libnvrtc.so not found, symbol missing).
 * Loads once; thread-safe. */
const NvrtcApi *nvrtc_api(char *err, int errlen);

typedef struct NvrtcBinary {
    void *cubin;        /* malloc'd; free with nvrtc_binary_free */
    size_t size;
    bool from_cache;
    char *log;          /* NVRTC's program log (ptxas' lines with PTXAS_VERBOSE), kept in the cache beside the cubin;
                         * NULL when empty */
} NvrtcBinary;

/* An architecture's arch-specific features (wgmma: sm_90a): arch | NVRTC_ARCH_SPECIFIC compiles for sm_<arch>a. */
enum { NVRTC_ARCH_SPECIFIC = 1 << 16, NVRTC_ARCH_SM90A = 90 | NVRTC_ARCH_SPECIFIC };
/* Compiles `src` (a translation unit; kernels should be extern "C") for sm_<arch> (80, 90, ...). `name` labels
 * the program in logs and dump files. Options always passed: -default-device -std=c++17 --gpu-architecture=sm_XX
 * (no fast math: expf/logf stay exact); `opts` adds more (may be NULL). Returns false with a message in err. */
bool nvrtc_compile(const char *src, const char *name, int arch, const char *const *opts, int nopts,
                   NvrtcBinary *out, char *err, int errlen);
void nvrtc_binary_free(NvrtcBinary *b);

/* The cache folder in use ($VMC_CACHE or ~/.cache/vmc), or NULL when caching is off or no home is known. */
const char *nvrtc_cache_dir(void);
