// Stride-1 dilated convolution as an undilated one over the input's phases (declared in conv2d.h).
//
// Output row p of a dilation-d convolution reads padded input rows p, p + d, ..., p + (R-1) d: all
// congruent to p mod d. So the output rows a, a + d, a + 2d, ... (a < d) read only the padded rows
// a, a + d, a + 2d, ..., and with those rows as a sub-image (row i = padded row a + d i) they are an
// ordinary dilation-1 convolution of it. Likewise for columns. The d_h x d_w phase sub-images,
// stacked as a batch of N d_h d_w images, make one undilated problem that any kernel runs,
// Winograd's and the FFT's included (DeepLab's 3x3 dilation-4 layer over 512 channels on 28x28:
// 16 sub-images of 7x7 with padding 1 whose 7x7 outputs tile the 28x28 output).
// Every phase gets the same sub-image size, so that the stack is one batch. Where the padding is a
// multiple of the dilation (DeepLab's and DRN's "same" padding) the sub-images are the input's own
// rows a, a + d, ... (ceil(H / d) of them, zeros past H) with padding pad / d: a transform then
// tiles only them, and the input gradient is computed for them alone (with the padding rows
// included, DRN's 512-channel dilation-4 input gradient took 1.3x torch's time, 9x9 against 7x7
// per phase). Otherwise the padding is materialised: Ps + R - 1 rows with Ps = ceil(P / d), no
// padding; rows past the padded input are zeros and their outputs are dropped.
//
// Batch layout of the stack: image (a * d_w + b) * N + n is phase (a, b) of image n.
//
// A strided convolution is a stride-1 one over the input's phases stacked as channels (space to
// depth): output row p reads padded rows s p + r, r < R; with r = a + s u (a < s) that is row
// p + u of phase a's sub-image (row i = padded row a + s i). So channel (c, a, b) of the sub-problem
// holds phase (a, b) of channel c, its kernel w'[k][(c, a, b)][u][v] = w[k][c][a + s_h u][b + s_w v]
// (zero past R, S) has ceil(R / s_h) x ceil(S / s_w) taps, and its output is y itself. AlexNet's
// 11x11 stride-4 layer becomes a 3x3 one over 48 channels of 57x57 (144 taps for 121): one that
// Winograd's F(4x4, 3x3) runs with ~3.4x fewer multiplications than the strided layer. Channel
// layout: sub-channel (c * s_h + a) * s_w + b (groups stay contiguous).
#include <algorithm>
#include <cstring>

#include "common/parallel.h"
#include "conv/conv2d.h"

