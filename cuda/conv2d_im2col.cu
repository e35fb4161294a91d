// conv2d `im2col` on the GPU: unfold the input into columns, then the batched SGEMM of sgemm.cu.
// Per image n and group g (Cg = C/groups, Kg = K/groups, PQ = P*Q, CRS = C*R*S):
//   col[n]  (CRS x PQ):  col[n][(c*R + r)*S + s][p*Q + q] = x[n, c, p*sh - ph + r*dh, q*sw - pw + s*dw]
//   forward:      y[n, g]  (Kg x PQ)     = W_g (Kg x CgRS) @ col_g[n] (CgRS x PQ)      (+ bias)
//   input grad:   dcol_g[n] (CgRS x PQ)  = W_g^T @ dy[n, g],  then col2im (a gather, no atomics)
//   weight grad:  part[n][g] (Kg x CgRS) = dy[n, g] @ col_g[n]^T, then dw = sum over n of part[n]
// The batch is processed in chunks so columns + partial sums stay under `workspace_limit` bytes (at
// least one image per chunk). A 1x1, stride-1, unpadded convolution uses x itself as the columns.
// Scratch comes from the caching allocator, so repeated calls do not cudaMalloc.
// Not yet measured on a GPU.
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda_check.cuh"
#include "launch.h"

