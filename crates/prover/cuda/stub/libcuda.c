/* A stand-in for the CUDA driver (libcuda.so.1) with the entry points the `cuda` feature links
 * against, for building and testing on machines without an NVIDIA driver: every call answers
 * CUDA_ERROR_NO_DEVICE, so the engine reports "no CUDA device" and the GPU tests skip. On a GPU
 * node the driver's own libcuda.so.1 (same soname) is loaded instead. Built by scripts/cuda-stub;
 * never shipped in an image. */

#define CUDA_ERROR_NO_DEVICE 100
#define CUDA_SUCCESS 0

/* Error descriptions, which callers print: the one error this driver gives has its own; any
 * other code is named as a stub's. */
int cuGetErrorString(int error, const char** description) {
    *description = error == CUDA_ERROR_NO_DEVICE ? "no CUDA-capable device is detected (stub driver, no NVIDIA driver here)"
                                                 : "error from the stub driver";
    return CUDA_SUCCESS;
}

#define STUB(name) \
    int name(void) { return CUDA_ERROR_NO_DEVICE; }

STUB(cuInit)
STUB(cuDriverGetVersion)
STUB(cuDeviceGetCount)
STUB(cuDeviceGet)
STUB(cuDeviceGetName)
STUB(cuDeviceTotalMem_v2)
STUB(cuDeviceGetAttribute)
STUB(cuDevicePrimaryCtxRetain)
STUB(cuDevicePrimaryCtxRelease_v2)
STUB(cuCtxSetCurrent)
STUB(cuModuleLoadDataEx)
STUB(cuModuleGetFunction)
STUB(cuModuleUnload)
STUB(cuStreamCreateWithPriority)
STUB(cuStreamDestroy_v2)
STUB(cuStreamSynchronize)
STUB(cuMemAlloc_v2)
STUB(cuMemFree_v2)
STUB(cuMemsetD8_v2)
STUB(cuMemcpyHtoD_v2)
STUB(cuMemcpyDtoH_v2)
STUB(cuMemGetInfo_v2)
STUB(cuLaunchKernel)
