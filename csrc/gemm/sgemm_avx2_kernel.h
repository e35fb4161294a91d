// The AVX2/FMA SGEMM micro-kernel and packing routines (Avx2Kernel, the traits sgemm_driver.h
// documents), shared by sgemm_avx2.cpp and the implicit-GEMM convolution. Include only from files
// compiled with -mavx2 -mfma (*_avx2.cpp); everything has internal linkage.
//
// Micro-kernel napkin math: 6 x 16 FP32 accumulators = 12 ymm registers; per k step 2 B loads,
// 6 A broadcasts and 12 independent FMAs (192 FLOP). Two FMA pipes with 4-cycle latency need at
// least 8 independent chains, so 12 keep them busy, and 8 loads per 12 FMAs fit the load ports.
// Row-edge tiles (m < 6) run the same code with fewer rows; column edges use masked loads/stores
// and, when at most 8 wide, half the FMAs. Measured on a shared 2-core Zen 4 (1 thread, CPU time,
// interleaved with numpy/OpenBLAS): 100-104 GFLOP/s at n = 1024-2048, 0.98-1.06x OpenBLAS on
// square and conv-shaped products, 1.3-1.5x on (6, 200704, 25).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace fastconv {

namespace {

struct Avx2Kernel {
    static constexpr int MR = 6, NR = 16;
    // KC: a 384 x 16 B micro-panel (24 KiB) stays in the 32 KiB L1 while A panels stream past;
    // MC: the 192 x 384 A block (288 KiB) sits in the 1 MiB L2; NC: the 384 x 4080 B panel (6 MiB)
    // in L3. Measured on Zen 4 (1 thread, CPU time): KC 384 / MC 192 beat 256/144, 320/144, 512/120
    // and MC 96 or 288 by 1-10% at n = 1024-2048; NC 1024-4080 made no difference.
    static constexpr int64_t MC = 192, KC = 384, NC = 4080;
    // One row panel uses each B panel once: packing it would only add a copy (measured: M = 6
    // streams B 1.3x faster unpacked; M = 12 and 16 are faster packed).
    static constexpr int64_t kNoPackMaxM = MR;
    // tile() can read A's rows in place (lda != 0).
    static constexpr bool kStreamsA = true;

    // In-register transpose: on return r[j] holds element j of each of the 8 inputs.
    static void transpose8(__m256 (&r)[8]) {
        const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
        const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
        const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
        const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
        const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
        const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
        r[0] = _mm256_permute2f128_ps(u0, u4, 0x20), r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
        r[2] = _mm256_permute2f128_ps(u2, u6, 0x20), r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
        r[4] = _mm256_permute2f128_ps(u0, u4, 0x31), r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
        r[6] = _mm256_permute2f128_ps(u2, u6, 0x31), r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
    }

    // MR rows of kc contiguous floats (row stride lda) -> dst, MR floats per k: 8 k at a time
    // through an 8x8 transpose (the scalar loop's stride-6 stores cost about 2 cycles a float).
    static void pack_a_rows(float* dst, const float* src, int64_t lda, int64_t kc) {
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) {
            __m256 r[8];
            for (int i = 0; i < MR; ++i) r[i] = _mm256_loadu_ps(src + i * lda + k);
            r[6] = r[7] = _mm256_setzero_ps();
            transpose8(r);
            for (int j = 0; j < 8; ++j) {
                float* d = dst + (k + j) * MR;
                _mm_storeu_ps(d, _mm256_castps256_ps128(r[j]));
                _mm_storel_pi(reinterpret_cast<__m64*>(d + 4), _mm256_extractf128_ps(r[j], 1));
            }
        }
        for (; k < kc; ++k)
            for (int i = 0; i < MR; ++i) dst[k * MR + i] = src[i * lda + k];
    }

