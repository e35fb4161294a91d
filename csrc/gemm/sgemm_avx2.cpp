// AVX2/FMA SGEMM: the blocked loop nest of sgemm_driver.h around a 6x16 register-blocked
// micro-kernel (built with -mavx2 -mfma; called only when use_avx2()).
//
// Micro-kernel napkin math: 6 x 16 FP32 accumulators = 12 ymm registers; per k step 2 B loads,
// 6 A broadcasts and 12 independent FMAs (192 FLOP). Two FMA pipes with 4-cycle latency need at
// least 8 independent chains, so 12 keep them busy, and 8 loads per 12 FMAs fit the load ports.
// Row-edge tiles (m < 6) run the same code with fewer rows; column edges use masked loads/stores.
#include <immintrin.h>

#include "gemm/gemm.h"
#include "gemm/sgemm_driver.h"

namespace fastconv {

namespace {

struct Avx2Kernel {
    static constexpr int MR = 6, NR = 16;
    static constexpr int64_t MC = 144, KC = 256, NC = 4080;
    static constexpr int64_t kNoPackMaxM = 2 * MR;

    // Accumulators are named variables, not an array: GCC keeps a __m256 array in memory and
    // would store it back on every k step.
    template <int m>
    static void tile_rows(int64_t k, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, int n,
                          float alpha, float beta) {
        __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma GCC unroll 4
        for (int64_t kk = 0; kk < k; ++kk) {
            const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
            __m256 ar = _mm256_broadcast_ss(a);
            c00 = _mm256_fmadd_ps(ar, b0, c00), c01 = _mm256_fmadd_ps(ar, b1, c01);
            if constexpr (m > 1) {
                ar = _mm256_broadcast_ss(a + 1);
                c10 = _mm256_fmadd_ps(ar, b0, c10), c11 = _mm256_fmadd_ps(ar, b1, c11);
            }
            if constexpr (m > 2) {
                ar = _mm256_broadcast_ss(a + 2);
                c20 = _mm256_fmadd_ps(ar, b0, c20), c21 = _mm256_fmadd_ps(ar, b1, c21);
            }
            if constexpr (m > 3) {
                ar = _mm256_broadcast_ss(a + 3);
                c30 = _mm256_fmadd_ps(ar, b0, c30), c31 = _mm256_fmadd_ps(ar, b1, c31);
            }
            if constexpr (m > 4) {
                ar = _mm256_broadcast_ss(a + 4);
                c40 = _mm256_fmadd_ps(ar, b0, c40), c41 = _mm256_fmadd_ps(ar, b1, c41);
            }
            if constexpr (m > 5) {
                ar = _mm256_broadcast_ss(a + 5);
                c50 = _mm256_fmadd_ps(ar, b0, c50), c51 = _mm256_fmadd_ps(ar, b1, c51);
            }
            a += MR;
            b += ldb;
        }
        const __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
        update<m>(acc, c, ldc, n, alpha, beta);
    }

    // C[0:m, 0:n] = alpha * acc + beta * C (C not read when beta == 0); masked past column n.
    template <int m>
    static void update(const __m256 (&acc)[MR][2], float* c, int64_t ldc, int n, float alpha, float beta) {
        const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
        if (n == NR) {
            for (int r = 0; r < m; ++r) {
                float* cr = c + r * ldc;
                __m256 c0 = _mm256_mul_ps(va, acc[r][0]), c1 = _mm256_mul_ps(va, acc[r][1]);
                if (beta != 0.0f) {
                    c0 = _mm256_fmadd_ps(va, acc[r][0], _mm256_mul_ps(vb, _mm256_loadu_ps(cr)));
                    c1 = _mm256_fmadd_ps(va, acc[r][1], _mm256_mul_ps(vb, _mm256_loadu_ps(cr + 8)));
                }
                _mm256_storeu_ps(cr, c0);
                _mm256_storeu_ps(cr + 8, c1);
            }
            return;
        }
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
        const __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - 8), lane);
        for (int r = 0; r < m; ++r) {
            float* cr = c + r * ldc;
            __m256 c0 = _mm256_mul_ps(va, acc[r][0]), c1 = _mm256_mul_ps(va, acc[r][1]);
            if (beta != 0.0f) {
                c0 = _mm256_fmadd_ps(va, acc[r][0], _mm256_mul_ps(vb, _mm256_maskload_ps(cr, mask0)));
                c1 = _mm256_fmadd_ps(va, acc[r][1], _mm256_mul_ps(vb, _mm256_maskload_ps(cr + 8, mask1)));
            }
            _mm256_maskstore_ps(cr, mask0, c0);
            _mm256_maskstore_ps(cr + 8, mask1, c1);
        }
    }

    static void tile(int m, int64_t k, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, int n,
                     float alpha, float beta) {
        switch (m) {
            case 6: return tile_rows<6>(k, a, b, ldb, c, ldc, n, alpha, beta);
            case 5: return tile_rows<5>(k, a, b, ldb, c, ldc, n, alpha, beta);
            case 4: return tile_rows<4>(k, a, b, ldb, c, ldc, n, alpha, beta);
            case 3: return tile_rows<3>(k, a, b, ldb, c, ldc, n, alpha, beta);
            case 2: return tile_rows<2>(k, a, b, ldb, c, ldc, n, alpha, beta);
            default: return tile_rows<1>(k, a, b, ldb, c, ldc, n, alpha, beta);
        }
    }
};

}  // namespace

void sgemm_avx2(const GemmParams& p, const float* A, const float* B, float* C) {
    sgemm_blocked<Avx2Kernel>(p, A, B, C);
}

}  // namespace fastconv
