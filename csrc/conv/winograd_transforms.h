// Winograd F(2x2,3x3) and F(4x4,3x3) tile transforms (matrices from Lavin & Gray, "Fast Algorithms
// for Convolutional Neural Networks", 2015), and F(2x2,3x3) at stride 2 by tap parity (Stride2),
// vectorized across 8 tiles at a time: each lane of a vec8 is one tile, so the transformed input
// lands in V[xi][c][tile] as contiguous 8-float stores.
//
// Included by exactly two files, each compiling it with its own flags: conv2d_winograd.cpp
// (portable) and conv2d_winograd_avx2.cpp (-mavx2 -mfma). Everything here has internal linkage so
// the two copies can never be merged by the linker.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "conv/winograd.h"

namespace fastconv {
namespace {

typedef float vec8 __attribute__((vector_size(32)));
constexpr int kLanes = 8;

inline vec8 load8(const float* p) {
    vec8 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void store8(float* p, vec8 v) { std::memcpy(p, &v, sizeof v); }

// 1-D transforms on `a` (input) or `a` -> `m` (output) vectors spaced `s` apart.
template <int m>
struct Winograd1D;

template <>
struct Winograd1D<2> {
    // u = G g, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
    static inline void kernel(const vec8* g, int s, vec8* u) {
        const vec8 g0 = g[0], g1 = g[s], g2 = g[2 * s];
        u[0 * s] = g0;
        u[1 * s] = 0.5f * (g0 + g1 + g2);
        u[2 * s] = 0.5f * (g0 - g1 + g2);
        u[3 * s] = g2;
    }
    // r = B^T d, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
    static inline void input(const vec8* d, int s, vec8* r) {
        r[0 * s] = d[0 * s] - d[2 * s];
        r[1 * s] = d[1 * s] + d[2 * s];
        r[2 * s] = d[2 * s] - d[1 * s];
        r[3 * s] = d[1 * s] - d[3 * s];
    }
    // o = A^T v, A^T = [1 1 1 0; 0 1 -1 -1]
    static inline void output(const vec8* v, int s, vec8* o) {
        o[0 * s] = v[0 * s] + v[1 * s] + v[2 * s];
        o[1 * s] = v[1 * s] - v[2 * s] - v[3 * s];
    }
    // Weight gradient (the transposes of output and kernel): v = A o, then w = G^T v.
    static inline void output_transposed(const vec8* o, int s, vec8* v) {
        const vec8 o0 = o[0], o1 = o[s];
        v[0 * s] = o0;
        v[1 * s] = o0 + o1;
        v[2 * s] = o0 - o1;
        v[3 * s] = -o1;
    }
    static inline void kernel_transposed(const vec8* v, int s, vec8* w) {
        const vec8 h12 = 0.5f * (v[s] + v[2 * s]);
        w[0 * s] = v[0] + h12;
        w[1 * s] = 0.5f * (v[s] - v[2 * s]);
        w[2 * s] = h12 + v[3 * s];
    }
};

template <>
struct Winograd1D<4> {
    // G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
    static inline void kernel(const vec8* g, int s, vec8* u) {
        const vec8 g0 = g[0], g1 = g[s], g2 = g[2 * s];
        const vec8 s02 = g0 + g2, q = (1.0f / 24) * g0 + (1.0f / 6) * g2, h1 = (1.0f / 12) * g1;
        u[0 * s] = 0.25f * g0;
        u[1 * s] = (-1.0f / 6) * (s02 + g1);
        u[2 * s] = (-1.0f / 6) * (s02 - g1);
        u[3 * s] = q + h1;
        u[4 * s] = q - h1;
        u[5 * s] = g2;
    }
    // B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1],
    // factored through shared sums (12 FMAs/adds instead of 20).
    static inline void input(const vec8* d, int s, vec8* r) {
        const vec8 d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
        const vec8 t0 = d4 - 4.0f * d2, t1 = d3 - 4.0f * d1;
        const vec8 t2 = d4 - d2, t3 = 2.0f * (d3 - d1);
        r[0 * s] = 4.0f * d0 - 5.0f * d2 + d4;
        r[1 * s] = t0 + t1;
        r[2 * s] = t0 - t1;
        r[3 * s] = t2 + t3;
        r[4 * s] = t2 - t3;
        r[5 * s] = 4.0f * d1 - 5.0f * d3 + d5;
    }
    // A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
    static inline void output(const vec8* v, int s, vec8* o) {
        const vec8 sum12 = v[s] + v[2 * s], dif12 = v[s] - v[2 * s];
        const vec8 sum34 = v[3 * s] + v[4 * s], dif34 = v[3 * s] - v[4 * s];
        o[0 * s] = v[0] + sum12 + sum34;
        o[1 * s] = dif12 + 2.0f * dif34;
        o[2 * s] = sum12 + 4.0f * sum34;
        o[3 * s] = dif12 + 8.0f * dif34 + v[5 * s];
    }
    // v = A o (A = (A^T)^T above)
    static inline void output_transposed(const vec8* o, int s, vec8* v) {
        const vec8 o0 = o[0], o1 = o[s], o2 = o[2 * s], o3 = o[3 * s];
        const vec8 e0 = o0 + o2, e1 = o1 + o3, f0 = o0 + 4.0f * o2, f1 = 2.0f * o1 + 8.0f * o3;
        v[0 * s] = o0;
        v[1 * s] = e0 + e1;
        v[2 * s] = e0 - e1;
        v[3 * s] = f0 + f1;
        v[4 * s] = f0 - f1;
        v[5 * s] = o3;
    }
    // w = G^T v
    static inline void kernel_transposed(const vec8* v, int s, vec8* w) {
        const vec8 s12 = v[s] + v[2 * s], d12 = v[2 * s] - v[s];
        const vec8 s34 = v[3 * s] + v[4 * s], d34 = v[3 * s] - v[4 * s];
        w[0 * s] = 0.25f * v[0] - (1.0f / 6) * s12 + (1.0f / 24) * s34;
        w[1 * s] = (1.0f / 6) * d12 + (1.0f / 12) * d34;
        w[2 * s] = (1.0f / 6) * (s34 - s12) + v[5 * s];
    }
};

// 2-D transforms of 8 tiles at once. d: (m+2) x (m+2) patch, row-major, replaced by B^T d B.
template <int m>
inline void input_tile_transform(vec8* d) {
    constexpr int a = m + 2;
    vec8 t[a * a];
    for (int v = 0; v < a; ++v) Winograd1D<m>::input(d + v, a, t + v);          // columns
    for (int u = 0; u < a; ++u) Winograd1D<m>::input(t + u * a, 1, d + u * a);  // rows
}

// v: (m+2) x (m+2) products -> o: m x m outputs A^T v A.
template <int m>
inline void output_tile_transform(const vec8* v, vec8* o) {
    constexpr int a = m + 2;
    vec8 t[m * a];
    for (int j = 0; j < a; ++j) Winograd1D<m>::output(v + j, a, t + j);          // columns
    for (int i = 0; i < m; ++i) Winograd1D<m>::output(t + i * a, 1, o + i * m);  // rows
}

// Weight gradient: o (m x m output-gradient tile) -> u = A o A^T ((m+2) x (m+2)).
template <int m>
inline void grad_tile_transform(const vec8* o, vec8* u) {
    constexpr int a = m + 2;
    vec8 t[a * m];
    for (int j = 0; j < m; ++j) Winograd1D<m>::output_transposed(o + j, m, t + j);  // columns: a x m
    for (int i = 0; i < a; ++i) Winograd1D<m>::output_transposed(t + i * m, 1, u + i * a);
}

// Weight gradient: M ((m+2) x (m+2) sums of products) -> w = G^T M G (3 x 3).
template <int m>
inline void weight_tile_transform(const vec8* M, vec8* w) {
    constexpr int a = m + 2;
    vec8 t[3 * a];
    for (int j = 0; j < a; ++j) Winograd1D<m>::kernel_transposed(M + j, a, t + j);  // columns: 3 x a
    for (int i = 0; i < 3; ++i) Winograd1D<m>::kernel_transposed(t + i * a, 1, w + i * 3);
}

// The per-tile transforms the drivers below run, by variant: Stride1<m> (an (m+2) x (m+2) input
// patch), Stride2 or Stride2Grad. input: the patch (patch x patch vectors, row-major) -> the
// transformed positions, in place (room for the larger); output: positions -> the out x out
// outputs; kernel: the 3x3 kernel -> its kernel planes (one per position at stride 1).
template <int m>
struct Stride1 {
    static constexpr int out = m, patch = m + 2, positions = patch * patch, kernel_planes = positions;
    static inline void input(vec8* d) { input_tile_transform<m>(d); }
    static inline void output(const vec8* v, vec8* o) { output_tile_transform<m>(v, o); }
    static inline void kernel(const vec8* g, vec8* u) {
        vec8 t[3 * patch];
        for (int s = 0; s < 3; ++s) Winograd1D<m>::kernel(g + s, 3, t + s);              // columns: a x 3
        for (int r = 0; r < patch; ++r) Winograd1D<m>::kernel(t + r * 3, 1, u + r * patch);  // rows: a x a
    }
};

// Stride 2, F(2x2, 3x3) by tap parity. Output (2 ti + i, 2 tj + j) of tile (ti, tj) reads rows 2i + r
// (r = 0..2) and columns 2j + s of the 5x5 patch at input (4 ti - pad_h, 4 tj - pad_w). Taps r = 0, 2
// read the even patch rows 0, 2, 4 as a 2-tap correlation, y_i = e_i g_0 + e_(i+1) g_1: F(2, 2) with
// B^T = [1 -1 0; 0 1 0; 0 -1 1], G = [1 0; 1 1; 0 1], A^T = [1 1 0; 0 1 1] (3 products for 2 outputs,
// additions only); tap r = 1 reads the odd rows 1, 3 as they are. Columns likewise, so positions
// 0-8 are even rows x even columns (3 x 3 transformed), 9-14 even x odd (3 transformed rows x 2
// columns), 15-20 odd x even (2 x 3), 21-24 odd x odd (2 x 2): 25 products per channel pair for 4
// outputs, against 36 direct.
struct Stride2 {
    static constexpr int out = 2, patch = 5, positions = 25, kernel_planes = 16;  // winograd_kernel_planes
    static inline void bt(vec8 x0, vec8 x1, vec8 x2, vec8* r, int s) {  // r = B^T x
        r[0] = x0 - x1, r[s] = x1, r[2 * s] = x2 - x1;
    }
    static inline void input(vec8* d) {
        vec8 v[positions], t[9];
        for (int b = 0; b < 3; ++b) bt(d[2 * b], d[10 + 2 * b], d[20 + 2 * b], t + b, 3);  // even rows
        for (int a = 0; a < 3; ++a) bt(t[3 * a], t[3 * a + 1], t[3 * a + 2], v + 3 * a, 1);
        for (int j = 0; j < 2; ++j) bt(d[2 * j + 1], d[10 + 2 * j + 1], d[20 + 2 * j + 1], v + 9 + j, 2);
        for (int i = 0; i < 2; ++i) {
            const vec8* row = d + (2 * i + 1) * patch;
            bt(row[0], row[2], row[4], v + 15 + 3 * i, 1);
            v[21 + 2 * i] = row[1], v[22 + 2 * i] = row[3];
        }
        for (int x = 0; x < positions; ++x) d[x] = v[x];
    }
    static inline void output(const vec8* v, vec8* o) {  // A^T (v0, v1, v2) = (v0 + v1, v1 + v2)
        vec8 t[6];
        for (int b = 0; b < 3; ++b) t[b] = v[b] + v[3 + b], t[3 + b] = v[3 + b] + v[6 + b];
        for (int i = 0; i < 2; ++i) {
            o[2 * i] = t[3 * i] + t[3 * i + 1] + v[15 + 3 * i] + v[16 + 3 * i] + v[21 + 2 * i];
            o[2 * i + 1] = t[3 * i + 1] + t[3 * i + 2] + v[16 + 3 * i] + v[17 + 3 * i] + v[22 + 2 * i];
        }
        for (int j = 0; j < 2; ++j) o[j] += v[9 + j] + v[11 + j], o[2 + j] += v[11 + j] + v[13 + j];
    }
    static inline void gt(vec8 x0, vec8 x1, vec8* r, int s) {  // r = G x
        r[0] = x0, r[s] = x0 + x1, r[2 * s] = x1;
    }
    static inline void kernel(const vec8* g, vec8* u) {
        vec8 t[6];
        for (int b = 0; b < 2; ++b) gt(g[2 * b], g[6 + 2 * b], t + b, 2);  // taps (0, 2b) and (2, 2b)
        for (int a = 0; a < 3; ++a) gt(t[2 * a], t[2 * a + 1], u + 3 * a, 1);
        gt(g[1], g[7], u + 9, 1);   // taps (0, 1), (2, 1): the planes of positions 9-14
        gt(g[3], g[5], u + 12, 1);  // taps (1, 0), (1, 2): positions 15-20
        u[15] = g[4];               // positions 21-24
    }
};

// The input gradient of the stride-2 convolution (WinogradPlan::transposed), the same 25 positions
// and kernel planes (of the flipped kernel) the other way round. dx row h, with h + pad_h = 2 j + a,
// sums w[r] dy[j - r / 2] over the taps r = a (mod 2): for an even phase a = 0 the pair j, j + 1 is
// F(2, 2) of dy rows j - 1 .. j + 1 with taps (w2, w0); for a = 1 the single tap w1 reads dy row j.
// A 4x4 block of dx holds two of each phase per axis, all read from one 3x3 patch of dy: the even
// pair's outputs land on block rows 2i + eh, the odd phase's on 2i + oh (eh = 1, oh = 0 where the
// padding is odd), the odd phase reading patch rows orow, orow + 1 (likewise for columns).
template <bool odd_h, bool odd_w>
struct Stride2Grad : Stride2 {
    static constexpr int out = 4, patch = 3;
    static constexpr int eh = odd_h, ew = odd_w, oh = 1 - eh, ow = 1 - ew;  // block row/col offsets
    static constexpr int orow = odd_h ? 0 : 1, ocol = odd_w ? 0 : 1;        // odd phase's first patch row/col
    static inline void input(vec8* d) {  // d: the 3x3 patch -> 25 positions (room for 25)
        vec8 v[positions], t[9];
        for (int b = 0; b < 3; ++b) bt(d[b], d[3 + b], d[6 + b], t + b, 3);
        for (int a = 0; a < 3; ++a) bt(t[3 * a], t[3 * a + 1], t[3 * a + 2], v + 3 * a, 1);
        for (int j = 0; j < 2; ++j) bt(d[ocol + j], d[3 + ocol + j], d[6 + ocol + j], v + 9 + j, 2);
        for (int i = 0; i < 2; ++i) {
            const vec8* row = d + 3 * (orow + i);
            bt(row[0], row[1], row[2], v + 15 + 3 * i, 1);
            v[21 + 2 * i] = row[ocol], v[22 + 2 * i] = row[ocol + 1];
        }
        for (int x = 0; x < positions; ++x) d[x] = v[x];
    }
    static inline void output(const vec8* v, vec8* o) {  // -> the 4x4 block, row-major
        vec8 t[6];
        for (int b = 0; b < 3; ++b) t[b] = v[b] + v[3 + b], t[3 + b] = v[3 + b] + v[6 + b];
        for (int i = 0; i < 2; ++i) {
            vec8* even = o + (2 * i + eh) * 4;
            vec8* odd = o + (2 * i + oh) * 4;
            even[ew] = t[3 * i] + t[3 * i + 1];                       // even row, even column
            even[2 + ew] = t[3 * i + 1] + t[3 * i + 2];
            odd[ew] = v[15 + 3 * i] + v[16 + 3 * i];                  // odd row, even column
            odd[2 + ew] = v[16 + 3 * i] + v[17 + 3 * i];
            odd[ow] = v[21 + 2 * i], odd[2 + ow] = v[22 + 2 * i];    // odd row, odd column
        }
        for (int j = 0; j < 2; ++j) {                                  // even row, odd column
            o[eh * 4 + 2 * j + ow] = v[9 + j] + v[11 + j];
            o[(2 + eh) * 4 + 2 * j + ow] = v[11 + j] + v[13 + j];
        }
    }
};

// Calls f(Variant()) with the variant that runs plan p: the dispatch of both builds' transforms.
template <class F>
inline void with_variant(const WinogradPlan& p, F&& f) {
    if (p.transposed) {
        if (p.odd_h)
            p.odd_w ? f(Stride2Grad<true, true>()) : f(Stride2Grad<true, false>());
        else
            p.odd_w ? f(Stride2Grad<false, true>()) : f(Stride2Grad<false, false>());
    } else if (p.stride == 2) {
        f(Stride2());
    } else {
        p.m == 2 ? f(Stride1<2>()) : f(Stride1<4>());
    }
}

// The variant whose kernel planes a transformed kernel of tile side m at this stride holds (the
// stride-2 input gradient's are the forward's, of the flipped kernel).
template <class F>
inline void with_kernel_variant(int m, int stride, F&& f) {
    if (stride == 2)
        f(Stride2());
    else
        m == 2 ? f(Stride1<2>()) : f(Stride1<4>());
}

// Where each of 8 tiles sits: image, first input row/column (may be outside the input), first
// output row/column.
struct TileGroup {
    int lanes = 0;
    int64_t n[kLanes], in_row[kLanes], in_col[kLanes], out_row[kLanes], out_col[kLanes];

    TileGroup(const WinogradPlan& p, int64_t first, int64_t count) {
        lanes = int(std::min<int64_t>(kLanes, count));
        const int64_t per_image = p.tiles_h * p.tiles_w;
        for (int l = 0; l < lanes; ++l) {
            const int64_t t = first + l, r = t % per_image;
            n[l] = t / per_image;
            out_row[l] = (r / p.tiles_w) * p.m;
            out_col[l] = (r % p.tiles_w) * p.m;
            in_row[l] = (p.transposed ? out_row[l] / 2 : out_row[l] * p.stride) - p.pad_h;
            in_col[l] = (p.transposed ? out_col[l] / 2 : out_col[l] * p.stride) - p.pad_w;
        }
    }
};

template <class Variant>
void input_transform(const WinogradPlan& p, const float* in, int64_t tile0, int64_t ntiles, int64_t ld,
                     int64_t xi_stride, float* V) {
    constexpr int a = Variant::patch, T = a * a, X = Variant::positions;
    const int64_t plane = p.Hin * p.Win;
    alignas(32) float D[T * kLanes];
    for (int64_t g = 0; g < ntiles; g += kLanes) {
        const TileGroup tg(p, tile0 + g, ntiles - g);
        // Positions outside the input (and lanes past the last tile) are zero for every channel:
        // zero D once per group, then copy only each lane's in-bounds window per channel.
        std::fill(D, D + T * kLanes, 0.0f);
        int u0[kLanes], u1[kLanes], v0[kLanes], v1[kLanes];
        int64_t offset[kLanes];
        bool interior[kLanes];
        for (int l = 0; l < tg.lanes; ++l) {
            u0[l] = int(std::max<int64_t>(0, -tg.in_row[l]));
            u1[l] = int(std::min<int64_t>(a, p.Hin - tg.in_row[l]));
            v0[l] = int(std::max<int64_t>(0, -tg.in_col[l]));
            v1[l] = int(std::min<int64_t>(a, p.Win - tg.in_col[l]));
            interior[l] = u0[l] == 0 && v0[l] == 0 && u1[l] == a && v1[l] == a;
            offset[l] = tg.n[l] * p.Cin * plane + tg.in_row[l] * p.Win + tg.in_col[l];
        }
        for (int64_t c = 0; c < p.Cin; ++c) {
            for (int l = 0; l < tg.lanes; ++l) {
                const int64_t base = offset[l] + c * plane;  // may point before the plane: only
                                                             // in-bounds (u, v) are read
                if (interior[l]) {
                    for (int u = 0; u < a; ++u)
                        for (int v = 0; v < a; ++v) D[(u * a + v) * kLanes + l] = in[base + u * p.Win + v];
                } else {
                    for (int u = u0[l]; u < u1[l]; ++u)
                        for (int v = v0[l]; v < v1[l]; ++v) D[(u * a + v) * kLanes + l] = in[base + u * p.Win + v];
                }
            }
            vec8 d[X > T ? X : T];
            for (int i = 0; i < T; ++i) d[i] = load8(D + i * kLanes);
            Variant::input(d);
            float* dst = V + c * ld + g;
            for (int i = 0; i < X; ++i) store8(dst + i * xi_stride, d[i]);
        }
    }
}

template <class Variant>
void output_transform(const WinogradPlan& p, const float* M, int64_t tile0, int64_t ntiles, int64_t ld,
                      int64_t xi_stride, const float* bias, float* out) {
    constexpr int m = Variant::out, T = Variant::positions;
    const int64_t plane = p.Hout * p.Wout;
    alignas(32) float O[m * m * kLanes];
    for (int64_t g = 0; g < ntiles; g += kLanes) {
        const TileGroup tg(p, tile0 + g, ntiles - g);
        for (int64_t k = 0; k < p.Cout; ++k) {
            vec8 v[T], o[m * m];
            const float* src = M + k * ld + g;
            for (int i = 0; i < T; ++i) v[i] = load8(src + i * xi_stride);
            Variant::output(v, o);
            const float b = bias ? bias[k] : 0.0f;
            for (int i = 0; i < m * m; ++i) store8(O + i * kLanes, o[i] + b);
            for (int l = 0; l < tg.lanes; ++l) {
                float* dst = out + (tg.n[l] * p.Cout + k) * plane + tg.out_row[l] * p.Wout + tg.out_col[l];
                const int rows = int(std::min<int64_t>(m, p.Hout - tg.out_row[l]));
                const int cols = int(std::min<int64_t>(m, p.Wout - tg.out_col[l]));
                for (int i = 0; i < rows; ++i)
                    for (int j = 0; j < cols; ++j) dst[i * p.Wout + j] = O[(i * m + j) * kLanes + l];
            }
        }
    }
}

// U = G g G^T for 8 kernels at a time (consecutive input channels i of one output channel o).
template <class Variant>
void kernel_transform(const float* w, int64_t K, int64_t C, bool input_grad, int64_t o0, int64_t o1,
                      int64_t xi_stride, float* U) {
    constexpr int T = Variant::kernel_planes;
    const int64_t Cin = input_grad ? K : C;
    alignas(32) float G[9 * kLanes], Ub[T * kLanes];
    for (int64_t o = o0; o < o1; ++o) {
        for (int64_t i0 = 0; i0 < Cin; i0 += kLanes) {
            const int lanes = int(std::min<int64_t>(kLanes, Cin - i0));
            std::fill(G, G + 9 * kLanes, 0.0f);
            for (int l = 0; l < lanes; ++l) {
                const int64_t i = i0 + l;
                const float* src = w + (input_grad ? i * C + o : o * C + i) * 9;
                for (int e = 0; e < 9; ++e) G[e * kLanes + l] = src[input_grad ? 8 - e : e];
            }
            vec8 g[9], u[T];
            for (int e = 0; e < 9; ++e) g[e] = load8(G + e * kLanes);
            Variant::kernel(g, u);
            float* dst = U + o * Cin + i0;
            if (lanes == kLanes) {
                for (int x = 0; x < T; ++x) store8(dst + x * xi_stride, u[x]);
            } else {
                for (int x = 0; x < T; ++x) store8(Ub + x * kLanes, u[x]);
                for (int x = 0; x < T; ++x)
                    for (int l = 0; l < lanes; ++l) dst[x * xi_stride + l] = Ub[x * kLanes + l];
            }
        }
    }
}

// Transformed output gradient of tiles [tile0, tile0 + ntiles): U[xi][k][t] = (A dY_t A^T)[xi] for
// the m x m tile dY_t of channel k (zero beyond Hout x Wout), the same tiling as the forward pass.
// Staged element by element: the AVX2 file loads tile rows instead.
template <int m>
void grad_transform(const WinogradPlan& p, const float* dy, int64_t tile0, int64_t ntiles, int64_t ld,
                    int64_t xi_stride, float* U) {
    constexpr int a = m + 2, T = a * a;
    const int64_t plane = p.Hout * p.Wout;
    alignas(32) float D[m * m * kLanes];
    for (int64_t g = 0; g < ntiles; g += kLanes) {
        const TileGroup tg(p, tile0 + g, ntiles - g);
        std::fill(D, D + m * m * kLanes, 0.0f);  // outside the map and past the last tile: zero
        for (int64_t k = 0; k < p.Cout; ++k) {
            for (int l = 0; l < tg.lanes; ++l) {
                const float* src = dy + (tg.n[l] * p.Cout + k) * plane + tg.out_row[l] * p.Wout + tg.out_col[l];
                const int rows = int(std::min<int64_t>(m, p.Hout - tg.out_row[l]));
                const int cols = int(std::min<int64_t>(m, p.Wout - tg.out_col[l]));
                for (int i = 0; i < rows; ++i)
                    for (int j = 0; j < cols; ++j) D[(i * m + j) * kLanes + l] = src[i * p.Wout + j];
            }
            vec8 o[m * m], u[T];
            for (int i = 0; i < m * m; ++i) o[i] = load8(D + i * kLanes);
            grad_tile_transform<m>(o, u);
            float* dst = U + k * ld + g;
            for (int i = 0; i < T; ++i) store8(dst + i * xi_stride, u[i]);
        }
    }
}

// dw[k][c] = G^T M[.][k][c] G for k in [k0, k1), all c, from M[xi][k][c] at M[xi * xi_stride + k * C
// + c]; 8 input channels a vector. dw is (K, C, 3, 3).
template <int m>
void weight_transform(const float* M, int64_t C, int64_t xi_stride, int64_t k0, int64_t k1, float* dw) {
    constexpr int a = m + 2, T = a * a;
    alignas(32) float W[9 * kLanes], S[T * kLanes];
    for (int64_t k = k0; k < k1; ++k) {
        for (int64_t c0 = 0; c0 < C; c0 += kLanes) {
            const int lanes = int(std::min<int64_t>(kLanes, C - c0));
            const float* src = M + k * C + c0;
            vec8 v[T], w[9];
            if (lanes == kLanes) {
                for (int i = 0; i < T; ++i) v[i] = load8(src + i * xi_stride);
            } else {
                std::fill(S, S + T * kLanes, 0.0f);
                for (int i = 0; i < T; ++i)
                    for (int l = 0; l < lanes; ++l) S[i * kLanes + l] = src[i * xi_stride + l];
                for (int i = 0; i < T; ++i) v[i] = load8(S + i * kLanes);
            }
            weight_tile_transform<m>(v, w);
            for (int e = 0; e < 9; ++e) store8(W + e * kLanes, w[e]);
            float* dst = dw + (k * C + c0) * 9;  // lanes consecutive channels: 9 * lanes floats
            for (int l = 0; l < lanes; ++l)
                for (int e = 0; e < 9; ++e) dst[l * 9 + e] = W[e * kLanes + l];
        }
    }
}

}  // namespace
}  // namespace fastconv
