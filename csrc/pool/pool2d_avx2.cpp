// AVX2 inner loops of the pooling kernels (see pool2d.h, pool2d_rows.h): 8 outputs of one output
// row per step (4 for rows of 4-7 interior outputs), for horizontal strides 1 and 2 (max pooling:
// any dilation, which only spaces the taps). A stride-2 tap (x[c], x[c+2], ..., x[c+14]) is two
// unaligned loads and one in-lane shuffle; the lane order is fixed once per 8 outputs, after the
// window is reduced. Window taps are visited in row-major order so ties and NaNs resolve exactly as
// in the scalar loop (and PyTorch). Measured in benchmarks/results/*_pool.md.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "pool/pool2d_rows.h"

namespace fastconv::pool_detail {

namespace {

// x[src + j * SW] for j = 0..7. For SW == 2 the lanes hold j = {0,1,4,5, 2,3,6,7}; the second load
// starts at src + 7 so nothing past the last element used (src + 14) is read.
template <int SW>
inline __m256 tap(const float* src) {
    if constexpr (SW == 1) {
        return _mm256_loadu_ps(src);
    } else {
        const __m256 a = _mm256_loadu_ps(src), b = _mm256_loadu_ps(src + 7);
        return _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 2, 0));  // [a0 a2 b1 b3 | a4 a6 b5 b7]
    }
}

// Offsets j * SW of each lane, in tap<SW>'s lane order.
template <int SW>
inline __m256i lane_offsets() {
    if constexpr (SW == 1) return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    else return _mm256_setr_epi32(0, 2, 8, 10, 4, 6, 12, 14);
}

// Back from tap<SW>'s lane order to j = 0..7 (swap the middle 64-bit pairs).
template <int SW>
inline __m256 in_order(__m256 v) {
    if constexpr (SW == 1) return v;
    else return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), _MM_SHUFFLE(3, 1, 2, 0)));
}
template <int SW>
inline __m256i in_order(__m256i v) {
    if constexpr (SW == 1) return v;
    else return _mm256_permute4x64_epi64(v, _MM_SHUFFLE(3, 1, 2, 0));
}

// The last step of a row is moved back to end at q1: forward outputs are pure functions of the
// input, so computing a few of them twice is harmless and saves a scalar tail.
// DILATED false: dilation 1 as a compile-time constant (the common case keeps its tight loop).
template <int SW, bool IDX, bool DILATED>
void max_row(const PoolRow& r, const float* x, float* y, int64_t* idx) {
    const __m256i lanes = lane_offsets<SW>();
    // Locals, not r's fields: the vector stores may alias r, which would reload them every tap.
    const int64_t W = r.W, ih0 = r.ih0, ih1 = r.ih1, kw = r.kw, q1 = r.q1;
    const int64_t dh = DILATED ? r.dh : 1, dw = DILATED ? r.dw : 1;
    for (int64_t q = r.q0; q < q1; q += 8) {
        q = std::min(q, q1 - 8);
        const int64_t col = q * SW - r.pw;
        const int64_t first = ih0 * W + col;
        __m256 best = tap<SW>(x + first);
        __m256i best_i = _mm256_add_epi32(lanes, _mm256_set1_epi32(int32_t(first)));
        for (int64_t ih = ih0, row = first; ih < ih1; ih += dh, row += dh * W)
            for (int64_t k = (ih == ih0), at = row + k * dw; k < kw; ++k, at += dw) {
                const __m256 v = tap<SW>(x + at);
                // Take v where v > best or v is NaN (a NaN, once taken, is only replaced by a later NaN).
                const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
                best = _mm256_blendv_ps(best, v, take);
                if constexpr (IDX) {
                    const __m256i cand = _mm256_add_epi32(lanes, _mm256_set1_epi32(int32_t(at)));
                    best_i = _mm256_castps_si256(
                        _mm256_blendv_ps(_mm256_castsi256_ps(best_i), _mm256_castsi256_ps(cand), take));
                }
            }
        _mm256_storeu_ps(y + q, in_order<SW>(best));
        if constexpr (IDX) {
            const __m256i bi = in_order<SW>(best_i);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + q), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(bi)));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + q + 4),
                                _mm256_cvtepi32_epi64(_mm256_extracti128_si256(bi, 1)));
        }
    }
}

// The same for rows with 4 to 7 interior outputs (small images: a 3x3 stride-2 pool of a 16x16
// plane has 7), 4 outputs per step with 128-bit vectors.
template <int SW>
inline __m128 tap4(const float* src) {
    if constexpr (SW == 1) {
        return _mm_loadu_ps(src);
    } else {  // x[0], x[2], x[4], x[6] in order; the second load ends at src + 6, the last element used
        return _mm_shuffle_ps(_mm_loadu_ps(src), _mm_loadu_ps(src + 3), _MM_SHUFFLE(3, 1, 2, 0));
    }
}

