// FFT bindings (private, for tests and benchmarks): numpy-layout transforms over the last one or
// two axes of a C-contiguous array, norm="backward" as numpy.fft. Python passes exact dtypes.
#include <complex>

#include "bindings/bindings.h"
#include "conv/conv2d_fft.h"
#include "conv/fft.h"

namespace fastconv::bindings {

namespace {

using Complex = std::complex<float>;
using ComplexArray = py::array_t<Complex, py::array::c_style>;

// Splits the shape of `a` into (batch, last `axes` sizes); checks dtype and contiguity.
template <class Array>
std::pair<int64_t, std::vector<int64_t>> split_shape(const py::array& a, int axes, const char* name) {
    if (!py::isinstance<Array>(a) || !(a.flags() & py::array::c_style))
        throw std::invalid_argument(std::string(name) + ": expected a C-contiguous array of the right dtype");
    if (a.ndim() < axes) throw std::invalid_argument(std::string(name) + ": too few dimensions");
    int64_t batch = 1;
    for (int i = 0; i < a.ndim() - axes; ++i) batch *= a.shape(i);
    std::vector<int64_t> last(a.shape() + a.ndim() - axes, a.shape() + a.ndim());
    return {batch, last};
}

std::vector<py::ssize_t> with_last(const py::array& a, std::vector<int64_t> last) {
    std::vector<py::ssize_t> shape(a.shape(), a.shape() + a.ndim() - last.size());
    shape.insert(shape.end(), last.begin(), last.end());
    return shape;
}

int as_size(int64_t n) {
    if (!fft_size_supported(n))
        throw std::invalid_argument("fft: size " + std::to_string(n) +
                                    " is not supported (only products of 2, 3 and 5, at least 1)");
    return int(n);
}

}  // namespace

void bind_fft(py::module_& m) {
    m.def("fft_c2c", [](const py::array& x, int axes, bool inverse) {
        auto [batch, last] = split_shape<ComplexArray>(x, axes, "x");
        ComplexArray out(with_last(x, last));
        auto* src = reinterpret_cast<const float*>(x.data());
        auto* dst = reinterpret_cast<float*>(out.mutable_data());
        const int n1 = as_size(last[0]), n2 = axes == 2 ? as_size(last[1]) : 1;
        py::gil_scoped_release release;
        if (axes == 1) fft_c2c_1d(batch, n1, src, dst, inverse);
        else fft_c2c_2d(batch, n1, n2, src, dst, inverse);
        return out;
    }, py::arg("x"), py::arg("axes"), py::arg("inverse"), "Complex FFT over the last 1 or 2 axes (complex64).");
    m.def("fft_r2c", [](const py::array& x, int axes) {
        auto [batch, last] = split_shape<FloatArray>(x, axes, "x");
        std::vector<int64_t> shape = last;
        shape.back() = shape.back() / 2 + 1;
        ComplexArray out(with_last(x, shape));
        auto* dst = reinterpret_cast<float*>(out.mutable_data());
        const int n1 = as_size(last[0]), n2 = axes == 2 ? as_size(last[1]) : 1;
        const float* src = data(x);
        py::gil_scoped_release release;
        if (axes == 1) fft_r2c_1d(batch, n1, src, dst);
        else fft_r2c_2d(batch, n1, n2, src, dst);
        return out;
    }, py::arg("x"), py::arg("axes"), "Real-input FFT over the last 1 or 2 axes (float32 -> complex64).");
    m.def("fft_c2r", [](const py::array& x, int64_t n, int axes) {
        auto [batch, last] = split_shape<ComplexArray>(x, axes, "x");
        if (last.back() != n / 2 + 1)
            throw std::invalid_argument("x: last axis must have n // 2 + 1 = " + std::to_string(n / 2 + 1) + " entries");
        std::vector<int64_t> shape = last;
        shape.back() = n;
        FloatArray out(with_last(x, shape));
        auto* src = reinterpret_cast<const float*>(x.data());
        float* dst = out.mutable_data();
        const int nn = as_size(n), n1 = axes == 2 ? as_size(last[0]) : 1;
        py::gil_scoped_release release;
        if (axes == 1) fft_c2r_1d(batch, nn, src, dst);
        else fft_c2r_2d(batch, n1, nn, src, dst);
        return out;
    }, py::arg("x"), py::arg("n"), py::arg("axes"), "Inverse of fft_r2c: length n of the last axis.");
    m.def("fft_conv_force_tile", &fft_conv_force_tile, py::arg("T1"), py::arg("T2"),
          "Force T1 x T2 transforms in the FFT convolution (0, 0: chosen by the cost model).");
    m.def("fft_conv_tiling", [](const Conv2dParams& p, const std::string& pass) {
        p.validate();
        const FftPass which = pass == "forward" ? FftPass::Forward
                              : pass == "input" ? FftPass::InputGrad
                              : pass == "weight" ? FftPass::WeightGrad
                              : throw std::invalid_argument("pass: expected 'forward', 'input' or 'weight'");
        const FftConvTiling t = fft_conv_tiling(p, which);
        py::dict d;
        d["T1"] = t.T1;
        d["T2"] = t.T2;
        d["O1"] = t.O1;
        d["O2"] = t.O2;
        d["tiles_h"] = t.tiles_h;
        d["tiles_w"] = t.tiles_w;
        return d;
    }, py::arg("params"), py::arg("pass_"), "The tiling the FFT convolution uses for a pass.");
    m.def("fft_size_supported", &fft_size_supported, py::arg("n"));
    m.def("fft_next_size", &fft_next_size, py::arg("n"));
}

}  // namespace fastconv::bindings
