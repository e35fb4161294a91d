// Threading for every CPU kernel: one process-wide thread count (settable from Python), and
// flush-to-zero / denormals-are-zero inside kernels (subnormal floats slow FP math 5-100x).
#pragma once

#include <omp.h>

#include <exception>
#include <mutex>

namespace fastconv {

int get_num_threads();
void set_num_threads(int n);  // n >= 1

// Memory-bound elementwise kernels: below this many elements one thread is faster than waking others.
constexpr long long kParallelMin = 1 << 15;

// Threads to use for a parallel region: 1 when already inside one (no nested parallelism).
inline int region_threads() { return omp_in_parallel() ? 1 : get_num_threads(); }

// Sets FTZ/DAZ for the lifetime of the object on the calling thread and restores the old mode.
class ScopedDenormalsOff {
   public:
    ScopedDenormalsOff();
    ~ScopedDenormalsOff();
    ScopedDenormalsOff(const ScopedDenormalsOff&) = delete;
    ScopedDenormalsOff& operator=(const ScopedDenormalsOff&) = delete;

   private:
    unsigned saved_;
};

// Exceptions must not escape an OpenMP region: capture the first one, rethrow after the region.
class ExceptionCatcher {
   public:
    template <class F>
    void run(F&& f) {
        try {
            f();
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!error_) error_ = std::current_exception();
        }
    }
    void rethrow() {
        if (error_) std::rethrow_exception(error_);
    }

   private:
    std::mutex mutex_;
    std::exception_ptr error_;
};

// parallel_for(n, f): calls f(begin, end) on contiguous static chunks of [0, n) across the
// configured threads, with denormals flushed. Deterministic partition for a given thread count.
template <class F>
void parallel_for(long long n, F&& f) {
    if (n <= 0) return;
    const int threads = region_threads();
    if (threads <= 1 || n == 1) {
        ScopedDenormalsOff ftz;
        f(0LL, n);
        return;
    }
    ExceptionCatcher catcher;
#pragma omp parallel num_threads(threads)
    {
        ScopedDenormalsOff ftz;
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const long long begin = n * t / nt, end = n * (t + 1) / nt;
        if (begin < end) catcher.run([&] { f(begin, end); });
    }
    catcher.rethrow();
}

}  // namespace fastconv
