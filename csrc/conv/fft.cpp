// Plans (twiddles in double, cached per size), the portable build of the lane kernels, the CPU
// path dispatch and the numpy-layout transforms. See fft.h.
#include "conv/fft.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "common/cpu_features.h"
#include "common/parallel.h"

namespace fastconv {

namespace fft_portable {
#include "conv/fft_engine.h"
}  // namespace fft_portable

bool fft_size_supported(int64_t n) {
    if (n < 1) return false;
    for (int p : {2, 3, 5})
        while (n % p == 0) n /= p;
    return n == 1;
}

int64_t fft_next_size(int64_t n) {
    n = n < 1 ? 1 : n;
    while (!fft_size_supported(n)) ++n;
    return n;
}

namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

void require_supported(int64_t n) {
    if (!fft_size_supported(n))
        throw std::invalid_argument("fft: size " + std::to_string(n) +
                                    " is not supported (only products of 2, 3 and 5, at least 1)");
}

std::unique_ptr<FftPlan> make_plan(int n) {
    auto plan = std::make_unique<FftPlan>();
    plan->n = n;
    // Radix 8 and 4 first (fewest passes over memory), then the rest.
    std::vector<int> radices;
    int rest = n;
    while (rest % 8 == 0) radices.push_back(8), rest /= 8;
    while (rest % 4 == 0) radices.push_back(4), rest /= 4;
    for (int p : {2, 3, 5})
        while (rest % p == 0) radices.push_back(p), rest /= p;
    int len = n, stride = 1;
    for (int p : radices) {
        FftPlan::Stage s{p, len / p, stride, plan->twiddles.size() / 2};
        for (int j = 0; j < s.m; ++j)
            for (int t = 1; t < p; ++t) {
                const double a = -kTwoPi * double(j) * double(t) / double(len);
                plan->twiddles.push_back(float(std::cos(a)));
                plan->twiddles.push_back(float(std::sin(a)));
            }
        plan->stages.push_back(s);
        len /= p;
        stride *= p;
    }
    return plan;
}

std::mutex& cache_mutex() {
    static std::mutex m;
    return m;
}

}  // namespace

const FftPlan& fft_plan(int n) {
    require_supported(n);
    static std::map<int, std::unique_ptr<FftPlan>> cache;
    std::lock_guard<std::mutex> lock(cache_mutex());
    auto& slot = cache[n];
    if (!slot) slot = make_plan(n);
    return *slot;
}

const FftRealPlan& fft_real_plan(int n) {
    if (n % 2 != 0) throw std::invalid_argument("fft: real plans need an even size, got " + std::to_string(n));
    require_supported(n);
    const FftPlan& half = fft_plan(n / 2);
    static std::map<int, std::unique_ptr<FftRealPlan>> cache;
    std::lock_guard<std::mutex> lock(cache_mutex());
    auto& slot = cache[n];
    if (!slot) {
        auto plan = std::make_unique<FftRealPlan>();
        plan->n = n;
        plan->half = &half;
        for (int k = 0; k <= n / 2; ++k) {
            const double a = -kTwoPi * double(k) / double(n);
            plan->twiddles.push_back(float(std::cos(a)));
            plan->twiddles.push_back(float(std::sin(a)));
        }
        slot = std::move(plan);
    }
    return *slot;
}

FftTilePlan fft_tile_plan(int T1, int T2) {
    FftTilePlan p;
    p.T1 = T1;
    p.T2 = T2;
    p.col = &fft_plan(T1);
    p.row = &fft_real_plan(T2);
    return p;
}

const FftKernels& fft_kernels() {
#if !defined(FASTCONV_NO_AVX2)
    if (use_avx2()) return fft_avx2::kernels();
#endif
    return fft_portable::kernels();
}

