#include "common/peak.h"

#include <omp.h>

#include <atomic>

#include "common/cpu_features.h"
#include "common/parallel.h"

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
    const int threads = get_num_threads();
    std::atomic<float> sink{0.0f};
    double best = 0.0;
    for (int r = 0; r < repeats; ++r) {
        const double t0 = omp_get_wtime();
        parallel_for(threads, [&](long long begin, long long end) {
            for (long long t = begin; t < end; ++t) sink.store(mul_add_chains(iterations, float(t)));
        });
        const double seconds = omp_get_wtime() - t0;
        const double flops = double(threads) * double(iterations) * 48 * 2.0;
        if (seconds > 0.0 && flops / seconds > best) best = flops / seconds;
    }
    return best * 1e-9;
}

}  // namespace fastconv
