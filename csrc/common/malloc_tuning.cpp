#include "common/malloc_tuning.h"

#include <climits>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace fastconv {

// Why: a training step allocates and frees activations of a few MiB (LeNet at batch 256: about
// 17 MiB per step). glibc serves blocks above its mmap threshold (128 KiB until its dynamic rule
// raises it) with fresh mmap()s, so every step page-faults all of them in again: 1,593 faults and
// 12.9 ms per LeNet step instead of 1 and 9.6 ms (2 threads, benchmarks/results/*_malloc.md). Fixed thresholds keep those blocks
// in the heap, where the next step reuses them.
bool tune_malloc(std::size_t mmap_threshold, std::size_t trim_threshold) {
#if defined(__GLIBC__)
    if (mmap_threshold > static_cast<std::size_t>(INT_MAX) || trim_threshold > static_cast<std::size_t>(INT_MAX))
        return false;
    return mallopt(M_MMAP_THRESHOLD, static_cast<int>(mmap_threshold)) == 1 &&
           mallopt(M_TRIM_THRESHOLD, static_cast<int>(trim_threshold)) == 1;
#else
    (void)mmap_threshold;
    (void)trim_threshold;
    return false;
#endif
}

}  // namespace fastconv
