#pragma once

#include <cstddef>

namespace fastconv {

// Keep freed buffers of up to `mmap_threshold` bytes in the heap instead of unmapping them, and
// return heap memory to the OS only above `trim_threshold` free bytes (glibc's mallopt). Returns
// false where the C library has no such knobs (not glibc).
bool tune_malloc(std::size_t mmap_threshold, std::size_t trim_threshold);

}  // namespace fastconv
