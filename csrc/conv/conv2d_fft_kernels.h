// Inner loops of the FFT convolution (conv2d_fft.cpp), written once with GCC vector types and
// compiled twice: in conv2d_fft.cpp (portable) and conv2d_fft_avx2.cpp (AVX2/FMA). Include inside
// the namespace of the path after <algorithm>, <cstring>, <immintrin.h> (AVX2 build), conv/fft.h
// and conv/conv2d_fft.h; defines kernels().

#include "conv/fft_vec.h"
constexpr int L = kFftLanes;
constexpr int PT = 2 * kFftLanes;  // floats per point

#ifdef __AVX2__
// In-register 8 x 8 transpose: r[i][j] <- r[j][i].
static inline void transpose8(__m256* r) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; ++i) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}
#endif

// tile[y][x][l] = plane_l[y0_l + y][x0_l + x] for y < rows, x < cols, inside the plane; else 0.
// Eight columns at a time: a block inside a lane's valid range is read straight from the source,
// one across an edge is staged through a zero-padded 8-float buffer, then the 8 x 8 block is
// transposed into lane layout.
static void gather(const float* const* src, const int64_t* y0, const int64_t* x0, int64_t H, int64_t W, int T1,
                   int T2, int rows, int cols, float* tile) {
    alignas(32) static const float zeros[8] = {};
    alignas(32) float stage[L][8];
    for (int y = 0; y < T1; ++y) {
        float* out = tile + size_t(y) * T2 * L;
        if (y >= rows) {
            std::memset(out, 0, size_t(T2) * L * sizeof(float));
            continue;
        }
        const float* row[L];
        int64_t lo[L], hi[L];  // valid columns [lo, hi) of the tile row for each lane
        for (int l = 0; l < L; ++l) {
            const int64_t iy = src[l] ? y0[l] + y : -1;
            const bool inside = iy >= 0 && iy < H;
            row[l] = inside ? src[l] + iy * W + x0[l] : nullptr;
            lo[l] = inside ? std::clamp<int64_t>(-x0[l], 0, T2) : 0;
            hi[l] = inside ? std::clamp<int64_t>(std::min<int64_t>(cols, W - x0[l]), lo[l], T2) : 0;
        }
        for (int xb = 0; xb < T2; xb += 8) {
            const int nb = std::min(8, T2 - xb);
            const float* p[L];
            for (int l = 0; l < L; ++l) {
                if (xb >= lo[l] && xb + 8 <= hi[l]) {
                    p[l] = row[l] + xb;
                } else if (xb + 8 <= lo[l] || xb >= hi[l]) {
                    p[l] = zeros;
                } else {
                    for (int j = 0; j < 8; ++j) stage[l][j] = xb + j >= lo[l] && xb + j < hi[l] ? row[l][xb + j] : 0.0f;
                    p[l] = stage[l];
                }
            }
#ifdef __AVX2__
            __m256 r[8];
            for (int l = 0; l < 8; ++l) r[l] = _mm256_loadu_ps(p[l]);
            transpose8(r);
            if (nb == 8) {  // constant trip count: GCC otherwise copies r[] through the stack
                for (int j = 0; j < 8; ++j) _mm256_storeu_ps(out + (xb + j) * L, r[j]);
            } else {
                for (int j = 0; j < nb; ++j) _mm256_storeu_ps(out + (xb + j) * L, r[j]);
            }
#else
            for (int j = 0; j < nb; ++j)
                for (int l = 0; l < L; ++l) out[(xb + j) * L + l] = p[l][j];
#endif
        }
    }
}

// plane_l[y0_l + y][x0_l + x] = tile[y][col_off + x][l] + add_l for y < rows, x < cols, inside
// the plane (Ho x Wo); lanes with a null plane are skipped.
static void scatter(const float* tile, int T2, int rows, int cols, int col_off, float* const* dst, const int64_t* y0,
                    const int64_t* x0, int64_t Ho, int64_t Wo, const float* add) {
    float a[L];
    int64_t nx[L];
    for (int l = 0; l < L; ++l) {
        a[l] = add ? add[l] : 0.0f;
        nx[l] = dst[l] ? std::min<int64_t>(cols, Wo - x0[l]) : 0;
    }
    for (int y = 0; y < rows; ++y) {
        const float* in = tile + (size_t(y) * T2 + col_off) * L;
        float* out[L];
        bool any = false;
        for (int l = 0; l < L; ++l) {
            out[l] = nx[l] > 0 && y0[l] + y < Ho ? dst[l] + (y0[l] + y) * Wo + x0[l] : nullptr;
            any |= out[l] != nullptr;
        }
        if (!any) continue;
        int x = 0;
#ifdef __AVX2__
        for (; x + 8 <= cols; x += 8) {
            __m256 r[8];
            for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(in + (x + j) * L);
            transpose8(r);
            for (int l = 0; l < 8; ++l) {
                if (!out[l]) continue;
                const __m256 v = _mm256_add_ps(r[l], _mm256_set1_ps(a[l]));
                if (x + 8 <= nx[l]) {
                    _mm256_storeu_ps(out[l] + x, v);
                } else {
                    alignas(32) float tmp[8];
                    _mm256_store_ps(tmp, v);
                    for (int64_t j = x; j < nx[l]; ++j) out[l][j] = tmp[j - x];
                }
            }
        }
#endif
        for (; x < cols; ++x)
            for (int l = 0; l < L; ++l)
                if (out[l] && x < nx[l]) out[l][x] = in[x * L + l] + a[l];
    }
}

