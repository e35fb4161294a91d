// Pooling driver and portable loops (see pool2d.h). Napkin math for the hot case, 2x2 stride 2 on
// (8, 64, 112, 112): 25.7 MB read + 6.4 MB written (+ 12.8 MB of int64 indices) per forward, so at
// 26-37 GB/s the floor is 1-2 ms; PyTorch 2.13 takes 12-40 ms there with a scalar loop per output.
// Measured on the shared 2-core EPYC VM, 1 thread, best of 30: max forward 1.4 ms (23 GB/s), with
// indices 2.1 ms, max backward 3.0 ms, avg forward 1.7 ms, avg backward 3.1 ms (torch: 79-118,
// 3.5, 31, 23 ms; 3x3 stride 2 pad 1: avg backward 3.6 vs 33 ms).
// Two-thread medians: benchmarks/results/*_pool.md.
// Forward rows are independent, so the N*C*P output rows are split across threads; a backward
// plane's outputs overlap in dx, so planes are the unit of work and no atomics are needed.
#include "pool/pool2d.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "common/workspace.h"
#include "pool/pool2d_rows.h"

namespace fastconv {

using pool_detail::PoolRow;

namespace {

// The window of output o along one axis of length n, taps start + j * dilation for j < k: the
// first tap inside the input `lo`, the end of the valid range `hi` (taps lo, lo + dilation, ... < hi)
// and, undilated, the window's length once clipped to the padded input (count_include_pad's divisor).
struct Span {
    int64_t lo, hi, padded;
};

inline Span window(int64_t o, int64_t k, int64_t s, int64_t pad, int64_t n, int64_t dilation = 1) {
    const int64_t start = o * s - pad, end = start + dilation * (k - 1) + 1;
    const int64_t lo = start >= 0 ? start : start + (-start + dilation - 1) / dilation * dilation;
    return {lo, std::min(end, n), std::min(end, n + pad) - start};
}

// Outputs [q0, q1) whose windows lie inside [0, W): no column clipping, so they can be vectorised.
void interior_columns(const Pool2dParams& p, int64_t& q0, int64_t& q1) {
    const int64_t Q = p.Q();
    q0 = std::min(Q, (p.pad_w + p.stride_w - 1) / p.stride_w);
    const int64_t extent = p.dil_w * (p.kernel_w - 1) + 1;
    const int64_t last_start = p.W + p.pad_w - extent;  // (q * stride) may go up to this
    q1 = last_start < 0 ? q0 : std::clamp(last_start / p.stride_w + 1, q0, Q);
}

inline int64_t avg_divisor(const Pool2dParams& p, const Span& h, const Span& w) {
    if (p.divisor_override) return p.divisor_override;
    return p.count_include_pad ? h.padded * w.padded : (h.hi - h.lo) * (w.hi - w.lo);
}

// PyTorch's rule: scan the window's taps in row-major order, take a value if it is greater than the
// best so far or NaN; the index starts at the first tap inside the input (kept when all are -inf).
inline void max_window(const float* x, int64_t W, const Span& h, const Span& w, int64_t dh, int64_t dw, float* y,
                       int64_t* idx) {
    float best = -std::numeric_limits<float>::infinity();
    int64_t best_i = h.lo * W + w.lo;
    for (int64_t ih = h.lo; ih < h.hi; ih += dh)
        for (int64_t iw = w.lo; iw < w.hi; iw += dw) {
            const float v = x[ih * W + iw];
            if (v > best || std::isnan(v)) {
                best = v;
                best_i = ih * W + iw;
            }
        }
    *y = best;
    if (idx) *idx = best_i;
}

inline float window_sum(const float* x, int64_t W, const Span& h, const Span& w) {
    float sum = 0.0f;
    for (int64_t ih = h.lo; ih < h.hi; ++ih)
        for (int64_t iw = w.lo; iw < w.hi; ++iw) sum += x[ih * W + iw];
    return sum;
}

inline void window_add(float* dx, int64_t W, const Span& h, const Span& w, float g) {
    for (int64_t ih = h.lo; ih < h.hi; ++ih)
        for (int64_t iw = w.lo; iw < w.hi; ++iw) dx[ih * W + iw] += g;
}

// A pass over fewer input elements than this (128 KiB) takes a few microseconds: less than waking
// the other threads, so it runs on the calling thread.
constexpr int64_t kSerialElements = int64_t(1) << 15;

template <class F>
void for_units(long long units, int64_t input_elements, F&& f) {
    if (input_elements < kSerialElements) {
        ScopedDenormalsOff ftz;
        if (units > 0) f(0LL, units);
    } else {
        parallel_for(units, f);
    }
}

// Calls f(q) for the outputs a vector row left over: the edges [0, q0) and [done, Q).
template <class F>
inline void for_rest(int64_t q0, int64_t done, int64_t Q, F&& f) {
    for (int64_t q = 0; q < q0; ++q) f(q);
    for (int64_t q = done; q < Q; ++q) f(q);
}

// Adaptive windows: [floor(o*n/out), ceil((o+1)*n/out)).
inline Span adaptive_window(int64_t o, int64_t n, int64_t out) {
    const int64_t lo = o * n / out, hi = ((o + 1) * n + out - 1) / out;
    return {lo, hi, hi - lo};
}

}  // namespace

void max_pool2d_forward(const Pool2dParams& p, const float* x, float* y, int64_t* indices) {
    const int64_t P = p.P(), Q = p.Q(), HW = p.H * p.W;
    int64_t q0, q1;
    interior_columns(p, q0, q1);
    const bool avx2 = use_avx2();
    for_units(p.N * p.C * P, p.N * p.C * HW, [&](long long begin, long long end) {
        for (long long row = begin; row < end; ++row) {
            const int64_t plane = row / P, op = row % P;
            const float* xp = x + plane * HW;
            float* yr = y + row * Q;
            int64_t* ir = indices ? indices + row * Q : nullptr;
            const Span h = window(op, p.kernel_h, p.stride_h, p.pad_h, p.H, p.dil_h);
            const PoolRow r{p.W, h.lo, h.hi, p.dil_h, p.kernel_w, p.stride_w, p.pad_w, p.dil_w, q0, q1};
            const int64_t done = avx2 ? pool_detail::max_pool_row_avx2(r, xp, yr, ir) : q0;
            for_rest(q0, done, Q, [&](int64_t q) {
                const Span w = window(q, p.kernel_w, p.stride_w, p.pad_w, p.W, p.dil_w);
                max_window(xp, p.W, h, w, p.dil_h, p.dil_w, yr + q, ir ? ir + q : nullptr);
            });
        }
    });
}

void max_pool2d_backward(const PoolShape& s, const float* dy, const int64_t* indices, float* dx) {
    const int64_t HW = s.H * s.W, PQ = s.P * s.Q;
    for_units(s.N * s.C, s.N * s.C * HW, [&](long long begin, long long end) {
        for (long long plane = begin; plane < end; ++plane) {
            float* dxp = dx + plane * HW;
            const float* g = dy + plane * PQ;
            const int64_t* ip = indices + plane * PQ;
            std::fill(dxp, dxp + HW, 0.0f);
            for (int64_t i = 0; i < PQ; ++i) {
                const int64_t at = ip[i];
                if (static_cast<uint64_t>(at) >= static_cast<uint64_t>(HW))
                    throw std::invalid_argument("indices: value " + std::to_string(at) + " at flat position " +
                                                std::to_string(plane * PQ + i) + " is outside [0, H*W = " +
                                                std::to_string(HW) + ")");
                dxp[at] += g[i];
            }
        }
    });
}

void avg_pool2d_forward(const Pool2dParams& p, const float* x, float* y) {
    const int64_t P = p.P(), Q = p.Q(), HW = p.H * p.W;
    int64_t q0, q1;
    interior_columns(p, q0, q1);
    const bool avx2 = use_avx2();
    for_units(p.N * p.C * P, p.N * p.C * HW, [&](long long begin, long long end) {
        for (long long row = begin; row < end; ++row) {
            const int64_t plane = row / P, op = row % P;
            const float* xp = x + plane * HW;
            float* yr = y + row * Q;
            const Span h = window(op, p.kernel_h, p.stride_h, p.pad_h, p.H);
            const PoolRow r{p.W, h.lo, h.hi, 1, p.kernel_w, p.stride_w, p.pad_w, 1, q0, q1};
            const float interior_div = float(p.divisor_override ? p.divisor_override
                                                                : (p.count_include_pad ? h.padded : h.hi - h.lo) * p.kernel_w);
            const int64_t done = avx2 ? pool_detail::avg_pool_row_avx2(r, xp, interior_div, yr) : q0;
            for_rest(q0, done, Q, [&](int64_t q) {
                const Span w = window(q, p.kernel_w, p.stride_w, p.pad_w, p.W);
                yr[q] = window_sum(xp, p.W, h, w) / float(avg_divisor(p, h, w));
            });
        }
    });
}

// Gather form, so every dx element is written once (no zeroing pass, no read-modify-write chains):
// the divisor is a product of a row and a column factor, so with g' = dy / divisor,
//   dx[ih][iw] = sum over windows p covering ih, q covering iw of g'[p][q]
// is done as a vertical sum of g' rows into r[q], then for each column class e = iw mod s a sum of
// shifted copies of r (zero-padded, so windows past either end contribute nothing), interleaved.
// All the inner loops are contiguous and vectorise.
void avg_pool2d_backward(const Pool2dParams& p, const float* dy, float* dx) {
    const int64_t P = p.P(), Q = p.Q(), H = p.H, W = p.W, kh = p.kernel_h, kw = p.kernel_w;
    const int64_t sh = p.stride_h, sw = p.stride_w;
    if (kh == sh && kw == sw && p.pad_h == 0 && p.pad_w == 0 && P * kh <= H && Q * kw <= W) {
        // Windows tile the input (DenseNet's 2x2 transitions): each input takes its one window's
        // gradient / (kh * kw), inputs past the last window take 0. The general path below spends
        // more on per-row set-up than this copy on small images (256 x 56 x 4x4: 0.67 vs 0.23 ms
        // for torch before this path).
        const float inv = 1.0f / float(p.divisor_override ? p.divisor_override : kh * kw);
        for_units(p.N * p.C, p.N * p.C * H * W, [&](long long begin, long long end) {
            for (long long plane = begin; plane < end; ++plane) {
                const float* g = dy + plane * P * Q;
                float* dxp = dx + plane * H * W;
                for (int64_t ih = 0; ih < H; ++ih) {
                    float* row = dxp + ih * W;
                    const int64_t op = ih / kh;
                    if (op >= P) {
                        std::fill(row, row + W, 0.0f);
                        continue;
                    }
                    for (int64_t q = 0; q < Q; ++q) {
                        const float v = g[op * Q + q] * inv;
                        for (int64_t j = 0; j < kw; ++j) row[q * kw + j] = v;
                    }
                    std::fill(row + Q * kw, row + W, 0.0f);
                }
            }
        });
        return;
    }
    const int64_t M = (W + sw - 1) / sw;  // outputs per column class
    const int64_t OFF = kw;               // r[q] lives at r_pad[OFF + q], q in [-kw, Q + M + kw)
    const int64_t r_len = OFF + Q + M + kw + 2;
    // divisor = div_h[op] * div_w[q]; an override goes whole into div_h.
    std::vector<float> div_h(P), div_w(Q);
    for (int64_t op = 0; op < P; ++op) {
        const Span h = window(op, kh, sh, p.pad_h, H);
        div_h[op] = float(p.divisor_override ? p.divisor_override : p.count_include_pad ? h.padded : h.hi - h.lo);
    }
    for (int64_t q = 0; q < Q; ++q) {
        const Span w = window(q, kw, sw, p.pad_w, W);
        div_w[q] = p.divisor_override ? 1.0f : float(p.count_include_pad ? w.padded : w.hi - w.lo);
    }
    for_units(p.N * p.C, p.N * p.C * H * W, [&](long long begin, long long end) {
        float* g = thread_scratch(0, size_t(P * Q + r_len + sw * M));
        float* r_pad = g + P * Q;
        float* cls = r_pad + r_len;
        float* r = r_pad + OFF;
        for (long long plane = begin; plane < end; ++plane) {
            const float* dyp = dy + plane * P * Q;
            for (int64_t op = 0; op < P; ++op)
                for (int64_t q = 0; q < Q; ++q) g[op * Q + q] = dyp[op * Q + q] / (div_h[op] * div_w[q]);
            std::fill(r_pad, r_pad + r_len, 0.0f);
            float* dxp = dx + plane * H * W;
            for (int64_t ih = 0; ih < H; ++ih) {
                float* dx_row = dxp + ih * W;
                // Windows p with p*sh - pad_h <= ih < p*sh - pad_h + kh.
                const int64_t pa = std::max<int64_t>(0, (ih + p.pad_h - kh + sh) / sh);
                const int64_t pb = std::min(P - 1, (ih + p.pad_h) / sh);
                if (pa > pb) {
                    std::fill(dx_row, dx_row + W, 0.0f);
                    continue;
                }
                std::copy(g + pa * Q, g + pa * Q + Q, r);
                for (int64_t op = pa + 1; op <= pb; ++op)
                    for (int64_t q = 0; q < Q; ++q) r[q] += g[op * Q + q];
                // iw = m*sw + e takes r[m + d/sw] from tap kw whenever d = e + pad_w - kw is a multiple of sw.
                for (int64_t e = 0; e < sw && e < W; ++e) {
                    float* c = sw == 1 ? dx_row : cls + e * M;
                    std::fill(c, c + M, 0.0f);
                    for (int64_t k = 0; k < kw; ++k) {
                        const int64_t d = e + p.pad_w - k;
                        if (d % sw != 0) continue;
                        const float* src = r + d / sw;
                        for (int64_t m = 0; m < M; ++m) c[m] += src[m];
                    }
                }
                if (sw == 2) {
                    const float *c0 = cls, *c1 = cls + M;
                    for (int64_t m = 0; m < W / 2; ++m) {
                        dx_row[2 * m] = c0[m];
                        dx_row[2 * m + 1] = c1[m];
                    }
                    if (W % 2) dx_row[W - 1] = c0[M - 1];
                } else if (sw > 2) {
                    for (int64_t iw = 0; iw < W; ++iw) dx_row[iw] = cls[(iw % sw) * M + iw / sw];
                }
            }
        }
    });
}

void adaptive_avg_pool2d_forward(const PoolShape& s, const float* x, float* y) {
    const int64_t HW = s.H * s.W;
    for_units(s.N * s.C * s.P, s.N * s.C * HW, [&](long long begin, long long end) {
        for (long long row = begin; row < end; ++row) {
            const int64_t plane = row / s.P, op = row % s.P;
            const Span h = adaptive_window(op, s.H, s.P);
            for (int64_t q = 0; q < s.Q; ++q) {
                const Span w = adaptive_window(q, s.W, s.Q);
                y[row * s.Q + q] = window_sum(x + plane * HW, s.W, h, w) / float(h.padded * w.padded);
            }
        }
    });
}

void adaptive_avg_pool2d_backward(const PoolShape& s, const float* dy, float* dx) {
    const int64_t HW = s.H * s.W, PQ = s.P * s.Q;
    for_units(s.N * s.C, s.N * s.C * HW, [&](long long begin, long long end) {
        for (long long plane = begin; plane < end; ++plane) {
            float* dxp = dx + plane * HW;
            std::fill(dxp, dxp + HW, 0.0f);
            for (int64_t op = 0; op < s.P; ++op) {
                const Span h = adaptive_window(op, s.H, s.P);
                for (int64_t q = 0; q < s.Q; ++q) {
                    const Span w = adaptive_window(q, s.W, s.Q);
                    window_add(dxp, s.W, h, w, dy[plane * PQ + op * s.Q + q] / float(h.padded * w.padded));
                }
            }
        }
    });
}

}  // namespace fastconv
