// Bindings of the Python layer's fused kernels (nn/nn_ops.h, nn/batch_norm.h). fastconv.nn validates shapes and
// dtypes; these re-check what memory safety depends on (float32, C-contiguous, equal sizes).
#include <pybind11/stl.h>  // std::optional arguments

#include <optional>

#include "bindings/bindings.h"
#include "data/resize.h"
#include "nn/batch_norm.h"
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

// (N, C, HW) of a C-contiguous float32 NCHW array, and a check that a per-channel array has C floats.
struct Nchw {
    int64_t N, C, HW;
};

Nchw nchw(const py::array& x, const char* name) {
    if (x.ndim() != 4) throw std::invalid_argument(std::string(name) + ": expected a 4-D array");
    require_shape(x, {x.shape(0), x.shape(1), x.shape(2), x.shape(3)}, name);
    return {x.shape(0), x.shape(1), x.shape(2) * x.shape(3)};
}

const float* channel_data(const std::optional<py::array>& a, int64_t C, const char* name) {
    if (!a) return nullptr;
    require_shape(*a, {C}, name);
    return data(*a);
}

float* channel_out(std::optional<py::array>& a, int64_t C, const char* name) {
    if (!a) return nullptr;
    require_shape(*a, {C}, name);
    return mutable_data(*a, name);
}

}  // namespace

void bind_batch_norm(py::module_& m) {
    m.def("batch_norm_stats", [](const py::array& x, py::array& mean, py::array& var) {
        const Nchw s = nchw(x, "x");
        require_shape(mean, {s.C}, "mean");
        require_shape(var, {s.C}, "var");
        float* mp = mutable_data(mean, "mean");
        float* vp = mutable_data(var, "var");
        py::gil_scoped_release release;
        batch_norm_stats(data(x), s.N, s.C, s.HW, mp, vp);
    }, py::arg("x"), py::arg("mean"), py::arg("var"));
    m.def("batch_norm_forward", [](const py::array& x, const py::array& mean, const py::array& inv_std,
                                   const std::optional<py::array>& gamma, const std::optional<py::array>& beta,
                                   py::array& y, bool relu) {
        const Nchw s = nchw(x, "x");
        require_shape(y, {x.shape(0), x.shape(1), x.shape(2), x.shape(3)}, "out");
        const float* mp = channel_data(mean, s.C, "mean");
        const float* ip = channel_data(inv_std, s.C, "inv_std");
        const float* gp = channel_data(gamma, s.C, "weight");
        const float* bp = channel_data(beta, s.C, "bias");
        float* out = mutable_data(y, "out");
        py::gil_scoped_release release;
        batch_norm_forward(data(x), s.N, s.C, s.HW, mp, ip, gp, bp, relu, out);
    }, py::arg("x"), py::arg("mean"), py::arg("inv_std"), py::arg("weight"), py::arg("bias"), py::arg("out"),
       py::arg("relu") = false);
    m.def("batch_norm_backward", [](const py::array& x, const py::array& dy, const py::array& mean,
                                    const py::array& inv_std, const std::optional<py::array>& gamma,
                                    bool batch_statistics, std::optional<py::array> dx,
                                    std::optional<py::array> dgamma, std::optional<py::array> dbeta,
                                    const std::optional<py::array>& beta, bool relu) {
        const Nchw s = nchw(x, "x");
        require_shape(dy, {x.shape(0), x.shape(1), x.shape(2), x.shape(3)}, "grad_output");
        if (dx) require_shape(*dx, {x.shape(0), x.shape(1), x.shape(2), x.shape(3)}, "grad_input");
        const float* mp = channel_data(mean, s.C, "mean");
        const float* ip = channel_data(inv_std, s.C, "inv_std");
        const float* gp = channel_data(gamma, s.C, "weight");
        float* dxp = dx ? mutable_data(*dx, "grad_input") : nullptr;
        float* dgp = channel_out(dgamma, s.C, "grad_weight");
        float* dbp = channel_out(dbeta, s.C, "grad_bias");
        const float* bp = channel_data(beta, s.C, "bias");
        py::gil_scoped_release release;
        batch_norm_backward(data(x), data(dy), s.N, s.C, s.HW, mp, ip, gp, bp, relu, batch_statistics, dxp, dgp, dbp);
    }, py::arg("x"), py::arg("grad_output"), py::arg("mean"), py::arg("inv_std"), py::arg("weight"),
       py::arg("batch_statistics"), py::arg("grad_input"), py::arg("grad_weight"), py::arg("grad_bias"),
       py::arg("bias") = py::none(), py::arg("relu") = false);
}

