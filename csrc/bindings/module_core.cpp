#include <omp.h>

#include "bindings/bindings.h"
#include "common/cpu_features.h"
#include "common/malloc_tuning.h"
#include "common/parallel.h"
#include "common/workspace.h"

namespace fastconv::bindings {

void bind_common(py::module_& m) {
    m.def("get_num_threads", &get_num_threads, "Threads used by every CPU kernel.");
    m.def("set_num_threads", &set_num_threads, py::arg("n"), "Set the threads used by every CPU kernel.");
    m.def("get_workspace_limit", &get_workspace_limit);
    m.def("set_workspace_limit", &set_workspace_limit, py::arg("bytes"));
    m.def("release_thread_scratch", &release_thread_scratch);
    m.def("tune_malloc", &tune_malloc, py::arg("mmap_threshold"), py::arg("trim_threshold"),
          "glibc mallopt thresholds (see fastconv/__init__.py); False where unsupported.");
    m.def("build_info", [] {
        py::dict d;
        d["version"] = FASTCONV_VERSION;
        d["compiler"] = FASTCONV_COMPILER;
        d["openmp"] = _OPENMP;
        d["omp_max_threads"] = omp_get_max_threads();
        d["cpu_path"] = cpu_path_name();
        return d;
    });
}

}  // namespace fastconv::bindings

PYBIND11_MODULE(_core, m) {
    namespace fb = fastconv::bindings;
    m.doc() = "fastconv CPU kernels (C++/OpenMP/AVX2). Use the fastconv package, not this module.";
    // Size overflow is a bad argument to the caller, not an arithmetic error.
    fb::py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const std::overflow_error& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        }
    });
    fb::bind_common(m);
    fb::bind_gemm(m);
    fb::bind_conv(m);
    fb::bind_kmax(m);
    fb::bind_fft(m);
    fb::bind_pool(m);
    fb::bind_nn(m);
}