namespace fastconv {
namespace {

constexpr int kThreads = 256;

bool is_pointwise(const Conv2dParams& p) {
    return p.R == 1 && p.S == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
}

// Columns of images [n0, n0 + nb): col[n - n0][(c*R + r)*S + s][p*Q + q].
__global__ void im2col_kernel(Conv2dParams p, int64_t n0, int64_t nb, const float* __restrict__ x,
                              float* __restrict__ col) {
    const int64_t P = p.P(), Q = p.Q();
    const int64_t total = nb * p.C * p.R * p.S * P * Q;
    FASTCONV_GRID_STRIDE_LOOP(idx, total) {
        const int64_t q = idx % Q, t1 = idx / Q;
        const int64_t pp = t1 % P, t2 = t1 / P;
        const int64_t s = t2 % p.S, t3 = t2 / p.S;
        const int64_t r = t3 % p.R, t4 = t3 / p.R;
        const int64_t c = t4 % p.C, n = n0 + t4 / p.C;
        const int64_t h = pp * p.stride_h - p.pad_h + r * p.dil_h;
        const int64_t w = q * p.stride_w - p.pad_w + s * p.dil_w;
        col[idx] = (h >= 0 && h < p.H && w >= 0 && w < p.W) ? x[((n * p.C + c) * p.H + h) * p.W + w] : 0.0f;
    }
}

// dx[n, c, h, w] for images [n0, n0 + nb): the sum of the column entries that read x[n, c, h, w].
__global__ void col2im_kernel(Conv2dParams p, int64_t n0, int64_t nb, const float* __restrict__ col,
                              float* __restrict__ dx) {
    const int64_t P = p.P(), Q = p.Q();
    const int64_t total = nb * p.C * p.H * p.W;
    FASTCONV_GRID_STRIDE_LOOP(idx, total) {
        const int64_t w = idx % p.W, t1 = idx / p.W;
        const int64_t h = t1 % p.H, t2 = t1 / p.H;
        const int64_t c = t2 % p.C, n_local = t2 / p.C;
        const float* col_nc = col + (n_local * p.C + c) * p.R * p.S * P * Q;
        float acc = 0.0f;
        for (int64_t r = 0; r < p.R; ++r) {
            const int64_t hp = h + p.pad_h - r * p.dil_h;
            if (hp < 0 || hp % p.stride_h != 0 || hp / p.stride_h >= P) continue;
            for (int64_t s = 0; s < p.S; ++s) {
                const int64_t wp = w + p.pad_w - s * p.dil_w;
                if (wp < 0 || wp % p.stride_w != 0 || wp / p.stride_w >= Q) continue;
                acc += col_nc[((r * p.S + s) * P + hp / p.stride_h) * Q + wp / p.stride_w];
            }
        }
        dx[(n0 * p.C) * p.H * p.W + idx] = acc;
    }
}

// dw[i] = (accumulate ? dw[i] : 0) + sum over b < nb of part[b * count + i].
__global__ void sum_partials_kernel(int64_t count, int64_t nb, const float* __restrict__ part, bool accumulate,
                                    float* __restrict__ dw) {
    FASTCONV_GRID_STRIDE_LOOP(i, count) {
        float acc = accumulate ? dw[i] : 0.0f;
        for (int64_t b = 0; b < nb; ++b) acc += part[b * count + i];
        dw[i] = acc;
    }
}

// Images per chunk so that `floats_per_image` floats of scratch per image fit the limit.
int64_t chunk_images(int64_t N, int64_t floats_per_image, size_t workspace_limit) {
    if (floats_per_image == 0) return std::max<int64_t>(N, 1);
    const int64_t fit = int64_t(workspace_limit / sizeof(float)) / floats_per_image;
    return std::max<int64_t>(1, std::min<int64_t>(N, fit));
}

void launch_im2col(const Conv2dParams& p, int64_t n0, int64_t nb, const float* x, float* col) {
    const int64_t total = nb * p.C * p.R * p.S * p.P() * p.Q();
    FASTCONV_LAUNCH(grid_1d(total, kThreads), kThreads, im2col_kernel)(p, n0, nb, x, col);
    FASTCONV_CUDA_CHECK_LAUNCH();
}

}  // namespace

void cuda_conv2d_im2col_forward(const Conv2dParams& p, const float* x, const float* w, const float* bias, float* y,
                                size_t workspace_limit) {
    p.validate();
    if (p.N == 0) return;
    const int64_t PQ = p.P() * p.Q(), HW = p.H * p.W;
    const int64_t Cg = p.C_per_group(), Kg = p.K_per_group(), CgRS = Cg * p.R * p.S;
    const int64_t CRS = checked_mul(p.C, p.R * p.S, "columns");
    const bool pointwise = is_pointwise(p);
    const int64_t col_per_image = pointwise ? 0 : checked_mul(CRS, PQ, "columns");
    const int64_t nb_max = chunk_images(p.N, col_per_image, workspace_limit);
    DeviceBuffer col(size_t(pointwise ? 0 : checked_mul(nb_max, col_per_image, "columns")) * sizeof(float));
    for (int64_t n0 = 0; n0 < p.N; n0 += nb_max) {
        const int64_t nb = std::min(nb_max, p.N - n0);
        if (!pointwise) launch_im2col(p, n0, nb, x, col.floats());
        for (int64_t g = 0; g < p.groups; ++g) {
            SgemmArgs a;
            a.M = Kg, a.N = PQ, a.K = CgRS;
            a.A = w + g * Kg * CgRS, a.lda = CgRS, a.stride_a = 0;
            if (pointwise) {
                a.B = x + n0 * p.C * HW + g * Cg * HW, a.ldb = HW, a.stride_b = p.C * HW;
            } else {
                a.B = col.floats() + g * CgRS * PQ, a.ldb = PQ, a.stride_b = CRS * PQ;
            }
            a.C = y + (n0 * p.K + g * Kg) * PQ, a.ldc = PQ, a.stride_c = p.K * PQ;
            a.batch = nb;
            cuda_sgemm(a);
        }
    }
    if (bias) cuda_bias_add(y, bias, p.N, p.K, PQ);
}

void cuda_conv2d_im2col_backward_input(const Conv2dParams& p, const float* dy, const float* w, float* dx,
                                       size_t workspace_limit) {
    p.validate();
    if (p.N == 0) return;
    const int64_t PQ = p.P() * p.Q(), HW = p.H * p.W;
    const int64_t Cg = p.C_per_group(), Kg = p.K_per_group(), CgRS = Cg * p.R * p.S;
    const int64_t CRS = checked_mul(p.C, p.R * p.S, "columns");
    const bool pointwise = is_pointwise(p);
    const int64_t col_per_image = pointwise ? 0 : checked_mul(CRS, PQ, "columns");
    const int64_t nb_max = chunk_images(p.N, col_per_image, workspace_limit);
    DeviceBuffer col(size_t(pointwise ? 0 : checked_mul(nb_max, col_per_image, "columns")) * sizeof(float));
    for (int64_t n0 = 0; n0 < p.N; n0 += nb_max) {
        const int64_t nb = std::min(nb_max, p.N - n0);
        for (int64_t g = 0; g < p.groups; ++g) {
            SgemmArgs a;
            a.M = CgRS, a.N = PQ, a.K = Kg;
            a.A = w + g * Kg * CgRS, a.lda = CgRS, a.trans_a = true, a.stride_a = 0;
            a.B = dy + (n0 * p.K + g * Kg) * PQ, a.ldb = PQ, a.stride_b = p.K * PQ;
            if (pointwise) {
                a.C = dx + n0 * p.C * HW + g * Cg * HW, a.ldc = HW, a.stride_c = p.C * HW;
            } else {
                a.C = col.floats() + g * CgRS * PQ, a.ldc = PQ, a.stride_c = CRS * PQ;
            }
            a.batch = nb;
            cuda_sgemm(a);
        }
        if (!pointwise) {
            const int64_t total = nb * p.C * HW;
            FASTCONV_LAUNCH(grid_1d(total, kThreads), kThreads, col2im_kernel)(p, n0, nb, col.floats(), dx);
            FASTCONV_CUDA_CHECK_LAUNCH();
        }
    }
}

void cuda_conv2d_im2col_backward_weight(const Conv2dParams& p, const float* x, const float* dy, float* dw,
                                        size_t workspace_limit) {
    p.validate();
    const int64_t wcount = p.weight_numel();
    if (p.N == 0) {  // an empty sum
        cuda_fill_zero(dw, size_t(wcount) * sizeof(float));
        return;
    }
    const int64_t PQ = p.P() * p.Q(), HW = p.H * p.W;
    const int64_t Cg = p.C_per_group(), Kg = p.K_per_group(), CgRS = Cg * p.R * p.S;
    const int64_t CRS = checked_mul(p.C, p.R * p.S, "columns");
    const bool pointwise = is_pointwise(p);
    const int64_t col_per_image = pointwise ? 0 : checked_mul(CRS, PQ, "columns");
    const int64_t nb_max = chunk_images(p.N, col_per_image + wcount, workspace_limit);
    DeviceBuffer col(size_t(pointwise ? 0 : checked_mul(nb_max, col_per_image, "columns")) * sizeof(float));
    DeviceBuffer part(size_t(checked_mul(nb_max, wcount, "weight gradient")) * sizeof(float));
    for (int64_t n0 = 0; n0 < p.N; n0 += nb_max) {
        const int64_t nb = std::min(nb_max, p.N - n0);
        if (!pointwise) launch_im2col(p, n0, nb, x, col.floats());
        for (int64_t g = 0; g < p.groups; ++g) {
            SgemmArgs a;
            a.M = Kg, a.N = CgRS, a.K = PQ;
            a.A = dy + (n0 * p.K + g * Kg) * PQ, a.lda = PQ, a.stride_a = p.K * PQ;
            if (pointwise) {
                a.B = x + n0 * p.C * HW + g * Cg * HW, a.ldb = HW, a.stride_b = p.C * HW;
            } else {
                a.B = col.floats() + g * CgRS * PQ, a.ldb = PQ, a.stride_b = CRS * PQ;
            }
            a.trans_b = true;  // B holds col_g (CgRS x PQ); op(B) = col_g^T
            a.C = part.floats() + g * Kg * CgRS, a.ldc = CgRS, a.stride_c = wcount;
            a.batch = nb;
            cuda_sgemm(a);
        }
        FASTCONV_LAUNCH(grid_1d(wcount, kThreads), kThreads, sum_partials_kernel)(wcount, nb, part.floats(), n0 > 0, dw);
        FASTCONV_CUDA_CHECK_LAUNCH();
    }
}

}  // namespace fastconv
