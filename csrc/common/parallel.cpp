#include "common/parallel.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace fastconv {

static int initial_threads() {
    if (const char* env = std::getenv("FASTCONV_NUM_THREADS")) {
        const int n = std::atoi(env);
        if (n >= 1) return n;
    }
    return omp_get_max_threads();
}

static std::atomic<int>& thread_setting() {
    static std::atomic<int> threads{initial_threads()};
    return threads;
}

int get_num_threads() { return thread_setting().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
    if (n < 1) throw std::invalid_argument("num_threads must be >= 1");
    thread_setting().store(n, std::memory_order_relaxed);
}

#if defined(__x86_64__) || defined(__i386__)
static constexpr unsigned kFtzDaz = 0x8040;  // MXCSR bits: flush-to-zero (15) | denormals-are-zero (6)
ScopedDenormalsOff::ScopedDenormalsOff() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFtzDaz); }
ScopedDenormalsOff::~ScopedDenormalsOff() { _mm_setcsr(saved_); }
#else
ScopedDenormalsOff::ScopedDenormalsOff() : saved_(0) {}
ScopedDenormalsOff::~ScopedDenormalsOff() {}
#endif

}  // namespace fastconv
