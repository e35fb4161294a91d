// AVX2/FMA build of the Winograd tile transforms (winograd_transforms.h): the same source as the
// portable path, compiled with -mavx2 -mfma so each vec8 operation is one ymm instruction.
#include "conv/winograd_transforms.h"

namespace fastconv {

void winograd_input_transform_avx2(const WinogradPlan& p, const float* in, int64_t tile0, int64_t ntiles,
                                   int64_t ld, float* V) {
    if (p.m == 2)
        input_transform<2>(p, in, tile0, ntiles, ld, V);
    else
        input_transform<4>(p, in, tile0, ntiles, ld, V);
}

void winograd_output_transform_avx2(const WinogradPlan& p, const float* M, int64_t tile0, int64_t ntiles,
                                    int64_t ld, const float* bias, float* out) {
    if (p.m == 2)
        output_transform<2>(p, M, tile0, ntiles, ld, bias, out);
    else
        output_transform<4>(p, M, tile0, ntiles, ld, bias, out);
}

void winograd_kernel_transform_avx2(int m, const float* w, int64_t K, int64_t C, bool input_grad, int64_t o0,
                                    int64_t o1, float* U) {
    if (m == 2)
        kernel_transform<2>(w, K, C, input_grad, o0, o1, U);
    else
        kernel_transform<4>(w, K, C, input_grad, o0, o1, U);
}

}  // namespace fastconv
