// AVX2/FMA build of the lane-layout FFT kernels (fft_engine.h); called only when use_avx2().
#include <cstring>

#include "conv/fft.h"

namespace fastconv::fft_avx2 {
#include "conv/fft_engine.h"
}  // namespace fastconv::fft_avx2
