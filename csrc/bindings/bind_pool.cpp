// Pooling bindings: Pool2dParams, and one entry per pass. fastconv.pooling / fastconv.grad validate
// and allocate; these re-check shapes, dtypes and contiguity, then release the GIL around the kernel.
#include "bindings/bindings.h"
#include "pool/pool2d.h"

namespace fastconv::bindings {

namespace {

std::vector<int64_t> input_shape(const Pool2dParams& p) { return {p.N, p.C, p.H, p.W}; }
std::vector<int64_t> output_shape(const Pool2dParams& p) { return {p.N, p.C, p.P(), p.Q()}; }

// Throws unless `a` is a C-contiguous int64 array of exactly `shape`.
void require_indices(const py::array& a, const std::vector<int64_t>& shape, const char* name) {
    if (!py::isinstance<py::array_t<int64_t, py::array::c_style>>(a) || !(a.flags() & py::array::c_style))
        throw std::invalid_argument(std::string(name) + ": expected a C-contiguous int64 array");
    if (std::vector<int64_t>(a.shape(), a.shape() + a.ndim()) != shape)
        throw std::invalid_argument(std::string(name) + ": shape does not match the pooled output");
}

// (N, C, H, W) from the full-size array, (P, Q) from the pooled one; both must be 4-D float32.
PoolShape shape_of(const py::array& full, const char* full_name, const py::array& pooled, const char* pooled_name) {
    if (full.ndim() != 4) throw std::invalid_argument(std::string(full_name) + ": expected a 4-D array");
    if (pooled.ndim() != 4) throw std::invalid_argument(std::string(pooled_name) + ": expected a 4-D array");
    PoolShape s{full.shape(0), full.shape(1), full.shape(2), full.shape(3), pooled.shape(2), pooled.shape(3)};
    s.validate();
    require_shape(full, {s.N, s.C, s.H, s.W}, full_name);
    require_shape(pooled, {s.N, s.C, s.P, s.Q}, pooled_name);
    return s;
}

void max_forward(const Pool2dParams& p, const py::array& x, py::array& y, const py::object& indices) {
    p.validate_max();
    require_shape(x, input_shape(p), "x");
    require_shape(y, output_shape(p), "out");
    int64_t* idx = nullptr;
    py::array idx_array;
    if (!indices.is_none()) {
        idx_array = indices.cast<py::array>();
        require_indices(idx_array, output_shape(p), "indices");
        if (!idx_array.writeable()) throw std::invalid_argument("indices: array is read-only");
        idx = static_cast<int64_t*>(idx_array.mutable_data());
    }
    float* y_ptr = mutable_data(y, "out");
    py::gil_scoped_release release;
    max_pool2d_forward(p, data(x), y_ptr, idx);
}

void max_backward(const py::array& dy, const py::array& indices, py::array& dx) {
    const PoolShape s = shape_of(dx, "out", dy, "grad_output");
    require_indices(indices, {s.N, s.C, s.P, s.Q}, "indices");
    float* dx_ptr = mutable_data(dx, "out");
    const auto* idx = static_cast<const int64_t*>(indices.data());
    py::gil_scoped_release release;
    max_pool2d_backward(s, data(dy), idx, dx_ptr);
}

void avg_forward(const Pool2dParams& p, const py::array& x, py::array& y) {
    p.validate_avg();
    require_shape(x, input_shape(p), "x");
    require_shape(y, output_shape(p), "out");
    float* y_ptr = mutable_data(y, "out");
    py::gil_scoped_release release;
    avg_pool2d_forward(p, data(x), y_ptr);
}

void avg_backward(const Pool2dParams& p, const py::array& dy, py::array& dx) {
    p.validate_avg();
    require_shape(dy, output_shape(p), "grad_output");
    require_shape(dx, input_shape(p), "out");
    float* dx_ptr = mutable_data(dx, "out");
    py::gil_scoped_release release;
    avg_pool2d_backward(p, data(dy), dx_ptr);
}

void adaptive_forward(const py::array& x, py::array& y) {
    const PoolShape s = shape_of(x, "x", y, "out");
    float* y_ptr = mutable_data(y, "out");
    py::gil_scoped_release release;
    adaptive_avg_pool2d_forward(s, data(x), y_ptr);
}

void adaptive_backward(const py::array& dy, py::array& dx) {
    const PoolShape s = shape_of(dx, "out", dy, "grad_output");
    float* dx_ptr = mutable_data(dx, "out");
    py::gil_scoped_release release;
    adaptive_avg_pool2d_backward(s, data(dy), dx_ptr);
}

}  // namespace

void bind_pool(py::module_& m) {
    py::class_<Pool2dParams>(m, "Pool2dParams", "Shape and hyper-parameters of one 2-D pooling.")
        .def(py::init([](int64_t N, int64_t C, int64_t H, int64_t W, int64_t kernel_h, int64_t kernel_w,
                         int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, bool ceil_mode,
                         bool count_include_pad, int64_t dil_h, int64_t dil_w, int64_t divisor_override) {
                 Pool2dParams p{N, C, H, W, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, ceil_mode,
                                count_include_pad};
                 p.dil_h = dil_h, p.dil_w = dil_w, p.divisor_override = divisor_override;
                 return p;
             }),
             py::arg("N"), py::arg("C"), py::arg("H"), py::arg("W"), py::arg("kernel_h"), py::arg("kernel_w"),
             py::arg("stride_h") = 1, py::arg("stride_w") = 1, py::arg("pad_h") = 0, py::arg("pad_w") = 0,
             py::arg("ceil_mode") = false, py::arg("count_include_pad") = true, py::arg("dil_h") = 1,
             py::arg("dil_w") = 1, py::arg("divisor_override") = 0)
        .def_readonly("N", &Pool2dParams::N)
        .def_readonly("C", &Pool2dParams::C)
        .def_readonly("H", &Pool2dParams::H)
        .def_readonly("W", &Pool2dParams::W)
        .def_readonly("kernel_h", &Pool2dParams::kernel_h)
        .def_readonly("kernel_w", &Pool2dParams::kernel_w)
        .def_readonly("stride_h", &Pool2dParams::stride_h)
        .def_readonly("stride_w", &Pool2dParams::stride_w)
        .def_readonly("pad_h", &Pool2dParams::pad_h)
        .def_readonly("pad_w", &Pool2dParams::pad_w)
        .def_readonly("ceil_mode", &Pool2dParams::ceil_mode)
        .def_readonly("count_include_pad", &Pool2dParams::count_include_pad)
        .def_readonly("dil_h", &Pool2dParams::dil_h)
        .def_readonly("dil_w", &Pool2dParams::dil_w)
        .def_readonly("divisor_override", &Pool2dParams::divisor_override)
        .def_property_readonly("P", &Pool2dParams::P)
        .def_property_readonly("Q", &Pool2dParams::Q)
        .def("validate", &Pool2dParams::validate)
        .def("__repr__", [](const Pool2dParams& p) {
            auto pair = [](int64_t a, int64_t b) { return "(" + std::to_string(a) + ", " + std::to_string(b) + ")"; };
            return "Pool2dParams(N=" + std::to_string(p.N) + ", C=" + std::to_string(p.C) + ", H=" +
                   std::to_string(p.H) + ", W=" + std::to_string(p.W) + ", kernel=" + pair(p.kernel_h, p.kernel_w) +
                   ", stride=" + pair(p.stride_h, p.stride_w) + ", pad=" + pair(p.pad_h, p.pad_w) +
                   ", dilation=" + pair(p.dil_h, p.dil_w) + ", ceil_mode=" + (p.ceil_mode ? "True" : "False") +
                   ", count_include_pad=" + (p.count_include_pad ? "True" : "False") +
                   ", divisor_override=" + std::to_string(p.divisor_override) + ")";
        });
    m.def("max_pool2d_forward", &max_forward, py::arg("params"), py::arg("x"), py::arg("out"),
          py::arg("indices") = py::none());
    m.def("max_pool2d_backward", &max_backward, py::arg("grad_output"), py::arg("indices"), py::arg("out"));
    m.def("avg_pool2d_forward", &avg_forward, py::arg("params"), py::arg("x"), py::arg("out"));
    m.def("avg_pool2d_backward", &avg_backward, py::arg("params"), py::arg("grad_output"), py::arg("out"));
    m.def("adaptive_avg_pool2d_forward", &adaptive_forward, py::arg("x"), py::arg("out"));
    m.def("adaptive_avg_pool2d_backward", &adaptive_backward, py::arg("grad_output"), py::arg("out"));
}

}  // namespace fastconv::bindings
