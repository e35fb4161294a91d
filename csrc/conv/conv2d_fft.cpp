// FFT convolution (stride 1, dilation 1, groups 1), all three passes, by overlap-save tiling.
//
// Forward: the output plane is cut into O1 x O2 tiles; each reads a T1 x T2 input tile
// (T = O + R - 1) whose circular cross-correlation with the zero-padded kernel is exact on the
// first O1 x O2 points: Y_k = sum_c X_c conj(W_kc) per frequency, a complex GEMM over channels.
// Eight tiles are transformed at once, one per vector lane (fft.h), so the multiply-accumulate is
// a vector over tiles times a broadcast kernel coefficient. Kernel spectra are computed once per
// call (with the 1 / (T1 T2) of the inverse folded in) and shared by every tile of the batch.
// Input gradient: the same with dx_c = sum_k dy_k (*) w_kc, a full convolution, so the kernel
// spectrum is not conjugated and the valid points are the last O1 x O2 of each tile.
// Weight gradient: dw_kc = sum over tiles of x_c (correlate) dy_k, accumulated in the frequency
// domain with lanes = 8 input channels, and one inverse transform per (k, 8 channels) at the end.
//
// Work per tile of the forward pass: (C + K) real 2-D transforms of T1 x T2 (~2.5 T1 T2
// log2(T1 T2) flops each) and T1 (T2/2 + 1) C K complex multiply-adds (8 flops each), against
// 2 O1 O2 C K R S for the direct method. For big_kernel (9x9, C = K = 16) that is ~10x fewer flops.
// Measured (benchmarks/results/2026-11-25_vm_fft_1t_cpu_median.md, 1 thread, CPU time on a shared
// machine): big_kernel forward 5.4 ms, input gradient 5.3 ms, weight gradient 7.6 ms against
// torch's 24.9 / 25.6 / 29.5 ms; on 64x64, C = K = 16 it beats our direct and im2col from 3x3 up
// (forward and input gradient) and from 4x4 up (weight gradient).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "common/workspace.h"
#include "conv/conv2d.h"
#include "conv/conv2d_fft.h"

