// AVX2/FMA inner loops of the depthwise convolution (what they compute: conv2d_depthwise_rows.h;
// conv2d_depthwise.cpp packs the planes and drives them).
//  - rows: 32 outputs of a row per step (4 accumulators), one broadcast weight and 4 unaligned loads
//    per tap: 9 broadcasts + 36 loads for 36 FMAs on a 3x3 kernel; then single vectors, and a
//    masked store for the last 1-7 outputs of a row.
//  - reduce: TB <= 12 taps at once, one accumulator each: per 8 outputs one gradient load, then
//    TB input loads and TB FMAs; the 8 lanes are summed once per call.
//  - (de)interleave for stride 2: two loads, two shuffles and two lane permutes per 16 floats.
#include <immintrin.h>

#include <cstdint>

#include "conv/conv2d_depthwise_rows.h"

namespace fastconv::depthwise {

namespace {

inline __m256i tail_mask(int64_t n) {  // first n lanes set (0 <= n <= 8)
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), lanes);
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 8 * QV outputs starting at in / out.
template <int QV>
inline void rows_block(const float* in, const int64_t* taps, const float* w, int64_t ntaps, __m256 init,
                       __m256 acc[QV]) {
#pragma GCC unroll 4
    for (int q = 0; q < QV; ++q) acc[q] = init;
    for (int64_t t = 0; t < ntaps; ++t) {
        const __m256 wt = _mm256_broadcast_ss(w + t);
        const float* src = in + taps[t];
#pragma GCC unroll 4
        for (int q = 0; q < QV; ++q) acc[q] = _mm256_fmadd_ps(wt, _mm256_loadu_ps(src + 8 * q), acc[q]);
    }
}

void rows_avx2(const RowsArgs& a) {
    const __m256 init = _mm256_set1_ps(a.init);
    const int64_t cols = a.cols, ntaps = a.ntaps;
    for (int64_t i = 0; i < a.rows; ++i) {
        const float* in = a.in + i * a.in_rstride;
        float* out = a.out + i * a.out_rstride;
        int64_t j = 0;
        for (; j + 32 <= cols; j += 32) {
            __m256 acc[4];
            rows_block<4>(in + j, a.taps, a.w, ntaps, init, acc);
#pragma GCC unroll 4
            for (int q = 0; q < 4; ++q) _mm256_storeu_ps(out + j + 8 * q, acc[q]);
        }
        for (; j < cols; j += 8) {
            __m256 acc[1];
            rows_block<1>(in + j, a.taps, a.w, ntaps, init, acc);
            if (j + 8 <= cols)
                _mm256_storeu_ps(out + j, acc[0]);
            else
                _mm256_maskstore_ps(out + j, tail_mask(cols - j), acc[0]);
        }
    }
}

template <int TB>
void reduce_taps(const ReduceArgs& a) {
    __m256 acc[TB];
    int64_t taps[TB];
#pragma GCC unroll 12
    for (int t = 0; t < TB; ++t) acc[t] = _mm256_setzero_ps(), taps[t] = a.taps[t];
    const int64_t cols = a.cols, full = cols / 8 * 8;
    const __m256i mask = tail_mask(cols - full);
    for (int64_t i = 0; i < a.rows; ++i) {
        const float* d = a.dy + i * cols;
        const float* in = a.in + i * a.in_rstride;
        for (int64_t j = 0; j < cols; j += 8) {
            // The tail's gradient lanes past `cols` load as zero; its input lanes are finite padding.
            const __m256 g = j < full ? _mm256_loadu_ps(d + j) : _mm256_maskload_ps(d + j, mask);
#pragma GCC unroll 12
            for (int t = 0; t < TB; ++t) acc[t] = _mm256_fmadd_ps(g, _mm256_loadu_ps(in + taps[t] + j), acc[t]);
        }
    }
#pragma GCC unroll 12
    for (int t = 0; t < TB; ++t) a.acc[t] += hsum(acc[t]);
}

void reduce_avx2(const ReduceArgs& a) {
    using Fn = void (*)(const ReduceArgs&);
    static constexpr Fn by_taps[kMaxReduceTaps] = {reduce_taps<1>, reduce_taps<2>,  reduce_taps<3>,  reduce_taps<4>,
                                                   reduce_taps<5>, reduce_taps<6>,  reduce_taps<7>,  reduce_taps<8>,
                                                   reduce_taps<9>, reduce_taps<10>, reduce_taps<11>, reduce_taps<12>};
    if (a.ntaps >= 1 && a.ntaps <= kMaxReduceTaps) by_taps[a.ntaps - 1](a);
}

void deinterleave2_avx2(const float* src, int64_t n, float* even, float* odd) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 lo = _mm256_loadu_ps(src + 2 * i), hi = _mm256_loadu_ps(src + 2 * i + 8);
        // [l0 l2 h0 h2 | l4 l6 h4 h6] -> 64-bit lanes 0 2 1 3 -> [l0 l2 l4 l6 h0 h2 h4 h6]
        const __m256 e = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
        const __m256 o = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
        _mm256_storeu_ps(even + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0))));
        _mm256_storeu_ps(odd + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0))));
    }
    for (; i < n; ++i) even[i] = src[2 * i], odd[i] = src[2 * i + 1];
}

void interleave2_avx2(const float* even, const float* odd, int64_t n, float* dst) {
    int64_t i = 0;
    for (; 2 * i + 16 <= n; i += 8) {
        const __m256 e = _mm256_loadu_ps(even + i), o = _mm256_loadu_ps(odd + i);
        const __m256 lo = _mm256_unpacklo_ps(e, o), hi = _mm256_unpackhi_ps(e, o);  // [e0 o0 e1 o1 | e4 o4 e5 o5], ...
        _mm256_storeu_ps(dst + 2 * i, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_storeu_ps(dst + 2 * i + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
    for (int64_t k = 2 * i; k < n; ++k) dst[k] = (k % 2 ? odd : even)[k / 2];
}

}  // namespace

const Kernels& avx2_kernels() {
    static const Kernels k{rows_avx2, reduce_avx2, deinterleave2_avx2, interleave2_avx2};
    return k;
}

}  // namespace fastconv::depthwise
