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

Conv2dParams conv_params(const std::vector<int64_t>& v) {
    if (v.size() != 14) throw std::invalid_argument("conv2d: expected 14 parameters (N C H W K R S sh sw ph pw dh dw groups)");
    Conv2dParams p{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13]};
    p.validate();
    return p;
}
std::vector<int64_t> input_shape(const Conv2dParams& p) { return {p.N, p.C, p.H, p.W}; }
std::vector<int64_t> weight_shape(const Conv2dParams& p) { return {p.K, p.C_per_group(), p.R, p.S}; }
std::vector<int64_t> output_shape(const Conv2dParams& p) { return {p.N, p.K, p.P(), p.Q()}; }

void conv2d_forward(const std::string& algo, const std::vector<int64_t>& pv, const DeviceArray& x,
                    const DeviceArray& w, const DeviceArray* bias, DeviceArray& y, size_t workspace_limit) {
    const Conv2dParams p = conv_params(pv);
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

void conv2d_backward_input(const std::string& algo, const std::vector<int64_t>& pv, const DeviceArray& dy,
                           const DeviceArray& w, DeviceArray& dx, size_t workspace_limit) {
    const Conv2dParams p = conv_params(pv);
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

void conv2d_backward_weight(const std::string& algo, const std::vector<int64_t>& pv, const DeviceArray& x,
                            const DeviceArray& dy, DeviceArray& dw, size_t workspace_limit) {
    const Conv2dParams p = conv_params(pv);
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

Pool2dParams pool_params(const std::vector<int64_t>& v, bool ceil_mode, bool count_include_pad) {
    if (v.size() != 13)
        throw std::invalid_argument("pool2d: expected 13 parameters (N C H W kh kw sh sw ph pw dh dw divisor_override)");
    Pool2dParams p;
    p.N = v[0], p.C = v[1], p.H = v[2], p.W = v[3];
    p.kernel_h = v[4], p.kernel_w = v[5], p.stride_h = v[6], p.stride_w = v[7], p.pad_h = v[8], p.pad_w = v[9];
    p.dil_h = v[10], p.dil_w = v[11], p.divisor_override = v[12];
    p.ceil_mode = ceil_mode;
    p.count_include_pad = count_include_pad;
    p.validate();
    return p;
}

void max_pool2d_forward(const std::vector<int64_t>& pv, bool ceil_mode, const DeviceArray& x, DeviceArray& y,
                        DeviceArray* indices) {
    const Pool2dParams p = pool_params(pv, ceil_mode, true);
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

void avg_pool2d_forward(const std::vector<int64_t>& pv, bool ceil_mode, bool count_include_pad, const DeviceArray& x,
                        DeviceArray& y) {
    const Pool2dParams p = pool_params(pv, ceil_mode, count_include_pad);
    require(x, {p.N, p.C, p.H, p.W}, "x");
    require(y, {p.N, p.C, p.P(), p.Q()}, "out");
    const int device = common_device({&x, &y});
    py::gil_scoped_release release;
    DeviceGuard guard(device);
    cuda_avg_pool2d_forward(p, x.f(), y.f());
}

void avg_pool2d_backward(const std::vector<int64_t>& pv, bool ceil_mode, bool count_include_pad, const DeviceArray& dy,
                         DeviceArray& dx) {
    const Pool2dParams p = pool_params(pv, ceil_mode, count_include_pad);
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
    m.def("conv2d_algorithms", [] { return std::vector<std::string>{"direct", "im2col"}; });
    m.def("conv2d_forward", &fc::conv2d_forward, py::arg("algo"), py::arg("params"), py::arg("x"), py::arg("weight"),
          py::arg("bias").none(true), py::arg("out"), py::arg("workspace_limit"));
    m.def("conv2d_backward_input", &fc::conv2d_backward_input, py::arg("algo"), py::arg("params"),
          py::arg("grad_output"), py::arg("weight"), py::arg("out"), py::arg("workspace_limit"));
    m.def("conv2d_backward_weight", &fc::conv2d_backward_weight, py::arg("algo"), py::arg("params"),
          py::arg("input"), py::arg("grad_output"), py::arg("out"), py::arg("workspace_limit"));
    m.def("max_pool2d_forward", &fc::max_pool2d_forward, py::arg("params"), py::arg("ceil_mode"), py::arg("x"),
          py::arg("out"), py::arg("indices").none(true));
    m.def("max_pool2d_backward", &fc::max_pool2d_backward, py::arg("grad_output"), py::arg("indices"), py::arg("out"));
    m.def("avg_pool2d_forward", &fc::avg_pool2d_forward, py::arg("params"), py::arg("ceil_mode"),
          py::arg("count_include_pad"), py::arg("x"), py::arg("out"));
    m.def("avg_pool2d_backward", &fc::avg_pool2d_backward, py::arg("params"), py::arg("ceil_mode"),
          py::arg("count_include_pad"), py::arg("grad_output"), py::arg("out"));
    m.def("adaptive_avg_pool2d_forward", &fc::adaptive_avg_pool2d_forward, py::arg("x"), py::arg("out"));
    m.def("adaptive_avg_pool2d_backward", &fc::adaptive_avg_pool2d_backward, py::arg("grad_output"), py::arg("out"));
}

}  // namespace fastconv
