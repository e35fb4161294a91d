// fastconv._cuda: SGEMM, conv2d (direct, im2col; all three passes) and pooling.
#include "bindings/device_array.h"

namespace fastconv {
namespace {

// C = alpha * op(a) @ op(b) + beta * c on 2-D arrays (trans_x: x holds op(x) transposed).
void sgemm(const DeviceArray& a, const DeviceArray& b, DeviceArray& c, float alpha, float beta, bool trans_a,
           bool trans_b) {
    if (a.shape.size() != 2 || b.shape.size() != 2 || c.shape.size() != 2)
        throw std::invalid_argument("gemm: a, b and out must be 2-D");
    const int64_t M = trans_a ? a.shape[1] : a.shape[0], K = trans_a ? a.shape[0] : a.shape[1];
    const int64_t N = trans_b ? b.shape[0] : b.shape[1];
    require(b, trans_b ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N}, "b");
    require(a, a.shape, "a");
    require(c, {M, N}, "out");
    SgemmArgs args;
    args.M = M, args.N = N, args.K = K, args.alpha = alpha, args.beta = beta;
    args.A = a.f(), args.lda = a.shape[1], args.trans_a = trans_a;
    args.B = b.f(), args.ldb = b.shape[1], args.trans_b = trans_b;
    args.C = c.f(), args.ldc = N;
    const int device = common_device({&a, &b, &c});
    py::gil_scoped_release release;
    DeviceGuard guard(device);
    cuda_sgemm(args);
}

// ---- conv2d ----
// The params are the _core.Conv2dParams / Pool2dParams objects the Python plan built (pybind11 shares
// registered types between modules built with the same pybind11 and compiler ABI); validated again
// here because a kernel must never trust sizes it did not check.


std::vector<int64_t> input_shape(const Conv2dParams& p) { return {p.N, p.C, p.H, p.W}; }
std::vector<int64_t> weight_shape(const Conv2dParams& p) { return {p.K, p.C_per_group(), p.R, p.S}; }
std::vector<int64_t> output_shape(const Conv2dParams& p) { return {p.N, p.K, p.P(), p.Q()}; }

void conv2d_forward(const std::string& algo, const Conv2dParams& p, const DeviceArray& x,
                    const DeviceArray& w, const DeviceArray* bias, DeviceArray& y, size_t workspace_limit) {
    p.validate();
    require(x, input_shape(p), "x");
    require(w, weight_shape(p), "weight");
    if (bias) require(*bias, {p.K}, "bias");
    require(y, output_shape(p), "out");
    const int device = common_device({&x, &w, bias, &y});
    const float* b = bias ? bias->f() : nullptr;
    py::gil_scoped_release release;
    DeviceGuard guard(device);
    if (algo == "direct") {
        cuda_conv2d_direct_forward(p, x.f(), w.f(), b, y.f());
    } else if (algo == "im2col") {
        cuda_conv2d_im2col_forward(p, x.f(), w.f(), b, y.f(), workspace_limit);
    } else {
        throw std::invalid_argument("algo: unknown CUDA convolution algorithm '" + algo + "'");
    }
}

void conv2d_backward_input(const std::string& algo, const Conv2dParams& p, const DeviceArray& dy,
                           const DeviceArray& w, DeviceArray& dx, size_t workspace_limit) {
    p.validate();
    require(dy, output_shape(p), "grad_output");
    require(w, weight_shape(p), "weight");
    require(dx, input_shape(p), "out");
    const int device = common_device({&dy, &w, &dx});
    py::gil_scoped_release release;
    DeviceGuard guard(device);
    if (algo == "direct") {
        cuda_conv2d_direct_backward_input(p, dy.f(), w.f(), dx.f());
    } else if (algo == "im2col") {
        cuda_conv2d_im2col_backward_input(p, dy.f(), w.f(), dx.f(), workspace_limit);
    } else {
        throw std::invalid_argument("algo: unknown CUDA convolution algorithm '" + algo + "'");
    }
}

void conv2d_backward_weight(const std::string& algo, const Conv2dParams& p, const DeviceArray& x,
                            const DeviceArray& dy, DeviceArray& dw, size_t workspace_limit) {
    p.validate();
    require(x, input_shape(p), "input");
    require(dy, output_shape(p), "grad_output");
    require(dw, weight_shape(p), "out");
    const int device = common_device({&x, &dy, &dw});
    py::gil_scoped_release release;
    DeviceGuard guard(device);
    if (algo == "direct") {
        cuda_conv2d_direct_backward_weight(p, x.f(), dy.f(), dw.f());
    } else if (algo == "im2col") {
        cuda_conv2d_im2col_backward_weight(p, x.f(), dy.f(), dw.f(), workspace_limit);
    } else {
        throw std::invalid_argument("algo: unknown CUDA convolution algorithm '" + algo + "'");
    }
}

// ---- pooling ----

void max_pool2d_forward(const Pool2dParams& p, const DeviceArray& x, DeviceArray& y,
                        DeviceArray* indices) {
    p.validate_max();
    require(x, {p.N, p.C, p.H, p.W}, "x");
    require(y, {p.N, p.C, p.P(), p.Q()}, "out");
    if (indices) require(*indices, {p.N, p.C, p.P(), p.Q()}, "indices", DType::int64);
    const int device = common_device({&x, &y, indices});
    int64_t* idx = indices ? indices->i64() : nullptr;
    py::gil_scoped_release release;
    DeviceGuard guard(device);
    cuda_max_pool2d_forward(p, x.f(), y.f(), idx);
}

void max_pool2d_backward(const DeviceArray& dy, const DeviceArray& indices, DeviceArray& dx) {
    if (dy.shape.size() != 4 || dx.shape.size() != 4) throw std::invalid_argument("max_pool2d backward: expected 4-D arrays");
    require(indices, dy.shape, "indices", DType::int64);
    require(dy, dy.shape, "grad_output");
    require(dx, {dy.shape[0], dy.shape[1], dx.shape[2], dx.shape[3]}, "out");
    const int device = common_device({&dy, &indices, &dx});
    const int64_t planes = checked_mul(dy.shape[0], dy.shape[1], "grad_output");
    const int64_t HW = checked_mul(dx.shape[2], dx.shape[3], "input"), PQ = checked_mul(dy.shape[2], dy.shape[3], "grad_output");
    py::gil_scoped_release release;
    DeviceGuard guard(device);
    cuda_max_pool2d_backward(planes, HW, PQ, dy.f(), indices.i64(), dx.f());
}

void avg_pool2d_forward(const Pool2dParams& p, const DeviceArray& x,
                        DeviceArray& y) {
    p.validate_avg();
    require(x, {p.N, p.C, p.H, p.W}, "x");
    require(y, {p.N, p.C, p.P(), p.Q()}, "out");
    const int device = common_device({&x, &y});
    py::gil_scoped_release release;
    DeviceGuard guard(device);
    cuda_avg_pool2d_forward(p, x.f(), y.f());
}

void avg_pool2d_backward(const Pool2dParams& p, const DeviceArray& dy,
                         DeviceArray& dx) {
    p.validate_avg();
    require(dy, {p.N, p.C, p.P(), p.Q()}, "grad_output");
    require(dx, {p.N, p.C, p.H, p.W}, "out");
    const int device = common_device({&dy, &dx});
    py::gil_scoped_release release;
    DeviceGuard guard(device);
    cuda_avg_pool2d_backward(p, dy.f(), dx.f());
}

void adaptive_avg_pool2d_forward(const DeviceArray& x, DeviceArray& y) {
    if (x.shape.size() != 4 || y.shape.size() != 4) throw std::invalid_argument("adaptive_avg_pool2d: expected 4-D arrays");
    require(x, x.shape, "x");
    require(y, {x.shape[0], x.shape[1], y.shape[2], y.shape[3]}, "out");
    const int device = common_device({&x, &y});
    const int64_t planes = checked_mul(x.shape[0], x.shape[1], "x");
    py::gil_scoped_release release;
    DeviceGuard guard(device);
    cuda_adaptive_avg_pool2d_forward(planes, x.shape[2], x.shape[3], y.shape[2], y.shape[3], x.f(), y.f());
}

void adaptive_avg_pool2d_backward(const DeviceArray& dy, DeviceArray& dx) {
    if (dy.shape.size() != 4 || dx.shape.size() != 4) throw std::invalid_argument("adaptive_avg_pool2d backward: expected 4-D arrays");
    require(dy, dy.shape, "grad_output");
    require(dx, {dy.shape[0], dy.shape[1], dx.shape[2], dx.shape[3]}, "out");
    const int device = common_device({&dy, &dx});
    const int64_t planes = checked_mul(dy.shape[0], dy.shape[1], "grad_output");
    py::gil_scoped_release release;
    DeviceGuard guard(device);
    cuda_adaptive_avg_pool2d_backward(planes, dx.shape[2], dx.shape[3], dy.shape[2], dy.shape[3], dy.f(), dx.f());
}

}  // namespace

