// What training needs besides convolution and GEMM, so a LeNet step never leaves the GPU: bias add
// and its gradient, activations and their gradients, softmax cross-entropy, sums/means, and the SGD
// (momentum) and Adam updates with PyTorch's formulas. Elementwise kernels are memory-bound
// grid-stride loops; reductions are deterministic (fixed trees, no float atomics; see block_reduce.cuh).
// Not yet measured on a GPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "block_reduce.cuh"
#include "cuda_check.cuh"
#include "launch.h"

namespace fastconv {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxReduceBlocks = 1024;

static_assert(kThreads == kReduceThreads, "block_reduce needs 256-thread blocks");

__device__ float block_sum(float v) { return block_reduce(v, SumOp{}); }
__device__ float block_max(float v) { return block_reduce(v, MaxOp{}); }

__global__ void bias_add_kernel(float* __restrict__ y, const float* __restrict__ bias, int64_t C, int64_t inner,
                                int64_t total) {
    FASTCONV_GRID_STRIDE_LOOP(i, total) { y[i] += bias[(i / inner) % C]; }
}

// One block per channel c: db[c] = sum over n, i of dy[n, c, i].
__global__ void bias_grad_kernel(const float* __restrict__ dy, int64_t N, int64_t C, int64_t inner,
                                 float* __restrict__ db) {
    const int64_t c = blockIdx.x;
    float acc = 0.0f;
    for (int64_t j = threadIdx.x; j < N * inner; j += blockDim.x) acc += dy[((j / inner) * C + c) * inner + j % inner];
    acc = block_sum(acc);
    if (threadIdx.x == 0) db[c] = acc;
}

__device__ __forceinline__ float activate(Activation act, float slope, float x) {
    switch (act) {
        case Activation::relu: return x > 0.0f ? x : 0.0f;
        case Activation::leaky_relu: return x > 0.0f ? x : slope * x;
        case Activation::sigmoid: return 1.0f / (1.0f + expf(-x));
        default: return tanhf(x);
    }
}

// relu/leaky_relu: `saved` is the input x; sigmoid/tanh: `saved` is the output y.
__device__ __forceinline__ float activate_grad(Activation act, float slope, float saved, float dy) {
    switch (act) {
        case Activation::relu: return saved > 0.0f ? dy : 0.0f;
        case Activation::leaky_relu: return saved > 0.0f ? dy : slope * dy;
        case Activation::sigmoid: return dy * saved * (1.0f - saved);
        default: return dy * (1.0f - saved * saved);
    }
}

__global__ void activation_forward_kernel(Activation act, float slope, int64_t n, const float* __restrict__ x,
                                          float* __restrict__ y) {
    FASTCONV_GRID_STRIDE_LOOP(i, n) { y[i] = activate(act, slope, x[i]); }
}

__global__ void activation_backward_kernel(Activation act, float slope, int64_t n, const float* __restrict__ saved,
                                           const float* __restrict__ dy, float* __restrict__ dx) {
    FASTCONV_GRID_STRIDE_LOOP(i, n) { dx[i] = activate_grad(act, slope, saved[i], dy[i]); }
}

// One block per row n of logits (N x K): loss[n] = logsumexp(z_n) - z_n[label_n], or, with
// `dlogits`, dlogits[n] = scale * (softmax(z_n) - onehot(label_n)). A label outside [0, K) gives NaN.
__global__ void softmax_xent_kernel(const float* __restrict__ logits, const int64_t* __restrict__ labels, int64_t K,
                                    float* __restrict__ loss, float* __restrict__ dlogits, float scale) {
    const int64_t n = blockIdx.x;
    const float* z = logits + n * K;
    const int64_t label = labels[n];
    const bool valid = label >= 0 && label < K;
    float m = -INFINITY;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) m = fmaxf(m, z[k]);
    m = block_max(m);
    float s = 0.0f;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) s += expf(z[k] - m);
    __shared__ float total;
    s = block_sum(s);
    if (threadIdx.x == 0) total = s;
    __syncthreads();
    if (loss && threadIdx.x == 0) loss[n] = valid ? m + logf(total) - z[label] : NAN;
    if (dlogits) {
        for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
            const float softmax = expf(z[k] - m) / total;
            dlogits[n * K + k] = valid ? scale * (softmax - (k == label ? 1.0f : 0.0f)) : NAN;
        }
    }
}

// First pass of a deterministic sum: block b writes the sum of its grid-stride share to partial[b].
__global__ void sum_partial_kernel(int64_t n, const float* __restrict__ x, float* __restrict__ partial) {
    float acc = 0.0f;
    FASTCONV_GRID_STRIDE_LOOP(i, n) { acc += x[i]; }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Second pass: one block sums the partials; out[0] = scale * total.
__global__ void sum_final_kernel(int64_t count, const float* __restrict__ partial, float scale, float* __restrict__ out) {
    float acc = 0.0f;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) out[0] = scale * acc;
}

__global__ void axpy_kernel(int64_t n, float alpha, const float* __restrict__ x, float* __restrict__ y) {
    FASTCONV_GRID_STRIDE_LOOP(i, n) { y[i] += alpha * x[i]; }
}

