// AVX2/FMA SGEMM: the blocked loop nest of sgemm_driver.h around a 6x16 register-blocked
// micro-kernel (built with -mavx2 -mfma; called only when use_avx2()).
//
// The micro-kernel and its packing routines are in sgemm_avx2_kernel.h (shared with the
// implicit-GEMM convolution).
#include "gemm/gemm.h"
#include "gemm/sgemm_avx2_kernel.h"
#include "gemm/sgemm_driver.h"

namespace fastconv {

void sgemm_avx2(const GemmParams& p, const float* A, const float* B, float* C) {
    sgemm_blocked<Avx2Kernel>(p, A, B, C);
}

}  // namespace fastconv
