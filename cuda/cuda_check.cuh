// Every CUDA runtime call and launch goes through these: failures throw fastconv::CudaError naming
// the call and file:line; out-of-memory throws std::bad_alloc (MemoryError in Python).
#pragma once

#include <cuda_runtime.h>

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

}  // namespace fastconv

#define FASTCONV_CUDA_CHECK(call) ::fastconv::cuda_check((call), #call, __FILE__, __LINE__)
#define FASTCONV_CUDA_CHECK_LAUNCH() ::fastconv::cuda_check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
