// Implicit GEMM (forward): im2col's product Y = W @ unfold(X) with unfold(X) gathered straight into
// the SGEMM micro-kernel's packed B panels, never materialised (conv2d_implicit_gemm_avx2.cpp). The
// kernel needs AVX2/FMA, and for stride_w > 1 a phase-split copy of the input within the workspace
// limit; elsewhere (the portable path, larger inputs) the same product runs as im2col, which chunks.
#include "common/cpu_features.h"
#include "common/workspace.h"
#include "conv/conv2d.h"
#include "conv/conv2d_implicit_gemm.h"

namespace fastconv {

void conv2d_implicit_gemm_forward(const Conv2dParams& p, const float* x, const float* w, const float* bias, float* y) {
    if (p.N == 0) return;
#if !defined(FASTCONV_NO_AVX2)
    if (use_avx2() && conv2d_implicit_gemm_avx2_workspace(p) <= get_workspace_limit())
        return conv2d_implicit_gemm_forward_avx2(p, x, w, bias, y);
#endif
    conv2d_im2col_forward(p, x, w, bias, y);
}

}  // namespace fastconv
