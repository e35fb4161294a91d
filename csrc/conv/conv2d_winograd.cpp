// Winograd convolution F(m x m, 3 x 3), m = 2 or 4 (Lavin & Gray 2015), forward and input gradient.
//
// Each output tile of m x m needs an (m+2) x (m+2) input patch d and the 3x3 kernel g:
//   y = A^T [ (G g G^T) .* (B^T d B) ] A.
// Summed over input channels, the element-wise product becomes, for each of the (m+2)^2 positions
// xi, a GEMM  M[xi] (Cout x tiles) = U[xi] (Cout x Cin) @ V[xi] (Cin x tiles), which carries all the
// multiplications: 2*Cout*Cin*(m+2)^2 per tile instead of 2*Cout*Cin*9*m^2, i.e. 2.25x (F2) or 4x
// (F4) fewer than direct convolution.
//
// Schedule: the tiles are cut into blocks sized so that a block's V and M stay in L2; each thread
// takes whole blocks: input transform -> (m+2)^2 single-threaded sgemm calls -> output transform.
// U is computed once per call, shared by all threads.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "common/workspace.h"
#include "conv/conv2d.h"
#include "conv/winograd_transforms.h"
#include "gemm/gemm.h"

namespace fastconv {

void winograd_input_transform_portable(const WinogradPlan& p, const float* in, int64_t tile0, int64_t ntiles,
                                       int64_t ld, float* V) {
    if (p.m == 2)
        input_transform<2>(p, in, tile0, ntiles, ld, V);
    else
        input_transform<4>(p, in, tile0, ntiles, ld, V);
}

void winograd_output_transform_portable(const WinogradPlan& p, const float* M, int64_t tile0, int64_t ntiles,
                                        int64_t ld, const float* bias, float* out) {
    if (p.m == 2)
        output_transform<2>(p, M, tile0, ntiles, ld, bias, out);
    else
        output_transform<4>(p, M, tile0, ntiles, ld, bias, out);
}

void winograd_kernel_transform_portable(int m, const float* w, int64_t K, int64_t C, bool input_grad, int64_t o0,
                                        int64_t o1, float* U) {
    if (m == 2)
        kernel_transform<2>(w, K, C, input_grad, o0, o1, U);
    else
        kernel_transform<4>(w, K, C, input_grad, o0, o1, U);
}

namespace {

void check_supported(const Conv2dParams& p, int m) {
    p.validate();
    if (p.R != 3 || p.S != 3 || p.stride_h != 1 || p.stride_w != 1 || p.dil_h != 1 || p.dil_w != 1 ||
        p.groups != 1)
        throw std::invalid_argument("algo: winograd_f" + std::to_string(m) +
                                    " needs a 3x3 kernel, stride 1, dilation 1 and groups 1");
}

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// Tiles per block: the block's V (Cin x tiles) and M (Cout x tiles) for all positions fit in about
// half of a 1 MiB L2, and the blocks split evenly over the threads.
int64_t tiles_per_block(const WinogradPlan& p, int threads) {
    const int64_t T = p.alpha() * p.alpha();
    const int64_t bytes_per_tile = T * (p.Cin + p.Cout) * int64_t(sizeof(float));
    const int64_t cap = std::max<int64_t>(kLanes, (int64_t(512) << 10) / bytes_per_tile);
    const int64_t tiles = p.tiles();
    const int64_t blocks = round_up((tiles + cap - 1) / cap, threads);
    return round_up((tiles + blocks - 1) / blocks, kLanes);
}

void winograd_run(const WinogradPlan& p, const float* w, int64_t K, int64_t C, bool input_grad, const float* in,
                  const float* bias, float* out) {
    if (p.N == 0) return;
    const bool avx2 = use_avx2();
    const int64_t T = p.alpha() * p.alpha();
    float* U = thread_scratch(2, size_t(checked_mul(T, checked_mul(p.Cout, p.Cin, "winograd"), "winograd")));
    parallel_for(p.Cout, [&](long long o0, long long o1) {
        (avx2 ? winograd_kernel_transform_avx2 : winograd_kernel_transform_portable)(p.m, w, K, C, input_grad, o0,
                                                                                       o1, U);
    });

    const int64_t block = tiles_per_block(p, region_threads());
    const int64_t nblocks = (p.tiles() + block - 1) / block;
    const auto input_transform_fn = avx2 ? winograd_input_transform_avx2 : winograd_input_transform_portable;
    const auto output_transform_fn = avx2 ? winograd_output_transform_avx2 : winograd_output_transform_portable;
    parallel_for(nblocks, [&](long long b0, long long b1) {
        float* V = thread_scratch(0, size_t(T * p.Cin * block));
        float* M = thread_scratch(1, size_t(T * p.Cout * block));
        for (long long b = b0; b < b1; ++b) {
            const int64_t tile0 = b * block, ntiles = std::min(block, p.tiles() - tile0);
            input_transform_fn(p, in, tile0, ntiles, block, V);
            GemmParams g;
            g.M = p.Cout;
            g.N = ntiles;
            g.K = p.Cin;
            g.a_row = p.Cin;
            g.b_row = block;
            g.c_row = block;
            for (int64_t xi = 0; xi < T; ++xi)
                sgemm(g, U + xi * p.Cout * p.Cin, V + xi * p.Cin * block, M + xi * p.Cout * block);
            output_transform_fn(p, M, tile0, ntiles, block, bias, out);
        }
    });
}

WinogradPlan make_plan(int m, int64_t N, int64_t Cin, int64_t Hin, int64_t Win, int64_t Cout, int64_t Hout,
                       int64_t Wout, int64_t pad_h, int64_t pad_w) {
    WinogradPlan p;
    p.m = m;
    p.N = N;
    p.Cin = Cin;
    p.Hin = Hin;
    p.Win = Win;
    p.Cout = Cout;
    p.Hout = Hout;
    p.Wout = Wout;
    p.pad_h = pad_h;
    p.pad_w = pad_w;
    p.tiles_h = (Hout + m - 1) / m;
    p.tiles_w = (Wout + m - 1) / m;
    return p;
}

void forward(int m, const Conv2dParams& p, const float* x, const float* w, const float* bias, float* y) {
    check_supported(p, m);
    const WinogradPlan plan = make_plan(m, p.N, p.C, p.H, p.W, p.K, p.P(), p.Q(), p.pad_h, p.pad_w);
    winograd_run(plan, w, p.K, p.C, false, x, bias, y);
}

// dx = full correlation of dy with the flipped kernel, channels transposed: padding 2 - pad.
void backward_input(int m, const Conv2dParams& p, const float* dy, const float* w, float* dx) {
    check_supported(p, m);
    const WinogradPlan plan = make_plan(m, p.N, p.K, p.P(), p.Q(), p.C, p.H, p.W, 2 - p.pad_h, 2 - p.pad_w);
    winograd_run(plan, w, p.K, p.C, true, dy, nullptr, dx);
}

}  // namespace

void conv2d_winograd_f2_forward(const Conv2dParams& p, const float* x, const float* w, const float* bias,
                                float* y) {
    forward(2, p, x, w, bias, y);
}
void conv2d_winograd_f4_forward(const Conv2dParams& p, const float* x, const float* w, const float* bias,
                                float* y) {
    forward(4, p, x, w, bias, y);
}
void conv2d_winograd_f2_backward_input(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
    backward_input(2, p, dy, w, dx);
}
void conv2d_winograd_f4_backward_input(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
    backward_input(4, p, dy, w, dx);
}

}  // namespace fastconv
