// conv2d `direct` on the GPU: the definition, one thread per output element, all passes gather
// (no atomics, so results are deterministic), any stride, padding, dilation and groups.
//   forward:      a thread computes output pixel (n, p, q) for kKB consecutive output channels of
//                 one group, reading each input value once for all kKB (x loads coalesce along q;
//                 the weight loads are the same address across a warp, i.e. broadcasts).
//   input grad:   a thread computes dx[n, c, h, w] by visiting the (r, s) taps whose output
//                 position p = (h + pad - r*dil) / stride is whole and in range.
//   weight grad:  a block reduces the filter plane dw[k, c, :, :] over N*P*Q, all taps at once
//                 (one block per weight element for filters over 32 taps).
// Meant for small channel counts (LeNet) and depthwise layers, where GEMM tiles would be mostly
// empty; im2col/GEMM wins once C*R*S and K are large. Not yet measured on a GPU.
#include <cuda_runtime.h>

#include "block_reduce.cuh"
#include "cuda_check.cuh"
#include "launch.h"

namespace fastconv {
namespace {

constexpr int kThreads = kReduceThreads;
constexpr int kKB = 4;  // output channels per thread in the forward pass

__global__ void conv2d_direct_forward_kernel(Conv2dParams p, const float* __restrict__ x,
                                             const float* __restrict__ w, const float* __restrict__ bias,
                                             float* __restrict__ y) {
    const int64_t P = p.P(), Q = p.Q(), Cg = p.C_per_group(), Kg = p.K_per_group();
    const int64_t kb_per_group = (Kg + kKB - 1) / kKB, kb_total = kb_per_group * p.groups;
    const int64_t RS = p.R * p.S;
    const int64_t total = p.N * kb_total * P * Q;
    FASTCONV_GRID_STRIDE_LOOP(idx, total) {
        const int64_t q = idx % Q, op = idx / Q;
        const int64_t pp = op % P, okb = op / P;
        const int64_t kb = okb % kb_total, n = okb / kb_total;
        const int64_t g = kb / kb_per_group;
        const int64_t k_local = (kb % kb_per_group) * kKB;
        const int64_t k0 = g * Kg + k_local;
        const int count = int(Kg - k_local < kKB ? Kg - k_local : kKB);
        float acc[kKB] = {};
        const float* x_n = x + (n * p.C + g * Cg) * p.H * p.W;
        const int64_t h0 = pp * p.stride_h - p.pad_h, w0 = q * p.stride_w - p.pad_w;
        for (int64_t c = 0; c < Cg; ++c) {
            const float* x_c = x_n + c * p.H * p.W;
            const float* w_c = w + (k0 * Cg + c) * RS;  // w[k0, c, :, :]
            for (int64_t r = 0; r < p.R; ++r) {
                const int64_t h = h0 + r * p.dil_h;
                if (h < 0 || h >= p.H) continue;
                for (int64_t s = 0; s < p.S; ++s) {
                    const int64_t ww = w0 + s * p.dil_w;
                    if (ww < 0 || ww >= p.W) continue;
                    const float xv = x_c[h * p.W + ww];
#pragma unroll
                    for (int j = 0; j < kKB; ++j)
                        if (j < count) acc[j] = fmaf(xv, w_c[j * Cg * RS + r * p.S + s], acc[j]);
                }
            }
        }
        float* y_n = y + (n * p.K + k0) * P * Q + pp * Q + q;
#pragma unroll
        for (int j = 0; j < kKB; ++j)
            if (j < count) y_n[j * P * Q] = acc[j] + (bias ? bias[k0 + j] : 0.0f);
    }
}

__global__ void conv2d_direct_backward_input_kernel(Conv2dParams p, const float* __restrict__ dy,
                                                    const float* __restrict__ w, float* __restrict__ dx) {
    const int64_t P = p.P(), Q = p.Q(), Cg = p.C_per_group(), Kg = p.K_per_group();
    const int64_t total = p.N * p.C * p.H * p.W;
    FASTCONV_GRID_STRIDE_LOOP(idx, total) {
        const int64_t wi = idx % p.W, t1 = idx / p.W;
        const int64_t h = t1 % p.H, t2 = t1 / p.H;
        const int64_t c = t2 % p.C, n = t2 / p.C;
        const int64_t g = c / Cg, c_local = c % Cg;
        float acc = 0.0f;
        for (int64_t r = 0; r < p.R; ++r) {
            const int64_t hp = h + p.pad_h - r * p.dil_h;  // = pp * stride_h for the output row pp
            if (hp < 0 || hp % p.stride_h != 0) continue;
            const int64_t pp = hp / p.stride_h;
            if (pp >= P) continue;
            for (int64_t s = 0; s < p.S; ++s) {
                const int64_t wp = wi + p.pad_w - s * p.dil_w;
                if (wp < 0 || wp % p.stride_w != 0) continue;
                const int64_t q = wp / p.stride_w;
                if (q >= Q) continue;
                const float* dy_at = dy + (n * p.K + g * Kg) * P * Q + pp * Q + q;
                const float* w_at = w + ((g * Kg) * Cg + c_local) * p.R * p.S + r * p.S + s;
                for (int64_t k = 0; k < Kg; ++k) acc = fmaf(dy_at[k * P * Q], w_at[k * Cg * p.R * p.S], acc);
            }
        }
        dx[idx] = acc;
    }
}

// One block per filter plane (k, c_local): each thread accumulates all R*S taps (at most kMaxTaps)
// over its grid-stride share of (n, p, q) in registers, then the block sums each tap's 256 partials
// in a fixed order (deterministic). One reduction per plane instead of one per weight element.
constexpr int kMaxTaps = 32;

__global__ void conv2d_direct_backward_weight_kernel(Conv2dParams p, const float* __restrict__ x,
                                                     const float* __restrict__ dy, float* __restrict__ dw) {
    __shared__ float partial[kMaxTaps][kThreads];
    const int64_t P = p.P(), Q = p.Q(), Cg = p.C_per_group(), Kg = p.K_per_group();
    const int RS = int(p.R * p.S);
    const int64_t c_local = blockIdx.x % Cg, k = blockIdx.x / Cg;
    const int64_t c = (k / Kg) * Cg + c_local;
    const int64_t total = p.N * P * Q;
    float acc[kMaxTaps];
    for (int t = 0; t < kMaxTaps; ++t) acc[t] = 0.0f;
    for (int64_t i = threadIdx.x; i < total; i += blockDim.x) {
        const int64_t q = i % Q, t = i / Q;
        const int64_t pp = t % P, n = t / P;
        const float g = dy[((n * p.K + k) * P + pp) * Q + q];
        const float* xc = x + (n * p.C + c) * p.H * p.W;
        for (int tap = 0; tap < RS; ++tap) {
            const int64_t r = tap / p.S, s = tap % p.S;
            const int64_t h = pp * p.stride_h - p.pad_h + r * p.dil_h;
            const int64_t ww = q * p.stride_w - p.pad_w + s * p.dil_w;
            if (h >= 0 && h < p.H && ww >= 0 && ww < p.W) acc[tap] = fmaf(xc[h * p.W + ww], g, acc[tap]);
        }
    }
    for (int tap = 0; tap < RS; ++tap) partial[tap][threadIdx.x] = acc[tap];
    __syncthreads();
    for (int tap = threadIdx.x; tap < RS; tap += blockDim.x) {
        float sum = 0.0f;
        for (int j = 0; j < kThreads; ++j) sum += partial[tap][j];
        dw[(k * Cg + c_local) * RS + tap] = sum;
    }
}

// Filters with more than kMaxTaps taps: one block per weight element (k, c, r, s).
__global__ void conv2d_direct_backward_weight_large_kernel(Conv2dParams p, const float* __restrict__ x,
                                                           const float* __restrict__ dy, float* __restrict__ dw) {
    const int64_t P = p.P(), Q = p.Q(), Cg = p.C_per_group(), Kg = p.K_per_group();
    const int64_t widx = blockIdx.x;  // (k, c_local, r, s), row-major over the weight shape
    const int64_t s = widx % p.S, t1 = widx / p.S;
    const int64_t r = t1 % p.R, t2 = t1 / p.R;
    const int64_t c_local = t2 % Cg, k = t2 / Cg;
    const int64_t c = (k / Kg) * Cg + c_local;
    const int64_t total = p.N * P * Q;
    float acc = 0.0f;
    for (int64_t i = threadIdx.x; i < total; i += blockDim.x) {
        const int64_t q = i % Q, t = i / Q;
        const int64_t pp = t % P, n = t / P;
        const int64_t h = pp * p.stride_h - p.pad_h + r * p.dil_h;
        const int64_t ww = q * p.stride_w - p.pad_w + s * p.dil_w;
        if (h < 0 || h >= p.H || ww < 0 || ww >= p.W) continue;
        acc = fmaf(x[((n * p.C + c) * p.H + h) * p.W + ww], dy[((n * p.K + k) * P + pp) * Q + q], acc);
    }
    acc = block_reduce(acc, SumOp{});
    if (threadIdx.x == 0) dw[widx] = acc;
}

}  // namespace

void cuda_conv2d_direct_forward(const Conv2dParams& p, const float* x, const float* w, const float* bias,
                                float* y) {
    p.validate();
    const int64_t kb_total = (p.K_per_group() + kKB - 1) / kKB * p.groups;
    const int64_t total = checked_mul(checked_mul(p.N, kb_total, "output"), checked_mul(p.P(), p.Q(), "output"), "output");
    if (total == 0) return;
    FASTCONV_LAUNCH(grid_1d(total, kThreads), kThreads, conv2d_direct_forward_kernel)(p, x, w, bias, y);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_conv2d_direct_backward_input(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
    p.validate();
    const int64_t total = p.input_numel();
    if (total == 0) return;
    FASTCONV_LAUNCH(grid_1d(total, kThreads), kThreads, conv2d_direct_backward_input_kernel)(p, dy, w, dx);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

void cuda_conv2d_direct_backward_weight(const Conv2dParams& p, const float* x, const float* dy, float* dw) {
    p.validate();
    if (p.weight_numel() > INT32_MAX) throw std::invalid_argument("weight: too many elements for the direct weight gradient");
    if (p.weight_numel() == 0) return;
    if (p.R * p.S <= kMaxTaps) {
        FASTCONV_LAUNCH(unsigned(p.K * p.C_per_group()), kThreads, conv2d_direct_backward_weight_kernel)(p, x, dy, dw);
    } else {
        FASTCONV_LAUNCH(unsigned(p.weight_numel()), kThreads, conv2d_direct_backward_weight_large_kernel)(p, x, dy, dw);
    }
    FASTCONV_CUDA_CHECK_LAUNCH();
}

}  // namespace fastconv
