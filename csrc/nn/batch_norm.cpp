#include "nn/batch_norm.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/cpu_features.h"
#include "common/parallel.h"

namespace fastconv {

namespace bn_portable {
#include "nn/batch_norm_kernels.h"
}  // namespace bn_portable

namespace {

// On cached activations the passes are bound by arithmetic, not memory, so the AVX2 build pays:
// benchmarks/results/2026-11-26_epyc2c_batchnorm.md times both paths.
const BatchNormKernels& kernels() {
#if !defined(FASTCONV_NO_AVX2)
    if (use_avx2()) return bn_avx2::kernels();
#endif
    return bn_portable::kernels();
}

}  // namespace

void batch_norm_stats(const float* x, int64_t N, int64_t C, int64_t HW, float* mean, float* var) {
    kernels().stats(x, N, C, HW, mean, var);
}

void batch_norm_forward(const float* x, int64_t N, int64_t C, int64_t HW, const float* mean, const float* inv_std,
                        const float* gamma, const float* beta, bool relu, float* y) {
    kernels().forward(x, N, C, HW, mean, inv_std, gamma, beta, relu, y);
}

void batch_norm_backward(const float* x, const float* dy, int64_t N, int64_t C, int64_t HW, const float* mean,
                         const float* inv_std, const float* gamma, const float* beta, bool relu, bool batch_statistics,
                         float* dx, float* dgamma, float* dbeta) {
    kernels().backward(x, dy, N, C, HW, mean, inv_std, gamma, beta, relu, batch_statistics, dx, dgamma, dbeta);
}

}  // namespace fastconv
