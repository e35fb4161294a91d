// AVX2/FMA register tiles of the direct convolution (see conv2d_direct_tiles.h for what they
// compute; conv2d_direct.cpp packs the data and picks the tile shape).
//
// Correlation tile KB x IB x QV: KB * IB * QV accumulators of 8 floats; per (channel, tap) it loads
// IB * QV input vectors and KB broadcast weights for KB * IB * QV FMAs, e.g. (6, 1, 2): 12 FMAs for
// 8 loads, which keeps Zen 3's two FMA pipes fed from L1.
// Reduction tile KB x TB: KB gradient vectors and one input vector per tap, KB * TB FMAs; partial
// sums stay 8 wide in the caller's accumulator (no horizontal sum in the hot loop).
#include <immintrin.h>

#include <algorithm>

#include "conv/conv2d_direct_tiles.h"

namespace fastconv::direct {

namespace {

inline __m256i tail_mask(int n) {  // first n lanes set (0 <= n <= 8)
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes);
}

// The first min(n, 8) lanes of v to out[0], out[cstride], ... (n counts the columns left in the
// row, so it may exceed the vector's 8).
inline void store_cols(float* out, int64_t cstride, __m256 v, int n) {
    if (cstride == 1) {
        if (n >= 8)
            _mm256_storeu_ps(out, v);
        else
            _mm256_maskstore_ps(out, tail_mask(n), v);
        return;
    }
    alignas(32) float tmp[8];
    _mm256_store_ps(tmp, v);
    for (int l = 0; l < std::min(n, 8); ++l) out[l * cstride] = tmp[l];
}

template <int KB, int IB, int QV>
void corr_tile(const CorrTileArgs& a) {
    __m256 acc[KB][IB][QV];
#pragma GCC unroll 12
    for (int k = 0; k < KB; ++k) {
        const __m256 v = (a.init && k < a.kvalid) ? _mm256_set1_ps(a.init[k]) : _mm256_setzero_ps();
#pragma GCC unroll 12
        for (int i = 0; i < IB; ++i)
#pragma GCC unroll 12
            for (int q = 0; q < QV; ++q) acc[k][i][q] = v;
    }
    const float* rows[IB];
#pragma GCC unroll 12
    for (int i = 0; i < IB; ++i) rows[i] = a.in + std::min(i, a.rows - 1) * a.in_rstride;
    const float* w = a.w;
    for (int64_t c = 0; c < a.cin; ++c) {
        const int64_t coff = c * a.in_cstride;
        for (int64_t t = 0; t < a.ntaps; ++t, w += KB) {
            const int64_t off = coff + a.taps[t];
            __m256 x[IB][QV];
#pragma GCC unroll 12
            for (int i = 0; i < IB; ++i)
#pragma GCC unroll 4
                for (int q = 0; q < QV; ++q) x[i][q] = _mm256_loadu_ps(rows[i] + off + 8 * q);
#pragma GCC unroll 12
            for (int k = 0; k < KB; ++k) {
                const __m256 wk = _mm256_broadcast_ss(w + k);
#pragma GCC unroll 12
                for (int i = 0; i < IB; ++i)
#pragma GCC unroll 4
                    for (int q = 0; q < QV; ++q) acc[k][i][q] = _mm256_fmadd_ps(wk, x[i][q], acc[k][i][q]);
            }
        }
    }
    // Fully unrolled with compile-time indices so acc[][][] stays in registers.
#pragma GCC unroll 12
    for (int k = 0; k < KB; ++k)
#pragma GCC unroll 12
        for (int i = 0; i < IB; ++i)
#pragma GCC unroll 4
            for (int q = 0; q < QV; ++q) {
                const int n = a.cols - 8 * q;
                if (k < a.kvalid && i < a.rows && n > 0)
                    store_cols(a.out + k * a.out_kstride + i * a.out_rstride + 8 * q * a.out_cstride, a.out_cstride,
                               acc[k][i][q], n);
            }
}

template <int KB, int TB>
void reduce_tile(const ReduceTileArgs& a) {
    __m256 acc[KB][TB];
#pragma GCC unroll 12
    for (int k = 0; k < KB; ++k)
#pragma GCC unroll 12
        for (int t = 0; t < TB; ++t) acc[k][t] = _mm256_setzero_ps();
    const float* dy[KB];
#pragma GCC unroll 12
    for (int k = 0; k < KB; ++k) dy[k] = a.dy + std::min(k, a.kvalid - 1) * a.dy_kstride;
    int64_t taps[TB];
#pragma GCC unroll 12
    for (int t = 0; t < TB; ++t) taps[t] = a.taps[t];
    for (int64_t r = 0; r < a.rows; ++r) {
        const float* x = a.in + r * a.in_rstride;
        const int64_t drow = r * a.dy_rstride;
        for (int64_t v = 0; v < a.vecs; ++v) {
            __m256 d[KB];
#pragma GCC unroll 12
            for (int k = 0; k < KB; ++k) d[k] = _mm256_loadu_ps(dy[k] + drow + 8 * v);
#pragma GCC unroll 12
            for (int t = 0; t < TB; ++t) {
                const __m256 xv = _mm256_loadu_ps(x + taps[t] + 8 * v);
#pragma GCC unroll 12
                for (int k = 0; k < KB; ++k) acc[k][t] = _mm256_fmadd_ps(d[k], xv, acc[k][t]);
            }
        }
    }
#pragma GCC unroll 12
    for (int k = 0; k < KB; ++k)
#pragma GCC unroll 12
        for (int t = 0; t < TB; ++t)
            if (k < a.kvalid && t < a.tvalid) {
                float* p = a.acc + k * a.acc_kstride + 8 * t;
                _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), acc[k][t]));
            }
}