// Y[o][f] = sum_i X[i][f] * W[f][i][o] for o in [o0, o0 + KB): vectors over the lanes (tiles),
// the weight spectrum broadcast.
template <int KB>
static inline void mac_block(int64_t F, int64_t f, int cin, int cout, int o0, const float* X, const float* w, float* Y) {
    v8 ar[KB], ai[KB];
    for (int k = 0; k < KB; ++k) ar[k] = ai[k] = v8{};
    for (int i = 0; i < cin; ++i) {
        const float* x = X + (size_t(i) * F + f) * PT;
        const v8 xr = ld(x), xi = ld(x + L);
        const float* wi_ = w + (size_t(i) * cout + o0) * 2;
        for (int k = 0; k < KB; ++k) {
            const float wr = wi_[2 * k], wim = wi_[2 * k + 1];
            // One FMA per term: written as a single expression GCC multiplies first, then adds.
            ar[k] += xr * wr;
            ar[k] -= xi * wim;
            ai[k] += xr * wim;
            ai[k] += xi * wr;
        }
    }
    for (int k = 0; k < KB; ++k) {
        float* y = Y + (size_t(o0 + k) * F + f) * PT;
        st(y, ar[k]);
        st(y + L, ai[k]);
    }
}

// Output channels per register block: 2 KB accumulators plus 2 inputs must fit the 16 vector
// registers (ymm for AVX2; the portable build's 8-wide vectors take two xmm each).
#ifdef __AVX2__
constexpr int kBlock = 6;
#else
constexpr int kBlock = 2;
#endif

static void mac(int64_t F, int cin, int cout, const float* X, const float* W, float* Y) {
    constexpr int KB = kBlock;
    for (int64_t f = 0; f < F; ++f) {
        const float* w = W + size_t(f) * cin * cout * 2;
        int o = 0;
        for (; o + KB <= cout; o += KB) mac_block<KB>(F, f, cin, cout, o, X, w, Y);
        switch (cout - o) {
            case 1: mac_block<1>(F, f, cin, cout, o, X, w, Y); break;
            case 2: mac_block<2>(F, f, cin, cout, o, X, w, Y); break;
            case 3: mac_block<3>(F, f, cin, cout, o, X, w, Y); break;
            case 4: mac_block<4>(F, f, cin, cout, o, X, w, Y); break;
            case 5: mac_block<5>(F, f, cin, cout, o, X, w, Y); break;
        }
    }
}

// A[f][k][cb] += sum_b conj(DY_b[k][f]) * X_b[cb][f]: lanes are the 8 input channels of block cb,
// the output-gradient spectrum is broadcast. S: [f][b][G] points with G = CB + ceil(K / 8) groups
// per tile (X_b's channel blocks, then DY_b's, lane k % 8 of group CB + k / 8), so one frequency
// of every tile is contiguous. A: [f][k][cb] points.
template <int KB>
static inline void wgrad_block(const float* S, int nb, int G, int CB, int cb, int k0, float* a, int64_t a_stride) {
    v8 ar[KB], ai[KB];
    for (int k = 0; k < KB; ++k) {
        ar[k] = ld(a + k * a_stride);
        ai[k] = ld(a + k * a_stride + L);
    }
    for (int b = 0; b < nb; ++b) {
        const float* x = S + (size_t(b) * G + cb) * PT;
        const v8 xr = ld(x), xi = ld(x + L);
        const float* dy = S + (size_t(b) * G + CB) * PT;
        for (int k = 0; k < KB; ++k) {
            const int kk = k0 + k;
            const float dr = dy[kk / L * PT + kk % L], di = dy[kk / L * PT + L + kk % L];
            ar[k] += dr * xr;
            ar[k] += di * xi;
            ai[k] += dr * xi;
            ai[k] -= di * xr;
        }
    }
    for (int k = 0; k < KB; ++k) {
        st(a + k * a_stride, ar[k]);
        st(a + k * a_stride + L, ai[k]);
    }
}

// Frequencies [f0, f1) only, so threads can split the frequencies without sharing accumulators.
static void mac_wgrad(int64_t f0, int64_t f1, int nb, int K, int CB, const float* S, float* A) {
    constexpr int KB = kBlock;
    const int G = CB + (K + L - 1) / L;
    const int64_t a_stride = int64_t(CB) * PT;
    for (int64_t f = f0; f < f1; ++f) {
        const float* s = S + size_t(f) * nb * G * PT;
        for (int cb = 0; cb < CB; ++cb) {
            float* a = A + (size_t(f) * K * CB + cb) * PT;
            int k = 0;
            for (; k + KB <= K; k += KB) wgrad_block<KB>(s, nb, G, CB, cb, k, a + k * a_stride, a_stride);
            switch (K - k) {
                case 1: wgrad_block<1>(s, nb, G, CB, cb, k, a + k * a_stride, a_stride); break;
                case 2: wgrad_block<2>(s, nb, G, CB, cb, k, a + k * a_stride, a_stride); break;
                case 3: wgrad_block<3>(s, nb, G, CB, cb, k, a + k * a_stride, a_stride); break;
                case 4: wgrad_block<4>(s, nb, G, CB, cb, k, a + k * a_stride, a_stride); break;
                case 5: wgrad_block<5>(s, nb, G, CB, cb, k, a + k * a_stride, a_stride); break;
            }
        }
    }
}

const FftConvKernels& kernels() {
    static const FftConvKernels k{gather, scatter, mac, mac_wgrad};
    return k;
}
