// fastconv._cuda: the CUDA backend's Python module. pybind11 appears only here in cuda/.
// Python (src/fastconv/cuda.py) validates arguments and allocates outputs; the bindings re-check
// what memory safety depends on (dtype, shape, same device), release the GIL and call a launcher.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <memory>
#include <new>
#include <vector>

#include "common/params.h"
#include "dlpack.h"
#include "launch.h"

namespace py = pybind11;

namespace fastconv {
namespace {

enum class DType { float32, int64 };

size_t itemsize(DType t) { return t == DType::float32 ? 4 : 8; }
const char* dtype_name(DType t) { return t == DType::float32 ? "float32" : "int64"; }

std::string shape_str(const std::vector<int64_t>& s) {
    std::string out = "(";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + (s.size() == 1 ? ",)" : ")");
}

// Device memory behind one or more arrays: a block of the caching allocator, or a tensor imported
// through DLPack whose producer is told (by its deleter) when the last array using it is gone.
struct Storage {
    void* ptr = nullptr;
    DLManagedTensor* imported = nullptr;
    int device = 0;

    Storage() = default;
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;
    ~Storage() {
        if (imported) {
            if (imported->deleter) imported->deleter(imported);
        } else if (ptr) {
            cuda_free(ptr);
        }
    }
};

// A dense C-contiguous device array of float32 (or int64, for pooling indices and class labels).
struct DeviceArray {
    std::shared_ptr<Storage> storage;
    void* data = nullptr;
    std::vector<int64_t> shape;
    DType dtype = DType::float32;
    int device = 0;

