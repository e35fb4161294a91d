#include "data/resize.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/parallel.h"

namespace fastconv {

namespace {

// For each output index along one axis: the two source indices and the weight of the second.
struct AxisTaps {
    std::vector<int64_t> lo, hi;
    std::vector<float> frac;

    AxisTaps(int64_t n_in, int64_t n_out) : lo(n_out), hi(n_out), frac(n_out) {
        const double scale = double(n_in) / double(n_out);
        for (int64_t o = 0; o < n_out; ++o) {
            const double src = std::max((double(o) + 0.5) * scale - 0.5, 0.0);
            lo[o] = std::min<int64_t>(int64_t(src), n_in - 1);
            hi[o] = std::min<int64_t>(lo[o] + 1, n_in - 1);
            frac[o] = float(src - double(lo[o]));
        }
    }
};

}  // namespace

void resize_bilinear(const float* x, int64_t planes, int64_t H, int64_t W, int64_t out_h, int64_t out_w, float* y) {
    const AxisTaps rows(H, out_h), cols(W, out_w);
    // Per plane: each source row is interpolated along W once (into `wide`), then output rows
    // blend two of those; 28 -> 32 pixels costs about 4 multiply-adds per output pixel.
    auto body = [&](long long begin, long long end) {
        std::vector<float> wide(size_t(H * out_w));
        for (long long plane = begin; plane < end; ++plane) {
            const float* src = x + plane * H * W;
            for (int64_t h = 0; h < H; ++h) {
                const float* row = src + h * W;
                float* dst = wide.data() + h * out_w;
                for (int64_t o = 0; o < out_w; ++o) {
                    const float a = row[cols.lo[o]], b = row[cols.hi[o]];
                    dst[o] = a + cols.frac[o] * (b - a);
                }
            }
            float* out = y + plane * out_h * out_w;
            for (int64_t o = 0; o < out_h; ++o) {
                const float* a = wide.data() + rows.lo[o] * out_w;
                const float* b = wide.data() + rows.hi[o] * out_w;
                const float f = rows.frac[o];
                float* dst = out + o * out_w;
                for (int64_t q = 0; q < out_w; ++q) dst[q] = a[q] + f * (b[q] - a[q]);
            }
        }
    };
    if (planes * out_h * out_w < kParallelMin) {
        ScopedDenormalsOff ftz;
        body(0, planes);
    } else {
        parallel_for(planes, body);
    }
}

}  // namespace fastconv
