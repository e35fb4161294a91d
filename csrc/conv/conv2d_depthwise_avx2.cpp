// AVX2/FMA inner loops of the depthwise convolution (what they compute: conv2d_depthwise_rows.h;
// conv2d_depthwise.cpp packs the planes and drives them).
//  - rows: tiles of IB rows x QV vectors of 8 outputs (up to 12 accumulators: 3 x 4 on rows of
//    32+ outputs, 5 x 2 on 14-wide MobileNet rows, 7 x 1 on 7x7 maps), one broadcast weight per
//    tap for IB * QV FMAs with memory operands; a row's last vector overlaps the one before.
//  - reduce: TB <= 12 taps at once, one accumulator each: per 8 outputs one gradient load, then
//    TB input loads and TB FMAs; the 8 lanes go back to the caller's partial sums.
//  - packing: row copies, and the stride-2 (de)interleaving: two loads, two shuffles and two lane
//    permutes per 16 floats.
// No masked stores (vmaskmovps to memory is microcoded and slow on AMD Zen: it dominated the
// stride-2 packing of 14x14 maps in a profile); tails overlap or go one float at a time.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "conv/conv2d_depthwise_rows.h"

namespace fastconv::depthwise {

namespace {

inline __m256i tail_mask(int64_t n) {  // first n lanes set (0 <= n <= 8)
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), lanes);
}

// n < 8 floats of v to dst, one by one: masked stores (vmaskmovps) are slow on AMD cores.
inline void store_partial(float* dst, __m256 v, int64_t n) {
    alignas(32) float tmp[8];
    _mm256_store_ps(tmp, v);
    for (int64_t l = 0; l < n; ++l) dst[l] = tmp[l];
}

// Every accumulator of a tile to v (always inlined, so the tile stays in registers).
template <int IB, int QV>
__attribute__((always_inline)) inline void fill_tile(__m256 (&acc)[IB][QV], __m256 v) {
#pragma GCC unroll 12
    for (int i = 0; i < IB; ++i)
#pragma GCC unroll 4
        for (int q = 0; q < QV; ++q) acc[i][q] = v;
}

// A finished tile to its IB output rows: vector q at 8 q, the last at `last` (see rows_tile);
// rows under 8 wide one float at a time, but the first `full_rows`.
template <int IB, int QV>
__attribute__((always_inline)) inline void store_tile(const __m256 (&acc)[IB][QV], const RowsArgs& a, float* out,
                                                     int64_t cols, int full_rows, int64_t last) {
#pragma GCC unroll 12
    for (int i = 0; i < IB; ++i)
#pragma GCC unroll 4
        for (int q = 0; q < QV; ++q) {
            float* dst = out + i * a.out_rstride + (q == QV - 1 ? last : 8 * q);
            if (cols >= 8 || i < full_rows)
                _mm256_storeu_ps(dst, acc[i][q]);
            else
                store_partial(dst, acc[i][q], cols);
        }
}

// A tile of IB rows x QV vectors of 8 outputs: IB * QV <= 12 accumulators, and per tap one
// broadcast weight for IB * QV FMAs that read their inputs as memory operands (row offsets i * rs
// with i a constant: no per-row index arithmetic in the tap loop). `cols` counts the row's outputs
// from the tile's first; when fewer than 8 * QV, the last vector ends at `cols`, overlapping the
// one before (outputs are recomputed, not accumulated: storing one twice is harmless). Rows of
// under 8 outputs are stored one float at a time, but the first `full_rows` (see RowsArgs::out_padded).
template <int IB, int QV>
void rows_tile(const RowsArgs& a, const float* in, float* out, int64_t cols, int full_rows) {
    const int64_t last = cols >= 8 * QV ? 8 * (QV - 1) : (cols >= 8 ? cols - 8 : 0);
    __m256 acc[IB][QV];
    fill_tile<IB, QV>(acc, _mm256_set1_ps(a.init));
    const int64_t rs = a.in_rstride;
    for (int64_t t = 0; t < a.ntaps; ++t) {
        const __m256 wt = _mm256_broadcast_ss(a.w + t);
        const float* src = in + a.taps[t];
#pragma GCC unroll 12
        for (int i = 0; i < IB; ++i)
#pragma GCC unroll 4
            for (int q = 0; q < QV; ++q)
                acc[i][q] = _mm256_fmadd_ps(wt, _mm256_loadu_ps(src + i * rs + (q == QV - 1 ? last : 8 * q)), acc[i][q]);
    }
    store_tile<IB, QV>(acc, a, out, cols, full_rows, last);
}