void bind_gemm_conv_pool(py::module_& m) {
    namespace fc = fastconv;
    m.def("sgemm", &fc::sgemm, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("alpha"), py::arg("beta"),
          py::arg("trans_a"), py::arg("trans_b"));
    m.def("conv2d_forward", &fc::conv2d_forward, py::arg("algo"), py::arg("params"), py::arg("x"), py::arg("weight"),
          py::arg("bias").none(true), py::arg("out"), py::arg("workspace_limit"));
    m.def("conv2d_backward_input", &fc::conv2d_backward_input, py::arg("algo"), py::arg("params"),
          py::arg("grad_output"), py::arg("weight"), py::arg("out"), py::arg("workspace_limit"));
    m.def("conv2d_backward_weight", &fc::conv2d_backward_weight, py::arg("algo"), py::arg("params"),
          py::arg("input"), py::arg("grad_output"), py::arg("out"), py::arg("workspace_limit"));
    m.def("max_pool2d_forward", &fc::max_pool2d_forward, py::arg("params"), py::arg("x"),
          py::arg("out"), py::arg("indices").none(true));
    m.def("max_pool2d_backward", &fc::max_pool2d_backward, py::arg("grad_output"), py::arg("indices"), py::arg("out"));
    m.def("avg_pool2d_forward", &fc::avg_pool2d_forward, py::arg("params"), py::arg("x"), py::arg("out"));
    m.def("avg_pool2d_backward", &fc::avg_pool2d_backward, py::arg("params"), py::arg("grad_output"), py::arg("out"));
    m.def("adaptive_avg_pool2d_forward", &fc::adaptive_avg_pool2d_forward, py::arg("x"), py::arg("out"));
    m.def("adaptive_avg_pool2d_backward", &fc::adaptive_avg_pool2d_backward, py::arg("grad_output"), py::arg("out"));
}

}  // namespace fastconv
