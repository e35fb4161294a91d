// Implicit GEMM: output channels as the vector dimension, input pixels broadcast straight from the
// (padded) input, in all three passes (conv2d_implicit_gemm_avx2.cpp). The kernels need AVX2/FMA; elsewhere (the
// portable path, planes too large for int32 offsets) the same products run as im2col.
#include "common/cpu_features.h"
#include "conv/conv2d.h"
#include "conv/conv2d_implicit_gemm.h"

namespace fastconv {

namespace {
bool use_kernels(const Conv2dParams& p) {
#if !defined(FASTCONV_NO_AVX2)
    return use_avx2() && conv2d_implicit_gemm_avx2_fits(p);
#else
    (void)p;
    return false;
#endif
}
}  // namespace

void conv2d_implicit_gemm_forward(const Conv2dParams& p, const float* x, const float* w, const float* bias, float* y) {
    if (p.N == 0) return;
#if !defined(FASTCONV_NO_AVX2)
    if (use_kernels(p)) return conv2d_implicit_gemm_forward_avx2(p, x, w, bias, y);
#endif
    conv2d_im2col_forward(p, x, w, bias, y);
}

void conv2d_implicit_gemm_backward_input(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
#if !defined(FASTCONV_NO_AVX2)
    if (p.N > 0 && use_avx2() && conv2d_implicit_gemm_avx2_input_grad_fits(p))
        return conv2d_implicit_gemm_backward_input_avx2(p, dy, w, dx);
#endif
    conv2d_im2col_backward_input(p, dy, w, dx);
}

void conv2d_implicit_gemm_backward_weight(const Conv2dParams& p, const float* x, const float* dy, float* dw) {
#if !defined(FASTCONV_NO_AVX2)
    if (p.N > 0 && use_kernels(p)) return conv2d_implicit_gemm_backward_weight_avx2(p, x, dy, dw);
#endif
    conv2d_im2col_backward_weight(p, x, dy, dw);
}

}  // namespace fastconv
