#include "gemm/gemm.h"

namespace fastconv {

void sgemm_naive(const GemmParams& p, const float* A, const float* B, float* C) {
    for (int64_t i = 0; i < p.M; ++i) {
        for (int64_t j = 0; j < p.N; ++j) {
            double acc = 0.0;
            for (int64_t k = 0; k < p.K; ++k)
                acc += double(A[i * p.a_row + k * p.a_col]) * double(B[k * p.b_row + j * p.b_col]);
            float& c = C[i * p.c_row + j * p.c_col];
            c = p.beta == 0.0f ? float(p.alpha * acc) : float(p.alpha * acc + double(p.beta) * double(c));
        }
    }
}

}  // namespace fastconv
