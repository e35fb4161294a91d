// What the binding files of fastconv._cuda share: the device array type behind fastconv.cuda.Array
// and the argument checks every op binding runs. pybind11 appears only in cuda/bindings.
// Python (src/fastconv) validates arguments and allocates outputs; the bindings re-check what
// memory safety depends on (dtype, shape, same device), release the GIL and call a launcher.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "common/params.h"
#include "dlpack.h"
#include "launch.h"

namespace fastconv {

namespace py = pybind11;

enum class DType { float32, int64 };

inline size_t itemsize(DType t) { return t == DType::float32 ? 4 : 8; }
inline const char* dtype_name(DType t) { return t == DType::float32 ? "float32" : "int64"; }

inline std::string shape_str(const std::vector<int64_t>& s) {
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

// A new uninitialized array on `device` (throws before allocating when the size overflows).
DeviceArray make_empty(const std::vector<int64_t>& shape, DType dtype, int device);

// Host<->device copies made on Python's behalf (to_device, numpy()), for tests that a training step
// stays on the device. Atomic: copies run with the GIL released.
extern std::atomic<int64_t> host_to_device_copies, device_to_host_copies;

// ---- argument checks shared by the op bindings ---------------------------------------------------------

inline void require(const DeviceArray& a, const std::vector<int64_t>& shape, const char* name,
             DType dtype = DType::float32) {
    if (a.dtype != dtype)
        throw py::type_error(std::string(name) + ": expected dtype " + dtype_name(dtype) + ", got " +
                             dtype_name(a.dtype));
    if (a.shape != shape)
        throw std::invalid_argument(std::string(name) + ": expected shape " + shape_str(shape) + ", got " +
                                    shape_str(a.shape));
}

// All arrays of one call must live on the same device; returns it.
inline int common_device(std::initializer_list<const DeviceArray*> arrays) {
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

// Runs `launch` on the common device of `arrays` with the GIL released.
template <typename F>
inline void on_device(std::initializer_list<const DeviceArray*> arrays, F&& launch) {
    const int device = common_device(arrays);
    py::gil_scoped_release release;
    DeviceGuard guard(device);
    launch();
}


// Each registers one family of functions on the module.
void bind_arrays(py::module_& m);          // bind_arrays.cpp: device queries, memory, DeviceArray, DLPack
void bind_gemm_conv_pool(py::module_& m);  // bind_gemm_conv_pool.cpp: sgemm, conv2d, pooling
void bind_training(py::module_& m);        // bind_training.cpp: training kernels and array arithmetic

}  // namespace fastconv
