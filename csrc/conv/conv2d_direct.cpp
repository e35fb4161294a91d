// Direct convolution: the six-deep loop with the output tile in registers, vectorised over output
// columns, for every pass. Each pass packs one image at a time into a zero-padded buffer in which
// every kernel tap is a fixed offset and consecutive output columns read consecutive floats:
//  - forward: the padded input, each row split into `stride_w` phases (column u goes to phase
//    u % sw at index u / sw), so output column q of tap s reads index q + s*dw/sw of phase s*dw%sw;
//  - input gradient: split by stride phase (a, b) of the input position (h = a + sh*i,
//    w = b + sw*j). Only the taps with (a + ph - r*dh) % sh == 0 reach a phase, and each is a plain
//    stride-1 correlation of the zero-bordered grad_output, so strided layers do no scatter and
//    no wasted multiply (the classic strided backward-data pathology);
//  - weight gradient: the forward packing again, reduced against the packed grad_output.
// The tiles themselves are in conv2d_direct_tiles.h (AVX2 in conv2d_direct_avx2.cpp).
// Parallel over images x groups (x output-channel chunks when the batch is too small); the weight
// gradient keeps 8-wide partial sums per thread and adds them up at the end.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "common/workspace.h"
#include "conv/conv2d.h"
#include "conv/conv2d_direct_tiles.h"

