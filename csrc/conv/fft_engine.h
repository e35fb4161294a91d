// The lane-layout FFT kernels (see fft.h), written once with GCC vector types and compiled twice:
// in fft.cpp for the portable path (the 8-wide vectors become SSE2 pairs) and in fft_avx2.cpp with
// AVX2/FMA. Include it inside the namespace of the path, after <cstring> and conv/fft.h; it
// defines kernels() for that path.
//
// The complex transform is a mixed-radix Stockham autosort (decimation in frequency): a stage of
// radix p reads p points m * s apart and writes p adjacent groups, so each stage streams through
// memory once and the output comes out in natural order without a bit-reversal pass. The inverse
// swaps real and imaginary parts on the way in and out (ifft(x) = swap(fft(swap(x)))), which in
// split layout is only a change of offsets.

#include "conv/fft_vec.h"
constexpr int L = kFftLanes;
constexpr int PT = 2 * kFftLanes;  // floats per point

// In-place forward DFT of P points (w = e^{-2 pi i / P}).
template <int P>
struct Dft;

template <>
struct Dft<2> {
    static inline void run(v8* r, v8* i) {
        const v8 tr = r[0] - r[1], ti = i[0] - i[1];
        r[0] += r[1];
        i[0] += i[1];
        r[1] = tr;
        i[1] = ti;
    }
};

template <>
struct Dft<3> {
    static inline void run(v8* r, v8* i) {
        const float s = 0.866025403784438647f;  // sin(2 pi / 3)
        const v8 sr = r[1] + r[2], si = i[1] + i[2], dr = r[1] - r[2], di = i[1] - i[2];
        const v8 tr = r[0] - 0.5f * sr, ti = i[0] - 0.5f * si;
        const v8 ur = s * di, ui = -s * dr;  // -i sin(2pi/3) (a1 - a2)
        r[0] += sr;
        i[0] += si;
        r[1] = tr + ur;
        i[1] = ti + ui;
        r[2] = tr - ur;
        i[2] = ti - ui;
    }
};

template <>
struct Dft<4> {
    static inline void run(v8* r, v8* i) {
        const v8 b0r = r[0] + r[2], b0i = i[0] + i[2], b1r = r[0] - r[2], b1i = i[0] - i[2];
        const v8 b2r = r[1] + r[3], b2i = i[1] + i[3], b3r = r[1] - r[3], b3i = i[1] - i[3];
        r[0] = b0r + b2r;
        i[0] = b0i + b2i;
        r[2] = b0r - b2r;
        i[2] = b0i - b2i;
        r[1] = b1r + b3i;  // b1 - i b3
        i[1] = b1i - b3r;
        r[3] = b1r - b3i;  // b1 + i b3
        i[3] = b1i + b3r;
    }
};

template <>
struct Dft<5> {
    static inline void run(v8* r, v8* i) {
        const float c1 = 0.309016994374947424f, c2 = -0.809016994374947424f;  // cos(2pi/5), cos(4pi/5)
        const float s1 = 0.951056516295153572f, s2 = 0.587785252292473129f;  // sin(2pi/5), sin(4pi/5)
        const v8 b1r = r[1] + r[4], b1i = i[1] + i[4], d1r = r[1] - r[4], d1i = i[1] - i[4];
        const v8 b2r = r[2] + r[3], b2i = i[2] + i[3], d2r = r[2] - r[3], d2i = i[2] - i[3];
        const v8 t1r = r[0] + c1 * b1r + c2 * b2r, t1i = i[0] + c1 * b1i + c2 * b2i;
        const v8 t2r = r[0] + c2 * b1r + c1 * b2r, t2i = i[0] + c2 * b1i + c1 * b2i;
        const v8 u1r = s1 * d1r + s2 * d2r, u1i = s1 * d1i + s2 * d2i;
        const v8 u2r = s2 * d1r - s1 * d2r, u2i = s2 * d1i - s1 * d2i;
        r[0] += b1r + b2r;
        i[0] += b1i + b2i;
        r[1] = t1r + u1i;  // t1 - i u1
        i[1] = t1i - u1r;
        r[4] = t1r - u1i;  // t1 + i u1
        i[4] = t1i + u1r;
        r[2] = t2r + u2i;  // t2 - i u2
        i[2] = t2i - u2r;
        r[3] = t2r - u2i;  // t2 + i u2
        i[3] = t2i + u2r;
    }
};

