// 2-D convolution kernels (cross-correlation, NCHW activations, KCRS weights, float32), one file
// per algorithm. Every function takes the validated Conv2dParams and dense C-contiguous arrays:
//   x  (N, C, H, W)          w  (K, C/groups, R, S)      bias (K) or nullptr
//   y  (N, K, P, Q)          with P, Q from Conv2dParams::P()/Q()
// Outputs are fully overwritten (never accumulated into), inputs are never modified. Scratch comes
// from common/workspace.h. Threads: common/parallel.h (OpenMP, GIL already released by the caller).
#pragma once

#include "common/params.h"

namespace fastconv {

using Conv2dForwardFn = void (*)(const Conv2dParams&, const float* x, const float* w, const float* bias, float* y);
using Conv2dInputGradFn = void (*)(const Conv2dParams&, const float* dy, const float* w, float* dx);
using Conv2dWeightGradFn = void (*)(const Conv2dParams&, const float* x, const float* dy, float* dw);

// direct: the six-deep loop with register tiles (conv2d_direct.cpp, AVX2 in conv2d_direct_avx2.cpp)
void conv2d_direct_forward(const Conv2dParams&, const float* x, const float* w, const float* bias, float* y);
void conv2d_direct_backward_input(const Conv2dParams&, const float* dy, const float* w, float* dx);
void conv2d_direct_backward_weight(const Conv2dParams&, const float* x, const float* dy, float* dw);

// im2col: unfold + sgemm, batch chunked under the workspace limit (conv2d_im2col.cpp)
void conv2d_im2col_forward(const Conv2dParams&, const float* x, const float* w, const float* bias, float* y);
void conv2d_im2col_backward_input(const Conv2dParams&, const float* dy, const float* w, float* dx);
void conv2d_im2col_backward_weight(const Conv2dParams&, const float* x, const float* dy, float* dw);

// implicit_gemm: output channels as the vector dimension, input pixels broadcast in place from the
// padded input, in all three passes; the input gradient runs each stride phase of dx as a stride-1
// correlation of dy with that phase's taps (conv2d_implicit_gemm.cpp, AVX2 in conv2d_implicit_gemm_avx2.cpp)
void conv2d_implicit_gemm_forward(const Conv2dParams&, const float* x, const float* w, const float* bias, float* y);
void conv2d_implicit_gemm_backward_input(const Conv2dParams&, const float* dy, const float* w, float* dx);
void conv2d_implicit_gemm_backward_weight(const Conv2dParams&, const float* x, const float* dy, float* dw);

// fft: real 2-D FFT, per-frequency complex GEMM over channels, tiled (conv2d_fft.cpp, fft.cpp)
void conv2d_fft_forward(const Conv2dParams&, const float* x, const float* w, const float* bias, float* y);
void conv2d_fft_backward_input(const Conv2dParams&, const float* dy, const float* w, float* dx);
void conv2d_fft_backward_weight(const Conv2dParams&, const float* x, const float* dy, float* dw);

// winograd: F(2x2,3x3) and F(4x4,3x3), 3x3 stride 1 dilation 1 groups 1 (conv2d_winograd.cpp)
void conv2d_winograd_f2_forward(const Conv2dParams&, const float* x, const float* w, const float* bias, float* y);
void conv2d_winograd_f4_forward(const Conv2dParams&, const float* x, const float* w, const float* bias, float* y);
// winograd_s2: F(2x2,3x3) at stride 2 by tap parity, 3x3 stride 2 dilation 1 groups 1, forward and input gradient
void conv2d_winograd_s2_forward(const Conv2dParams&, const float* x, const float* w, const float* bias, float* y);
void conv2d_winograd_s2_backward_input(const Conv2dParams&, const float* dy, const float* w, float* dx);
void conv2d_winograd_f2_backward_input(const Conv2dParams&, const float* dy, const float* w, float* dx);
void conv2d_winograd_f4_backward_input(const Conv2dParams&, const float* dy, const float* w, float* dx);
void conv2d_winograd_f2_backward_weight(const Conv2dParams&, const float* x, const float* dy, float* dw);
void conv2d_winograd_f4_backward_weight(const Conv2dParams&, const float* x, const float* dy, float* dw);

// depthwise: groups == C, K = C * multiplier; one packed plane per (image, channel), vectorised
// along output rows (conv2d_depthwise.cpp, AVX2 in conv2d_depthwise_avx2.cpp)
void conv2d_depthwise_forward(const Conv2dParams&, const float* x, const float* w, const float* bias, float* y);
void conv2d_depthwise_backward_input(const Conv2dParams&, const float* dy, const float* w, float* dx);
void conv2d_depthwise_backward_weight(const Conv2dParams&, const float* x, const float* dy, float* dw);

// Stride-1 dilated convolution as an undilated one (conv2d_phases.cpp): the d_h x d_w phase
// sub-images of the input, stacked as a batch, convolved by any kernel with dilation 1
// (conv2d_phase_params), the outputs scattered back. Gradients split dy and gather dx the same
// way. Arrays: xs/dxs of conv2d_phase_params(p)'s input shape, ys/dys of its output shape.
Conv2dParams conv2d_phase_params(const Conv2dParams& p);
void conv2d_phase_split_input(const Conv2dParams& p, const float* x, float* xs);
void conv2d_phase_merge_input(const Conv2dParams& p, const float* dxs, float* dx);
void conv2d_phase_split_output(const Conv2dParams& p, const float* dy, float* dys);
void conv2d_phase_merge_output(const Conv2dParams& p, const float* ys, float* y);

// Strided undilated convolution as a stride-1 one over the input's s_h x s_w phases stacked as
// channels (space to depth, conv2d_phases.cpp): C s_h s_w channels, ceil(R / s_h) x ceil(S / s_w)
// taps, no padding, the same output. Arrays: xs/dxs of conv2d_space_to_depth_params(p)'s input
// shape, ws/dws of its weight shape; y and dy are shared with p.
Conv2dParams conv2d_space_to_depth_params(const Conv2dParams& p);
void conv2d_space_to_depth_split_input(const Conv2dParams& p, const float* x, float* xs);
void conv2d_space_to_depth_merge_input(const Conv2dParams& p, const float* dxs, float* dx);
void conv2d_space_to_depth_split_weight(const Conv2dParams& p, const float* w, float* ws);
void conv2d_space_to_depth_merge_weight(const Conv2dParams& p, const float* dws, float* dw);

}  // namespace fastconv
