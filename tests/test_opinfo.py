"""PyTorch's own OpInfo sample inputs through every way of calling fastconv.

For each op fastconv offers (OPS) and each calling route (ROUTES): numpy functions, fastconv.Tensor
autograd through fastconv.nn.functional, the fastconv.torch drop-in modules (built from the
sample's arguments, torch's weights copied in) and the torch.ops.fastconv custom operators, every
float32 CPU sample of the op's OpInfo (torch.testing._internal.common_methods_invocations.op_db)
must either

- match torch: the output's shape and dtype, its values to relative error 1e-5
  (max |ours - ref| / max |ref|, against torch in float64 on the same float32 values: float32
  accumulation order), max-pool indices exactly, and on the autograd routes the gradients of
  input, weight and bias for the same random grad_output to 1e-5; the inputs left unmodified; or
- be declined clearly: a TypeError or ValueError whose message contains the name of the refused
  argument as a word, and only where DECLINES allows that argument with a reason.

Any other exception, a decline DECLINES does not list, a missing route (AttributeError: the API does
not exist) or a mismatch fails the (op, route) test, which lists the failing samples. Samples a
route cannot express at all are in NOT_EXPRESSIBLE, with the reason. max_pool2d's 1440 samples are
capped to a fixed, seeded subset (MAX_SAMPLES) to keep the run short.
"""

from __future__ import annotations

import collections
import functools
import importlib
import random
import re
from dataclasses import dataclass

import numpy as np
import pytest

from reference import relative_error

torch = pytest.importorskip("torch")
try:
    # torch's test helpers freeze the torch.backends flags when imported (disable_global_flags), which
    # would break later tests that set them; import them inside torch's own context that restores the flags.
    with getattr(torch.backends, "__allow_nonbracketed_mutation")():
        from torch.testing._internal.common_methods_invocations import SampleInput, op_db
except ImportError as e:  # they import expecttest, which torch does not install
    pytest.skip(f"needs expecttest for torch's OpInfo database ({e})", allow_module_level=True)

import fastconv  # noqa: E402

RTOL = 1e-5
MAX_SAMPLES = 120
REQUIRED = object()  # marks an argument of torch's signature that has no default

# ---- the ops: torch's functional signature (tensors first), and how each route calls fastconv -------------


@dataclass(frozen=True)
class Op:
    """One op. `signature` is torch's (name, default) list in torch's order, its differentiable
    tensors first (`tensors`). `routes` maps a route to the dotted name of fastconv's callable;
    `module_args` gives the drop-in module's constructor arguments that are not in the signature."""

    name: str
    signature: tuple
    tensors: tuple
    spatial: int
    routes: dict
    module_args: object = None

    @property
    def options(self) -> list[str]:
        return [n for n, _ in self.signature if n not in self.tensors]


def _conv_module_args(a):
    w = a["weight"]
    return dict(in_channels=w.shape[1] * a["groups"], out_channels=w.shape[0], kernel_size=tuple(w.shape[2:]),
                bias=a["bias"] is not None)


def _conv_transpose_module_args(a):
    w = a["weight"]
    return dict(in_channels=w.shape[0], out_channels=w.shape[1] * a["groups"], kernel_size=tuple(w.shape[2:]),
                bias=a["bias"] is not None)


def _routes(numpy, functional, module, custom_op):
    return {"numpy": numpy, "autograd": functional, "module": module, "custom_op": custom_op}


_CONV = (("input", REQUIRED), ("weight", REQUIRED), ("bias", None), ("stride", 1), ("padding", 0), ("dilation", 1),
         ("groups", 1))
