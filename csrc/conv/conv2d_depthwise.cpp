// Depthwise convolution (groups == C, one input channel per group, K = C * multiplier), every pass
// (MobileNet's 3x3 stride 1 and 2, MobileNetV3/EfficientNet's 5x5, ConvNeXt's 7x7; any kernel,
// stride, padding and dilation). Each output channel is a single-channel 2-D correlation, so a
// pass is a sum of R*S shifted copies of one plane: memory-bound at 2*R*S FLOPs per element read.
// One work item is one (image, input channel) plane, packed once into a zero-padded per-thread
// buffer (conv2d_depthwise_rows.h) from which every output of its `multiplier` channels is a sum
// of taps at fixed offsets, vectorised 8 outputs wide along the row:
//  - forward: the padded input with each row split into `stride_w` column phases (column u goes to
//    phase u % sw at index u / sw; stride 2 deinterleaves with shuffles), so output column q of tap
//    s reads index q + s*dw/sw of phase s*dw % sw: contiguous for every stride;
//  - input gradient: per stride phase (a, b) of the input position (h = a + sh*i, w = b + sw*j),
//    only the taps with (a + ph - r*dh) % sh == 0 and (b + pw - s*dw) % sw == 0 reach it, each a
//    shifted copy of the zero-bordered grad_output: no scatter and no multiply by an inserted zero.
//    Stride 2 computes the two column phases of a row and interleaves them into dx;
//  - weight gradient: the forward packing reduced against grad_output, 8-wide partial sums per tap
//    over up to 16 images, added up in double over the batch.
// Threads: forward and input gradient over (image, channel) planes; the weight gradient over
// channels (each owns its weights; no reduction across threads, deterministic), images outermost.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "common/workspace.h"
#include "conv/conv2d.h"
#include "conv/conv2d_depthwise_rows.h"

namespace fastconv {

namespace depthwise {

namespace {

void rows_portable(const RowsArgs& a) {
    for (int64_t i = 0; i < a.rows; ++i) {
        float* out = a.out + i * a.out_rstride;
        std::fill(out, out + a.cols, a.init);
        for (int64_t t = 0; t < a.ntaps; ++t) {
            const float wt = a.w[t];
            const float* in = a.in + i * a.in_rstride + a.taps[t];
            for (int64_t j = 0; j < a.cols; ++j) out[j] += wt * in[j];
        }
    }
}

void reduce_portable(const ReduceArgs& a) {
    for (int64_t t = 0; t < a.ntaps; ++t)
        for (int64_t i = 0; i < a.rows; ++i) {
            const float* d = a.dy + i * a.cols;
            const float* in = a.in + i * a.in_rstride + a.taps[t];
            for (int64_t j = 0; j < a.cols; ++j) a.acc[8 * t + j % 8] += d[j] * in[j];
        }
}

void copy_portable(const RowCopy& c) {
    for (int64_t r = 0; r < c.rows; ++r) {
        const float* src = c.src + r * c.src_rstride;
        float* dst = c.dst + r * c.dst_rstride;
        for (int64_t j = 0; j < c.n; ++j) dst[j] = src[j];
    }
}

void deinterleave2_portable(const RowCopy& c) {
    for (int64_t r = 0; r < c.rows; ++r) {
        const float* src = c.src + r * c.src_rstride;
        float *even = c.dst + r * c.dst_rstride, *odd = c.dst2 + r * c.dst_rstride;
        for (int64_t i = 0; i < c.n; ++i) even[i] = src[2 * i], odd[i] = src[2 * i + 1];
    }
}

void interleave2_portable(const RowCopy& c) {
    for (int64_t r = 0; r < c.rows; ++r) {
        const float *even = c.src + r * c.src_rstride, *odd = c.src2 + r * c.src_rstride;
        float* dst = c.dst + r * c.dst_rstride;
        for (int64_t i = 0; 2 * i < c.n; ++i) {
            dst[2 * i] = even[i];
            if (2 * i + 1 < c.n) dst[2 * i + 1] = odd[i];
        }
    }
}

}  // namespace

const Kernels& portable_kernels() {
    static const Kernels k{rows_portable, reduce_portable, copy_portable, deinterleave2_portable, interleave2_portable};
    return k;
}

}  // namespace depthwise

namespace {

using depthwise::Kernels;
using depthwise::ReduceArgs;
using depthwise::RowCopy;
using depthwise::RowsArgs;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up8(int64_t a) { return (a + 7) / 8 * 8; }
// Floor division and modulo for a possibly negative numerator (b > 0).
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }

const Kernels& kernels() {
#if !defined(FASTCONV_NO_AVX2)
    if (use_avx2()) return depthwise::avx2_kernels();
#endif
    return depthwise::portable_kernels();
}

// The kernels index planes as one input channel per group; anything else would read the wrong
// weights, so a direct call with other parameters is refused (the registry never sends one).
void require_depthwise(const Conv2dParams& p) {
    if (p.C_per_group() != 1)
        throw std::invalid_argument("algo: 'depthwise' needs one input channel per group (groups == C), got C=" +
                                    std::to_string(p.C) + ", groups=" + std::to_string(p.groups));
}

// Zero-padded, column-phase-split copy of one input plane (forward and weight gradient). Packed row
// v is input row v - pad_h; phase f of a row holds padded columns f, f + sw, ... (see the file
// comment). Only the rows some output reads are kept: (P-1)*sh + (R-1)*dh + 1.
struct InputPacking {
    int64_t rows, phase_width, ld, plane;
    std::vector<int64_t> taps;

