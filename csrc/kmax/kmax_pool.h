// k-max pooling (Kalchbrenner et al. 2014): per row of length L, keep the k largest values in their
// original order. Ties go to the earlier position; NaN ranks above +inf; -0.0 equals +0.0.
#pragma once

#include <cstdint>

namespace fastconv {

// x: (rows, L) C-contiguous float32; values: (rows, k) float32; indices: (rows, k) int64, increasing
// within each row. 1 <= k <= L. Outputs are fully overwritten.
void kmax_pool_forward(const float* x, int64_t rows, int64_t L, int64_t k, float* values, int64_t* indices);

}  // namespace fastconv