namespace fastconv {

namespace conv_fft_portable {
#include "conv/conv2d_fft_kernels.h"
}  // namespace conv_fft_portable

namespace {

constexpr int L = kFftLanes, PT = 2 * kFftLanes;

const FftConvKernels& conv_kernels() {
#if !defined(FASTCONV_NO_AVX2)
    if (use_avx2()) return conv_fft_avx2::kernels();
#endif
    return conv_fft_portable::kernels();
}

std::atomic<int> forced_T1{0}, forced_T2{0};

void require_supported(const Conv2dParams& p) {
    if (p.stride_h != 1 || p.stride_w != 1 || p.dil_h != 1 || p.dil_w != 1 || p.groups != 1)
        throw std::invalid_argument("algo: 'fft' supports only stride 1, dilation 1 and groups 1");
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Supported transform lengths in [lo, hi] (even ones only when `even`).
std::vector<int> candidate_sizes(int64_t lo, int64_t hi, bool even) {
    std::vector<int> out;
    for (int64_t n = fft_next_size(lo); n <= hi; n = fft_next_size(n + 1))
        if (!even || n % 2 == 0) out.push_back(int(n));
    return out;
}

// Relative cost of one transform point-log and one complex multiply-add. Measured on big_kernel
// with forced transform sizes (benchmarks/bench_fft.py --tiles): the transforms run at about a
// third of the multiply-add's flop rate, and time / model agreed within 5% for T = 16 .. 48.
constexpr double kFftCost = 2.5 * 3.0, kMacCost = 8.0;
// Larger tiles ran up to 2x slower than modelled (T = 64: 1.45x, 72: 1.9x, 144: 1.9x) once the
// spectra a tile group touches (its own plus the kernel's) outgrew ~7 MiB: the modelled cost
// grows by up to 2x over the next 4 MiB.
constexpr double kCacheBytes = 7.0 * (1 << 20), kCachePenaltySpan = 4.0 * (1 << 20);
constexpr int kMaxTile = 256;
// The tiling must not depend on the thread count (results are bitwise the same for any count), so
// the per-thread scratch is budgeted for this many threads.
constexpr double kScratchThreads = 4;
}  // namespace

void fft_conv_force_tile(int T1, int T2) {
    forced_T1.store(std::max(T1, 0));
    forced_T2.store(std::max(T2, 0));
}

FftConvTiling fft_conv_tiling(const Conv2dParams& p, FftPass pass) {
    require_supported(p);
    const bool input_grad = pass == FftPass::InputGrad;
    const int64_t Ho = input_grad ? p.H : p.P(), Wo = input_grad ? p.W : p.Q();
    const int64_t cin = input_grad ? p.K : p.C, cout = input_grad ? p.C : p.K;
    const double limit = double(get_workspace_limit());

    auto make = [&](int T1, int T2) {
        FftConvTiling t;
        t.T1 = T1;
        t.T2 = T2;
        t.O1 = int(T1 - p.R + 1);
        t.O2 = int(T2 - p.S + 1);
        t.tiles_h = ceil_div(Ho, t.O1);
        t.tiles_w = ceil_div(Wo, t.O2);
        return t;
    };
    const int f1 = forced_T1.load(), f2 = forced_T2.load();
    if (f1 > 0 && f2 > 0) {
        const int T1 = int(fft_next_size(std::max<int64_t>(f1, p.R)));
        int64_t T2 = fft_next_size(std::max<int64_t>(f2, p.S));
        while (T2 % 2) T2 = fft_next_size(T2 + 1);
        return make(T1, int(T2));
    }

    // From the smallest valid tile up to one covering the whole plane (or kMaxTile).
    int64_t min_T2 = fft_next_size(p.S);
    while (min_T2 % 2) min_T2 = fft_next_size(min_T2 + 1);
    const auto sizes1 = candidate_sizes(
        p.R, std::max<int64_t>(fft_next_size(p.R), std::min<int64_t>(kMaxTile, fft_next_size(Ho + p.R - 1))), false);
    const auto sizes2 = candidate_sizes(
        p.S, std::max<int64_t>(min_T2, std::min<int64_t>(kMaxTile, fft_next_size(Wo + p.S - 1) + 1)), true);
    FftConvTiling best, smallest;
    double best_cost = INFINITY, smallest_mem = INFINITY;
    for (int T1 : sizes1)
        for (int T2 : sizes2) {
            const FftConvTiling t = make(T1, T2);
            const double F = double(T1) * (T2 / 2 + 1);
            const double fft = kFftCost * T1 * T2 * std::max(1.0, std::log2(double(T1) * T2));
            const double tiles = double(p.N) * t.tiles_h * t.tiles_w;
            double cost, mem;
            if (pass == FftPass::WeightGrad) {
                const double C8 = ceil_div(p.C, L) * L, K8 = ceil_div(p.K, L) * L;
                cost = tiles * (C8 + K8) * fft + tiles * F * C8 * p.K * kMacCost + p.K * C8 * fft;
                mem = F * (p.K * C8 * 8.0 + (C8 + K8) * 8.0 * std::min(tiles, 64.0));
            } else {
                const double lanes = double(ceil_div(int64_t(tiles), L)) * L;
                cost = lanes * ((cin + cout) * fft + F * cin * cout * kMacCost) + ceil_div(cin * cout, L) * L * fft;
                mem = F * cin * cout * 8.0 + kScratchThreads * F * (cin + cout) * PT * 4.0;
            }
            const double touched = F * (cin * cout * 8.0 + (cin + cout) * PT * 4.0);
            cost *= 1.0 + std::clamp((touched - kCacheBytes) / kCachePenaltySpan, 0.0, 1.0);
            if (mem < smallest_mem) smallest_mem = mem, smallest = t;
            if (mem <= limit && cost < best_cost) best_cost = cost, best = t;
        }
    return best.T1 ? best : smallest;
}

namespace {

// Kernel spectra in layout [f][i][o] (interleaved complex), scaled by 1 / (T1 T2): for the
// forward i = c, o = k and the spectrum is conjugated (correlation); for the input gradient
// i = k, o = c. Lanes run over 8 consecutive o so each frequency writes 8 adjacent values.
// Kept in slot 0 of the calling thread.
const float* kernel_spectra(const Conv2dParams& p, const FftTilePlan& plan, bool forward, const float* w) {
    const int64_t F = int64_t(plan.T1) * plan.row_points(), K = p.K, C = p.C, RS = p.R * p.S;
    const int64_t cin = forward ? C : K, cout = forward ? K : C, OB = ceil_div(cout, L);
    float* spec = thread_scratch(0, size_t(F * K * C * 2));
    const float scale = 1.0f / (float(plan.T1) * float(plan.T2)), im_scale = forward ? -scale : scale;
    const auto& fk = fft_kernels();
    const auto& ck = conv_kernels();
    parallel_for(cin * OB, [&](long long g0, long long g1) {
        float* tile = thread_scratch(1, plan.tile_floats());
        float* sp = thread_scratch(2, plan.spectrum_floats());
        float* work = thread_scratch(4, plan.work_floats());
        const int64_t zero[L] = {};
        for (long long g = g0; g < g1; ++g) {
            const int64_t i = g / OB, o0 = g % OB * L, lanes = std::min<int64_t>(L, cout - o0);
            const float* src[L];
            for (int l = 0; l < L; ++l) {
                const int64_t o = o0 + l, k = forward ? o : i, c = forward ? i : o;
                src[l] = l < lanes ? w + (k * C + c) * RS : nullptr;
            }
            ck.gather(src, zero, zero, p.R, p.S, plan.T1, plan.T2, int(p.R), int(p.S), tile);
            fk.tile_r2c(plan, tile, int(p.R), sp, work);
            for (int64_t f = 0; f < F; ++f) {
                float* out = spec + ((f * cin + i) * cout + o0) * 2;
                for (int l = 0; l < lanes; ++l) {
                    out[2 * l] = sp[f * PT + l] * scale;
                    out[2 * l + 1] = sp[f * PT + L + l] * im_scale;
                }
            }
        }
    });
    return spec;
}

// One overlap-save pass: out[n][o] = sum_i in[n][i] (*) kernel_io, with the kernel spectra in
// layout [f][i][o]. A tile whose outputs start at (oy, ox) reads its input tile at
// (oy + shift_h, ox + shift_w) and takes its outputs from tile point (row_off, col_off) on.
struct TiledPass {
    int64_t N, cin, Hin, Win, cout, Hout, Wout;
    const float* in;
    float* out;
    const float* bias;
    const float* spec;
    int64_t shift_h, shift_w;
    int row_off, col_off;
};

void run_tiled(const TiledPass& a, const FftConvTiling& t) {
    const FftTilePlan plan = fft_tile_plan(t.T1, t.T2);
    const int64_t F = int64_t(plan.T1) * plan.row_points();
    const int64_t per_image = t.tiles_h * t.tiles_w, tiles = a.N * per_image;
    const auto& fk = fft_kernels();
    const auto& ck = conv_kernels();
    parallel_for(ceil_div(tiles, L), [&](long long g0, long long g1) {
        float* tile = thread_scratch(1, plan.tile_floats());
        float* X = thread_scratch(2, size_t(a.cin * F * PT));
        float* Y = thread_scratch(3, size_t(a.cout * F * PT));
        float* work = thread_scratch(4, plan.work_floats());
        for (long long g = g0; g < g1; ++g) {
            int64_t n[L], oy[L], ox[L], iy[L], ix[L];
            bool used[L];
            for (int l = 0; l < L; ++l) {
                const int64_t b = g * L + l;
                used[l] = b < tiles;
                const int64_t r = used[l] ? b % per_image : 0;
                n[l] = used[l] ? b / per_image : 0;
                oy[l] = r / t.tiles_w * t.O1;
                ox[l] = r % t.tiles_w * t.O2;
                iy[l] = oy[l] + a.shift_h;
                ix[l] = ox[l] + a.shift_w;
            }
            for (int64_t i = 0; i < a.cin; ++i) {
                const float* src[L];
                for (int l = 0; l < L; ++l) src[l] = used[l] ? a.in + (n[l] * a.cin + i) * a.Hin * a.Win : nullptr;
                ck.gather(src, iy, ix, a.Hin, a.Win, t.T1, t.T2, t.T1, t.T2, tile);
                fk.tile_r2c(plan, tile, t.T1, X + i * F * PT, work);
            }
            ck.mac(F, int(a.cin), int(a.cout), X, a.spec, Y);
            for (int64_t o = 0; o < a.cout; ++o) {
                fk.tile_c2r(plan, Y + o * F * PT, a.row_off, a.row_off + t.O1, tile, work);
                float* dst[L];
                float add[L];
                for (int l = 0; l < L; ++l) {
                    dst[l] = used[l] ? a.out + (n[l] * a.cout + o) * a.Hout * a.Wout : nullptr;
                    add[l] = a.bias ? a.bias[o] : 0.0f;
                }
                ck.scatter(tile, t.T2, t.O1, t.O2, a.col_off, dst, oy, ox, a.Hout, a.Wout, add);
            }
        }
    });
}

}  // namespace

void conv2d_fft_forward(const Conv2dParams& p, const float* x, const float* w, const float* bias, float* y) {
    const FftConvTiling t = fft_conv_tiling(p, FftPass::Forward);
    if (p.N == 0) return;
    const float* spec = kernel_spectra(p, fft_tile_plan(t.T1, t.T2), true, w);
    run_tiled({p.N, p.C, p.H, p.W, p.K, p.P(), p.Q(), x, y, bias, spec, -p.pad_h, -p.pad_w, 0, 0}, t);
}

void conv2d_fft_backward_input(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
    const FftConvTiling t = fft_conv_tiling(p, FftPass::InputGrad);
    if (p.N == 0) return;
    const float* spec = kernel_spectra(p, fft_tile_plan(t.T1, t.T2), false, w);
    run_tiled({p.N, p.K, p.P(), p.Q(), p.C, p.H, p.W, dy, dx, nullptr, spec, p.pad_h - (p.R - 1),
               p.pad_w - (p.S - 1), int(p.R - 1), int(p.S - 1)},
              t);
}

void conv2d_fft_backward_weight(const Conv2dParams& p, const float* x, const float* dy, float* dw) {
    const FftConvTiling t = fft_conv_tiling(p, FftPass::WeightGrad);
    if (p.N == 0) {
        std::fill(dw, dw + p.weight_numel(), 0.0f);
        return;
    }
    const FftTilePlan plan = fft_tile_plan(t.T1, t.T2);
    const int64_t F = int64_t(plan.T1) * plan.row_points();
    const int64_t C = p.C, K = p.K, CB = ceil_div(C, L), KB8 = ceil_div(K, L);
    const int64_t P = p.P(), Q = p.Q();
    const int64_t per_image = t.tiles_h * t.tiles_w, tiles = p.N * per_image;
    // The spectra of a chunk of tiles are stored, then reduced frequency by frequency with the
    // accumulators in registers. Chunks of up to 8 MiB stay in L3 between the two phases
    // (16 MiB measured 20% slower on big_kernel).
    const int64_t per_tile = (CB + KB8) * F * PT;
    const int64_t chunk = std::clamp<int64_t>((int64_t(2) << 20) / per_tile, 1, tiles);
    float* A = thread_scratch(0, size_t(F * K * CB * PT));  // [f][k][cb] points: lanes = 8 channels
    float* spectra = thread_scratch(5, size_t(chunk * per_tile));
    std::memset(A, 0, size_t(F * K * CB * PT) * sizeof(float));
    const auto& fk = fft_kernels();
    const auto& ck = conv_kernels();

    const int64_t G = CB + KB8;  // transforms per tile: input channel blocks, then output-gradient blocks
    for (int64_t b0 = 0; b0 < tiles; b0 += chunk) {
        const int64_t count = std::min(chunk, tiles - b0);
        parallel_for(count * G, [&](long long j0, long long j1) {
            float* tile = thread_scratch(1, plan.tile_floats());
            float* sp = thread_scratch(2, plan.spectrum_floats());
            float* work = thread_scratch(4, plan.work_floats());
            for (long long j = j0; j < j1; ++j) {
                const int64_t bi = j / G, g = j % G, b = b0 + bi;
                const int64_t n = b / per_image, r = b % per_image;
                const int64_t p0 = r / t.tiles_w * t.O1, q0 = r % t.tiles_w * t.O2;
                const float* src[L];
                int64_t oy[L], ox[L];
                if (g < CB) {  // input tile of 8 channels
                    for (int l = 0; l < L; ++l) {
                        src[l] = g * L + l < C ? x + (n * C + g * L + l) * p.H * p.W : nullptr;
                        oy[l] = p0 - p.pad_h;
                        ox[l] = q0 - p.pad_w;
                    }
                    ck.gather(src, oy, ox, p.H, p.W, t.T1, t.T2, t.T1, t.T2, tile);
                    fk.tile_r2c(plan, tile, t.T1, sp, work);
                } else {  // output-gradient tile of 8 channels, zero beyond O1 x O2
                    const int64_t kb = g - CB;
                    for (int l = 0; l < L; ++l) {
                        src[l] = kb * L + l < K ? dy + (n * K + kb * L + l) * P * Q : nullptr;
                        oy[l] = p0;
                        ox[l] = q0;
                    }
                    ck.gather(src, oy, ox, P, Q, t.T1, t.T2, t.O1, t.O2, tile);
                    fk.tile_r2c(plan, tile, t.O1, sp, work);
                }
                // Frequency-major: the reduction then streams through one contiguous block per f.
                for (int64_t f = 0; f < F; ++f)
                    std::memcpy(spectra + ((f * count + bi) * G + g) * PT, sp + f * PT, PT * sizeof(float));
            }
        });
        parallel_for(F, [&](long long f0, long long f1) { ck.mac_wgrad(f0, f1, int(count), int(K), int(CB), spectra, A); });
    }

    // Inverse transform of each (k, 8 channels) spectrum; keep the first R x S points.
    const float scale = 1.0f / (float(t.T1) * float(t.T2));
    parallel_for(K * CB, [&](long long j0, long long j1) {
        float* tile = thread_scratch(1, plan.tile_floats());
        float* sp = thread_scratch(2, plan.spectrum_floats());
        float* work = thread_scratch(4, plan.work_floats());
        const int64_t zero[L] = {};
        for (long long j = j0; j < j1; ++j) {
            const int64_t k = j / CB, cb = j % CB;
            for (int64_t f = 0; f < F; ++f) {
                const float* a = A + ((f * K + k) * CB + cb) * PT;
                for (int i = 0; i < PT; ++i) sp[f * PT + i] = a[i] * scale;
            }
            fk.tile_c2r(plan, sp, 0, int(p.R), tile, work);
            float* dst[L];
            for (int l = 0; l < L; ++l) dst[l] = cb * L + l < C ? dw + (k * C + cb * L + l) * p.R * p.S : nullptr;
            ck.scatter(tile, t.T2, int(p.R), int(p.S), 0, dst, zero, zero, p.R, p.S, nullptr);
        }
    });
}

}  // namespace fastconv
