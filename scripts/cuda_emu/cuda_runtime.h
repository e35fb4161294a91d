// A CPU stand-in for <cuda_runtime.h>, for checking the CUDA code's logic on machines without a GPU
// (scripts/cuda_emu/build.sh). It compiles cuda/*.cu as C++20: a launch runs every block in turn on
// blockDim real threads (a pool kept between launches), __syncthreads is a barrier, __shared__ arrays
// are statics (one block runs at a time), warp shuffles exchange through a per-warp barrier, device
// memory is host memory.
// It checks indexing, bounds, synchronization structure and results; it says nothing about speed,
// the GPU memory model, occupancy or real warp-level behaviour.
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

// ---- language extensions ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

using std::isnan;

namespace fastconv_emu {
inline thread_local dim3 thread_idx, block_idx;
inline dim3 block_dim, grid_dim;
inline std::barrier<>* block_barrier = nullptr;
struct Warp {
    std::barrier<> sync{32};
    float slots[32];
};
inline std::vector<std::unique_ptr<Warp>> warps;
inline std::mutex atomic_mutex;

inline unsigned flat_thread() { return thread_idx.x + block_dim.x * (thread_idx.y + block_dim.y * thread_idx.z); }

// The emulated threads of a block: OS threads kept between launches (creating 256 threads per launch
// cost more than most kernels' work). run(n, job) calls job(t) on workers 0..n-1 and returns when
// all have finished; launches are serialized (the emulation's globals describe one launch).
class ThreadPool {
   public:
    ~ThreadPool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
        }
        start_.notify_all();
        for (auto& w : workers_) w.join();
    }

    void run(unsigned n, std::function<void(unsigned)> job) {
        std::unique_lock<std::mutex> lock(mutex_);
        while (workers_.size() < n) {
            const unsigned id = unsigned(workers_.size());
            workers_.emplace_back([this, id] { work(id); });
        }
        job_ = std::move(job);
        active_ = remaining_ = n;
        ++generation_;
        start_.notify_all();
        done_.wait(lock, [this] { return remaining_ == 0; });
        job_ = nullptr;
    }

   private:
    void work(unsigned id) {
        uint64_t seen = 0;
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            start_.wait(lock, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
            if (id >= active_) continue;
            lock.unlock();
            job_(id);  // job_ is not reassigned before every active worker has finished
            lock.lock();
            if (--remaining_ == 0) done_.notify_one();
        }
    }

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable start_, done_;
    std::function<void(unsigned)> job_;
    uint64_t generation_ = 0;
    unsigned active_ = 0, remaining_ = 0;
    bool stop_ = false;
};

inline ThreadPool& thread_pool() {
    static ThreadPool pool;
    return pool;
}
inline std::mutex launch_mutex;

template <typename... P>
struct Launch {
    dim3 grid, block;
    void (*kernel)(P...);
    template <typename... A>
    void operator()(A&&... args) const {
        std::lock_guard<std::mutex> launch_lock(launch_mutex);
        const unsigned n = block.x * block.y * block.z;
        std::barrier<> barrier(n);
        block_barrier = &barrier;
        block_dim = block;
        grid_dim = grid;
        warps.clear();
        for (unsigned w = 0; w < (n + 31) / 32; ++w) warps.push_back(std::make_unique<Warp>());
        const std::tuple<P...> params(args...);
        thread_pool().run(n, [&](unsigned t) {
            thread_idx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
            for (unsigned bz = 0; bz < grid.z; ++bz)
                for (unsigned by = 0; by < grid.y; ++by)
                    for (unsigned bx = 0; bx < grid.x; ++bx) {
                        block_idx = dim3(bx, by, bz);
                        std::apply(kernel, params);
                        barrier.arrive_and_wait();  // the block's statics are reused by the next block
                    }
        });
        block_barrier = nullptr;
    }
};

template <typename... P>
Launch<P...> launch(dim3 grid, dim3 block, void (*kernel)(P...)) {
    return Launch<P...>{grid, block, kernel};
}
}  // namespace fastconv_emu

#define threadIdx (::fastconv_emu::thread_idx)
#define blockIdx (::fastconv_emu::block_idx)
#define blockDim (::fastconv_emu::block_dim)
#define gridDim (::fastconv_emu::grid_dim)
#define FASTCONV_LAUNCH(grid, block, ...) ::fastconv_emu::launch(grid, block, __VA_ARGS__)

inline void __syncthreads() { fastconv_emu::block_barrier->arrive_and_wait(); }

inline float __shfl_down_sync(unsigned, float v, int offset) {
    const unsigned t = fastconv_emu::flat_thread(), lane = t % 32;
    fastconv_emu::Warp& w = *fastconv_emu::warps[t / 32];
    w.slots[lane] = v;
    w.sync.arrive_and_wait();
    const float r = lane + offset < 32 ? w.slots[lane + offset] : v;
    w.sync.arrive_and_wait();
    return r;
}

inline float atomicAdd(float* address, float v) {
    std::lock_guard<std::mutex> lock(fastconv_emu::atomic_mutex);
    const float old = *address;
    *address = old + v;
    return old;
}

// ---- runtime API ----
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
struct CUstream_st;
using cudaStream_t = CUstream_st*;
using cudaEvent_t = void*;
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)
#define cudaEventDisableTiming 0x2
struct cudaDeviceProp {
    char name[256];
};

inline const char* cudaGetErrorString(cudaError_t e) {
    return e == cudaSuccess ? "no error" : e == cudaErrorMemoryAllocation ? "out of memory" : "invalid value";
}
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* n) { return *n = 1, cudaSuccess; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
    std::strcpy(p->name, "CPU emulator (scripts/cuda_emu)");
    return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* v) { return *v = 13000, cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaGetDevice(int* d) { return *d = 0, cudaSuccess; }
inline cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidValue; }
inline cudaError_t cudaMalloc(void** p, size_t bytes) {
    if (bytes > (size_t(8) << 30)) return cudaErrorMemoryAllocation;  // overcommit would hide OOM handling
    *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
template <typename T>
cudaError_t cudaMalloc(T** p, size_t bytes) { return cudaMalloc(reinterpret_cast<void**>(p), bytes); }
inline cudaError_t cudaFree(void* p) { return std::free(p), cudaSuccess; }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) { return std::memcpy(d, s, n), cudaSuccess; }
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) {
    return std::memcpy(d, s, n), cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t) { return std::memset(d, v, n), cudaSuccess; }
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return *e = nullptr, cudaSuccess; }
inline cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
inline cudaError_t cudaEventDestroy(cudaEvent_t) { return cudaSuccess; }
