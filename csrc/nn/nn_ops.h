// Fused elementwise kernels of the Python layer (activations, bias gradient, optimizer updates).
// Each is one memory pass where numpy would need several passes and temporaries; they are memory
// bound, so plain loops the compiler vectorizes are enough (no AVX2 variant needed).
#pragma once

#include <cstdint>

namespace fastconv {

// y = max(x, 0). y may alias x.
void relu_forward(const float* x, float* y, int64_t n);
// dx = y > 0 ? dy : 0, with y the forward output. dx may alias dy.
void relu_backward(const float* y, const float* dy, float* dx, int64_t n);
// dx = dy * y * (1 - y), with y the forward output.
void sigmoid_backward(const float* y, const float* dy, float* dx, int64_t n);
// db[c] = sum over n, i of dy[n * batch_stride + c * channel_stride + i], i < HW: the bias gradient of
// a convolution, whose (N, C, HW) grad_output may be a channel slice of a larger array.
void bias_grad_nchw(const float* dy, int64_t N, int64_t C, int64_t HW, int64_t batch_stride, int64_t channel_stride,
                    float* db);

// out[n, c, i] = a[n * a_batch + c * a_channel + i] + b[n * b_batch + c * b_channel + i], i < HW,
// out C-contiguous (N, C, HW): the autograd's gradient accumulation, whose operands are often
// channel slices of a larger gradient (cat's backward).
void add_planes(const float* a, int64_t a_batch, int64_t a_channel, const float* b, int64_t b_batch,
                int64_t b_channel, int64_t N, int64_t C, int64_t HW, float* out);

struct SgdParams {
    float lr, momentum, dampening, weight_decay;
    bool nesterov, first_step;  // first_step: the momentum buffer is set to the gradient
};
// One SGD step (PyTorch's rule) on n parameters in place; buf is the momentum buffer (unused when
// momentum == 0).
void sgd_step(const SgdParams& p, float* w, const float* g, float* buf, int64_t n);

struct AdamParams {
    float lr, beta1, beta2, eps, weight_decay;
    bool decoupled;             // AdamW: w *= 1 - lr * wd; otherwise g += wd * w
    float bias_correction1;     // 1 - beta1^t
    float bias_correction2;     // 1 - beta2^t
};
// One Adam/AdamW step on n parameters in place (m, v: first and second moment estimates).
void adam_step(const AdamParams& p, float* w, const float* g, float* m, float* v, int64_t n);

}  // namespace fastconv
