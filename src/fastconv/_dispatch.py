"""The op layer's one dispatch: every op declared once, each device a table of kernels behind it.

An :class:`Op` names its passes (``"forward"``, ``"backward"``; a convolution's ``"forward"``,
``"input"``, ``"weight"``), how many leading arguments of each pass are its array operands, and per
device a kernel for each pass it runs there. ``OP.run(pass_, *args)`` decides the device once, with
:func:`device_of` over those operands, and calls that device's kernel with ``args`` unchanged. The
kernels check their own arguments: a numpy array among device operands reaches the CUDA kernel,
whose check raises the ValueError that says to move it. A device without a kernel for the pass
raises a TypeError naming the op, the pass and the device (never a silent copy to the host).

:data:`OPS` lists every declared op by name, for tests, ``fastconv.info()`` and the docs.
DEVELOPING.md ("The op layer") shows how to add a kernel. This module imports only the device
Array type: op modules import it, never the reverse.
"""

from __future__ import annotations

from typing import Callable

from ._cuda_array import Array

#: The devices an op can have kernels for.
DEVICES = ("cpu", "cuda")

#: Every declared op, by name, in declaration order.
OPS: dict[str, "Op"] = {}


def device_of(*operands) -> str:
    """"cuda" when an operand is a ``fastconv.cuda.Array``, else "cpu" (None entries count as no
    array). The one place that decides which device runs an op."""
    for x in operands:
        if isinstance(x, Array):
            return "cuda"
    return "cpu"


class Op:
    """An op declared once: its passes and, per device, its kernel for each pass it runs there.

    ``passes`` maps each pass to how many leading arguments of that pass are array operands (the
    ones :func:`device_of` reads); ``kernels`` maps a device of :data:`DEVICES` to
    ``{pass: kernel}``. Kernels are module-level functions taking the pass's arguments in order.
    Declaring an op registers it in :data:`OPS`.
    """

    __slots__ = ("name", "passes", "kernels", "_table")

    def __init__(self, name: str, passes: dict[str, int], **kernels: dict[str, Callable]):
        if name in OPS:
            raise ValueError(f"op {name!r} is already declared")
        for device, table in kernels.items():
            if device not in DEVICES:
                raise ValueError(f"{name}: unknown device {device!r}; expected one of {DEVICES}")
            unknown = sorted(set(table) - set(passes))
            if unknown:
                raise ValueError(f"{name}: {device} kernels for undeclared passes {unknown}; passes are {tuple(passes)}")
        self.name = name
        self.passes = tuple(passes)
        self.kernels = {device: dict(kernels.get(device, {})) for device in DEVICES}
        # pass -> (number of array operands, device -> kernel): one lookup per call
        self._table = {p: (n, {d: t[p] for d, t in self.kernels.items() if p in t}) for p, n in passes.items()}
        OPS[name] = self

    def devices(self, pass_: str | None = None) -> tuple[str, ...]:
        """The devices with a kernel for ``pass_`` (None: for every pass)."""
        passes = self.passes if pass_ is None else (pass_,)
        return tuple(d for d in DEVICES if all(p in self.kernels[d] for p in passes))

    def run(self, pass_: str, *args):
        """Run ``pass_`` on the device of its array operands: that device's kernel, called with ``args``."""
        try:
            n, kernels = self._table[pass_]
        except KeyError:
            raise ValueError(f"{self.name}: unknown pass {pass_!r}; expected one of {self.passes}") from None
        device = device_of(*args[:n])
        try:
            kernel = kernels[device]
        except KeyError:
            raise TypeError(f"{self.name}: the {pass_} pass has no {device} kernel (it runs on "
                            f"{', '.join(self.devices(pass_)) or 'no device'}); move the inputs there") from None
        return kernel(*args)

    def __repr__(self) -> str:
        listing = ", ".join(f"{p}: {'/'.join(self.devices(p))}" for p in self.passes)
        return f"Op({self.name!r}; {listing})"


def op_devices() -> dict[str, tuple[str, ...]]:
    """``{op name: the devices that run all its passes}`` for every declared op (``fastconv.info()``)."""
    return {name: op.devices() for name, op in OPS.items()}