template <int KV, int PB>
void kvec_tile(const KvecTileArgs& a) {
    __m256 acc[KV][PB];
#pragma GCC unroll 4
    for (int v = 0; v < KV; ++v) {
        __m256 init = _mm256_setzero_ps();
        if (a.init) init = _mm256_maskload_ps(a.init + 8 * v, tail_mask(std::max(0, std::min(8, a.kvalid - 8 * v))));
#pragma GCC unroll 12
        for (int p = 0; p < PB; ++p) acc[v][p] = init;
    }
    const float* pos[PB];
#pragma GCC unroll 12
    for (int p = 0; p < PB; ++p) pos[p] = a.in + a.pos_in[p];
    const float* w = a.w;
    for (int64_t c = 0; c < a.cin; ++c) {
        const int64_t coff = c * a.in_cstride;
        for (int64_t t = 0; t < a.ntaps; ++t, w += 8 * KV) {
            const int64_t off = coff + a.taps[t];
            __m256 wv[KV];
#pragma GCC unroll 4
            for (int v = 0; v < KV; ++v) wv[v] = _mm256_loadu_ps(w + 8 * v);
#pragma GCC unroll 12
            for (int p = 0; p < PB; ++p) {
                const __m256 x = _mm256_broadcast_ss(pos[p] + off);
#pragma GCC unroll 4
                for (int v = 0; v < KV; ++v) acc[v][p] = _mm256_fmadd_ps(wv[v], x, acc[v][p]);
            }
        }
    }
#pragma GCC unroll 4
    for (int v = 0; v < KV; ++v)
#pragma GCC unroll 12
        for (int p = 0; p < PB; ++p) {
            if (p >= a.npos) continue;
            alignas(32) float tmp[8];
            _mm256_store_ps(tmp, acc[v][p]);
            float* o = a.out + 8 * v * a.out_kstride + a.pos_out[p];
            const int n = std::min(8, a.kvalid - 8 * v);
            for (int l = 0; l < n; ++l) o[l * a.out_kstride] = tmp[l];
        }
}

