// k-max pooling binding: Python validates and moves the pooled axis last; this re-checks the shapes
// memory safety depends on and calls the kernel with the GIL released.
#include "bindings/bindings.h"
#include "kmax/kmax_pool.h"

namespace fastconv::bindings {

void bind_kmax(py::module_& m) {
    m.def(
        "kmax_pool_forward",
        [](const py::array& x, int64_t k, py::array& values, py::array_t<int64_t, py::array::c_style>& indices) {
            if (x.ndim() != 2) throw std::invalid_argument("x: expected a 2-D (rows, L) array");
            const int64_t rows = x.shape(0), L = x.shape(1);
            if (k < 1 || k > L) throw std::invalid_argument("k: must lie in [1, L]");
            require_shape(x, {rows, L}, "x");
            require_shape(values, {rows, k}, "values");
            if (indices.ndim() != 2 || indices.shape(0) != rows || indices.shape(1) != k)
                throw std::invalid_argument("indices: expected shape (rows, k)");
            if (!indices.writeable()) throw std::invalid_argument("indices: array is read-only");
            float* v = mutable_data(values, "values");
            int64_t* idx = indices.mutable_data();
            const float* xp = data(x);
            py::gil_scoped_release release;
            kmax_pool_forward(xp, rows, L, k, v, idx);
        },
        py::arg("x"), py::arg("k"), py::arg("values"), py::arg("indices"),
        "k-max pooling along the last axis of a C-contiguous (rows, L) float32 array.");
}

}  // namespace fastconv::bindings
