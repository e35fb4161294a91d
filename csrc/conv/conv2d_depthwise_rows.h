// Internal to the depthwise convolution: the inner loops conv2d_depthwise.cpp (driver, packing,
// portable path) shares with conv2d_depthwise_avx2.cpp (AVX2/FMA, called only when use_avx2()).
// Every pass runs over a zero-padded "packed" plane in which each kernel tap is a fixed offset and
// consecutive outputs read consecutive floats, so the loops below never test a border:
//
//   rows:   out[i * out_rstride + j] = init + sum_t w[t] * in[i * in_rstride + taps[t] + j]
//           for i < rows, j < cols (forward; input gradient per stride phase);
//   reduce: acc[t] += sum_i sum_j dy[i * cols + j] * in[i * in_rstride + taps[t] + j]
//           for t < ntaps (weight gradient), kept as 8 partial sums (lane j % 8) per tap.
// The packed rows hold at least round_up(cols, 8) + max(taps) floats beyond each row start that
// the loops read, all finite (zeros outside the data), so a tail vector may read past `cols`.
// Declarations only, so nothing compiled with -mavx2 leaks into portable code.
#pragma once

#include <cstdint>

namespace fastconv::depthwise {

struct RowsArgs {
    const float* in;       // packed plane at the first input of output row 0
    int64_t in_rstride;    // floats between the inputs of consecutive output rows
    const int64_t* taps;   // ntaps offsets in the packed plane
    const float* w;        // ntaps weights
    int64_t ntaps;
    float init;            // the bias, or 0
    float* out;            // output row 0 (columns contiguous)
    int64_t out_rstride;
    int64_t rows, cols;
    // Separable taps, when R > 0: ntaps = R * S with taps[r * S + s] = taps[s] + r * tap_rstride
    // (w in the same order). With in_rstride == tap_rstride (stride 1) an input row serves up to
    // R output rows, which the AVX2 loop exploits for R = 3, 5, 7.
    int64_t R = 0, S = 0, tap_rstride = 0;
    // Rows under 8 outputs are written one float at a time unless a whole vector may be stored:
    // out_padded says every output row has room for 8 floats (scratch); otherwise, with
    // out_rstride == cols (one contiguous plane), a row whose 8 floats end inside the plane spills
    // into the rows after it, which are written later.
    bool out_padded = false;
};

struct ReduceArgs {
    const float* in;       // packed input plane at output row 0
    int64_t in_rstride;
    const int64_t* taps;   // ntaps <= kMaxReduceTaps offsets
    int64_t ntaps;
    const float* dy;       // rows x cols, contiguous
    int64_t rows, cols;
    float* acc;            // 8 partial sums (lanes) per tap: acc[8 * t + l], added to
};

// Taps one reduce call sums at once: one 8-wide accumulator each, plus the gradient vector and
// one input vector, within the 16 ymm registers.
constexpr int kMaxReduceTaps = 12;

// Row-by-row data movement of the packing: `rows` rows, row r of a source at src + r * src_rstride,
// of a destination at dst + r * dst_rstride (src2 / dst2 the same for the second of a pair).
// copy and deinterleave2 fill packed planes: they may write zeros to the 8 floats after a
// destination row's n (its padding, or data written later: rows go in order), so the scratch
// they fill ends with kPackSlack spare floats. interleave2 writes the caller's array, nothing else.
constexpr int64_t kPackSlack = 8;

struct RowCopy {
    const float* src;
    const float* src2;
    int64_t src_rstride;
    float* dst;
    float* dst2;
    int64_t dst_rstride;
    int64_t rows, n;
};

struct Kernels {
    void (*rows)(const RowsArgs&);
    void (*reduce)(const ReduceArgs&);
    void (*copy)(const RowCopy&);          // dst[j] = src[j], j < n
    void (*deinterleave2)(const RowCopy&);  // dst[i] = src[2i], dst2[i] = src[2i + 1], i < n (stride-2 packing)
    void (*interleave2)(const RowCopy&);    // dst[j] = (j even ? src : src2)[j / 2], j < n
};

const Kernels& portable_kernels();
const Kernels& avx2_kernels();  // only in x86-64 builds (conv2d_depthwise_avx2.cpp)

}  // namespace fastconv::depthwise
