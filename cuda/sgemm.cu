// SGEMM: C = alpha * op(A) @ op(B) + beta * C in FP32 (no TF32), batched, all four transpose cases.
//
// One 256-thread block computes a 128 x 128 tile of C, walking K in steps of 8. Each thread keeps an
// 8 x 8 sub-tile in registers (64 FMAs per 4 shared-memory float4 loads). Its rows are
// {ty*4 .. ty*4+3, 64+ty*4 .. 64+ty*4+3} and its columns likewise with tx, so that a quarter warp's
// float4 reads of a shared-memory row are consecutive (no bank conflicts). Tiles are stored k-major
// in shared memory (As[k][m], Bs[k][n]); operands whose contiguous axis is K are transposed on the
// way in, and their rows are padded by 4 floats so those scalar stores are conflict-free too.
// Global loads are float4 when the operand is 16-byte aligned with a leading dimension divisible
// by 4, else scalar; every load is bounds-checked (zeros outside), every store too. Two shared
// buffers: the next K-tile is fetched into registers while the current one is multiplied.
//
// Napkin math: per K-step of 8 a block loads 2 x 128 x 8 floats (8 KiB) and does 2 x 128^2 x 8
// FLOPs, 32 FLOP/byte from L2, above the H100's FP32 ridge point (67 TFLOP/s / ~10 TB/s L2).
// Not yet measured on a GPU (see scripts/gpu_check.sh).
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda_check.cuh"
#include "launch.h"

namespace fastconv {
namespace {

constexpr int kBM = 128, kBN = 128, kBK = 8, kPad = 4, kThreads = 256;
constexpr int64_t kMaxGridY = 65535, kMaxGridZ = 65535;

// Four consecutive elements base[i .. i+3] (zero past `limit`), as a float4 load when allowed.
__device__ __forceinline__ float4 load4(const float* __restrict__ base, int64_t i, int64_t limit, bool vec) {
    if (vec && i + 3 < limit) return *reinterpret_cast<const float4*>(base + i);
    float4 v;
    v.x = i < limit ? base[i] : 0.0f;
    v.y = i + 1 < limit ? base[i + 1] : 0.0f;
    v.z = i + 2 < limit ? base[i + 2] : 0.0f;
    v.w = i + 3 < limit ? base[i + 3] : 0.0f;
    return v;
}

// TA: A is stored K x M (op(A) = A^T); TB: B is stored N x K. vec_*: float4 access is safe.
template <bool TA, bool TB>
__global__ void __launch_bounds__(kThreads, 2)
    sgemm_kernel(SgemmArgs p, bool vec_a, bool vec_b, bool vec_c) {
    __shared__ __align__(16) float As[2][kBK][kBM + kPad];
    __shared__ __align__(16) float Bs[2][kBK][kBN + kPad];

    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int64_t m0 = int64_t(blockIdx.y) * kBM, n0 = int64_t(blockIdx.x) * kBN;
    const float* __restrict__ A = p.A + int64_t(blockIdx.z) * p.stride_a;
    const float* __restrict__ B = p.B + int64_t(blockIdx.z) * p.stride_b;
    float* __restrict__ C = p.C + int64_t(blockIdx.z) * p.stride_c;

    // Loader roles. K-contiguous operand: thread loads row tid/2, k offset (tid%2)*4.
    // M- or N-contiguous operand: thread loads k row tid/32, offset (tid%32)*4.
    const int lr = tid / 2, lk = (tid % 2) * 4;
    const int lkr = tid / 32, lc = (tid % 32) * 4;

    auto load_a = [&](int64_t k0) -> float4 {
        if (!TA) {  // A[m * lda + k]
            const int64_t m = m0 + lr;
            if (m >= p.M) return make_float4(0.f, 0.f, 0.f, 0.f);
            return load4(A + m * p.lda, k0 + lk, p.K, vec_a);
        } else {  // A[k * lda + m]
            const int64_t k = k0 + lkr;
            if (k >= p.K) return make_float4(0.f, 0.f, 0.f, 0.f);
            return load4(A + k * p.lda, m0 + lc, p.M, vec_a);
        }
    };
    auto load_b = [&](int64_t k0) -> float4 {
        if (!TB) {  // B[k * ldb + n]
            const int64_t k = k0 + lkr;
            if (k >= p.K) return make_float4(0.f, 0.f, 0.f, 0.f);
            return load4(B + k * p.ldb, n0 + lc, p.N, vec_b);
        } else {  // B[n * ldb + k]
            const int64_t n = n0 + lr;
            if (n >= p.N) return make_float4(0.f, 0.f, 0.f, 0.f);
            return load4(B + n * p.ldb, k0 + lk, p.K, vec_b);
        }
    };
    auto store_a = [&](int buf, float4 v) {
        if (!TA) {
            As[buf][lk + 0][lr] = v.x;
            As[buf][lk + 1][lr] = v.y;
            As[buf][lk + 2][lr] = v.z;
            As[buf][lk + 3][lr] = v.w;
        } else {
            *reinterpret_cast<float4*>(&As[buf][lkr][lc]) = v;
        }
    };
    auto store_b = [&](int buf, float4 v) {
        if (!TB) {
            *reinterpret_cast<float4*>(&Bs[buf][lkr][lc]) = v;
        } else {
            Bs[buf][lk + 0][lr] = v.x;
            Bs[buf][lk + 1][lr] = v.y;
            Bs[buf][lk + 2][lr] = v.z;
            Bs[buf][lk + 3][lr] = v.w;
        }
    };

    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;

    store_a(0, load_a(0));
    store_b(0, load_b(0));
    __syncthreads();

    const int64_t k_tiles = (p.K + kBK - 1) / kBK;
    for (int64_t kt = 0; kt < k_tiles; ++kt) {
        const int cur = int(kt & 1);
        const bool has_next = kt + 1 < k_tiles;
        float4 next_a = make_float4(0.f, 0.f, 0.f, 0.f), next_b = next_a;
        if (has_next) {  // issue the next tile's global loads before the math that hides them
            next_a = load_a((kt + 1) * kBK);
            next_b = load_b((kt + 1) * kBK);
        }
#pragma unroll
        for (int k = 0; k < kBK; ++k) {
            const float4 a_lo = *reinterpret_cast<const float4*>(&As[cur][k][ty * 4]);
            const float4 a_hi = *reinterpret_cast<const float4*>(&As[cur][k][64 + ty * 4]);
            const float4 b_lo = *reinterpret_cast<const float4*>(&Bs[cur][k][tx * 4]);
            const float4 b_hi = *reinterpret_cast<const float4*>(&Bs[cur][k][64 + tx * 4]);
            const float a[8] = {a_lo.x, a_lo.y, a_lo.z, a_lo.w, a_hi.x, a_hi.y, a_hi.z, a_hi.w};
            const float b[8] = {b_lo.x, b_lo.y, b_lo.z, b_lo.w, b_hi.x, b_hi.y, b_hi.z, b_hi.w};
#pragma unroll
            for (int i = 0; i < 8; ++i)
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (has_next) {  // the other buffer was last read before the previous __syncthreads
            store_a(cur ^ 1, next_a);
            store_b(cur ^ 1, next_b);
        }
        __syncthreads();
    }

    const float alpha = p.alpha, beta = p.beta;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int64_t m = m0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + (i - 4));
        if (m >= p.M) continue;
        float* __restrict__ c_row = C + m * p.ldc;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int64_t n = n0 + half * 64 + tx * 4;
            const float* v = &acc[i][half * 4];
            if (vec_c && n + 3 < p.N) {
                float4 out = make_float4(alpha * v[0], alpha * v[1], alpha * v[2], alpha * v[3]);
                if (beta != 0.0f) {  // beta == 0 never reads C (it may hold NaN)
                    const float4 old = *reinterpret_cast<const float4*>(c_row + n);
                    out.x += beta * old.x;
                    out.y += beta * old.y;
                    out.z += beta * old.z;
                    out.w += beta * old.w;
                }
                *reinterpret_cast<float4*>(c_row + n) = out;
            } else {
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    if (n + j >= p.N) break;
                    float out = alpha * v[j];
                    if (beta != 0.0f) out += beta * c_row[n + j];
                    c_row[n + j] = out;
                }
            }
        }
    }
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

}  // namespace

