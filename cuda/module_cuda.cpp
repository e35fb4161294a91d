// fastconv._cuda: the CUDA backend's Python module. pybind11 appears only here in cuda/.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "launch.h"

namespace py = pybind11;

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "fastconv CUDA kernels. Use fastconv.cuda, not this module.";
    static py::exception<fastconv::CudaError> cuda_error(m, "CudaError", PyExc_RuntimeError);
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const fastconv::CudaError& e) {
            py::set_error(cuda_error, e.what());
        }
    });
    m.def("device_count", &fastconv::cuda_device_count);
    m.def("device_name", &fastconv::cuda_device_name, py::arg("device"));
    m.def("runtime_version", &fastconv::cuda_runtime_version);
    m.def("synchronize", [] {
        py::gil_scoped_release release;
        fastconv::cuda_synchronize();
    });
    m.def("saxpy", [](float alpha, py::array_t<float, py::array::c_style> x, py::array_t<float, py::array::c_style> y) {
        if (x.size() != y.size()) throw std::invalid_argument("saxpy: x and y must have the same size");
        float* yp = y.mutable_data();
        const float* xp = x.data();
        const int64_t n = x.size();
        py::gil_scoped_release release;
        fastconv::cuda_saxpy_host(n, alpha, xp, yp);
    }, py::arg("alpha"), py::arg("x"), py::arg("y"));
}
