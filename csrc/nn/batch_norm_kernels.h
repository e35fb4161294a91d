// The batch-norm passes, written once and compiled twice: in batch_norm.cpp (portable) and
// batch_norm_avx2.cpp (-mavx2 -mfma, where the compiler vectorizes the same loops 8 wide with FMAs).
// Include inside the namespace of the path after <algorithm>, <cstdint>, <cstring>,
// common/parallel.h and nn/batch_norm.h; defines kernels().

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

// Two running sums over one channel: each plane is summed in float by an `omp simd` reduction
// (vector accumulators; a loop-carried float sum would not vectorize), and the plane sums are
// gathered in float and flushed into doubles every kFlush elements, so no float partial spans more
// than a plane or kFlush elements (relative error ~1e-5 at most, far below float32 data's).
// Flushing per plane instead cost more than the sums themselves on 8x8 planes.
struct ChannelSums {
    static constexpr int64_t kFlush = 1024;
    double a = 0.0, b = 0.0;
    float pending_a = 0.0f, pending_b = 0.0f;
    int64_t pending = 0;

    void add_plane(float plane_a, float plane_b, int64_t HW) {
        pending_a += plane_a;
        pending_b += plane_b;
        pending += HW;
        if (pending >= kFlush) flush();
    }
    void flush() {
        a += pending_a;
        b += pending_b;
        pending_a = pending_b = 0.0f;
        pending = 0;
    }
};

void stats(const float* x, int64_t N, int64_t C, int64_t HW, float* mean, float* var) {
    const double count = double(N) * double(HW);
    per_channel(N, C, HW, [&](int64_t c) {
        // Sums of d = x - shift and d^2, with the channel's first value as the shift: the variance
        // E[d^2] - E[d]^2 then cancels only on the scale of the spread, not of the mean, so float
        // partial sums keep it to ~1e-6 even for data with a mean far larger than its spread.
        const float shift = count > 0 ? x[c * HW] : 0.0f;
        ChannelSums sums;
        for (int64_t n = 0; n < N; ++n) {
            const float* plane = x + (n * C + c) * HW;
            float s = 0.0f, q = 0.0f;
#pragma omp simd reduction(+ : s, q)
            for (int64_t i = 0; i < HW; ++i) {
                const float d = plane[i] - shift;
                s += d;
                q += d * d;
            }
            sums.add_plane(s, q, HW);
        }
        sums.flush();
        const double m = sums.a / count;
        const double v = sums.b / count - m * m;
        mean[c] = float(shift + m);
        var[c] = float(v > 0.0 ? v : 0.0);
    });
}

// The forward's affine map of channel c: y = x * scale + shift. The backward of the fused ReLU
// recomputes y > 0 with this same expression, so its mask equals the forward's exactly.
struct ChannelAffine {
    float scale, shift;
    ChannelAffine(int64_t c, const float* mean, const float* inv_std, const float* gamma, const float* beta)
        : scale(inv_std[c] * (gamma ? gamma[c] : 1.0f)), shift((beta ? beta[c] : 0.0f) - mean[c] * scale) {}
    float operator()(float x) const { return x * scale + shift; }
};

void forward(const float* x, int64_t N, int64_t C, int64_t HW, const float* mean, const float* inv_std,
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
void backward_channel(const float* x, const float* dy, int64_t N, int64_t C, int64_t HW, int64_t c, double count,
                      const float* mean, const float* inv_std, const float* gamma, const float* beta,
                      bool batch_statistics, float* dx, float* dgamma, float* dbeta) {
    const float m = mean[c], is = inv_std[c];
    const ChannelAffine affine(c, mean, inv_std, gamma, beta);
    // sum dy and sum dy * (x - mean): dgamma = inv_std * the second.
    ChannelSums sums;
    for (int64_t n = 0; n < N; ++n) {
        const float* xp = x + (n * C + c) * HW;
        const float* gp = dy + (n * C + c) * HW;
        float s = 0.0f, t = 0.0f;
#pragma omp simd reduction(+ : s, t)
        for (int64_t i = 0; i < HW; ++i) {
            const float g = masked<Relu>(gp[i], xp[i], affine);
            s += g;
            t += g * (xp[i] - m);
        }
        sums.add_plane(s, t, HW);
    }
    sums.flush();
    const double sum_dy = sums.a, sum_dy_xc = sums.b;
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
        for (int64_t i = 0; i < HW; ++i)
            out[i] = k * (masked<Relu>(gp[i], xp[i], affine) - mean_dy - (xp[i] - m) * coef);
    }
}

void backward(const float* x, const float* dy, int64_t N, int64_t C, int64_t HW, const float* mean,
              const float* inv_std, const float* gamma, const float* beta, bool relu, bool batch_statistics,
              float* dx, float* dgamma, float* dbeta) {
    const double count = double(N) * double(HW);
    per_channel(N, C, HW, [&](int64_t c) {
        if (relu)
            backward_channel<true>(x, dy, N, C, HW, c, count, mean, inv_std, gamma, beta, batch_statistics, dx,
                                   dgamma, dbeta);
        else
            backward_channel<false>(x, dy, N, C, HW, c, count, mean, inv_std, gamma, beta, batch_statistics, dx,
                                    dgamma, dbeta);
    });
}

const BatchNormKernels& kernels() {
    static const BatchNormKernels k{stats, forward, backward};
    return k;
}
