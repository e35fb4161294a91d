// fastconv._cuda: the CUDA backend's Python module. pybind11 appears only in cuda/bindings; each
// bind_*.cpp registers one family of functions (see device_array.h).
#include "bindings/device_array.h"

PYBIND11_MODULE(_cuda, m) {
    namespace fc = fastconv;
    namespace py = pybind11;
    m.doc() = "fastconv CUDA kernels. Use fastconv.cuda, not this module.";
    static py::exception<fc::CudaError> cuda_error(m, "CudaError", PyExc_RuntimeError);
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const fc::CudaError& e) {
            py::set_error(cuda_error, e.what());
        } catch (const std::overflow_error& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        }
    });
    fc::bind_arrays(m);
    fc::bind_gemm_conv_pool(m);
    fc::bind_training(m);
}
