"""Layers: Module (parameters, buffers, train/eval, state_dict) and the building blocks of CNNs."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .._geometry import conv_plan
from .._validation import pair, require_int, shape_str
from ..autograd import Tensor, to_device
from . import functional as F
from . import init


class Parameter(Tensor):
    """A Tensor that a Module owns and optimizers update: requires_grad is on by default."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data, requires_grad)


class Module:
    """Base class of layers and models. Assigning a Parameter or a Module to an attribute registers it
    (in assignment order), so ``parameters()`` and ``state_dict()`` find it."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if name in self._buffers and not isinstance(value, (Parameter, Module)):
            self._buffers[name] = value  # e.g. `self.num_batches_tracked += 1` stays a buffer
            object.__setattr__(self, name, value)
            return
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, array: np.ndarray) -> None:
        """Keep `array` (state that is not trained, e.g. running statistics) in the state_dict."""
        self.__setattr__(name, array)
        self._buffers[name] = array

    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- shape inference (no arrays: cheap at any size)
    def output_shape(self, shape) -> tuple:
        """The output shape for an input of `shape`, computed without running the layer (the same
        output-size functions as the kernels). Raises ValueError where forward would."""
        shape = tuple(int(d) for d in shape)
        out = tuple(self.infer_shape(shape))
        if _shape_trace is not None:
            _shape_trace.append((self, shape, out))
        return out

    def infer_shape(self, shape: tuple) -> tuple:
        """Override in layers: the output shape of forward() for an input of `shape`."""
        raise NotImplementedError(f"{type(self).__name__} does not define infer_shape()")

    # -- traversal
    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return [m for _, m in self.named_modules()]

    def children(self):
        return list(self._modules.values())

    def named_parameters(self):
        """(dotted name, Parameter) pairs, each parameter once."""
        seen = set()
        for prefix, m in self.named_modules():
            for name, p in m._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        for prefix, m in self.named_modules():
            for name, b in m._buffers.items():
                yield (f"{prefix}.{name}" if prefix else name), b

    # -- modes and devices
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def to(self, device: str) -> "Module":
        """Move every parameter and buffer to `device` ("cpu" or "cuda") in place; returns self."""
        for m in self.modules():
            for p in m._parameters.values():
                p.data = to_device(p.data, device)
                if p.grad is not None:
                    p.grad = to_device(p.grad, device)
            for name, b in list(m._buffers.items()):
                m.register_buffer(name, to_device(b, device))
        return self

    # -- state
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Dotted name -> numpy array of every parameter and buffer (copies, safe to keep)."""
        state = OrderedDict()
        for name, p in self.named_parameters():
            state[name] = np.array(to_device(p.data, "cpu"))
        for name, b in self.named_buffers():
            state[name] = np.array(to_device(b, "cpu"))
        return state

    def load_state_dict(self, state, strict: bool = True) -> None:
        """Copy arrays from `state` into the parameters and buffers, in place.

        Raises ValueError naming the keys that are missing or unexpected (when `strict`) and the key
        whose shape differs; nothing is modified when any check fails.
        """
        slots = OrderedDict()  # key -> (module, attribute, is_parameter)
        for prefix, m in self.named_modules():
            for registry, is_param in ((m._parameters, True), (m._buffers, False)):
                for name in registry:
                    slots.setdefault(f"{prefix}.{name}" if prefix else name, (m, name, is_param))
        missing = [k for k in slots if k not in state]
        unexpected = [k for k in state if k not in slots]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise ValueError(f"load_state_dict into {type(self).__name__}: " + "; ".join(parts))
        updates = []
        for key, (m, name, is_param) in slots.items():
            if key not in state:
                continue
            value = state[key]
            value = np.asarray(value.numpy() if isinstance(value, Tensor) else value)
            current = m._parameters[name].data if is_param else m._buffers[name]
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(
                    f"load_state_dict: '{key}' has shape {shape_str(value.shape)} in the state_dict "
                    f"but {shape_str(current.shape)} in the model"
                )
            if not np.can_cast(value.dtype, current.dtype, casting="same_kind"):
                raise TypeError(f"load_state_dict: '{key}' has dtype {value.dtype}, the model expects {current.dtype}")
            updates.append((m, name, is_param, current, value))
        for m, name, is_param, current, value in updates:
            if isinstance(current, np.ndarray):  # in place: optimizers and callers keep their references
                np.copyto(current, value, casting="same_kind")
            elif is_param:
                m._parameters[name].data = to_device(value.astype(current.dtype), "cuda")
            else:
                m.register_buffer(name, to_device(value.astype(current.dtype), "cuda"))

    # -- printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


_shape_trace = None  # a list while trace_shapes runs; every output_shape call appends to it


