/* cuda_api.c — dlopen of libcuda and libcublasLt into function tables, device/context start, and the CHECK
 * reporters (environment errors: print the failing call, file:line, the library's error name, a hint; exit 2).
 * Owns nothing else: kernels, modules and buffers belong to their users. */
#include "cuda_api.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)   /* expands cuda.h's renaming macros first: cuMemAlloc -> "cuMemAlloc_v2" */

static CudaApi drv;
static CublasLtApi blt;
static pthread_once_t drv_once = PTHREAD_ONCE_INIT, blt_once = PTHREAD_ONCE_INIT;
static bool drv_ok, blt_ok;
static char drv_why[512], blt_why[512];

/* Tries each name in turn (then the CUDA toolkit folder); NULL with the dlerror text in why. */
static void *open_first(const char *const *names, int n, char *why, int whylen) {
    char path[512];
    const char *dir = getenv("CUDA_HOME") ? getenv("CUDA_HOME") : "/usr/local/cuda";
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < n; k++) {
            if (pass == 0) snprintf(path, sizeof path, "%s", names[k]);
            else snprintf(path, sizeof path, "%s/lib64/%s", dir, names[k]);
            void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            if (h) return h;
            if (pass == 0 && k == 0) snprintf(why, (size_t)whylen, "%s", dlerror());
        }
    return NULL;
}

static bool load_symbol(void *lib, const char *name, void **slot, char *why, int whylen) {
    *slot = dlsym(lib, name);
    if (!*slot) snprintf(why, (size_t)whylen, "symbol %s missing from the library (driver too old?)", name);
    return *slot != NULL;
}

static void load_driver(void) {
    static const char *const names[] = {"libcuda.so.1", "libcuda.so"};
    void *lib = open_first(names, 2, drv_why, sizeof drv_why);
    if (!lib) return;
#define LOAD_(f) if (!load_symbol(lib, STR(f), (void **)&drv.f, drv_why, sizeof drv_why)) return;
    CUDA_DRIVER_FUNCS(LOAD_)
#undef LOAD_
    CUresult r = drv.cuInit(0);
    int count = 0;
    if (r == CUDA_SUCCESS) r = drv.cuDeviceGetCount(&count);
    if (r != CUDA_SUCCESS) {
        const char *nm = NULL;
        drv.cuGetErrorName(r, &nm);
        snprintf(drv_why, sizeof drv_why, "cuInit failed: %s", nm ? nm : "unknown error");
        return;
    }
    if (count == 0) { snprintf(drv_why, sizeof drv_why, "the CUDA driver reports no device"); return; }
    drv_ok = true;
    drv_why[0] = 0;
}

static void load_cublaslt(void) {
    static const char *const names[] = {"libcublasLt.so.13", "libcublasLt.so"};
    void *lib = open_first(names, 2, blt_why, sizeof blt_why);
    if (!lib) return;
#define LOAD_(f) if (!load_symbol(lib, STR(f), (void **)&blt.f, blt_why, sizeof blt_why)) return;
    CUBLASLT_FUNCS(LOAD_)
#undef LOAD_
    blt_ok = true;
}

bool cuda_available(void) {
    pthread_once(&drv_once, load_driver);
    return drv_ok;
}

const char *cuda_unavailable_reason(void) {
    pthread_once(&drv_once, load_driver);
    return drv_why;
}

const CudaApi *cuda_api(void) {
    if (!cuda_available()) {
        fprintf(stderr, "vmc: no usable CUDA driver: %s\n"
                        "  ---> HINT: run on a machine with an NVIDIA GPU and driver (libcuda.so.1 on the loader path),\n"
                        "       or use the cpu backend\n", drv_why);
        exit(2);
    }
    return &drv;
}

const CublasLtApi *cublaslt_api(void) {
    pthread_once(&blt_once, load_cublaslt);
    if (!blt_ok) {
        fprintf(stderr, "vmc: cannot load cuBLASLt: %s\n"
                        "  ---> HINT: install the CUDA 13 toolkit's libcublasLt.so.13 and put its folder on "
                        "LD_LIBRARY_PATH (or set CUDA_HOME)\n", blt_why);
        exit(2);
    }
    return &blt;
}

