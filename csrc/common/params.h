// One parameter struct per op family. Every algorithm on every device takes these, so the shape
// logic (output size, validation, overflow checks) lives here once. Plain C++ that nvcc accepts.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#if defined(__CUDACC__)
#define FASTCONV_HOST_DEVICE __host__ __device__
#else
#define FASTCONV_HOST_DEVICE
#endif

namespace fastconv {

// Output length of one axis of a convolution or pooling window:
// floor((in + 2*pad - dilation*(window-1) - 1) / stride) + 1, or the ceil variant used by ceil_mode
// pooling (where a window may hang past the end: in = 1, window = 2, stride = 2 gives 1, as in PyTorch).
FASTCONV_HOST_DEVICE inline int64_t window_output_size(int64_t in, int64_t window, int64_t stride,
                                                       int64_t pad, int64_t dilation,
                                                       bool ceil_mode = false) {
    const int64_t span = in + 2 * pad - dilation * (window - 1) - 1 + (ceil_mode ? stride - 1 : 0);
    if (span < 0) return 0;  // floor(span / stride) + 1 <= 0
    int64_t out = span / stride + 1;
    // PyTorch rule: the last pooling window must start inside the input or left padding.
    if (ceil_mode && (out - 1) * stride >= in + pad) --out;
    return out;
}

// Product of non-negative sizes; throws std::overflow_error instead of wrapping around.
inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
    int64_t r;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r))
        throw std::overflow_error(std::string(what) + ": size overflows 64 bits");
    return r;
}

struct Conv2dParams {
    int64_t N = 0, C = 0, H = 0, W = 0;  // input (N, C, H, W)
    int64_t K = 0, R = 0, S = 0;          // weight (K, C / groups, R, S)
    int64_t stride_h = 1, stride_w = 1;
    int64_t pad_h = 0, pad_w = 0;
    int64_t dil_h = 1, dil_w = 1;
    int64_t groups = 1;

    FASTCONV_HOST_DEVICE int64_t P() const { return window_output_size(H, R, stride_h, pad_h, dil_h); }
    FASTCONV_HOST_DEVICE int64_t Q() const { return window_output_size(W, S, stride_w, pad_w, dil_w); }
    FASTCONV_HOST_DEVICE int64_t C_per_group() const { return C / groups; }
    FASTCONV_HOST_DEVICE int64_t K_per_group() const { return K / groups; }

    int64_t input_numel() const { return checked_mul(checked_mul(N, C, "input"), checked_mul(H, W, "input"), "input"); }
    int64_t weight_numel() const {
        return checked_mul(checked_mul(K, C_per_group(), "weight"), checked_mul(R, S, "weight"), "weight");
    }
    int64_t output_numel() const {
        return checked_mul(checked_mul(N, K, "output"), checked_mul(P(), Q(), "output"), "output");
    }
    // 2 * N * K * (C/groups) * R * S * P * Q: the FLOPs of one pass (forward or either gradient).
    double flops() const {
        return 2.0 * double(N) * double(K) * double(C_per_group()) * double(R) * double(S) * double(P()) *
               double(Q());
    }

    // Throws std::invalid_argument naming the offending argument; called by every entry point.
    void validate() const {
        auto fail = [](const std::string& msg) { throw std::invalid_argument(msg); };
        if (N < 0 || C < 1 || H < 1 || W < 1) fail("input: sizes must be positive (N may be 0)");
        if (K < 1 || R < 1 || S < 1) fail("weight: sizes must be positive");
        if (stride_h < 1 || stride_w < 1) fail("stride must be >= 1");
        if (dil_h < 1 || dil_w < 1) fail("dilation must be >= 1");
        if (pad_h < 0 || pad_w < 0) fail("padding must be >= 0");
        if (groups < 1 || C % groups != 0 || K % groups != 0) fail("groups must divide both C and K");
        if (P() < 1 || Q() < 1) fail("weight: kernel does not fit the padded input (output size < 1)");
        input_numel();
        weight_numel();
        output_numel();
    }
};