def trace_shapes(module: Module, shape) -> list:
    """[(module, input shape, output shape)] of every module whose output_shape ran while inferring
    `module`'s output for an input of `shape`, innermost first (the model itself is last)."""
    global _shape_trace
    saved, _shape_trace = _shape_trace, []
    try:
        module.output_shape(shape)
        return _shape_trace
    finally:
        _shape_trace = saved


class _ModuleContainer(Module):
    """Indexing, len() and iteration over the child modules, in the order they were added."""

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(_ModuleContainer):
    """Runs its layers in order; layers are named "0", "1", ... as in PyTorch."""

    def __init__(self, *layers: Module):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: argument {i} is a {type(layer).__name__}, not a Module")
            setattr(self, str(i), layer)

    def forward(self, x):
        layers = list(self._modules.values())
        i = 0
        while i < len(layers):
            layer = layers[i]
            if type(layer) is BatchNorm2d and i + 1 < len(layers) and type(layers[i + 1]) is ReLU:
                # One fused pass each way instead of two (same values): DenseNet and ResNet run
                # BatchNorm2d then ReLU everywhere.
                x = layer.forward(x, relu=True)
                i += 2
                continue
            x = layer(x)
            i += 1
        return x

    def infer_shape(self, shape):
        for layer in self._modules.values():
            shape = layer.output_shape(shape)
        return shape


class ModuleList(_ModuleContainer):
    """A list of modules whose parameters are registered (for blocks built in a loop)."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> "ModuleList":
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self


class Identity(Module):
    def forward(self, x):
        return x

    def infer_shape(self, shape):
        return shape


def _check_input(layer: Module, x, expected: str, ok: bool) -> None:
    """`x` is a Tensor or, in shape inference, a shape tuple."""
    if not ok:
        shape = x if isinstance(x, tuple) else x.shape
        raise ValueError(f"{type(layer).__name__}({layer.extra_repr()}): expected input of shape {expected}, "
                         f"got {shape_str(shape)}")


class _Elementwise(Module):
    """A layer whose output has its input's shape."""

    def infer_shape(self, shape):
        return shape


