// Scratch memory for kernels. Large temporaries are kept alive per thread and reused: a fresh
// malloc of a big block is an mmap with page faults and zeroing on every call.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastconv {

// Slots: 0-5 belong to conv/pool algorithms, 6-7 to sgemm (which conv algorithms call while
// holding their own slots).

// Upper bound on the scratch bytes one call may use (im2col chunks the batch to stay under it).
int64_t get_workspace_limit();
void set_workspace_limit(int64_t bytes);  // bytes >= 1 MiB

// A 64-byte aligned float buffer owned by the calling thread and reused across calls; `slot`
// distinguishes buffers that must be alive at the same time. Contents are uninitialised.
// Throws std::bad_alloc when the memory cannot be had.
float* thread_scratch(int slot, size_t floats);

// Frees every cached buffer of the calling thread (for tests and leak checks).
void release_thread_scratch();

}  // namespace fastconv