    // NR columns of kc contiguous floats (column stride ldb: a transposed B) -> dst, NR floats per k.
    static void pack_b_cols(float* dst, const float* src, int64_t ldb, int64_t kc) {
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) {
            for (int half = 0; half < NR; half += 8) {
                __m256 r[8];
                for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(src + (half + j) * ldb + k);
                transpose8(r);
                for (int q = 0; q < 8; ++q) _mm256_storeu_ps(dst + (k + q) * NR + half, r[q]);
            }
        }
        for (; k < kc; ++k)
            for (int j = 0; j < NR; ++j) dst[k * NR + j] = src[j * ldb + k];
    }

    // kc rows of NR contiguous floats (row stride ldb) -> dst, NR floats per row.
    static void pack_b_rows(float* dst, const float* src, int64_t ldb, int64_t kc) {
        for (int64_t k = 0; k < kc; ++k) {
            const __m256 v0 = _mm256_loadu_ps(src), v1 = _mm256_loadu_ps(src + 8);
            _mm256_store_ps(dst, v0);
            _mm256_store_ps(dst + 8, v1);
            src += ldb;
            dst += NR;
        }
    }

    // Accumulators are named variables, not an array: GCC keeps a __m256 array in memory and
    // would store it back on every k step.
    // m rows, nv 8-wide column vectors (nv = 1 for edge tiles at most 8 wide: half the FMAs).
    // in_place = false: a is a packed panel (row r of step kk at a[kk*MR + r]); true: A's rows in
    // place, row r at a + r*lda (the weights of a batch-1 layer, streamed once instead of packed).
    template <int m, int nv, bool in_place>
    static void tile_rows(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                          int n, float alpha, float beta) {
        __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        // Fetch the C tile now so its misses overlap the k loop instead of stalling the update.
        for (int r = 0; r < m; ++r) {
            _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + NR - 1), _MM_HINT_T0);
        }
        // In place, row r's element of step kk is a_r[kk] (rows past m alias row 0, never read);
        // packed, a[r] with a advancing MR floats a step (constant offsets from one pointer).
        const float* a0 = a;
        const float* a1 = a + (m > 1 ? lda : 0);
        const float* a2 = a + (m > 2 ? 2 * lda : 0);
        const float* a3 = a + (m > 3 ? 3 * lda : 0);
        const float* a4 = a + (m > 4 ? 4 * lda : 0);
        const float* a5 = a + (m > 5 ? 5 * lda : 0);
#pragma GCC unroll 4
        for (int64_t kk = 0; kk < k; ++kk) {
            const __m256 b0 = _mm256_loadu_ps(b), b1 = nv == 2 ? _mm256_loadu_ps(b + 8) : b0;
            __m256 ar = _mm256_broadcast_ss(in_place ? a0 + kk : a + 0);
            c00 = _mm256_fmadd_ps(ar, b0, c00);
            if constexpr (nv == 2) c01 = _mm256_fmadd_ps(ar, b1, c01);
            if constexpr (m > 1) {
                ar = _mm256_broadcast_ss(in_place ? a1 + kk : a + 1);
                c10 = _mm256_fmadd_ps(ar, b0, c10);
                if constexpr (nv == 2) c11 = _mm256_fmadd_ps(ar, b1, c11);
            }
            if constexpr (m > 2) {
                ar = _mm256_broadcast_ss(in_place ? a2 + kk : a + 2);
                c20 = _mm256_fmadd_ps(ar, b0, c20);
                if constexpr (nv == 2) c21 = _mm256_fmadd_ps(ar, b1, c21);
            }
            if constexpr (m > 3) {
                ar = _mm256_broadcast_ss(in_place ? a3 + kk : a + 3);
                c30 = _mm256_fmadd_ps(ar, b0, c30);
                if constexpr (nv == 2) c31 = _mm256_fmadd_ps(ar, b1, c31);
            }
            if constexpr (m > 4) {
                ar = _mm256_broadcast_ss(in_place ? a4 + kk : a + 4);
                c40 = _mm256_fmadd_ps(ar, b0, c40);
                if constexpr (nv == 2) c41 = _mm256_fmadd_ps(ar, b1, c41);
            }
            if constexpr (m > 5) {
                ar = _mm256_broadcast_ss(in_place ? a5 + kk : a + 5);
                c50 = _mm256_fmadd_ps(ar, b0, c50);
                if constexpr (nv == 2) c51 = _mm256_fmadd_ps(ar, b1, c51);
            }
            if constexpr (!in_place) a += MR;
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

    static void tile(int m, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                     int64_t ldc, int n, float alpha, float beta) {
        if (n > 8) return tile_cols<2>(m, k, a, lda, b, ldb, c, ldc, n, alpha, beta);
        tile_cols<1>(m, k, a, lda, b, ldb, c, ldc, n, alpha, beta);
    }

    template <int nv>
    static void tile_cols(int m, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                          int64_t ldc, int n, float alpha, float beta) {
        if (lda != 0) return tile_m<nv, true>(m, k, a, lda, b, ldb, c, ldc, n, alpha, beta);
        tile_m<nv, false>(m, k, a, lda, b, ldb, c, ldc, n, alpha, beta);
    }

    template <int nv, bool in_place>
    static void tile_m(int m, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                       int64_t ldc, int n, float alpha, float beta) {
        switch (m) {
            case 6: return tile_rows<6, nv, in_place>(k, a, lda, b, ldb, c, ldc, n, alpha, beta);
            case 5: return tile_rows<5, nv, in_place>(k, a, lda, b, ldb, c, ldc, n, alpha, beta);
            case 4: return tile_rows<4, nv, in_place>(k, a, lda, b, ldb, c, ldc, n, alpha, beta);
            case 3: return tile_rows<3, nv, in_place>(k, a, lda, b, ldb, c, ldc, n, alpha, beta);
            case 2: return tile_rows<2, nv, in_place>(k, a, lda, b, ldb, c, ldc, n, alpha, beta);
            default: return tile_rows<1, nv, in_place>(k, a, lda, b, ldb, c, ldc, n, alpha, beta);
        }
    }
};

}  // namespace
}  // namespace fastconv