OPS = {
    "nn.functional.conv2d": Op(
        "conv2d", _CONV, ("input", "weight", "bias"), 2,
        _routes("fastconv.conv2d", "fastconv.nn.functional.conv2d", "fastconv.torch.Conv2d",
                "torch.ops.fastconv.conv2d"), _conv_module_args),
    "nn.functional.conv1d": Op(
        "conv1d", _CONV, ("input", "weight", "bias"), 1,
        _routes("fastconv.conv1d", "fastconv.nn.functional.conv1d", "fastconv.torch.Conv1d",
                "torch.ops.fastconv.conv1d"), _conv_module_args),
    "nn.functional.conv_transpose2d": Op(
        "conv_transpose2d",
        (("input", REQUIRED), ("weight", REQUIRED), ("bias", None), ("stride", 1), ("padding", 0),
         ("output_padding", 0), ("groups", 1), ("dilation", 1)),
        ("input", "weight", "bias"), 2,
        _routes("fastconv.conv_transpose2d", "fastconv.nn.functional.conv_transpose2d",
                "fastconv.torch.ConvTranspose2d", "torch.ops.fastconv.conv_transpose2d"), _conv_transpose_module_args),
    "nn.functional.max_pool2d": Op(
        "max_pool2d",
        (("input", REQUIRED), ("kernel_size", REQUIRED), ("stride", None), ("padding", 0), ("dilation", 1),
         ("ceil_mode", False), ("return_indices", False)),
        ("input",), 2,
        _routes("fastconv.max_pool2d", "fastconv.nn.functional.max_pool2d", "fastconv.torch.MaxPool2d",
                "torch.ops.fastconv.max_pool2d")),
    "nn.functional.avg_pool2d": Op(
        "avg_pool2d",
        (("input", REQUIRED), ("kernel_size", REQUIRED), ("stride", None), ("padding", 0), ("ceil_mode", False),
         ("count_include_pad", True), ("divisor_override", None)),
        ("input",), 2,
        _routes("fastconv.avg_pool2d", "fastconv.nn.functional.avg_pool2d", "fastconv.torch.AvgPool2d",
                "torch.ops.fastconv.avg_pool2d")),
    "nn.functional.adaptive_avg_pool2d": Op(
        "adaptive_avg_pool2d", (("input", REQUIRED), ("output_size", REQUIRED)), ("input",), 2,
        _routes("fastconv.adaptive_avg_pool2d", "fastconv.nn.functional.adaptive_avg_pool2d",
                "fastconv.torch.AdaptiveAvgPool2d", "torch.ops.fastconv.adaptive_avg_pool2d")),
}
ROUTES = ("numpy", "autograd", "module", "custom_op")
GRADIENT_ROUTES = ("autograd", "module", "custom_op")  # the numpy route is forward only


def _asymmetric_same(a) -> bool:
    """padding='same' whose total padding d*(k-1) is odd in some dimension: torch puts the extra
    row/column at the end, which symmetric explicit padding cannot say."""
    if a.get("padding") != "same":
        return False
    kernel = a["weight"].shape[2:]
    dilation = _ints(a["dilation"], len(kernel))
    return any(d * (k - 1) % 2 for d, k in zip(dilation, kernel))


def _non_positive_divisor(a) -> bool:
    return a.get("divisor_override") is not None and a["divisor_override"] <= 0


@dataclass(frozen=True)
class Decline:
    """fastconv may refuse `argument` of the `ops` on `routes` when `applies(args)`, for `reason`."""

    ops: tuple
    routes: tuple
    argument: str
    applies: object
    reason: str


DECLINES = [
    Decline(("avg_pool2d",), ROUTES, "divisor_override", _non_positive_divisor,
            "torch divides by a divisor_override <= 0; fastconv takes it for the caller's mistake"),
]

NOT_EXPRESSIBLE = {
    ("custom_op", "padding"): "the custom ops take explicit symmetric padding: uneven padding='same' has no "
                              "list[int] form (the modules and numpy functions take the string)",
}


# ---- samples ------------------------------------------------------------------------------------------------


@functools.cache
def _samples(opinfo_name: str):
    """The OpInfo's float32 CPU samples, at most MAX_SAMPLES of them (a fixed, seeded subset)."""
    info = _INFOS[opinfo_name]
    samples = list(info.sample_inputs("cpu", torch.float32, requires_grad=False))
    if len(samples) > MAX_SAMPLES:
        keep = sorted(random.Random(info.name).sample(range(len(samples)), MAX_SAMPLES))
        samples = [samples[i] for i in keep]
    return samples