namespace fastconv {

namespace direct {

void corr_tile_portable(const CorrTileArgs& a, int KB, int IB, int QV) {
    const int cw = 8 * QV;
    float acc[kMaxAcc * 8];
    for (int k = 0; k < KB; ++k) {
        const float v = (a.init && k < a.kvalid) ? a.init[k] : 0.0f;
        for (int j = 0; j < IB * cw; ++j) acc[k * IB * cw + j] = v;
    }
    const float* w = a.w;
    for (int64_t c = 0; c < a.cin; ++c)
        for (int64_t t = 0; t < a.ntaps; ++t, w += KB)
            for (int i = 0; i < IB; ++i) {
                const float* x = a.in + std::min(i, a.rows - 1) * a.in_rstride + c * a.in_cstride + a.taps[t];
                for (int k = 0; k < KB; ++k) {
                    float* acc_row = acc + (k * IB + i) * cw;
                    const float wk = w[k];
                    for (int j = 0; j < cw; ++j) acc_row[j] += wk * x[j];
                }
            }
    for (int k = 0; k < a.kvalid; ++k)
        for (int i = 0; i < a.rows; ++i) {
            float* o = a.out + k * a.out_kstride + i * a.out_rstride;
            for (int j = 0; j < a.cols; ++j) o[j * a.out_cstride] = acc[(k * IB + i) * cw + j];
        }
}

void reduce_tile_portable(const ReduceTileArgs& a, int KB, int TB) {
    for (int k = 0; k < a.kvalid; ++k) {
        const float* dy = a.dy + k * a.dy_kstride;
        for (int t = 0; t < a.tvalid; ++t) {
            float sum[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int64_t r = 0; r < a.rows; ++r) {
                const float* x = a.in + r * a.in_rstride + a.taps[t];
                const float* d = dy + r * a.dy_rstride;
                for (int64_t j = 0; j < 8 * a.vecs; ++j) sum[j % 8] += d[j] * x[j];
            }
            float* acc = a.acc + k * a.acc_kstride + 8 * t;
            for (int l = 0; l < 8; ++l) acc[l] += sum[l];
        }
    }
}

void kvec_tile_portable(const KvecTileArgs& a, int KV, int PB) {
    const int kb = 8 * KV;
    float acc[kMaxAcc * 8];
    for (int p = 0; p < PB; ++p)
        for (int k = 0; k < kb; ++k) acc[p * kb + k] = (a.init && k < a.kvalid) ? a.init[k] : 0.0f;
    const float* w = a.w;
    for (int64_t c = 0; c < a.cin; ++c)
        for (int64_t t = 0; t < a.ntaps; ++t, w += kb)
            for (int p = 0; p < PB; ++p) {
                const float x = a.in[a.pos_in[p] + c * a.in_cstride + a.taps[t]];
                for (int k = 0; k < kb; ++k) acc[p * kb + k] += w[k] * x;
            }
    for (int p = 0; p < a.npos; ++p)
        for (int k = 0; k < a.kvalid; ++k) a.out[k * a.out_kstride + a.pos_out[p]] = acc[p * kb + k];
}

void kvec_reduce_portable(const KvecReduceArgs& a, int KV, int TB) {
    for (int t = 0; t < a.tvalid; ++t) {
        float* o = a.acc + t * a.acc_tstride;
        for (int64_t pos = 0; pos < a.npos; ++pos) {
            const float x = a.in[a.pos_in[pos] + a.taps[t]];
            const float* d = a.dyT + pos * a.ldk;
            for (int k = 0; k < 8 * KV; ++k) o[k] += d[k] * x;
        }
    }
}

}  // namespace direct

namespace {

using direct::CorrTileArgs;
using direct::kMaxAcc;
using direct::ReduceTileArgs;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Register tile of the correlation, one of two kinds:
//  - width tiles: KB output channels x IB rows x QV vectors of 8 columns (CorrTileArgs);
//  - channel-vector tiles (kvec): 8 * KV output channels x PB positions (KvecTileArgs), for
//    outputs whose rows are too short to fill 8-wide vectors (LeNet conv2: 10 columns).
struct CorrShape {
    bool kvec = false;
    int KB = 1, IB = 1, QV = 1;  // KB = 8 * KV for kvec tiles
    int KV = 1, PB = 1;
    direct::CorrTileFn avx2 = nullptr;
    direct::KvecTileFn kvec_avx2 = nullptr;
    void run(const CorrTileArgs& a) const {
        if (avx2)
            avx2(a);
        else
            direct::corr_tile_portable(a, KB, IB, QV);
    }
    void run(const direct::KvecTileArgs& a) const {
        if (kvec_avx2)
            kvec_avx2(a);
        else
            direct::kvec_tile_portable(a, KV, PB);
    }
};

// Picks the tile that minimises the estimated cycles over the whole output: per (channel, tap)
// step a tile needs max(FMAs / 2, loads / 2, 4) cycles (two FMA pipes, two vector loads, and the
// 4-cycle FMA latency each accumulator waits for), plus one cycle per vector stored (8 for a
// kvec tile, stored lane by lane). Padded lanes, channels and rows count as work.
// Tiles must fit the 16 ymm registers: accumulators + the IB * QV input vectors + one broadcast
// (KB = 1 reads its inputs as FMA memory operands instead). A spilled accumulator costs 2-3x: its
// store-to-load round trip becomes the loop's critical path.
CorrShape choose_corr_shape(int64_t kout, int64_t rows, int64_t cols, int64_t steps) {
    static const int kbs[] = {1, 2, 3, 4, 6, 12};
    CorrShape best;
    double best_cost = 1e300;
    auto consider = [&](const CorrShape& s, double tiles, int acc, int loads, double store) {
        const double step = std::max({acc / 2.0, loads / 2.0, 4.0});
        const double cost = tiles * (double(steps) * step + store);
        if (cost < best_cost) best_cost = cost, best = s;
    };
    for (int qv = 1; qv <= 4; ++qv) {
        const int budget = kMaxAcc / qv;
        const double col_blocks = double(ceil_div(cols, 8 * qv));
        for (int kb : kbs) {
            if (kb > budget) break;
            for (int ib : {1, budget / kb}) {
                const int acc = kb * ib * qv;
                if (kb > 1 && acc + ib * qv + 1 > 16) continue;
                CorrShape s;
                s.KB = kb, s.IB = ib, s.QV = qv;
                consider(s, double(ceil_div(kout, kb)) * double(ceil_div(rows, ib)) * col_blocks, acc, kb + ib * qv, acc);
            }
        }
    }
    for (auto [kv, pb] : {std::pair{1, 12}, std::pair{2, 6}, std::pair{3, 4}}) {
        CorrShape s;
        s.kvec = true, s.KV = kv, s.PB = pb, s.KB = 8 * kv;
        consider(s, double(ceil_div(kout, 8 * kv)) * double(ceil_div(rows * cols, pb)), kv * pb, kv + pb, 8.0 * kv * pb);
    }
    if (use_avx2()) {
        best.avx2 = best.kvec ? nullptr : direct::corr_tile_avx2(best.KB, best.IB, best.QV);
        best.kvec_avx2 = best.kvec ? direct::kvec_tile_avx2(best.KV, best.PB) : nullptr;
    }
    return best;
}

// Reduction tile of the weight gradient, one of two kinds (same cost model as the correlation):
//  - width tiles: KB channels x TB taps, 8-wide over output columns (ReduceTileArgs);
//  - channel-vector tiles (kvec): 8 * KV channels x TB taps, over output positions (KvecReduceArgs).
struct ReduceShape {
    bool kvec = false;
    int KB = 1, TB = 12, KV = 1;
    direct::ReduceTileFn avx2 = nullptr;
    direct::KvecReduceFn kvec_avx2 = nullptr;
    void run(const ReduceTileArgs& a) const {
        if (avx2)
            avx2(a);
        else
            direct::reduce_tile_portable(a, KB, TB);
    }
    void run(const direct::KvecReduceArgs& a) const {
        if (kvec_avx2)
            kvec_avx2(a);
        else
            direct::kvec_reduce_portable(a, KV, TB);
    }
};

// Width tiles: KB = 3, 2, 1 (all registers: KB gradient vectors + 12 accumulators + 1 input),
// tiling taps per input channel; channel-vector tiles tile the flattened (channel, tap) rows.
ReduceShape choose_reduce_shape(int64_t kout, int64_t channels, int64_t rows, int64_t cols, int64_t taps) {
    ReduceShape best;
    double best_cost = 1e300;
    auto consider = [&](const ReduceShape& s, double tiles, double steps, int acc, int loads) {
        const double cost = tiles * steps * std::max({acc / 2.0, loads / 2.0, 4.0});
        if (cost < best_cost) best_cost = cost, best = s;
    };
    for (auto [kb, tb] : {std::pair{3, 4}, std::pair{2, 6}, std::pair{1, 12}}) {
        ReduceShape s;
        s.KB = kb, s.TB = tb;
        consider(s, double(ceil_div(kout, kb) * channels * ceil_div(taps, tb)), double(rows * ceil_div(cols, 8)),
                 kb * tb, kb + tb);
    }
    for (auto [kv, tb] : {std::pair{1, 12}, std::pair{2, 6}, std::pair{3, 4}}) {
        ReduceShape s;
        s.kvec = true, s.KV = kv, s.TB = tb;
        consider(s, double(ceil_div(kout, 8 * kv) * ceil_div(channels * taps, tb)), double(rows * cols), kv * tb,
                 kv + tb);
    }
    if (use_avx2()) {
        best.avx2 = best.kvec ? nullptr : direct::reduce_tile_avx2(best.KB, best.TB);
        best.kvec_avx2 = best.kvec ? direct::kvec_reduce_avx2(best.KV, best.TB) : nullptr;
    }
    return best;
}

// Zero-padded, column-phase-split copy of one image's channels [c0, c0 + channels) (see the file
// comment). Row v of the packed plane is input row v - pad_h; phase f holds columns f, f + sw, ...
struct ForwardPacking {
    int64_t rows, phase_width, ld, plane;

