// Implicit-GEMM convolution, AVX2/FMA (compiled with -mavx2 -mfma; called only when use_avx2()).
// Output channels are the vector dimension and input pixels the broadcast operand, as in oneDNN's
// direct kernels: one micro-kernel computes a 6 x 16 tile of C = A @ B (12 accumulators), where
// B is a packed, contiguous (reduction x 16) panel and A is read in place from the (zero-padded)
// input with separable offsets, A(m, t) = src[base_m + off_t]: six row pointers live in registers
// and each reduction step loads one offset, six broadcasts and two B vectors for 12 FMAs. No
// unfold, no gather, so strided layers cost what stride-1 ones do.
//   forward       m = output pixel (p, q), t = tap (c, r, s), B = W^T (per group, 16 output
//                 channels a panel); the 6 x 16 tiles land in a per-thread (pixels x K) block that
//                 is written transposed into NCHW y (+ bias). On small padded maps the taps run
//                 kernel row by kernel row within chunks of channels, so that a tile whose pixels
//                 all read padding in some kernel rows skips them (ForwardSteps).
//   input grad    per stride phase of dx (see InputGradPhase): m = dx pixel of the phase, t =
//                 (k, the phase's taps), B = W^T (16 input channels a panel), A read from dy
//                 padded as the phases read it; tiles written transposed into dx's phase pixels.
//   weight grad   m = tap (c, r, s), t = output pixel (p, q) of each image in turn, B = dY^T (a
//                 chunk of pixels x 16 output channels, packed per thread); C = dW^T: sums in a
//                 (taps x K) buffer (per image first when the sums are long) whose rows are
//                 split between threads or, with enough images, one buffer per thread over its
//                 own images, summed when written transposed into dw.
// Padding: the input is copied once per call into a zero-padded layout holding exactly the rows
// and columns the windows read (cheap against C*R*S*K FMAs per output), in chunks of images under
// the workspace limit; unpadded inputs are read in place.
// Blocking: reductions in blocks of at most KC steps, so a B panel (KC x 16 floats, 8 KiB) stays
// in L1 while the tiles of a pixel (forward) or tap (weight) block stream past it.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/parallel.h"
#include "common/workspace.h"
#include "conv/conv2d_implicit_gemm.h"

namespace fastconv {

namespace {

constexpr int MR = kImplicitGemmMR;
constexpr int NR = kImplicitGemmNR;
// Reduction block: B panels of 8 KiB, so that the panel and the input rows a block of pixels reads
// (alexnet_c1: one channel's 11 rows for 96 outputs, ~16 KiB) share L1. 128 against 256 steps:
// alexnet_c1 forward 5.9-7.2 ms against 7.2-9.3 on 2 threads (noisy; on 1 thread 64-256 are within
// 3%, so the 2-thread gain is the shared-L2 traffic).
constexpr int64_t KC = 128;
// Weight gradient: the longest float32 sum (products per weight, N * P * Q) accumulated in place.
constexpr int64_t kDirectChain = 4096;

// c[i * ldc + j] (+)= sum_{t < kc} a[i][off[t]] * b[t * NR + j] for i < MR, j < NR. b is 32-byte
// aligned; add = false starts from zero.
inline void tile(const float* const a[MR], const int32_t* off, const float* b, int64_t kc, float* c, int64_t ldc,
                 bool add) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (add) {
        c00 = _mm256_loadu_ps(c + 0 * ldc), c01 = _mm256_loadu_ps(c + 0 * ldc + 8);
        c10 = _mm256_loadu_ps(c + 1 * ldc), c11 = _mm256_loadu_ps(c + 1 * ldc + 8);
        c20 = _mm256_loadu_ps(c + 2 * ldc), c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
        c30 = _mm256_loadu_ps(c + 3 * ldc), c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
        c40 = _mm256_loadu_ps(c + 4 * ldc), c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
        c50 = _mm256_loadu_ps(c + 5 * ldc), c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    // Opaque to the optimiser: else it rewrites the six pointers as one base plus six offsets and
    // spends an extra add per broadcast (the loop then issues ~30 instructions per 12 FMAs).
    asm("" : "+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3), "+r"(a4), "+r"(a5));
    for (int64_t t = 0; t < kc; ++t, b += NR) {
        const int64_t o = off[t];
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        __m256 v = _mm256_broadcast_ss(a0 + o);
        c00 = _mm256_fmadd_ps(v, b0, c00), c01 = _mm256_fmadd_ps(v, b1, c01);
        v = _mm256_broadcast_ss(a1 + o);
        c10 = _mm256_fmadd_ps(v, b0, c10), c11 = _mm256_fmadd_ps(v, b1, c11);
        v = _mm256_broadcast_ss(a2 + o);
        c20 = _mm256_fmadd_ps(v, b0, c20), c21 = _mm256_fmadd_ps(v, b1, c21);
        v = _mm256_broadcast_ss(a3 + o);
        c30 = _mm256_fmadd_ps(v, b0, c30), c31 = _mm256_fmadd_ps(v, b1, c31);
        v = _mm256_broadcast_ss(a4 + o);
        c40 = _mm256_fmadd_ps(v, b0, c40), c41 = _mm256_fmadd_ps(v, b1, c41);
        v = _mm256_broadcast_ss(a5 + o);
        c50 = _mm256_fmadd_ps(v, b0, c50), c51 = _mm256_fmadd_ps(v, b1, c51);
    }
    _mm256_storeu_ps(c + 0 * ldc, c00), _mm256_storeu_ps(c + 0 * ldc + 8, c01);
    _mm256_storeu_ps(c + 1 * ldc, c10), _mm256_storeu_ps(c + 1 * ldc + 8, c11);
    _mm256_storeu_ps(c + 2 * ldc, c20), _mm256_storeu_ps(c + 2 * ldc + 8, c21);
    _mm256_storeu_ps(c + 3 * ldc, c30), _mm256_storeu_ps(c + 3 * ldc + 8, c31);
    _mm256_storeu_ps(c + 4 * ldc, c40), _mm256_storeu_ps(c + 4 * ldc + 8, c41);
    _mm256_storeu_ps(c + 5 * ldc, c50), _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}

// r[i][j] <-> r[j][i] for eight rows of eight floats.
inline void transpose8(__m256 r[8]) {
    __m256 t[8];
    for (int i = 0; i < 8; i += 2) t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]), t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    __m256 u[8];
    for (int i = 0; i < 8; i += 4) {
        u[i + 0] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44), u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44), u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; ++i) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

