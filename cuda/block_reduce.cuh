// Deterministic block-wide reductions for kernels launched with 256 threads in x: every thread
// stores its value, 16 threads each combine 16 in a fixed order, thread 0 combines those 16.
// Three barriers and no warp shuffles, which keeps the CPU stand-in (scripts/cuda_emu), where each
// barrier wakes every emulated thread, fast enough to train a small model in CI.
#pragma once

#include <cuda_runtime.h>

#include <cmath>

namespace fastconv {

constexpr int kReduceThreads = 256;

struct SumOp {
    __device__ float operator()(float a, float b) const { return a + b; }
};
struct MaxOp {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// Combines `v` over the block (blockDim.x == kReduceThreads); the result is returned in every thread.
// Safe to call repeatedly: a slot is rewritten only after every thread has passed the barrier behind
// the last read of it.
template <typename Op>
__device__ float block_reduce(float v, Op op) {
    __shared__ float values[kReduceThreads];
    __shared__ float partial[16];
    __shared__ float result;
    values[threadIdx.x] = v;
    __syncthreads();
    if (threadIdx.x < 16) {
        float acc = values[threadIdx.x * 16];
        for (int i = 1; i < 16; ++i) acc = op(acc, values[threadIdx.x * 16 + i]);
        partial[threadIdx.x] = acc;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float acc = partial[0];
        for (int i = 1; i < 16; ++i) acc = op(acc, partial[i]);
        result = acc;
    }
    __syncthreads();
    return result;
}

}  // namespace fastconv