    explicit InputPacking(const Conv2dParams& p) {
        rows = (p.P() - 1) * p.stride_h + (p.R - 1) * p.dil_h + 1;
        phase_width = round_up8(p.Q()) + (p.S - 1) * p.dil_w / p.stride_w;
        ld = p.stride_w * phase_width;
        plane = rows * ld;
        for (int64_t r = 0; r < p.R; ++r)
            for (int64_t s = 0; s < p.S; ++s) {
                const int64_t u = s * p.dil_w;
                taps.push_back(r * p.dil_h * ld + (u % p.stride_w) * phase_width + u / p.stride_w);
            }
    }

    // Scratch for pack(), zeroed here once per thread and call: pack() writes only the positions
    // that hold data (the same for every plane), so the padding stays zero.
    float* scratch(int slot) const {
        float* buf = thread_scratch(slot, size_t(plane + depthwise::kPackSlack));
        std::fill(buf, buf + plane + depthwise::kPackSlack, 0.0f);
        return buf;
    }

    // Input column c is padded column u = c + pad_w: phase u % sw, index u / sw (if some output reads it).
    void pack(const Conv2dParams& p, const Kernels& k, const float* x, float* buf) const {
        const int64_t sw = p.stride_w, pw = p.pad_w, W = p.W;
        const int64_t h1 = std::min(rows, p.H + p.pad_h);
        // Columns [0, fast) go through the vectorised copy (sw 1) or deinterleave (sw 2), the rest
        // (an odd last column, columns no output reads, any column at sw > 2) one by one.
        int64_t fast = 0;
        if (sw == 1) fast = std::max<int64_t>(0, std::min(W, phase_width - pw));
        if (sw == 2) fast = 2 * std::max<int64_t>(0, std::min(W / 2, phase_width - (pw + 1) / 2));
        const int64_t v0 = p.pad_h, rows_in = std::max<int64_t>(0, h1 - v0);
        float* dst = buf + v0 * ld;
        if (sw == 1) k.copy(RowCopy{x, nullptr, W, dst + pw, nullptr, ld, rows_in, fast});
        if (sw == 2)  // even columns land in phase pw % 2, odd ones in the other
            k.deinterleave2(RowCopy{x, nullptr, W, dst + (pw % 2) * phase_width + pw / 2,
                                    dst + ((pw + 1) % 2) * phase_width + (pw + 1) / 2, ld, rows_in, fast / 2});
        if (fast == W) return;
        for (int64_t v = v0; v < h1; ++v)
            for (int64_t c = fast; c < W; ++c) {
                const int64_t u = c + pw;
                if (u / sw < phase_width) buf[v * ld + (u % sw) * phase_width + u / sw] = x[(v - v0) * W + c];
            }
    }
};

}  // namespace

void conv2d_depthwise_forward(const Conv2dParams& p, const float* x, const float* w, const float* bias, float* y) {
    require_depthwise(p);
    if (p.N == 0) return;
    const int64_t P = p.P(), Q = p.Q(), M = p.K_per_group(), RS = p.R * p.S;
    const Kernels& k = kernels();
    const InputPacking pk(p);
    parallel_for(p.N * p.C, [&](int64_t begin, int64_t end) {
        float* xp = pk.scratch(0);
        for (int64_t item = begin; item < end; ++item) {  // item = n * C + c: input plane
            pk.pack(p, k, x + item * p.H * p.W, xp);
            const int64_t n = item / p.C, c = item % p.C;
            for (int64_t m = 0; m < M; ++m) {
                const int64_t kk = c * M + m;
                RowsArgs a{xp, p.stride_h * pk.ld, pk.taps.data(), w + kk * RS, RS, bias ? bias[kk] : 0.0f,
                           y + (n * p.K + kk) * P * Q, Q, P, Q, p.R, p.S, p.dil_h * pk.ld};
                k.rows(a);
            }
        }
    });
}

