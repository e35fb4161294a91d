// Input transforms of fastconv.data.
#pragma once

#include <cstdint>

namespace fastconv {

// Bilinear resize of (planes, H, W) float32 images to (planes, out_h, out_w), as torch's
// interpolate(mode="bilinear", align_corners=False) without antialiasing: output pixel o samples
// source coordinate max((o + 0.5) * in / out - 0.5, 0) on each axis (half-pixel centres, clamped).
void resize_bilinear(const float* x, int64_t planes, int64_t H, int64_t W, int64_t out_h, int64_t out_w, float* y);

}  // namespace fastconv
