// Plain C++ declarations of the CUDA launchers (no CUDA types), so the bindings (cuda/bindings) can call them.
// Every launcher checks its launch and throws fastconv::CudaError on failure (std::bad_alloc when the
// device is out of memory). Launchers run on the current device (set by DeviceGuard) and enqueue on
// the legacy default stream without synchronizing: work is ordered, results are ready after
// cuda_synchronize() or a device-to-host copy. Pointers are device pointers unless named *_host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/params.h"

namespace fastconv {

// A failed CUDA runtime call or kernel launch: the call, file:line and CUDA's message.
class CudaError : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

// ---- device queries (device.cu) -------------------------------------------------------------------
// Device queries that never throw when there is no driver or no GPU: they report zero devices.
int cuda_device_count();
std::string cuda_device_name(int device);
std::string cuda_runtime_version();
void cuda_synchronize();

// y[i] = alpha * x[i] + y[i] on host arrays, through the device: the smallest end-to-end check
// that the toolchain, the runtime and a GPU work together.
void cuda_saxpy_host(int64_t n, float alpha, const float* x, float* y);

// ---- memory (device_buffer.cu) ----------------------------------------------------------------------
// Makes `device` current for its lifetime and restores the previous device afterwards.
class DeviceGuard {
   public:
    explicit DeviceGuard(int device);
    ~DeviceGuard();
    DeviceGuard(const DeviceGuard&) = delete;
    DeviceGuard& operator=(const DeviceGuard&) = delete;

