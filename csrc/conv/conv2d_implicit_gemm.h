// Internal interface between the implicit-GEMM dispatch (conv2d_implicit_gemm.cpp) and its AVX2
// kernels (conv2d_implicit_gemm_avx2.cpp). The public entry points are in conv/conv2d.h.
#pragma once

#include "common/params.h"

namespace fastconv {

// Whether the AVX2 kernels can run p: their int32 offsets must reach every tap of a group.
bool conv2d_implicit_gemm_avx2_fits(const Conv2dParams& p);
// Call only when use_avx2() and conv2d_implicit_gemm_avx2_fits(p); p.N >= 1.
void conv2d_implicit_gemm_forward_avx2(const Conv2dParams& p, const float* x, const float* w, const float* bias,
                                       float* y);
void conv2d_implicit_gemm_backward_weight_avx2(const Conv2dParams& p, const float* x, const float* dy, float* dw);
// The input gradient's offsets (into dy, padded as its phases read it, and into dx) fit int32.
bool conv2d_implicit_gemm_avx2_input_grad_fits(const Conv2dParams& p);
// Call only when use_avx2() and conv2d_implicit_gemm_avx2_input_grad_fits(p); p.N >= 1.
void conv2d_implicit_gemm_backward_input_avx2(const Conv2dParams& p, const float* dy, const float* w, float* dx);

}  // namespace fastconv
