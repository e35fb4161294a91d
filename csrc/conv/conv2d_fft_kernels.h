// Inner loops of the FFT convolution (conv2d_fft.cpp), written once with GCC vector types and
// compiled twice: in conv2d_fft.cpp (portable) and conv2d_fft_avx2.cpp (AVX2/FMA). Include inside
// the namespace of the path after <cstring>, conv/fft.h and conv/conv2d_fft.h; defines kernels().

typedef float v8 __attribute__((vector_size(32)));
constexpr int L = kFftLanes;
constexpr int PT = 2 * kFftLanes;

static inline v8 ld(const float* p) {
    v8 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
static inline void st(float* p, v8 v) { std::memcpy(p, &v, sizeof v); }

// tile[y][x][l] = plane_l[y0_l + y][x0_l + x] for y < rows, x < cols, inside the plane; else 0.
static void gather(const float* const* src, const int64_t* y0, const int64_t* x0, int64_t H, int64_t W, int T1,
                   int T2, int rows, int cols, float* tile) {
    float line[L][512 + 8];  // one zero-padded row per lane
    const bool staged = T2 <= 512;
    for (int y = 0; y < T1; ++y) {
        float* out = tile + size_t(y) * T2 * L;
        if (y >= rows || !staged) {
            std::memset(out, 0, size_t(T2) * L * sizeof(float));
            if (y >= rows) continue;
        }
        for (int l = 0; l < L; ++l) {
            const int64_t iy = src[l] ? y0[l] + y : -1;
            const bool row_in = iy >= 0 && iy < H;
            const int64_t lo = row_in ? std::max<int64_t>(0, -x0[l]) : 0;
            const int64_t hi = row_in ? std::min<int64_t>(cols, W - x0[l]) : 0;
            if (!staged) {
                for (int64_t x = lo; x < hi; ++x) out[x * L + l] = src[l][iy * W + x0[l] + x];
                continue;
            }
            float* dst = line[l];
            if (hi <= lo) {
                std::memset(dst, 0, size_t(T2) * sizeof(float));
                continue;
            }
            std::memset(dst, 0, size_t(lo) * sizeof(float));
            std::memcpy(dst + lo, src[l] + iy * W + x0[l] + lo, size_t(hi - lo) * sizeof(float));
            std::memset(dst + hi, 0, size_t(T2 - hi) * sizeof(float));
        }
        if (staged)
            for (int x = 0; x < T2; ++x)
                for (int l = 0; l < L; ++l) out[x * L + l] = line[l][x];
    }
}

// plane_l[y0_l + y][x0_l + x] = tile[y][col_off + x][l] + add_l for y < rows, x < cols, inside
// the plane (Ho x Wo); lanes with a null plane are skipped.
static void scatter(const float* tile, int T2, int rows, int cols, int col_off, float* const* dst, const int64_t* y0,
                    const int64_t* x0, int64_t Ho, int64_t Wo, const float* add) {
    for (int l = 0; l < L; ++l) {
        if (!dst[l]) continue;
        const float a = add ? add[l] : 0.0f;
        const int64_t ny = std::min<int64_t>(rows, Ho - y0[l]), nx = std::min<int64_t>(cols, Wo - x0[l]);
        for (int64_t y = 0; y < ny; ++y) {
            const float* in = tile + (size_t(y) * T2 + col_off) * L + l;
            float* out = dst[l] + (y0[l] + y) * Wo + x0[l];
            for (int64_t x = 0; x < nx; ++x) out[x] = in[x * L] + a;
        }
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
            ar[k] += xr * wr - xi * wim;
            ai[k] += xr * wim + xi * wr;
        }
    }
    for (int k = 0; k < KB; ++k) {
        float* y = Y + (size_t(o0 + k) * F + f) * PT;
        st(y, ar[k]);
        st(y + L, ai[k]);
    }
}

static void mac(int64_t F, int cin, int cout, const float* X, const float* W, float* Y) {
    constexpr int KB = 6;
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

// A[f][k][cb] += sum_b conj(DY[b][k][f]) * X[b][cb][f]: lanes are the 8 input channels of block
// cb, the output-gradient spectrum is broadcast. X: [nb][CB][F] points, DY: [nb][KB8][F] points
// (lane k % 8 of block k / 8), A: [F][K][CB] points.
template <int KB>
static inline void wgrad_block(int64_t F, int64_t f, int nb, int K, int CB, int KB8, int cb, int k0, const float* X,
                               const float* DY, float* A) {
    v8 ar[KB], ai[KB];
    float* a = A + ((size_t(f) * K + k0) * CB + cb) * PT;
    for (int k = 0; k < KB; ++k) {
        ar[k] = ld(a + size_t(k) * CB * PT);
        ai[k] = ld(a + size_t(k) * CB * PT + L);
    }
    for (int b = 0; b < nb; ++b) {
        const float* x = X + ((size_t(b) * CB + cb) * F + f) * PT;
        const v8 xr = ld(x), xi = ld(x + L);
        for (int k = 0; k < KB; ++k) {
            const int kk = k0 + k;
            const float* d = DY + ((size_t(b) * KB8 + kk / L) * F + f) * PT + kk % L;
            const float dr = d[0], di = d[L];
            ar[k] += dr * xr + di * xi;
            ai[k] += dr * xi - di * xr;
        }
    }
    for (int k = 0; k < KB; ++k) {
        st(a + size_t(k) * CB * PT, ar[k]);
        st(a + size_t(k) * CB * PT + L, ai[k]);
    }
}

static void mac_wgrad(int64_t F, int nb, int K, int CB, const float* X, const float* DY, float* A) {
    constexpr int KB = 6;
    const int KB8 = (K + L - 1) / L;
    for (int64_t f = 0; f < F; ++f)
        for (int cb = 0; cb < CB; ++cb) {
            int k = 0;
            for (; k + KB <= K; k += KB) wgrad_block<KB>(F, f, nb, K, CB, KB8, cb, k, X, DY, A);
            switch (K - k) {
                case 1: wgrad_block<1>(F, f, nb, K, CB, KB8, cb, k, X, DY, A); break;
                case 2: wgrad_block<2>(F, f, nb, K, CB, KB8, cb, k, X, DY, A); break;
                case 3: wgrad_block<3>(F, f, nb, K, CB, KB8, cb, k, X, DY, A); break;
                case 4: wgrad_block<4>(F, f, nb, K, CB, KB8, cb, k, X, DY, A); break;
                case 5: wgrad_block<5>(F, f, nb, K, CB, KB8, cb, k, X, DY, A); break;
            }
        }
}

const FftConvKernels& kernels() {
    static const FftConvKernels k{gather, scatter, mac, mac_wgrad};
    return k;
}
