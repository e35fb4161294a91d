// fastconv._cuda: device queries, the caching allocator, DeviceArray (fastconv.cuda.Array's storage),
// host<->device copies (counted) and DLPack in both directions.
#include "bindings/device_array.h"

namespace fastconv {

std::atomic<int64_t> host_to_device_copies{0}, device_to_host_copies{0};

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

namespace {

DType dtype_of(const py::array& x, const char* name) {
    if (py::isinstance<py::array_t<float>>(x)) return DType::float32;
    if (py::isinstance<py::array_t<int64_t>>(x)) return DType::int64;
    throw py::type_error(std::string(name) + ": expected dtype float32 or int64, got " +
                         py::str(x.dtype()).cast<std::string>());
}

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

}  // namespace

void bind_arrays(py::module_& m) {
    namespace fc = fastconv;
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

}  // namespace fastconv