// dst[i * ldd + l] = src[l * lds + i] for i < rows, l < cols (rows, cols <= 8 where not full).
inline void transpose_block(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t rows, int64_t cols) {
    if (rows == 8 && cols == 8) {
        __m256 r[8];
        for (int l = 0; l < 8; ++l) r[l] = _mm256_loadu_ps(src + l * lds);
        transpose8(r);
        for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + i * ldd, r[i]);
        return;
    }
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t l = 0; l < cols; ++l) dst[i * ldd + l] = src[l * lds + i];
}

// One B panel: dst[row(t) * NR + l] = src[l * ld + t] for t < len and the kv <= NR valid channels l,
// zero for l >= kv, where row(t) = t, or dst_row[t] (the forward's row order), in 8 x 8 transposes
// (an element loop reading kv rows at stride ld cost a third of a batch-1 forward: 384 x 2592
// weights against 0.6 GFLOP).
template <bool kPermuted>
void pack_panel_as(const float* src, int64_t ld, int64_t len, int64_t kv, float* dst, const int32_t* dst_row) {
    auto row = [&](int64_t t) { return dst + (kPermuted ? int64_t(dst_row[t]) : t) * NR; };
    if (kv < NR)
        for (int64_t t = 0; t < len; ++t) std::memset(row(t) + kv, 0, sizeof(float) * (NR - kv));
    for (int64_t l = 0; l < kv; l += 8)
        for (int64_t t = 0; t < len; t += 8) {
            const int64_t rows = std::min<int64_t>(8, kv - l), cols = std::min<int64_t>(8, len - t);
            if (rows == 8 && cols == 8) {
                __m256 r[8];
                for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + (l + i) * ld + t);
                transpose8(r);
                for (int i = 0; i < 8; ++i) _mm256_storeu_ps(row(t + i) + l, r[i]);
                continue;
            }
            for (int64_t i = 0; i < cols; ++i)
                for (int64_t k = 0; k < rows; ++k) row(t + i)[l + k] = src[(l + k) * ld + t + i];
        }
}

// (Instantiated per order: a row lookup per store slowed the packing that runs between tiles.)
void pack_panel(const float* src, int64_t ld, int64_t len, int64_t kv, float* dst, const int32_t* dst_row = nullptr) {
    if (dst_row) return pack_panel_as<true>(src, ld, len, kv, dst, dst_row);
    pack_panel_as<false>(src, ld, len, kv, dst, nullptr);
}

// The input as the kernels read it: x itself when unpadded, else a zero-padded copy holding rows
// [-pad_h, rows - pad_h) and columns [-pad_w, cols - pad_w) of each plane, where rows and cols are
// what the windows reach ((P-1)*sh + (R-1)*dh + 1, likewise for columns).
struct Source {
    bool copy;
    int64_t rows, cols;             // per plane
    int64_t row, plane, image;      // strides in floats
    int64_t chunk;                  // images per padded chunk (N when unpadded)
};

Source plan_source(const Conv2dParams& p) {
    Source s;
    s.copy = p.pad_h > 0 || p.pad_w > 0;
    if (!s.copy) {
        s.rows = p.H, s.cols = p.W;
    } else {
        s.rows = (p.P() - 1) * p.stride_h + (p.R - 1) * p.dil_h + 1;
        s.cols = (p.Q() - 1) * p.stride_w + (p.S - 1) * p.dil_w + 1;
    }
    s.row = s.cols, s.plane = s.rows * s.cols, s.image = p.C * s.plane;
    const int64_t limit_floats = get_workspace_limit() / int64_t(sizeof(float)) / 2;
    s.chunk = s.copy ? std::max<int64_t>(1, std::min<int64_t>(p.N, limit_floats / std::max<int64_t>(s.image, 1)))
                     : p.N;
    return s;
}

// `planes` planes of (h x w) floats from src into dst planes of (rows x cols), element (i, j) at
// (i + top, j + left), zero elsewhere (threaded over planes). A negative top or left crops.
void pad_planes(const float* src, int64_t planes, int64_t h, int64_t w, int64_t top, int64_t left, int64_t rows,
                int64_t cols, float* dst) {
    parallel_for(planes, [&](long long b, long long e) {
        for (long long i = b; i < e; ++i) {
            const float* in = src + i * h * w;
            float* out = dst + i * rows * cols;
            // destination columns [lo, hi) hold source columns [lo - left, hi - left)
            const int64_t lo = std::clamp<int64_t>(left, 0, cols), hi = std::clamp<int64_t>(left + w, lo, cols);
            for (int64_t r = 0; r < rows; ++r) {
                float* o = out + r * cols;
                const int64_t y = r - top;
                if (y < 0 || y >= h) {
                    std::memset(o, 0, sizeof(float) * cols);
                    continue;
                }
                std::memset(o, 0, sizeof(float) * lo);
                if (hi > lo) std::memcpy(o + lo, in + y * w + lo - left, sizeof(float) * (hi - lo));
                std::memset(o + hi, 0, sizeof(float) * (cols - hi));
            }
        }
    });
}

// Images [n0, n0 + count) of x into dst in the padded layout.
void pad_images(const Conv2dParams& p, const Source& s, const float* x, int64_t n0, int64_t count, float* dst) {
    pad_planes(x + n0 * p.C * p.H * p.W, count * p.C, p.H, p.W, p.pad_h, p.pad_w, s.rows, s.cols, dst);
}

