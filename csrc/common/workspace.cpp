#include "common/workspace.h"

#include <atomic>
#include <cstdlib>
#include <new>
#include <stdexcept>

namespace fastconv {

static std::atomic<int64_t> workspace_limit{int64_t(256) << 20};

int64_t get_workspace_limit() { return workspace_limit.load(std::memory_order_relaxed); }

void set_workspace_limit(int64_t bytes) {
    if (bytes < (int64_t(1) << 20)) throw std::invalid_argument("workspace limit must be at least 1 MiB");
    workspace_limit.store(bytes, std::memory_order_relaxed);
}

namespace {
constexpr int kSlots = 8;
struct Buffer {
    float* data = nullptr;
    size_t capacity = 0;
};
struct ThreadBuffers {
    Buffer slots[kSlots];
    ~ThreadBuffers() {
        for (auto& b : slots) std::free(b.data);
    }
};
thread_local ThreadBuffers buffers;
}  // namespace

float* thread_scratch(int slot, size_t floats) {
    if (slot < 0 || slot >= kSlots) throw std::out_of_range("thread_scratch: bad slot");
    Buffer& b = buffers.slots[slot];
    if (floats <= b.capacity) return b.data;
    std::free(b.data);
    b.data = nullptr;
    b.capacity = 0;
    const size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
    void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
    if (!p) throw std::bad_alloc();
    b.data = static_cast<float*>(p);
    b.capacity = floats;
    return b.data;
}

void release_thread_scratch() {
    for (auto& b : buffers.slots) {
        std::free(b.data);
        b = Buffer{};
    }
}

}  // namespace fastconv
