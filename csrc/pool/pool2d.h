// 2-D pooling kernels (NCHW float32, semantics of PyTorch's CPU max_pool2d / avg_pool2d /
// adaptive_avg_pool2d and their backward passes). Arrays are dense and C-contiguous:
//   x, dx (N, C, H, W)     y, dy, indices (N, C, P, Q)
// indices are int64 offsets into the flattened H*W plane of each (n, c), as PyTorch returns them.
// Outputs are fully overwritten; inputs are never modified. Forward passes run in parallel over
// the N*C*P output rows, backward passes over the N*C planes (each plane stays in one thread, so
// no atomics). The forward AVX2 path (pool2d_avx2.cpp) covers the interior of each output row for
// strides 1 and 2; edges, other strides and CPUs without AVX2 use the portable loops. The average
// backward is written in gather form with contiguous inner loops that the compiler vectorises.
#pragma once

#include <cstdint>

#include "common/params.h"

namespace fastconv {

// Shapes only, for the passes that do not need the window: adaptive pooling (windows follow from
// H/P and W/Q) and max-pooling backward (which follows the saved indices).
struct PoolShape {
    int64_t N = 0, C = 0, H = 0, W = 0;  // input (N, C, H, W)
    int64_t P = 0, Q = 0;                // output (N, C, P, Q)

    void validate() const {
        if (N < 0 || C < 1 || H < 1 || W < 1) throw std::invalid_argument("input: sizes must be positive (N may be 0)");
        if (P < 1 || Q < 1) throw std::invalid_argument("output_size: must be >= 1");
        checked_mul(checked_mul(N, C, "input"), checked_mul(H, W, "input"), "input");
        checked_mul(checked_mul(N, C, "output"), checked_mul(P, Q, "output"), "output");
    }
};

// y = max over each window's taps (dilated by p.dil_h/dil_w; a NaN wins); indices may be nullptr.
void max_pool2d_forward(const Pool2dParams& p, const float* x, float* y, int64_t* indices);

// dx = 0, then dx[plane][indices[i]] += dy[plane][i]. Throws std::invalid_argument when an index
// is outside [0, H*W) (dx is then partially written).
void max_pool2d_backward(const PoolShape& s, const float* dy, const int64_t* indices, float* dx);

// y = window sum / divisor, the divisor as PyTorch: p.divisor_override when set, else the window
// clipped to the padded input (count_include_pad) or to the input itself.
void avg_pool2d_forward(const Pool2dParams& p, const float* x, float* y);
void avg_pool2d_backward(const Pool2dParams& p, const float* dy, float* dx);

// Window of output p along an axis of length H pooled to P: [floor(p*H/P), ceil((p+1)*H/P)).
void adaptive_avg_pool2d_forward(const PoolShape& s, const float* x, float* y);
void adaptive_avg_pool2d_backward(const PoolShape& s, const float* dy, float* dx);

}  // namespace fastconv
