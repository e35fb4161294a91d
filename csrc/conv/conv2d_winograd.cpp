// Winograd convolution F(m x m, 3 x 3), m = 2 or 4 (Lavin & Gray 2015), forward and input gradient;
// at stride 2, F(2x2, 3x3) by tap parity (winograd.h), forward and input gradient.
//
// Each output tile of m x m needs an (m+2) x (m+2) input patch d and the 3x3 kernel g:
//   y = A^T [ (G g G^T) .* (B^T d B) ] A.
// Summed over input channels, the element-wise product becomes, for each of the (m+2)^2 positions
// xi, a GEMM  M[xi] (Cout x tiles) = U[xi] (Cout x Cin) @ V[xi] (Cin x tiles), which carries all the
// multiplications: 2*Cout*Cin*(m+2)^2 per tile instead of 2*Cout*Cin*9*m^2, i.e. 2.25x (F2) or 4x
// (F4) fewer than direct convolution.
//
// Napkin math (vgg_3x3, F4): 1568 tiles; GEMMs 36 x (64 x 64 x 1568) = 0.46 GFLOP against 1.85 for
// direct; V and M 14 MB each, so they are never materialized whole: the tiles are cut into blocks
// (>= 64 tiles, ~2 MiB of V + M, L2-sized) and each thread takes whole blocks: input transform ->
// (m+2)^2 single-threaded sgemm calls (the GEMM reads V and writes M while they are cache-hot) ->
// output transform. Per tile and channel the transforms cost ~12 vector ops per 8 tiles per row,
// against 36 x Cout FMAs in the GEMM, so they matter when channels are few (C or K < 8: see the
// "auto" rules in conv.py). U (36 K C floats) is computed once per weight content and cached (see
// KernelCache), shared by all threads: on resnet_3x3 F4 a cache hit saves 15-30% of the call (1
// thread; 9.4 MB of U), on vgg_3x3 nothing measurable. Measured: benchmarks/results/*_winograd.md.
#include <algorithm>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "common/workspace.h"
#include "conv/conv2d.h"
#include "conv/winograd_transforms.h"
#include "gemm/gemm.h"