// Offsets of the taps (c, r, s) of one group in the source layout.
std::vector<int32_t> tap_offsets(const Conv2dParams& p, const Source& s) {
    std::vector<int32_t> off(size_t(p.C_per_group() * p.R * p.S));
    size_t t = 0;
    for (int64_t c = 0; c < p.C_per_group(); ++c)
        for (int64_t r = 0; r < p.R; ++r)
            for (int64_t q = 0; q < p.S; ++q) off[t++] = int32_t(c * s.plane + r * p.dil_h * s.row + q * p.dil_w);
    return off;
}

// Offsets of the windows' first taps, output pixel (p, q) -> p*sh*row + q*sw.
std::vector<int32_t> pixel_offsets(const Conv2dParams& p, const Source& s) {
    const int64_t P = p.P(), Q = p.Q();
    std::vector<int32_t> off(size_t(P * Q));
    for (int64_t i = 0; i < P; ++i)
        for (int64_t j = 0; j < Q; ++j) off[size_t(i * Q + j)] = int32_t(i * p.stride_h * s.row + j * p.stride_w);
    return off;
}

// The forward's reduction order. Normally (c, r, s), in blocks of KC steps. Where tiles can skip
// enough kernel rows that read only padding (ImplicitGemmForwardPlan::by_rows), the steps come in
// chunks of whole input channels [c0, c1) (about KC steps each) and run kernel row by kernel row
// inside a chunk, (r, c, s), so that kernel rows [first, last) are one contiguous range of each
// chunk: a tile skips rows without step lists.
struct ForwardSteps {
    bool by_rows = false;
    std::vector<int64_t> start;  // chunk k holds steps [start[k], start[k + 1])
    std::vector<int64_t> c0;     // by_rows: chunk k holds channels [c0[k], c0[k + 1])
    std::vector<int32_t> taps;   // source offset of each step
};

ForwardSteps forward_steps(const Conv2dParams& p, const Source& s, bool by_rows) {
    const int64_t Cg = p.C_per_group(), RS = p.R * p.S, CRS = Cg * RS;
    ForwardSteps f;
    f.by_rows = by_rows;
    f.taps.reserve(size_t(CRS));
    auto add = [&](int64_t c, int64_t r) {
        for (int64_t q = 0; q < p.S; ++q) f.taps.push_back(int32_t(c * s.plane + r * p.dil_h * s.row + q * p.dil_w));
    };
    if (!f.by_rows) {
        for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < p.R; ++r) add(c, r);
        for (int64_t kb = 0; kb < CRS; kb += KC) f.start.push_back(kb);
        f.start.push_back(CRS);
        return f;
    }
    const int64_t blocks = std::max<int64_t>(1, (CRS + KC - 1) / KC);
    const int64_t per = std::max<int64_t>(1, (Cg + blocks - 1) / blocks);  // channels per chunk
    for (int64_t c0 = 0; c0 < Cg; c0 += per) {
        const int64_t c1 = std::min(Cg, c0 + per);
        f.c0.push_back(c0), f.start.push_back(c0 * RS);
        for (int64_t r = 0; r < p.R; ++r)
            for (int64_t c = c0; c < c1; ++c) add(c, r);
    }
    f.c0.push_back(Cg), f.start.push_back(CRS);
    return f;
}

// Row of a by-rows chunk of `channels` channels that weight column (c - c0) R S + r S + s lands in.
std::vector<int32_t> chunk_rows(const Conv2dParams& p, int64_t channels) {
    std::vector<int32_t> rows(size_t(channels * p.R * p.S));
    size_t i = 0;
    for (int64_t c = 0; c < channels; ++c)
        for (int64_t r = 0; r < p.R; ++r)
            for (int64_t q = 0; q < p.S; ++q) rows[i++] = int32_t((r * channels + c) * p.S + q);
    return rows;
}

int64_t panels_of(int64_t n) { return (n + NR - 1) / NR; }
// Valid channels of panel j of n (the last panel may be narrower than NR).
int64_t panel_width(int64_t n, int64_t j) { return std::min<int64_t>(NR, n - j * NR); }

// Input gradient by phases. dx[c][x] sums w[k][c][r] dy[k][i] (columns likewise) over the (i, r)
// with sh i + dh r - pad_h = x. Writing x + pad_h = sh j + a (0 <= a < sh), the kernel rows reaching
// residue a are those with dh r = a (mod sh), from dy row j - e_r, e_r = dh r / sh (integer
// division). So each phase (a, b) of dx is a stride-1 correlation of dy with the phase's taps: an
// implicit GEMM with dx's channels as the vector dimension and (k, phase taps) as the reduction,
// over dy zero-padded as the phases read it. At stride 1 that is one phase holding every tap (dy
// padded by dh - pad_h: the transposed convolution); at stride 2 a 3x3 kernel splits into
// 2x2, 2x1, 1x2 and 1x1 phases (4 + 2 + 2 + 1 = 9 taps, no product wasted), where im2col's col2im
// scatter-adds every unfolded column.
struct AxisPhase {
    int64_t residue = 0;                // a
    std::vector<int64_t> taps, shifts;  // the kernel rows r of the residue, and their e_r
    int64_t first = 0, count = 0;       // the phase's outputs j = first .. first + count - 1
};

// The phases of one axis: input length `in`, kernel `window`, the convolution's stride, padding and
// dilation.
std::vector<AxisPhase> axis_phases(int64_t in, int64_t window, int64_t stride, int64_t pad, int64_t dil) {
    std::vector<AxisPhase> phases(static_cast<size_t>(stride));
    for (int64_t r = 0; r < window; ++r) {
        AxisPhase& ph = phases[size_t(r * dil % stride)];
        ph.taps.push_back(r);
        ph.shifts.push_back(r * dil / stride);
    }
    for (int64_t a = 0; a < stride; ++a) {
        AxisPhase& ph = phases[size_t(a)];
        ph.residue = a;
        ph.first = pad >= a ? (pad - a + stride - 1) / stride : 0;  // ceil((pad - a) / stride) >= 0
        const int64_t last = pad + in - 1 - a;                        // stride * (last j) <= last
        ph.count = last < 0 ? 0 : std::max<int64_t>(0, last / stride - ph.first + 1);
    }
    return phases;
}

