// Convolution bindings: one generic entry per pass, dispatching on the algorithm name through a
// table, so adding an algorithm is one table line here plus its kernel file.
#include <map>
#include <tuple>

#include "bindings/bindings.h"
#include "conv/conv2d.h"
#include "conv/conv2d_implicit_gemm.h"

namespace fastconv::bindings {

namespace {

struct Conv2dKernels {
    Conv2dForwardFn forward;
    Conv2dInputGradFn input_grad;    // nullptr: the algorithm has no input-gradient kernel
    Conv2dWeightGradFn weight_grad;  // nullptr: the algorithm has no weight-gradient kernel
};

// Algorithm name (the Python algo= string) -> kernels.
const std::map<std::string, Conv2dKernels>& kernel_table() {
    static const std::map<std::string, Conv2dKernels> table = {
        {"direct", {conv2d_direct_forward, conv2d_direct_backward_input, conv2d_direct_backward_weight}},
        {"im2col", {conv2d_im2col_forward, conv2d_im2col_backward_input, conv2d_im2col_backward_weight}},
        {"implicit_gemm", {conv2d_implicit_gemm_forward, conv2d_implicit_gemm_backward_input, conv2d_implicit_gemm_backward_weight}},
        {"fft", {conv2d_fft_forward, conv2d_fft_backward_input, conv2d_fft_backward_weight}},
        {"winograd_f2", {conv2d_winograd_f2_forward, conv2d_winograd_f2_backward_input, conv2d_winograd_f2_backward_weight}},
        {"winograd_f4", {conv2d_winograd_f4_forward, conv2d_winograd_f4_backward_input, conv2d_winograd_f4_backward_weight}},
        {"winograd_s2", {conv2d_winograd_s2_forward, conv2d_winograd_s2_backward_input, nullptr}},
        {"depthwise", {conv2d_depthwise_forward, conv2d_depthwise_backward_input, conv2d_depthwise_backward_weight}},
    };
    return table;
}

const Conv2dKernels& kernels_for(const std::string& algo) {
    const auto& table = kernel_table();
    auto it = table.find(algo);
    if (it == table.end()) throw std::invalid_argument("algo: unknown convolution algorithm '" + algo + "'");
    return it->second;
}

std::vector<int64_t> input_shape(const Conv2dParams& p) { return {p.N, p.C, p.H, p.W}; }
std::vector<int64_t> weight_shape(const Conv2dParams& p) { return {p.K, p.C_per_group(), p.R, p.S}; }
std::vector<int64_t> output_shape(const Conv2dParams& p) { return {p.N, p.K, p.P(), p.Q()}; }

void forward(const std::string& algo, const Conv2dParams& p, const py::array& x, const py::array& w,
             const py::object& bias, py::array& y) {
    p.validate();
    const auto fn = kernels_for(algo).forward;
    require_shape(x, input_shape(p), "x");
    require_shape(w, weight_shape(p), "weight");
    require_shape(y, output_shape(p), "out");
    const float* bias_ptr = nullptr;
    if (!bias.is_none()) {
        py::array b = bias.cast<py::array>();
        require_shape(b, {p.K}, "bias");
        bias_ptr = data(b);
    }
    float* y_ptr = mutable_data(y, "out");
    py::gil_scoped_release release;
    fn(p, data(x), data(w), bias_ptr, y_ptr);
}

void backward_input(const std::string& algo, const Conv2dParams& p, const py::array& dy, const py::array& w,
                    py::array& dx) {
    p.validate();
    const auto fn = kernels_for(algo).input_grad;
    if (!fn) throw std::invalid_argument("algo: '" + algo + "' has no input-gradient kernel");
    require_shape(dy, output_shape(p), "grad_output");
    require_shape(w, weight_shape(p), "weight");
    require_shape(dx, input_shape(p), "out");
    float* dx_ptr = mutable_data(dx, "out");
    py::gil_scoped_release release;
    fn(p, data(dy), data(w), dx_ptr);
}

void backward_weight(const std::string& algo, const Conv2dParams& p, const py::array& x, const py::array& dy,
                     py::array& dw) {
    p.validate();
    const auto fn = kernels_for(algo).weight_grad;
    if (!fn) throw std::invalid_argument("algo: '" + algo + "' has no weight-gradient kernel");
    require_shape(x, input_shape(p), "input");
    require_shape(dy, output_shape(p), "grad_output");
    require_shape(dw, weight_shape(p), "out");
    float* dw_ptr = mutable_data(dw, "out");
    py::gil_scoped_release release;
    fn(p, data(x), data(dy), dw_ptr);
}

// A layout move between a problem's arrays and those of its phase problem `s` (conv/conv2d_phases.cpp).
using Move = void (*)(const Conv2dParams&, const float*, float*);
using ShapeOf = std::vector<int64_t> (*)(const Conv2dParams&);
struct MoveSpec {
    Move fn;
    bool from_sub;  // the source is the phase problem's array (else the problem's)
    ShapeOf shape;  // of the arrays on either side, taken from the problem they belong to
};

void run_move(const std::map<std::string, MoveSpec>& moves, const std::string& what, const std::string& move,
              const Conv2dParams& p, const Conv2dParams& s, const py::array& src, py::array& out) {
    auto it = moves.find(move);
    if (it == moves.end()) throw std::invalid_argument("move: unknown " + what + " move '" + move + "'");
    const MoveSpec& m = it->second;
    require_shape(src, m.shape(m.from_sub ? s : p), "src");
    require_shape(out, m.shape(m.from_sub ? p : s), "out");
    float* out_ptr = mutable_data(out, "out");
    py::gil_scoped_release release;
    m.fn(p, data(src), out_ptr);
}

// The four layout moves of the dilated-phases algorithm, by name.
void phases(const std::string& move, const Conv2dParams& p, const py::array& src, py::array& out) {
    p.validate();
    if (p.stride_h != 1 || p.stride_w != 1) throw std::invalid_argument("params: the phase split needs stride 1");
    static const std::map<std::string, MoveSpec> moves = {
        {"split_input", {conv2d_phase_split_input, false, input_shape}},
        {"merge_input", {conv2d_phase_merge_input, true, input_shape}},
        {"split_output", {conv2d_phase_split_output, false, output_shape}},
        {"merge_output", {conv2d_phase_merge_output, true, output_shape}},
    };
    run_move(moves, "phase", move, p, conv2d_phase_params(p), src, out);
}

// The four layout moves of the space-to-depth algorithm, by name.
void space_to_depth(const std::string& move, const Conv2dParams& p, const py::array& src, py::array& out) {
    p.validate();
    if (p.dil_h != 1 || p.dil_w != 1) throw std::invalid_argument("params: space to depth needs dilation 1");
    static const std::map<std::string, MoveSpec> moves = {
        {"split_input", {conv2d_space_to_depth_split_input, false, input_shape}},
        {"merge_input", {conv2d_space_to_depth_merge_input, true, input_shape}},
        {"split_weight", {conv2d_space_to_depth_split_weight, false, weight_shape}},
        {"merge_weight", {conv2d_space_to_depth_merge_weight, true, weight_shape}},
    };
    run_move(moves, "space-to-depth", move, p, conv2d_space_to_depth_params(p), src, out);
}

}  // namespace

void bind_conv(py::module_& m) {
    py::class_<Conv2dParams>(m, "Conv2dParams", "Shape and hyper-parameters of one 2-D convolution.")
        .def(py::init([](int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                         int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dil_h,
                         int64_t dil_w, int64_t groups) {
                 return Conv2dParams{N, C, H, W, K, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups};
             }),
             py::arg("N"), py::arg("C"), py::arg("H"), py::arg("W"), py::arg("K"), py::arg("R"), py::arg("S"),
             py::arg("stride_h") = 1, py::arg("stride_w") = 1, py::arg("pad_h") = 0, py::arg("pad_w") = 0,
             py::arg("dil_h") = 1, py::arg("dil_w") = 1, py::arg("groups") = 1)
        .def_readonly("N", &Conv2dParams::N)
        .def_readonly("C", &Conv2dParams::C)
        .def_readonly("H", &Conv2dParams::H)
        .def_readonly("W", &Conv2dParams::W)
        .def_readonly("K", &Conv2dParams::K)
        .def_readonly("R", &Conv2dParams::R)
        .def_readonly("S", &Conv2dParams::S)
        .def_readonly("stride_h", &Conv2dParams::stride_h)
        .def_readonly("stride_w", &Conv2dParams::stride_w)
        .def_readonly("pad_h", &Conv2dParams::pad_h)
        .def_readonly("pad_w", &Conv2dParams::pad_w)
        .def_readonly("dil_h", &Conv2dParams::dil_h)
        .def_readonly("dil_w", &Conv2dParams::dil_w)
        .def_readonly("groups", &Conv2dParams::groups)
        .def_property_readonly("P", &Conv2dParams::P)
        .def_property_readonly("Q", &Conv2dParams::Q)
        .def_property_readonly("flops", &Conv2dParams::flops)
        .def("validate", &Conv2dParams::validate)
        .def("__repr__", [](const Conv2dParams& p) {
            return "Conv2dParams(N=" + std::to_string(p.N) + ", C=" + std::to_string(p.C) + ", H=" +
                   std::to_string(p.H) + ", W=" + std::to_string(p.W) + ", K=" + std::to_string(p.K) +
                   ", R=" + std::to_string(p.R) + ", S=" + std::to_string(p.S) + ", stride=(" +
                   std::to_string(p.stride_h) + ", " + std::to_string(p.stride_w) + "), pad=(" +
                   std::to_string(p.pad_h) + ", " + std::to_string(p.pad_w) + "), dilation=(" +
                   std::to_string(p.dil_h) + ", " + std::to_string(p.dil_w) + "), groups=" +
                   std::to_string(p.groups) + ")";
        });
    m.def("conv2d_kernels", [] {
        py::dict d;
        for (const auto& [name, k] : kernel_table())
            d[py::str(name)] = py::make_tuple(k.forward != nullptr, k.input_grad != nullptr, k.weight_grad != nullptr);
        return d;
    }, "Compiled algorithms -> (has forward, has input grad, has weight grad).");
    m.def("conv2d_phase_params", &conv2d_phase_params, py::arg("params"),
          "The undilated problem over the d_h x d_w phase sub-images of a stride-1 dilated one.");
    m.def("conv2d_phases", &phases, py::arg("move"), py::arg("params"), py::arg("src"), py::arg("out"),
          "split_input / merge_input / split_output / merge_output between a stride-1 dilated problem's "
          "arrays and its phase problem's (conv2d_phase_params).");
    m.def("conv2d_space_to_depth_params", &conv2d_space_to_depth_params, py::arg("params"),
          "The stride-1 problem over the s_h x s_w input phases, stacked as channels, of a strided one.");
    m.def("conv2d_space_to_depth", &space_to_depth, py::arg("move"), py::arg("params"), py::arg("src"), py::arg("out"),
          "split_input / merge_input / split_weight / merge_weight between a strided problem's arrays and "
          "its space-to-depth problem's (conv2d_space_to_depth_params).");
    m.def("implicit_gemm_forward_plan", [](const Conv2dParams& p, int64_t images, int threads) {
        p.validate();
        if (images < 0 || threads < 1) throw std::invalid_argument("implicit_gemm_forward_plan: need images >= 0, threads >= 1");
        const ImplicitGemmForwardPlan plan = implicit_gemm_forward_plan(p, images, threads);
        py::dict d;
        d["one_block"] = plan.one_block, d["pixel_blocks"] = plan.pixel_blocks, d["block_pixels"] = plan.block_pixels;
        d["panel_parts"] = plan.panel_parts, d["busiest"] = plan.busiest, d["total"] = plan.total;
        d["by_rows"] = plan.by_rows, d["row_steps"] = plan.row_steps;
        return d;
    }, py::arg("params"), py::arg("images"), py::arg("threads"),
          "How the implicit-GEMM forward shares `images` images among `threads` threads: its pixel blocks, "
          "panel parts, the work (pixels x 16-channel panels) of the busiest thread and of all, and whether its "
          "tiles skip kernel rows that read only padding (by_rows) with the share of the steps they then run.");
    m.def("conv2d_forward", &forward, py::arg("algo"), py::arg("params"), py::arg("x"), py::arg("weight"),
          py::arg("bias"), py::arg("out"));
    m.def("conv2d_backward_input", &backward_input, py::arg("algo"), py::arg("params"), py::arg("grad_output"),
          py::arg("weight"), py::arg("out"));
    m.def("conv2d_backward_weight", &backward_weight, py::arg("algo"), py::arg("params"), py::arg("input"),
          py::arg("grad_output"), py::arg("out"));
}

}  // namespace fastconv::bindings