def torch_arguments(op: Op, sample) -> dict:
    """The sample's arguments by the names of torch's signature, defaults filled in."""
    positional = [sample.input, *sample.args]
    names = [n for n, _ in op.signature]
    if len(positional) > len(names) or set(sample.kwargs) - set(names):
        raise AssertionError(f"{op.name}: the table's signature {names} does not fit the sample {sample}")
    a = dict(zip(names, positional))
    for name, default in op.signature:
        if name not in a:
            a[name] = sample.kwargs.get(name, default)
        assert a[name] is not REQUIRED, f"{op.name}: sample lacks {name}"
    return a


def _ints(v, n: int) -> list[int]:
    """An int or a tuple of 1 or n ints as a list of n ints, as torch reads it."""
    v = [v] if isinstance(v, int) else list(v)
    return v * n if len(v) == 1 else v


def _describe(op: Op, a: dict) -> str:
    def show(v):
        return f"tensor{tuple(v.shape)}" if isinstance(v, torch.Tensor) else repr(v)
    return f"{op.name}(" + ", ".join(f"{n}={show(a[n])}" for n, _ in op.signature) + ")"


class NotExpressible(Exception):
    """The route has no way to pass this sample's arguments (NOT_EXPRESSIBLE says why)."""


class RouteLacksArgument(Exception):
    """The route's callable has no parameter for an option the sample sets: a missing feature."""


# ---- the routes: each returns (outputs, {tensor name: gradient}) as numpy arrays ---------------------------


def _resolve(dotted: str):
    """The object named `dotted`: an AttributeError says which API is missing."""
    module, _, attr = dotted.rpartition(".")
    if module.startswith("torch.ops."):
        importlib.import_module("fastconv.torch")  # registers torch.ops.fastconv
        return getattr(getattr(torch.ops, module.split(".")[2]), attr)
    return getattr(importlib.import_module(module), attr)


def _non_default_options(op: Op, a: dict) -> dict:
    """The options a user would write: required ones and those that differ from torch's default."""
    return {n: a[n] for n, d in op.signature if n not in op.tensors and (d is REQUIRED or a[n] is not d and a[n] != d)}


def _as_numpy(v):
    if isinstance(v, torch.Tensor):
        return v.detach().numpy()
    if isinstance(v, fastconv.Tensor):
        return v.numpy()
    return np.asarray(v)


def _outputs(result) -> list[np.ndarray]:
    return [_as_numpy(r) for r in (result if isinstance(result, tuple) else (result,))]


def _first(result):
    return result[0] if isinstance(result, tuple) else result


def run_numpy(op, fn, a, grad_output):
    arrays = [None if a[n] is None else a[n].numpy() for n in op.tensors]
    return _outputs(fn(*arrays, **_non_default_options(op, a))), {}


def run_autograd(op, fn, a, grad_output):
    leaves = {n: fastconv.Tensor(a[n].numpy().copy(), requires_grad=True) for n in op.tensors if a[n] is not None}
    result = fn(*[leaves.get(n) for n in op.tensors], **_non_default_options(op, a))
    _first(result).backward(grad_output.numpy())
    return _outputs(result), {n: t.grad for n, t in leaves.items()}


def run_module(op, cls, a, grad_output):
    extra = op.module_args(a) if op.module_args else {}
    module = cls(**extra, **_non_default_options(op, a))
    parameters = {n: getattr(module, n) for n in op.tensors[1:] if a[n] is not None}
    with torch.no_grad():
        for n, p in parameters.items():
            p.copy_(a[n])
    x = a["input"].clone().requires_grad_()
    result = module(x)
    _first(result).backward(grad_output)
    return _outputs(result), {"input": x.grad.numpy(), **{n: p.grad.numpy() for n, p in parameters.items()}}


