// Implicit GEMM: output channels as the vector dimension, input pixels broadcast straight from the
// (padded) input, in all three passes (conv2d_implicit_gemm_avx2.cpp). The kernels need AVX2/FMA; elsewhere (the
// portable path, planes too large for int32 offsets) the same products run as im2col.
#include <algorithm>

#include "common/cpu_features.h"
#include "conv/conv2d.h"
#include "conv/conv2d_implicit_gemm.h"

namespace fastconv {

namespace {
bool use_kernels(const Conv2dParams& p) {
#if !defined(FASTCONV_NO_AVX2)
    return use_avx2() && conv2d_implicit_gemm_avx2_fits(p);
#else
    (void)p;
    return false;
#endif
}

// Work of the busiest of `threads` threads and of all, for `parts` panel parts.
std::pair<int64_t, int64_t> forward_loads(int64_t items0, int64_t mblocks, int64_t mb, int64_t PQ, int64_t panels,
                                          int64_t parts, int threads) {
    const int64_t items = items0 * parts;
    int64_t busiest = 0, total = 0;
    for (int t = 0; t < threads; ++t) {
        int64_t load = 0;
        for (int64_t item = items * t / threads; item < items * (t + 1) / threads; ++item) {
            const int64_t kp = item % parts, blk = (item / parts) % mblocks;
            load += std::min(mb, PQ - blk * mb) * (panels * (kp + 1) / parts - panels * kp / parts);
        }
        busiest = std::max(busiest, load), total += load;
    }
    return {busiest, total};
}

// floor(a / b) for b > 0.
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Row order pays where at least this share of the steps is skipped (benchmarks/results/
// 2026-12-05_epyc2c_skip_rows.md, against the (c, r, s) order): 3-14% faster with 8-18% skipped
// (3x3 512 -> 512 and 5x5 832 -> 128 on 7x7, 5x5 on 14x14, Inception-v3's 7x1); with 1.5% skipped
// ResNet's stem was 3-5% slower in the row order (its chunks of whole channels cost more than the
// skipped steps save).
constexpr double kRowOrderSkipShare = 0.05;

// Kernel rows reaching the image from each output row i: i sh + r dh - pad_h in [0, H).
std::vector<KernelRows> output_row_rows(const Conv2dParams& p) {
    std::vector<KernelRows> rows(size_t(p.P()));
    for (int64_t i = 0; i < p.P(); ++i) {
        const int64_t top = p.pad_h - i * p.stride_h, bottom = p.H - 1 + p.pad_h - i * p.stride_h;
        KernelRows& k = rows[size_t(i)];
        k.first = std::clamp<int64_t>(-floor_div(-top, p.dil_h), 0, p.R);  // ceil(top / dh)
        k.last = std::clamp<int64_t>(floor_div(bottom, p.dil_h) + 1, k.first, p.R);
    }
    return rows;
}

// The kernel rows tile t runs: the smallest range holding those of every output row it touches (a
// superset where they do not touch is still exact: the padded source holds zeros there).
KernelRows tile_kernel_rows(const std::vector<KernelRows>& by_row, int64_t t, int64_t Q, int64_t PQ) {
    constexpr int64_t MR = kImplicitGemmMR;
    const int64_t row0 = t * MR / Q, row1 = (std::min(t * MR + MR, PQ) - 1) / Q;
    KernelRows k = by_row[size_t(row0)];
    for (int64_t i = row0 + 1; i <= row1; ++i) {
        const KernelRows& r = by_row[size_t(i)];
        if (r.last > r.first) k = k.last > k.first ? KernelRows{std::min(k.first, r.first), std::max(k.last, r.last)} : r;
    }
    return k;
}

// Kernel rows skipped over an image's tiles (sum of R - (last - first)). Only tiles touching an
// output row whose windows leave the image skip any, so only those are visited (ResNet's stem has
// 2,091 tiles, 6 such rows).
int64_t skipped_kernel_rows(const Conv2dParams& p) {
    constexpr int64_t MR = kImplicitGemmMR;
    const int64_t Q = p.Q(), PQ = p.P() * Q;
    const std::vector<KernelRows> by_row = output_row_rows(p);
    int64_t skipped = 0, next = 0;  // next: the first tile not yet counted
    for (int64_t i = 0; i < p.P(); ++i) {
        const KernelRows& r = by_row[size_t(i)];
        if (r.first == 0 && r.last == p.R) continue;
        for (int64_t t = std::max(next, i * Q / MR); t <= ((i + 1) * Q - 1) / MR; ++t) {
            const KernelRows k = tile_kernel_rows(by_row, t, Q, PQ);
            skipped += p.R - (k.last - k.first);
        }
        next = std::max(next, ((i + 1) * Q - 1) / MR + 1);
    }
    return skipped;
}

}  // namespace

std::vector<KernelRows> implicit_gemm_tile_rows(const Conv2dParams& p) {
    const int64_t Q = p.Q(), PQ = p.P() * Q;
    const std::vector<KernelRows> by_row = output_row_rows(p);
    std::vector<KernelRows> tiles(size_t((PQ + kImplicitGemmMR - 1) / kImplicitGemmMR));
    for (size_t t = 0; t < tiles.size(); ++t) tiles[t] = tile_kernel_rows(by_row, int64_t(t), Q, PQ);
    return tiles;
}

ImplicitGemmForwardPlan implicit_gemm_forward_plan(const Conv2dParams& p, int64_t images, int threads) {
    constexpr int64_t MR = kImplicitGemmMR, NR = kImplicitGemmNR;
    const int64_t PQ = p.P() * p.Q(), Kg = p.K_per_group(), CRS = p.C_per_group() * p.R * p.S;
    const int64_t panels = (Kg + NR - 1) / NR;
    threads = std::max(threads, 1);
    ImplicitGemmForwardPlan plan;
    plan.one_block = PQ <= kImplicitGemmOneBlockPixels && CRS * Kg * int64_t(sizeof(float)) > kImplicitGemmOneBlockWeightBytes;
    // Pixel blocks of equal size (196 outputs: 3 x 66, not 96 + 96 + 4), so that items balance.
    plan.pixel_blocks = plan.one_block ? 1 : std::max<int64_t>(1, (PQ + kImplicitGemmPixelBlock - 1) / kImplicitGemmPixelBlock);
    plan.block_pixels = ((PQ + plan.pixel_blocks - 1) / plan.pixel_blocks + MR - 1) / MR * MR;
    // Few items (batch 1, small maps): the panels are split too, so that every thread has work
    // (at least 4 items per thread); among up to 4x the least such count of parts, the one whose
    // busiest thread has the least work. At batch 1 the least count can leave one thread 12% more
    // work (3 pixel blocks x 3 parts of 16 panels: 4 items against 5).
    const int64_t items0 = std::max<int64_t>(1, images * p.groups * plan.pixel_blocks), want = 4 * int64_t(threads);
    const int64_t least = std::min(panels, std::max<int64_t>(1, (want + items0 - 1) / items0));
    plan.panel_parts = least, plan.busiest = -1;
    for (int64_t parts = least; parts <= std::min(panels, 4 * least); ++parts) {
        const auto [busiest, total] = forward_loads(items0, plan.pixel_blocks, plan.block_pixels, PQ, panels, parts, threads);
        if (plan.busiest < 0 || busiest < plan.busiest) plan.panel_parts = parts, plan.busiest = busiest, plan.total = total;
    }
    // Skipping rows pays where at least kRowOrderSkipShare of the steps go (the chunked row order
    // costs a little where there is little to skip).
    if (p.pad_h > 0 && PQ > 0) {
        const int64_t tiles = (PQ + MR - 1) / MR;
        const double share = 1.0 - double(skipped_kernel_rows(p)) / double(tiles * p.R);
        plan.by_rows = share <= 1.0 - kRowOrderSkipShare;
        plan.row_steps = plan.by_rows ? share : 1.0;
    }
    return plan;
}

void conv2d_implicit_gemm_forward(const Conv2dParams& p, const float* x, const float* w, const float* bias, float* y) {
    if (p.N == 0) return;
#if !defined(FASTCONV_NO_AVX2)
    if (use_kernels(p)) return conv2d_implicit_gemm_forward_avx2(p, x, w, bias, y);
#endif
    conv2d_im2col_forward(p, x, w, bias, y);
}

void conv2d_implicit_gemm_backward_input(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
#if !defined(FASTCONV_NO_AVX2)
    if (p.N > 0 && use_avx2() && conv2d_implicit_gemm_avx2_input_grad_fits(p))
        return conv2d_implicit_gemm_backward_input_avx2(p, dy, w, dx);
#endif
    conv2d_im2col_backward_input(p, dy, w, dx);
}

void conv2d_implicit_gemm_backward_weight(const Conv2dParams& p, const float* x, const float* dy, float* dw) {
#if !defined(FASTCONV_NO_AVX2)
    if (p.N > 0 && use_kernels(p)) return conv2d_implicit_gemm_backward_weight_avx2(p, x, dy, dw);
#endif
    conv2d_im2col_backward_weight(p, x, dy, dw);
}

}  // namespace fastconv