void conv2d_depthwise_backward_input(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
    require_depthwise(p);
    if (p.N == 0) return;
    const int64_t P = p.P(), Q = p.Q(), M = p.K_per_group(), RS = p.R * p.S;
    const int64_t sh = p.stride_h, sw = p.stride_w, H = p.H, W = p.W;
    // grad_output, zero-bordered so that every tap of every input position reads inside: input row
    // h = a + sh*i, tap r reads grad_output row i + (a + ph - r*dh) / sh (when that divides).
    const int64_t top = std::max<int64_t>(0, ceil_div((p.R - 1) * p.dil_h - p.pad_h, sh));
    const int64_t left = std::max<int64_t>(0, ceil_div((p.S - 1) * p.dil_w - p.pad_w, sw));
    const int64_t bottom = std::max<int64_t>(0, (H - 1 + p.pad_h) / sh - (P - 1));
    const int64_t phase_cols = ceil_div(W, sw), phase_ld = round_up8(phase_cols);
    const int64_t ld = std::max(left + Q, phase_ld + left + (sw - 1 + p.pad_w) / sw);
    const int64_t plane = (top + P + bottom) * ld;

    // Per stride phase (a, b): the taps (offsets over the M packed planes of a channel) and weights,
    // kernel rows from the last: consecutive ones then read consecutive grad_output rows
    // (dilation 1), the separable form of RowsArgs when M == 1.
    struct Phase {
        std::vector<int64_t> taps;
        std::vector<int64_t> weight;  // index into the channel's M*R*S weights
        int64_t rows = 0, cols = 0;   // kernel rows and columns that reach the phase
    };
    std::vector<Phase> phases(size_t(sh * sw));
    for (int64_t a = 0; a < sh; ++a)
        for (int64_t b = 0; b < sw; ++b) {
            Phase& ph = phases[size_t(a * sw + b)];
            for (int64_t r = p.R - 1; r >= 0; --r)
                ph.rows += floor_mod(a + p.pad_h - r * p.dil_h, sh) == 0;
            for (int64_t s = 0; s < p.S; ++s) ph.cols += floor_mod(b + p.pad_w - s * p.dil_w, sw) == 0;
            for (int64_t m = 0; m < M; ++m)
                for (int64_t r = p.R - 1; r >= 0; --r) {
                    const int64_t dr = a + p.pad_h - r * p.dil_h;
                    if (floor_mod(dr, sh) != 0) continue;
                    for (int64_t s = 0; s < p.S; ++s) {
                        const int64_t ds = b + p.pad_w - s * p.dil_w;
                        if (floor_mod(ds, sw) != 0) continue;
                        ph.taps.push_back(m * plane + (top + floor_div(dr, sh)) * ld + left + floor_div(ds, sw));
                        ph.weight.push_back((m * p.R + r) * p.S + s);
                    }
                }
        }

    const Kernels& k = kernels();
    parallel_for(p.N * p.C, [&](int64_t begin, int64_t end) {
        float* dyp = thread_scratch(0, size_t(M * plane + depthwise::kPackSlack));
        std::fill(dyp, dyp + M * plane + depthwise::kPackSlack, 0.0f);  // the borders stay zero: only the data is written below
        // Column stride > 1: each column phase of a row phase into its own rows, then interleaved.
        const int64_t phase_rows = ceil_div(H, sh);
        float* phase_out = sw > 1 ? thread_scratch(1, size_t(sw * phase_rows * phase_ld)) : nullptr;
        std::vector<float> wt(size_t(M * RS));
        for (int64_t item = begin; item < end; ++item) {  // item = n * C + c: input plane
            const int64_t n = item / p.C, c = item % p.C;
            for (int64_t m = 0; m < M; ++m)
                k.copy(RowCopy{dy + (n * p.K + c * M + m) * P * Q, nullptr, Q, dyp + m * plane + top * ld + left, nullptr,
                               ld, P, Q});
            float* out = dx + item * H * W;
            for (int64_t a = 0; a < std::min(sh, H); ++a) {
                const int64_t rows = ceil_div(H - a, sh);
                for (int64_t b = 0; b < std::min(sw, W); ++b) {
                    const Phase& ph = phases[size_t(a * sw + b)];
                    for (size_t t = 0; t < ph.taps.size(); ++t) wt[t] = w[c * M * RS + ph.weight[t]];
                    RowsArgs args{dyp, ld, ph.taps.data(), wt.data(), int64_t(ph.taps.size()), 0.0f,
                                  out + a * W, sh * W, rows, ceil_div(W - b, sw)};
                    if (sw > 1)
                        args.out = phase_out + b * phase_rows * phase_ld, args.out_rstride = phase_ld, args.out_padded = true;
                    if (M == 1) args.R = ph.rows, args.S = ph.cols, args.tap_rstride = p.dil_h * ld;
                    k.rows(args);
                }
                if (sw == 1) continue;
                if (sw == 2) {
                    k.interleave2(RowCopy{phase_out, phase_out + phase_rows * phase_ld, phase_ld, out + a * W, nullptr,
                                          sh * W, rows, W});
                    continue;
                }
                for (int64_t i = 0; i < rows; ++i)
                    for (int64_t col = 0; col < W; ++col)
                        out[(a + i * sh) * W + col] = phase_out[((col % sw) * phase_rows + i) * phase_ld + col / sw];
            }
        }
    });
}

