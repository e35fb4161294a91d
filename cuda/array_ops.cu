// Array arithmetic for autograd and nn.functional on the device: numpy-style broadcasting binary
// ops, unary maps, strided copies (transpose, broadcast_to, slices, cat), axis reductions, row
// argmax, dropout with an on-device mask and in-place updates. Index math is int64 throughout;
// reductions are deterministic (one block per output, a fixed tree, no float atomics).
// Not yet measured on a GPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "block_reduce.cuh"
#include "cuda_check.cuh"
#include "launch.h"

namespace fastconv {
namespace {

constexpr int kThreads = kReduceThreads;

// Element offset of flat (row-major over `shape`) index `i` under `strides`.
__device__ __forceinline__ int64_t strided_offset(const StridedLayout& l, const int64_t* strides, int64_t i) {
    int64_t off = 0;
    for (int d = l.ndim - 1; d >= 0; --d) {
        const int64_t idx = i % l.shape[d];
        i /= l.shape[d];
        off += idx * strides[d];
    }
    return off;
}

__device__ __forceinline__ float apply_binary(BinaryOp op, float a, float b) {
    switch (op) {
        case BinaryOp::add: return a + b;
        case BinaryOp::sub: return a - b;
        case BinaryOp::mul: return a * b;
        case BinaryOp::div: return a / b;
        case BinaryOp::maximum: return a > b || isnan(a) ? a : b;
        default: return a > b ? 1.0f : 0.0f;  // greater
    }
}

// out (contiguous, `l.shape`) = op(a[strided], b[strided]); a stride of 0 broadcasts that axis.
__global__ void binary_kernel(BinaryOp op, StridedLayout l, const float* __restrict__ a, StridedLayout la,
                              const float* __restrict__ b, StridedLayout lb, float* __restrict__ out, int64_t n) {
    FASTCONV_GRID_STRIDE_LOOP(i, n) {
        out[i] = apply_binary(op, a[strided_offset(l, la.strides, i)], b[strided_offset(l, lb.strides, i)]);
    }
}

__device__ __forceinline__ float apply_unary(UnaryOp op, float alpha, float beta, float x) {
    switch (op) {
        case UnaryOp::affine: return alpha * x + beta;
        case UnaryOp::reciprocal: return alpha / x;
        case UnaryOp::power: return beta * powf(x, alpha);
        case UnaryOp::exp: return expf(x);
        case UnaryOp::log: return logf(x);
        case UnaryOp::rsqrt: return 1.0f / sqrtf(x + alpha);
        default: return alpha;  // fill
    }
}

__global__ void unary_kernel(UnaryOp op, float alpha, float beta, int64_t n, const float* __restrict__ x,
                             float* __restrict__ y) {
    FASTCONV_GRID_STRIDE_LOOP(i, n) { y[i] = apply_unary(op, alpha, beta, op == UnaryOp::fill ? 0.0f : x[i]); }
}

// dst[dst_layout(i)] = src[src_layout(i)] over the shape of `l`.
template <typename T>
__global__ void strided_copy_kernel(StridedLayout l, const T* __restrict__ src, StridedLayout ls, T* __restrict__ dst,
                                    StridedLayout ld, int64_t n) {
    FASTCONV_GRID_STRIDE_LOOP(i, n) { dst[strided_offset(l, ld.strides, i)] = src[strided_offset(l, ls.strides, i)]; }
}

// Output o (over `kept`) = scale * reduce over `reduced` of x[kept offset + reduced offset].
__global__ void reduce_kernel(ReduceOp op, StridedLayout kept, StridedLayout reduced, int64_t n_out, int64_t n_red,
                              const float* __restrict__ x, float scale, float* __restrict__ out) {
    for (int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
        const int64_t base = strided_offset(kept, kept.strides, o);
        float acc = op == ReduceOp::sum ? 0.0f : -INFINITY;
        for (int64_t j = threadIdx.x; j < n_red; j += blockDim.x) {
            const float v = x[base + strided_offset(reduced, reduced.strides, j)];
            acc = op == ReduceOp::sum ? acc + v : fmaxf(acc, v);
        }
        acc = op == ReduceOp::sum ? block_reduce(acc, SumOp{}) : block_reduce(acc, MaxOp{});
        if (threadIdx.x == 0) out[o] = op == ReduceOp::sum ? scale * acc : acc;
    }
}

// First index of the maximum of each row (NaN counts as the maximum, as numpy's argmax).
__global__ void argmax_rows_kernel(int64_t rows, int64_t cols, const float* __restrict__ x, int64_t* __restrict__ out) {
    FASTCONV_GRID_STRIDE_LOOP(r, rows) {
        const float* row = x + r * cols;
        int64_t best = 0;
        for (int64_t c = 1; c < cols && !isnan(row[best]); ++c)
            if (row[c] > row[best] || isnan(row[c])) best = c;
        out[r] = best;
    }
}

// hits[r] = 1 when the argmax of row r equals labels[r] (accuracy without copying logits to the host).
__global__ void argmax_hits_kernel(int64_t rows, int64_t cols, const float* __restrict__ x,
                                   const int64_t* __restrict__ labels, float* __restrict__ hits) {
    FASTCONV_GRID_STRIDE_LOOP(r, rows) {
        const float* row = x + r * cols;
        int64_t best = 0;
        for (int64_t c = 1; c < cols && !isnan(row[best]); ++c)
            if (row[c] > row[best] || isnan(row[c])) best = c;
        hits[r] = best == labels[r] ? 1.0f : 0.0f;
    }
}

// A uniform float in [0, 1) from (seed, i): SplitMix64's finalizer over a counter, so every element
// draws independently and the mask never travels from the host.
__device__ __forceinline__ float uniform01(uint64_t seed, int64_t i) {
    uint64_t z = seed + uint64_t(i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return float(z >> 40) * (1.0f / 16777216.0f);  // top 24 bits: exact in float32
}

__global__ void dropout_kernel(int64_t n, float p, float scale, uint64_t seed, const float* __restrict__ x,
                               float* __restrict__ y, float* __restrict__ mask) {
    FASTCONV_GRID_STRIDE_LOOP(i, n) {
        const float m = uniform01(seed, i) >= p ? scale : 0.0f;
        mask[i] = m;
        y[i] = x[i] * m;
    }
}

__global__ void axpby_kernel(int64_t n, float alpha, const float* __restrict__ x, float beta, float* __restrict__ y) {
    FASTCONV_GRID_STRIDE_LOOP(i, n) { y[i] = alpha * x[i] + beta * y[i]; }
}

__global__ void add_int64_kernel(int64_t n, int64_t value, int64_t* __restrict__ y) {
    FASTCONV_GRID_STRIDE_LOOP(i, n) { y[i] += value; }
}

void check_layout(const StridedLayout& l) {
    if (l.ndim < 0 || l.ndim > StridedLayout::kMaxDims)
        throw std::invalid_argument("array: at most " + std::to_string(StridedLayout::kMaxDims) + " dimensions");
}

int64_t layout_size(const StridedLayout& l) {
    int64_t n = 1;
    for (int d = 0; d < l.ndim; ++d) n = checked_mul(n, l.shape[d], "array");
    return n;
}

}  // namespace

void cuda_binary(BinaryOp op, const StridedLayout& shape, const float* a, const StridedLayout& a_layout, const float* b,
                 const StridedLayout& b_layout, float* out) {
    check_layout(shape);
    const int64_t n = layout_size(shape);
    if (n == 0) return;
    FASTCONV_LAUNCH(grid_1d(n, kThreads), kThreads, binary_kernel)(op, shape, a, a_layout, b, b_layout, out, n);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_unary(UnaryOp op, float alpha, float beta, int64_t n, const float* x, float* y) {
    if (n == 0) return;
    FASTCONV_LAUNCH(grid_1d(n, kThreads), kThreads, unary_kernel)(op, alpha, beta, n, x, y);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_strided_copy(size_t itemsize, const StridedLayout& shape, const void* src, const StridedLayout& src_layout,
                       void* dst, const StridedLayout& dst_layout) {
    check_layout(shape);
    const int64_t n = layout_size(shape);
    if (n == 0) return;
    if (itemsize == 4) {
        FASTCONV_LAUNCH(grid_1d(n, kThreads), kThreads, strided_copy_kernel<float>)(
            shape, static_cast<const float*>(src), src_layout, static_cast<float*>(dst), dst_layout, n);
    } else if (itemsize == 8) {
        FASTCONV_LAUNCH(grid_1d(n, kThreads), kThreads, strided_copy_kernel<int64_t>)(
            shape, static_cast<const int64_t*>(src), src_layout, static_cast<int64_t*>(dst), dst_layout, n);
    } else {
        throw std::invalid_argument("strided copy: element size must be 4 or 8 bytes");
    }
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_reduce(ReduceOp op, const StridedLayout& kept, const StridedLayout& reduced, const float* x, float scale,
                 float* out) {
    check_layout(kept), check_layout(reduced);
    const int64_t n_out = layout_size(kept), n_red = layout_size(reduced);
    if (n_out == 0) return;
    const unsigned blocks = unsigned(std::min<int64_t>(n_out, int64_t(1) << 16));
    FASTCONV_LAUNCH(blocks, kThreads, reduce_kernel)(op, kept, reduced, n_out, n_red, x, scale, out);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_argmax_rows(int64_t rows, int64_t cols, const float* x, int64_t* out) {
    if (cols < 1) throw std::invalid_argument("argmax: the last axis is empty");
    if (rows == 0) return;
    FASTCONV_LAUNCH(grid_1d(rows, kThreads), kThreads, argmax_rows_kernel)(rows, cols, x, out);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_argmax_hits(int64_t rows, int64_t cols, const float* x, const int64_t* labels, float* hits) {
    if (cols < 1) throw std::invalid_argument("argmax: the last axis is empty");
    if (rows == 0) return;
    FASTCONV_LAUNCH(grid_1d(rows, kThreads), kThreads, argmax_hits_kernel)(rows, cols, x, labels, hits);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_dropout(int64_t n, float p, uint64_t seed, const float* x, float* y, float* mask) {
    if (!(p >= 0.0f && p < 1.0f)) throw std::invalid_argument("dropout: p must be in [0, 1)");
    if (n == 0) return;
    FASTCONV_LAUNCH(grid_1d(n, kThreads), kThreads, dropout_kernel)(n, p, 1.0f / (1.0f - p), seed, x, y, mask);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_axpby(int64_t n, float alpha, const float* x, float beta, float* y) {
    if (n == 0) return;
    FASTCONV_LAUNCH(grid_1d(n, kThreads), kThreads, axpby_kernel)(n, alpha, x, beta, y);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_add_int64(int64_t n, int64_t value, int64_t* y) {
    if (n == 0) return;
    FASTCONV_LAUNCH(grid_1d(n, kThreads), kThreads, add_int64_kernel)(n, value, y);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

}  // namespace fastconv