// torch.optim.SGD: g = grad + wd * p; buf = first ? g : momentum * buf + (1 - dampening) * g;
// g = nesterov ? g + momentum * buf : buf; p -= lr * g.   (momentum == 0: p -= lr * g, no buffer)
__global__ void sgd_kernel(int64_t n, float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ buf,
                           SgdConfig cfg) {
    FASTCONV_GRID_STRIDE_LOOP(i, n) {
        float g = grad[i] + cfg.weight_decay * param[i];
        if (cfg.momentum != 0.0f) {
            const float b = cfg.first_step ? g : cfg.momentum * buf[i] + (1.0f - cfg.dampening) * g;
            buf[i] = b;
            g = cfg.nesterov ? g + cfg.momentum * b : b;
        }
        param[i] -= cfg.lr * g;
    }
}

// torch.optim.Adam (L2 weight decay added to the gradient) or, with cfg.decoupled, AdamW (p *= 1 - lr wd first):
// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps).
__global__ void adam_kernel(int64_t n, float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ m,
                            float* __restrict__ v, AdamConfig cfg) {
    FASTCONV_GRID_STRIDE_LOOP(i, n) {
        float p = param[i];
        if (cfg.decoupled) p *= 1.0f - cfg.lr * cfg.weight_decay;
        const float g = cfg.decoupled ? grad[i] : grad[i] + cfg.weight_decay * p;
        const float mi = cfg.beta1 * m[i] + (1.0f - cfg.beta1) * g;
        const float vi = cfg.beta2 * v[i] + (1.0f - cfg.beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] = p - cfg.step_size * mi / (sqrtf(vi) / cfg.sqrt_bias_correction2 + cfg.eps);
    }
}

}  // namespace

void cuda_bias_add(float* y, const float* bias, int64_t N, int64_t C, int64_t inner) {
    const int64_t total = N * C * inner;
    if (total == 0) return;
    FASTCONV_LAUNCH(grid_1d(total, kThreads), kThreads, bias_add_kernel)(y, bias, C, inner, total);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_bias_grad(const float* dy, int64_t N, int64_t C, int64_t inner, float* db) {
    if (C == 0) return;
    if (C > INT32_MAX) throw std::invalid_argument("bias: too many channels");
    FASTCONV_LAUNCH(unsigned(C), kThreads, bias_grad_kernel)(dy, N, C, inner, db);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_activation_forward(Activation act, float slope, int64_t n, const float* x, float* y) {
    if (n == 0) return;
    FASTCONV_LAUNCH(grid_1d(n, kThreads), kThreads, activation_forward_kernel)(act, slope, n, x, y);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_activation_backward(Activation act, float slope, int64_t n, const float* saved, const float* dy, float* dx) {
    if (n == 0) return;
    FASTCONV_LAUNCH(grid_1d(n, kThreads), kThreads, activation_backward_kernel)(act, slope, n, saved, dy, dx);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_sum(int64_t n, const float* x, float scale, float* out) {
    const unsigned blocks = std::min(grid_1d(n, kThreads), unsigned(kMaxReduceBlocks));
    DeviceBuffer partial(blocks * sizeof(float));
    FASTCONV_LAUNCH(blocks, kThreads, sum_partial_kernel)(n, x, partial.floats());
    FASTCONV_CUDA_CHECK_LAUNCH();
    FASTCONV_LAUNCH(1, kThreads, sum_final_kernel)(blocks, partial.floats(), scale, out);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_softmax_cross_entropy(int64_t N, int64_t K, const float* logits, const int64_t* labels, float* loss) {
    if (K < 1) throw std::invalid_argument("logits: need at least one class");
    if (N > INT32_MAX) throw std::invalid_argument("logits: too many rows");
    if (N == 0) {  // the mean over no rows is NaN, as in PyTorch
        const float nan = NAN;
        cuda_copy_to_device(loss, &nan, sizeof(float));
        return;
    }
    DeviceBuffer rows(size_t(N) * sizeof(float));
    FASTCONV_LAUNCH(unsigned(N), kThreads, softmax_xent_kernel)(logits, labels, K, rows.floats(), nullptr, 0.0f);
    FASTCONV_CUDA_CHECK_LAUNCH();
    cuda_sum(N, rows.floats(), 1.0f / float(N), loss);
}

void cuda_softmax_cross_entropy_backward(int64_t N, int64_t K, const float* logits, const int64_t* labels,
                                         float grad_loss, float* dlogits) {
    if (K < 1) throw std::invalid_argument("logits: need at least one class");
    if (N > INT32_MAX) throw std::invalid_argument("logits: too many rows");
    if (N == 0) return;
    FASTCONV_LAUNCH(unsigned(N), kThreads, softmax_xent_kernel)(logits, labels, K, nullptr, dlogits, grad_loss / float(N));
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_axpy(int64_t n, float alpha, const float* x, float* y) {
    if (n == 0) return;
    FASTCONV_LAUNCH(grid_1d(n, kThreads), kThreads, axpy_kernel)(n, alpha, x, y);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_sgd_step(int64_t n, float* param, const float* grad, float* momentum_buffer, const SgdConfig& cfg) {
    if (cfg.momentum != 0.0f && momentum_buffer == nullptr)
        throw std::invalid_argument("momentum_buffer: required when momentum != 0");
    if (n == 0) return;
    FASTCONV_LAUNCH(grid_1d(n, kThreads), kThreads, sgd_kernel)(n, param, grad, momentum_buffer, cfg);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_adam_step(int64_t n, float* param, const float* grad, float* m, float* v, const AdamConfig& cfg) {
    if (n == 0) return;
    FASTCONV_LAUNCH(grid_1d(n, kThreads), kThreads, adam_kernel)(n, param, grad, m, v, cfg);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

}  // namespace fastconv
