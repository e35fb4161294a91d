// Device memory: a caching allocator (one set of size-bucketed free lists per device) and the
// copies Array needs. Everything runs on the legacy default stream, so a block freed on the host
// and handed out again is only touched by work queued after the work that used it before.
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "cuda_check.cuh"
#include "launch.h"

namespace fastconv {

DeviceGuard::DeviceGuard(int device) : previous_(0) {
    FASTCONV_CUDA_CHECK(cudaGetDevice(&previous_));
    if (device != previous_) FASTCONV_CUDA_CHECK(cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() { cudaSetDevice(previous_); }  // never throws from a destructor

namespace {

// Small blocks are rounded to 512 bytes (keeps float4 alignment), large ones to 1 MiB so a
// slightly different size still finds its bucket.
size_t round_size(size_t bytes) {
    const size_t unit = bytes < (size_t(1) << 20) ? 512 : (size_t(1) << 20);
    return (bytes + unit - 1) / unit * unit;
}

class CachingAllocator {
   public:
    void* alloc(size_t bytes) {
        if (bytes == 0) return nullptr;
        const size_t size = round_size(bytes);
        int device = 0;
        FASTCONV_CUDA_CHECK(cudaGetDevice(&device));
        std::lock_guard<std::mutex> lock(mutex_);
        auto& bucket = free_[device][size];
        void* ptr = nullptr;
        if (!bucket.empty()) {
            ptr = bucket.back();
            bucket.pop_back();
            cached_ -= size;
        } else {
            cudaError_t status = cudaMalloc(&ptr, size);
            if (status == cudaErrorMemoryAllocation) {
                cudaGetLastError();
                release_locked(device);  // give the cached blocks back to the driver, then retry once
                status = cudaMalloc(&ptr, size);
            }
            FASTCONV_CUDA_CHECK(status);  // out of memory -> std::bad_alloc
        }
        live_[ptr] = Block{size, device};
        allocated_ += size;
        return ptr;
    }

    void free(void* ptr) {
        if (ptr == nullptr) return;
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = live_.find(ptr);
        if (it == live_.end()) return;  // not ours: nothing to do (never cudaFree a foreign pointer)
        free_[it->second.device][it->second.size].push_back(ptr);
        allocated_ -= it->second.size;
        cached_ += it->second.size;
        live_.erase(it);
    }

    void empty_cache() {
        std::lock_guard<std::mutex> lock(mutex_);
        std::vector<int> devices;
        for (const auto& entry : free_) devices.push_back(entry.first);
        for (int d : devices) release_locked(d);
    }

    size_t allocated() {
        std::lock_guard<std::mutex> lock(mutex_);
        return allocated_;
    }
    size_t cached() {
        std::lock_guard<std::mutex> lock(mutex_);
        return cached_;
    }

   private:
    struct Block {
        size_t size;
        int device;
    };

    // cudaFree every cached block of `device` (the caller holds the mutex).
    void release_locked(int device) {
        auto found = free_.find(device);
        if (found == free_.end()) return;
        DeviceGuard guard(device);
        for (auto& [size, blocks] : found->second) {
            for (void* p : blocks) {
                FASTCONV_CUDA_CHECK(cudaFree(p));
                cached_ -= size;
            }
            blocks.clear();
        }
    }

    std::mutex mutex_;
    std::map<int, std::map<size_t, std::vector<void*>>> free_;  // device -> rounded size -> blocks
    std::unordered_map<void*, Block> live_;
    size_t allocated_ = 0, cached_ = 0;
};

// Deliberately leaked: freeing device memory during static destruction races the CUDA runtime's
// own teardown; the driver reclaims everything at process exit.
CachingAllocator& allocator() {
    static CachingAllocator* instance = new CachingAllocator();
    return *instance;
}

}  // namespace

void* cuda_alloc(size_t bytes) { return allocator().alloc(bytes); }
void cuda_free(void* ptr) { allocator().free(ptr); }
void cuda_empty_cache() { allocator().empty_cache(); }
size_t cuda_allocated_bytes() { return allocator().allocated(); }
size_t cuda_cached_bytes() { return allocator().cached(); }

void cuda_copy_to_device(void* dst, const void* src_host, size_t bytes) {
    if (bytes == 0) return;
    FASTCONV_CUDA_CHECK(cudaMemcpy(dst, src_host, bytes, cudaMemcpyHostToDevice));
}

void cuda_copy_to_host(void* dst_host, const void* src, size_t bytes) {
    if (bytes == 0) return;
    FASTCONV_CUDA_CHECK(cudaMemcpy(dst_host, src, bytes, cudaMemcpyDeviceToHost));
}

void cuda_copy_device(void* dst, const void* src, size_t bytes) {
    if (bytes == 0) return;
    FASTCONV_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cudaStreamLegacy));
}

void cuda_fill_zero(void* dst, size_t bytes) {
    if (bytes == 0) return;
    FASTCONV_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, cudaStreamLegacy));
}

void cuda_stream_wait_default(uintptr_t stream) {
    if (stream == 1) return;  // the consumer uses the legacy default stream: already ordered
    cudaStream_t consumer = stream == 2 ? cudaStreamPerThread : reinterpret_cast<cudaStream_t>(stream);
    cudaEvent_t event;
    FASTCONV_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    cudaError_t status = cudaEventRecord(event, cudaStreamLegacy);
    if (status == cudaSuccess) status = cudaStreamWaitEvent(consumer, event, 0);
    cudaEventDestroy(event);  // safe while pending: resources are released once the event completes
    FASTCONV_CUDA_CHECK(status);
}

}  // namespace fastconv
