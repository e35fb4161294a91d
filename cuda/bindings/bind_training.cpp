// fastconv._cuda: what training needs besides convolution and GEMM (bias, activations, losses,
// optimizer steps) and the array arithmetic behind fastconv.cuda.Array's operators.
#include "bindings/device_array.h"

namespace fastconv {
namespace {

// (N, C, inner) view of an array of shape (N, C, ...): bias/channel operations act on axis 1.
void channel_view(const DeviceArray& y, int64_t* N, int64_t* C, int64_t* inner) {
    if (y.shape.size() < 2) throw std::invalid_argument("expected an array of shape (N, C, ...), got " + shape_str(y.shape));
    *N = y.shape[0], *C = y.shape[1], *inner = 1;
    for (size_t i = 2; i < y.shape.size(); ++i) *inner = checked_mul(*inner, y.shape[i], "array");
}

void bias_add(DeviceArray& y, const DeviceArray& bias) {
    int64_t N, C, inner;
    channel_view(y, &N, &C, &inner);
    require(y, y.shape, "x");
    require(bias, {C}, "bias");
    on_device({&y, &bias}, [&] { cuda_bias_add(y.f(), bias.f(), N, C, inner); });
}

void bias_grad(const DeviceArray& dy, DeviceArray& db) {
    int64_t N, C, inner;
    channel_view(dy, &N, &C, &inner);
    require(dy, dy.shape, "grad_output");
    require(db, {C}, "out");
    on_device({&dy, &db}, [&] { cuda_bias_grad(dy.f(), N, C, inner, db.f()); });
}

Activation activation(const std::string& name) {
    if (name == "relu") return Activation::relu;
    if (name == "leaky_relu") return Activation::leaky_relu;
    if (name == "sigmoid") return Activation::sigmoid;
    if (name == "tanh") return Activation::tanh;
    throw std::invalid_argument("activation: unknown '" + name + "'");
}

void activation_forward(const std::string& name, float slope, const DeviceArray& x, DeviceArray& y) {
    const Activation act = activation(name);
    require(x, x.shape, "x");
    require(y, x.shape, "out");
    on_device({&x, &y}, [&] { cuda_activation_forward(act, slope, x.size(), x.f(), y.f()); });
}

void activation_backward(const std::string& name, float slope, const DeviceArray& saved, const DeviceArray& dy,
                         DeviceArray& dx) {
    const Activation act = activation(name);
    require(dy, dy.shape, "grad_output");
    require(saved, dy.shape, "saved");
    require(dx, dy.shape, "out");
    on_device({&saved, &dy, &dx}, [&] { cuda_activation_backward(act, slope, dy.size(), saved.f(), dy.f(), dx.f()); });
}

void sum(const DeviceArray& x, float scale, DeviceArray& out) {
    require(x, x.shape, "x");
    require(out, {}, "out");
    on_device({&x, &out}, [&] { cuda_sum(x.size(), x.f(), scale, out.f()); });
}

void check_logits(const DeviceArray& logits, const DeviceArray& labels) {
    if (logits.shape.size() != 2) throw std::invalid_argument("logits: expected a 2-D array (N, classes), got " + shape_str(logits.shape));
    require(logits, logits.shape, "logits");
    require(labels, {logits.shape[0]}, "labels", DType::int64);
}

void softmax_cross_entropy(const DeviceArray& logits, const DeviceArray& labels, DeviceArray& loss) {
    check_logits(logits, labels);
    require(loss, {}, "out");
    on_device({&logits, &labels, &loss}, [&] {
        cuda_softmax_cross_entropy(logits.shape[0], logits.shape[1], logits.f(), labels.i64(), loss.f());
    });
}

void softmax_cross_entropy_backward(const DeviceArray& logits, const DeviceArray& labels, float grad_loss,
                                    DeviceArray& dlogits) {
    check_logits(logits, labels);
    require(dlogits, logits.shape, "out");
    on_device({&logits, &labels, &dlogits}, [&] {
        cuda_softmax_cross_entropy_backward(logits.shape[0], logits.shape[1], logits.f(), labels.i64(), grad_loss,
                                            dlogits.f());
    });
}

void axpy(float alpha, const DeviceArray& x, DeviceArray& y) {
    require(x, x.shape, "x");
    require(y, x.shape, "y");
    on_device({&x, &y}, [&] { cuda_axpy(x.size(), alpha, x.f(), y.f()); });
}

void sgd_step(DeviceArray& param, const DeviceArray& grad, DeviceArray* buf, float lr, float momentum, float dampening,
              float weight_decay, bool nesterov, bool first_step) {
    require(param, param.shape, "param");
    require(grad, param.shape, "grad");
    if (buf) require(*buf, param.shape, "momentum_buffer");
    SgdConfig cfg;
    cfg.lr = lr, cfg.momentum = momentum, cfg.dampening = dampening, cfg.weight_decay = weight_decay;
    cfg.nesterov = nesterov, cfg.first_step = first_step;
    on_device({&param, &grad, buf}, [&] {
        cuda_sgd_step(param.size(), param.f(), grad.f(), buf ? buf->f() : nullptr, cfg);
    });
}

void adam_step(DeviceArray& param, const DeviceArray& grad, DeviceArray& m, DeviceArray& v, float step_size,
               float sqrt_bias_correction2, float beta1, float beta2, float eps, float weight_decay, float lr,
               bool decoupled) {
    require(param, param.shape, "param");
    require(grad, param.shape, "grad");
    require(m, param.shape, "exp_avg");
    require(v, param.shape, "exp_avg_sq");
    AdamConfig cfg;
    cfg.step_size = step_size, cfg.sqrt_bias_correction2 = sqrt_bias_correction2;
    cfg.beta1 = beta1, cfg.beta2 = beta2, cfg.eps = eps, cfg.weight_decay = weight_decay;
    cfg.lr = lr, cfg.decoupled = decoupled;
    on_device({&param, &grad, &m, &v}, [&] { cuda_adam_step(param.size(), param.f(), grad.f(), m.f(), v.f(), cfg); });
}

// ---- array arithmetic ----

// The layout of `shape` read from `a` at element `offset` through `strides`, checked to stay inside a
// (strides >= 0, largest offset < a.size()): Python computes strides, memory safety is checked here.
StridedLayout checked_layout(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides, int64_t offset,
                             const DeviceArray& a, const char* name) {
    if (shape.size() > size_t(StridedLayout::kMaxDims))
        throw std::invalid_argument(std::string(name) + ": at most 8 dimensions, got " + std::to_string(shape.size()));
    if (strides.size() != shape.size())
        throw std::invalid_argument(std::string(name) + ": expected one stride per dimension");
    StridedLayout l;
    l.ndim = int(shape.size());
    int64_t last = offset, count = 1;
    for (int d = 0; d < l.ndim; ++d) {
        if (shape[d] < 0 || strides[d] < 0)
            throw std::invalid_argument(std::string(name) + ": negative size or stride");
        l.shape[d] = shape[d];
        l.strides[d] = strides[d];
        count = checked_mul(count, shape[d], "array");
        if (shape[d] > 0) last += checked_mul(shape[d] - 1, strides[d], "array");
    }
    if (offset < 0 || (count > 0 && last >= a.size()))
        throw std::invalid_argument(std::string(name) + ": strided view reaches past the array's " +
                                    std::to_string(a.size()) + " elements");
    return l;
}

BinaryOp binary_op(const std::string& name) {
    static const std::pair<const char*, BinaryOp> ops[] = {{"add", BinaryOp::add}, {"sub", BinaryOp::sub},
                                                           {"mul", BinaryOp::mul}, {"div", BinaryOp::div},
                                                           {"maximum", BinaryOp::maximum},
                                                           {"greater", BinaryOp::greater}};
    for (const auto& [n, op] : ops)
        if (name == n) return op;
    throw std::invalid_argument("binary: unknown op '" + name + "'");
}

UnaryOp unary_op(const std::string& name) {
    static const std::pair<const char*, UnaryOp> ops[] = {
        {"affine", UnaryOp::affine}, {"reciprocal", UnaryOp::reciprocal}, {"power", UnaryOp::power},
        {"exp", UnaryOp::exp},       {"log", UnaryOp::log},               {"rsqrt", UnaryOp::rsqrt},
        {"fill", UnaryOp::fill}};
    for (const auto& [n, op] : ops)
        if (name == n) return op;
    throw std::invalid_argument("unary: unknown op '" + name + "'");
}

void binary(const std::string& name, const DeviceArray& a, const std::vector<int64_t>& a_strides, const DeviceArray& b,
            const std::vector<int64_t>& b_strides, DeviceArray& out) {
    const BinaryOp op = binary_op(name);
    require(a, a.shape, "a");
    require(b, b.shape, "b");
    require(out, out.shape, "out");
    const StridedLayout shape = checked_layout(out.shape, std::vector<int64_t>(out.shape.size(), 0), 0, out, "out");
    const StridedLayout la = checked_layout(out.shape, a_strides, 0, a, "a");
    const StridedLayout lb = checked_layout(out.shape, b_strides, 0, b, "b");
    on_device({&a, &b, &out}, [&] { cuda_binary(op, shape, a.f(), la, b.f(), lb, out.f()); });
}

void unary(const std::string& name, float alpha, float beta, const DeviceArray* x, DeviceArray& out) {
    const UnaryOp op = unary_op(name);
    require(out, out.shape, "out");
    if (x) require(*x, out.shape, "x");
    else if (op != UnaryOp::fill) throw std::invalid_argument("unary: x is required");
    on_device({x, &out}, [&] { cuda_unary(op, alpha, beta, out.size(), x ? x->f() : nullptr, out.f()); });
}

void strided_copy(const std::vector<int64_t>& shape, const DeviceArray& src, int64_t src_offset,
                  const std::vector<int64_t>& src_strides, DeviceArray& dst, int64_t dst_offset,
                  const std::vector<int64_t>& dst_strides) {
    if (src.dtype != dst.dtype) throw py::type_error("strided_copy: src and dst dtypes differ");
    const StridedLayout ls = checked_layout(shape, src_strides, src_offset, src, "src");
    const StridedLayout ld = checked_layout(shape, dst_strides, dst_offset, dst, "dst");
    const size_t item = itemsize(src.dtype);
    on_device({&src, &dst}, [&] {
        cuda_strided_copy(item, ls, static_cast<const char*>(src.data) + src_offset * item, ls,
                          static_cast<char*>(dst.data) + dst_offset * item, ld);
    });
}

void reduce(const std::string& name, const DeviceArray& x, const std::vector<int64_t>& kept_shape,
            const std::vector<int64_t>& kept_strides, const std::vector<int64_t>& reduced_shape,
            const std::vector<int64_t>& reduced_strides, float scale, DeviceArray& out) {
    ReduceOp op;
    if (name == "sum") op = ReduceOp::sum;
    else if (name == "max") op = ReduceOp::max;
    else throw std::invalid_argument("reduce: unknown op '" + name + "'");
    require(x, x.shape, "x");
    require(out, out.shape, "out");
    const StridedLayout kept = checked_layout(kept_shape, kept_strides, 0, x, "x");
    const StridedLayout reduced = checked_layout(reduced_shape, reduced_strides, 0, x, "x");
    int64_t n_out = 1, last = 0;
    for (int d = 0; d < kept.ndim; ++d) {
        n_out = checked_mul(n_out, kept.shape[d], "array");
        if (kept.shape[d] > 0) last += (kept.shape[d] - 1) * kept.strides[d];
    }
    for (int d = 0; d < reduced.ndim; ++d)
        if (reduced.shape[d] > 0) last += (reduced.shape[d] - 1) * reduced.strides[d];
    if (n_out != out.size()) throw std::invalid_argument("reduce: out has the wrong number of elements");
    if (n_out > 0 && x.size() > 0 && last >= x.size()) throw std::invalid_argument("reduce: view reaches past x");
    if (op == ReduceOp::max && n_out > 0 && x.size() == 0) throw std::invalid_argument("max: empty reduction");
    on_device({&x, &out}, [&] { cuda_reduce(op, kept, reduced, x.f(), scale, out.f()); });
}

void argmax_rows(const DeviceArray& x, DeviceArray& out) {
    if (x.shape.empty()) throw std::invalid_argument("argmax: expected at least 1-D, got a 0-d array");
    require(x, x.shape, "x");
    std::vector<int64_t> rows_shape(x.shape.begin(), x.shape.end() - 1);
    require(out, rows_shape, "out", DType::int64);
    const int64_t cols = x.shape.back(), rows = out.size();
    on_device({&x, &out}, [&] { cuda_argmax_rows(rows, cols, x.f(), out.i64()); });
}

void argmax_hits(const DeviceArray& x, const DeviceArray& labels, DeviceArray& hits) {
    if (x.shape.size() != 2) throw std::invalid_argument("logits: expected a 2-D array (N, classes), got " + shape_str(x.shape));
    require(x, x.shape, "logits");
    require(labels, {x.shape[0]}, "labels", DType::int64);
    require(hits, {x.shape[0]}, "out");
    on_device({&x, &labels, &hits}, [&] { cuda_argmax_hits(x.shape[0], x.shape[1], x.f(), labels.i64(), hits.f()); });
}

void dropout(float p, uint64_t seed, const DeviceArray& x, DeviceArray& y, DeviceArray& mask) {
    require(x, x.shape, "x");
    require(y, x.shape, "out");
    require(mask, x.shape, "mask");
    on_device({&x, &y, &mask}, [&] { cuda_dropout(x.size(), p, seed, x.f(), y.f(), mask.f()); });
}

void axpby(float alpha, const DeviceArray& x, float beta, DeviceArray& y) {
    require(x, x.shape, "x");
    require(y, x.shape, "y");
    on_device({&x, &y}, [&] { cuda_axpby(x.size(), alpha, x.f(), beta, y.f()); });
}

void add_int64(int64_t value, DeviceArray& y) {
    require(y, y.shape, "y", DType::int64);
    on_device({&y}, [&] { cuda_add_int64(y.size(), value, y.i64()); });
}

}  // namespace

void bind_training(py::module_& m) {
    namespace fc = fastconv;
    m.def("bias_add", &fc::bias_add, py::arg("x"), py::arg("bias"));
    m.def("bias_grad", &fc::bias_grad, py::arg("grad_output"), py::arg("out"));
    m.def("activation_forward", &fc::activation_forward, py::arg("name"), py::arg("slope"), py::arg("x"), py::arg("out"));
    m.def("activation_backward", &fc::activation_backward, py::arg("name"), py::arg("slope"), py::arg("saved"),
          py::arg("grad_output"), py::arg("out"));
    m.def("sum", &fc::sum, py::arg("x"), py::arg("scale"), py::arg("out"));
    m.def("softmax_cross_entropy", &fc::softmax_cross_entropy, py::arg("logits"), py::arg("labels"), py::arg("out"));
    m.def("softmax_cross_entropy_backward", &fc::softmax_cross_entropy_backward, py::arg("logits"), py::arg("labels"),
          py::arg("grad_loss"), py::arg("out"));
    m.def("axpy", &fc::axpy, py::arg("alpha"), py::arg("x"), py::arg("y"));
    m.def("sgd_step", &fc::sgd_step, py::arg("param"), py::arg("grad"), py::arg("momentum_buffer").none(true),
          py::arg("lr"), py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"),
          py::arg("first_step"));
    m.def("adam_step", &fc::adam_step, py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"),
          py::arg("step_size"), py::arg("sqrt_bias_correction2"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
          py::arg("weight_decay"), py::arg("lr"), py::arg("decoupled"));

    // ---- array arithmetic ----
    m.def("binary", &fc::binary, py::arg("op"), py::arg("a"), py::arg("a_strides"), py::arg("b"), py::arg("b_strides"),
          py::arg("out"));
    m.def("unary", &fc::unary, py::arg("op"), py::arg("alpha"), py::arg("beta"), py::arg("x").none(true),
          py::arg("out"));
    m.def("strided_copy", &fc::strided_copy, py::arg("shape"), py::arg("src"), py::arg("src_offset"),
          py::arg("src_strides"), py::arg("dst"), py::arg("dst_offset"), py::arg("dst_strides"));
    m.def("reduce", &fc::reduce, py::arg("op"), py::arg("x"), py::arg("kept_shape"), py::arg("kept_strides"),
          py::arg("reduced_shape"), py::arg("reduced_strides"), py::arg("scale"), py::arg("out"));
    m.def("argmax_rows", &fc::argmax_rows, py::arg("x"), py::arg("out"));
    m.def("argmax_hits", &fc::argmax_hits, py::arg("logits"), py::arg("labels"), py::arg("out"));
    m.def("dropout", &fc::dropout, py::arg("p"), py::arg("seed"), py::arg("x"), py::arg("out"), py::arg("mask"));
    m.def("axpby", &fc::axpby, py::arg("alpha"), py::arg("x"), py::arg("beta"), py::arg("y"));
    m.def("add_int64", &fc::add_int64, py::arg("value"), py::arg("y"));
}

}  // namespace fastconv