// Where dy sits in the source the phases read: dy row i at source row i + offset, and the source
// rows they need (columns likewise). Phases without taps read nothing.
struct AxisSource {
    int64_t offset = 0, size = 1;
};

AxisSource axis_source(const std::vector<AxisPhase>& phases) {
    AxisSource s;
    bool first = true;
    for (const AxisPhase& ph : phases) {
        if (ph.taps.empty() || ph.count == 0) continue;
        const int64_t most = *std::max_element(ph.shifts.begin(), ph.shifts.end());
        s.offset = first ? most - ph.first : std::max(s.offset, most - ph.first);  // first read row >= 0
        first = false;
    }
    for (const AxisPhase& ph : phases) {
        if (ph.taps.empty() || ph.count == 0) continue;
        const int64_t least = *std::min_element(ph.shifts.begin(), ph.shifts.end());
        s.size = std::max(s.size, ph.first + ph.count - least + s.offset);  // last read row + 1
    }
    return s;
}

// One phase (a, b) of dx: the source offsets of its reduction steps (k, r, s) and output pixels,
// the rows of the packed W^T its steps use, and where its pixels go in a dx plane. len = 0 when no
// tap reaches it (a stride larger than the dilated kernel): its pixels are zero.
struct InputGradPhase {
    int64_t len = 0;
    std::vector<int32_t> taps, pixels, dst;
    std::vector<int64_t> weight_rows;  // (k * R + r) * S + s per step
};

// The axes' phases and the source layout of dy they read.
struct InputGradLayout {
    std::vector<AxisPhase> rows, cols;
    AxisSource src_rows, src_cols;
    Source src;
};

InputGradLayout input_grad_layout(const Conv2dParams& p) {
    InputGradLayout l;
    l.rows = axis_phases(p.H, p.R, p.stride_h, p.pad_h, p.dil_h);
    l.cols = axis_phases(p.W, p.S, p.stride_w, p.pad_w, p.dil_w);
    l.src_rows = axis_source(l.rows), l.src_cols = axis_source(l.cols);
    const AxisSource &sr = l.src_rows, &sc = l.src_cols;
    const int64_t P = p.P(), Q = p.Q();
    Source& s = l.src;
    // dy is read in place when no phase reads before its first row or column or past its plane.
    s.copy = !(sr.offset == 0 && sc.offset == 0 && sr.size <= P && sc.size <= Q);
    s.rows = s.copy ? sr.size : P;
    s.cols = s.copy ? sc.size : Q;
    s.row = s.cols, s.plane = s.rows * s.cols, s.image = p.K * s.plane;
    const int64_t limit_floats = get_workspace_limit() / int64_t(sizeof(float)) / 2;
    s.chunk = s.copy ? std::max<int64_t>(1, std::min<int64_t>(p.N, limit_floats / std::max<int64_t>(s.image, 1)))
                     : p.N;
    return l;
}

struct InputGradPlan {
    Source src;
    int64_t top = 0, left = 0;  // dy's first row and column in the source
    std::vector<InputGradPhase> phases;
};

InputGradPlan plan_input_grad(const Conv2dParams& p) {
    const InputGradLayout layout = input_grad_layout(p);
    const std::vector<AxisPhase> &rows = layout.rows, &cols = layout.cols;
    const AxisSource &sr = layout.src_rows, &sc = layout.src_cols;
    const int64_t Kg = p.K_per_group();
    InputGradPlan g;
    g.src = layout.src;
    const Source& s = g.src;
    g.top = sr.offset, g.left = sc.offset;
    for (const AxisPhase& ph : rows)
        for (const AxisPhase& pw : cols) {
            if (ph.count == 0 || pw.count == 0) continue;
            InputGradPhase f;
            f.len = Kg * int64_t(ph.taps.size() * pw.taps.size());
            for (int64_t k = 0; k < Kg; ++k)
                for (size_t u = 0; u < ph.taps.size(); ++u)
                    for (size_t v = 0; v < pw.taps.size(); ++v) {
                        f.taps.push_back(int32_t(k * s.plane + (sr.offset - ph.shifts[u]) * s.row + sc.offset -
                                                 pw.shifts[v]));
                        f.weight_rows.push_back((k * p.R + ph.taps[u]) * p.S + pw.taps[v]);
                    }
            for (int64_t j = ph.first; j < ph.first + ph.count; ++j)
                for (int64_t l = pw.first; l < pw.first + pw.count; ++l) {
                    f.pixels.push_back(int32_t(j * s.row + l));
                    const int64_t x = p.stride_h * j + ph.residue - p.pad_h, y = p.stride_w * l + pw.residue - p.pad_w;
                    f.dst.push_back(int32_t(x * p.W + y));
                }
            g.phases.push_back(std::move(f));
        }
    return g;
}

// c[l * ldc + i] for pixels l < cols and channels i < rows (<= 8) into dst[i * ldd + at[l]]: the
// 8 x 8 transpose of the forward's output, for pixels that need not be adjacent in dst.
inline void scatter_block(const float* c, int64_t ldc, float* dst, int64_t ldd, const int32_t* at, int64_t rows,
                          int64_t cols) {
    if (cols == 8 && at[7] - at[0] == 7) return transpose_block(c, ldc, dst + at[0], ldd, rows, cols);
    if (cols == 8) {
        __m256 r[8];
        for (int l = 0; l < 8; ++l) r[l] = _mm256_loadu_ps(c + l * ldc);
        transpose8(r);
        alignas(32) float buf[8];
        for (int64_t i = 0; i < rows; ++i) {
            _mm256_store_ps(buf, r[i]);
            float* d = dst + i * ldd;
            for (int l = 0; l < 8; ++l) d[at[l]] = buf[l];
        }
        return;
    }
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t l = 0; l < cols; ++l) dst[i * ldd + at[l]] = c[l * ldc + i];
}

}  // namespace

