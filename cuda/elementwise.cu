// Elementwise and reduction kernels for training on the GPU: bias add and its gradient.
// All are memory-bound grid-stride loops (one read + one write per element); not yet measured.
#include <cuda_runtime.h>

#include "cuda_check.cuh"
#include "launch.h"

namespace fastconv {
namespace {

constexpr int kThreads = 256;

__global__ void bias_add_kernel(float* __restrict__ y, const float* __restrict__ bias, int64_t C, int64_t inner,
                                int64_t total) {
    FASTCONV_GRID_STRIDE_LOOP(i, total) { y[i] += bias[(i / inner) % C]; }
}

}  // namespace

void cuda_bias_add(float* y, const float* bias, int64_t N, int64_t C, int64_t inner) {
    const int64_t total = N * C * inner;
    if (total == 0) return;
    bias_add_kernel<<<grid_1d(total, kThreads), kThreads>>>(y, bias, C, inner, total);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

}  // namespace fastconv
