// Our own FFT: mixed-radix (2, 3, 4, 5) Stockham transforms in float32 with twiddles computed in
// double, complex and real-input, 1-D and 2-D, forward (e^{-2 pi i jk/n}) and inverse.
//
// The engine works in "lane layout": kFftLanes (8) independent transforms are interleaved so that
// every butterfly is one 8-wide vector operation. A complex "point" is kFftLanes real parts
// followed by kFftLanes imaginary parts (2 * kFftLanes floats). A real sequence of even length n in
// lane layout (n * kFftLanes floats) is, unchanged, the complex sequence of n / 2 points
// z_j = x_{2j} + i x_{2j+1}, which is how the real transforms halve their work.
//
// The numpy-layout entry points at the bottom (batch of contiguous transforms, interleaved
// complex) are for users and tests; the convolution calls the lane kernels directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fastconv {

constexpr int kFftLanes = 8;

// True when n >= 1 has no prime factors other than 2, 3 and 5.
bool fft_size_supported(int64_t n);
// Smallest supported size >= n.
int64_t fft_next_size(int64_t n);

// A complex transform of length n: the Stockham stages and their twiddles. Built once per size
// and cached for the life of the process (fft_plan is thread-safe; plans are immutable).
struct FftPlan {
    struct Stage {
        int radix;        // p
        int m;            // remaining length / p
        int stride;       // s: product of the radices of the earlier stages
        size_t twiddle;   // offset into twiddles: m * (p - 1) complex values w^(j t), j < m, 1 <= t < p
    };
    int n = 0;
    std::vector<Stage> stages;
    std::vector<float> twiddles;  // interleaved (re, im)
};

// Real transform of even length n through the complex transform of n / 2 points.
struct FftRealPlan {
    int n = 0;
    const FftPlan* half = nullptr;
    std::vector<float> twiddles;  // e^{-2 pi i k / n}, k = 0 .. n/2, interleaved (re, im)
};

// Both throw std::invalid_argument for sizes with other prime factors (or n < 1; real: odd n).
const FftPlan& fft_plan(int n);
const FftRealPlan& fft_real_plan(int n);

// 2-D real tile of T1 x T2 (T2 even): spectrum of T1 x (T2 / 2 + 1) points.
struct FftTilePlan {
    int T1 = 0, T2 = 0;
    const FftPlan* col = nullptr;       // length T1
    const FftRealPlan* row = nullptr;   // length T2
    int row_points() const { return T2 / 2 + 1; }
    int64_t spectrum_floats() const { return int64_t(T1) * row_points() * 2 * kFftLanes; }
    int64_t tile_floats() const { return int64_t(T1) * T2 * kFftLanes; }
    // Scratch floats the tile transforms need (the `work` argument).
    int64_t work_floats() const { return spectrum_floats() + 2 * int64_t(T2 / 2 + 1) * 2 * kFftLanes; }
};
FftTilePlan fft_tile_plan(int T1, int T2);

// Lane-layout kernels, one implementation per CPU path (portable and AVX2/FMA); see fft_engine.h.
struct FftKernels {
    // Complex transform along an axis of plan.n elements, each made of V consecutive points
    // (V independent transforms per lane). in == out is allowed; work holds n * V points.
    // Unnormalised in both directions.
    void (*c2c)(const FftPlan& plan, int V, const float* in, float* out, float* work, bool inverse);
    // Real forward, length n even: n / 2 points in (the real data) -> n / 2 + 1 points out.
    // work holds n / 2 points. in and out must not overlap.
    void (*r2c)(const FftRealPlan& plan, const float* in, float* out, float* work);
    // Real inverse, unnormalised (n times the true inverse): n / 2 + 1 points in (the imaginary
    // parts of the first and last are ignored, as numpy does) -> n reals out. in is not modified.
    void (*c2r)(const FftRealPlan& plan, const float* in, float* out, float* work);
    // 2-D real forward of a tile [T1][T2][lanes]; rows >= rows_nonzero are taken as zero and not
    // read. Writes the spectrum [T1][T2/2+1] points. work: plan.work_floats().
    void (*tile_r2c)(const FftTilePlan& plan, const float* tile, int rows_nonzero, float* spectrum, float* work);
    // 2-D real inverse (unnormalised): destroys `spectrum`, writes rows [row_begin, row_end) of the
    // real tile to out as [row_end - row_begin][T2][lanes].
    void (*tile_c2r)(const FftTilePlan& plan, float* spectrum, int row_begin, int row_end, float* out,
                     float* work);
};
const FftKernels& fft_kernels();  // the AVX2 set when use_avx2(), else the portable one

// ---- numpy-layout transforms (norm="backward": inverse scaled by 1/n), `batch` contiguous ----
// Complex data is interleaved (re, im) float pairs, as numpy's complex64.
void fft_c2c_1d(int64_t batch, int n, const float* in, float* out, bool inverse);
void fft_r2c_1d(int64_t batch, int n, const float* in, float* out);   // out: batch x (n/2+1)
void fft_c2r_1d(int64_t batch, int n, const float* in, float* out);   // in: batch x (n/2+1)
void fft_c2c_2d(int64_t batch, int n1, int n2, const float* in, float* out, bool inverse);
void fft_r2c_2d(int64_t batch, int n1, int n2, const float* in, float* out);  // out: n1 x (n2/2+1)
void fft_c2r_2d(int64_t batch, int n1, int n2, const float* in, float* out);

namespace fft_portable { const FftKernels& kernels(); }
namespace fft_avx2 { const FftKernels& kernels(); }

}  // namespace fastconv
