// Threading for every CPU kernel: one process-wide thread count (settable from Python), and
// flush-to-zero / denormals-are-zero inside kernels (subnormal floats slow FP math 5-100x).
#pragma once

#include <omp.h>

#include <atomic>
#include <exception>
#include <mutex>
#include <utility>
#include <vector>

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

// parallel_for_stealing(n, f): parallel_for's contiguous shares, each walked from its front by
// its thread, f(i, i + 1) per item; a thread that runs out takes items from the back of the
// others' shares. Items keep the locality of the static split (neighbouring items share inputs),
// and a thread slowed by another process on its core no longer holds up the whole call. For items
// whose results do not depend on the thread that computes them.
template <class F>
void parallel_for_stealing(long long n, F&& f) {
    if (n <= 0) return;
    const int threads = region_threads();
    if (threads <= 1 || n == 1 || n >= (1LL << 31)) return parallel_for(n, std::forward<F>(f));
    // Share t as one word, first item << 32 | end, so that taking from either end is one CAS; one
    // cache line each, so that a thread walking its own share does not disturb the others'.
    struct alignas(64) Share {
        std::atomic<unsigned long long> range;
    };
    std::vector<Share> shares(static_cast<size_t>(threads));
    for (int t = 0; t < threads; ++t)
        shares[size_t(t)].range = (static_cast<unsigned long long>(n * t / threads) << 32) |
                                  static_cast<unsigned long long>(n * (t + 1) / threads);
    auto take = [&](int t, bool front) -> long long {
        auto& share = shares[size_t(t)].range;
        unsigned long long old = share.load();
        for (;;) {
            const unsigned long long b = old >> 32, e = old & 0xffffffffULL;
            if (b >= e) return -1;
            const unsigned long long now = front ? ((b + 1) << 32) | e : (b << 32) | (e - 1);
            if (share.compare_exchange_weak(old, now)) return static_cast<long long>(front ? b : e - 1);
        }
    };
    ExceptionCatcher catcher;
#pragma omp parallel num_threads(threads)
    {
        ScopedDenormalsOff ftz;
        const int t = omp_get_thread_num();  // shares of threads OpenMP did not start are all stolen
        catcher.run([&] {
            for (long long i; (i = take(t, true)) >= 0;) f(i, i + 1);
            for (int v = 1; v < threads; ++v)  // then the others' shares, from their backs
                for (long long i; (i = take((t + v) % threads, false)) >= 0;) f(i, i + 1);
        });
    }
    catcher.rethrow();
}

}  // namespace fastconv
