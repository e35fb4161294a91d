// Portable SGEMM: the blocked loop nest of sgemm_driver.h around a plain C++ 4x8 micro-kernel that
// compilers auto-vectorise for the baseline ISA (SSE2 on x86-64): 4 x 8 accumulators are 8 xmm
// registers, leaving room for the B row and the A broadcast. Used when the CPU lacks AVX2/FMA or
// FASTCONV_CPU=portable.
#include "gemm/gemm.h"
#include "gemm/sgemm_driver.h"

namespace fastconv {

namespace {

struct PortableKernel {
    static constexpr int MR = 4, NR = 8;
    static constexpr int64_t MC = 128, KC = 256, NC = 4096;
    // One row panel uses each B panel once: packing it would only add a copy.
    static constexpr int64_t kNoPackMaxM = MR;
    static constexpr bool kStreamsA = false;  // tile() reads packed A panels only

    static void pack_a_rows(float* dst, const float* src, int64_t lda, int64_t kc) {
        for (int i = 0; i < MR; ++i)
            for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = src[i * lda + k];
    }

    static void pack_b_cols(float* dst, const float* src, int64_t ldb, int64_t kc) {
        for (int j = 0; j < NR; ++j)
            for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = src[j * ldb + k];
    }

    static void pack_b_rows(float* dst, const float* src, int64_t ldb, int64_t kc) {
        for (int64_t k = 0; k < kc; ++k)
            for (int j = 0; j < NR; ++j) dst[k * NR + j] = src[k * ldb + j];
    }

    template <int m>
    static void tile_rows(int64_t k, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, int n,
                          float alpha, float beta) {
        float acc[m][NR] = {};
        for (int64_t kk = 0; kk < k; ++kk) {
            for (int r = 0; r < m; ++r) {
                const float ar = a[r];
                for (int j = 0; j < NR; ++j) acc[r][j] += ar * b[j];
            }
            a += MR;
            b += ldb;
        }
        for (int r = 0; r < m; ++r) {
            float* cr = c + r * ldc;
            if (beta == 0.0f)
                for (int j = 0; j < n; ++j) cr[j] = alpha * acc[r][j];
            else
                for (int j = 0; j < n; ++j) cr[j] = alpha * acc[r][j] + beta * cr[j];
        }
    }

    static void tile(int m, int64_t k, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, int n,
                     float alpha, float beta) {
        switch (m) {
            case 4: return tile_rows<4>(k, a, b, ldb, c, ldc, n, alpha, beta);
            case 3: return tile_rows<3>(k, a, b, ldb, c, ldc, n, alpha, beta);
            case 2: return tile_rows<2>(k, a, b, ldb, c, ldc, n, alpha, beta);
            default: return tile_rows<1>(k, a, b, ldb, c, ldc, n, alpha, beta);
        }
    }
};

}  // namespace

void sgemm_portable(const GemmParams& p, const float* A, const float* B, float* C) {
    sgemm_blocked<PortableKernel>(p, A, B, C);
}

}  // namespace fastconv
