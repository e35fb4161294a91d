// Micro-kernels of the direct convolution (conv2d_direct.cpp drives them; the AVX2/FMA versions
// live in conv2d_direct_avx2.cpp). Every pass of the direct algorithm is reduced to one of two
// shapes over a zero-padded, unit-stride "packed" input, so one set of register tiles serves all:
//
//   correlation tile: out[k][i][j] = init[k] + sum_ci sum_t w[ci][t][k] * in[ci][i * rs + tap[t] + j]
//     for k < KB, i < IB rows, j < 8 * QV columns; forward and (per stride phase) input gradient.
//   reduction tile:   acc[k][t] += sum_i sum_j dy[k][i][j] * in[i * rs + tap[t] + j]
//     for k < KB, t < TB taps; weight gradient.
// Declarations only (no inline code), so nothing compiled with -mavx2 leaks into portable code.
#pragma once

#include <cstdint>

namespace fastconv::direct {

struct CorrTileArgs {
    const float* in;          // packed input at the tile's first row and column
    int64_t in_cstride;       // floats between packed input channels
    int64_t in_rstride;       // floats between the inputs of consecutive output rows
    const int64_t* taps;      // ntaps offsets (floats) of each kernel tap in the packed input
    int64_t ntaps;
    int64_t cin;              // input channels summed over
    const float* w;           // packed weights [cin][ntaps][KB]
    const float* init;        // kvalid initial values (the bias) or nullptr for zero
    float* out;               // output at the tile's first channel, row and column
    int64_t out_kstride, out_rstride, out_cstride;  // out_cstride 1: contiguous columns
    int kvalid;               // channels of the tile that exist (<= KB)
    int rows;                 // rows of the tile that exist (<= IB); missing rows are not stored
    int cols;                 // columns that exist (<= 8 * QV)
};
using CorrTileFn = void (*)(const CorrTileArgs&);

struct ReduceTileArgs {
    const float* dy;          // packed gradient of channel k0: [k][rows][dy_rstride], zero beyond the valid columns
    int64_t dy_kstride, dy_rstride;
    const float* in;          // packed input of one channel
    int64_t in_rstride;
    const int64_t* taps;      // TB tap offsets (repeat the last one to pad a short block)
    int64_t rows;             // output rows summed over
    int64_t vecs;             // 8-float column vectors per row
    float* acc;               // acc[k * acc_kstride + t] += sum
    int64_t acc_kstride;
    int kvalid, tvalid;
};
using ReduceTileFn = void (*)(const ReduceTileArgs&);

// Register-tile shapes: KB * IB * QV <= 12 accumulators (QV in 1..4); KB * TB <= 12 for reductions.
constexpr int kMaxAcc = 12;

// nullptr when the shape has no AVX2 instantiation.
CorrTileFn corr_tile_avx2(int KB, int IB, int QV);
ReduceTileFn reduce_tile_avx2(int KB, int TB);

// Portable versions (any shape within the limits above).
void corr_tile_portable(const CorrTileArgs&, int KB, int IB, int QV);
void reduce_tile_portable(const ReduceTileArgs&, int KB, int TB);

}  // namespace fastconv::direct
