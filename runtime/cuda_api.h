/* cuda_api.h — run-time loading of the CUDA driver (libcuda.so.1) and cuBLASLt (libcublasLt.so.13), so the same
 * vmc binary runs on machines without a GPU. CUDA headers are used for types only; nothing links them.
 * NVRTC is loaded by codegen/nvrtc_compile.c (codegen must not depend on runtime); NVRTC_CHECK is here for runtime users.
 * The CHECK macros are the environment-error path: print the call, file:line, the library's error name and a
 * hint, then exit(2). Call sites use the real names through the table: CU_CHECK(cu->cuMemAlloc(&p, n)). */
#pragma once
#include "nvrtc_compile.h"
#include <cublasLt.h>
#include <cuda.h>
#include <stdbool.h>

/* Driver entry points. Names go through cuda.h's macros (cuMemAlloc -> cuMemAlloc_v2), so each member is the
 * versioned symbol the header means, and `cu->cuMemAlloc(...)` reads as the documented call. */
#define CUDA_DRIVER_FUNCS(X)                                                                                     \
    X(cuInit) X(cuDriverGetVersion) X(cuGetErrorName) X(cuGetErrorString) X(cuDeviceGet) X(cuDeviceGetCount)     \
    X(cuDeviceGetName) X(cuDeviceGetAttribute) X(cuDeviceTotalMem) X(cuDevicePrimaryCtxRetain)                   \
    X(cuDevicePrimaryCtxRelease) X(cuCtxSetCurrent) X(cuCtxGetCurrent) X(cuCtxGetDevice) X(cuCtxSynchronize)     \
    X(cuMemGetInfo) X(cuMemAlloc) X(cuMemFree) X(cuMemAllocHost) X(cuMemFreeHost) X(cuMemcpyHtoD)                \
    X(cuMemcpyDtoH) X(cuMemcpyDtoD) X(cuMemcpyHtoDAsync) X(cuMemcpyDtoHAsync) X(cuMemcpyDtoDAsync) X(cuMemsetD8) \
    X(cuMemsetD32) X(cuMemsetD8Async) X(cuMemsetD32Async) X(cuModuleLoadData) X(cuModuleUnload)                  \
    X(cuModuleGetFunction) X(cuFuncSetAttribute) X(cuFuncGetAttribute) X(cuLaunchKernel)                         \
    X(cuOccupancyMaxActiveBlocksPerMultiprocessor) X(cuStreamCreate) X(cuStreamDestroy) X(cuStreamSynchronize)   \
    X(cuStreamWaitEvent) X(cuStreamBeginCapture) X(cuStreamEndCapture) X(cuGraphInstantiate) X(cuGraphLaunch)    \
    X(cuGraphExecDestroy) X(cuGraphDestroy) X(cuGraphGetNodes) X(cuGraphNodeGetType)                             \
    X(cuGraphKernelNodeGetAttribute) X(cuEventCreate) X(cuEventDestroy) X(cuEventRecord) X(cuEventSynchronize)   \
    X(cuEventQuery) X(cuEventElapsedTime) X(cuLaunchKernelEx) X(cuStreamSetAttribute)                            \
    X(cuCtxGetStreamPriorityRange) X(cuDeviceGetPCIBusId) X(cuTensorMapEncodeTiled)    \
    X(cuOccupancyMaxActiveClusters)

#define CUBLASLT_FUNCS(X)                                                                                        \
    X(cublasLtCreate) X(cublasLtDestroy) X(cublasLtGetVersion) X(cublasLtGetStatusName) X(cublasLtGetStatusString) \
    X(cublasLtMatmul) X(cublasLtMatmulDescCreate) X(cublasLtMatmulDescDestroy) X(cublasLtMatmulDescSetAttribute)   \
    X(cublasLtMatrixLayoutCreate) X(cublasLtMatrixLayoutDestroy) X(cublasLtMatrixLayoutSetAttribute)               \
    X(cublasLtMatmulPreferenceCreate) X(cublasLtMatmulPreferenceDestroy)                                           \
    X(cublasLtMatmulPreferenceSetAttribute) X(cublasLtMatmulAlgoGetHeuristic) X(cublasLtMatmulAlgoConfigGetAttribute)

#define CUDA_API_MEMBER_(f) __typeof__(f) *f;
typedef struct CudaApi {
    CUDA_DRIVER_FUNCS(CUDA_API_MEMBER_)
} CudaApi;
typedef struct CublasLtApi {
    CUBLASLT_FUNCS(CUDA_API_MEMBER_)
} CublasLtApi;
#undef CUDA_API_MEMBER_

/* True when libcuda loads, cuInit succeeds and at least one device exists. Never exits; loads once. */
bool cuda_available(void);
/* Why cuda_available() is false ("" when it is true). */
const char *cuda_unavailable_reason(void);

/* The driver table; exits(2) with a hint when there is no usable driver. */
const CudaApi *cuda_api(void);
/* The cuBLASLt table; exits(2) with a hint when libcublasLt cannot be loaded. */
const CublasLtApi *cublaslt_api(void);
/* The NVRTC table (codegen/nvrtc_compile.c loads it); exits(2) with a hint when it cannot be loaded. */
const NvrtcApi *nvrtc_api_or_die(void);

/* Device 0's primary context made current on the calling thread (retained once); returns the device. */
CUdevice cuda_init_device(int ordinal);
/* Compute capability as 10*major+minor (90 for H100), for --gpu-architecture=sm_XX. */
int cuda_device_arch(CUdevice dev);
/* Its streaming multiprocessors (ProgramOptions.sms). */
int cuda_device_sms(CUdevice dev);

/* Error reporting behind the macros; each prints and exits(2) when the status is not success. */
void cuda_check_(CUresult r, const char *expr, const char *file, int line);
void nvrtc_check_(nvrtcResult r, const char *expr, const char *file, int line);
void cublas_check_(cublasStatus_t r, const char *expr, const char *file, int line);

#define CU_CHECK(expr) cuda_check_((expr), #expr, __FILE__, __LINE__)
#define NVRTC_CHECK(expr) nvrtc_check_((expr), #expr, __FILE__, __LINE__)
#define CUBLAS_CHECK(expr) cublas_check_((expr), #expr, __FILE__, __LINE__)