namespace fastconv {

void winograd_input_transform_portable(const WinogradPlan& p, const float* in, int64_t tile0, int64_t ntiles,
                                       int64_t ld, int64_t xi_stride, float* V) {
    with_variant(p, [&](auto v) { input_transform<decltype(v)>(p, in, tile0, ntiles, ld, xi_stride, V); });
}

void winograd_output_transform_portable(const WinogradPlan& p, const float* M, int64_t tile0, int64_t ntiles,
                                        int64_t ld, int64_t xi_stride, const float* bias, float* out) {
    with_variant(p, [&](auto v) { output_transform<decltype(v)>(p, M, tile0, ntiles, ld, xi_stride, bias, out); });
}

void winograd_kernel_transform_portable(int m, int stride, const float* w, int64_t K, int64_t C, bool input_grad,
                                        int64_t o0, int64_t o1, int64_t xi_stride, float* U) {
    with_kernel_variant(m, stride,
                        [&](auto v) { kernel_transform<decltype(v)>(w, K, C, input_grad, o0, o1, xi_stride, U); });
}

void winograd_grad_transform_portable(const WinogradPlan& p, const float* dy, int64_t tile0, int64_t ntiles,
                                      int64_t ld, int64_t xi_stride, float* U) {
    if (p.m == 2)
        grad_transform<2>(p, dy, tile0, ntiles, ld, xi_stride, U);
    else
        grad_transform<4>(p, dy, tile0, ntiles, ld, xi_stride, U);
}

void winograd_weight_transform_portable(int m, const float* M, int64_t C, int64_t xi_stride, int64_t k0,
                                        int64_t k1, float* dw) {
    if (m == 2)
        weight_transform<2>(M, C, xi_stride, k0, k1, dw);
    else
        weight_transform<4>(M, C, xi_stride, k0, k1, dw);
}

namespace {

void check_supported(const Conv2dParams& p, int m, int stride = 1) {
    p.validate();
    if (p.R != 3 || p.S != 3 || p.stride_h != stride || p.stride_w != stride || p.dil_h != 1 || p.dil_w != 1 ||
        p.groups != 1)
        throw std::invalid_argument(std::string("algo: ") +
                                    (stride == 2 ? "winograd_s2" : m == 2 ? "winograd_f2" : "winograd_f4") +
                                    " needs a 3x3 kernel, stride " + std::to_string(stride) +
                                    ", dilation 1 and groups 1");
}

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// The three-phase schedule in winograd_run: one thread, V + M for all tiles at most half the 32 MiB
// L3, and per-position kernels of at least 128 x 128 (so packing them once instead of per block
// pays). Measured (1 thread, thread time): resnet_3x3 7-8% faster, (8, 512, 7, 7) F2 16%; with
// 64 x 64 kernels (vgg_3x3 F2, 12.8 MB of V + M) 5% slower, so it stays blocked. With 2 threads
// half of V and M would cross between the cores' L2s and each of the three regions waits for the
// slower thread: resnet_3x3 medians 38 vs 27 ms (F4) and 40 vs 31 ms (F2) against blocked,
// interleaved on a loaded machine, so multi-threaded calls stay blocked. Stride 2 stays blocked
// too (the suite's stride2 at 9.4-10.1 ms against 7.7-7.9 in blocks: tiles_per_block).
constexpr int64_t kWholeBytes = int64_t(16) << 20;
constexpr int64_t kWholeMinChannels = 128 * 128;

// Tiles are dealt to the threads in units of 16 (the AVX2 transforms take two groups of 8 at a
// time), an even contiguous share each; a thread then walks its share in blocks. Block size,
// measured (1 thread, vgg_3x3 and resnet_3x3): the per-position GEMMs speed up with the tile count
// up to 64-128 (resnet F4: 26 ms at 16, 22 at 32, 20 at 64), which matters more than the block
// staying in L2, so a block is at least 64 tiles and at most ~2 MiB of V + M, and a share is split
// into equal blocks.
constexpr int64_t kTileUnit = 2 * kLanes;

// At stride 2 (25 positions; benchmarks/results/2026-12-05_epyc2c_winograd_s2.md) blocks of at least
// 32 tiles and ~1 MiB of V + M (the L2): the suite's stride2 (128 -> 256 channels, 392 tiles)
// took 7.7-7.9 ms with 32-tile blocks against 8.4 with 64, 8.9 with 128, and 9.4-10.1 in the
// unblocked schedule (1 thread, thread time).
int64_t tiles_per_block(const WinogradPlan& p, int threads) {
    const int64_t T = p.positions();
    const int64_t bytes_per_tile = T * (p.Cin + p.Cout) * int64_t(sizeof(float));
    const int64_t least = p.stride == 2 ? 32 : 64, budget = int64_t(p.stride == 2 ? 1 : 2) << 20;
    const int64_t cap = std::max<int64_t>(least, budget / bytes_per_tile);
    const int64_t share = round_up((p.tiles() + threads - 1) / threads, kTileUnit);
    const int64_t blocks = (share + cap - 1) / cap;
    return round_up((share + blocks - 1) / blocks, kTileUnit);
}

// Transformed kernels, cached by content: an entry is reused only when the weights are bitwise equal
// to the copy it keeps (memcmp stops at the first difference, so a miss after an optimizer step costs
// little), which makes in-place weight updates safe whatever the pointer. Bounded LRU; an evicted
// entry's buffers are recycled for the new one so training loops do not re-fault fresh pages.
struct KernelEntry {
    int m = 0, stride = 1;
    bool input_grad = false;
    int64_t K = 0, C = 0, xi_stride = 0;
    std::vector<float> w, U;
};

class KernelCache {
   public:
    std::shared_ptr<const KernelEntry> get(int m, int stride, const float* w, int64_t K, int64_t C, bool input_grad) {
        const size_t wn = size_t(K * C * 9);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            for (auto it = entries_.begin(); it != entries_.end(); ++it) {
                const KernelEntry& e = **it;
                if (e.m == m && e.stride == stride && e.input_grad == input_grad && e.K == K && e.C == C &&
                    std::memcmp(e.w.data(), w, wn * sizeof(float)) == 0) {
                    entries_.splice(entries_.begin(), entries_, it);
                    return entries_.front();
                }
            }
        }
        auto e = recycled_or_new();
        const int64_t T = winograd_kernel_planes(m, stride), Cout = input_grad ? C : K, Cin = input_grad ? K : C;
        e->m = m;
        e->stride = stride;
        e->input_grad = input_grad;
        e->K = K;
        e->C = C;
        e->xi_stride = Cout * Cin + 16;  // one cache line apart, as for V and M
        e->w.assign(w, w + wn);
        e->U.resize(size_t(checked_mul(T, e->xi_stride, "winograd kernel")));
        const auto fn = use_avx2() ? winograd_kernel_transform_avx2 : winograd_kernel_transform_portable;
        float* U = e->U.data();
        const int64_t u_stride = e->xi_stride;
        parallel_for(Cout, [&](long long o0, long long o1) { fn(m, stride, w, K, C, input_grad, o0, o1, u_stride, U); });
        std::lock_guard<std::mutex> lock(mutex_);
        entries_.push_front(e);
        bytes_ += bytes_of(*e);
        while (entries_.size() > 1 && (bytes_ > kMaxBytes || entries_.size() > kMaxEntries)) {
            bytes_ -= bytes_of(*entries_.back());
            spare_ = entries_.back();
            entries_.pop_back();
        }
        return e;
    }