void conv2d_depthwise_backward_weight(const Conv2dParams& p, const float* x, const float* dy, float* dw) {
    require_depthwise(p);
    const int64_t P = p.P(), Q = p.Q(), M = p.K_per_group(), RS = p.R * p.S;
    const Kernels& k = kernels();
    const InputPacking pk(p);
    // Taps in balanced groups of at most kMaxReduceTaps (one register each): 9 -> 9, 25 -> 9+8+8.
    const int64_t groups = ceil_div(RS, depthwise::kMaxReduceTaps);
    // Images outermost over a block of channels, so that x and grad_output are read as two
    // sequential streams (channel c + 1's plane follows c's): channel-outer order reads one small
    // plane per image, scattered C*H*W floats apart, and stalled on memory with MobileNet's 7x7 maps
    // at batch 16. Blocks span up to 256 KiB of an image, their partial sums (8 lanes per weight,
    // added into double every kFold images and at the end) up to 128 KiB.
    const int64_t block = std::clamp<int64_t>((int64_t(64) << 10) / (p.H * p.W), 1,
                                              std::max<int64_t>(1, 4096 / (M * RS)));
    constexpr int64_t kFold = 16;
    parallel_for(p.C, [&](int64_t begin, int64_t end) {
        float* xp = pk.scratch(0);
        std::vector<float> lanes(size_t(block * M * RS * 8));
        std::vector<double> total(size_t(block * M * RS));
        auto fold = [&](int64_t channels) {
            for (int64_t t = 0; t < channels * M * RS; ++t) {
                double sum = 0.0;
                for (int64_t l = 0; l < 8; ++l) sum += lanes[size_t(8 * t + l)];
                total[size_t(t)] += sum;
            }
            std::fill(lanes.begin(), lanes.end(), 0.0f);
        };
        for (int64_t c0 = begin; c0 < end; c0 += block) {
            const int64_t channels = std::min(block, end - c0);
            std::fill(lanes.begin(), lanes.end(), 0.0f);
            std::fill(total.begin(), total.end(), 0.0);
            for (int64_t n = 0; n < p.N; ++n) {
                for (int64_t c = c0; c < c0 + channels; ++c) {
                    pk.pack(p, k, x + (n * p.C + c) * p.H * p.W, xp);
                    for (int64_t m = 0; m < M; ++m)
                        for (int64_t g = 0; g < groups; ++g) {
                            const int64_t t0 = RS * g / groups, t1 = RS * (g + 1) / groups;
                            float* acc = lanes.data() + 8 * (((c - c0) * M + m) * RS + t0);
                            k.reduce(ReduceArgs{xp, p.stride_h * pk.ld, pk.taps.data() + t0, t1 - t0,
                                                dy + (n * p.K + c * M + m) * P * Q, P, Q, acc});
                        }
                }
                if ((n + 1) % kFold == 0 || n + 1 == p.N) fold(channels);
            }
            for (int64_t t = 0; t < channels * M * RS; ++t) dw[c0 * M * RS + t] = float(total[size_t(t)]);
        }
    });
}

}  // namespace fastconv
