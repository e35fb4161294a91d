#include "nn/batch_norm.h"

#include "common/cpu_features.h"
#include "nn/batch_norm_impl.h"

namespace fastconv {

// Each kernel runs its AVX2/FMA build where the CPU has it, else the portable one. On cached
// activations the passes are bound by arithmetic, not memory: the AVX2 build's backward took
// 0.49-1.05 ms against the SSE2 build's 0.90-1.47 on DenseNet's 8x8 and 16x16 shapes (2 threads,
// ad hoc, 2026-11-26); benchmarks/results/2026-11-26_epyc2c_batchnorm.md has the kernels' figures.

void batch_norm_stats(const float* x, int64_t N, int64_t C, int64_t HW, float* mean, float* var) {
#ifndef FASTCONV_NO_AVX2
    if (use_avx2()) return bn_detail::stats_avx2(x, N, C, HW, mean, var);
#endif
    bn_detail::stats_impl(x, N, C, HW, mean, var);
}

void batch_norm_forward(const float* x, int64_t N, int64_t C, int64_t HW, const float* mean, const float* inv_std,
                        const float* gamma, const float* beta, bool relu, float* y) {
#ifndef FASTCONV_NO_AVX2
    if (use_avx2()) return bn_detail::forward_avx2(x, N, C, HW, mean, inv_std, gamma, beta, relu, y);
#endif
    bn_detail::forward_impl(x, N, C, HW, mean, inv_std, gamma, beta, relu, y);
}

void batch_norm_backward(const float* x, const float* dy, int64_t N, int64_t C, int64_t HW, const float* mean,
                         const float* inv_std, const float* gamma, const float* beta, bool relu, bool batch_statistics,
                         float* dx, float* dgamma, float* dbeta) {
#ifndef FASTCONV_NO_AVX2
    if (use_avx2())
        return bn_detail::backward_avx2(x, dy, N, C, HW, mean, inv_std, gamma, beta, relu, batch_statistics, dx,
                                        dgamma, dbeta);
#endif
    bn_detail::backward_impl(x, dy, N, C, HW, mean, inv_std, gamma, beta, relu, batch_statistics, dx, dgamma, dbeta);
}

}  // namespace fastconv
