#include "bindings/bindings.h"
#include "common/peak.h"
#include "gemm/gemm.h"

namespace fastconv::bindings {

namespace {

// Element strides of a 2-D float32 view (any layout numpy can express, negative strides included).
void element_strides(const py::array& a, const char* name, int64_t& row, int64_t& col) {
    if (a.ndim() != 2 || !py::isinstance<py::array_t<float>>(a))
        throw std::invalid_argument(std::string(name) + ": expected a 2-D float32 array");
    if (a.strides(0) % 4 != 0 || a.strides(1) % 4 != 0)
        throw std::invalid_argument(std::string(name) + ": strides must be multiples of 4 bytes");
    row = a.strides(0) / 4;
    col = a.strides(1) / 4;
}

void gemm_binding(const py::array& a, const py::array& b, py::array& c, float alpha, float beta, bool trans_a,
                  bool trans_b, bool naive) {
    GemmParams p;
    element_strides(a, "a", p.a_row, p.a_col);
    element_strides(b, "b", p.b_row, p.b_col);
    element_strides(c, "out", p.c_row, p.c_col);
    int64_t a_rows = a.shape(0), a_cols = a.shape(1), b_rows = b.shape(0), b_cols = b.shape(1);
    if (trans_a) std::swap(a_rows, a_cols), std::swap(p.a_row, p.a_col);
    if (trans_b) std::swap(b_rows, b_cols), std::swap(p.b_row, p.b_col);
    if (a_cols != b_rows || c.shape(0) != a_rows || c.shape(1) != b_cols)
        throw std::invalid_argument("gemm: inconsistent shapes");
    p.M = a_rows;
    p.N = b_cols;
    p.K = a_cols;
    p.alpha = alpha;
    p.beta = beta;
    float* c_ptr = mutable_data(c, "out");
    py::gil_scoped_release release;
    (naive ? sgemm_naive : sgemm)(p, data(a), data(b), c_ptr);
}

}  // namespace

void bind_gemm(py::module_& m) {
    m.def("sgemm", &gemm_binding, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("alpha"), py::arg("beta"),
          py::arg("trans_a"), py::arg("trans_b"), py::arg("naive") = false,
          "out = alpha * op(a) @ op(b) + beta * out on strided float32 views (validated by fastconv.gemm).");
    m.def(
        "fma_peak_gflops",
        [](int64_t iterations, int repeats) {
            if (iterations < 1 || repeats < 1) throw std::invalid_argument("iterations and repeats must be >= 1");
            py::gil_scoped_release release;
            return fma_peak_gflops(iterations, repeats);
        },
        py::arg("iterations") = 20000000, py::arg("repeats") = 5,
        "Measured FP32 FMA GFLOP/s with all configured threads (best of repeats).");
}

}  // namespace fastconv::bindings