// ---- numpy-layout transforms: gather kFftLanes transforms into lane layout, run, scatter ----
namespace {

constexpr int L = kFftLanes, PT = 2 * kFftLanes;

// Runs body(first, lanes, buffers) for each group of up to L transforms, in parallel.
template <class F>
void for_each_group(int64_t batch, size_t buffer_floats, F&& body) {
    const int64_t groups = (batch + L - 1) / L;
    parallel_for(groups, [&](long long g0, long long g1) {
        std::vector<float> a(buffer_floats), b(buffer_floats), work(buffer_floats);
        for (long long g = g0; g < g1; ++g) {
            const int64_t first = g * L;
            const int lanes = int(std::min<int64_t>(L, batch - first));
            std::fill(a.begin(), a.end(), 0.0f);
            body(first, lanes, a.data(), b.data(), work.data());
        }
    });
}

// Complex (interleaved) row of `points` values of transform `first + l` <-> lane l of a buffer.
void load_complex(const float* src, int64_t row_stride, int lanes, int points, float* buf) {
    for (int l = 0; l < lanes; ++l)
        for (int j = 0; j < points; ++j) {
            buf[j * PT + l] = src[l * row_stride + 2 * j];
            buf[j * PT + L + l] = src[l * row_stride + 2 * j + 1];
        }
}
void store_complex(const float* buf, int lanes, int points, float scale, float* dst, int64_t row_stride) {
    for (int l = 0; l < lanes; ++l)
        for (int j = 0; j < points; ++j) {
            dst[l * row_stride + 2 * j] = buf[j * PT + l] * scale;
            dst[l * row_stride + 2 * j + 1] = buf[j * PT + L + l] * scale;
        }
}

// Real forward along rows of length n of a lane buffer: `rows` rows of n reals in `in`
// ([rows][n][L], odd n: stored as complex points with zero imaginary part, [rows][n] points)
// -> [rows][n/2+1] points in out.
void rows_r2c(int n, int rows, const float* in, float* out, float* work) {
    const auto& k = fft_kernels();
    const int RP = n / 2 + 1;
    if (n % 2 == 0) {
        const auto& plan = fft_real_plan(n);
        for (int y = 0; y < rows; ++y) k.r2c(plan, in + size_t(y) * n * L, out + size_t(y) * RP * PT, work);
        return;
    }
    const auto& plan = fft_plan(n);
    for (int y = 0; y < rows; ++y) {
        k.c2c(plan, 1, in + size_t(y) * n * PT, work, work + size_t(n) * PT, false);
        std::memcpy(out + size_t(y) * RP * PT, work, size_t(RP) * PT * sizeof(float));
    }
}

// Real inverse along rows (unnormalised): [rows][n/2+1] points -> [rows][n][L] reals (for odd n
// the result is [rows][n] points whose real parts are the output). in is not modified.
void rows_c2r(int n, int rows, const float* in, float* out, float* work) {
    const auto& k = fft_kernels();
    const int RP = n / 2 + 1;
    if (n % 2 == 0) {
        const auto& plan = fft_real_plan(n);
        for (int y = 0; y < rows; ++y) k.c2r(plan, in + size_t(y) * RP * PT, out + size_t(y) * n * L, work);
        return;
    }
    const auto& plan = fft_plan(n);
    for (int y = 0; y < rows; ++y) {
        const float* src = in + size_t(y) * RP * PT;
        float* full = out + size_t(y) * n * PT;
        // Hermitian completion X_{n-k} = conj X_k; the imaginary part of X_0 is ignored.
        for (int l = 0; l < L; ++l) {
            full[l] = src[l];
            full[L + l] = 0.0f;
        }
        for (int j = 1; j < RP; ++j)
            for (int l = 0; l < L; ++l) {
                full[j * PT + l] = full[(n - j) * PT + l] = src[j * PT + l];
                full[j * PT + L + l] = src[j * PT + L + l];
                full[(n - j) * PT + L + l] = -src[j * PT + L + l];
            }
        k.c2c(plan, 1, full, full, work, true);
    }
}

}  // namespace

void fft_c2c_1d(int64_t batch, int n, const float* in, float* out, bool inverse) {
    const auto& plan = fft_plan(n);
    const float scale = inverse ? 1.0f / float(n) : 1.0f;
    for_each_group(batch, size_t(n) * PT, [&](int64_t first, int lanes, float* a, float*, float* work) {
        load_complex(in + first * 2 * n, 2 * n, lanes, n, a);
        fft_kernels().c2c(plan, 1, a, a, work, inverse);
        store_complex(a, lanes, n, scale, out + first * 2 * n, 2 * n);
    });
}