const NvrtcApi *nvrtc_api_or_die(void) {
    char why[512];
    const NvrtcApi *api = nvrtc_api(why, sizeof why);
    if (!api) {
        fprintf(stderr, "vmc: cannot load NVRTC: %s\n"
                        "  ---> HINT: install the CUDA 13 toolkit's libnvrtc.so.13 and put its folder on "
                        "LD_LIBRARY_PATH (or set CUDA_HOME)\n", why);
        exit(2);
    }
    return api;
}

CUdevice cuda_init_device(int ordinal) {
    const CudaApi *cu = cuda_api();
    CUdevice dev;
    CUcontext ctx;
    CU_CHECK(cu->cuDeviceGet(&dev, ordinal));
    /* The primary context is the one the CUDA runtime (and so cuBLASLt) uses: sharing it keeps one context. */
    CU_CHECK(cu->cuDevicePrimaryCtxRetain(&ctx, dev));
    CU_CHECK(cu->cuCtxSetCurrent(ctx));
    return dev;
}

int cuda_device_arch(CUdevice dev) {
    const CudaApi *cu = cuda_api();
    int major = 0, minor = 0;
    CU_CHECK(cu->cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev));
    CU_CHECK(cu->cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev));
    return major * 10 + minor;
}

int cuda_device_sms(CUdevice dev) {
    int sms = 0;
    CU_CHECK(cuda_api()->cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev));
    return sms;
}

static const char *cuda_hint(CUresult r) {
    switch ((int)r) {
    case CUDA_ERROR_OUT_OF_MEMORY: return "the GPU is out of memory: lower the batch size or free other GPU jobs";
    case CUDA_ERROR_NO_DEVICE: return "no GPU visible: check CUDA_VISIBLE_DEVICES and nvidia-smi";
    case CUDA_ERROR_INVALID_PTX:
    case CUDA_ERROR_NO_BINARY_FOR_GPU:
    case CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
        return "the kernel was built for another GPU architecture or a newer toolkit: clear the cache (VMC_CACHE)";
    case CUDA_ERROR_ILLEGAL_ADDRESS:
    case CUDA_ERROR_LAUNCH_FAILED:
        return "a kernel faulted (a vmc bug): rerun under compute-sanitizer to find it";
    case CUDA_ERROR_INVALID_CONTEXT: return "no current context: call cuda_init_device() on this thread first";
    default: return "see the CUDA driver API documentation for this error";
    }
}

void cuda_check_(CUresult r, const char *expr, const char *file, int line) {
    if (r == CUDA_SUCCESS) return;
    const char *name = NULL, *msg = NULL;
    if (drv.cuGetErrorName) drv.cuGetErrorName(r, &name);
    if (drv.cuGetErrorString) drv.cuGetErrorString(r, &msg);
    fprintf(stderr, "%s:%d: CUDA error in `%s`: %s (%s)\n  ---> HINT: %s\n", file, line, expr,
            name ? name : "unknown", msg ? msg : "", cuda_hint(r));
    exit(2);
}

void nvrtc_check_(nvrtcResult r, const char *expr, const char *file, int line) {
    if (r == NVRTC_SUCCESS) return;
    char why[256];
    const NvrtcApi *api = nvrtc_api(why, sizeof why);
    fprintf(stderr, "%s:%d: NVRTC error in `%s`: %s\n  ---> HINT: %s\n", file, line, expr,
            api ? api->nvrtcGetErrorString(r) : "unknown",
            r == NVRTC_ERROR_COMPILATION ? "the program log above shows the compile error"
                                         : "check the NVRTC options and the toolkit installation");
    exit(2);
}

void cublas_check_(cublasStatus_t r, const char *expr, const char *file, int line) {
    if (r == CUBLAS_STATUS_SUCCESS) return;
    const char *name = blt.cublasLtGetStatusName ? blt.cublasLtGetStatusName(r) : "unknown";
    const char *hint = r == CUBLAS_STATUS_NOT_SUPPORTED ? "this shape/dtype/layout combination has no cuBLASLt kernel"
                       : r == CUBLAS_STATUS_ALLOC_FAILED ? "out of GPU memory for cuBLASLt's workspace"
                       : r == CUBLAS_STATUS_INVALID_VALUE ? "a descriptor attribute or dimension is invalid (a vmc bug)"
                                                          : "see the cuBLASLt documentation for this status";
    fprintf(stderr, "%s:%d: cuBLASLt error in `%s`: %s\n  ---> HINT: %s\n", file, line, expr, name, hint);
    exit(2);
}
