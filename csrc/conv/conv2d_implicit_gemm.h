// Internal interface between the implicit-GEMM dispatch (conv2d_implicit_gemm.cpp) and its AVX2
// kernels (conv2d_implicit_gemm_avx2.cpp), and the forward's work plan, which the kernels follow and
// the cost model (src/fastconv/_conv_cost.py) reads. The public entry points are in conv/conv2d.h.
#pragma once

#include <vector>

#include "common/params.h"

namespace fastconv {

// The micro-kernel's tile (pixels x channels) and the forward's pixel blocking, shared by the
// kernels and the work plan below.
constexpr int kImplicitGemmMR = 6;   // tile rows: output pixels, the broadcast operand
constexpr int kImplicitGemmNR = 16;  // tile columns: output channels, two 8-float vectors
constexpr int64_t kImplicitGemmPixelBlock = 96;  // forward: output pixels per work item (multiple of MR)
// Forward, few pixels under large weights (late layers at batch 1): every pixel block streams all
// of a group's packed weights, so up to 4 blocks' pixels form one block when the weights pass half
// an L2: Inception-style 5x5 over 512 channels on 14x14 (6.5 MB of weights) read them 3 times, now
// once; each thread then takes a share of the panels.
constexpr int64_t kImplicitGemmOneBlockPixels = 4 * kImplicitGemmPixelBlock;
constexpr int64_t kImplicitGemmOneBlockWeightBytes = int64_t(1) << 19;

// How the forward shares `images` images among `threads` threads. Work items are (image, group,
// pixel block, part of the channel panels), item = rest * panel_parts + part, handed out in equal
// contiguous counts per thread. Work is counted in (pixels x 16-channel panels) units.
struct ImplicitGemmForwardPlan {
    bool one_block = false;    // all of an image's pixels in one block (few pixels, large weights)
    int64_t pixel_blocks = 1;  // blocks per image and group
    int64_t block_pixels = 0;  // pixels per block (a multiple of MR; the last block may hold fewer)
    int64_t panel_parts = 1;   // parts the channel panels are split into
    int64_t busiest = 0;       // work of the busiest thread
    int64_t total = 0;         // work of all threads
    // Whether tiles skip the kernel rows that read only padding (implicit_gemm_tile_rows; the
    // reduction then runs kernel row by kernel row inside chunks of channels), and the share of
    // the reduction steps the tiles then run (1 when they do not skip).
    bool by_rows = false;
    double row_steps = 1.0;
};
ImplicitGemmForwardPlan implicit_gemm_forward_plan(const Conv2dParams& p, int64_t images, int threads);

// Kernel rows [first, last) that a forward tile runs. Output row i reads input row i sh + r dh -
// pad_h for kernel row r; rows above and below the image are zero padding, so where every pixel of
// a tile reads padding for a kernel row, the tile skips that row's steps (a 3x3 layer with padding
// 1 on 7x7 maps: a third of the steps of the tiles in its first and last rows). One entry per tile
// of an image's P Q pixels: tile T holds pixels T MR .. min(T MR + MR, P Q) - 1, row-major.
struct KernelRows {
    int64_t first = 0, last = 0;
};
std::vector<KernelRows> implicit_gemm_tile_rows(const Conv2dParams& p);

// Whether the AVX2 kernels can run p: their int32 offsets must reach every tap of a group.
bool conv2d_implicit_gemm_avx2_fits(const Conv2dParams& p);
// Call only when use_avx2() and conv2d_implicit_gemm_avx2_fits(p); p.N >= 1.
void conv2d_implicit_gemm_forward_avx2(const Conv2dParams& p, const float* x, const float* w, const float* bias,
                                       float* y);
void conv2d_implicit_gemm_backward_weight_avx2(const Conv2dParams& p, const float* x, const float* dy, float* dw);
// The input gradient's offsets (into dy, padded as its phases read it, and into dx) fit int32.
bool conv2d_implicit_gemm_avx2_input_grad_fits(const Conv2dParams& p);
// Call only when use_avx2() and conv2d_implicit_gemm_avx2_input_grad_fits(p); p.N >= 1.
void conv2d_implicit_gemm_backward_input_avx2(const Conv2dParams& p, const float* dy, const float* w, float* dx);

}  // namespace fastconv