class Linear(Module):
    """y = x @ weight.T + bias; weight (out_features, in_features), Kaiming-uniform initialised."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features = require_int(in_features, "in_features", 1)
        self.out_features = require_int(out_features, "out_features", 1)
        shape = (self.out_features, self.in_features)
        self.weight = Parameter(init.kaiming_uniform(shape))
        self.bias = Parameter(init.bias_uniform((self.out_features,), shape)) if bias else None

    def forward(self, x):
        _check_input(self, x, f"(N, {self.in_features})", x.ndim == 2 and x.shape[1] == self.in_features)
        return F.linear(x, self.weight, self.bias)

    def infer_shape(self, shape):
        _check_input(self, shape, f"(N, {self.in_features})", len(shape) == 2 and shape[1] == self.in_features)
        return (shape[0], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _padding_mode(padding_mode) -> str:
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode: expected one of {PADDING_MODES}, got {padding_mode!r}")
    return padding_mode


def _mode_pad(padding, kernel_size: tuple, dilation: tuple) -> tuple:
    """The widths ``F.pad`` takes (last dimension first) for a convolution's ``padding`` (ints per
    dimension, "valid" or "same", whose odd pad goes at the end): a layer whose padding_mode is not
    "zeros" pads with its mode and then convolves with padding 0, as torch's layers do."""
    if padding == "valid":
        pairs = [(0, 0)] * len(kernel_size)
    elif padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel_size, dilation)]
        pairs = [(t // 2, t - t // 2) for t in totals]
    else:
        pairs = [(p, p) for p in padding]
    return tuple(w for left, right in reversed(pairs) for w in (left, right))


def _same_needs_stride_1(padding, stride: tuple, layer: str) -> None:
    if padding == "same" and any(s != 1 for s in stride):
        raise ValueError(f"{layer}: padding='same' needs stride 1, got stride {stride}")


def _conv_repr(layer, shape_options=(), trailing=()) -> str:
    """torch's repr of a convolution layer: channels, kernel and stride, then each option that is not
    its default (``shape_options`` after stride, ``trailing`` after bias), algo last."""
    s = f"{layer.in_channels}, {layer.out_channels}, kernel_size={layer.kernel_size}, stride={layer.stride}"
    for name, value in shape_options:
        if value != (0, 0):
            s += f", {name}={value!r}" if isinstance(value, str) else f", {name}={value}"
    if layer.dilation != (1, 1):
        s += f", dilation={layer.dilation}"
    if layer.groups != 1:
        s += f", groups={layer.groups}"
    if layer.bias is None:
        s += ", bias=False"
    for name, value in trailing:
        s += f", {name}={value!r}"
    if layer.algo != "auto":
        s += f", algo={layer.algo!r}"
    return s


class Conv2d(Module):
    """2-D convolution layer on (N, C, H, W) or unbatched (C, H, W) input, as torch.nn.Conv2d
    (padding_mode "zeros", "reflect", "replicate" or "circular"); `algo` picks the kernel ("auto" or a
    name from fastconv.conv_algorithms)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", algo: str = "auto"):
        super().__init__()
        self.in_channels = require_int(in_channels, "in_channels", 1)
        self.out_channels = require_int(out_channels, "out_channels", 1)
        self.groups = require_int(groups, "groups", 1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.kernel_size = pair(kernel_size, "kernel_size", 1)
        self.stride = pair(stride, "stride", 1)
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding", 0)
        self.dilation = pair(dilation, "dilation", 1)
        _same_needs_stride_1(self.padding, self.stride, "Conv2d")
        self.padding_mode = _padding_mode(padding_mode)
        self.algo = algo
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(init.kaiming_uniform(shape))
        self.bias = Parameter(init.bias_uniform((self.out_channels,), shape)) if bias else None

    def forward(self, x):
        _check_input(self, x, f"(N, {self.in_channels}, H, W) or ({self.in_channels}, H, W)",
                     x.ndim in (3, 4) and x.shape[-3] == self.in_channels)
        padding = self.padding
        if self.padding_mode != "zeros":
            x = F.pad(x, _mode_pad(padding, self.kernel_size, self.dilation), self.padding_mode)
            padding = 0
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups, self.algo)

    def conv_params(self, shape):
        """The validated ``_core.Conv2dParams`` of this layer on an input of `shape` (N, C, H, W)."""
        _check_input(self, shape, f"(N, {self.in_channels}, H, W)", len(shape) == 4 and shape[1] == self.in_channels)
        return conv_plan(shape, self.weight.shape, self.stride, self.padding, self.dilation, self.groups).params

    def infer_shape(self, shape):
        if len(shape) == 3:  # unbatched
            return self.infer_shape((1,) + shape)[1:]
        p = self.conv_params(shape)
        return (shape[0], self.out_channels, p.P, p.Q)

    def extra_repr(self) -> str:
        padding = () if self.padding in ((0, 0), "valid") else (("padding", self.padding),)
        mode = () if self.padding_mode == "zeros" else (("padding_mode", self.padding_mode),)
        return _conv_repr(self, padding, mode)


class ConvTranspose2d(Module):
    """Transposed 2-D convolution layer, as torch.nn.ConvTranspose2d (same arguments, weight
    (in_channels, out_channels / groups, R, S), initialisation and state_dict keys); `algo` picks
    the kernel of the convolution input gradient it runs on."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, algo: str = "auto"):
        from ..conv_transpose import check_output_padding

        super().__init__()
        self.in_channels = require_int(in_channels, "in_channels", 1)
        self.out_channels = require_int(out_channels, "out_channels", 1)
        self.groups = require_int(groups, "groups", 1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"ConvTranspose2d: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        self.kernel_size = pair(kernel_size, "kernel_size", 1)
        self.stride = pair(stride, "stride", 1)
        self.padding = pair(padding, "padding", 0)
        self.output_padding = pair(output_padding, "output_padding", 0)
        self.dilation = pair(dilation, "dilation", 1)
        check_output_padding(self.output_padding, self.stride, self.dilation)
        self.algo = algo
        shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        self.weight = Parameter(init.kaiming_uniform(shape))
        self.bias = Parameter(init.bias_uniform((self.out_channels,), shape)) if bias else None

    def _size(self, axis: int, size: int, output_padding: int) -> int:
        return ((size - 1) * self.stride[axis] - 2 * self.padding[axis]
                + self.dilation[axis] * (self.kernel_size[axis] - 1) + output_padding + 1)

    def _output_padding(self, shape, output_size) -> tuple[int, int]:
        """``output_padding``, or the one that gives ``output_size`` ((H, W), or with leading dims), as torch."""
        if output_size is None:
            return self.output_padding
        output_size = tuple(output_size)[-2:]
        if len(output_size) != 2:
            raise ValueError(f"output_size: expected (H_out, W_out), got {output_size!r}")
        smallest = tuple(self._size(axis, shape[-2 + axis], 0) for axis in range(2))
        largest = tuple(smallest[axis] + self.stride[axis] - 1 for axis in range(2))
        if any(not lo <= int(n) <= hi for n, lo, hi in zip(output_size, smallest, largest)):
            raise ValueError(f"output_size: {output_size} is not reachable for input {shape_str(shape)}: each size "
                             f"must lie between {smallest} and {largest}")
        return tuple(int(n) - lo for n, lo in zip(output_size, smallest))

    def forward(self, x, output_size=None):
        _check_input(self, x, f"(N, {self.in_channels}, H, W) or ({self.in_channels}, H, W)",
                     x.ndim in (3, 4) and x.shape[-3] == self.in_channels)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(x.shape, output_size), self.groups, self.dilation, self.algo)

    def infer_shape(self, shape):
        _check_input(self, shape, f"(N, {self.in_channels}, H, W) or ({self.in_channels}, H, W)",
                     len(shape) in (3, 4) and shape[-3] == self.in_channels)
        out = tuple(self._size(axis, shape[-2 + axis], self.output_padding[axis]) for axis in range(2))
        if min(out) < 1:
            raise ValueError(f"{type(self).__name__}({self.extra_repr()}): padding {self.padding} removes the whole "
                             f"output for input {shape_str(shape)}")
        return shape[:-3] + (self.out_channels,) + out

    def extra_repr(self) -> str:
        return _conv_repr(self, (("padding", self.padding), ("output_padding", self.output_padding)))


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.ceil_mode = bool(ceil_mode)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}" + (
            ", ceil_mode=True" if self.ceil_mode else "")

    def _options(self) -> dict:
        """The keyword arguments of fastconv.pooling.pool_params particular to this kind of pooling."""
        return {}

    def infer_shape(self, shape):
        from ..pooling import pool_params

        _check_input(self, shape, "(N, C, H, W)", len(shape) == 4)
        p = pool_params(shape, self.kernel_size, self.stride, self.padding, self.ceil_mode, **self._options())
        return (shape[0], shape[1], p.P, p.Q)


