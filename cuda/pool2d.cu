// max / average pooling on the GPU with PyTorch's semantics (padding, ceil_mode, dilation (max),
// count_include_pad and divisor_override (average)),
// one thread per output element (forward) or input element (average backward); max backward
// scatters grad_output to the saved argmax positions with atomicAdd (windows may overlap).
// Adaptive average pooling forward and backward are gathers too.
// Indices are int64 positions h * W + w inside each (n, c) plane, as in PyTorch.
// Pooling is memory-bound: the bar is the copy bandwidth (2.9 TB/s on an H100). Not yet measured.
#include <cuda_runtime.h>

#include <cmath>

#include "cuda_check.cuh"
#include "launch.h"

namespace fastconv {
namespace {

constexpr int kThreads = 256;

__global__ void max_pool2d_forward_kernel(Pool2dParams p, const float* __restrict__ x, float* __restrict__ y,
                                          int64_t* __restrict__ indices) {
    const int64_t P = p.P(), Q = p.Q();
    const int64_t total = p.N * p.C * P * Q;
    FASTCONV_GRID_STRIDE_LOOP(idx, total) {
        const int64_t q = idx % Q, t = idx / Q;
        const int64_t pp = t % P, nc = t / P;
        // Taps h0 + i * dil_h; the first inside the input, and the end of the dilated window.
        const int64_t h0 = pp * p.stride_h - p.pad_h, w0 = q * p.stride_w - p.pad_w;
        const int64_t h_begin = h0 < 0 ? h0 + (-h0 + p.dil_h - 1) / p.dil_h * p.dil_h : h0;
        const int64_t w_begin = w0 < 0 ? w0 + (-w0 + p.dil_w - 1) / p.dil_w * p.dil_w : w0;
        const int64_t h_stop = h0 + p.dil_h * (p.kernel_h - 1) + 1, w_stop = w0 + p.dil_w * (p.kernel_w - 1) + 1;
        const int64_t h_end = h_stop < p.H ? h_stop : p.H, w_end = w_stop < p.W ? w_stop : p.W;
        const float* plane = x + nc * p.H * p.W;
        // The window always holds an input element (the output-size rule and validate() guarantee it).
        float best = -INFINITY;
        int64_t best_at = h_begin * p.W + w_begin;
        for (int64_t h = h_begin; h < h_end; h += p.dil_h)
            for (int64_t w = w_begin; w < w_end; w += p.dil_w) {
                const float v = plane[h * p.W + w];
                if (v > best || isnan(v)) {  // first maximum wins; NaN propagates (PyTorch's rule)
                    best = v;
                    best_at = h * p.W + w;
                }
            }
        y[idx] = best;
        if (indices) indices[idx] = best_at;
    }
}

// dx must be zero beforehand. Out-of-range indices are skipped rather than written out of bounds.
__global__ void max_pool2d_backward_kernel(int64_t planes, int64_t PQ, int64_t HW, const float* __restrict__ dy,
                                           const int64_t* __restrict__ indices, float* __restrict__ dx) {
    const int64_t total = planes * PQ;
    FASTCONV_GRID_STRIDE_LOOP(idx, total) {
        const int64_t at = indices[idx];
        if (at < 0 || at >= HW) continue;
        atomicAdd(dx + (idx / PQ) * HW + at, dy[idx]);
    }
}

// PyTorch's average-pooling window: [start, end) clipped to the padded input gives the
// count_include_pad divisor, clipped to the input gives the summed elements.
struct AvgWindow {
    int64_t h_begin, h_end, w_begin, w_end;
    float divisor;
};

__device__ AvgWindow avg_window(const Pool2dParams& p, int64_t pp, int64_t q) {
    int64_t h_begin = pp * p.stride_h - p.pad_h, w_begin = q * p.stride_w - p.pad_w;
    int64_t h_end = h_begin + p.kernel_h < p.H + p.pad_h ? h_begin + p.kernel_h : p.H + p.pad_h;
    int64_t w_end = w_begin + p.kernel_w < p.W + p.pad_w ? w_begin + p.kernel_w : p.W + p.pad_w;
    const int64_t padded_count = (h_end - h_begin) * (w_end - w_begin);
    h_begin = h_begin < 0 ? 0 : h_begin;
    w_begin = w_begin < 0 ? 0 : w_begin;
    h_end = h_end < p.H ? h_end : p.H;
    w_end = w_end < p.W ? w_end : p.W;
    const int64_t count = p.divisor_override ? p.divisor_override
                          : p.count_include_pad ? padded_count
                                                : (h_end - h_begin) * (w_end - w_begin);
    return AvgWindow{h_begin, h_end, w_begin, w_end, float(count > 0 ? count : 1)};
}

__global__ void avg_pool2d_forward_kernel(Pool2dParams p, const float* __restrict__ x, float* __restrict__ y) {
    const int64_t P = p.P(), Q = p.Q();
    const int64_t total = p.N * p.C * P * Q;
    FASTCONV_GRID_STRIDE_LOOP(idx, total) {
        const int64_t q = idx % Q, t = idx / Q;
        const int64_t pp = t % P, nc = t / P;
        const AvgWindow win = avg_window(p, pp, q);
        const float* plane = x + nc * p.H * p.W;
        float sum = 0.0f;
        for (int64_t h = win.h_begin; h < win.h_end; ++h)
            for (int64_t w = win.w_begin; w < win.w_end; ++w) sum += plane[h * p.W + w];
        y[idx] = sum / win.divisor;
    }
}

// The output rows whose window [o*stride - pad, o*stride - pad + kernel) contains input row i:
// o in [ceil((i + pad - kernel + 1) / stride), floor((i + pad) / stride)] intersected with [0, out).
__device__ void windows_containing(int64_t i, int64_t kernel, int64_t stride, int64_t pad, int64_t out,
                                   int64_t* first, int64_t* last) {
    const int64_t lo = i + pad - kernel + 1;
    *first = lo <= 0 ? 0 : (lo + stride - 1) / stride;
    const int64_t hi = (i + pad) / stride;
    *last = hi < out - 1 ? hi : out - 1;
}

__global__ void avg_pool2d_backward_kernel(Pool2dParams p, const float* __restrict__ dy, float* __restrict__ dx) {
    const int64_t P = p.P(), Q = p.Q();
    const int64_t total = p.N * p.C * p.H * p.W;
    FASTCONV_GRID_STRIDE_LOOP(idx, total) {
        const int64_t w = idx % p.W, t = idx / p.W;
        const int64_t h = t % p.H, nc = t / p.H;
        int64_t p_first, p_last, q_first, q_last;
        windows_containing(h, p.kernel_h, p.stride_h, p.pad_h, P, &p_first, &p_last);
        windows_containing(w, p.kernel_w, p.stride_w, p.pad_w, Q, &q_first, &q_last);
        const float* dy_plane = dy + nc * P * Q;
        float acc = 0.0f;
        for (int64_t pp = p_first; pp <= p_last; ++pp)
            for (int64_t q = q_first; q <= q_last; ++q) acc += dy_plane[pp * Q + q] / avg_window(p, pp, q).divisor;
        dx[idx] = acc;
    }
}

// Adaptive average pooling: output cell o covers [floor(o * in / out), ceil((o + 1) * in / out)).
__global__ void adaptive_avg_pool2d_forward_kernel(int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                                   const float* __restrict__ x, float* __restrict__ y) {
    const int64_t total = planes * OH * OW;
    FASTCONV_GRID_STRIDE_LOOP(idx, total) {
        const int64_t ow = idx % OW, t = idx / OW;
        const int64_t oh = t % OH, nc = t / OH;
        const int64_t h_begin = oh * H / OH, h_end = ((oh + 1) * H + OH - 1) / OH;
        const int64_t w_begin = ow * W / OW, w_end = ((ow + 1) * W + OW - 1) / OW;
        const float* plane = x + nc * H * W;
        float sum = 0.0f;
        for (int64_t h = h_begin; h < h_end; ++h)
            for (int64_t w = w_begin; w < w_end; ++w) sum += plane[h * W + w];
        y[idx] = sum / float((h_end - h_begin) * (w_end - w_begin));
    }
}

// dx[h, w] = sum over the output cells whose window contains (h, w) of dy / (window size).
__global__ void adaptive_avg_pool2d_backward_kernel(int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                                    const float* __restrict__ dy, float* __restrict__ dx) {
    const int64_t total = planes * H * W;
    FASTCONV_GRID_STRIDE_LOOP(idx, total) {
        const int64_t w = idx % W, t = idx / W;
        const int64_t h = t % H, nc = t / H;
        const float* dy_plane = dy + nc * OH * OW;
        float acc = 0.0f;
        for (int64_t oh = 0; oh < OH; ++oh) {
            const int64_t h_begin = oh * H / OH, h_end = ((oh + 1) * H + OH - 1) / OH;
            if (h < h_begin || h >= h_end) continue;
            for (int64_t ow = 0; ow < OW; ++ow) {
                const int64_t w_begin = ow * W / OW, w_end = ((ow + 1) * W + OW - 1) / OW;
                if (w < w_begin || w >= w_end) continue;
                acc += dy_plane[oh * OW + ow] / float((h_end - h_begin) * (w_end - w_begin));
            }
        }
        dx[idx] = acc;
    }
}

int64_t pooled_numel(const Pool2dParams& p) {
    return checked_mul(checked_mul(p.N, p.C, "output"), checked_mul(p.P(), p.Q(), "output"), "output");
}

}  // namespace

void cuda_max_pool2d_forward(const Pool2dParams& p, const float* x, float* y, int64_t* indices) {
    p.validate_max();
    const int64_t total = pooled_numel(p);
    if (total == 0) return;
    FASTCONV_LAUNCH(grid_1d(total, kThreads), kThreads, max_pool2d_forward_kernel)(p, x, y, indices);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_max_pool2d_backward(int64_t planes, int64_t HW, int64_t PQ, const float* dy, const int64_t* indices,
                              float* dx) {
    const int64_t in_total = checked_mul(planes, HW, "grad_input");
    const int64_t total = checked_mul(planes, PQ, "grad_output");
    cuda_fill_zero(dx, size_t(in_total) * sizeof(float));
    if (total == 0) return;
    FASTCONV_LAUNCH(grid_1d(total, kThreads), kThreads, max_pool2d_backward_kernel)(planes, PQ, HW, dy, indices, dx);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_avg_pool2d_forward(const Pool2dParams& p, const float* x, float* y) {
    p.validate_avg();
    const int64_t total = pooled_numel(p);
    if (total == 0) return;
    FASTCONV_LAUNCH(grid_1d(total, kThreads), kThreads, avg_pool2d_forward_kernel)(p, x, y);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_avg_pool2d_backward(const Pool2dParams& p, const float* dy, float* dx) {
    p.validate_avg();
    const int64_t total = checked_mul(checked_mul(p.N, p.C, "input"), checked_mul(p.H, p.W, "input"), "input");
    if (total == 0) return;
    FASTCONV_LAUNCH(grid_1d(total, kThreads), kThreads, avg_pool2d_backward_kernel)(p, dy, dx);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_adaptive_avg_pool2d_forward(int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW, const float* x,
                                      float* y) {
    if (H < 1 || W < 1 || OH < 1 || OW < 1) throw std::invalid_argument("adaptive_avg_pool2d: sizes must be positive");
    const int64_t total = checked_mul(planes, checked_mul(OH, OW, "output"), "output");
    if (total == 0) return;
    FASTCONV_LAUNCH(grid_1d(total, kThreads), kThreads, adaptive_avg_pool2d_forward_kernel)(planes, H, W, OH, OW, x, y);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_adaptive_avg_pool2d_backward(int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW, const float* dy,
                                       float* dx) {
    if (H < 1 || W < 1 || OH < 1 || OW < 1) throw std::invalid_argument("adaptive_avg_pool2d: sizes must be positive");
    const int64_t total = checked_mul(planes, checked_mul(H, W, "input"), "input");
    if (total == 0) return;
    FASTCONV_LAUNCH(grid_1d(total, kThreads), kThreads, adaptive_avg_pool2d_backward_kernel)(planes, H, W, OH, OW, dy, dx);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

}  // namespace fastconv
