// Run-time CPU dispatch: AVX2/FMA kernels live in *_avx2.cpp files and are only called when the
// CPU (and OS) support them. FASTCONV_CPU=portable in the environment forces the portable path.
#pragma once

namespace fastconv {

enum class CpuPath { Portable, Avx2 };

CpuPath cpu_path();             // decided once, at first use
const char* cpu_path_name();    // "avx2" or "portable"
inline bool use_avx2() { return cpu_path() == CpuPath::Avx2; }

}  // namespace fastconv