bool conv2d_implicit_gemm_avx2_fits(const Conv2dParams& p) {
    const Source s = plan_source(p);
    // int32 offsets: a group's taps from its first plane, and the pixels from the plane start
    return p.C_per_group() * s.plane < (int64_t(1) << 31) && s.plane < (int64_t(1) << 31);
}

void conv2d_implicit_gemm_forward_avx2(const Conv2dParams& p, const float* x, const float* w, const float* bias,
                                       float* y) {
    const Source src = plan_source(p);
    const int64_t PQ = p.P() * p.Q(), G = p.groups, Cg = p.C_per_group(), Kg = p.K_per_group();
    const int64_t RS = p.R * p.S, CRS = Cg * RS, panels = panels_of(Kg), ldc = panels * NR;
    const ImplicitGemmForwardPlan shape = implicit_gemm_forward_plan(p, src.chunk, region_threads());
    const std::vector<KernelRows> tile_rows = shape.by_rows ? implicit_gemm_tile_rows(p) : std::vector<KernelRows>();
    const ForwardSteps steps = forward_steps(p, src, shape.by_rows);
    const int64_t chunks = int64_t(steps.start.size()) - 1;
    const std::vector<int32_t> pixels = pixel_offsets(p, src);
    // By rows: the weight rows of a chunk in step order (the last chunk may hold fewer channels).
    std::vector<int32_t> rows_full, rows_last;
    int64_t widest = std::min(KC, CRS);  // steps of the longest chunk
    if (steps.by_rows) {
        widest = (steps.c0[1] - steps.c0[0]) * RS;
        rows_full = chunk_rows(p, steps.c0[1] - steps.c0[0]);
        rows_last = chunk_rows(p, steps.c0[size_t(chunks)] - steps.c0[size_t(chunks - 1)]);
    }
    // Panel j of group g, chunk k, packed: (chunk steps x 16), zero past Kg.
    auto pack_chunk = [&](int64_t g, int64_t j, int64_t k, float* dst) {
        const int64_t start = steps.start[size_t(k)], len = steps.start[size_t(k + 1)] - start;
        const float* wj = w + (g * Kg + j * NR) * CRS + start;
        const int32_t* rows = steps.by_rows ? (k + 1 == chunks ? rows_last : rows_full).data() : nullptr;
        pack_panel(wj, CRS, len, panel_width(Kg, j), dst, rows);
    };

    // W^T per group and panel: (CRS x 16) in step order. Work items: implicit_gemm_forward_plan.
    const int64_t mblocks = shape.pixel_blocks, mb = shape.block_pixels;
    // One image in one pixel block uses each B panel block once: it is then packed right before
    // its tiles, into L1, rather than all weights first into a buffer that makes a round trip
    // through L3 (832 x 5 x 5 -> 128 at batch 1: 10.6 MB, the separate pass ~15% of the call).
    const bool pack_on_use = shape.one_block && p.N == 1;
    float* wpack = pack_on_use ? nullptr : thread_scratch(0, size_t(G * panels * CRS * NR));
    if (!pack_on_use)
        parallel_for(G * panels * chunks, [&](long long b, long long e) {
            for (long long i = b; i < e; ++i) {
                const int64_t k = i % chunks, gj = i / chunks;
                pack_chunk(gj / panels, gj % panels, k, wpack + (gj * CRS + steps.start[size_t(k)]) * NR);
            }
        });
    float* xpad = src.copy ? thread_scratch(1, size_t(src.chunk * src.image)) : nullptr;
    // Where the tile at pixel m of a block ending at pixel `end` reads (repeating the last pixel).
    auto tile_sources = [&](const float* img, int64_t m, int64_t end, const float* a[MR]) {
        for (int i = 0; i < MR; ++i) a[i] = img + pixels[size_t(std::min<int64_t>(m + i, end - 1))];
    };
    const int32_t* taps = steps.taps.data();
    for (int64_t n0 = 0; n0 < p.N; n0 += src.chunk) {
        const int64_t count = std::min(src.chunk, p.N - n0);
        const float* base = x + (src.copy ? 0 : n0 * src.image);
        if (src.copy) pad_images(p, src, x, n0, count, xpad), base = xpad;
        const int64_t items0 = count * G * mblocks;
        const int64_t kparts = count == src.chunk ? shape.panel_parts
                                                  : implicit_gemm_forward_plan(p, count, region_threads()).panel_parts;
        // Stolen items let the other thread make up for one slowed by a neighbour on its core
        // (stride2 with a busy process on one of 2 cores: 7.6-7.7 ms against 8.9-9.1 static).
        parallel_for_stealing(items0 * kparts, [&](long long b, long long e) {
            float* cbuf = thread_scratch(2, size_t(mb * ldc));
            float* panel = pack_on_use ? thread_scratch(3, size_t(widest * NR)) : nullptr;
            for (long long item = b; item < e; ++item) {
                const int64_t kp = item % kparts, rest = item / kparts;
                const int64_t blk = rest % mblocks, g = (rest / mblocks) % G, n = rest / mblocks / G;
                const int64_t j0 = panels * kp / kparts, j1 = panels * (kp + 1) / kparts;
                const int64_t m0 = blk * mb, mcount = std::min(mb, PQ - m0);
                if (mcount <= 0) continue;
                const float* img = base + n * src.image + g * Cg * src.plane;
                for (int64_t k = 0; k < chunks; ++k) {
                    const int64_t start = steps.start[size_t(k)], len = steps.start[size_t(k + 1)] - start;
                    // By rows: steps per kernel row of the chunk. A chunk is one reduction block (at
                    // most KC + R S - 1 steps), but when a channel alone has over 2 KC: blocks of KC.
                    const int64_t row_len = steps.by_rows ? (steps.c0[size_t(k + 1)] - steps.c0[size_t(k)]) * p.S : 0;
                    const int64_t block = len > 2 * KC ? KC : len;
                    for (int64_t j = j0; j < j1; ++j) {
                        if (pack_on_use) pack_chunk(g, j, k, panel);
                        const float* cp = pack_on_use ? panel : wpack + ((g * panels + j) * CRS + start) * NR;
                        for (int64_t sb = 0; sb < len; sb += block) {
                            const int64_t se = std::min(len, sb + block);
                            for (int64_t mt = 0; mt < mcount; mt += MR) {
                                const float* a[MR];
                                tile_sources(img, m0 + mt, m0 + mcount, a);
                                int64_t lo = sb, hi = se;  // by rows: the tile's live kernel rows
                                if (steps.by_rows) {
                                    const KernelRows& kr = tile_rows[size_t((m0 + mt) / MR)];
                                    lo = std::max(sb, kr.first * row_len), hi = std::min(se, kr.last * row_len);
                                }
                                tile(a, taps + start + lo, cp + lo * NR, std::max<int64_t>(0, hi - lo),
                                     cbuf + mt * ldc + j * NR, ldc, start + sb > 0);
                            }
                        }
                    }
                }
                // (pixels x channels) -> y's channel rows, in 8 x 8 blocks; then the bias
                const int64_t k1 = std::min(Kg, j1 * NR);
                float* yg = y + ((n0 + n) * p.K + g * Kg) * PQ + m0;
                for (int64_t k = j0 * NR; k < k1; k += 8)
                    for (int64_t m = 0; m < mcount; m += 8)
                        transpose_block(cbuf + m * ldc + k, ldc, yg + k * PQ + m, PQ, std::min<int64_t>(8, k1 - k),
                                        std::min<int64_t>(8, mcount - m));
                if (bias)
                    for (int64_t k = j0 * NR; k < k1; ++k) {
                        float* yk = yg + k * PQ;
                        const float bk = bias[g * Kg + k];
                        for (int64_t m = 0; m < mcount; ++m) yk[m] += bk;
                    }
            }
        });
    }
}

