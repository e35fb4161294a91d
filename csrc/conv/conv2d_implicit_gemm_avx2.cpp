// Implicit-GEMM forward convolution, AVX2/FMA (compiled with -mavx2 -mfma; called only when
// use_avx2()). Per group g:
//   Y[Kg, cols] = W[Kg, CgRS] @ unfold(X)[CgRS, cols],  cols = (n, p, q) over the whole batch,
// computed with sgemm_driver.h's loop nest and the SGEMM micro-kernel (sgemm_avx2_kernel.h), except
// that the B operand is never materialised: each 16-column micro-panel of unfold(X) (16 consecutive
// outputs, which may span output rows and images) is gathered straight from the input into the
// packed layout (kc rows of 16 floats, 24 KiB at kc = 384: L1-resident) right before the
// micro-kernels of its A block consume it. No column buffer and no second copy of it.
//
// Gathering: for stride_w > 1 the input rows are first split into their stride phases (Source), so
// the taps of 16 outputs in one row are 16 consecutive floats. A panel inside one output row then
// takes two unaligned loads per row of the panel (taps in the padding: zeros, or a short copy at the
// edges); a panel that crosses rows takes one masked load-and-blend per row segment.
// Cost per gathered float is paid once for all Kg output channels: the scheme suits layers with
// many output channels (PERFORMANCE notes and the measurements in
// benchmarks/results/2026-12-04_epyc2c_implicit_gemm.md).
// Blocking: K (= CgRS) in equal blocks of at most KC; one A block (all of the thread's rows) when it
// packs into 512 KiB, so every panel is gathered once per K block, else blocks of at most MC rows.
// Threads: the C matrix (Kg rows x N*P*Q columns) is split into a grid of panel-aligned blocks, one
// per thread (thread_grid: columns first), so both cores work at batch 1 too; each thread packs its
// own A blocks; no barrier, and results do not depend on the thread count.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "common/parallel.h"
#include "common/workspace.h"
#include "conv/conv2d_implicit_gemm.h"
#include "gemm/sgemm_avx2_kernel.h"
#include "gemm/sgemm_driver.h"

namespace fastconv {

namespace {

using Kern = Avx2Kernel;
constexpr int MR = Kern::MR, NR = Kern::NR;

// The input as the gather reads it. For stride_w > 1 every input row is split once per call into
// its stride_w phases (phase f holds columns f, f + sw, f + 2 sw, ...; `wp` floats each, zero past
// the row), so that the 16 taps of a panel row, sw apart in x, are 16 consecutive floats: one pair
// of vector loads instead of a strided gather. For stride 1 it is x itself (one phase).
struct Source {
    const float* data;
    const float* end;
    int64_t sw, wp;    // phases, floats per phase
    int64_t row;       // floats per input row (sw * wp)
    int64_t plane;     // floats per channel (H * row)
};

// Shape constants and the per-tap tables (shared, read-only, by all threads).
struct Plan {
    const Conv2dParams& p;
    Source src;
    int64_t P, Q, PQ, Cg, Kg, CRS, cols;  // cols = N * P * Q
    std::vector<int64_t> tap_off;  // c * plane + r * dh * row
    std::vector<int32_t> tap_r;    // r
    std::vector<int32_t> tap_s;    // s

