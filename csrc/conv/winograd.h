// Internal interface of the Winograd convolution (conv2d_winograd.cpp drives, the transforms live in
// winograd_transforms.h and are compiled twice: portable in conv2d_winograd.cpp, AVX2/FMA in
// conv2d_winograd_avx2.cpp).
#pragma once

#include <cstdint>

namespace fastconv {

// One 3x3 convolution seen as Winograd F(m x m, 3 x 3) over output tiles. At stride 1 the forward
// pass and the input gradient both map onto it (the latter with the flipped, transposed kernel and
// padding 2 - pad, which may be negative: reads outside the input are zeros either way). At stride 2
// the kernel splits by the parity of its taps into 2x2, 2x1, 1x2 and 1x1 kernels, each a stride-1
// correlation of one parity phase of the input: the 2-tap axes run Winograd F(2, 2) (3
// multiplications for 2 outputs), so a 2x2 output tile takes 9 + 6 + 6 + 4 = 25 products per channel
// pair instead of 36 (winograd_transforms.h: Stride2 for the forward pass, m = 2; Stride2Grad for
// the input gradient, the same products per 4x4 block of dx, m = 4).
struct WinogradPlan {
    int m = 2;                                 // output tile side: 2 or 4
    int stride = 1;                            // 1, or 2 (m = 2; m = 4 for the input gradient)
    // Stride 2 input gradient (dx = the transposed convolution of dy): a tile is a 4x4 block of dx
    // at (4 ti, 4 tj), each of its rows an (even or odd) phase of the convolution's rows, read from
    // the 3x3 patch of dy at (2 ti - pad_h, 2 tj - pad_w); odd_h / odd_w: the convolution's padding
    // is odd, so the block's first row (column) is an odd phase.
    bool transposed = false, odd_h = false, odd_w = false;
    int64_t N = 0, Cin = 0, Hin = 0, Win = 0;  // input planes (x, or grad_output for the input grad)
    int64_t Cout = 0, Hout = 0, Wout = 0;      // output planes
    int64_t pad_h = 0, pad_w = 0;              // input row of tile row i: i*m*stride - pad_h (transposed: i*m/2 - pad_h)
    int64_t tiles_h = 0, tiles_w = 0;          // tiles per image: ceil(Hout/m) x ceil(Wout/m)

    int alpha() const { return m + 2; }
    // Transformed positions per tile (products per channel pair): (m+2)^2, or 25 at stride 2.
    int positions() const { return stride == 2 ? 25 : alpha() * alpha(); }
    int64_t tiles() const { return N * tiles_h * tiles_w; }
};

// Planes of the transformed kernel: one per position, but at stride 2 positions share them
// (winograd_s2_kernel_plane): 16 for 25.
inline int winograd_kernel_planes(int m, int stride) { return stride == 2 ? 16 : (m + 2) * (m + 2); }

// Stride 2: the kernel plane of position xi. A 2-tap column (positions 9 + 2a + j) is the same
// for both output columns j, a 2-tap row (15 + 3i + b) for both output rows i, and the odd-odd tap
// (21-24) for all four outputs.
inline int winograd_s2_kernel_plane(int xi) {
    return xi < 9 ? xi : xi < 15 ? 9 + (xi - 9) / 2 : xi < 21 ? 12 + (xi - 15) % 3 : 15;
}
// Stride 2: the order the per-position GEMMs run in, positions of one kernel plane back to back
// (the plane is then read from L2 the second time).
constexpr int kWinogradS2Order[25] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 18, 16, 19, 17, 20,
                                      21, 22, 23, 24};

// Transformed input of tiles [tile0, tile0 + ntiles) (ntiles <= ld): V[xi][c][t] at
// V[xi * xi_stride + c * ld + t] for xi < positions(); columns up to round_up(ntiles, 8) are written.
void winograd_input_transform_portable(const WinogradPlan&, const float* in, int64_t tile0, int64_t ntiles,
                                       int64_t ld, int64_t xi_stride, float* V);
void winograd_input_transform_avx2(const WinogradPlan&, const float* in, int64_t tile0, int64_t ntiles,
                                   int64_t ld, int64_t xi_stride, float* V);

// Output tiles from the products M[xi][k][t] at M[xi * xi_stride + k * ld + t], plus bias (or
// nullptr), written (clipped to Hout x Wout) into out (N, Cout, Hout, Wout).
void winograd_output_transform_portable(const WinogradPlan&, const float* M, int64_t tile0, int64_t ntiles,
                                        int64_t ld, int64_t xi_stride, const float* bias, float* out);
void winograd_output_transform_avx2(const WinogradPlan&, const float* M, int64_t tile0, int64_t ntiles,
                                    int64_t ld, int64_t xi_stride, const float* bias, float* out);

// Weight gradient, over the forward's plan (Cin = C, Cout = K, Hout x Wout = P x Q): transformed
// output gradient U[xi][k][t] = (A dY A^T)[xi] of tiles [tile0, tile0 + ntiles) at
// U[xi * xi_stride + k * ld + t] (columns up to round_up(ntiles, 8) written), and the inverse
// dw[k][c] = G^T M[.][k][c] G for k in [k0, k1) from M[xi][k][c] at M[xi * xi_stride + k * C + c].
void winograd_grad_transform_portable(const WinogradPlan&, const float* dy, int64_t tile0, int64_t ntiles,
                                      int64_t ld, int64_t xi_stride, float* U);
void winograd_grad_transform_avx2(const WinogradPlan&, const float* dy, int64_t tile0, int64_t ntiles,
                                  int64_t ld, int64_t xi_stride, float* U);
void winograd_weight_transform_portable(int m, const float* M, int64_t C, int64_t xi_stride, int64_t k0,
                                        int64_t k1, float* dw);
void winograd_weight_transform_avx2(int m, const float* M, int64_t C, int64_t xi_stride, int64_t k0, int64_t k1,
                                    float* dw);

// Transformed kernel for output channels [o0, o1): U[xi][o][i] at U[xi * xi_stride + o * Cin + i] for
// each kernel plane xi < winograd_kernel_planes(m, stride), from w (K, C, 3, 3). Forward: Cout = K,
// Cin = C. Input gradient (input_grad): Cout = C, Cin = K and each 3x3 kernel is flipped.
void winograd_kernel_transform_portable(int m, int stride, const float* w, int64_t K, int64_t C, bool input_grad,
                                        int64_t o0, int64_t o1, int64_t xi_stride, float* U);
void winograd_kernel_transform_avx2(int m, int stride, const float* w, int64_t K, int64_t C, bool input_grad,
                                    int64_t o0, int64_t o1, int64_t xi_stride, float* U);

}  // namespace fastconv
