// AVX2/FMA build of the FFT convolution's inner loops (conv2d_fft_kernels.h); called only when use_avx2().
#include <algorithm>
#include <cstring>

#include <immintrin.h>

#include "conv/conv2d_fft.h"

namespace fastconv::conv_fft_avx2 {
#include "conv/conv2d_fft_kernels.h"
}  // namespace fastconv::conv_fft_avx2
