// Bindings of the Python layer's fused kernels (nn/nn_ops.h). fastconv.nn validates shapes and
// dtypes; these re-check what memory safety depends on (float32, C-contiguous, equal sizes).
#include "bindings/bindings.h"
#include "nn/nn_ops.h"

namespace fastconv::bindings {

namespace {

int64_t same_size(const std::vector<const py::array*>& arrays, const std::vector<const char*>& names) {
    const int64_t n = arrays[0]->size();
    for (size_t i = 0; i < arrays.size(); ++i) {
        const py::array& a = *arrays[i];
        if (!py::isinstance<FloatArray>(a) || !(a.flags() & py::array::c_style))
            throw std::invalid_argument(std::string(names[i]) + ": expected a C-contiguous float32 array");
        if (a.size() != n)
            throw std::invalid_argument(std::string(names[i]) + ": expected " + std::to_string(n) + " elements, got " +
                                        std::to_string(a.size()));
    }
    return n;
}

using Unary = void (*)(const float*, float*, int64_t);
using Binary = void (*)(const float*, const float*, float*, int64_t);

void unary(Unary fn, const py::array& x, py::array& y) {
    const int64_t n = same_size({&x, &y}, {"x", "out"});
    float* out = mutable_data(y, "out");
    py::gil_scoped_release release;
    fn(data(x), out, n);
}

void binary(Binary fn, const py::array& y, const py::array& dy, py::array& dx) {
    const int64_t n = same_size({&y, &dy, &dx}, {"y", "grad_output", "out"});
    float* out = mutable_data(dx, "out");
    py::gil_scoped_release release;
    fn(data(y), data(dy), out, n);
}

}  // namespace

void bind_nn(py::module_& m) {
    m.def("relu_forward", [](const py::array& x, py::array& y) { unary(relu_forward, x, y); }, py::arg("x"),
          py::arg("out"));
    m.def("relu_backward", [](const py::array& y, const py::array& dy, py::array& dx) { binary(relu_backward, y, dy, dx); },
          py::arg("y"), py::arg("grad_output"), py::arg("out"));
    m.def("sigmoid_backward",
          [](const py::array& y, const py::array& dy, py::array& dx) { binary(sigmoid_backward, y, dy, dx); },
          py::arg("y"), py::arg("grad_output"), py::arg("out"));
    m.def("bias_grad_nchw", [](const py::array& dy, py::array& db) {
        if (dy.ndim() != 4) throw std::invalid_argument("grad_output: expected a 4-D array");
        require_shape(dy, {dy.shape(0), dy.shape(1), dy.shape(2), dy.shape(3)}, "grad_output");
        require_shape(db, {dy.shape(1)}, "out");
        float* out = mutable_data(db, "out");
        const int64_t N = dy.shape(0), C = dy.shape(1), HW = dy.shape(2) * dy.shape(3);
        py::gil_scoped_release release;
        bias_grad_nchw(data(dy), N, C, HW, out);
    }, py::arg("grad_output"), py::arg("out"));
    m.def("sgd_step", [](py::array& w, const py::array& g, py::array& buf, float lr, float momentum, float dampening,
                         float weight_decay, bool nesterov, bool first_step) {
        const int64_t n = same_size({&w, &g, &buf}, {"param", "grad", "momentum_buffer"});
        SgdParams p{lr, momentum, dampening, weight_decay, nesterov, first_step};
        float* wp = mutable_data(w, "param");
        float* bp = mutable_data(buf, "momentum_buffer");
        py::gil_scoped_release release;
        sgd_step(p, wp, data(g), bp, n);
    });
    m.def("adam_step", [](py::array& w, const py::array& g, py::array& mom1, py::array& mom2, float lr, float beta1,
                          float beta2, float eps, float weight_decay, bool decoupled, float bc1, float bc2) {
        const int64_t n = same_size({&w, &g, &mom1, &mom2}, {"param", "grad", "exp_avg", "exp_avg_sq"});
        AdamParams p{lr, beta1, beta2, eps, weight_decay, decoupled, bc1, bc2};
        float* wp = mutable_data(w, "param");
        float* mp = mutable_data(mom1, "exp_avg");
        float* vp = mutable_data(mom2, "exp_avg_sq");
        py::gil_scoped_release release;
        adam_step(p, wp, data(g), mp, vp, n);
    });
}

}  // namespace fastconv::bindings