using TileFn = void (*)(const RowsArgs&, const float*, float*, int64_t, int);

// tiles[IB - 1][QV - 1] for IB * QV <= 12, else nullptr.
template <int IB, int QV>
constexpr TileFn tile_or_null() {
    if constexpr (IB * QV <= 12)
        return rows_tile<IB, QV>;
    else
        return nullptr;
}
template <int IB>
constexpr std::array<TileFn, 4> tile_row() {
    return {tile_or_null<IB, 1>(), tile_or_null<IB, 2>(), tile_or_null<IB, 3>(), tile_or_null<IB, 4>()};
}
template <int... IBm1>
constexpr std::array<std::array<TileFn, 4>, 12> tile_table(std::integer_sequence<int, IBm1...>) {
    return {tile_row<IBm1 + 1>()...};
}
constexpr auto kTiles = tile_table(std::make_integer_sequence<int, 12>());

// The separable case (RowsArgs::R set, stride 1, R = 3, 5 or 7): kernel row r of output row i reads
// input row i + r, so each input vector loaded serves up to R output rows of the tile, with the R
// weights of one kernel column held in registers. Per kernel column: R broadcasts and
// (IB + R - 1) * QV loads for IB * R * QV FMAs (3x3, 12 x 1: 17 loads for 36 FMAs, against 48 in
// rows_tile).
template <int R, int IB, int QV>
void separable_tile(const RowsArgs& a, const float* in, float* out, int64_t cols, int full_rows) {
    const int64_t last = cols >= 8 * QV ? 8 * (QV - 1) : (cols >= 8 ? cols - 8 : 0);
    __m256 acc[IB][QV];
    fill_tile<IB, QV>(acc, _mm256_set1_ps(a.init));
    const int64_t rs = a.tap_rstride, S = a.S;
    for (int64_t s = 0; s < S; ++s) {
        __m256 wr[R];
#pragma GCC unroll 7
        for (int r = 0; r < R; ++r) wr[r] = _mm256_broadcast_ss(a.w + r * S + s);
        const float* src = in + a.taps[s];
#pragma GCC unroll 20
        for (int row = 0; row < IB + R - 1; ++row)
#pragma GCC unroll 4
            for (int q = 0; q < QV; ++q) {
                const __m256 x = _mm256_loadu_ps(src + row * rs + (q == QV - 1 ? last : 8 * q));
#pragma GCC unroll 12
                for (int i = 0; i < IB; ++i)
                    if (row - i >= 0 && row - i < R) acc[i][q] = _mm256_fmadd_ps(wr[row - i], x, acc[i][q]);
            }
    }
    store_tile<IB, QV>(acc, a, out, cols, full_rows, last);
}

// Accumulators per separable tile: what the 16 registers leave beside R weights and one input
// (for R = 5 one fewer: GCC 12 spilled accumulators of the 10 x 1 tile).
constexpr int separable_acc(int R) { return R == 3 ? 12 : R == 5 ? 9 : 8; }

// separable tiles [IB - 1][QV - 1] for QV <= 2 (taller tiles reuse more), IB * QV <= separable_acc(R).
template <int R, int IB, int QV>
constexpr TileFn separable_or_null() {
    if constexpr (IB * QV <= separable_acc(R))
        return separable_tile<R, IB, QV>;
    else
        return nullptr;
}
template <int R, int... IBm1>
constexpr std::array<std::array<TileFn, 2>, 12> separable_table(std::integer_sequence<int, IBm1...>) {
    return {std::array<TileFn, 2>{separable_or_null<R, IBm1 + 1, 1>(), separable_or_null<R, IBm1 + 1, 2>()}...};
}
constexpr auto kSeparable3 = separable_table<3>(std::make_integer_sequence<int, 12>());
constexpr auto kSeparable5 = separable_table<5>(std::make_integer_sequence<int, 12>());
constexpr auto kSeparable7 = separable_table<7>(std::make_integer_sequence<int, 12>());