class MaxPool2d(_Pool2d):
    """``torch.nn.MaxPool2d``: the same arguments in the same order. With ``return_indices`` the
    forward returns (Tensor, int64 indices), as ``nn.functional.max_pool2d`` does."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.dilation = dilation
        self.return_indices = bool(return_indices)

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", dilation={self.dilation}" if self.dilation != 1 else "") + (
            ", return_indices=True" if self.return_indices else "")

    def _options(self) -> dict:
        return {"dilation": self.dilation}

    def forward(self, x):
        _check_input(self, x, "(N, C, H, W)", x.ndim == 4)
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)


class AvgPool2d(_Pool2d):
    """``torch.nn.AvgPool2d``: the same arguments in the same order."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = divisor_override

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", divisor_override={self.divisor_override}"
                                       if self.divisor_override is not None else "")

    def _options(self) -> dict:
        return {"count_include_pad": self.count_include_pad, "divisor_override": self.divisor_override}

    def forward(self, x):
        _check_input(self, x, "(N, C, H, W)", x.ndim == 4)
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                            self.divisor_override)


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size; (1, 1) is global average pooling."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        _check_input(self, x, "(N, C, H, W)", x.ndim == 4)
        return F.adaptive_avg_pool2d(x, self.output_size)

    def infer_shape(self, shape):
        from ..pooling import adaptive_output_size

        _check_input(self, shape, "(N, C, H, W)", len(shape) == 4)
        return shape[:2] + adaptive_output_size(self.output_size, shape[2:])

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class ReLU(_Elementwise):
    def forward(self, x):
        return F.relu(x)


class LeakyReLU(_Elementwise):
    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(_Elementwise):
    def forward(self, x):
        return F.sigmoid(x)


class Tanh(_Elementwise):
    def forward(self, x):
        return F.tanh(x)


class Flatten(Module):
    """Flattens dimensions start_dim.. into one (default: everything but the batch)."""

    def __init__(self, start_dim: int = 1):
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim)

    def infer_shape(self, shape):
        start = self.start_dim % max(len(shape), 1)
        return shape[:start] + (int(np.prod(shape[start:])),)


class Dropout(_Elementwise):
    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class BatchNorm2d(Module):
    """Per-channel batch normalization of (N, C, H, W) input, with running statistics for eval mode."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True):
        super().__init__()
        self.num_features = require_int(num_features, "num_features", 1)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.weight = Parameter(np.ones(num_features, np.float32)) if affine else None
        self.bias = Parameter(np.zeros(num_features, np.float32)) if affine else None
        self.register_buffer("running_mean", np.zeros(num_features, np.float32))
        self.register_buffer("running_var", np.ones(num_features, np.float32))
        self.register_buffer("num_batches_tracked", np.zeros((), np.int64))

    def forward(self, x, relu: bool = False):
        """relu=True: relu(self(x)) in one fused pass (Sequential uses it for BatchNorm2d then ReLU)."""
        _check_input(self, x, f"(N, {self.num_features}, H, W)", x.ndim == 4 and x.shape[1] == self.num_features)
        if self.training:
            self.num_batches_tracked += 1
        return F.batch_norm2d(x, self.weight, self.bias, self.running_mean, self.running_var, self.training,
                              self.momentum, self.eps, relu=relu)

    def infer_shape(self, shape):
        _check_input(self, shape, f"(N, {self.num_features}, H, W)", len(shape) == 4 and shape[1] == self.num_features)
        return shape

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