void conv2d_implicit_gemm_backward_weight_avx2(const Conv2dParams& p, const float* x, const float* dy, float* dw) {
    const Source src = plan_source(p);
    const int64_t P = p.P(), Q = p.Q(), PQ = P * Q, G = p.groups, Cg = p.C_per_group(), Kg = p.K_per_group();
    const int64_t CRS = Cg * p.R * p.S, panels = panels_of(Kg), ldc = panels * NR;
    const int64_t tiles = (CRS + MR - 1) / MR, rows = tiles * MR, acc_size = G * rows * ldc;
    const std::vector<int32_t> taps = tap_offsets(p, src), pixels = pixel_offsets(p, src);

    // Two ways to share the work. Split by tiles (taps), every thread packs every image's dY^T and
    // reads every image: balanced for any batch, but the packing is repeated per thread (alexnet_c1
    // at batch 8: 10.9 ms on one thread, 6.9 on two). Split by images, each thread packs and reads
    // only its own, into its own dW^T (a slot of `acc`; the slots are summed at the end): used
    // when the images divide evenly enough and the slots fit the workspace.
    const int threads = region_threads();
    const int64_t slots_bytes = int64_t(threads) * acc_size * int64_t(sizeof(float));
    const bool may_split_images = threads > 1 && slots_bytes <= get_workspace_limit() / 4;
    const int slots = may_split_images ? threads : 1;
    float* acc = thread_scratch(0, size_t(slots * acc_size));
    // A slot's first pass stores rather than adds (no memset of up to 2 x 1.2 MB on one thread).
    std::vector<char> written(size_t(slots), 0);
    float* xpad = src.copy ? thread_scratch(1, size_t(src.chunk * src.image)) : nullptr;
    // Pixels per packed dY^T chunk: all of an image's when they are few (a panel of at most 256
    // pixels, 16 KiB, stays in L1), so each tile reduces over the whole image at once.
    const int64_t jc = PQ <= 2 * KC ? PQ : KC;
    // Then, while the sums stay short (at most kDirectChain products per weight), each tile adds
    // straight into the accumulator, which it loads and stores once per image (stride2, 196
    // pixels x 8 images: 0.95-0.97x the time on 1 thread). Otherwise each image's sums are kept
    // apart and then added: float32 chains of ~PQ/128 + N additions instead of N*PQ/128 (ResNet's
    // stem at batch 16 reached 1.75e-5 relative error).
    const bool direct = jc == PQ && p.N * PQ <= kDirectChain;

    // Adds the sums of images [na, nb) of the chunk over tiles [b, e) (of all groups) into `to`;
    // fresh: `to` holds nothing yet, the first image's sums are stored.
    auto accumulate = [&](const float* base, int64_t n0, int64_t na, int64_t nb, int64_t b, int64_t e, float* to,
                          bool fresh) {
        float* dyT = thread_scratch(2, size_t(panels * jc * NR));
        float* part = direct ? nullptr : thread_scratch(3, size_t((e - b) * MR * ldc));
        for (int64_t n = na; n < nb; ++n) {
            for (int64_t g = b / tiles; g <= (e - 1) / tiles; ++g) {
                const int64_t t0 = std::max<int64_t>(b - g * tiles, 0), t1 = std::min<int64_t>(e - g * tiles, tiles);
                const float* img = base + n * src.image + g * Cg * src.plane;
                const float* dyg = dy + ((n0 + n) * p.K + g * Kg) * PQ;
                for (int64_t c0 = 0; c0 < PQ; c0 += jc) {
                    const int64_t cc = std::min(jc, PQ - c0);
                    for (int64_t j = 0; j < panels; ++j)
                        pack_panel(dyg + j * NR * PQ + c0, PQ, cc, panel_width(Kg, j), dyT + j * jc * NR);
                    for (int64_t j = 0; j < panels; ++j)
                        for (int64_t tt = t0; tt < t1; ++tt) {
                            const float* a[MR];
                            for (int i = 0; i < MR; ++i) a[i] = img + taps[size_t(std::min<int64_t>(tt * MR + i, CRS - 1))];
                            float* c = direct ? to + (g * rows + tt * MR) * ldc : part + (g * tiles + tt - b) * MR * ldc;
                            tile(a, pixels.data() + c0, dyT + j * jc * NR, cc, c + j * NR, ldc,
                                 c0 > 0 || (direct && !(fresh && n == na)));
                        }
                }
                if (direct) continue;
                const float* from = part + (g * tiles + t0 - b) * MR * ldc;
                float* into = to + (g * rows + t0 * MR) * ldc;
                const int64_t len = (t1 - t0) * MR * ldc;  // a multiple of 16
                if (fresh && n == na) {
                    std::memcpy(into, from, sizeof(float) * size_t(len));
                    continue;
                }
                for (int64_t i = 0; i < len; i += 8)
                    _mm256_storeu_ps(into + i, _mm256_add_ps(_mm256_loadu_ps(into + i), _mm256_loadu_ps(from + i)));
            }
        }
    };

    for (int64_t n0 = 0; n0 < p.N; n0 += src.chunk) {
        const int64_t count = std::min(src.chunk, p.N - n0);
        const float* base = x + (src.copy ? 0 : n0 * src.image);
        if (src.copy) pad_images(p, src, x, n0, count, xpad), base = xpad;
        // Images split when no thread gets more than ~10% above the average.
        if (slots > 1 && (count % slots == 0 || count >= 10 * slots)) {
            parallel_for(slots, [&](long long b, long long e) {
                for (long long s = b; s < e; ++s)
                    accumulate(base, n0, count * s / slots, count * (s + 1) / slots, 0, G * tiles, acc + s * acc_size,
                               !written[size_t(s)]);
            });
            std::fill(written.begin(), written.end(), 1);
        } else {  // tiles split: disjoint rows of the first slot
            parallel_for(G * tiles, [&](long long b, long long e) { accumulate(base, n0, 0, count, b, e, acc, !written[0]); });
            written[0] = 1;
        }
    }
    if (!written[0]) {  // no images
        std::memset(dw, 0, sizeof(float) * size_t(p.K * CRS));
        return;
    }
    // dW[g * Kg + k][t] = acc[g][t][k] summed over the written slots: per block of 8 taps, the other
    // slots' rows are added into slot 0's (vectors of 16 channels), then 8 x 8 transposes write dW
    // (a column walk at stride ldc took ~6% of stride2's weight gradient on 2 threads).
    const int64_t tblocks = (CRS + 7) / 8;
    parallel_for(G * tblocks, [&](long long b, long long e) {
        for (long long i = b; i < e; ++i) {
            const int64_t g = i / tblocks, t0 = i % tblocks * 8, tn = std::min<int64_t>(8, CRS - t0);
            float* a = acc + (g * rows + t0) * ldc;
            for (int s = 1; s < slots; ++s) {
                if (!written[size_t(s)]) continue;
                const float* other = a + s * acc_size;
                for (int64_t l = 0; l < tn * ldc; l += 8)
                    _mm256_storeu_ps(a + l, _mm256_add_ps(_mm256_loadu_ps(a + l), _mm256_loadu_ps(other + l)));
            }
            for (int64_t k = 0; k < Kg; k += 8)
                transpose_block(a + k, ldc, dw + (g * Kg + k) * CRS + t0, CRS, std::min<int64_t>(8, Kg - k), tn);
        }
    });
}