template <>
struct Dft<8> {
    static inline void run(v8* r, v8* i) {
        const float h = 0.707106781186547524f;  // sqrt(1/2)
        // Two radix-4 DFTs on the even and odd points, then one radix-2 layer with w8^t.
        v8 er[4] = {r[0], r[2], r[4], r[6]}, ei[4] = {i[0], i[2], i[4], i[6]};
        v8 orr[4] = {r[1], r[3], r[5], r[7]}, oi[4] = {i[1], i[3], i[5], i[7]};
        Dft<4>::run(er, ei);
        Dft<4>::run(orr, oi);
        // o1 *= w8 = h (1 - i); o2 *= -i; o3 *= w8^3 = -h (1 + i)
        v8 tr = h * (orr[1] + oi[1]), ti = h * (oi[1] - orr[1]);
        orr[1] = tr;
        oi[1] = ti;
        tr = oi[2];
        oi[2] = -orr[2];
        orr[2] = tr;
        tr = h * (oi[3] - orr[3]);
        ti = -h * (orr[3] + oi[3]);
        orr[3] = tr;
        oi[3] = ti;
        for (int t = 0; t < 4; ++t) {
            r[t] = er[t] + orr[t];
            i[t] = ei[t] + oi[t];
            r[t + 4] = er[t] - orr[t];
            i[t + 4] = ei[t] - oi[t];
        }
    }
};

// One stage of radix P: a_r = x[sV (j + r m) + q], y[sV (P j + t) + q] = w^(j t) DFT_P(a)_t for
// j < m and q < sV (sV = stride * points per element). ro / io: offsets of the real and imaginary
// parts inside a point (swapped for the inverse).
template <int P>
static void stage(const float* __restrict x, float* __restrict y, int m, int sV, const float* tw, int ro, int io) {
    const size_t blk = size_t(sV) * PT;
    for (int j = 0; j < m; ++j) {
        const float* in = x + size_t(j) * blk;
        float* out = y + size_t(P) * j * blk;
        float wr[P], wi[P];
        for (int t = 1; t < P; ++t) {
            wr[t] = tw[(size_t(j) * (P - 1) + t - 1) * 2];
            wi[t] = tw[(size_t(j) * (P - 1) + t - 1) * 2 + 1];
        }
        for (int q = 0; q < sV; ++q) {
            v8 ar[P], ai[P];
            for (int r = 0; r < P; ++r) {
                ar[r] = ld(in + r * m * blk + q * PT + ro);
                ai[r] = ld(in + r * m * blk + q * PT + io);
            }
            Dft<P>::run(ar, ai);
            st(out + q * PT + ro, ar[0]);
            st(out + q * PT + io, ai[0]);
            for (int t = 1; t < P; ++t) {
                if (j == 0) {
                    st(out + t * blk + q * PT + ro, ar[t]);
                    st(out + t * blk + q * PT + io, ai[t]);
                } else {
                    st(out + t * blk + q * PT + ro, ar[t] * wr[t] - ai[t] * wi[t]);
                    st(out + t * blk + q * PT + io, ar[t] * wi[t] + ai[t] * wr[t]);
                }
            }
        }
    }
}

static void c2c(const FftPlan& plan, int V, const float* in, float* out, float* work, bool inverse) {
    const int ro = inverse ? L : 0, io = inverse ? 0 : L;
    const size_t floats = size_t(plan.n) * V * PT;
    const size_t k = plan.stages.size();
    if (k == 0) {
        if (in != out) std::memcpy(out, in, floats * sizeof(float));
        return;
    }
    // Stages alternate between out and work and the last one must write out.
    const float* src = in;
    if (in == out && k % 2 == 1) {
        std::memcpy(work, in, floats * sizeof(float));
        src = work;
    }
    float* dst = (k % 2 == 1) ? out : work;
    for (const auto& s : plan.stages) {
        const float* tw = plan.twiddles.data() + s.twiddle * 2;
        const int sV = s.stride * V;
        switch (s.radix) {
            case 2: stage<2>(src, dst, s.m, sV, tw, ro, io); break;
            case 3: stage<3>(src, dst, s.m, sV, tw, ro, io); break;
            case 4: stage<4>(src, dst, s.m, sV, tw, ro, io); break;
            case 5: stage<5>(src, dst, s.m, sV, tw, ro, io); break;
            case 8: stage<8>(src, dst, s.m, sV, tw, ro, io); break;
        }
        src = dst;
        dst = (dst == out) ? work : out;
    }
}