    Plan(const Conv2dParams& params, const Source& source) : p(params), src(source) {
        P = p.P(), Q = p.Q(), PQ = P * Q, Cg = p.C_per_group(), Kg = p.K_per_group();
        CRS = Cg * p.R * p.S, cols = p.N * PQ;
        tap_off.resize(CRS), tap_r.resize(CRS), tap_s.resize(CRS);
        for (int64_t c = 0, k = 0; c < Cg; ++c)
            for (int64_t r = 0; r < p.R; ++r)
                for (int64_t s = 0; s < p.S; ++s, ++k) {
                    tap_r[k] = int32_t(r), tap_s[k] = int32_t(s);
                    tap_off[k] = c * src.plane + r * p.dil_h * src.row;
                }
    }
};

inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Rows [k0, k0 + kc) of group g's unfold(X) for columns j0 .. j0 + nq - 1 (nq <= NR; column
// n*P*Q + p*Q + q is output (p, q) of image n) -> dst (kc rows of NR floats, zero past nq). The
// columns fall into at most NR runs ("segments") inside one output row each; for each row and
// segment, lanes whose tap lies in the padding are masked off, the rest come from one unaligned
// 16-float load (in the phase-split source) shifted so that the segment's first lane reads its
// first tap, blended in under the mask.
void gather_panel(const Plan& pl, int64_t g, int64_t k0, int64_t kc, int64_t j0, int nq, int64_t* lanes, float* dst) {
    const Conv2dParams& p = pl.p;
    const Source& sc = pl.src;
    const int64_t sw = p.stride_w, S = p.S;
    struct Segment {
        int64_t h0;
        const float* base;  // input row h0 of channel g*Cg of the segment's image
    } seg[NR];
    int nseg = 0;
    // lanes, per segment and kernel column s: the absolute lanes [lo, hi) whose tap is inside the
    // row, and the offset from base at which lane 0 reads (lane l reads offset + l)
    for (int j = 0; j < nq; ++nseg) {
        const int64_t img = (j0 + j) / pl.PQ, pq = (j0 + j) % pl.PQ, oh = pq / pl.Q, q0 = pq % pl.Q;
        const int len = int(std::min<int64_t>(nq - j, pl.Q - q0));
        const int64_t h0 = oh * p.stride_h - p.pad_h, w0 = q0 * sw - p.pad_w;
        seg[nseg] = {h0, sc.data + (img * p.C + g * pl.Cg) * sc.plane + h0 * sc.row};
        int64_t* lr = lanes + 3 * S * nseg;
        for (int64_t s = 0; s < S; ++s, lr += 3) {
            const int64_t wf = w0 + s * p.dil_w;  // input column of the segment's first lane
            // lo is clamped to the segment: a segment shorter than its left padding has no valid
            // lane, and [lo, hi) must not reach into the next segment's lanes.
            const int64_t lo = std::min<int64_t>(len, wf >= 0 ? 0 : (-wf + sw - 1) / sw);
            const int64_t hi = wf > p.W - 1 ? 0 : std::min<int64_t>(len, (p.W - 1 - wf) / sw + 1);
            const int64_t phase = wf - floor_div(wf, sw) * sw;
            lr[0] = j + lo, lr[1] = j + std::max(hi, lo);
            lr[2] = phase * sc.wp + floor_div(wf, sw) - j;
        }
        j += len;
    }
    if (nseg == 1 && nq == NR) {  // one output row: most rows are two plain loads
        bool fits = true;  // no lane can read outside the source
        for (int64_t s = 0; s < S; ++s) {
            const float* first = seg[0].base + lanes[3 * s + 2];
            fits = fits && first + pl.tap_off[k0] >= sc.data && first + pl.tap_off[k0 + kc - 1] + NR <= sc.end;
        }
        if (fits) {
            const __m256 zero = _mm256_setzero_ps();
            for (int64_t k = k0; k < k0 + kc; ++k, dst += NR) {
                const int64_t h = seg[0].h0 + pl.tap_r[k] * p.dil_h;
                const int64_t* lr = lanes + 3 * pl.tap_s[k];
                const float* src = seg[0].base + pl.tap_off[k] + lr[2];
                if (h < 0 || h >= p.H) {
                    _mm256_store_ps(dst, zero);
                    _mm256_store_ps(dst + 8, zero);
                } else if (lr[0] == 0 && lr[1] == NR) {
                    _mm256_store_ps(dst, _mm256_loadu_ps(src));
                    _mm256_store_ps(dst + 8, _mm256_loadu_ps(src + 8));
                } else {
                    _mm256_store_ps(dst, zero);
                    _mm256_store_ps(dst + 8, zero);
                    for (int64_t l = lr[0]; l < lr[1]; ++l) dst[l] = src[l];
                }
            }
            return;
        }
    }
    const __m256i lane0 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), lane1 = _mm256_add_epi32(lane0, _mm256_set1_epi32(8));
    for (int64_t k = k0; k < k0 + kc; ++k, dst += NR) {
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
        const int64_t dh = pl.tap_r[k] * p.dil_h, off = pl.tap_off[k];
        const int64_t* lr = lanes + 3 * pl.tap_s[k];
        for (int i = 0; i < nseg; ++i, lr += 3 * S) {
            const int64_t h = seg[i].h0 + dh;
            const int32_t lo = int32_t(lr[0]), hi = int32_t(lr[1]);
            if (h < 0 || h >= p.H || lo == hi) continue;
            const float* src = seg[i].base + off + lr[2];
            const __m256i vlo = _mm256_set1_epi32(lo - 1), vhi = _mm256_set1_epi32(hi);
            const __m256 m0 = _mm256_castsi256_ps(
                _mm256_and_si256(_mm256_cmpgt_epi32(lane0, vlo), _mm256_cmpgt_epi32(vhi, lane0)));
            const __m256 m1 = _mm256_castsi256_ps(
                _mm256_and_si256(_mm256_cmpgt_epi32(lane1, vlo), _mm256_cmpgt_epi32(vhi, lane1)));
            __m256 v0, v1;
            if (src >= sc.data && src + NR <= sc.end) {
                v0 = _mm256_loadu_ps(src), v1 = _mm256_loadu_ps(src + 8);
            } else {  // the 16 lanes would read past either end of the source: only the valid ones
                alignas(32) float tmp[NR] = {};
                for (int32_t l = lo; l < hi; ++l) tmp[l] = src[l];
                v0 = _mm256_load_ps(tmp), v1 = _mm256_load_ps(tmp + 8);
            }
            acc0 = _mm256_blendv_ps(acc0, v0, m0);
            acc1 = _mm256_blendv_ps(acc1, v1, m1);
        }
        _mm256_store_ps(dst, acc0);
        _mm256_store_ps(dst + 8, acc1);
    }
}

// A[i0:i0+mc, k0:k0+kc] of group g's weights (row stride CRS) -> MR-tall packed micro-panels.
void pack_weights(const float* w, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
    for (int64_t ir = 0; ir < mc; ir += MR) {
        const int64_t m = std::min<int64_t>(MR, mc - ir);
        const float* src = w + (i0 + ir) * lda + k0;
        float* d = dst + ir * kc;
        if (m == MR) {
            Kern::pack_a_rows(d, src, lda, kc);
            continue;
        }
        for (int64_t r = 0; r < m; ++r)
            for (int64_t k = 0; k < kc; ++k) d[k * MR + r] = src[r * lda + k];
    }
}

// Rows [m0, m1) of group g's output channels x panels [n0, n1) (panel t: columns t*NR .. t*NR + 15
// of the N*P*Q outputs), on the calling thread.
void run_block(const Plan& pl, const float* w, const float* bias, float* y,
               int64_t g, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t kc_max) {
    const Conv2dParams& p = pl.p;
    const int64_t CRS = pl.CRS, PQ = pl.PQ;
    // One A block for up to 512 KiB of packed weights (half the L2): each panel is gathered into L1
    // right before its use. Else blocks of at most MC rows, and the panels of up to kChunk columns
    // are gathered once per K block into an L2/L3 buffer that every A block then reads.
    constexpr int64_t kChunkPanels = 256;  // 4096 columns: 6 MiB at kc = 384
    const bool single = (m1 - m0) * kc_max * 4 <= (int64_t(512) << 10);
    const int64_t m_blocks = single ? 1 : ceil_div(m1 - m0, Kern::MC);
    const int64_t mc_step = ceil_div(ceil_div(m1 - m0, m_blocks), MR) * MR;
    const int64_t chunk = single ? n1 - n0 : std::min(kChunkPanels, n1 - n0);
    float* a_buf = thread_scratch(0, size_t(mc_step * kc_max));
    float* b_buf = thread_scratch(1, size_t(NR * kc_max * (single ? 1 : chunk)));
    std::vector<int64_t> lanes(size_t(3 * NR * p.S));
    const float* wg = w + g * pl.Kg * CRS;
    for (int64_t pc = 0; pc < CRS; pc += kc_max) {
        const int64_t kc = std::min(kc_max, CRS - pc);
        const bool last = pc + kc == CRS;
        const float beta = pc == 0 ? 0.0f : 1.0f;
        for (int64_t c0 = n0; c0 < n1; c0 += chunk) {
            const int64_t c1 = std::min(n1, c0 + chunk);
            if (!single)
                for (int64_t t = c0; t < c1; ++t)
                    gather_panel(pl, g, pc, kc, t * NR, int(std::min<int64_t>(NR, pl.cols - t * NR)), lanes.data(),
                                 b_buf + (t - c0) * NR * kc);
            for (int64_t ic = m0; ic < m1; ic += mc_step) {
                const int64_t mc = std::min(mc_step, m1 - ic);
                pack_weights(wg, CRS, ic, mc, pc, kc, a_buf);
                for (int64_t t = c0; t < c1; ++t) {
                    const int64_t j0 = t * NR, img = j0 / PQ, pq = j0 % PQ;
                    const int n = int(std::min<int64_t>(NR, pl.cols - j0));
                    const float* panel = single ? b_buf : b_buf + (t - c0) * NR * kc;
                    if (single) gather_panel(pl, g, pc, kc, j0, n, lanes.data(), b_buf);
                    const bool one_image = pq + n <= PQ;
                    int64_t col_off[NR];  // y offset of each column's output channel 0 (straddling panels)
                    if (!one_image)
                        for (int q = 0; q < n; ++q) col_off[q] = ((j0 + q) / PQ) * p.K * PQ + (j0 + q) % PQ;
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        const int m = int(std::min<int64_t>(MR, mc - ir));
                        const int64_t k_out = g * pl.Kg + ic + ir;  // first output channel of the tile
                        const float* a = a_buf + ir * kc;
                        if (one_image) {  // the panel's columns are contiguous in y
                            float* c = y + (img * p.K + k_out) * PQ + pq;
                            Kern::tile(m, kc, a, panel, NR, c, PQ, n, 1.0f, beta);
                            if (last && bias)
                                for (int r = 0; r < m; ++r) {
                                    const float b = bias[k_out + r];
                                    for (int q = 0; q < n; ++q) c[r * PQ + q] += b;
                                }
                            continue;
                        }
                        // The panel crosses an image boundary: through a small buffer.
                        alignas(64) float buf[MR * NR];
                        auto at = [&](int r, int q) -> float& { return y[col_off[q] + (k_out + r) * PQ]; };
                        if (beta != 0.0f)
                            for (int r = 0; r < m; ++r)
                                for (int q = 0; q < n; ++q) buf[r * NR + q] = at(r, q);
                        Kern::tile(m, kc, a, panel, NR, buf, NR, n, 1.0f, beta);
                        for (int r = 0; r < m; ++r) {
                            const float b = last && bias ? bias[k_out + r] : 0.0f;
                            for (int q = 0; q < n; ++q) at(r, q) = buf[r * NR + q] + b;
                        }
                    }
                }
            }
        }
    }
}

}  // namespace

