// sgemm: degenerate sizes here, then the AVX2 or the portable blocked kernel by cpu_features.
#include "common/cpu_features.h"
#include "gemm/gemm.h"

namespace fastconv {

void sgemm(const GemmParams& p, const float* A, const float* B, float* C) {
    if (p.M <= 0 || p.N <= 0) return;
    if (p.K <= 0) {  // empty sum: C = beta * C, without reading C when beta == 0
        for (int64_t i = 0; i < p.M; ++i)
            for (int64_t j = 0; j < p.N; ++j) {
                float& c = C[i * p.c_row + j * p.c_col];
                c = p.beta == 0.0f ? 0.0f : p.beta * c;
            }
        return;
    }
#if !defined(FASTCONV_NO_AVX2)
    if (use_avx2()) return sgemm_avx2(p, A, B, C);
#endif
    sgemm_portable(p, A, B, C);
}

}  // namespace fastconv