void cuda_sgemm(const SgemmArgs& args) {
    if (args.M < 0 || args.N < 0 || args.K < 0 || args.batch < 0)
        throw std::invalid_argument("sgemm: sizes must be >= 0");
    if (args.M == 0 || args.N == 0 || args.batch == 0) return;
    if ((args.N + kBN - 1) / kBN > INT32_MAX) throw std::invalid_argument("sgemm: N is too large for one launch");
    // Large problems are split on the host so each launch stays inside the grid limits
    // (y: 65535 row tiles, z: 65535 batch entries); each chunk is an independent GEMM.
    const int64_t rows_per_launch = kMaxGridY * kBM;
    for (int64_t b0 = 0; b0 < args.batch; b0 += kMaxGridZ) {
        for (int64_t r0 = 0; r0 < args.M; r0 += rows_per_launch) {
            SgemmArgs p = args;
            p.batch = std::min(kMaxGridZ, args.batch - b0);
            p.M = std::min(rows_per_launch, args.M - r0);
            p.A = args.A + b0 * args.stride_a + (args.trans_a ? r0 : r0 * args.lda);
            p.B = args.B + b0 * args.stride_b;
            p.C = args.C + b0 * args.stride_c + r0 * args.ldc;
            const bool batched = p.batch > 1;
            const bool vec_a = aligned16(p.A) && p.lda % 4 == 0 && (!batched || p.stride_a % 4 == 0);
            const bool vec_b = aligned16(p.B) && p.ldb % 4 == 0 && (!batched || p.stride_b % 4 == 0);
            const bool vec_c = aligned16(p.C) && p.ldc % 4 == 0 && (!batched || p.stride_c % 4 == 0);
            const dim3 grid(unsigned((p.N + kBN - 1) / kBN), unsigned((p.M + kBM - 1) / kBM), unsigned(p.batch));
            if (!p.trans_a && !p.trans_b)
                FASTCONV_LAUNCH(grid, kThreads, sgemm_kernel<false, false>)(p, vec_a, vec_b, vec_c);
            else if (!p.trans_a && p.trans_b)
                FASTCONV_LAUNCH(grid, kThreads, sgemm_kernel<false, true>)(p, vec_a, vec_b, vec_c);
            else if (p.trans_a && !p.trans_b)
                FASTCONV_LAUNCH(grid, kThreads, sgemm_kernel<true, false>)(p, vec_a, vec_b, vec_c);
            else
                FASTCONV_LAUNCH(grid, kThreads, sgemm_kernel<true, true>)(p, vec_a, vec_b, vec_c);
            FASTCONV_CUDA_CHECK_LAUNCH();
        }
    }
}

}  // namespace fastconv
