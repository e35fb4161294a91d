// Internal interface between the implicit-GEMM dispatch (conv2d_implicit_gemm.cpp) and its AVX2
// kernel (conv2d_implicit_gemm_avx2.cpp). The public entry point is in conv/conv2d.h.
#pragma once

#include "common/params.h"

namespace fastconv {

// Scratch bytes the AVX2 kernel needs (the phase-split copy of the input for stride_w > 1).
int64_t conv2d_implicit_gemm_avx2_workspace(const Conv2dParams& p);
// Call only when use_avx2(); p.N >= 1.
void conv2d_implicit_gemm_forward_avx2(const Conv2dParams& p, const float* x, const float* w, const float* bias,
                                       float* y);

}  // namespace fastconv