template <int KV, int TB>
void kvec_reduce(const KvecReduceArgs& a) {
    __m256 acc[KV][TB];
#pragma GCC unroll 4
    for (int v = 0; v < KV; ++v)
#pragma GCC unroll 12
        for (int t = 0; t < TB; ++t) acc[v][t] = _mm256_setzero_ps();
    int64_t taps[TB];
#pragma GCC unroll 12
    for (int t = 0; t < TB; ++t) taps[t] = a.taps[t];
    for (int64_t pos = 0; pos < a.npos; ++pos) {
        const float* d = a.dyT + pos * a.ldk;
        const float* x = a.in + a.pos_in[pos];
        __m256 dv[KV];
#pragma GCC unroll 4
        for (int v = 0; v < KV; ++v) dv[v] = _mm256_loadu_ps(d + 8 * v);
#pragma GCC unroll 12
        for (int t = 0; t < TB; ++t) {
            const __m256 xb = _mm256_broadcast_ss(x + taps[t]);
#pragma GCC unroll 4
            for (int v = 0; v < KV; ++v) acc[v][t] = _mm256_fmadd_ps(dv[v], xb, acc[v][t]);
        }
    }
#pragma GCC unroll 12
    for (int t = 0; t < TB; ++t) {
        if (t >= a.tvalid) continue;
#pragma GCC unroll 4
        for (int v = 0; v < KV; ++v) {
            float* o = a.acc + t * a.acc_tstride + 8 * v;
            _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), acc[v][t]));
        }
    }
}

// The shapes the driver may ask for (direct::tile_shapes in conv2d_direct.cpp): KB in
// {1, 2, 3, 4, 6, 12} with KB * QV <= 12, and IB either 1 or (12 / QV) / KB.
template <int QV, int KB>
CorrTileFn corr_for_kb(int IB) {
    constexpr int budget = kMaxAcc / QV;
    if constexpr (KB > budget) {
        return nullptr;
    } else {
        if (IB == 1) return &corr_tile<KB, 1, QV>;
        if (IB == budget / KB) return &corr_tile<KB, budget / KB, QV>;
        return nullptr;
    }
}

template <int QV>
CorrTileFn corr_for_qv(int KB, int IB) {
    switch (KB) {
        case 1: return corr_for_kb<QV, 1>(IB);
        case 2: return corr_for_kb<QV, 2>(IB);
        case 3: return corr_for_kb<QV, 3>(IB);
        case 4: return corr_for_kb<QV, 4>(IB);
        case 6: return corr_for_kb<QV, 6>(IB);
        case 12: return corr_for_kb<QV, 12>(IB);
        default: return nullptr;
    }
}

}  // namespace

CorrTileFn corr_tile_avx2(int KB, int IB, int QV) {
    if (KB * IB * QV > kMaxAcc) return nullptr;
    switch (QV) {
        case 1: return corr_for_qv<1>(KB, IB);
        case 2: return corr_for_qv<2>(KB, IB);
        case 3: return corr_for_qv<3>(KB, IB);
        case 4: return corr_for_qv<4>(KB, IB);
        default: return nullptr;
    }
}

KvecTileFn kvec_tile_avx2(int KV, int PB) {
    if (KV == 1 && PB == 12) return &kvec_tile<1, 12>;
    if (KV == 2 && PB == 6) return &kvec_tile<2, 6>;
    if (KV == 3 && PB == 4) return &kvec_tile<3, 4>;
    return nullptr;
}

KvecReduceFn kvec_reduce_avx2(int KV, int TB) {
    if (KV == 1 && TB == 12) return &kvec_reduce<1, 12>;
    if (KV == 2 && TB == 6) return &kvec_reduce<2, 6>;
    if (KV == 3 && TB == 4) return &kvec_reduce<3, 4>;
    return nullptr;
}

ReduceTileFn reduce_tile_avx2(int KB, int TB) {
    if (KB == 3 && TB == 4) return &reduce_tile<3, 4>;
    if (KB == 2 && TB == 6) return &reduce_tile<2, 6>;
    if (KB == 1 && TB == 12) return &reduce_tile<1, 12>;
    return nullptr;
}

}  // namespace fastconv::direct
