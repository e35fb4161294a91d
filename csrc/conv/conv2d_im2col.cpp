// im2col + GEMM convolution, all three passes, per group:
//   forward        Y[Kg, cols]   = W[Kg, CgRS] @ unfold(X)[CgRS, cols]
//   input grad     dX            = fold(W^T[CgRS, Kg] @ dY[Kg, cols])        (col2im: scatter-add)
//   weight grad    dW[Kg, CgRS] += dY[Kg, cols] @ unfold(X)^T
// where `cols` runs over a chunk of output rows (n, p) x Q. The chunk is sized so one thread's
// column buffer (plus the gathered output block when a chunk spans several images) stays under
// get_workspace_limit() / threads; a single output row is the smallest chunk.
// A 1x1, stride-1, unpadded convolution needs no unfold: X[n] is already the column matrix, so it
// is a GEMM per image straight on the NCHW arrays.
// Threads: with at least as many images as threads, each thread takes a contiguous range of
// images and runs single-threaded GEMMs (sgemm sees it is inside a parallel region), which keeps
// col2im free of races; with fewer images, chunks run one after another with a threaded GEMM and
// unfold/fold split over channels.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/parallel.h"
#include "common/workspace.h"
#include "conv/conv2d.h"
#include "gemm/gemm.h"

namespace fastconv {

namespace {

// Preferred chunk size. sgemm slows down 2-3x once the column matrix outgrows about 2 MiB (L2 is
// 1 MiB per core): (256 x 392 x 1152) ran at 86 GFLOP/s on one thread, (256 x 784 x 1152) at 35,
// (64 x 1000 x 363) at 98 and (64 x 4895 x 363) at 29 (2026-11-25, EPYC Zen 3, busy machine).
constexpr int64_t kTargetChunkBytes = int64_t(2) << 20;
// ... but never fewer output columns than this while the workspace limit allows: every chunk packs
// the whole weight matrix again, so deep reductions (CRS in the thousands) with 2 MiB chunks spent
// their time packing: a 3x3 512-channel layer at batch 1 ran 84-column chunks, a 5x5 over 832
// channels 21-column ones.
constexpr int64_t kMinChunkCols = 256;

void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_row, int64_t a_col, const float* B,
          int64_t b_row, int64_t b_col, float* C, int64_t c_row, float beta) {
    GemmParams g;
    g.M = M, g.N = N, g.K = K;
    g.alpha = 1.0f, g.beta = beta;
    g.a_row = a_row, g.a_col = a_col;
    g.b_row = b_row, g.b_col = b_col;
    g.c_row = c_row, g.c_col = 1;
    sgemm(g, A, B, C);
}

bool is_pointwise(const Conv2dParams& p) {
    return p.R == 1 && p.S == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
}

// Output columns q in [lo, hi) read input column q*sw - pw + s*dw inside [0, W).
void valid_range(int64_t in, int64_t out, int64_t stride, int64_t pad, int64_t off, int64_t& lo, int64_t& hi) {
    // smallest q with q*stride >= pad - off, largest q with q*stride <= in - 1 + pad - off
    const int64_t a = pad - off, b = in - 1 + pad - off;
    lo = a <= 0 ? 0 : (a + stride - 1) / stride;
    hi = b < 0 ? 0 : std::min(out, b / stride + 1);
    if (hi < lo) hi = lo;
}

struct Chunking {
    int64_t P, Q, CRS, rows;  // rows: output rows (n, p) per chunk
    bool parallel_images;     // threads over images (else a threaded GEMM per chunk)
    int threads;
};

Chunking plan_chunks(const Conv2dParams& p, int64_t extra_floats_per_col) {
    Chunking c;
    c.P = p.P(), c.Q = p.Q(), c.CRS = p.C_per_group() * p.R * p.S;
    const int threads = region_threads();
    c.parallel_images = p.N >= threads;
    c.threads = c.parallel_images ? int(std::min<int64_t>(threads, p.N)) : 1;
    const int64_t budget = std::min(kTargetChunkBytes, get_workspace_limit() / (c.parallel_images ? threads : 1));
    const int64_t row_bytes = (c.CRS + extra_floats_per_col) * c.Q * int64_t(sizeof(float));
    const int64_t max_rows = std::max<int64_t>(1, get_workspace_limit() / (c.threads * row_bytes));
    const int64_t min_rows = std::min(max_rows, (kMinChunkCols + c.Q - 1) / c.Q);
    c.rows = std::max<int64_t>({int64_t(1), min_rows, budget / row_bytes});
    return c;
}

// cols[(c*R + r)*S + s][(t - t0)*Q + q] = x[n, g*Cg + c, p*sh - ph + r*dh, q*sw - pw + s*dw] for the
// output rows t = n*P + p in [t0, t1); zero in the padding. Channels [c0, c1) only.
void unfold(const Conv2dParams& p, const float* x, int64_t g, int64_t t0, int64_t t1, int64_t c0, int64_t c1,
            float* cols) {
    const int64_t P = p.P(), Q = p.Q(), Cg = p.C_per_group(), ld = (t1 - t0) * Q;
    for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = 0; r < p.R; ++r)
            for (int64_t s = 0; s < p.S; ++s) {
                float* row = cols + ((c * p.R + r) * p.S + s) * ld;
                int64_t lo, hi;
                valid_range(p.W, Q, p.stride_w, p.pad_w, s * p.dil_w, lo, hi);
                const int64_t w0 = lo * p.stride_w - p.pad_w + s * p.dil_w;
                // Plain loops, not memcpy/memset: rows of small images are a few floats long, where
                // three library calls per row cost more than the copy (an 8x8 image's weight
                // gradient ran at 6 GFLOP/s with them).
                for (int64_t t = t0; t < t1; ++t) {
                    float* d = row + (t - t0) * Q;
                    const int64_t n = t / P, h = (t % P) * p.stride_h - p.pad_h + r * p.dil_h;
                    if (h < 0 || h >= p.H || lo == hi) {
                        for (int64_t q = 0; q < Q; ++q) d[q] = 0.0f;
                        continue;
                    }
                    const float* src = x + ((n * p.C + g * Cg + c) * p.H + h) * p.W + w0;
                    for (int64_t q = 0; q < lo; ++q) d[q] = 0.0f;
                    if (p.stride_w == 1)
                        for (int64_t q = lo; q < hi; ++q) d[q] = src[q - lo];
                    else
                        for (int64_t q = lo; q < hi; ++q) d[q] = src[(q - lo) * p.stride_w];
                    for (int64_t q = hi; q < Q; ++q) d[q] = 0.0f;
                }
            }
}