int64_t conv2d_implicit_gemm_avx2_workspace(const Conv2dParams& p) {
    if (p.stride_w == 1) return 0;
    const int64_t wp = ceil_div(p.W, p.stride_w);
    return checked_mul(checked_mul(p.N * p.C, p.H, "input"), p.stride_w * wp, "input") * int64_t(sizeof(float));
}

void conv2d_implicit_gemm_forward_avx2(const Conv2dParams& p, const float* x, const float* w, const float* bias,
                                       float* y) {
    Source src;
    src.sw = p.stride_w, src.wp = ceil_div(p.W, p.stride_w), src.row = src.sw * src.wp, src.plane = p.H * src.row;
    if (p.stride_w == 1) {
        src.data = x;
    } else {  // split every input row into its stride_w phases (the calling thread's scratch)
        const int64_t rows = p.N * p.C * p.H, sw = src.sw, wp = src.wp;
        float* xp = thread_scratch(2, size_t(rows * src.row));
        parallel_for(rows, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) {
                const float* in = x + i * p.W;
                float* out = xp + i * src.row;
                for (int64_t f = 0; f < sw; ++f, out += wp) {
                    const int64_t n = (p.W - f + sw - 1) / sw;  // columns f + t*sw < W
                    for (int64_t t = 0; t < n; ++t) out[t] = in[f + t * sw];
                    for (int64_t t = n; t < wp; ++t) out[t] = 0.0f;
                }
            }
        });
        src.data = xp;
    }
    src.end = src.data + p.N * p.C * src.plane;
    const Plan pl(p, src);
    const int64_t k_blocks = ceil_div(pl.CRS, Kern::KC);
    const int64_t kc_max = ceil_div(pl.CRS, k_blocks);
    const int64_t m_panels = ceil_div(pl.Kg, MR), n_panels = ceil_div(pl.cols, NR);
    GemmParams shape;
    shape.M = pl.Kg, shape.N = pl.cols, shape.K = pl.CRS;
    int tm, tn;
    thread_grid(m_panels, n_panels, gemm_threads(shape), tm, tn);
    for (int64_t g = 0; g < p.groups; ++g) {
        parallel_for(tm * tn, [&](long long begin, long long end) {
            for (long long t = begin; t < end; ++t) {
                const int64_t bm = t / tn, bn = t % tn;
                const int64_t m0 = std::min(pl.Kg, m_panels * bm / tm * MR);
                const int64_t m1 = std::min(pl.Kg, m_panels * (bm + 1) / tm * MR);
                const int64_t n0 = n_panels * bn / tn, n1 = n_panels * (bn + 1) / tn;
                if (m0 < m1 && n0 < n1) run_block(pl, w, bias, y, g, m0, m1, n0, n1, kc_max);
            }
        });
    }
}

}  // namespace fastconv