    ForwardPacking(const Conv2dParams& p, int64_t padded_cols) {
        rows = p.H + 2 * p.pad_h;
        phase_width = padded_cols + (p.S - 1) * p.dil_w / p.stride_w + 1;
        ld = p.stride_w * phase_width;
        plane = rows * ld;
    }

    std::vector<int64_t> taps(const Conv2dParams& p) const {
        std::vector<int64_t> t;
        for (int64_t r = 0; r < p.R; ++r)
            for (int64_t s = 0; s < p.S; ++s) {
                const int64_t u = s * p.dil_w;
                t.push_back(r * p.dil_h * ld + (u % p.stride_w) * phase_width + u / p.stride_w);
            }
        return t;
    }

    // As pack, into a buffer whose padding is already zero (zeroed once per call, never written
    // since): only the image rows are copied. Small images have short rows, and per-row memset and
    // memcpy calls cost more than the copies themselves (weight gradient, 80 -> 16 channels, 8x8,
    // batch 256, 1 thread: 8.3 ms with pack, 4.2 ms with this).
    void pack_into_zeroed(const Conv2dParams& p, const float* x, int64_t channels, float* dst) const {
        if (p.stride_w != 1) return pack(p, x, channels, dst);
        const int64_t n = std::min(p.W, ld - p.pad_w);
        for (int64_t c = 0; c < channels; ++c)
            for (int64_t h = 0; h < p.H; ++h) {
                const float* src = x + (c * p.H + h) * p.W;
                float* d = dst + c * plane + (h + p.pad_h) * ld + p.pad_w;
                for (int64_t i = 0; i < n; ++i) d[i] = src[i];
            }
    }