// The adjoint of unfold: dx[...] += cols[...] over the same index map (dx zeroed by the caller).
void fold(const Conv2dParams& p, const float* cols, int64_t g, int64_t t0, int64_t t1, int64_t c0, int64_t c1,
          float* dx) {
    const int64_t P = p.P(), Q = p.Q(), Cg = p.C_per_group(), ld = (t1 - t0) * Q;
    for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = 0; r < p.R; ++r)
            for (int64_t s = 0; s < p.S; ++s) {
                const float* row = cols + ((c * p.R + r) * p.S + s) * ld;
                int64_t lo, hi;
                valid_range(p.W, Q, p.stride_w, p.pad_w, s * p.dil_w, lo, hi);
                if (lo == hi) continue;
                const int64_t w0 = lo * p.stride_w - p.pad_w + s * p.dil_w;
                for (int64_t t = t0; t < t1; ++t) {
                    const int64_t n = t / P, h = (t % P) * p.stride_h - p.pad_h + r * p.dil_h;
                    if (h < 0 || h >= p.H) continue;
                    const float* src = row + (t - t0) * Q;
                    float* d = dx + ((n * p.C + g * Cg + c) * p.H + h) * p.W + w0;
                    if (p.stride_w == 1)
                        for (int64_t q = lo; q < hi; ++q) d[q - lo] += src[q];
                    else
                        for (int64_t q = lo; q < hi; ++q) d[(q - lo) * p.stride_w] += src[q];
                }
            }
}

// Runs body(thread, first image, end image) with images split statically over c.threads threads
// (or once over all images when the chunks are sequential).
template <class F>
void over_images(const Conv2dParams& p, const Chunking& c, F&& body) {
    if (!c.parallel_images) {
        body(0, int64_t(0), p.N);
        return;
    }
    ExceptionCatcher catcher;
#pragma omp parallel num_threads(c.threads)
    {
        ScopedDenormalsOff ftz;
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        catcher.run([&] { body(t, p.N * t / nt, p.N * (t + 1) / nt); });
    }
    catcher.rethrow();
}

// Channel range split for unfold/fold when the chunks run sequentially (threads inside), else all.
template <class F>
void over_channels(const Chunking& c, int64_t channels, F&& body) {
    if (c.parallel_images)
        body(int64_t(0), channels);
    else
        parallel_for(channels, [&](int64_t b, int64_t e) { body(b, e); });
}

void add_bias(const float* bias, int64_t k0, int64_t kcount, int64_t len, float* y, int64_t kstride) {
    if (!bias) return;
    for (int64_t k = 0; k < kcount; ++k) {
        const float b = bias[k0 + k];
        float* row = y + k * kstride;
        for (int64_t i = 0; i < len; ++i) row[i] += b;
    }
}

}  // namespace