   private:
    int previous_;
};

// Caching allocator on the current device: freed blocks go to a free list keyed by their rounded
// size and are handed out again, so steady-state training never calls cudaMalloc/cudaFree.
// cuda_alloc(0) returns nullptr; out of memory (after releasing the cache once) throws std::bad_alloc.
void* cuda_alloc(size_t bytes);
void cuda_free(void* ptr);  // nullptr is ignored; the block must come from cuda_alloc
void cuda_empty_cache();    // cudaFree every cached (unused) block on every device
size_t cuda_allocated_bytes();  // bytes in blocks handed out and not yet freed (rounded sizes)
size_t cuda_cached_bytes();     // bytes in free lists, ready for reuse

// An owned block from cuda_alloc, for launchers' scratch space; returned to the cache on scope exit.
class DeviceBuffer {
   public:
    explicit DeviceBuffer(size_t bytes) : ptr_(cuda_alloc(bytes)) {}
    ~DeviceBuffer() { cuda_free(ptr_); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    float* floats() const { return static_cast<float*>(ptr_); }

   private:
    void* ptr_;
};

// Copies on the legacy default stream; the host ones return when the copy is complete.
void cuda_copy_to_device(void* dst, const void* src_host, size_t bytes);
void cuda_copy_to_host(void* dst_host, const void* src, size_t bytes);
void cuda_copy_device(void* dst, const void* src, size_t bytes);
void cuda_fill_zero(void* dst, size_t bytes);
// Makes DLPack consumer `stream` (1: legacy default, 2: per-thread default, else a cudaStream_t)
// wait for the work queued so far on the legacy default stream.
void cuda_stream_wait_default(uintptr_t stream);

// ---- SGEMM (sgemm.cu) ----------------------------------------------------------------------------
// For b < batch: C_b = alpha * op(A_b) @ op(B_b) + beta * C_b, FP32 arithmetic (no TF32).
// op(A) is M x K: A is stored row-major M x K (row stride lda) or, with trans_a, K x M. op(B) is
// K x N: B is stored K x N or, with trans_b, N x K. C is M x N with row stride ldc. X_b = X +
// b * stride_x (stride 0 shares one matrix across the batch). beta == 0 never reads C.
struct SgemmArgs {
    int64_t M = 0, N = 0, K = 0;
    float alpha = 1.0f, beta = 0.0f;
    const float* A = nullptr;
    int64_t lda = 0;
    bool trans_a = false;
    int64_t stride_a = 0;
    const float* B = nullptr;
    int64_t ldb = 0;
    bool trans_b = false;
    int64_t stride_b = 0;
    float* C = nullptr;
    int64_t ldc = 0;
    int64_t stride_c = 0;
    int64_t batch = 1;
};
void cuda_sgemm(const SgemmArgs& args);

// ---- conv2d (conv2d_direct.cu, conv2d_im2col.cu) ----------------------------------------------------
// Same contract as csrc/conv/conv2d.h: validated Conv2dParams, dense NCHW / KCRS arrays, outputs
// fully overwritten. im2col keeps its scratch (columns, partial sums) under workspace_limit bytes
// by chunking the batch (one image at least).
void cuda_conv2d_direct_forward(const Conv2dParams& p, const float* x, const float* w, const float* bias, float* y);
void cuda_conv2d_direct_backward_input(const Conv2dParams& p, const float* dy, const float* w, float* dx);
void cuda_conv2d_direct_backward_weight(const Conv2dParams& p, const float* x, const float* dy, float* dw);
void cuda_conv2d_im2col_forward(const Conv2dParams& p, const float* x, const float* w, const float* bias, float* y,
                                size_t workspace_limit);
void cuda_conv2d_im2col_backward_input(const Conv2dParams& p, const float* dy, const float* w, float* dx,
                                       size_t workspace_limit);
void cuda_conv2d_im2col_backward_weight(const Conv2dParams& p, const float* x, const float* dy, float* dw,
                                        size_t workspace_limit);

// ---- pooling (pool2d.cu), PyTorch semantics ----------------------------------------------------------
// indices (may be nullptr): int64 argmax positions h * W + w within each (n, c) plane.
void cuda_max_pool2d_forward(const Pool2dParams& p, const float* x, float* y, int64_t* indices);
// dx (planes x HW) = scatter-add of dy (planes x PQ) at indices; out-of-range indices are skipped.
void cuda_max_pool2d_backward(int64_t planes, int64_t HW, int64_t PQ, const float* dy, const int64_t* indices,
                              float* dx);
void cuda_avg_pool2d_forward(const Pool2dParams& p, const float* x, float* y);
void cuda_avg_pool2d_backward(const Pool2dParams& p, const float* dy, float* dx);
void cuda_adaptive_avg_pool2d_forward(int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW, const float* x,
                                      float* y);
void cuda_adaptive_avg_pool2d_backward(int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW, const float* dy,
                                       float* dx);

// ---- training kernels (elementwise.cu) ------------------------------------------------------------
// y[n, c, i] += bias[c] for y of shape (N, C, inner); db[c] = sum over n, i of dy[n, c, i].
void cuda_bias_add(float* y, const float* bias, int64_t N, int64_t C, int64_t inner);
void cuda_bias_grad(const float* dy, int64_t N, int64_t C, int64_t inner, float* db);

enum class Activation : int { relu, leaky_relu, sigmoid, tanh };
// y = act(x); `slope` is leaky_relu's negative slope.
void cuda_activation_forward(Activation act, float slope, int64_t n, const float* x, float* y);
// dx = dy * act'(.): `saved` is the input x for relu/leaky_relu, the output y for sigmoid/tanh.
void cuda_activation_backward(Activation act, float slope, int64_t n, const float* saved, const float* dy, float* dx);

// out[0] = scale * sum(x[0 .. n)), deterministic (a fixed two-pass tree).
void cuda_sum(int64_t n, const float* x, float scale, float* out);
// loss[0] = mean over rows of (logsumexp(logits[n]) - logits[n, labels[n]]); logits N x K, labels int64.
// A label outside [0, K) makes that row (and so the mean) NaN: the device cannot raise.
void cuda_softmax_cross_entropy(int64_t N, int64_t K, const float* logits, const int64_t* labels, float* loss);
// dlogits = grad_loss / N * (softmax(logits) - onehot(labels)).
void cuda_softmax_cross_entropy_backward(int64_t N, int64_t K, const float* logits, const int64_t* labels,
                                         float grad_loss, float* dlogits);
// y += alpha * x (gradient accumulation).
void cuda_axpy(int64_t n, float alpha, const float* x, float* y);

// torch.optim.SGD, one step in place. momentum_buffer may be nullptr only when momentum == 0.
struct SgdConfig {
    float lr = 0.01f, momentum = 0.0f, dampening = 0.0f, weight_decay = 0.0f;
    bool nesterov = false, first_step = false;  // first_step: the buffer is set to the gradient
};
void cuda_sgd_step(int64_t n, float* param, const float* grad, float* momentum_buffer, const SgdConfig& cfg);

// torch.optim.Adam, one step in place; the host computes the bias corrections of step t.
struct AdamConfig {
    float step_size = 1e-3f;              // lr / (1 - beta1^t)
    float sqrt_bias_correction2 = 1.0f;   // sqrt(1 - beta2^t)
    float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
    float lr = 1e-3f;        // used only by decoupled weight decay
    bool decoupled = false;  // AdamW: p *= 1 - lr * weight_decay before the step, instead of L2 in the gradient
};
void cuda_adam_step(int64_t n, float* param, const float* grad, float* m, float* v, const AdamConfig& cfg);

// ---- array arithmetic (array_ops.cu) -----------------------------------------------------------------
// A shape and element strides (0 broadcasts an axis); one struct passed by value to kernels.
struct StridedLayout {
    static constexpr int kMaxDims = 8;
    int ndim = 0;
    int64_t shape[kMaxDims] = {};
    int64_t strides[kMaxDims] = {};
};

enum class BinaryOp : int { add, sub, mul, div, maximum, greater };
// out (contiguous, shape.shape) = op(a, b), each read through its own strides (a_layout.strides,
// b_layout.strides; their shapes are ignored). greater gives 1.0f / 0.0f.
void cuda_binary(BinaryOp op, const StridedLayout& shape, const float* a, const StridedLayout& a_layout, const float* b,
                 const StridedLayout& b_layout, float* out);

// affine: alpha x + beta; reciprocal: alpha / x; power: beta x^alpha; exp; log; rsqrt: 1 / sqrt(x + alpha);
// fill: alpha (x unread, may be nullptr).
enum class UnaryOp : int { affine, reciprocal, power, exp, log, rsqrt, fill };
void cuda_unary(UnaryOp op, float alpha, float beta, int64_t n, const float* x, float* y);

// dst[dst_layout offset of i] = src[src_layout offset of i] for every index i of shape.shape
// (transpose, broadcast_to, slices, cat); itemsize 4 (float32) or 8 (int64).
void cuda_strided_copy(size_t itemsize, const StridedLayout& shape, const void* src, const StridedLayout& src_layout,
                       void* dst, const StridedLayout& dst_layout);

enum class ReduceOp : int { sum, max };
// out[o] for o over `kept` (row-major) = scale * sum (or max, unscaled) over `reduced` of
// x[kept offset of o + reduced offset of j]; strides in elements of x.
void cuda_reduce(ReduceOp op, const StridedLayout& kept, const StridedLayout& reduced, const float* x, float scale,
                 float* out);

// out[r] = first index of the maximum of row r of x (rows x cols).
void cuda_argmax_rows(int64_t rows, int64_t cols, const float* x, int64_t* out);
// hits[r] = 1.0f if the argmax of row r equals labels[r], else 0.0f.
void cuda_argmax_hits(int64_t rows, int64_t cols, const float* x, const int64_t* labels, float* hits);
// mask[i] = (uniform(seed, i) >= p) / (1 - p), y = x * mask; the mask is drawn on the device.
void cuda_dropout(int64_t n, float p, uint64_t seed, const float* x, float* y, float* mask);
// y = alpha x + beta y in place (running statistics).
void cuda_axpby(int64_t n, float alpha, const float* x, float beta, float* y);
// y += value for int64 y (batch counters).
void cuda_add_int64(int64_t n, int64_t value, int64_t* y);

}  // namespace fastconv