template <int SW, bool IDX, bool DILATED>
void max_row4(const PoolRow& r, const float* x, float* y, int64_t* idx) {
    const __m128i lanes = _mm_setr_epi32(0, SW, 2 * SW, 3 * SW);
    const int64_t W = r.W, ih0 = r.ih0, ih1 = r.ih1, kw = r.kw, q1 = r.q1;  // see max_row
    const int64_t dh = DILATED ? r.dh : 1, dw = DILATED ? r.dw : 1;
    for (int64_t q = r.q0; q < q1; q += 4) {
        q = std::min(q, q1 - 4);
        const int64_t col = q * SW - r.pw;
        const int64_t first = ih0 * W + col;
        __m128 best = tap4<SW>(x + first);
        __m128i best_i = _mm_add_epi32(lanes, _mm_set1_epi32(int32_t(first)));
        for (int64_t ih = ih0, row = first; ih < ih1; ih += dh, row += dh * W)
            for (int64_t k = (ih == ih0), at = row + k * dw; k < kw; ++k, at += dw) {
                const __m128 v = tap4<SW>(x + at);
                const __m128 take = _mm_or_ps(_mm_cmpgt_ps(v, best), _mm_cmpunord_ps(v, v));
                best = _mm_blendv_ps(best, v, take);
                if constexpr (IDX) {
                    const __m128i cand = _mm_add_epi32(lanes, _mm_set1_epi32(int32_t(at)));
                    best_i = _mm_castps_si128(_mm_blendv_ps(_mm_castsi128_ps(best_i), _mm_castsi128_ps(cand), take));
                }
            }
        _mm_storeu_ps(y + q, best);
        if constexpr (IDX) {
            _mm_storeu_si128(reinterpret_cast<__m128i*>(idx + q), _mm_cvtepi32_epi64(best_i));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(idx + q + 2), _mm_cvtepi32_epi64(_mm_srli_si128(best_i, 8)));
        }
    }
}

template <int SW>
void avg_row(const PoolRow& r, const float* x, float divisor, float* y) {
    const __m256 div = _mm256_set1_ps(divisor);
    for (int64_t q = r.q0; q < r.q1; q += 8) {
        q = std::min(q, r.q1 - 8);
        const int64_t col = q * SW - r.pw;
        __m256 sum = _mm256_setzero_ps();
        for (int64_t ih = r.ih0; ih < r.ih1; ++ih)
            for (int64_t k = 0; k < r.kw; ++k) sum = _mm256_add_ps(sum, tap<SW>(x + ih * r.W + col + k));
        _mm256_storeu_ps(y + q, _mm256_div_ps(in_order<SW>(sum), div));
    }
}

template <bool DILATED>
void max_rows(int64_t n, const PoolRow& r, const float* x, float* y, int64_t* idx) {
    if (n >= 8) {
        if (r.sw == 1) idx ? max_row<1, true, DILATED>(r, x, y, idx) : max_row<1, false, DILATED>(r, x, y, nullptr);
        else idx ? max_row<2, true, DILATED>(r, x, y, idx) : max_row<2, false, DILATED>(r, x, y, nullptr);
    } else {
        if (r.sw == 1) idx ? max_row4<1, true, DILATED>(r, x, y, idx) : max_row4<1, false, DILATED>(r, x, y, nullptr);
        else idx ? max_row4<2, true, DILATED>(r, x, y, idx) : max_row4<2, false, DILATED>(r, x, y, nullptr);
    }
}

}  // namespace

int64_t max_pool_row_avx2(const PoolRow& r, const float* x_plane, float* y_row, int64_t* idx_row) {
    const int64_t n = r.q1 - r.q0;
    if (n < 4 || (r.sw != 1 && r.sw != 2)) return r.q0;
    if (idx_row && r.ih1 * r.W > INT32_MAX) return r.q0;  // lane indices are int32
    if (r.dh == 1 && r.dw == 1)
        max_rows<false>(n, r, x_plane, y_row, idx_row);
    else
        max_rows<true>(n, r, x_plane, y_row, idx_row);
    return r.q1;
}

int64_t avg_pool_row_avx2(const PoolRow& r, const float* x_plane, float divisor, float* y_row) {
    if (r.q1 - r.q0 < 8) return r.q0;
    if (r.sw == 1) avg_row<1>(r, x_plane, divisor, y_row);
    else if (r.sw == 2) avg_row<2>(r, x_plane, divisor, y_row);
    else return r.q0;
    return r.q1;
}

}  // namespace fastconv::pool_detail
