// AVX2/FMA build of the batch-norm passes (nn/batch_norm_kernels.h); called only when use_avx2().
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/parallel.h"
#include "nn/batch_norm.h"

namespace fastconv::bn_avx2 {
#include "nn/batch_norm_kernels.h"
}  // namespace fastconv::bn_avx2
