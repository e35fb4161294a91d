#include "nn/batch_norm.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/parallel.h"

namespace fastconv {

namespace {

// One channel per task: every pass over a channel touches N planes of HW contiguous floats.
template <class F>
void per_channel(int64_t N, int64_t C, int64_t HW, F&& body) {
    auto run = [&](long long c0, long long c1) {
        for (int64_t c = c0; c < c1; ++c) body(c);
    };
    if (N * C * HW < kParallelMin) {
        run(0, C);
    } else {
        parallel_for(C, run);
    }
}

}  // namespace

void batch_norm_stats(const float* x, int64_t N, int64_t C, int64_t HW, float* mean, float* var) {
    const double count = double(N) * double(HW);
    per_channel(N, C, HW, [&](int64_t c) {
        // Sum and sum of squares in double: float32 data cannot cancel catastrophically there
        // unless mean^2 / var exceeds ~1e9, far beyond activations.
        double sum = 0.0, sumsq = 0.0;
        for (int64_t n = 0; n < N; ++n) {
            const float* plane = x + (n * C + c) * HW;
            float s[8] = {}, q[8] = {};  // independent partial sums the compiler can vectorize
            int64_t i = 0;
            for (; i + 8 <= HW; i += 8)
                for (int j = 0; j < 8; ++j) {
                    s[j] += plane[i + j];
                    q[j] += plane[i + j] * plane[i + j];
                }
            double ps = 0.0, pq = 0.0;
            for (; i < HW; ++i) {
                ps += plane[i];
                pq += double(plane[i]) * plane[i];
            }
            for (int j = 0; j < 8; ++j) {
                ps += s[j];
                pq += q[j];
            }
            sum += ps;
            sumsq += pq;
        }
        const double m = sum / count;
        const double v = sumsq / count - m * m;
        mean[c] = float(m);
        var[c] = float(v > 0.0 ? v : 0.0);
    });
}

namespace {

// The forward's affine map of channel c: y = x * scale + shift. The backward of the fused ReLU
// recomputes y > 0 with this same expression, so its mask equals the forward's exactly.
struct ChannelAffine {
    float scale, shift;
    ChannelAffine(int64_t c, const float* mean, const float* inv_std, const float* gamma, const float* beta)
        : scale(inv_std[c] * (gamma ? gamma[c] : 1.0f)), shift((beta ? beta[c] : 0.0f) - mean[c] * scale) {}
    float operator()(float x) const { return x * scale + shift; }
};

}  // namespace

void batch_norm_forward(const float* x, int64_t N, int64_t C, int64_t HW, const float* mean, const float* inv_std,
                        const float* gamma, const float* beta, bool relu, float* y) {
    per_channel(N, C, HW, [&](int64_t c) {
        const ChannelAffine affine(c, mean, inv_std, gamma, beta);
        for (int64_t n = 0; n < N; ++n) {
            const float* src = x + (n * C + c) * HW;
            float* dst = y + (n * C + c) * HW;
            if (relu) {
                for (int64_t i = 0; i < HW; ++i) dst[i] = std::max(affine(src[i]), 0.0f);
            } else {
                for (int64_t i = 0; i < HW; ++i) dst[i] = affine(src[i]);
            }
        }
    });
}

namespace {

// The gradient reaching the normalization: dy, or (Relu) dy where the fused ReLU's output was > 0.
// A compile-time switch and a bit mask keep both loops vectorized (a run-time test, or the select
// g or 0, inside them made the backward 6x slower).
template <bool Relu>
inline float masked(float g, float x, const ChannelAffine& affine) {
    if constexpr (Relu) {
        // g & (all ones if kept): the compiler vectorizes a bitwise and, not the select g or 0.
        uint32_t bits;
        std::memcpy(&bits, &g, sizeof bits);
        bits &= 0u - uint32_t(affine(x) > 0.0f);
        std::memcpy(&g, &bits, sizeof bits);
    }
    return g;
}

template <bool Relu>
void batch_norm_backward_channel(const float* x, const float* dy, int64_t N, int64_t C, int64_t HW, int64_t c,
                                 double count, const float* mean, const float* inv_std, const float* gamma,
                                 const float* beta, bool batch_statistics, float* dx, float* dgamma, float* dbeta) {
    const float m = mean[c], is = inv_std[c];
    const ChannelAffine affine(c, mean, inv_std, gamma, beta);
    // sum dy and sum dy * (x - mean): dgamma = inv_std * the second.
    double sum_dy = 0.0, sum_dy_xc = 0.0;
    for (int64_t n = 0; n < N; ++n) {
        const float* xp = x + (n * C + c) * HW;
        const float* gp = dy + (n * C + c) * HW;
        float s[8] = {}, t[8] = {};
        int64_t i = 0;
        for (; i + 8 <= HW; i += 8)
            for (int j = 0; j < 8; ++j) {
                const float g = masked<Relu>(gp[i + j], xp[i + j], affine);
                s[j] += g;
                t[j] += g * (xp[i + j] - m);
            }
        double ps = 0.0, pt = 0.0;
        for (; i < HW; ++i) {
            const float g = masked<Relu>(gp[i], xp[i], affine);
            ps += g;
            pt += double(g) * (xp[i] - m);
        }
        for (int j = 0; j < 8; ++j) {
            ps += s[j];
            pt += t[j];
        }
        sum_dy += ps;
        sum_dy_xc += pt;
    }
    if (dgamma) dgamma[c] = float(sum_dy_xc * is);
    if (dbeta) dbeta[c] = float(sum_dy);
    if (!dx) return;
    const float k = (gamma ? gamma[c] : 1.0f) * is;
    // dx = k * (dy - mean(dy) - (x - mean) * inv_std^2 * mean(dy * (x - mean)))
    const float mean_dy = batch_statistics ? float(sum_dy / count) : 0.0f;
    const float coef = batch_statistics ? float(sum_dy_xc / count) * is * is : 0.0f;
    for (int64_t n = 0; n < N; ++n) {
        const float* xp = x + (n * C + c) * HW;
        const float* gp = dy + (n * C + c) * HW;
        float* out = dx + (n * C + c) * HW;
        for (int64_t i = 0; i < HW; ++i) out[i] = k * (masked<Relu>(gp[i], xp[i], affine) - mean_dy - (xp[i] - m) * coef);
    }
}

}  // namespace

void batch_norm_backward(const float* x, const float* dy, int64_t N, int64_t C, int64_t HW, const float* mean,
                         const float* inv_std, const float* gamma, const float* beta, bool relu, bool batch_statistics,
                         float* dx, float* dgamma, float* dbeta) {
    const double count = double(N) * double(HW);
    per_channel(N, C, HW, [&](int64_t c) {
        if (relu)
            batch_norm_backward_channel<true>(x, dy, N, C, HW, c, count, mean, inv_std, gamma, beta, batch_statistics,
                                              dx, dgamma, dbeta);
        else
            batch_norm_backward_channel<false>(x, dy, N, C, HW, c, count, mean, inv_std, gamma, beta, batch_statistics,
                                               dx, dgamma, dbeta);
    });
}

}  // namespace fastconv