void conv2d_im2col_forward(const Conv2dParams& p, const float* x, const float* w, const float* bias, float* y) {
    const int64_t G = p.groups, Cg = p.C_per_group(), Kg = p.K_per_group();
    if (p.N == 0) return;
    const Chunking ch = plan_chunks(p, Kg);
    const int64_t P = ch.P, Q = ch.Q, PQ = P * Q, CRS = ch.CRS;
    const bool pointwise = is_pointwise(p);
    over_images(p, ch, [&](int, int64_t n0, int64_t n1) {
        if (pointwise) {  // column blocks of X[n] no bigger than a preferred chunk
            const int64_t block = std::max<int64_t>(64, kTargetChunkBytes / (Cg * int64_t(sizeof(float))));
            for (int64_t n = n0; n < n1; ++n)
                for (int64_t g = 0; g < G; ++g)
                    for (int64_t j0 = 0; j0 < PQ; j0 += block) {
                        const int64_t cols = std::min(block, PQ - j0);
                        float* yg = y + (n * p.K + g * Kg) * PQ + j0;
                        gemm(Kg, cols, Cg, w + g * Kg * Cg, Cg, 1, x + (n * p.C + g * Cg) * PQ + j0, PQ, 1, yg, PQ, 0.0f);
                        add_bias(bias, g * Kg, Kg, cols, yg, PQ);
                    }
            return;
        }
        float* cols = thread_scratch(0, size_t(CRS * ch.rows * Q));
        float* out = thread_scratch(1, size_t(Kg * ch.rows * Q));
        for (int64_t t0 = n0 * P; t0 < n1 * P; t0 += ch.rows) {
            const int64_t t1 = std::min(t0 + ch.rows, n1 * P), ld = (t1 - t0) * Q;
            const bool one_image = t0 / P == (t1 - 1) / P;
            for (int64_t g = 0; g < G; ++g) {
                over_channels(ch, Cg, [&](int64_t c0, int64_t c1) { unfold(p, x, g, t0, t1, c0, c1, cols); });
                const int64_t n = t0 / P, k0 = g * Kg;
                if (one_image) {  // straight into y[n, k0:k0+Kg, rows of the chunk]
                    float* yg = y + (n * p.K + k0) * PQ + (t0 % P) * Q;
                    gemm(Kg, ld, CRS, w + k0 * CRS, CRS, 1, cols, ld, 1, yg, PQ, 0.0f);
                    add_bias(bias, k0, Kg, ld, yg, PQ);
                    continue;
                }
                gemm(Kg, ld, CRS, w + k0 * CRS, CRS, 1, cols, ld, 1, out, ld, 0.0f);
                for (int64_t t = t0; t < t1; ++t)  // scatter rows back to NCHW, adding the bias
                    for (int64_t k = 0; k < Kg; ++k) {
                        const float b = bias ? bias[k0 + k] : 0.0f;
                        const float* src = out + k * ld + (t - t0) * Q;
                        float* dst = y + ((t / P) * p.K + k0 + k) * PQ + (t % P) * Q;
                        for (int64_t q = 0; q < Q; ++q) dst[q] = src[q] + b;
                    }
            }
        }
    });
}