def _custom_op_value(op: Op, arg, a: dict, leaves: dict):
    """The value of custom-op schema argument `arg` from torch's arguments `a`."""
    name, kind = arg.name, str(arg.type)
    if name in ("x", "input"):
        return leaves["input"]
    if name in leaves or name in op.tensors:
        return leaves.get(name)
    if name == "algo":
        return "auto"
    if name not in a:
        raise LookupError(f"schema argument {name!r} has no counterpart in torch's signature")
    v = a[name]
    if name == "stride" and v in (None, ()):
        v = a["kernel_size"]
    if name == "output_size":  # None keeps that input size
        size = _ints(v, op.spatial) if not isinstance(v, int) else [v] * op.spatial
        return [a["input"].shape[-op.spatial + i] if s is None else s for i, s in enumerate(size)]
    if name == "padding" and isinstance(v, str):
        if v == "valid":
            return [0] * op.spatial
        if _asymmetric_same(a):
            raise NotExpressible(NOT_EXPRESSIBLE[("custom_op", "padding")])
        return [d * (k - 1) // 2 for d, k in zip(_ints(a["dilation"], op.spatial), a["weight"].shape[2:])]
    return _ints(v, op.spatial) if "[]" in kind or "List" in kind else v


def run_custom_op(op, fn, a, grad_output):
    leaves = {n: a[n].clone().requires_grad_() for n in op.tensors if a[n] is not None}
    schema = fn.default._schema.arguments
    lacking = set(_non_default_options(op, a)) - {arg.name for arg in schema} - {"return_indices"}
    if lacking:
        raise RouteLacksArgument(f"{fn} has no argument {sorted(lacking)}")
    result = fn(*[_custom_op_value(op, arg, a, leaves) for arg in schema])
    _first(result).backward(grad_output)
    if isinstance(result, tuple) and not a.get("return_indices"):
        result = result[0]  # the op always returns the indices too
    return _outputs(result), {n: t.grad.numpy() for n, t in leaves.items()}


RUNNERS = {"numpy": run_numpy, "autograd": run_autograd, "module": run_module, "custom_op": run_custom_op}


# ---- the check ----------------------------------------------------------------------------------------------


def _reference(torch_fn, op: Op, a: dict, grad_output):
    """torch in float64 on the sample's float32 values: outputs and gradients."""
    leaves = {n: a[n].double().requires_grad_() for n in op.tensors if a[n] is not None}
    result = torch_fn(*[leaves.get(n, a[n]) for n, _ in op.signature])
    _first(result).backward(grad_output.double())
    return _outputs(result), {n: t.grad.numpy() for n, t in leaves.items()}


def _compare(what: str, ours, expected) -> str | None:
    """Why `ours` differs from the float64 `expected`, or None."""
    ours = np.asarray(ours)
    if ours.shape != expected.shape:
        return f"{what}: shape {ours.shape}, torch {expected.shape}"
    if expected.dtype == np.int64:
        if ours.dtype != np.int64 or not np.array_equal(ours, expected):
            return f"{what}: indices differ from torch's ({ours.dtype})"
        return None
    if ours.dtype != np.float32:
        return f"{what}: dtype {ours.dtype}, expected float32"
    err = relative_error(ours, expected)
    return None if err <= RTOL else f"{what}: relative error {err:.2e} > {RTOL}"


def _names(message: str, argument: str) -> bool:
    return re.search(rf"\b{re.escape(argument)}\b", message) is not None


def check_sample(torch_fn, op: Op, route: str, fn, a: dict, grad_output) -> tuple[str, str]:
    """(outcome, why) of one sample on one route: "matched" torch, "declined" as DECLINES allows,
    "not expressible" on this route, or "failed" with the reason."""
    before = {n: a[n].clone() for n in op.tensors if a[n] is not None}
    try:
        outputs, grads = RUNNERS[route](op, fn, a, grad_output)
    except NotExpressible as e:
        return "not expressible", str(e)
    except RouteLacksArgument as e:
        return "failed", str(e)
    except (TypeError, ValueError) as e:
        allowed = [d for d in DECLINES if op.name in d.ops and route in d.routes and d.applies(a)]
        if any(_names(str(e), d.argument) for d in allowed):
            return "declined", str(e)
        rule = ("the message must name " + " or ".join(repr(d.argument) for d in allowed) if allowed
                else "DECLINES allows no decline of this sample")
        return "failed", f"declined ({type(e).__name__}: {e}); {rule}"
    except Exception as e:  # noqa: BLE001 -- anything else is an unclear error
        return "failed", f"unclear error {type(e).__name__}: {e}"
    for n, t in before.items():
        if not torch.equal(t, a[n]):
            return "failed", f"modified its argument {n}"
    ref_outputs, ref_grads = _reference(torch_fn, op, a, grad_output)
    if len(outputs) != len(ref_outputs):
        return "failed", f"returned {len(outputs)} outputs, torch {len(ref_outputs)}"
    problems = [_compare(f"output {i}", o, r) for i, (o, r) in enumerate(zip(outputs, ref_outputs))]
    if route in GRADIENT_ROUTES:
        problems += [f"no gradient of {n}" for n in ref_grads if grads.get(n) is None]
        problems += [_compare(f"gradient of {n}", grads[n], ref_grads[n]) for n in ref_grads if grads.get(n) is not None]
    problems = [p for p in problems if p]
    return ("failed", "; ".join(problems)) if problems else ("matched", "")


_INFOS = {info.name: info for info in op_db if info.name in OPS and info.variant_test_name == ""}
SHOW_FAILURES = 25


def test_every_op_has_an_opinfo():
    assert sorted(_INFOS) == sorted(OPS)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")  # torch's own
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("opinfo_name", sorted(OPS))
def test_opinfo_samples(opinfo_name, route):
    info, op = _INFOS[opinfo_name], OPS[opinfo_name]
    fn = _resolve(op.routes[route])  # AttributeError: this route's API does not exist
    gen = torch.Generator().manual_seed(0)
    outcomes, failures = collections.Counter(), []
    for sample in _samples(opinfo_name):
        a = torch_arguments(op, sample)
        ref = _first(info.op(sample.input, *sample.args, **sample.kwargs))
        assert torch.equal(ref, _first(info.op(*[a[n] for n, _ in op.signature]))), "the table misreads the sample"
        outcome, why = check_sample(info.op, op, route, fn, a, torch.randn(ref.shape, generator=gen))
        outcomes[outcome] += 1
        if outcome == "failed":
            failures.append(f"{_describe(op, a)}: {why}")
    assert not failures, (f"{len(failures)} of {sum(outcomes.values())} samples failed ({dict(outcomes)}):\n"
                          + "\n".join(failures[:SHOW_FAILURES])
                          + (f"\n... and {len(failures) - SHOW_FAILURES} more" if len(failures) > SHOW_FAILURES else ""))
    assert outcomes["matched"] > 0, f"no sample was compared with torch: {dict(outcomes)}"


def _scaled_conv2d(*args, **kwargs):
    return fastconv.conv2d(*args, **kwargs) * np.float32(1.001)


def _conv2d_in_float64(*args, **kwargs):
    return fastconv.conv2d(*args, **kwargs).astype(np.float64)


def _conv2d_scribbling_on_x(x, *args, **kwargs):
    y = fastconv.conv2d(x, *args, **kwargs)
    x[...] = 0
    return y


def _raises(exc):
    def fn(*args, **kwargs):
        raise exc
    return fn


@pytest.mark.parametrize("fn,outcome,why", [
    (fastconv.conv2d, "matched", ""),
    (_scaled_conv2d, "failed", "relative error"),
    (_conv2d_in_float64, "failed", "dtype float64"),
    (_conv2d_scribbling_on_x, "failed", "modified its argument input"),
    (_raises(RuntimeError("padding")), "failed", "unclear error RuntimeError"),
    (_raises(ValueError("padding: unsupported")), "failed", "DECLINES allows no decline"),
])
def test_check_sample_catches(fn, outcome, why):
    """The harness itself: a wrong result, dtype, a modified input, an unclear error and an unlisted
    decline each fail a sample."""
    op, gen = OPS["nn.functional.conv2d"], torch.Generator().manual_seed(0)
    a = torch_arguments(op, SampleInput(torch.randn(2, 3, 7, 6, generator=gen), torch.randn(4, 3, 3, 2, generator=gen),
                                        torch.randn(4, generator=gen), padding=1))
    result = check_sample(torch.nn.functional.conv2d, op, "numpy", fn, a, torch.randn(2, 4, 7, 7, generator=gen))
    assert result[0] == outcome and why in result[1], result
