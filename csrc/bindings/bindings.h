// pybind11 lives only in csrc/bindings. Each bind_*.cpp registers one op family on fastconv._core.
// Convention: Python (src/fastconv) validates arguments and allocates outputs; a binding re-checks
// what memory safety depends on (dtype, contiguity, sizes), releases the GIL and calls a kernel
// that sees only pointers and a params struct.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace fastconv::bindings {

namespace py = pybind11;

// A C-contiguous float32 array, received without any conversion or copy.
using FloatArray = py::array_t<float, py::array::c_style>;

// Throws std::invalid_argument unless `a` is float32, C-contiguous and has exactly `shape`.
inline void require_shape(const py::array& a, const std::vector<int64_t>& shape, const char* name) {
    auto shape_str = [](const std::vector<int64_t>& s) {
        std::string out = "(";
        for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
        return out + (s.size() == 1 ? ",)" : ")");
    };
    std::vector<int64_t> actual(a.shape(), a.shape() + a.ndim());
    if (actual != shape)
        throw std::invalid_argument(std::string(name) + ": expected shape " + shape_str(shape) + ", got " +
                                    shape_str(actual));
    if (!py::isinstance<FloatArray>(a) || !(a.flags() & py::array::c_style))
        throw std::invalid_argument(std::string(name) + ": expected a C-contiguous float32 array");
}

inline float* mutable_data(py::array& a, const char* name) {
    if (!a.writeable()) throw std::invalid_argument(std::string(name) + ": array is read-only");
    return static_cast<float*>(a.mutable_data());
}
inline const float* data(const py::array& a) { return static_cast<const float*>(a.data()); }

void bind_common(py::module_& m);
void bind_gemm(py::module_& m);
void bind_conv(py::module_& m);
void bind_nn(py::module_& m);
void bind_kmax(py::module_& m);
void bind_fft(py::module_& m);
void bind_pool(py::module_& m);

}  // namespace fastconv::bindings
