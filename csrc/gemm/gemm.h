// Single-precision GEMM: C = alpha * A @ B + beta * C over strided views (see GemmParams).
#pragma once

#include "common/params.h"

namespace fastconv {

// The entry point every caller uses (Python's fastconv.gemm, im2col, FFT, Winograd, Linear).
// Picks the AVX2/FMA path when the CPU has it. Parallel over blocks with the configured thread
// count, or single-threaded when called from inside a parallel region. beta == 0 means C is
// written without being read (NaNs already in C do not propagate), as in BLAS.
void sgemm(const GemmParams& p, const float* A, const float* B, float* C);

// The two blocked implementations sgemm chooses between (M, N, K >= 1): packed panels and a
// register-blocked micro-kernel, AVX2/FMA (call only when use_avx2()) or portable C++.
void sgemm_avx2(const GemmParams& p, const float* A, const float* B, float* C);
void sgemm_portable(const GemmParams& p, const float* A, const float* B, float* C);

// Readable triple loop with double accumulation: the test baseline. Not for production use.
void sgemm_naive(const GemmParams& p, const float* A, const float* B, float* C);

}  // namespace fastconv
