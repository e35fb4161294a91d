// Plain C++ declarations of the CUDA launchers (no CUDA types), so module_cuda.cpp can call them.
// Every launcher checks its launch and throws fastconv::CudaError on failure.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace fastconv {

// A failed CUDA runtime call or kernel launch: the call, file:line and CUDA's message.
class CudaError : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

// Device queries that never throw when there is no driver or no GPU: they report zero devices.
int cuda_device_count();
std::string cuda_device_name(int device);
std::string cuda_runtime_version();
void cuda_synchronize();

// y[i] = alpha * x[i] + y[i] on host arrays, through the device: the smallest end-to-end check
// that the toolchain, the runtime and a GPU work together.
void cuda_saxpy_host(int64_t n, float alpha, const float* x, float* y);

}  // namespace fastconv