// Row blocks of QV vectors (as the row has them, up to max_qv) by as many rows as `acc`
// accumulators allow, the rows split evenly (14 rows at 6 per block: 5 + 5 + 4, not 6 + 6 + 2).
template <class Table>
void tiled(const RowsArgs& a, const Table& tiles, int max_qv, int acc) {
    const int64_t vecs = (a.cols + 7) / 8;
    if (vecs == 0 || a.rows == 0) return;
    const int qv = int(vecs < max_qv ? vecs : max_qv), max_ib = acc / qv;
    const int64_t blocks = (a.rows + max_ib - 1) / max_ib;
    const int ib = int((a.rows + blocks - 1) / blocks);
    for (int64_t i = 0; i < a.rows; i += ib) {
        const int rows = int(a.rows - i < ib ? a.rows - i : ib);
        const float* in = a.in + i * a.in_rstride;
        float* out = a.out + i * a.out_rstride;
        // Rows under 8 wide: which of the tile's rows may store a whole vector anyway (see RowsArgs).
        int64_t full_rows = 0;
        if (a.out_padded)
            full_rows = rows;
        else if (a.out_rstride == a.cols && a.cols < 8 && a.rows * a.cols >= 8)  // rows r with r*cols + 8 <= rows*cols
            full_rows = std::clamp<int64_t>((a.rows * a.cols - 8) / a.cols + 1 - i, 0, rows);
        for (int64_t v = 0; v < vecs; v += qv) {
            const int64_t n = vecs - v < qv ? vecs - v : qv;
            tiles[size_t(rows - 1)][size_t(n - 1)](a, in + 8 * v, out + 8 * v, a.cols - 8 * v, int(full_rows));
        }
    }
}

void rows_avx2(const RowsArgs& a) {
    if (a.R && a.in_rstride == a.tap_rstride && a.ntaps == a.R * a.S) {
        if (a.R == 3) return tiled(a, kSeparable3, 2, separable_acc(3));
        if (a.R == 5) return tiled(a, kSeparable5, 2, separable_acc(5));
        if (a.R == 7) return tiled(a, kSeparable7, 2, separable_acc(7));
    }
    tiled(a, kTiles, 4, 12);
}

template <int TB>
void reduce_taps(const ReduceArgs& a) {
    __m256 acc[TB];
    int64_t taps[TB];
#pragma GCC unroll 12
    for (int t = 0; t < TB; ++t) acc[t] = _mm256_loadu_ps(a.acc + 8 * t), taps[t] = a.taps[t];
    const int64_t cols = a.cols, full = cols / 8 * 8;
    const __m256i mask = tail_mask(cols - full);
    for (int64_t i = 0; i < a.rows; ++i) {
        const float* d = a.dy + i * cols;
        const float* in = a.in + i * a.in_rstride;
        for (int64_t j = 0; j < cols; j += 8) {
            // The tail's gradient lanes past `cols` load as zero; its input lanes are finite padding.
            const __m256 g = j < full ? _mm256_loadu_ps(d + j) : _mm256_maskload_ps(d + j, mask);
#pragma GCC unroll 12
            for (int t = 0; t < TB; ++t) acc[t] = _mm256_fmadd_ps(g, _mm256_loadu_ps(in + taps[t] + j), acc[t]);
        }
    }
#pragma GCC unroll 12
    for (int t = 0; t < TB; ++t) _mm256_storeu_ps(a.acc + 8 * t, acc[t]);
}

void reduce_avx2(const ReduceArgs& a) {
    using Fn = void (*)(const ReduceArgs&);
    static constexpr Fn by_taps[kMaxReduceTaps] = {reduce_taps<1>, reduce_taps<2>,  reduce_taps<3>,  reduce_taps<4>,
                                                   reduce_taps<5>, reduce_taps<6>,  reduce_taps<7>,  reduce_taps<8>,
                                                   reduce_taps<9>, reduce_taps<10>, reduce_taps<11>, reduce_taps<12>};
    if (a.ntaps >= 1 && a.ntaps <= kMaxReduceTaps) by_taps[a.ntaps - 1](a);
}