void conv2d_im2col_backward_input(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
    const int64_t G = p.groups, Cg = p.C_per_group(), Kg = p.K_per_group(), HW = p.H * p.W;
    if (p.N == 0) return;
    const Chunking ch = plan_chunks(p, Kg);
    const int64_t P = ch.P, Q = ch.Q, PQ = P * Q, CRS = ch.CRS;
    const bool pointwise = is_pointwise(p);
    over_images(p, ch, [&](int, int64_t n0, int64_t n1) {
        if (pointwise) {
            const int64_t block = std::max<int64_t>(64, kTargetChunkBytes / (Kg * int64_t(sizeof(float))));
            for (int64_t n = n0; n < n1; ++n)
                for (int64_t g = 0; g < G; ++g)
                    for (int64_t j0 = 0; j0 < PQ; j0 += block)
                        gemm(Cg, std::min(block, PQ - j0), Kg, w + g * Kg * Cg, 1, Cg, dy + (n * p.K + g * Kg) * PQ + j0,
                             PQ, 1, dx + (n * p.C + g * Cg) * HW + j0, HW, 0.0f);
            return;
        }
        if (ch.parallel_images)
            std::memset(dx + n0 * p.C * HW, 0, sizeof(float) * (n1 - n0) * p.C * HW);
        else
            parallel_for(p.N * p.C, [&](int64_t b, int64_t e) { std::memset(dx + b * HW, 0, sizeof(float) * (e - b) * HW); });
        float* cols = thread_scratch(0, size_t(CRS * ch.rows * Q));
        float* gathered = thread_scratch(1, size_t(Kg * ch.rows * Q));
        for (int64_t t0 = n0 * P; t0 < n1 * P; t0 += ch.rows) {
            const int64_t t1 = std::min(t0 + ch.rows, n1 * P), ld = (t1 - t0) * Q;
            const bool one_image = t0 / P == (t1 - 1) / P;
            for (int64_t g = 0; g < G; ++g) {
                const int64_t k0 = g * Kg;
                const float* b = dy + ((t0 / P) * p.K + k0) * PQ + (t0 % P) * Q;
                int64_t b_row = PQ;
                if (!one_image) {  // gather the chunk's rows of grad_output into [Kg][ld]
                    for (int64_t t = t0; t < t1; ++t)
                        for (int64_t k = 0; k < Kg; ++k)
                            std::memcpy(gathered + k * ld + (t - t0) * Q, dy + ((t / P) * p.K + k0 + k) * PQ + (t % P) * Q,
                                        sizeof(float) * Q);
                    b = gathered, b_row = ld;
                }
                gemm(CRS, ld, Kg, w + k0 * CRS, 1, CRS, b, b_row, 1, cols, ld, 0.0f);
                over_channels(ch, Cg, [&](int64_t c0, int64_t c1) { fold(p, cols, g, t0, t1, c0, c1, dx); });
            }
        }
    });
}

void conv2d_im2col_backward_weight(const Conv2dParams& p, const float* x, const float* dy, float* dw) {
    const int64_t G = p.groups, Cg = p.C_per_group(), Kg = p.K_per_group(), wn = p.weight_numel();
    if (p.N == 0) {
        std::fill(dw, dw + wn, 0.0f);
        return;
    }
    const Chunking ch = plan_chunks(p, Kg);
    const int64_t P = ch.P, Q = ch.Q, PQ = P * Q, CRS = ch.CRS;
    const bool pointwise = is_pointwise(p);
    std::vector<float*> partial(ch.threads, nullptr);
    over_images(p, ch, [&](int thread, int64_t n0, int64_t n1) {
        // Each thread sums its images into its own dW (the caller's dw when chunks are sequential).
        float* acc = ch.parallel_images ? thread_scratch(2, size_t(wn)) : dw;
        partial[thread] = acc;
        bool first = true;
        if (pointwise) {
            for (int64_t n = n0; n < n1; ++n, first = false)
                for (int64_t g = 0; g < G; ++g)
                    gemm(Kg, Cg, PQ, dy + (n * p.K + g * Kg) * PQ, PQ, 1, x + (n * p.C + g * Cg) * PQ, 1, PQ,
                         acc + g * Kg * Cg, Cg, first ? 0.0f : 1.0f);
            return;
        }
        float* cols = thread_scratch(0, size_t(CRS * ch.rows * Q));
        float* gathered = thread_scratch(1, size_t(Kg * ch.rows * Q));
        for (int64_t t0 = n0 * P; t0 < n1 * P; t0 += ch.rows, first = false) {
            const int64_t t1 = std::min(t0 + ch.rows, n1 * P), ld = (t1 - t0) * Q;
            const bool one_image = t0 / P == (t1 - 1) / P;
            for (int64_t g = 0; g < G; ++g) {
                const int64_t k0 = g * Kg;
                over_channels(ch, Cg, [&](int64_t c0, int64_t c1) { unfold(p, x, g, t0, t1, c0, c1, cols); });
                const float* a = dy + ((t0 / P) * p.K + k0) * PQ + (t0 % P) * Q;
                int64_t a_row = PQ;
                if (!one_image) {
                    for (int64_t t = t0; t < t1; ++t)
                        for (int64_t k = 0; k < Kg; ++k)
                            std::memcpy(gathered + k * ld + (t - t0) * Q, dy + ((t / P) * p.K + k0 + k) * PQ + (t % P) * Q,
                                        sizeof(float) * Q);
                    a = gathered, a_row = ld;
                }
                gemm(Kg, CRS, ld, a, a_row, 1, cols, 1, ld, acc + k0 * CRS, CRS, first ? 0.0f : 1.0f);
            }
        }
    });
    if (!ch.parallel_images) return;
    parallel_for(wn, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            float s = 0.0f;
            for (const float* acc : partial) s += acc[i];
            dw[i] = s;
        }
    });
}

}  // namespace fastconv
