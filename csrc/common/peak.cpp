#include "common/peak.h"

#include "common/cpu_features.h"

namespace fastconv {

namespace {

// Portable stand-in: the same chains as plain C++ multiply-adds (auto-vectorised, no FMA).
float mul_add_chains(int64_t iterations, float seed) {
    constexpr int kWidth = 48;
    float acc[kWidth];
    for (int i = 0; i < kWidth; ++i) acc[i] = seed + float(i);
    for (int64_t it = 0; it < iterations; ++it)
        for (int i = 0; i < kWidth; ++i) acc[i] = acc[i] * 0.999f + 0.001f;
    float sum = 0.0f;
    for (int i = 0; i < kWidth; ++i) sum += acc[i];
    return sum;
}

}  // namespace

double fma_peak_gflops(int64_t iterations, int repeats) {
#if !defined(FASTCONV_NO_AVX2)
    if (use_avx2()) return fma_peak_gflops_avx2(iterations, repeats);
#endif
    return peak_gflops_of([](int64_t n, float seed) { return mul_add_chains(n, seed); },
                          double(iterations) * 48 * 2.0, iterations, repeats);
}

}  // namespace fastconv