// The copies and the deinterleaving end a row of 8 or more vectors' worth with one more full
// vector ending exactly at the row's end (rewriting some floats with the same values); a shorter
// row is one masked load and one full store, whose lanes past n write zeros (allowed: RowCopy).
// No masked stores.
void copy_avx2(const RowCopy& c) {
    const int64_t n = c.n;
    const __m256i mask = tail_mask(n < 8 ? n : 8);
    for (int64_t r = 0; r < c.rows; ++r) {
        const float* src = c.src + r * c.src_rstride;
        float* dst = c.dst + r * c.dst_rstride;
        if (n < 8) {
            _mm256_storeu_ps(dst, _mm256_maskload_ps(src, mask));
            continue;
        }
        for (int64_t j = 0; j < n; j += 8) {
            const int64_t at = j + 8 <= n ? j : n - 8;
            _mm256_storeu_ps(dst + at, _mm256_loadu_ps(src + at));
        }
    }
}

// [l0 l1 .. l7], [h0 .. h7] -> evens [l0 l2 l4 l6 h0 h2 h4 h6], odds [l1 l3 .. h7]: an in-lane
// shuffle gives [l0 l2 h0 h2 | l4 l6 h4 h6], a 64-bit lane permute (0 2 1 3) puts it in order.
inline void split_pairs(__m256 lo, __m256 hi, __m256& even, __m256& odd) {
    const __m256 e = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    const __m256 o = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
    even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
    odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}

void deinterleave2_avx2(const RowCopy& c) {
    const int64_t n = c.n;
    const __m256i lo_mask = tail_mask(2 * n < 8 ? 2 * n : 8), hi_mask = tail_mask(2 * n > 8 && n < 8 ? 2 * n - 8 : 0);
    __m256 even, odd;
    for (int64_t r = 0; r < c.rows; ++r) {
        const float* src = c.src + r * c.src_rstride;
        float *e = c.dst + r * c.dst_rstride, *o = c.dst2 + r * c.dst_rstride;
        if (n < 8) {
            // The lower destination first: its zeros past n may reach into the other, rewritten after.
            split_pairs(_mm256_maskload_ps(src, lo_mask), _mm256_maskload_ps(src + 8, hi_mask), even, odd);
            if (e < o) {
                _mm256_storeu_ps(e, even);
                _mm256_storeu_ps(o, odd);
            } else {
                _mm256_storeu_ps(o, odd);
                _mm256_storeu_ps(e, even);
            }
            continue;
        }
        for (int64_t i = 0; i < n; i += 8) {
            const int64_t at = i + 8 <= n ? i : n - 8;
            split_pairs(_mm256_loadu_ps(src + 2 * at), _mm256_loadu_ps(src + 2 * at + 8), even, odd);
            _mm256_storeu_ps(e + at, even);
            _mm256_storeu_ps(o + at, odd);
        }
    }
}

// Into the caller's array: 8 outputs a step from 4 + 4 inputs, the last step ending at the row's
// end (an odd row's last float alone); rows under 8 wide one float at a time.
void interleave2_avx2(const RowCopy& c) {
    const int64_t n = c.n;
    for (int64_t r = 0; r < c.rows; ++r) {
        const float *even = c.src + r * c.src_rstride, *odd = c.src2 + r * c.src_rstride;
        float* dst = c.dst + r * c.dst_rstride;
        if (n < 8) {
            for (int64_t i = 0; 2 * i < n; ++i) {
                dst[2 * i] = even[i];
                if (2 * i + 1 < n) dst[2 * i + 1] = odd[i];
            }
            continue;
        }
        for (int64_t j = 0; j + 1 < n; j += 8) {
            const int64_t at = j + 8 <= n ? j : (n - 8) / 2 * 2;  // even: pairs stay pairs
            const __m128 e = _mm_loadu_ps(even + at / 2), o = _mm_loadu_ps(odd + at / 2);
            _mm_storeu_ps(dst + at, _mm_unpacklo_ps(e, o));  // e0 o0 e1 o1
            _mm_storeu_ps(dst + at + 4, _mm_unpackhi_ps(e, o));  // e2 o2 e3 o3
        }
        if (n % 2) dst[n - 1] = even[n / 2];
    }
}

}  // namespace

const Kernels& avx2_kernels() {
    static const Kernels k{rows_avx2, reduce_avx2, copy_avx2, deinterleave2_avx2, interleave2_avx2};
    return k;
}

}  // namespace fastconv::depthwise
