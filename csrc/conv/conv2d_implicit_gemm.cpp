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

}  // namespace

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