// Real forward: the n reals are n/2 complex points z_j = x_2j + i x_2j+1; Z = fft(z), then
// X_k = (Z_k + conj Z_{N-k}) / 2 - i w^k (Z_k - conj Z_{N-k}) / 2 with w = e^{-2 pi i / n}, done
// in place on pairs (k, N - k).
static void r2c(const FftRealPlan& plan, const float* in, float* out, float* work) {
    const int N = plan.n / 2;
    c2c(*plan.half, 1, in, out, work, false);
    const float* w = plan.twiddles.data();
    {
        const v8 a = ld(out), b = ld(out + L);
        st(out, a + b);
        st(out + L, v8{} );
        st(out + size_t(N) * PT, a - b);
        st(out + size_t(N) * PT + L, v8{});
    }
    for (int k = 1; 2 * k <= N; ++k) {
        float* pk = out + size_t(k) * PT;
        float* pc = out + size_t(N - k) * PT;
        const v8 zr = ld(pk), zi = ld(pk + L), cr = ld(pc), ci = ld(pc + L);
        const v8 fer = 0.5f * (zr + cr), fei = 0.5f * (zi - ci);  // (Z_k + conj Z_{N-k}) / 2
        const v8 f_r = 0.5f * (zi + ci), f_i = -0.5f * (zr - cr);  // -i (Z_k - conj Z_{N-k}) / 2
        const float wr = w[2 * k], wi = w[2 * k + 1], vr = w[2 * (N - k)], vi = w[2 * (N - k) + 1];
        st(pk, fer + wr * f_r - wi * f_i);
        st(pk + L, fei + wr * f_i + wi * f_r);
        // X_{N-k} = conj(Fe) + w^{N-k} conj(Fo)
        st(pc, fer + vr * f_r + vi * f_i);
        st(pc + L, -fei - vr * f_i + vi * f_r);
    }
}

// Real inverse (unnormalised): Z_k = (X_k + conj X_{N-k}) + i conj(w^k) (X_k - conj X_{N-k}),
// z = ifft(Z), x_2j = Re z_j, x_2j+1 = Im z_j.
static void c2r(const FftRealPlan& plan, const float* in, float* out, float* work) {
    const int N = plan.n / 2;
    const float* w = plan.twiddles.data();
    {
        const v8 a = ld(in), c = ld(in + size_t(N) * PT);  // imaginary parts of X_0, X_N ignored
        st(out, a + c);
        st(out + L, a - c);
    }
    for (int k = 1; k < N; ++k) {
        const float* pk = in + size_t(k) * PT;
        const float* pc = in + size_t(N - k) * PT;
        const v8 ar = ld(pk), ai = ld(pk + L), cr = ld(pc), ci = ld(pc + L);
        const v8 sr = ar + cr, si = ai - ci, dr = ar - cr, di = ai + ci;
        const float wr = w[2 * k], wi = w[2 * k + 1];
        const v8 er = wr * dr + wi * di, ei = wr * di - wi * dr;  // conj(w^k) D
        st(out + size_t(k) * PT, sr - ei);
        st(out + size_t(k) * PT + L, si + er);
    }
    c2c(*plan.half, 1, out, out, work, true);
}

static void tile_r2c(const FftTilePlan& plan, const float* tile, int rows_nonzero, float* spectrum, float* work) {
    const size_t row = size_t(plan.row_points()) * PT;
    for (int y = 0; y < rows_nonzero; ++y) r2c(*plan.row, tile + size_t(y) * plan.T2 * L, spectrum + y * row, work);
    std::memset(spectrum + size_t(rows_nonzero) * row, 0, (plan.T1 - rows_nonzero) * row * sizeof(float));
    c2c(*plan.col, plan.row_points(), spectrum, spectrum, work, false);
}

static void tile_c2r(const FftTilePlan& plan, float* spectrum, int row_begin, int row_end, float* out, float* work) {
    const size_t row = size_t(plan.row_points()) * PT;
    c2c(*plan.col, plan.row_points(), spectrum, spectrum, work, true);
    for (int y = row_begin; y < row_end; ++y)
        c2r(*plan.row, spectrum + y * row, out + size_t(y - row_begin) * plan.T2 * L, work);
}

const FftKernels& kernels() {
    static const FftKernels k{c2c, r2c, c2r, tile_r2c, tile_c2r};
    return k;
}
