// k-max pooling forward. Each row: map values to uint32 keys with the same total order, find the
// k-th largest key (a min-heap pass for small k, nth_element on a per-thread copy otherwise), then
// one pass in order keeps every key above it and the earliest keys equal to it until k are kept.
// Napkin: ~3 passes over a row that sits in L1/L2 (L <= 8K floats per 32 KiB); the numpy version
// needed ~15 passes over the whole tensor and ran at 0.06-0.1 GB/s (benchmarks/bench_kmax.py).
#include "kmax/kmax_pool.h"

#include <algorithm>
#include <cstring>

#include "common/parallel.h"
#include "common/workspace.h"

namespace fastconv {

namespace {

// Monotone map float -> uint32: negative floats get all bits flipped, the others their sign bit
// set. -0.0 is folded into +0.0 and every NaN into one quiet NaN above +inf.
inline uint32_t order_key(float v) {
    if (v != v) v = __builtin_nanf("");
    v += 0.0f;
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

constexpr int kScratchSlot = 0;

// Small k: one pass with a min-heap of the k largest keys seen so far; most elements cost one
// compare against its root. Large k: nth_element (introselect), a few passes over the row.
inline bool small_k(int64_t k, int64_t L) { return k * 16 <= L; }

// Both leave the k largest keys in keys[0 .. k) and return the k-th largest.
uint32_t kth_largest_heap(const float* row, int64_t L, int64_t k, uint32_t* keys) {
    const auto greater = [](uint32_t a, uint32_t b) { return a > b; };
    for (int64_t i = 0; i < k; ++i) keys[i] = order_key(row[i]);
    std::make_heap(keys, keys + k, greater);
    for (int64_t i = k; i < L; ++i) {
        const uint32_t key = order_key(row[i]);
        if (key > keys[0]) {
            std::pop_heap(keys, keys + k, greater);
            keys[k - 1] = key;
            std::push_heap(keys, keys + k, greater);
        }
    }
    return keys[0];
}

uint32_t kth_largest_select(const float* row, int64_t L, int64_t k, uint32_t* keys) {
    for (int64_t i = 0; i < L; ++i) keys[i] = order_key(row[i]);
    // Descending order: the k largest end up in front, the k-th largest at index k - 1.
    std::nth_element(keys, keys + (k - 1), keys + L, [](uint32_t a, uint32_t b) { return a > b; });
    return keys[k - 1];
}

}  // namespace

void kmax_pool_forward(const float* x, int64_t rows, int64_t L, int64_t k, float* values, int64_t* indices) {
    parallel_for(rows, [&](long long begin, long long end) {
        uint32_t* keys = reinterpret_cast<uint32_t*>(thread_scratch(kScratchSlot, static_cast<size_t>(L)));
        for (long long r = begin; r < end; ++r) {
            const float* row = x + r * L;
            float* out_v = values + r * k;
            int64_t* out_i = indices + r * k;
            if (k == L) {
                for (int64_t i = 0; i < L; ++i) {
                    out_v[i] = row[i];
                    out_i[i] = i;
                }
                continue;
            }
            const uint32_t kth = small_k(k, L) ? kth_largest_heap(row, L, k, keys) : kth_largest_select(row, L, k, keys);
            // keys[0 .. k) now hold the multiset of the k largest keys: count those above kth.
            int64_t above = 0;
            for (int64_t i = 0; i < k; ++i) above += keys[i] > kth;
            int64_t ties_left = k - above, n = 0;
            for (int64_t i = 0; i < L && n < k; ++i) {
                const uint32_t key = order_key(row[i]);
                if (key > kth || (key == kth && ties_left > 0)) {
                    ties_left -= key == kth;
                    out_v[n] = row[i];
                    out_i[n] = i;
                    ++n;
                }
            }
        }
    });
}

}  // namespace fastconv
