// Every CUDA runtime call and launch goes through these: failures throw fastconv::CudaError naming
// the call and file:line; out-of-memory throws std::bad_alloc (MemoryError in Python).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <new>
#include <string>

#include "launch.h"

namespace fastconv {

inline void cuda_check(cudaError_t status, const char* call, const char* file, int line) {
    if (status == cudaSuccess) return;
    if (status == cudaErrorMemoryAllocation) {
        cudaGetLastError();  // clear the sticky-free error so later calls work
        throw std::bad_alloc();
    }
    throw CudaError(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
                    cudaGetErrorString(status));
}

// Blocks for a grid-stride loop over `total` items: enough to fill any current GPU, never more
// than the grid's x limit. Kernels loop `for (i = blockIdx.x * blockDim.x + threadIdx.x; i < total;
// i += gridDim.x * blockDim.x)` with int64_t indices.
inline unsigned grid_1d(int64_t total, int threads) {
    const int64_t blocks = (total + threads - 1) / threads;
    return unsigned(blocks < 1 ? 1 : (blocks > (int64_t(1) << 20) ? (int64_t(1) << 20) : blocks));
}

}  // namespace fastconv

#define FASTCONV_GRID_STRIDE_LOOP(i, total)                                                   \
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (total);            \
         i += int64_t(gridDim.x) * blockDim.x)
// FASTCONV_LAUNCH(grid, block, kernel)(args...) is kernel<<<grid, block>>>(args...): a macro so that
// scripts/cuda_emu can run the same kernels on a CPU (the kernel comes last: template arguments
// contain commas). Follow every launch with FASTCONV_CUDA_CHECK_LAUNCH().
#ifndef FASTCONV_LAUNCH
#define FASTCONV_LAUNCH(grid, block, ...) __VA_ARGS__<<<grid, block>>>
#endif
#define FASTCONV_CUDA_CHECK(call) ::fastconv::cuda_check((call), #call, __FILE__, __LINE__)
#define FASTCONV_CUDA_CHECK_LAUNCH() ::fastconv::cuda_check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
