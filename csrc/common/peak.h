// The machine's measured FP32 peak: a loop of independent multiply-add chains on every configured
// thread, the ceiling that GEMM and convolution timings are reported against.
#pragma once

#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "common/parallel.h"

namespace fastconv {

// GFLOP/s of `iterations` steps of independent 8-wide FMA chains on each of get_num_threads()
// threads (best of `repeats`). AVX2/FMA when use_avx2(), else the portable loop. Each thread's time
// is its own CPU time (the slowest thread counts), so time slices lost to other processes on a
// shared machine do not lower the figure; on an idle machine it equals the wall-clock rate.
double fma_peak_gflops(int64_t iterations, int repeats);

// The AVX2/FMA loop (call only when use_avx2()): 12 chains of 8-wide FMAs per thread.
double fma_peak_gflops_avx2(int64_t iterations, int repeats);

// Runs loop(iterations, seed) on every configured thread `repeats` times; returns the best rate of
// flops_per_thread per thread over the slowest thread's CPU time, in GFLOP/s. Header-only so each
// caller's loop is inlined into code built with its own instruction set.
template <class Loop>
double peak_gflops_of(Loop loop, double flops_per_thread, int64_t iterations, int repeats) {
    const int threads = get_num_threads();
    std::atomic<float> sink{0.0f};  // keeps the loops' results alive
    double best = 0.0;
    for (int r = 0; r < repeats; ++r) {
        std::atomic<long long> slowest_ns{0};
        parallel_for(threads, [&](long long begin, long long end) {
            timespec t0, t1;
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
            for (long long t = begin; t < end; ++t) sink.store(loop(iterations, float(t)));
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
            const long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
            long long seen = slowest_ns.load();
            while (ns > seen && !slowest_ns.compare_exchange_weak(seen, ns)) {
            }
        });
        const double seconds = double(slowest_ns.load()) * 1e-9;
        if (seconds > 0.0) best = std::max(best, threads * flops_per_thread / seconds);
    }
    return best * 1e-9;
}

}  // namespace fastconv
