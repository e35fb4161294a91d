#include "common/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace fastconv {

static CpuPath detect_cpu_path() {
    const char* forced = std::getenv("FASTCONV_CPU");
    if (forced && std::strcmp(forced, "portable") == 0) return CpuPath::Portable;
#if defined(FASTCONV_NO_AVX2) || !(defined(__x86_64__) || defined(__i386__))
    return CpuPath::Portable;
#else
    __builtin_cpu_init();
    // __builtin_cpu_supports also checks that the OS saves the YMM registers (XCR0).
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuPath::Avx2;
    return CpuPath::Portable;
#endif
}

CpuPath cpu_path() {
    static const CpuPath path = detect_cpu_path();
    return path;
}

const char* cpu_path_name() { return cpu_path() == CpuPath::Avx2 ? "avx2" : "portable"; }

}  // namespace fastconv
