// BatchNorm2d over NCHW float32 arrays: one pass for the statistics, one for the normalization,
// and a backward of two passes, per channel in parallel. numpy needs about a dozen passes and as
// many temporaries for the same.
#pragma once

#include <cstdint>

namespace fastconv {

// mean[c] and biased variance var[c] of x[:, c, :] (N, C, HW), accumulated in double.
void batch_norm_stats(const float* x, int64_t N, int64_t C, int64_t HW, float* mean, float* var);

// y = (x - mean[c]) * inv_std[c] * gamma[c] + beta[c]; gamma/beta may be null (1 and 0). y may alias x.
// relu: y = max(that, 0) in the same pass (BatchNorm2d followed by ReLU: one pass fewer each way).
void batch_norm_forward(const float* x, int64_t N, int64_t C, int64_t HW, const float* mean, const float* inv_std,
                        const float* gamma, const float* beta, bool relu, float* y);

// Gradients of the forward above with xhat = (x - mean) * inv_std, given dy:
//   dgamma[c] = sum dy * xhat, dbeta[c] = sum dy (each may be null: not wanted),
//   dx = gamma * inv_std * (dy - [sum dy + xhat * sum dy * xhat] / (N * HW))   with batch statistics,
//   dx = gamma * inv_std * dy                                                  with fixed ones.
// dx may be null (x needs no gradient). relu: the gradient of the fused forward, dy taken as 0 where
// the normalized value (recomputed from x, gamma and beta) was <= 0.
void batch_norm_backward(const float* x, const float* dy, int64_t N, int64_t C, int64_t HW, const float* mean,
                         const float* inv_std, const float* gamma, const float* beta, bool relu, bool batch_statistics,
                         float* dx, float* dgamma, float* dbeta);

// The three passes, one implementation per CPU path (nn/batch_norm_kernels.h, compiled portable in
// batch_norm.cpp and with AVX2/FMA in batch_norm_avx2.cpp); the functions above run the set that
// use_avx2() picks.
struct BatchNormKernels {
    decltype(&batch_norm_stats) stats;
    decltype(&batch_norm_forward) forward;
    decltype(&batch_norm_backward) backward;
};
namespace bn_avx2 { const BatchNormKernels& kernels(); }

}  // namespace fastconv