    int64_t size() const {
        int64_t n = 1;
        for (int64_t s : shape) n = checked_mul(n, s, "array");
        return n;
    }
    size_t nbytes() const { return size_t(checked_mul(size(), int64_t(itemsize(dtype)), "array")); }
    float* f() const { return static_cast<float*>(data); }
    int64_t* i64() const { return static_cast<int64_t*>(data); }
};

DeviceArray make_empty(const std::vector<int64_t>& shape, DType dtype, int device) {
    for (int64_t s : shape)
        if (s < 0) throw std::invalid_argument("shape: sizes must be >= 0, got " + shape_str(shape));
    DeviceArray a;
    a.shape = shape;
    a.dtype = dtype;
    a.device = device;
    const size_t bytes = a.nbytes();  // throws std::overflow_error before anything is allocated
    a.storage = std::make_shared<Storage>();
    a.storage->device = device;
    py::gil_scoped_release release;
    DeviceGuard guard(device);
    a.storage->ptr = cuda_alloc(bytes);
    a.data = a.storage->ptr;
    return a;
}

DType dtype_of(const py::array& x, const char* name) {
    if (py::isinstance<py::array_t<float>>(x)) return DType::float32;
    if (py::isinstance<py::array_t<int64_t>>(x)) return DType::int64;
    throw py::type_error(std::string(name) + ": expected dtype float32 or int64, got " +
                         py::str(x.dtype()).cast<std::string>());
}

// Host<->device copies made on Python's behalf (to_device, numpy()), for tests that a training step
// stays on the device. Atomic: copies run with the GIL released.
std::atomic<int64_t> host_to_device_copies{0}, device_to_host_copies{0};

DeviceArray to_device(const py::array& x, int device) {
    const DType dtype = dtype_of(x, "array");
    if (!(x.flags() & py::array::c_style)) throw std::invalid_argument("array: expected a C-contiguous array");
    DeviceArray a = make_empty(std::vector<int64_t>(x.shape(), x.shape() + x.ndim()), dtype, device);
    const void* src = x.data();
    const size_t bytes = a.nbytes();
    py::gil_scoped_release release;
    DeviceGuard guard(device);
    cuda_copy_to_device(a.data, src, bytes);
    ++host_to_device_copies;
    return a;
}

py::array to_numpy(const DeviceArray& a) {
    py::array out = a.dtype == DType::float32 ? py::array(py::array_t<float>(a.shape))
                                              : py::array(py::array_t<int64_t>(a.shape));
    void* dst = out.mutable_data();
    const size_t bytes = a.nbytes();
    py::gil_scoped_release release;
    DeviceGuard guard(a.device);
    cuda_copy_to_host(dst, a.data, bytes);
    ++device_to_host_copies;
    return out;
}

DeviceArray copy_array(const DeviceArray& a) {
    DeviceArray b = make_empty(a.shape, a.dtype, a.device);
    const size_t bytes = a.nbytes();
    py::gil_scoped_release release;
    DeviceGuard guard(a.device);
    cuda_copy_device(b.data, a.data, bytes);
    return b;
}

DeviceArray reshape(const DeviceArray& a, const std::vector<int64_t>& shape) {
    DeviceArray b = a;
    b.shape = shape;
    for (int64_t s : shape)
        if (s < 0) throw std::invalid_argument("shape: sizes must be >= 0, got " + shape_str(shape));
    if (b.size() != a.size())
        throw std::invalid_argument("reshape: cannot reshape " + shape_str(a.shape) + " into " + shape_str(shape));
    return b;
}

// ---- DLPack ------------------------------------------------------------------------------------------

// What an exported DLManagedTensor keeps alive: the storage and the shape/strides it points to.
struct ExportContext {
    std::shared_ptr<Storage> storage;
    std::vector<int64_t> shape, strides;
    DLManagedTensor managed{};
};

void export_deleter(DLManagedTensor* self) { delete static_cast<ExportContext*>(self->manager_ctx); }

void capsule_destructor(PyObject* capsule) {
    // A consumer renames the capsule to "used_dltensor" once it owns the tensor; otherwise we still do.
    if (PyCapsule_IsValid(capsule, "dltensor")) {
        auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
        if (managed && managed->deleter) managed->deleter(managed);
    }
}

py::object to_dlpack(const DeviceArray& a, const py::object& stream, const py::object& dl_device,
                     const py::object& copy) {
    if (!dl_device.is_none()) {
        auto dev = dl_device.cast<std::pair<int, int>>();
        if (dev.first != kDLCUDA || dev.second != a.device)
            throw py::buffer_error("__dlpack__: only the array's own device (2, " + std::to_string(a.device) +
                                   ") is supported");
    }
    const DeviceArray src = (!copy.is_none() && copy.cast<bool>()) ? copy_array(a) : a;
    if (!stream.is_none()) {
        const auto s = stream.cast<int64_t>();
        if (s == 0 || s < -1) throw std::invalid_argument("__dlpack__: stream must be None, -1, 1, 2 or a stream handle");
        if (s != -1) {
            py::gil_scoped_release release;
            DeviceGuard guard(src.device);
            cuda_stream_wait_default(uintptr_t(s));
        }
    }
    auto ctx = std::make_unique<ExportContext>();
    ctx->storage = src.storage;
    ctx->shape = src.shape;
    ctx->strides.assign(src.shape.size(), 1);
    for (size_t i = src.shape.size(); i-- > 1;) ctx->strides[i - 1] = ctx->strides[i] * src.shape[i];
    DLTensor& t = ctx->managed.dl_tensor;
    t.data = src.data;
    t.device = DLDevice{kDLCUDA, src.device};
    t.ndim = int32_t(src.shape.size());
    t.dtype = src.dtype == DType::float32 ? DLDataType{kDLFloat, 32, 1} : DLDataType{kDLInt, 64, 1};
    t.shape = ctx->shape.data();
    t.strides = ctx->strides.data();
    t.byte_offset = 0;
    ctx->managed.manager_ctx = ctx.get();
    ctx->managed.deleter = export_deleter;
    PyObject* capsule = PyCapsule_New(&ctx->managed, "dltensor", capsule_destructor);
    if (!capsule) throw py::error_already_set();
    ctx.release();  // owned by the capsule (or its consumer) from here on
    return py::reinterpret_steal<py::object>(capsule);
}

// Takes a "dltensor" capsule from a CUDA producer (torch, CuPy) without copying: the producer's
// memory is used in place and released through its deleter when the last array is gone.
DeviceArray from_dlpack_capsule(const py::capsule& capsule) {
    PyObject* cap = capsule.ptr();
    if (!PyCapsule_IsValid(cap, "dltensor"))
        throw std::invalid_argument("from_dlpack: expected an unused 'dltensor' capsule");
    auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
    const DLTensor& t = managed->dl_tensor;
    if (t.device.device_type != kDLCUDA)
        throw std::invalid_argument("from_dlpack: expected a CUDA tensor, got DLPack device type " +
                                    std::to_string(t.device.device_type));
    DType dtype;
    if (t.dtype.code == kDLFloat && t.dtype.bits == 32 && t.dtype.lanes == 1) {
        dtype = DType::float32;
    } else if (t.dtype.code == kDLInt && t.dtype.bits == 64 && t.dtype.lanes == 1) {
        dtype = DType::int64;
    } else {
        throw py::type_error("from_dlpack: expected float32 or int64 elements (DLPack code " +
                             std::to_string(t.dtype.code) + ", bits " + std::to_string(t.dtype.bits) + ")");
    }
    if (t.ndim < 0 || (t.ndim > 0 && t.shape == nullptr)) throw std::invalid_argument("from_dlpack: malformed tensor");
    std::vector<int64_t> shape(t.shape, t.shape + t.ndim);
    if (t.strides) {
        int64_t expected = 1;
        for (int i = t.ndim - 1; i >= 0; --i) {
            if (shape[i] != 1 && t.strides[i] != expected)
                throw std::invalid_argument("from_dlpack: expected a C-contiguous tensor (call .contiguous() first)");
            expected *= shape[i];
        }
    }
    DeviceArray a;
    a.shape = shape;
    a.dtype = dtype;
    a.device = t.device.device_id;
    a.size();  // overflow check
    a.data = static_cast<char*>(t.data) + t.byte_offset;
    if (reinterpret_cast<uintptr_t>(a.data) % itemsize(dtype) != 0)
        throw std::invalid_argument("from_dlpack: data pointer is not aligned to its element size");
    a.storage = std::make_shared<Storage>();
    a.storage->device = a.device;
    a.storage->imported = managed;
    if (PyCapsule_SetName(cap, "used_dltensor") != 0) {
        a.storage->imported = nullptr;  // the capsule still owns it
        throw py::error_already_set();
    }
    return a;
}

// ---- argument checks shared by the op bindings ---------------------------------------------------------

void require(const DeviceArray& a, const std::vector<int64_t>& shape, const char* name,
             DType dtype = DType::float32) {
    if (a.dtype != dtype)
        throw py::type_error(std::string(name) + ": expected dtype " + dtype_name(dtype) + ", got " +
                             dtype_name(a.dtype));
    if (a.shape != shape)
        throw std::invalid_argument(std::string(name) + ": expected shape " + shape_str(shape) + ", got " +
                                    shape_str(a.shape));
}

// All arrays of one call must live on the same device; returns it.
int common_device(std::initializer_list<const DeviceArray*> arrays) {
    int device = -1;
    for (const DeviceArray* a : arrays) {
        if (!a) continue;
        if (device == -1) device = a->device;
        if (a->device != device)
            throw std::invalid_argument("arrays are on different devices (cuda:" + std::to_string(device) +
                                        " and cuda:" + std::to_string(a->device) + ")");
    }
    return device < 0 ? 0 : device;
}

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

// ---- training kernels ----

// Runs `launch` on the common device of `arrays` with the GIL released.
template <typename F>
void on_device(std::initializer_list<const DeviceArray*> arrays, F&& launch) {
    const int device = common_device(arrays);
    py::gil_scoped_release release;
    DeviceGuard guard(device);
    launch();
}

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
}  // namespace fastconv

using fastconv::DeviceArray;
using fastconv::DType;

PYBIND11_MODULE(_cuda, m) {
    namespace fc = fastconv;
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
    m.def("device_count", &fc::cuda_device_count);
    m.def("device_name", &fc::cuda_device_name, py::arg("device"));
    m.def("runtime_version", &fc::cuda_runtime_version);
    m.def("synchronize", [](int device) {
        py::gil_scoped_release release;
        fc::DeviceGuard guard(device);
        fc::cuda_synchronize();
    }, py::arg("device") = 0);
    m.def("saxpy", [](float alpha, py::array_t<float, py::array::c_style> x, py::array_t<float, py::array::c_style> y) {
        if (x.size() != y.size()) throw std::invalid_argument("saxpy: x and y must have the same size");
        float* yp = y.mutable_data();
        const float* xp = x.data();
        const int64_t n = x.size();
        py::gil_scoped_release release;
        fc::cuda_saxpy_host(n, alpha, xp, yp);
    }, py::arg("alpha"), py::arg("x"), py::arg("y"));

    // ---- memory ----
    m.def("empty_cache", [] {
        py::gil_scoped_release release;
        fc::cuda_empty_cache();
    });
    m.def("memory_stats", [] {
        py::dict d;
        d["allocated_bytes"] = fc::cuda_allocated_bytes();
        d["cached_bytes"] = fc::cuda_cached_bytes();
        return d;
    });

    py::class_<DeviceArray>(m, "DeviceArray", "Dense C-contiguous device array (float32 or int64).")
        .def_property_readonly("shape", [](const DeviceArray& a) { return py::tuple(py::cast(a.shape)); })
        .def_property_readonly("dtype", [](const DeviceArray& a) { return fc::dtype_name(a.dtype); })
        .def_property_readonly("device", [](const DeviceArray& a) { return a.device; })
        .def_property_readonly("size", &DeviceArray::size)
        .def_property_readonly("nbytes", &DeviceArray::nbytes)
        .def_property_readonly("data_ptr", [](const DeviceArray& a) { return reinterpret_cast<uintptr_t>(a.data); })
        .def("numpy", &fc::to_numpy)
        .def("copy", &fc::copy_array)
        .def("reshape", &fc::reshape, py::arg("shape"))
        .def("dlpack", &fc::to_dlpack, py::arg("stream"), py::arg("dl_device"), py::arg("copy"));
    m.def("empty", [](const std::vector<int64_t>& shape, const std::string& dtype, int device) {
        if (dtype != "float32" && dtype != "int64")
            throw py::type_error("dtype: expected 'float32' or 'int64', got '" + dtype + "'");
        return fc::make_empty(shape, dtype == "float32" ? DType::float32 : DType::int64, device);
    }, py::arg("shape"), py::arg("dtype"), py::arg("device"));
    m.def("to_device", &fc::to_device, py::arg("array"), py::arg("device"));
    m.def("from_dlpack_capsule", &fc::from_dlpack_capsule, py::arg("capsule"));
    m.def("fill_zero", [](DeviceArray& a) {
        const size_t bytes = a.nbytes();
        py::gil_scoped_release release;
        fc::DeviceGuard guard(a.device);
        fc::cuda_fill_zero(a.data, bytes);
    }, py::arg("a"));

    // ---- kernels ----
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
    m.def("transfer_counts", [] {
        py::dict d;
        d["host_to_device"] = fc::host_to_device_copies.load();
        d["device_to_host"] = fc::device_to_host_copies.load();
        return d;
    });
    m.def("reset_transfer_counts", [] {
        fc::host_to_device_copies = 0;
        fc::device_to_host_copies = 0;
    });
}