namespace fastconv {

namespace {

// Where the (hs x ws) plane of phase (a, b) = a * dw + b, image n and channel c of a phase stack
// starts, in floats: phase * phase_stride + n * n_stride + c * c_stride.
struct StackLayout {
    int64_t phase, n, c;
};

// Phases as a batch: image (phase * N + n), channel c.
StackLayout as_batch(int64_t N, int64_t C, int64_t plane) { return {N * C * plane, C * plane, plane}; }
// Phases as channels: image n, channel c * phases + phase.
StackLayout as_channels(int64_t C, int64_t phases, int64_t plane) { return {plane, C * phases * plane, phases * plane}; }

// dst plane (phase (a, b), n, c) at [i][j] = src[n][c][a + dh i - off_h][b + dw j - off_w], zero
// outside src's (h x w) planes; dst planes are (hs x ws), placed by `to`.
void phase_gather(const float* src, int64_t N, int64_t C, int64_t h, int64_t w, int64_t dh, int64_t dw,
                  int64_t off_h, int64_t off_w, int64_t hs, int64_t ws, StackLayout to, float* dst) {
    const int64_t phases = dh * dw;
    parallel_for(phases * N * C, [&](long long begin, long long end) {
        for (long long item = begin; item < end; ++item) {
            const int64_t ph = item / (N * C), nc = item % (N * C), a = ph / dw, b = ph % dw;
            const float* in = src + nc * h * w;
            float* out = dst + ph * to.phase + (nc / C) * to.n + (nc % C) * to.c;
            // columns j with 0 <= b + dw j - off_w < w
            const int64_t j0 = std::min(ws, std::max<int64_t>(0, (off_w - b + dw - 1) / dw));
            const int64_t j1 = std::max(j0, std::min(ws, (w + off_w - b + dw - 1) / dw));
            for (int64_t i = 0; i < hs; ++i) {
                float* o = out + i * ws;
                const int64_t y = a + dh * i - off_h;
                if (y < 0 || y >= h) {
                    std::memset(o, 0, sizeof(float) * ws);
                    continue;
                }
                const float* row = in + y * w + b - off_w;
                std::memset(o, 0, sizeof(float) * j0);
                for (int64_t j = j0; j < j1; ++j) o[j] = row[dw * j];
                std::memset(o + j1, 0, sizeof(float) * (ws - j1));
            }
        }
    });
}

// The inverse of phase_gather on the elements it reads: dst[n][c][y][x] = src plane (phase (a, b),
// n, c) at [i][j], placed by `from`, where y + off_h = a + dh i, x + off_w = b + dw j; zero where
// i >= hs or j >= ws.
void phase_scatter(const float* src, int64_t N, int64_t C, int64_t hs, int64_t ws, int64_t dh, int64_t dw,
                   int64_t off_h, int64_t off_w, int64_t h, int64_t w, StackLayout from, float* dst) {
    parallel_for(N * C, [&](long long begin, long long end) {
        for (long long nc = begin; nc < end; ++nc) {
            float* out = dst + nc * h * w;
            for (int64_t y = 0; y < h; ++y) {
                float* o = out + y * w;
                const int64_t a = (y + off_h) % dh, i = (y + off_h) / dh;
                if (i >= hs) {
                    std::memset(o, 0, sizeof(float) * w);
                    continue;
                }
                for (int64_t b = 0; b < dw; ++b) {
                    const float* in = src + (a * dw + b) * from.phase + (nc / C) * from.n + (nc % C) * from.c + i * ws;
                    // x = b - off_w + dw j >= 0 for j >= j0; x < w and j < ws
                    const int64_t j0 = std::max<int64_t>(0, (off_w - b + dw - 1) / dw);
                    for (int64_t j = j0; j < ws; ++j) {
                        const int64_t x = b - off_w + dw * j;
                        if (x >= w) break;
                        o[x] = in[j];
                    }
                    // x with (x + off_w) / dw >= ws: read by no output
                    for (int64_t x = dw * ws + b - off_w; x < w; x += dw)
                        if (x >= 0) o[x] = 0.0f;
                }
            }
        }
    });
}

// One dimension of the phase problem: its input size and padding, and the offset `off` with
// sub-image index i <-> input index a + d i - off.
struct PhaseDim {
    int64_t size, pad, off;
};

PhaseDim phase_dim(int64_t in, int64_t out, int64_t taps, int64_t pad, int64_t dil) {
    if (pad % dil == 0) return {(in + dil - 1) / dil, pad / dil, 0};
    return {(out + dil - 1) / dil + taps - 1, 0, pad};
}

PhaseDim rows_of(const Conv2dParams& p) { return phase_dim(p.H, p.P(), p.R, p.pad_h, p.dil_h); }
PhaseDim cols_of(const Conv2dParams& p) { return phase_dim(p.W, p.Q(), p.S, p.pad_w, p.dil_w); }

}  // namespace

Conv2dParams conv2d_phase_params(const Conv2dParams& p) {
    const PhaseDim rows = rows_of(p), cols = cols_of(p);
    Conv2dParams s = p;
    s.N = p.N * p.dil_h * p.dil_w;
    s.H = rows.size, s.W = cols.size, s.pad_h = rows.pad, s.pad_w = cols.pad;
    s.stride_h = s.stride_w = 1, s.dil_h = s.dil_w = 1;
    return s;  // s.P() = ceil(P / dil_h), s.Q() = ceil(Q / dil_w)
}

void conv2d_phase_split_input(const Conv2dParams& p, const float* x, float* xs) {
    const PhaseDim rows = rows_of(p), cols = cols_of(p);
    phase_gather(x, p.N, p.C, p.H, p.W, p.dil_h, p.dil_w, rows.off, cols.off, rows.size, cols.size,
                 as_batch(p.N, p.C, rows.size * cols.size), xs);
}

void conv2d_phase_merge_input(const Conv2dParams& p, const float* dxs, float* dx) {
    const PhaseDim rows = rows_of(p), cols = cols_of(p);
    phase_scatter(dxs, p.N, p.C, rows.size, cols.size, p.dil_h, p.dil_w, rows.off, cols.off, p.H, p.W,
                  as_batch(p.N, p.C, rows.size * cols.size), dx);
}

void conv2d_phase_split_output(const Conv2dParams& p, const float* dy, float* dys) {
    const Conv2dParams s = conv2d_phase_params(p);
    phase_gather(dy, p.N, p.K, p.P(), p.Q(), p.dil_h, p.dil_w, 0, 0, s.P(), s.Q(), as_batch(p.N, p.K, s.P() * s.Q()), dys);
}

void conv2d_phase_merge_output(const Conv2dParams& p, const float* ys, float* y) {
    const Conv2dParams s = conv2d_phase_params(p);
    phase_scatter(ys, p.N, p.K, s.P(), s.Q(), p.dil_h, p.dil_w, 0, 0, p.P(), p.Q(), as_batch(p.N, p.K, s.P() * s.Q()), y);
}

Conv2dParams conv2d_space_to_depth_params(const Conv2dParams& p) {
    Conv2dParams s = p;
    const int64_t sh = p.stride_h, sw = p.stride_w;
    s.C = p.C * sh * sw;
    s.R = (p.R + sh - 1) / sh, s.S = (p.S + sw - 1) / sw;
    s.H = p.P() + s.R - 1, s.W = p.Q() + s.S - 1;  // every phase row an output reads, no padding
    s.stride_h = s.stride_w = 1, s.pad_h = s.pad_w = 0;
    return s;  // s.P() = P, s.Q() = Q
}

void conv2d_space_to_depth_split_input(const Conv2dParams& p, const float* x, float* xs) {
    const Conv2dParams s = conv2d_space_to_depth_params(p);
    phase_gather(x, p.N, p.C, p.H, p.W, p.stride_h, p.stride_w, p.pad_h, p.pad_w, s.H, s.W,
                 as_channels(p.C, p.stride_h * p.stride_w, s.H * s.W), xs);
}

void conv2d_space_to_depth_merge_input(const Conv2dParams& p, const float* dxs, float* dx) {
    const Conv2dParams s = conv2d_space_to_depth_params(p);
    phase_scatter(dxs, p.N, p.C, s.H, s.W, p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.H, p.W,
                  as_channels(p.C, p.stride_h * p.stride_w, s.H * s.W), dx);
}

void conv2d_space_to_depth_split_weight(const Conv2dParams& p, const float* w, float* ws) {
    const Conv2dParams s = conv2d_space_to_depth_params(p);
    const int64_t Cg = p.C_per_group();
    phase_gather(w, p.K, Cg, p.R, p.S, p.stride_h, p.stride_w, 0, 0, s.R, s.S,
                 as_channels(Cg, p.stride_h * p.stride_w, s.R * s.S), ws);
}

void conv2d_space_to_depth_merge_weight(const Conv2dParams& p, const float* dws, float* dw) {
    const Conv2dParams s = conv2d_space_to_depth_params(p);
    const int64_t Cg = p.C_per_group();
    phase_scatter(dws, p.K, Cg, s.R, s.S, p.stride_h, p.stride_w, 0, 0, p.R, p.S,
                  as_channels(Cg, p.stride_h * p.stride_w, s.R * s.S), dw);
}

}  // namespace fastconv