// A float32 (N, C, H, W) array whose (H, W) planes are contiguous; batch and channel strides are
// free (a channel slice of a larger array), in elements.
struct PlaneStrides {
    int64_t N, C, HW, batch, channel;
};

PlaneStrides plane_strides(const py::array& a, const char* name) {
    if (a.ndim() != 4) throw std::invalid_argument(std::string(name) + ": expected a 4-D array");
    if (!py::isinstance<py::array_t<float>>(a)) throw std::invalid_argument(std::string(name) + ": expected a float32 array");
    const int64_t H = a.shape(2), W = a.shape(3), f = sizeof(float);
    if ((H > 1 && a.strides(2) != W * f) || (W > 1 && a.strides(3) != f) || a.strides(0) % f || a.strides(1) % f ||
        a.strides(0) < 0 || a.strides(1) < 0)
        throw std::invalid_argument(std::string(name) + ": expected contiguous (H, W) planes");
    return {a.shape(0), a.shape(1), H * W, a.strides(0) / f, a.strides(1) / f};
}

void bind_nn(py::module_& m) {
    bind_batch_norm(m);
    m.def("relu_forward", [](const py::array& x, py::array& y) { unary(relu_forward, x, y); }, py::arg("x"),
          py::arg("out"));
    m.def("relu_backward", [](const py::array& y, const py::array& dy, py::array& dx) { binary(relu_backward, y, dy, dx); },
          py::arg("y"), py::arg("grad_output"), py::arg("out"));
    m.def("sigmoid_backward",
          [](const py::array& y, const py::array& dy, py::array& dx) { binary(sigmoid_backward, y, dy, dx); },
          py::arg("y"), py::arg("grad_output"), py::arg("out"));
    m.def("bias_grad_nchw", [](const py::array& dy, py::array& db) {
        // grad_output may be a channel slice of a larger array (cat's backward).
        const PlaneStrides s = plane_strides(dy, "grad_output");
        require_shape(db, {s.C}, "out");
        float* out = mutable_data(db, "out");
        py::gil_scoped_release release;
        bias_grad_nchw(data(dy), s.N, s.C, s.HW, s.batch, s.channel, out);
    }, py::arg("grad_output"), py::arg("out"));
    m.def("resize_bilinear", [](const py::array& x, py::array& out) {
        const Nchw s = nchw(x, "x");
        if (out.ndim() != 4) throw std::invalid_argument("out: expected a 4-D array");
        require_shape(out, {x.shape(0), x.shape(1), out.shape(2), out.shape(3)}, "out");
        float* y = mutable_data(out, "out");
        const int64_t out_h = out.shape(2), out_w = out.shape(3);
        if (x.shape(2) < 1 || x.shape(3) < 1 || out_h < 1 || out_w < 1)
            throw std::invalid_argument("resize_bilinear: every image size must be positive");
        py::gil_scoped_release release;
        resize_bilinear(data(x), s.N * s.C, x.shape(2), x.shape(3), out_h, out_w, y);
    }, py::arg("x"), py::arg("out"));
    m.def("add_planes", [](const py::array& a, const py::array& b, py::array& out) {
        const PlaneStrides sa = plane_strides(a, "a"), sb = plane_strides(b, "b");
        for (int d = 0; d < 4; ++d)
            if (b.shape(d) != a.shape(d)) throw std::invalid_argument("b: expected the shape of a");
        require_shape(out, {a.shape(0), a.shape(1), a.shape(2), a.shape(3)}, "out");
        float* o = mutable_data(out, "out");
        py::gil_scoped_release release;
        add_planes(data(a), sa.batch, sa.channel, data(b), sb.batch, sb.channel, sa.N, sa.C, sa.HW, o);
    }, py::arg("a"), py::arg("b"), py::arg("out"));
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
