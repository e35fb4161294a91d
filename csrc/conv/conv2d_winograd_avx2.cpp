// AVX2/FMA Winograd tile transforms. The arithmetic is winograd_transforms.h compiled with -mavx2
// -mfma (one ymm instruction per vec8 operation); what differs from the portable path is how the 8
// tiles of a group get into and out of registers. Portable: element by element through a staging
// buffer (288 scalar loads and stores per channel for F(4x4)). Here: one row load per tile and
// patch row (masked for boundary tiles: out-of-bounds columns and rows read as zero) and an 8x8
// register transpose; outputs leave by a 4x4 / 2x2 transpose and one 16- or
// 8-byte store per tile row.
#include <immintrin.h>

#include "conv/winograd_transforms.h"

namespace fastconv {

namespace {

// r[l][v] -> r[v][l] for an 8x8 block held in 8 registers.
inline void transpose8(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Loads the (m+2) x (m+2) patches of one group of 8 tiles, channel by channel. Patch row u of tile l
// is loaded whole (8 floats, the last 8 - a unused) when it lies inside the input, else with
// mask[u][l], its in-bounds columns (zero for rows outside the input and for lanes past the last
// tile): maskload never touches masked addresses, but is much slower than a plain load.
template <int a>
struct PatchLoader {
    __m256i mask[a][kLanes];
    bool whole[a][kLanes];
    int64_t base[kLanes];

    PatchLoader(const WinogradPlan& p, const TileGroup& tg) {
        const int64_t plane = p.Hin * p.Win;
        const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        for (int l = 0; l < kLanes; ++l) {
            base[l] = 0;
            int v0 = 0, v1 = 0, u0 = 0, u1 = 0;
            if (l < tg.lanes) {
                base[l] = tg.n[l] * p.Cin * plane + tg.in_row[l] * p.Win + tg.in_col[l];
                u0 = int(std::max<int64_t>(0, -tg.in_row[l]));
                u1 = int(std::min<int64_t>(a, p.Hin - tg.in_row[l]));
                v0 = int(std::max<int64_t>(0, -tg.in_col[l]));
                v1 = int(std::min<int64_t>(a, p.Win - tg.in_col[l]));
            }
            const __m256i cols = _mm256_and_si256(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(v0 - 1)),
                                                  _mm256_cmpgt_epi32(_mm256_set1_epi32(v1), idx));
            for (int u = 0; u < a; ++u) {
                const bool row_in = u >= u0 && u < u1;
                mask[u][l] = row_in ? cols : _mm256_setzero_si256();
                whole[u][l] = row_in && v0 == 0 && v1 == a;
            }
        }
    }

    // d[u * a + v] = patch element (u, v) of channel offset `chan` for the 8 tiles; `last` is the
    // last index a whole-row load may start at.
    inline void load(const float* in, int64_t chan, int64_t width, int64_t last, vec8* d) const {
        for (int u = 0; u < a; ++u) {
            __m256 r[kLanes];
            for (int l = 0; l < kLanes; ++l) {
                const int64_t at = base[l] + chan + u * width;
                r[l] = whole[u][l] && at <= last ? _mm256_loadu_ps(in + at) : _mm256_maskload_ps(in + at, mask[u][l]);
            }
            transpose8(r);
            for (int v = 0; v < a; ++v) d[u * a + v] = r[v];
        }
    }
};

// Two groups (16 tiles) per channel: each position's row of V then gets 64 contiguous bytes, a
// whole cache line, at once instead of two halves far apart in time.
template <class Variant>
void input_transform_avx2(const WinogradPlan& p, const float* in, int64_t tile0, int64_t ntiles, int64_t ld,
                          int64_t xi_stride, float* V) {
    constexpr int X = Variant::positions, T = Variant::patch * Variant::patch;
    const int64_t plane = p.Hin * p.Win;
    const int64_t last = p.N * p.Cin * plane - kLanes;
    for (int64_t g = 0; g < ntiles; g += 2 * kLanes) {
        const int groups = g + kLanes < ntiles ? 2 : 1;
        const PatchLoader<Variant::patch> loader0(p, TileGroup(p, tile0 + g, ntiles - g));
        const PatchLoader<Variant::patch> loader1(p, TileGroup(p, tile0 + g + kLanes, groups == 2 ? ntiles - g - kLanes : 0));
        for (int64_t c = 0; c < p.Cin; ++c) {
            float* dst = V + c * ld + g;
            for (int h = 0; h < groups; ++h) {
                vec8 d[X > T ? X : T];
                (h ? loader1 : loader0).load(in, c * plane, p.Win, last, d);
                Variant::input(d);
                for (int i = 0; i < X; ++i) _mm256_storeu_ps(dst + h * kLanes + i * xi_stride, d[i]);
            }
        }
    }
}

// Writes row i of 8 output tiles: o[j] holds column j of the row for all 8 tiles (lanes).
template <int m>
inline void store_tile_row(const __m256* o, float* const* dst, const int* cols, int lanes) {
    alignas(32) float buf[kLanes * 4];
    __m128 row[kLanes];  // row[l]: the m outputs of tile l (then junk up to 4 floats)
    if (m == 4) {
        const __m256 t0 = _mm256_unpacklo_ps(o[0], o[1]), t1 = _mm256_unpackhi_ps(o[0], o[1]);
        const __m256 t2 = _mm256_unpacklo_ps(o[2], o[3]), t3 = _mm256_unpackhi_ps(o[2], o[3]);
        const __m256 r0 = _mm256_shuffle_ps(t0, t2, 0x44), r1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        const __m256 r2 = _mm256_shuffle_ps(t1, t3, 0x44), r3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        row[0] = _mm256_castps256_ps128(r0), row[4] = _mm256_extractf128_ps(r0, 1);
        row[1] = _mm256_castps256_ps128(r1), row[5] = _mm256_extractf128_ps(r1, 1);
        row[2] = _mm256_castps256_ps128(r2), row[6] = _mm256_extractf128_ps(r2, 1);
        row[3] = _mm256_castps256_ps128(r3), row[7] = _mm256_extractf128_ps(r3, 1);
    } else {
        const __m256 lo = _mm256_unpacklo_ps(o[0], o[1]), hi = _mm256_unpackhi_ps(o[0], o[1]);
        const __m128 l01 = _mm256_castps256_ps128(lo), l45 = _mm256_extractf128_ps(lo, 1);
        const __m128 l23 = _mm256_castps256_ps128(hi), l67 = _mm256_extractf128_ps(hi, 1);
        row[0] = l01, row[1] = _mm_movehl_ps(l01, l01);
        row[2] = l23, row[3] = _mm_movehl_ps(l23, l23);
        row[4] = l45, row[5] = _mm_movehl_ps(l45, l45);
        row[6] = l67, row[7] = _mm_movehl_ps(l67, l67);
    }
    for (int l = 0; l < lanes; ++l) {
        if (!dst[l]) continue;
        if (cols[l] == m) {
            if (m == 4)
                _mm_storeu_ps(dst[l], row[l]);
            else
                _mm_storel_pi(reinterpret_cast<__m64*>(dst[l]), row[l]);
        } else {
            _mm_store_ps(buf + 4 * l, row[l]);
            for (int j = 0; j < cols[l]; ++j) dst[l][j] = buf[4 * l + j];
        }
    }
}

// Where the rows of one group's output tiles go.
template <int m>
struct TileWriter {
    int lanes, rows[kLanes], cols[kLanes];
    int64_t base[kLanes];