bool conv2d_implicit_gemm_avx2_input_grad_fits(const Conv2dParams& p) {
    const Source s = input_grad_layout(p).src;
    // int32 offsets: a group's taps (Kg planes of dy) and the pixels, and dx's planes
    return p.K_per_group() * s.plane < (int64_t(1) << 31) && p.H * p.W < (int64_t(1) << 31);
}

void conv2d_implicit_gemm_backward_input_avx2(const Conv2dParams& p, const float* dy, const float* w, float* dx) {
    const InputGradPlan plan = plan_input_grad(p);
    const Source& src = plan.src;
    const int64_t G = p.groups, Cg = p.C_per_group(), Kg = p.K_per_group(), RS = p.R * p.S, HW = p.H * p.W;
    const int64_t panels = panels_of(Cg), ldc = panels * NR, P = p.P(), Q = p.Q();
    const int64_t nphases = int64_t(plan.phases.size());

    // Pixel blocks per phase as in the forward: one block per phase when few pixels meet large
    // weights, whose panels are then packed on use at batch 1 (ResNet-18's last 3x3 layer, 512
    // channels on 7x7: 9.4 MB of weights for 49 pixels).
    int64_t most_pixels = 0;
    for (const InputGradPhase& f : plan.phases) most_pixels = std::max(most_pixels, int64_t(f.pixels.size()));
    const bool one_block =
        most_pixels <= kImplicitGemmOneBlockPixels && Kg * Cg * RS * int64_t(sizeof(float)) > kImplicitGemmOneBlockWeightBytes;
    const bool pack_on_use = one_block && p.N == 1;
    auto block_size = [&](int64_t npix) {
        const int64_t blocks = one_block ? 1 : (npix + kImplicitGemmPixelBlock - 1) / kImplicitGemmPixelBlock;
        return ((npix + blocks - 1) / blocks + MR - 1) / MR * MR;
    };
    // The largest block of any phase: block_size is not monotonic (96 pixels make one block of 96,
    // 110 two of 60), so the phase with the most pixels need not have the largest block.
    int64_t mb = 0;
    for (const InputGradPhase& f : plan.phases) mb = std::max(mb, block_size(int64_t(f.pixels.size())));

    // W^T per phase, group and panel of NR input channels: row t of a phase's reduction holds
    // w[k][c][r][s] for the panel's c (zero past Cg).
    std::vector<int64_t> phase_base(size_t(nphases) + 1, 0);  // each phase's panels in `packed`
    for (int64_t f = 0; f < nphases; ++f)
        phase_base[size_t(f + 1)] = phase_base[size_t(f)] + G * panels * plan.phases[size_t(f)].len * NR;
    auto pack = [&](const InputGradPhase& f, int64_t g, int64_t j, int64_t t0, int64_t t1, float* dst) {
        const float* wg = w + (g * Kg * Cg + j * NR) * RS;
        const int64_t width = std::min<int64_t>(NR, Cg - j * NR);
        for (int64_t t = t0; t < t1;) {  // runs of consecutive taps of one k: one transpose each
            const int64_t row = f.weight_rows[size_t(t)], k = row / RS;
            int64_t end = t + 1;
            while (end < t1 && f.weight_rows[size_t(end)] == row + (end - t) && f.weight_rows[size_t(end)] / RS == k) ++end;
            pack_panel(wg + k * Cg * RS + row % RS, RS, end - t, width, dst + (t - t0) * NR);
            t = end;
        }
    };
    float* packed = pack_on_use ? nullptr : thread_scratch(0, size_t(std::max<int64_t>(1, phase_base.back())));
    if (!pack_on_use)
        parallel_for(nphases * G * panels, [&](long long b, long long e) {
            for (long long i = b; i < e; ++i) {
                const int64_t ph = i / (G * panels), g = (i / panels) % G, j = i % panels;
                const InputGradPhase& f = plan.phases[size_t(ph)];
                pack(f, g, j, 0, f.len, packed + phase_base[size_t(ph)] + (g * panels + j) * f.len * NR);
            }
        });

    // Work items: (image, group, phase, pixel block, part of the channel panels).
    struct Item {
        int64_t n, g, phase, m0, mcount, j0, j1;
    };
    const int threads = region_threads();
    int64_t blocks_per_image = 0;  // over groups and phases
    for (const InputGradPhase& f : plan.phases) {
        const int64_t npix = int64_t(f.pixels.size());
        blocks_per_image += G * ((npix + block_size(npix) - 1) / block_size(npix));
    }
    float* dypad = src.copy ? thread_scratch(1, size_t(src.chunk * src.image)) : nullptr;
    for (int64_t n0 = 0; n0 < p.N; n0 += src.chunk) {
        const int64_t count = std::min(src.chunk, p.N - n0);
        const float* base = dy + (src.copy ? 0 : n0 * src.image);
        if (src.copy) {
            pad_planes(dy + n0 * p.K * P * Q, count * p.K, P, Q, plan.top, plan.left, src.rows, src.cols, dypad);
            base = dypad;
        }
        const int64_t blocks = count * blocks_per_image;  // channel panels split while < 4 per thread
        const int64_t kparts = std::min(panels, std::max<int64_t>(1, (4 * int64_t(threads) + blocks - 1) / blocks));
        // Images in runs of at most kMaxItems items: the item list stays small for any batch.
        constexpr int64_t kMaxItems = int64_t(1) << 14;
        const int64_t run = std::max<int64_t>(1, kMaxItems / (blocks_per_image * kparts));
        for (int64_t na = 0; na < count; na += run) {
            std::vector<Item> items;
            for (int64_t n = na; n < std::min(count, na + run); ++n)
                for (int64_t g = 0; g < G; ++g)
                    for (int64_t ph = 0; ph < nphases; ++ph) {
                        const int64_t npix = int64_t(plan.phases[size_t(ph)].pixels.size()), size = block_size(npix);
                        for (int64_t m0 = 0; m0 < npix; m0 += size)
                            for (int64_t kp = 0; kp < kparts; ++kp)  // kparts <= panels: no part is empty
                                items.push_back({n, g, ph, m0, std::min(size, npix - m0), panels * kp / kparts,
                                                 panels * (kp + 1) / kparts});
                    }
            // Phases differ in cost (4:2:2:1 for a 3x3 stride-2 kernel): stealing evens them out.
            parallel_for_stealing(int64_t(items.size()), [&](long long b, long long e) {
                float* cbuf = thread_scratch(2, size_t(mb * ldc));
                float* panel = pack_on_use ? thread_scratch(3, size_t(KC * NR)) : nullptr;
                for (long long idx = b; idx < e; ++idx) {
                    const Item& it = items[size_t(idx)];
                    const InputGradPhase& f = plan.phases[size_t(it.phase)];
                    float* dxg = dx + ((n0 + it.n) * p.C + it.g * Cg) * HW;
                    const int32_t* at = f.dst.data() + it.m0;
                    const int64_t c1 = std::min(Cg, it.j1 * NR);
                    if (f.len == 0) {  // no tap reaches these pixels
                        for (int64_t c = it.j0 * NR; c < c1; ++c)
                            for (int64_t m = 0; m < it.mcount; ++m) dxg[c * HW + at[m]] = 0.0f;
                        continue;
                    }
                    const float* img = base + it.n * src.image + it.g * Kg * src.plane;
                    for (int64_t kb = 0; kb < f.len; kb += KC) {
                        const int64_t kc = std::min(KC, f.len - kb);
                        for (int64_t j = it.j0; j < it.j1; ++j) {
                            if (pack_on_use) pack(f, it.g, j, kb, kb + kc, panel);
                            const float* bp = pack_on_use ? panel
                                                          : packed + phase_base[size_t(it.phase)] +
                                                                ((it.g * panels + j) * f.len + kb) * NR;
                            for (int64_t mt = 0; mt < it.mcount; mt += MR) {
                                const float* a[MR];
                                for (int i = 0; i < MR; ++i)
                                    a[i] = img + f.pixels[size_t(it.m0 + std::min<int64_t>(mt + i, it.mcount - 1))];
                                tile(a, f.taps.data() + kb, bp, kc, cbuf + mt * ldc + j * NR, ldc, kb > 0);
                            }
                        }
                    }
                    for (int64_t c = it.j0 * NR; c < c1; c += 8)
                        for (int64_t m = 0; m < it.mcount; m += 8)
                            scatter_block(cbuf + m * ldc + c, ldc, dxg + c * HW, HW, at + m, std::min<int64_t>(8, c1 - c),
                                          std::min<int64_t>(8, it.mcount - m));
                }
            });
        }
    }
}

}  // namespace fastconv