    void pack(const Conv2dParams& p, const float* x, int64_t channels, float* dst) const {
        const int64_t sw = p.stride_w;
        for (int64_t c = 0; c < channels; ++c) {
            const float* src = x + c * p.H * p.W;
            for (int64_t v = 0; v < rows; ++v) {
                float* d = dst + c * plane + v * ld;
                const int64_t h = v - p.pad_h;
                if (h < 0 || h >= p.H) {
                    std::memset(d, 0, sizeof(float) * ld);
                    continue;
                }
                const float* srow = src + h * p.W;
                for (int64_t f = 0; f < sw; ++f) {  // phase f: dp[i] = srow[i*sw + f - pw] inside the row
                    float* dp = d + f * phase_width;
                    const int64_t lo = std::min(phase_width, f >= p.pad_w ? 0 : ceil_div(p.pad_w - f, sw));
                    const int64_t hi = std::max(lo, std::min(phase_width, ceil_div(p.W + p.pad_w - f, sw)));
                    std::fill(dp, dp + lo, 0.0f);
                    const float* sp = srow + lo * sw + f - p.pad_w;
                    for (int64_t i = lo; i < hi; ++i, sp += sw) dp[i] = *sp;
                    std::fill(dp + hi, dp + phase_width, 0.0f);
                }
            }
        }
    }
};

// Runs body(thread, begin, end) over [0, n) split statically across the region's threads.
template <class F>
void parallel_ranges(int64_t n, int threads, F&& body) {
    ExceptionCatcher catcher;
#pragma omp parallel num_threads(threads)
    {
        ScopedDenormalsOff ftz;
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        catcher.run([&] { body(t, n * t / nt, n * (t + 1) / nt); });
    }
    catcher.rethrow();
}

}  // namespace

void conv2d_direct_forward(const Conv2dParams& p, const float* x, const float* w, const float* bias, float* y) {
    const int64_t P = p.P(), Q = p.Q(), G = p.groups, Cg = p.C_per_group(), Kg = p.K_per_group(), RS = p.R * p.S;
    if (p.N == 0) return;
    const CorrShape shape = choose_corr_shape(Kg, P, Q, Cg * RS);
    const int64_t KB = shape.KB, cw = 8 * shape.QV, col_blocks = ceil_div(Q, cw), kblocks = ceil_div(Kg, KB);
    const ForwardPacking pk(p, col_blocks * cw);
    const std::vector<int64_t> taps = pk.taps(p);
    // kvec tiles: output position p*Q + q reads packed offset p*sh*ld + q; padded by repeating.
    std::vector<int64_t> pos_in, pos_out;
    if (shape.kvec) {
        for (int64_t i = 0; i < P * Q + shape.PB; ++i) {
            const int64_t pos = std::min(i, P * Q - 1);
            pos_in.push_back((pos / Q) * p.stride_h * pk.ld + pos % Q);
            pos_out.push_back(pos);
        }
    }

    // Weights as [g][kblock][c][tap][KB], zero beyond Kg, packed once and shared read-only.
    const int64_t wblock = Cg * RS * KB;
    float* wp = thread_scratch(1, size_t(G * kblocks * wblock));
    for (int64_t g = 0; g < G; ++g)
        for (int64_t kb = 0; kb < kblocks; ++kb)
            for (int64_t c = 0; c < Cg; ++c)
                for (int64_t t = 0; t < RS; ++t)
                    for (int64_t k = 0; k < KB; ++k) {
                        const int64_t kk = kb * KB + k;
                        wp[(g * kblocks + kb) * wblock + (c * RS + t) * KB + k] =
                            kk < Kg ? w[((g * Kg + kk) * Cg + c) * RS + t] : 0.0f;
                    }

    // Work items: image x group x chunk of k-blocks (chunks only when images alone cannot feed
    // every thread; each chunk repacks its image).
    const int threads = region_threads();
    const int64_t chunks = std::min(kblocks, ceil_div(4 * threads, p.N * G));
    parallel_for(p.N * G * chunks, [&](int64_t begin, int64_t end) {
        float* xp = thread_scratch(0, size_t(Cg * pk.plane));
        std::fill(xp, xp + Cg * pk.plane, 0.0f);
        int64_t packed = -1;
        for (int64_t item = begin; item < end; ++item) {
            const int64_t ng = item / chunks, chunk = item % chunks, n = ng / G, g = ng % G;
            if (packed != ng) pk.pack_into_zeroed(p, x + (n * p.C + g * Cg) * p.H * p.W, Cg, xp), packed = ng;
            CorrTileArgs a{};
            a.in_cstride = pk.plane;
            a.in_rstride = p.stride_h * pk.ld;
            a.taps = taps.data();
            a.ntaps = RS;
            a.cin = Cg;
            a.out_kstride = P * Q;
            a.out_rstride = Q;
            a.out_cstride = 1;
            for (int64_t kb = kblocks * chunk / chunks; kb < kblocks * (chunk + 1) / chunks; ++kb) {
                const int64_t k0 = g * Kg + kb * KB;
                a.w = wp + (g * kblocks + kb) * wblock;
                a.init = bias ? bias + k0 : nullptr;
                a.kvalid = int(std::min(KB, Kg - kb * KB));
                if (shape.kvec) {
                    direct::KvecTileArgs ka{xp, pk.plane, taps.data(), RS, Cg, nullptr, nullptr, 0, a.w, a.init,
                                            y + (n * p.K + k0) * P * Q, P * Q, a.kvalid};
                    for (int64_t pos = 0; pos < P * Q; pos += shape.PB) {
                        ka.pos_in = pos_in.data() + pos;
                        ka.pos_out = pos_out.data() + pos;
                        ka.npos = int(std::min<int64_t>(shape.PB, P * Q - pos));
                        shape.run(ka);
                    }
                    continue;
                }
                for (int64_t i0 = 0; i0 < P; i0 += shape.IB) {
                    a.rows = int(std::min<int64_t>(shape.IB, P - i0));
                    for (int64_t cb = 0; cb < col_blocks; ++cb) {
                        a.in = xp + i0 * p.stride_h * pk.ld + cb * cw;
                        a.out = y + ((n * p.K + k0) * P + i0) * Q + cb * cw;
                        a.cols = int(std::min(cw, Q - cb * cw));
                        shape.run(a);
                    }
                }
            }
        }
    });
}

void conv2d_direct_backward_input(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
    const int64_t P = p.P(), Q = p.Q(), G = p.groups, Cg = p.C_per_group(), Kg = p.K_per_group();
    const int64_t sh = p.stride_h, sw = p.stride_w;
    if (p.N == 0) return;

    // Stride phases: for input row phase a, the taps r with (a + ph - r*dh) % sh == 0, reading
    // grad_output row i + (a + ph - r*dh) / sh for input row a + sh*i. Likewise for columns.
    struct AxisTaps {
        std::vector<std::vector<int64_t>> index, offset;  // per phase
        int64_t border = 0, max_offset = 0;
    };
    auto axis_taps = [](int64_t stride, int64_t pad, int64_t dil, int64_t taps) {
        AxisTaps at;
        at.index.resize(stride);
        at.offset.resize(stride);
        for (int64_t a = 0; a < stride; ++a)
            for (int64_t r = 0; r < taps; ++r) {
                const int64_t m = a + pad - r * dil;
                if (((m % stride) + stride) % stride != 0) continue;
                at.index[a].push_back(r);
                at.offset[a].push_back(m / stride);
                at.border = std::max(at.border, -m / stride);
                at.max_offset = std::max(at.max_offset, m / stride);
            }
        return at;
    };
    const AxisTaps rt = axis_taps(sh, p.pad_h, p.dil_h, p.R), ct = axis_taps(sw, p.pad_w, p.dil_w, p.S);
    const int64_t rows_max = ceil_div(p.H, sh), cols_max = ceil_div(p.W, sw);

    const CorrShape shape = choose_corr_shape(Cg, rows_max, cols_max, Kg * ceil_div(p.R, sh) * ceil_div(p.S, sw));
    const int64_t KB = shape.KB, cw = 8 * shape.QV, col_blocks = ceil_div(cols_max, cw), cblocks = ceil_div(Cg, KB);
    // Packed grad_output: row u is grad_output row u - BT, column z is column z - BL, zero outside.
    const int64_t BT = rt.border, BL = ct.border;
    const int64_t prow = std::max<int64_t>(BT + rows_max + rt.max_offset, 1);
    const int64_t ld = BL + col_blocks * cw + std::max<int64_t>(ct.max_offset, 0);
    const int64_t plane = prow * ld;

    // Per phase: tap offsets, and weights [g][phase][cblock][k][tap][KB] (w[k][c][r][s] with the
    // roles of k and c swapped: grad_output channels are summed, input channels are produced).
    const int64_t phases = sh * sw;
    std::vector<std::vector<int64_t>> taps(phases);
    std::vector<int64_t> wofs(phases + 1, 0);
    for (int64_t a = 0; a < sh; ++a)
        for (int64_t b = 0; b < sw; ++b) {
            auto& t = taps[a * sw + b];
            for (int64_t ro : rt.offset[a])
                for (int64_t co : ct.offset[b]) t.push_back((ro + BT) * ld + co + BL);
            wofs[a * sw + b + 1] = wofs[a * sw + b] + cblocks * Kg * int64_t(t.size()) * KB;
        }
    // kvec tiles: per phase, input position (a + sh*i, b + sw*j) reads packed offset i*ld + j.
    std::vector<std::vector<int64_t>> pos_in(phases), pos_out(phases);
    if (shape.kvec)
        for (int64_t a = 0; a < std::min(sh, p.H); ++a)
            for (int64_t b = 0; b < std::min(sw, p.W); ++b) {
                const int64_t rows = ceil_div(p.H - a, sh), cols = ceil_div(p.W - b, sw);
                for (int64_t e = 0; e < rows * cols + shape.PB; ++e) {
                    const int64_t pos = std::min(e, rows * cols - 1), i = pos / cols, j = pos % cols;
                    pos_in[a * sw + b].push_back(i * ld + j);
                    pos_out[a * sw + b].push_back((a + sh * i) * p.W + b + sw * j);
                }
            }
    const int64_t wgroup = wofs[phases];
    float* wp = thread_scratch(1, size_t(std::max<int64_t>(G * wgroup, 1)));
    for (int64_t g = 0; g < G; ++g)
        for (int64_t a = 0; a < sh; ++a)
            for (int64_t b = 0; b < sw; ++b) {
                const auto& ri = rt.index[a];
                const auto& si = ct.index[b];
                const int64_t T = int64_t(ri.size() * si.size());
                float* dst = wp + g * wgroup + wofs[a * sw + b];
                for (int64_t cb = 0; cb < cblocks; ++cb)
                    for (int64_t k = 0; k < Kg; ++k)
                        for (int64_t t = 0; t < T; ++t)
                            for (int64_t c = 0; c < KB; ++c) {
                                const int64_t cc = cb * KB + c, r = ri[t / si.size()], s = si[t % si.size()];
                                *dst++ = cc < Cg ? w[(((g * Kg + k) * Cg + cc) * p.R + r) * p.S + s] : 0.0f;
                            }
            }

    const int threads = region_threads();
    const int64_t chunks = std::min(cblocks, ceil_div(4 * threads, p.N * G));
    parallel_for(p.N * G * chunks, [&](int64_t begin, int64_t end) {
        float* dyp = thread_scratch(0, size_t(Kg * plane));
        std::fill(dyp, dyp + Kg * plane, 0.0f);  // the borders stay zero; rows are copied per image
        int64_t packed = -1;
        const int64_t row = std::min(Q, ld - BL);
        for (int64_t item = begin; item < end; ++item) {
            const int64_t ng = item / chunks, chunk = item % chunks, n = ng / G, g = ng % G;
            if (packed != ng) {
                const float* src = dy + (n * p.K + g * Kg) * P * Q;
                for (int64_t k = 0; k < Kg; ++k)
                    for (int64_t i = 0; i < P && BT + i < prow; ++i) {
                        float* d = dyp + k * plane + (BT + i) * ld + BL;
                        const float* s = src + (k * P + i) * Q;
                        for (int64_t j = 0; j < row; ++j) d[j] = s[j];
                    }
                packed = ng;
            }
            CorrTileArgs a{};
            a.in_cstride = plane;
            a.in_rstride = ld;
            a.cin = Kg;
            a.init = nullptr;
            a.out_kstride = p.H * p.W;
            a.out_rstride = sh * p.W;
            a.out_cstride = sw;
            for (int64_t ph_a = 0; ph_a < sh && ph_a < p.H; ++ph_a) {
                const int64_t rows = ceil_div(p.H - ph_a, sh);
                for (int64_t ph_b = 0; ph_b < sw && ph_b < p.W; ++ph_b) {
                    const int64_t cols = ceil_div(p.W - ph_b, sw), phase = ph_a * sw + ph_b;
                    a.taps = taps[phase].data();
                    a.ntaps = int64_t(taps[phase].size());
                    for (int64_t cb = cblocks * chunk / chunks; cb < cblocks * (chunk + 1) / chunks; ++cb) {
                        const int64_t c0 = g * Cg + cb * KB;
                        a.w = wp + g * wgroup + wofs[phase] + cb * Kg * a.ntaps * KB;
                        a.kvalid = int(std::min(KB, Cg - cb * KB));
                        if (shape.kvec) {
                            direct::KvecTileArgs ka{dyp, plane, a.taps, a.ntaps, Kg, nullptr, nullptr, 0, a.w, nullptr,
                                                    dx + (n * p.C + c0) * p.H * p.W, p.H * p.W, a.kvalid};
                            for (int64_t pos = 0; pos < rows * cols; pos += shape.PB) {
                                ka.pos_in = pos_in[phase].data() + pos;
                                ka.pos_out = pos_out[phase].data() + pos;
                                ka.npos = int(std::min<int64_t>(shape.PB, rows * cols - pos));
                                shape.run(ka);
                            }
                            continue;
                        }
                        for (int64_t i0 = 0; i0 < rows; i0 += shape.IB) {
                            a.rows = int(std::min<int64_t>(shape.IB, rows - i0));
                            for (int64_t jb = 0; jb < ceil_div(cols, cw); ++jb) {
                                a.in = dyp + i0 * ld + jb * cw;
                                a.out = dx + ((n * p.C + c0) * p.H + ph_a + i0 * sh) * p.W + ph_b + jb * cw * sw;
                                a.cols = int(std::min(cw, cols - jb * cw));
                                shape.run(a);
                            }
                        }
                    }
                }
            }
        }
    });
}

namespace {

// Weight gradient with channel-vector tiles: grad_output transposed to [position][channel] so 8
// channels load as one vector. A tile is 8 * KV output channels x TB rows of the flattened
// (input channel, tap) list, so 9 taps of a 3x3 kernel do not leave 3 of 12 rows idle; a visit
// reduces over the positions of a chunk of images (>= ~256 positions where they fit in L2), so
// the accumulators of small images are not loaded and stored once per 4 or 16 positions.
// Per-thread partials acc[g][c][tap][channel] are added at the end.
void direct_weight_grad_kvec(const Conv2dParams& p, ReduceShape shape, const float* x, const float* dy, float* dw) {
    if (!shape.kvec) {
        shape = ReduceShape{};
        shape.kvec = true, shape.KV = 2, shape.TB = 6;
        if (use_avx2()) shape.kvec_avx2 = direct::kvec_reduce_avx2(shape.KV, shape.TB);
    }
    const int64_t P = p.P(), Q = p.Q(), G = p.groups, Cg = p.C_per_group(), Kg = p.K_per_group(), RS = p.R * p.S;
    const int64_t KB = 8 * shape.KV, TB = shape.TB, ldk = ceil_div(Kg, KB) * KB, PQ = P * Q;
    const ForwardPacking pk(p, Q);
    const std::vector<int64_t> taps = pk.taps(p);
    const int64_t rows = Cg * RS, image_floats = Cg * pk.plane + PQ * ldk;
    std::vector<int64_t> row_offset(ceil_div(rows, TB) * TB);
    for (int64_t r = 0; r < rows; ++r) row_offset[r] = (r / RS) * pk.plane + taps[r % RS];
    std::fill(row_offset.begin() + rows, row_offset.end(), row_offset[rows - 1]);  // valid padding rows
    const int threads = int(std::min<int64_t>(region_threads(), p.N));
    constexpr int64_t kChunkPositions = 256, kChunkFloats = 64 * 1024;  // 256 KiB of packed data
    const int64_t chunk = std::clamp<int64_t>(std::min(ceil_div(kChunkPositions, PQ), kChunkFloats / image_floats), 1,
                                              ceil_div(p.N, threads));
    std::vector<int64_t> pos_in(chunk * PQ);
    for (int64_t pos = 0; pos < chunk * PQ; ++pos) {
        const int64_t image = pos / PQ, pq = pos % PQ;
        pos_in[pos] = image * Cg * pk.plane + (pq / Q) * p.stride_h * pk.ld + pq % Q;
    }
    const int64_t accn = G * rows * ldk;
    std::vector<float*> partial(threads, nullptr);
    parallel_ranges(p.N, threads, [&](int t, int64_t begin, int64_t end) {
        float* acc = thread_scratch(2, size_t(accn));
        partial[t] = acc;
        std::fill(acc, acc + accn, 0.0f);
        float* xp = thread_scratch(0, size_t(chunk * Cg * pk.plane));
        std::fill(xp, xp + chunk * Cg * pk.plane, 0.0f);
        float* dyT = thread_scratch(3, size_t(chunk * PQ * ldk));
        direct::KvecReduceArgs a{};
        a.ldk = ldk;
        a.pos_in = pos_in.data();
        a.acc_tstride = ldk;
        a.in = xp;
        for (int64_t n0 = begin; n0 < end; n0 += chunk) {
            const int64_t images = std::min(chunk, end - n0);
            a.npos = images * PQ;
            for (int64_t g = 0; g < G; ++g) {
                for (int64_t i = 0; i < images; ++i) {
                    pk.pack_into_zeroed(p, x + ((n0 + i) * p.C + g * Cg) * p.H * p.W, Cg, xp + i * Cg * pk.plane);
                    const float* src = dy + ((n0 + i) * p.K + g * Kg) * PQ;
                    for (int64_t pos = 0; pos < PQ; ++pos) {
                        float* d = dyT + (i * PQ + pos) * ldk;
                        for (int64_t k = 0; k < Kg; ++k) d[k] = src[k * PQ + pos];
                        std::fill(d + Kg, d + ldk, 0.0f);
                    }
                }
                for (int64_t k0 = 0; k0 < Kg; k0 += KB) {
                    a.dyT = dyT + k0;
                    for (int64_t r0 = 0; r0 < rows; r0 += TB) {
                        a.taps = row_offset.data() + r0;
                        a.tvalid = int(std::min(TB, rows - r0));
                        a.acc = acc + (g * rows + r0) * ldk + k0;
                        shape.run(a);
                    }
                }
            }
        }
    });
    parallel_for(G * Kg, [&](int64_t begin, int64_t end) {
        for (int64_t gk = begin; gk < end; ++gk) {
            const int64_t g = gk / Kg, k = gk % Kg;
            for (int64_t ct = 0; ct < rows; ++ct) {
                float s = 0.0f;
                for (const float* acc : partial) s += acc[(g * rows + ct) * ldk + k];
                dw[gk * rows + ct] = s;
            }
        }
    });
}

}  // namespace

void conv2d_direct_backward_weight(const Conv2dParams& p, const float* x, const float* dy, float* dw) {
    const int64_t P = p.P(), Q = p.Q(), G = p.groups, Cg = p.C_per_group(), Kg = p.K_per_group(), RS = p.R * p.S;
    const int64_t wn = p.weight_numel();
    if (p.N == 0) {
        std::fill(dw, dw + wn, 0.0f);
        return;
    }
    const ReduceShape shape = choose_reduce_shape(Kg, Cg, P, Q, RS);
    // Width tiles keep 8 partial sums per weight and thread; past the workspace limit use the
    // channel-vector tiles, whose partials are one float per weight.
    const bool too_big = wn * 8 * int64_t(sizeof(float)) > get_workspace_limit();
    if (shape.kvec || too_big) {
        direct_weight_grad_kvec(p, shape, x, dy, dw);
        return;
    }
    const int64_t KB = shape.KB, TB = shape.TB, vecs = ceil_div(Q, 8), ldq = 8 * vecs;
    const ForwardPacking pk(p, ldq);
    std::vector<int64_t> taps = pk.taps(p);
    taps.resize(ceil_div(RS, TB) * TB, taps.back());  // pad the last tap block with a valid offset

    // Each thread sums its images into 8-wide partials acc[g*Kg + k][c][tap][8]; then one pass adds
    // the threads' partials and the lanes.
    const int threads = int(std::min<int64_t>(region_threads(), p.N));
    std::vector<float*> partial(threads, nullptr);
    parallel_ranges(p.N, threads, [&](int t, int64_t begin, int64_t end) {
        float* acc = thread_scratch(2, size_t(wn * 8));
        partial[t] = acc;
        std::fill(acc, acc + wn * 8, 0.0f);
        float* xp = thread_scratch(0, size_t(Cg * pk.plane));
        std::fill(xp, xp + Cg * pk.plane, 0.0f);
        float* dyp = thread_scratch(3, size_t(Kg * P * ldq));
        std::fill(dyp, dyp + Kg * P * ldq, 0.0f);  // columns Q..ldq stay zero
        ReduceTileArgs a{};
        a.dy_kstride = P * ldq;
        a.dy_rstride = ldq;
        a.in_rstride = p.stride_h * pk.ld;
        a.rows = P;
        a.vecs = vecs;
        a.acc_kstride = Cg * RS * 8;
        for (int64_t n = begin; n < end; ++n)
            for (int64_t g = 0; g < G; ++g) {
                pk.pack_into_zeroed(p, x + (n * p.C + g * Cg) * p.H * p.W, Cg, xp);
                const float* src = dy + (n * p.K + g * Kg) * P * Q;
                for (int64_t k = 0; k < Kg; ++k)
                    for (int64_t i = 0; i < P; ++i) {
                        float* d = dyp + (k * P + i) * ldq;
                        const float* s = src + (k * P + i) * Q;
                        for (int64_t j = 0; j < Q; ++j) d[j] = s[j];
                    }
                for (int64_t k0 = 0; k0 < Kg; k0 += KB) {
                    a.dy = dyp + k0 * P * ldq;
                    a.kvalid = int(std::min(KB, Kg - k0));
                    for (int64_t c = 0; c < Cg; ++c) {
                        a.in = xp + c * pk.plane;
                        for (int64_t t0 = 0; t0 < RS; t0 += TB) {
                            a.taps = taps.data() + t0;
                            a.tvalid = int(std::min(TB, RS - t0));
                            a.acc = acc + (((g * Kg + k0) * Cg + c) * RS + t0) * 8;
                            shape.run(a);
                        }
                    }
                }
            }
    });
    parallel_for(wn, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            float s = 0.0f;
            for (const float* acc : partial)
                for (int l = 0; l < 8; ++l) s += acc[i * 8 + l];
            dw[i] = s;
        }
    });
}

}  // namespace fastconv