void fft_r2c_1d(int64_t batch, int n, const float* in, float* out) {
    require_supported(n);
    const int RP = n / 2 + 1;
    for_each_group(batch, size_t(2 * n + 2) * PT, [&](int64_t first, int lanes, float* a, float* b, float* work) {
        const int step = n % 2 == 0 ? 1 : 2;  // odd n: complex points with zero imaginary part
        for (int l = 0; l < lanes; ++l)
            for (int j = 0; j < n; ++j) a[j * step * L + l] = in[(first + l) * n + j];
        rows_r2c(n, 1, a, b, work);
        store_complex(b, lanes, RP, 1.0f, out + first * 2 * RP, 2 * RP);
    });
}

void fft_c2r_1d(int64_t batch, int n, const float* in, float* out) {
    require_supported(n);
    const int RP = n / 2 + 1;
    for_each_group(batch, size_t(2 * n + 2) * PT, [&](int64_t first, int lanes, float* a, float* b, float* work) {
        load_complex(in + first * 2 * RP, 2 * RP, lanes, RP, a);
        rows_c2r(n, 1, a, b, work);
        const int step = n % 2 == 0 ? 1 : 2;
        for (int l = 0; l < lanes; ++l)
            for (int j = 0; j < n; ++j) out[(first + l) * n + j] = b[j * step * L + l] / float(n);
    });
}

void fft_c2c_2d(int64_t batch, int n1, int n2, const float* in, float* out, bool inverse) {
    const auto& p1 = fft_plan(n1);
    const auto& p2 = fft_plan(n2);
    const int64_t per = int64_t(n1) * n2;
    const float scale = inverse ? 1.0f / float(per) : 1.0f;
    for_each_group(batch, size_t(per) * PT, [&](int64_t first, int lanes, float* a, float*, float* work) {
        load_complex(in + first * 2 * per, 2 * per, lanes, int(per), a);
        for (int y = 0; y < n1; ++y) fft_kernels().c2c(p2, 1, a + size_t(y) * n2 * PT, a + size_t(y) * n2 * PT, work, inverse);
        fft_kernels().c2c(p1, n2, a, a, work, inverse);
        store_complex(a, lanes, int(per), scale, out + first * 2 * per, 2 * per);
    });
}

void fft_r2c_2d(int64_t batch, int n1, int n2, const float* in, float* out) {
    const auto& p1 = fft_plan(n1);
    require_supported(n2);
    const int RP = n2 / 2 + 1;
    const int64_t per = int64_t(n1) * n2, per_out = int64_t(n1) * RP;
    const size_t floats = (size_t(n1) * (n2 + 2) + 2 * size_t(n2) + 2) * PT;
    for_each_group(batch, floats, [&](int64_t first, int lanes, float* a, float* b, float* work) {
        const int step = n2 % 2 == 0 ? 1 : 2;
        for (int l = 0; l < lanes; ++l)
            for (int y = 0; y < n1; ++y)
                for (int x = 0; x < n2; ++x) a[(size_t(y) * n2 * step + x * step) * L + l] = in[(first + l) * per + y * n2 + x];
        rows_r2c(n2, n1, a, b, work);
        fft_kernels().c2c(p1, RP, b, b, work, false);
        store_complex(b, lanes, int(per_out), 1.0f, out + first * 2 * per_out, 2 * per_out);
    });
}

void fft_c2r_2d(int64_t batch, int n1, int n2, const float* in, float* out) {
    const auto& p1 = fft_plan(n1);
    require_supported(n2);
    const int RP = n2 / 2 + 1;
    const int64_t per = int64_t(n1) * n2, per_in = int64_t(n1) * RP;
    const size_t floats = (size_t(n1) * (n2 + 2) + 2 * size_t(n2) + 2) * PT;
    const float scale = 1.0f / float(per);
    for_each_group(batch, floats, [&](int64_t first, int lanes, float* a, float* b, float* work) {
        load_complex(in + first * 2 * per_in, 2 * per_in, lanes, int(per_in), a);
        fft_kernels().c2c(p1, RP, a, a, work, true);
        rows_c2r(n2, n1, a, b, work);
        const int step = n2 % 2 == 0 ? 1 : 2;
        for (int l = 0; l < lanes; ++l)
            for (int y = 0; y < n1; ++y)
                for (int x = 0; x < n2; ++x)
                    out[(first + l) * per + y * n2 + x] = b[(size_t(y) * n2 * step + x * step) * L + l] * scale;
    });
}

}  // namespace fastconv
