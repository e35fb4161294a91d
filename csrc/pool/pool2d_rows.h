// Internal to csrc/pool: the vectorised inner loops shared by pool2d.cpp (driver, edges, portable
// path) and pool2d_avx2.cpp (AVX2, called only when use_avx2()).
#pragma once

#include <cstdint>

namespace fastconv::pool_detail {

// One output row of a pooling pass, restricted to its interior outputs [q0, q1): windows that lie
// inside the input horizontally, so no column clipping. Input rows ih0, ih0 + dh, ... < ih1 are the
// valid rows of the window (already clipped to the input); taps of a row are dw apart (max pooling
// may be dilated; average pooling has dh = dw = 1).
struct PoolRow {
    int64_t W;         // input row length
    int64_t ih0, ih1;  // valid input rows
    int64_t dh;
    int64_t kw, sw, pw, dw;
    int64_t q0, q1;
};

#if defined(FASTCONV_NO_AVX2)
// Not an x86-64 build: the portable loops do every output.
inline int64_t max_pool_row_avx2(const PoolRow& r, const float*, float*, int64_t*) { return r.q0; }
inline int64_t avg_pool_row_avx2(const PoolRow& r, const float*, float, float*) { return r.q0; }
#else
// Each returns the first output it did not handle: q1 when it did the whole range, q0 when the
// shape is not one it vectorises (stride other than 1 or 2, fewer than 4 outputs (max) or 8 (avg), ...).
int64_t max_pool_row_avx2(const PoolRow& r, const float* x_plane, float* y_row, int64_t* idx_row);
int64_t avg_pool_row_avx2(const PoolRow& r, const float* x_plane, float divisor, float* y_row);
#endif

}  // namespace fastconv::pool_detail
