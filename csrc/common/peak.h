// The machine's measured FP32 peak: a loop of independent multiply-add chains on every configured
// thread, the ceiling that GEMM and convolution timings are reported against.
#pragma once

#include <cstdint>

namespace fastconv {

// GFLOP/s of `iterations` steps of independent 8-wide FMA chains on each of get_num_threads()
// threads (best of `repeats`). AVX2/FMA when use_avx2(), else the portable loop.
double fma_peak_gflops(int64_t iterations, int repeats);

// The AVX2/FMA loop (call only when use_avx2()): 12 chains of 8-wide FMAs per thread.
double fma_peak_gflops_avx2(int64_t iterations, int repeats);

}  // namespace fastconv