    TileWriter(const WinogradPlan& p, const TileGroup& tg) : lanes(tg.lanes) {
        for (int l = 0; l < lanes; ++l) {
            rows[l] = int(std::min<int64_t>(m, p.Hout - tg.out_row[l]));
            cols[l] = int(std::min<int64_t>(m, p.Wout - tg.out_col[l]));
            base[l] = tg.n[l] * p.Cout * p.Hout * p.Wout + tg.out_row[l] * p.Wout + tg.out_col[l];
        }
    }

    // o: the m x m outputs (lanes = tiles) of channel offset `chan`, bias already added.
    inline void store(const vec8* o, float* out, int64_t chan, int64_t width) const {
        for (int i = 0; i < m; ++i) {
            float* dst[kLanes];
            for (int l = 0; l < lanes; ++l) dst[l] = i < rows[l] ? out + base[l] + chan + i * width : nullptr;
            store_tile_row<m>(reinterpret_cast<const __m256*>(o + i * m), dst, cols, lanes);
        }
    }
};

// Two groups per output channel, for whole cache lines of M as in input_transform_avx2.
template <class Variant>
void output_transform_avx2(const WinogradPlan& p, const float* M, int64_t tile0, int64_t ntiles, int64_t ld,
                           int64_t xi_stride, const float* bias, float* out) {
    constexpr int m = Variant::out, T = Variant::positions;
    const int64_t plane = p.Hout * p.Wout;
    for (int64_t g = 0; g < ntiles; g += 2 * kLanes) {
        const int groups = g + kLanes < ntiles ? 2 : 1;
        const TileWriter<m> writer0(p, TileGroup(p, tile0 + g, ntiles - g));
        const TileWriter<m> writer1(p, TileGroup(p, tile0 + g + kLanes, groups == 2 ? ntiles - g - kLanes : 0));
        for (int64_t k = 0; k < p.Cout; ++k) {
            const float* src = M + k * ld + g;
            const vec8 b = _mm256_set1_ps(bias ? bias[k] : 0.0f);
            for (int h = 0; h < groups; ++h) {
                vec8 v[T], o[m * m];
                for (int i = 0; i < T; ++i) v[i] = _mm256_loadu_ps(src + h * kLanes + i * xi_stride);
                Variant::output(v, o);
                for (int i = 0; i < m * m; ++i) o[i] += b;
                (h ? writer1 : writer0).store(o, out, k * plane, p.Wout);
            }
        }
    }
}

// Loads row i (m floats) of the output-gradient tiles of 8 lanes and transposes them: col[j] holds
// column j of the row for all lanes. src[l] is the row of lane l, nullptr where the row is outside
// the map or the lane past the last tile (zeros); partial rows (cols[l] < m) are staged.
template <int m>
inline void load_tile_row(const float* const* src, const int* cols, __m256* col) {
    __m128 row[kLanes];
    for (int l = 0; l < kLanes; ++l) {
        if (!src[l]) {
            row[l] = _mm_setzero_ps();
        } else if (cols[l] == m) {
            row[l] = m == 4 ? _mm_loadu_ps(src[l])
                            : _mm_loadl_pi(_mm_setzero_ps(), reinterpret_cast<const __m64*>(src[l]));
        } else {
            alignas(16) float buf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int j = 0; j < cols[l]; ++j) buf[j] = src[l][j];
            row[l] = _mm_load_ps(buf);
        }
    }
    // Lanes l and l + 4 share a register (low and high half); a 4x4 transpose within each half.
    __m256 x[4];
    for (int l = 0; l < 4; ++l) x[l] = _mm256_set_m128(row[l + 4], row[l]);
    const __m256 t0 = _mm256_unpacklo_ps(x[0], x[1]), t1 = _mm256_unpackhi_ps(x[0], x[1]);
    const __m256 t2 = _mm256_unpacklo_ps(x[2], x[3]), t3 = _mm256_unpackhi_ps(x[2], x[3]);
    col[0] = _mm256_shuffle_ps(t0, t2, 0x44);
    col[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
    if (m == 4) {
        col[2] = _mm256_shuffle_ps(t1, t3, 0x44);
        col[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
    }
}

// Two groups per channel, for whole cache lines of U as in input_transform_avx2.
template <int m>
void grad_transform_avx2(const WinogradPlan& p, const float* dy, int64_t tile0, int64_t ntiles, int64_t ld,
                         int64_t xi_stride, float* U) {
    constexpr int T = (m + 2) * (m + 2);
    const int64_t plane = p.Hout * p.Wout;
    for (int64_t g = 0; g < ntiles; g += 2 * kLanes) {
        const int groups = g + kLanes < ntiles ? 2 : 1;
        const TileWriter<m> where[2] = {TileWriter<m>(p, TileGroup(p, tile0 + g, ntiles - g)),
                                        TileWriter<m>(p, TileGroup(p, tile0 + g + kLanes,
                                                                   groups == 2 ? ntiles - g - kLanes : 0))};
        for (int64_t k = 0; k < p.Cout; ++k) {
            float* dst = U + k * ld + g;
            for (int h = 0; h < groups; ++h) {
                const TileWriter<m>& tw = where[h];
                vec8 o[m * m], u[T];
                for (int i = 0; i < m; ++i) {
                    const float* src[kLanes];
                    for (int l = 0; l < kLanes; ++l)
                        src[l] = l < tw.lanes && i < tw.rows[l] ? dy + tw.base[l] + k * plane + i * p.Wout : nullptr;
                    load_tile_row<m>(src, tw.cols, reinterpret_cast<__m256*>(o + i * m));
                }
                grad_tile_transform<m>(o, u);
                for (int i = 0; i < T; ++i) _mm256_storeu_ps(dst + h * kLanes + i * xi_stride, u[i]);
            }
        }
    }
}

}  // namespace

void winograd_grad_transform_avx2(const WinogradPlan& p, const float* dy, int64_t tile0, int64_t ntiles,
                                  int64_t ld, int64_t xi_stride, float* U) {
    if (p.m == 2)
        grad_transform_avx2<2>(p, dy, tile0, ntiles, ld, xi_stride, U);
    else
        grad_transform_avx2<4>(p, dy, tile0, ntiles, ld, xi_stride, U);
}

void winograd_weight_transform_avx2(int m, const float* M, int64_t C, int64_t xi_stride, int64_t k0, int64_t k1,
                                    float* dw) {
    if (m == 2)
        weight_transform<2>(M, C, xi_stride, k0, k1, dw);
    else
        weight_transform<4>(M, C, xi_stride, k0, k1, dw);
}

void winograd_input_transform_avx2(const WinogradPlan& p, const float* in, int64_t tile0, int64_t ntiles,
                                   int64_t ld, int64_t xi_stride, float* V) {
    with_variant(p, [&](auto v) { input_transform_avx2<decltype(v)>(p, in, tile0, ntiles, ld, xi_stride, V); });
}

void winograd_output_transform_avx2(const WinogradPlan& p, const float* M, int64_t tile0, int64_t ntiles,
                                    int64_t ld, int64_t xi_stride, const float* bias, float* out) {
    with_variant(p, [&](auto v) { output_transform_avx2<decltype(v)>(p, M, tile0, ntiles, ld, xi_stride, bias, out); });
}

void winograd_kernel_transform_avx2(int m, int stride, const float* w, int64_t K, int64_t C, bool input_grad,
                                    int64_t o0, int64_t o1, int64_t xi_stride, float* U) {
    with_kernel_variant(m, stride,
                        [&](auto v) { kernel_transform<decltype(v)>(w, K, C, input_grad, o0, o1, xi_stride, U); });
}

}  // namespace fastconv
