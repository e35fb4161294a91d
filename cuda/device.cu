// Device queries and the one trivial kernel that exercises the CUDA build in every CI run.
#include <cuda_runtime.h>

#include "cuda_check.cuh"
#include "launch.h"

namespace fastconv {

int cuda_device_count() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();  // no driver or no device: report none, leave no error behind
        return 0;
    }
    return count;
}

std::string cuda_device_name(int device) {
    cudaDeviceProp prop;
    FASTCONV_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    return prop.name;
}

std::string cuda_runtime_version() {
    int v = 0;
    cudaRuntimeGetVersion(&v);
    return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

void cuda_synchronize() { FASTCONV_CUDA_CHECK(cudaDeviceSynchronize()); }

__global__ void saxpy_kernel(int64_t n, float alpha, const float* x, float* y) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) y[i] = alpha * x[i] + y[i];
}

void cuda_saxpy_host(int64_t n, float alpha, const float* x, float* y) {
    if (n <= 0) return;
    float *dx = nullptr, *dy = nullptr;
    const size_t bytes = size_t(n) * sizeof(float);
    FASTCONV_CUDA_CHECK(cudaMalloc(&dx, bytes));
    try {
        FASTCONV_CUDA_CHECK(cudaMalloc(&dy, bytes));
        FASTCONV_CUDA_CHECK(cudaMemcpy(dx, x, bytes, cudaMemcpyHostToDevice));
        FASTCONV_CUDA_CHECK(cudaMemcpy(dy, y, bytes, cudaMemcpyHostToDevice));
        const int threads = 256;
        FASTCONV_LAUNCH(unsigned((n + threads - 1) / threads), threads, saxpy_kernel)(n, alpha, dx, dy);
        FASTCONV_CUDA_CHECK_LAUNCH();
        FASTCONV_CUDA_CHECK(cudaMemcpy(y, dy, bytes, cudaMemcpyDeviceToHost));
    } catch (...) {
        cudaFree(dx);
        cudaFree(dy);
        throw;
    }
    FASTCONV_CUDA_CHECK(cudaFree(dx));
    FASTCONV_CUDA_CHECK(cudaFree(dy));
}

}  // namespace fastconv
