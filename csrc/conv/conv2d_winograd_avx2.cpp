// AVX2/FMA build of the Winograd tile transforms (winograd_transforms.h): the same source as the
// portable path, compiled with -mavx2 -mfma so each vec8 operation is one ymm instruction.
#include "conv/winograd_transforms.h"

namespace fastconv {

void winograd_input_transform_avx2(const WinogradPlan& p, const float* in, int64_t tile0, int64_t ntiles,
                                   int64_t ld, int64_t xi_stride, float* V) {
    if (p.m == 2)
        input_transform<2>(p, in, tile0, ntiles, ld, xi_stride, V);
    else
        input_transform<4>(p, in, tile0, ntiles, ld, xi_stride, V);
}

void winograd_output_transform_avx2(const WinogradPlan& p, const float* M, int64_t tile0, int64_t ntiles,
                                    int64_t ld, int64_t xi_stride, const float* bias, float* out) {
    if (p.m == 2)
        output_transform<2>(p, M, tile0, ntiles, ld, xi_stride, bias, out);
    else
        output_transform<4>(p, M, tile0, ntiles, ld, xi_stride, bias, out);
}

void winograd_kernel_transform_avx2(int m, const float* w, int64_t K, int64_t C, bool input_grad, int64_t o0,
                                    int64_t o1, int64_t xi_stride, float* U) {
    if (m == 2)
        kernel_transform<2>(w, K, C, input_grad, o0, o1, xi_stride, U);
    else
        kernel_transform<4>(w, K, C, input_grad, o0, o1, xi_stride, U);
}

}  // namespace fastconv
