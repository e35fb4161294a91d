// The batch-norm kernels built with AVX2/FMA (see batch_norm_impl.h); called only when use_avx2().
#include "nn/batch_norm_impl.h"

namespace fastconv::bn_detail {

void stats_avx2(const float* x, int64_t N, int64_t C, int64_t HW, float* mean, float* var) {
    stats_impl(x, N, C, HW, mean, var);
}

void forward_avx2(const float* x, int64_t N, int64_t C, int64_t HW, const float* mean, const float* inv_std,
                  const float* gamma, const float* beta, bool relu, float* y) {
    forward_impl(x, N, C, HW, mean, inv_std, gamma, beta, relu, y);
}

void backward_avx2(const float* x, const float* dy, int64_t N, int64_t C, int64_t HW, const float* mean,
                   const float* inv_std, const float* gamma, const float* beta, bool relu, bool batch_statistics,
                   float* dx, float* dgamma, float* dbeta) {
    backward_impl(x, dy, N, C, HW, mean, inv_std, gamma, beta, relu, batch_statistics, dx, dgamma, dbeta);
}

}  // namespace fastconv::bn_detail