   private:
    static constexpr size_t kMaxEntries = 16;
    static constexpr size_t kMaxBytes = size_t(128) << 20;

    static size_t bytes_of(const KernelEntry& e) { return (e.w.size() + e.U.size()) * sizeof(float); }

    std::shared_ptr<KernelEntry> recycled_or_new() {
        std::lock_guard<std::mutex> lock(mutex_);
        std::shared_ptr<KernelEntry> e;
        if (spare_ && spare_.use_count() == 1) e = std::const_pointer_cast<KernelEntry>(spare_);
        spare_.reset();
        return e ? e : std::make_shared<KernelEntry>();
    }

    std::mutex mutex_;
    std::list<std::shared_ptr<const KernelEntry>> entries_;  // most recently used first
    std::shared_ptr<const KernelEntry> spare_;               // last evicted, buffers kept for reuse
    size_t bytes_ = 0;
};

KernelCache& kernel_cache() {
    static KernelCache cache;
    return cache;
}

void winograd_run(const WinogradPlan& p, const float* w, int64_t K, int64_t C, bool input_grad, const float* in,
                  const float* bias, float* out) {
    if (p.N == 0) return;
    const bool avx2 = use_avx2();
    const int64_t T = p.positions();
    const auto kernel = kernel_cache().get(p.m, p.stride, w, K, C, input_grad);
    const float* U = kernel->U.data();
    const int64_t u_stride = kernel->xi_stride;

    const auto input_transform_fn = avx2 ? winograd_input_transform_avx2 : winograd_input_transform_portable;
    const auto output_transform_fn = avx2 ? winograd_output_transform_avx2 : winograd_output_transform_portable;
    const int64_t tiles = p.tiles(), units = (tiles + kTileUnit - 1) / kTileUnit;
    GemmParams g;
    g.M = p.Cout;
    g.K = p.Cin;
    g.a_row = p.Cin;

    if (p.stride == 1 && region_threads() == 1 && p.Cin * p.Cout >= kWholeMinChannels &&
        T * (p.Cin + p.Cout) * round_up(tiles, kTileUnit) * int64_t(sizeof(float)) <= kWholeBytes) {
        // Many channels, few tiles: transform all tiles, then run the (m+2)^2 GEMMs each over
        // every tile, so each U[xi] is read and packed once instead of once per block, and the
        // GEMMs get the widest N.
        const int64_t ld = round_up(tiles, kTileUnit);
        const int64_t v_stride = p.Cin * ld + 16, m_stride = p.Cout * ld + 16;
        float* V = thread_scratch(0, size_t(T * v_stride));
        float* M = thread_scratch(1, size_t(T * m_stride));
        parallel_for(units, [&](long long u0, long long u1) {
            const int64_t tile0 = u0 * kTileUnit, end = std::min<int64_t>(u1 * kTileUnit, tiles);
            input_transform_fn(p, in, tile0, end - tile0, ld, v_stride, V + tile0);
        });
        g.N = tiles;
        g.b_row = ld;
        g.c_row = ld;
        parallel_for(T, [&](long long x0, long long x1) {
            for (long long xi = x0; xi < x1; ++xi)
                sgemm(g, U + xi * u_stride, V + xi * v_stride, M + xi * m_stride);  // stride 1: planes = positions
        });
        parallel_for(units, [&](long long u0, long long u1) {
            const int64_t tile0 = u0 * kTileUnit, end = std::min<int64_t>(u1 * kTileUnit, tiles);
            output_transform_fn(p, M + tile0, tile0, end - tile0, ld, m_stride, bias, out);
        });
        return;
    }

    const int64_t block = tiles_per_block(p, region_threads());
    // One extra cache line per position plane: with power-of-two plane sizes the (m+2)^2 accesses
    // of one tile would all fall into the same cache set.
    const int64_t v_stride = p.Cin * block + 16, m_stride = p.Cout * block + 16;
    g.b_row = block;
    g.c_row = block;
    // Tiles [tile0, tile0 + ntiles) through the three steps, V and M the calling thread's.
    auto run_block = [&](int64_t tile0, int64_t ntiles) {
        float* V = thread_scratch(0, size_t(T * v_stride));
        float* M = thread_scratch(1, size_t(T * m_stride));
        input_transform_fn(p, in, tile0, ntiles, block, v_stride, V);
        GemmParams gb = g;
        gb.N = ntiles;
        for (int64_t i = 0; i < T; ++i) {
            const int xi = p.stride == 2 ? kWinogradS2Order[i] : int(i);
            const int64_t plane = p.stride == 2 ? winograd_s2_kernel_plane(xi) : xi;
            sgemm(gb, U + plane * u_stride, V + xi * v_stride, M + xi * m_stride);
        }
        output_transform_fn(p, M, tile0, ntiles, block, m_stride, bias, out);
    };
    if (p.stride == 2) {
        // Blocks handed out with stealing: a thread slowed by a neighbour on its core no longer
        // holds up the call (benchmarks/results/2026-12-05_epyc2c_winograd_s2.md).
        parallel_for_stealing((tiles + block - 1) / block, [&](long long b0, long long b1) {
            for (long long b = b0; b < b1; ++b) run_block(b * block, std::min<int64_t>(block, tiles - b * block));
        });
        return;
    }
    parallel_for(units, [&](long long u0, long long u1) {
        const int64_t end = std::min<int64_t>(u1 * kTileUnit, tiles);
        for (int64_t tile0 = u0 * kTileUnit; tile0 < end; tile0 += block) run_block(tile0, std::min(block, end - tile0));
    });
}

WinogradPlan make_plan(int m, int64_t N, int64_t Cin, int64_t Hin, int64_t Win, int64_t Cout, int64_t Hout,
                       int64_t Wout, int64_t pad_h, int64_t pad_w, int stride = 1) {
    WinogradPlan p;
    p.m = m;
    p.stride = stride;
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

// Stride 2: F(2x2, 3x3) by tap parity (WinogradPlan).
void forward_stride2(const Conv2dParams& p, const float* x, const float* w, const float* bias, float* y) {
    check_supported(p, 2, 2);
    const WinogradPlan plan = make_plan(2, p.N, p.C, p.H, p.W, p.K, p.P(), p.Q(), p.pad_h, p.pad_w, 2);
    winograd_run(plan, w, p.K, p.C, false, x, bias, y);
}

// floor(a / 2)
int64_t half_down(int64_t a) { return a >= 0 ? a / 2 : -((1 - a) / 2); }

// Its input gradient: 4x4 blocks of dx from 3x3 patches of dy (Stride2Grad), the block at dx row
// 4 ti reading dy from row 2 ti + floor((pad_h - 1) / 2).
void backward_input_stride2(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
    check_supported(p, 2, 2);
    WinogradPlan plan = make_plan(4, p.N, p.K, p.P(), p.Q(), p.C, p.H, p.W, -half_down(p.pad_h - 1),
                                  -half_down(p.pad_w - 1), 2);
    plan.transposed = true, plan.odd_h = p.pad_h % 2 == 1, plan.odd_w = p.pad_w % 2 == 1;
    winograd_run(plan, w, p.K, p.C, true, dy, nullptr, dx);
}

// dx = full correlation of dy with the flipped kernel, channels transposed: padding 2 - pad.
void backward_input(int m, const Conv2dParams& p, const float* dy, const float* w, float* dx) {
    check_supported(p, m);
    const WinogradPlan plan = make_plan(m, p.N, p.K, p.P(), p.Q(), p.C, p.H, p.W, 2 - p.pad_h, 2 - p.pad_w);
    winograd_run(plan, w, p.K, p.C, true, dy, nullptr, dx);
}

// Weight gradient. dw = sum over images and output positions of dy x (shifted x). By the
// transposition principle each forward tile contributes G^T [(A dY A^T) .* (B^T X B)] G, with X the
// forward's input patch and dY the tile's output gradient (zero beyond P x Q). The sum over tiles
// stays in the transformed domain: for each position xi, M[xi] (K x C) += U[xi] (K x tiles) @
// V[xi]^T (tiles x C), a GEMM reducing over tiles; then one inverse transform per (k, c). Two
// schedules (measured 2026-12-04, 2 threads, benchmarks/results/2026-12-04_epyc2c_winograd_weight.md):
//  - shared: tiles in L3-sized chunks; per chunk the transforms run parallel over tiles, then the
//    GEMMs parallel over positions (each thread owns its M[xi]). Works at any tile count; best when
//    M is large (resnet_3x3, 256 channels on 14x14: 4.6 ms against 5.3 private).
//  - private: the tiles in fixed slices, each walked by one thread in blocks of 32 (transforms and
//    GEMMs while the block is in L2) into the slice's own M; the Ms are summed at the end. Needs a
//    small M and many tiles (vgg_3x3, 64 channels on 56x56: 4.3 ms against 5.25 shared; blocks of
//    16, 64, 128: 4.5, 4.4, 4.1-4.4 ms; measured with one M per thread).
struct WeightTransforms {
    decltype(&winograd_input_transform_portable) input;  // x -> V
    decltype(&winograd_grad_transform_portable) grad;    // dy -> U
};

// Shared schedule: U and V of one chunk, (m+2)^2 (K + C) floats a tile, at most kWeightChunkBytes
// (L3-resident while the GEMMs read them), in equal chunks of a multiple of kTileUnit tiles.
constexpr int64_t kWeightChunkBytes = int64_t(8) << 20;
// Private schedule: tiles per block, slices (6: even shares for 1, 2 and 3 threads), and the
// largest M (bytes) it takes.
constexpr int64_t kWeightBlockTiles = 32;
constexpr int64_t kWeightSlices = 6;
constexpr int64_t kWeightPrivateMaxBytes = int64_t(1) << 20;

// M[xi] (K x C) (+)= U[xi] (K x n) @ V[xi]^T (n x C), U and V with row stride ld.
GemmParams weight_gemm(int64_t K, int64_t C, int64_t ld) {
    GemmParams g;
    g.M = K;
    g.N = C;
    g.a_row = ld;
    g.b_row = 1;
    g.b_col = ld;
    g.c_row = C;
    return g;
}

void weight_grad_shared(const WinogradPlan& plan, const WeightTransforms& fn, const float* x, const float* dy,
                        float* M, int64_t m_stride) {
    const int64_t K = plan.Cout, C = plan.Cin, tiles = plan.tiles(), T = plan.alpha() * plan.alpha();
    const int64_t bytes_per_tile = T * (K + C) * int64_t(sizeof(float));
    const int64_t cap = std::max<int64_t>(kTileUnit, kWeightChunkBytes / bytes_per_tile / kTileUnit * kTileUnit);
    const int64_t chunks = (tiles + cap - 1) / cap;
    const int64_t ld = round_up((tiles + chunks - 1) / chunks, kTileUnit);
    // One extra cache line per position plane, as in winograd_run.
    const int64_t u_stride = K * ld + 16, v_stride = C * ld + 16;
    float* U = thread_scratch(0, size_t(checked_mul(T, u_stride, "winograd weight gradient")));
    float* V = thread_scratch(1, size_t(checked_mul(T, v_stride, "winograd weight gradient")));
    GemmParams g = weight_gemm(K, C, ld);
    for (int64_t tile0 = 0; tile0 < tiles; tile0 += ld) {
        const int64_t n = std::min(ld, tiles - tile0);
        parallel_for((n + kTileUnit - 1) / kTileUnit, [&](long long u0, long long u1) {
            const int64_t first = u0 * kTileUnit, count = std::min<int64_t>(u1 * kTileUnit, n) - first;
            fn.input(plan, x, tile0 + first, count, ld, v_stride, V + first);
            fn.grad(plan, dy, tile0 + first, count, ld, u_stride, U + first);
        });
        g.K = n;
        g.beta = tile0 == 0 ? 0.0f : 1.0f;
        parallel_for(T, [&](long long x0, long long x1) {
            for (long long xi = x0; xi < x1; ++xi) sgemm(g, U + xi * u_stride, V + xi * v_stride, M + xi * m_stride);
        });
    }
}

// Private schedule: kWeightSlices fixed slices of the tiles, each summed into its own M in `sums`
// (threads take whole slices), then the slices added in order into the first: the rounding does
// not depend on the thread count (the README's bitwise promise).
void weight_grad_private(const WinogradPlan& plan, const WeightTransforms& fn, const float* x, const float* dy,
                         float* sums, int64_t m_stride) {
    const int64_t K = plan.Cout, C = plan.Cin, tiles = plan.tiles(), T = plan.alpha() * plan.alpha();
    const int64_t block = kWeightBlockTiles, u_stride = K * block + 16, v_stride = C * block + 16;
    const int64_t units = (tiles + kTileUnit - 1) / kTileUnit, slice_size = T * m_stride;
    parallel_for(kWeightSlices, [&](long long s0, long long s1) {
        float* U = thread_scratch(0, size_t(T * u_stride));
        float* V = thread_scratch(1, size_t(T * v_stride));
        GemmParams g = weight_gemm(K, C, block);
        for (long long slice = s0; slice < s1; ++slice) {
            float* M = sums + slice * slice_size;
            const int64_t begin = units * slice / kWeightSlices * kTileUnit;
            const int64_t end = std::min<int64_t>(units * (slice + 1) / kWeightSlices * kTileUnit, tiles);
            for (int64_t tile0 = begin; tile0 < end; tile0 += block) {
                const int64_t n = std::min(block, end - tile0);
                fn.input(plan, x, tile0, n, block, v_stride, V);
                fn.grad(plan, dy, tile0, n, block, u_stride, U);
                g.K = n;
                g.beta = tile0 == begin ? 0.0f : 1.0f;
                for (int64_t xi = 0; xi < T; ++xi)
                    sgemm(g, U + xi * u_stride, V + xi * v_stride, M + xi * m_stride);
            }
        }
    });
    constexpr int64_t kChunk = 4096;
    parallel_for((slice_size + kChunk - 1) / kChunk, [&](long long b0, long long b1) {
        const int64_t e0 = b0 * kChunk, e1 = std::min<int64_t>(b1 * kChunk, slice_size);
        for (int64_t slice = 1; slice < kWeightSlices; ++slice) {
            const float* M = sums + slice * slice_size;
            for (int64_t e = e0; e < e1; ++e) sums[e] += M[e];
        }
    });
}

void backward_weight(int m, const Conv2dParams& p, const float* x, const float* dy, float* dw) {
    check_supported(p, m);
    const WinogradPlan plan = make_plan(m, p.N, p.C, p.H, p.W, p.K, p.P(), p.Q(), p.pad_h, p.pad_w);
    const int64_t K = p.K, C = p.C, tiles = plan.tiles(), T = plan.alpha() * plan.alpha();
    if (tiles == 0) {
        std::fill(dw, dw + K * C * 9, 0.0f);
        return;
    }
    const bool avx2 = use_avx2();
    const WeightTransforms fn = {avx2 ? winograd_input_transform_avx2 : winograd_input_transform_portable,
                                 avx2 ? winograd_grad_transform_avx2 : winograd_grad_transform_portable};
    const int64_t m_stride = K * C + 16;
    // The choice depends on the problem only, never on the thread count.
    const bool private_sums = T * K * C * int64_t(sizeof(float)) <= kWeightPrivateMaxBytes &&
                              tiles >= 2 * kWeightBlockTiles * kWeightSlices;
    float* M = thread_scratch(2, size_t(checked_mul(private_sums ? kWeightSlices * T : T, m_stride,
                                                    "winograd weight gradient")));
    if (private_sums)
        weight_grad_private(plan, fn, x, dy, M, m_stride);
    else
        weight_grad_shared(plan, fn, x, dy, M, m_stride);
    const auto weight_transform_fn = avx2 ? winograd_weight_transform_avx2 : winograd_weight_transform_portable;
    parallel_for(K, [&](long long k0, long long k1) { weight_transform_fn(m, M, C, m_stride, k0, k1, dw); });
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
void conv2d_winograd_s2_forward(const Conv2dParams& p, const float* x, const float* w, const float* bias,
                                float* y) {
    forward_stride2(p, x, w, bias, y);
}
void conv2d_winograd_s2_backward_input(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
    backward_input_stride2(p, dy, w, dx);
}
void conv2d_winograd_f2_backward_input(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
    backward_input(2, p, dy, w, dx);
}
void conv2d_winograd_f4_backward_input(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
    backward_input(4, p, dy, w, dx);
}
void conv2d_winograd_f2_backward_weight(const Conv2dParams& p, const float* x, const float* dy, float* dw) {
    backward_weight(2, p, x, dy, dw);
}
void conv2d_winograd_f4_backward_weight(const Conv2dParams& p, const float* x, const float* dy, float* dw) {
    backward_weight(4, p, x, dy, dw);
}

}  // namespace fastconv
