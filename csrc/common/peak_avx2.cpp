// FP32 FMA peak: 12 independent 8-wide FMA chains per thread (two FMA pipes x 4-cycle latency need
// at least 8 in flight; 12 leave slack), 16 FLOP per FMA, timed with every configured thread busy.
#include <immintrin.h>

#include "common/peak.h"

namespace fastconv {

namespace {

constexpr int kChains = 12;

// x <- x * s + t converges to t / (1 - s): values stay normal, so nothing slows down or overflows.
float fma_chains(int64_t iterations, float seed) {
    __m256 acc[kChains];
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(seed + float(i));
    const __m256 s = _mm256_set1_ps(0.999f), t = _mm256_set1_ps(0.001f);
    for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
        for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], s, t);
    }
    __m256 sum = acc[0];
    for (int i = 1; i < kChains; ++i) sum = _mm256_add_ps(sum, acc[i]);
    return _mm256_cvtss_f32(sum);
}

}  // namespace

double fma_peak_gflops_avx2(int64_t iterations, int repeats) {
    return peak_gflops_of([](int64_t n, float seed) { return fma_chains(n, seed); },
                          double(iterations) * kChains * 16.0, iterations, repeats);
}

}  // namespace fastconv