// The first tap of each window along one axis (taps start + j*dilation, j < window): whether some
// output's window holds no input element. With padding at most half the window that happens only
// when the input is shorter than the dilation (in = 1, window = 2, pad = 1, dilation = 2), for the
// windows that start in the left padding, whose first tap lands in [0, dilation).
inline bool dilated_window_misses_input(int64_t in, int64_t stride, int64_t pad, int64_t dilation, int64_t out) {
    if (in >= dilation) return false;
    // First taps repeat with period dilation in o, so at most `dilation` outputs need a look.
    for (int64_t o = 0; o < out && o < dilation && o * stride < pad; ++o) {
        const int64_t before = pad - o * stride;  // padding left of the window start
        const int64_t first = (dilation - before % dilation) % dilation;  // its first tap inside
        if (first >= in) return true;
    }
    return false;
}

struct Pool2dParams {
    int64_t N = 0, C = 0, H = 0, W = 0;
    int64_t kernel_h = 1, kernel_w = 1;
    int64_t stride_h = 1, stride_w = 1;
    int64_t pad_h = 0, pad_w = 0;
    bool ceil_mode = false;
    bool count_include_pad = true;  // average pooling only
    int64_t dil_h = 1, dil_w = 1;   // max pooling only: taps at start + j * dilation
    int64_t divisor_override = 0;   // average pooling only: divide every window by this (0: none)

    FASTCONV_HOST_DEVICE int64_t P() const { return window_output_size(H, kernel_h, stride_h, pad_h, dil_h, ceil_mode); }
    FASTCONV_HOST_DEVICE int64_t Q() const { return window_output_size(W, kernel_w, stride_w, pad_w, dil_w, ceil_mode); }

    void validate() const {
        auto fail = [](const std::string& msg) { throw std::invalid_argument(msg); };
        if (N < 0 || C < 1 || H < 1 || W < 1) fail("input: sizes must be positive (N may be 0)");
        if (kernel_h < 1 || kernel_w < 1) fail("kernel_size must be >= 1");
        if (stride_h < 1 || stride_w < 1) fail("stride must be >= 1");
        if (pad_h < 0 || pad_w < 0) fail("padding must be >= 0");
        if (dil_h < 1 || dil_w < 1) fail("dilation must be >= 1");
        if (divisor_override < 0) fail("divisor_override must be >= 1 (0 means none)");
        // Bounded so that H + 2 * pad, dilation * (kernel - 1) and o * stride in P()/Q() cannot overflow.
        constexpr int64_t kMaxWindow = (int64_t(1) << 31) - 1;
        if (kernel_h > kMaxWindow || kernel_w > kMaxWindow) fail("kernel_size must be < 2^31");
        if (stride_h > kMaxWindow || stride_w > kMaxWindow) fail("stride must be < 2^31");
        if (dil_h > kMaxWindow || dil_w > kMaxWindow) fail("dilation must be < 2^31");
        // PyTorch checks the undilated kernel here.
        if (2 * pad_h > kernel_h || 2 * pad_w > kernel_w) fail("padding must be at most half the kernel size");
        checked_mul(checked_mul(N, C, "input"), checked_mul(H, W, "input"), "input");
        if (P() < 1 || Q() < 1) fail("kernel_size: window does not fit the padded input (output size < 1)");
        // PyTorch returns -inf and an index outside the plane there; refuse instead.
        if (dilated_window_misses_input(H, stride_h, pad_h, dil_h, P()) ||
            dilated_window_misses_input(W, stride_w, pad_w, dil_w, Q()))
            fail("dilation: a window covers only padding (input smaller than the dilation)");
    }
    // validate() plus the fields the other kind of pooling ignores left at their defaults.
    void validate_max() const {
        validate();
        if (divisor_override != 0) throw std::invalid_argument("divisor_override: max pooling takes none");
    }
    void validate_avg() const {
        validate();
        if (dil_h != 1 || dil_w != 1) throw std::invalid_argument("dilation: average pooling takes none (as in PyTorch)");
    }
};

// C = alpha * A @ B + beta * C with A (M x K), B (K x N), C (M x N) given by element strides, so
// transposes and sliced views need no copy: element (i, k) of A is A[i * a_row + k * a_col].
struct GemmParams {
    int64_t M = 0, N = 0, K = 0;
    float alpha = 1.0f, beta = 0.0f;
    int64_t a_row = 0, a_col = 1;
    int64_t b_row = 0, b_col = 1;
    int64_t c_row = 0, c_col = 1;
};

}  // namespace fastconv
