// Internals of the FFT convolution shared by conv2d_fft.cpp, its AVX2 inner loops and the bindings.
#pragma once

#include <cstdint>

#include "common/params.h"
#include "conv/fft.h"

namespace fastconv {

enum class FftPass { Forward, InputGrad, WeightGrad };

// Overlap-save tiling: T1 x T2 transforms, each producing O1 x O2 outputs (O = T - R + 1), a
// grid of tiles_h x tiles_w tiles per image covering the pass's output plane.
struct FftConvTiling {
    int T1 = 0, T2 = 0, O1 = 0, O2 = 0;
    int64_t tiles_h = 0, tiles_w = 0;
};

// The tiling the pass uses: the one with the least modelled time (transforms + complex
// multiply-accumulate, see conv2d_fft.cpp) whose spectra fit the workspace limit, unless a tile
// size is forced.
FftConvTiling fft_conv_tiling(const Conv2dParams& p, FftPass pass);

// Forces T1 x T2 transforms for every later call (tests, benchmarks); 0, 0 restores the model.
// Sizes are clamped up to the smallest valid ones for each problem.
void fft_conv_force_tile(int T1, int T2);

// Inner loops, one set per CPU path (see conv2d_fft_kernels.h for the contracts).
struct FftConvKernels {
    void (*gather)(const float* const* src, const int64_t* y0, const int64_t* x0, int64_t H, int64_t W, int T1,
                   int T2, int rows, int cols, float* tile);
    void (*scatter)(const float* tile, int T2, int rows, int cols, int col_off, float* const* dst, const int64_t* y0,
                    const int64_t* x0, int64_t Ho, int64_t Wo, const float* add);
    void (*mac)(int64_t F, int cin, int cout, const float* X, const float* W, float* Y);
    void (*mac_wgrad)(int64_t f0, int64_t f1, int nb, int K, int CB, const float* S, float* A);
};

namespace conv_fft_portable { const FftConvKernels& kernels(); }
namespace conv_fft_avx2 { const FftConvKernels& kernels(); }

}  // namespace fastconv
