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

// Channel-vectorised correlation tile, for outputs too narrow to fill 8 columns: 8 * KV output
// channels x PB output positions anywhere in the plane (their input offsets are given), the same
// sum as the correlation tile; results are stored lane by lane (8 * KV scattered floats).
struct KvecTileArgs {
    const float* in;          // packed input
    int64_t in_cstride;
    const int64_t* taps;
    int64_t ntaps;
    int64_t cin;
    const int64_t* pos_in;    // PB input offsets (repeat the last one to pad a short block)
    const int64_t* pos_out;   // PB output offsets
    int npos;                 // positions that exist (<= PB)
    const float* w;           // packed weights [cin][ntaps][8 * KV]
    const float* init;        // kvalid initial values or nullptr
    float* out;               // output of the tile's first channel
    int64_t out_kstride;
    int kvalid;
};
using KvecTileFn = void (*)(const KvecTileArgs&);

// Channel-vectorised reduction tile (weight gradient of narrow outputs): for 8 * KV channels and
// TB taps, acc[t * acc_tstride + k] += sum_pos dyT[pos][k] * in[pos_in[pos] + tap[t]], where dyT is
// grad_output transposed to [position][channel] (zero beyond the valid channels).
struct KvecReduceArgs {
    const float* dyT;
    int64_t ldk;              // floats per position in dyT
    int64_t npos;
    const float* in;          // packed input (a chunk of images)
    const int64_t* pos_in;    // npos offsets: image and output position
    const int64_t* taps;      // TB row offsets: input channel plane + tap (last one repeated to pad)
    float* acc;
    int64_t acc_tstride;
    int tvalid;
};
using KvecReduceFn = void (*)(const KvecReduceArgs&);

// Register-tile shapes: KB * IB * QV <= 12 accumulators (QV in 1..4); KB * TB <= 12 for reductions.
constexpr int kMaxAcc = 12;

// nullptr when the shape has no AVX2 instantiation.
CorrTileFn corr_tile_avx2(int KB, int IB, int QV);
ReduceTileFn reduce_tile_avx2(int KB, int TB);
KvecTileFn kvec_tile_avx2(int KV, int PB);  // (1, 12), (2, 6), (3, 4)
KvecReduceFn kvec_reduce_avx2(int KV, int TB);  // (1, 12), (2, 6), (3, 4)

// Portable versions (any shape within the limits above).
void corr_tile_portable(const CorrTileArgs&, int KB, int IB, int QV);
void reduce_tile_portable(const ReduceTileArgs&, int KB, int TB);
void kvec_tile_portable(const KvecTileArgs&, int KV, int PB);
void kvec_reduce_portable(const KvecReduceArgs&, int KV, int TB);

}  // namespace fastconv::direct
