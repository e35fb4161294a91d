"""What the benchmark runs: convolution shapes (the default suite in shapes.csv, --shape strings,
sweeps) and their FLOP counts."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, replace

SHAPES_CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shapes.csv")
SHAPE_FIELDS = ("N", "C", "H", "W", "K", "R", "S", "stride", "pad")


@dataclass(frozen=True)
class Shape:
    """One convolution problem: x (N, C, H, W), weight (K, C/groups, R, S)."""

    name: str
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    stride: int = 1
    pad: int = 0
    groups: int = 1
    dilation: int = 1
    note: str = ""

    @property
    def conv_kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.pad, dilation=self.dilation, groups=self.groups)

    @property
    def x_shape(self) -> tuple:
        return (self.N, self.C, self.H, self.W)

    @property
    def w_shape(self) -> tuple:
        return (self.K, self.C // self.groups, self.R, self.S)

    def params(self):
        """The validated ``_core.Conv2dParams`` (ValueError naming the problem if it is invalid)."""
        from .._geometry import conv_plan

        return conv_plan(self.x_shape, self.w_shape, self.stride, self.pad, self.dilation, self.groups).params

    @property
    def flops(self) -> float:
        """2 * N * K * (C/groups) * R * S * P * Q: the FLOPs of one pass (forward or either gradient)."""
        return self.params().flops

    @property
    def min_bytes(self) -> int:
        """float32 bytes of input + weight + output: what a pass must touch at least once."""
        p = self.params()
        return 4 * (p.N * p.C * p.H * p.W + p.K * (p.C // p.groups) * p.R * p.S + p.N * p.K * p.P * p.Q)

    @property
    def dims(self) -> str:
        return ",".join(str(getattr(self, f)) for f in SHAPE_FIELDS)

    def with_batch(self, n: int) -> "Shape":
        return replace(self, N=n)


def load_shapes(path: str | None = None) -> list[Shape]:
    """Shapes from a CSV with columns name,N,C,H,W,K,R,S,stride,pad[,groups,dilation][,note]."""
    path = path or SHAPES_CSV
    shapes = []
    with open(path, newline="") as f:
        for i, rec in enumerate(csv.DictReader(f), start=2):
            try:
                ints = {k: int(rec[k]) for k in SHAPE_FIELDS}
                for opt in ("groups", "dilation"):
                    if rec.get(opt):
                        ints[opt] = int(rec[opt])
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path}:{i}: expected integer columns {','.join(SHAPE_FIELDS)} ({e})") from None
            shape = Shape(rec.get("name") or f"shape{i - 1}", **ints, note=rec.get("note") or "")
            shape.params()
            shapes.append(shape)
    return shapes


def parse_shape(text: str, name: str | None = None) -> Shape:
    """'N,C,H,W,K,R,S,stride,pad' -> Shape; ValueError if malformed or if the output would be empty."""
    parts = text.split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != len(SHAPE_FIELDS):
        raise ValueError(f"expected 9 comma-separated integers {','.join(SHAPE_FIELDS)}, got {text!r}")
    if min(values[:7]) < 1 or values[7] < 1 or values[8] < 0:
        raise ValueError(f"sizes and stride must be >= 1 and pad >= 0, got {text!r}")
    shape = Shape(name or "shape_" + text.replace(",", "x"), *values)
    shape.params()  # output size >= 1, sizes that fit
    return shape


# Sweeps: one parameter varied around a fixed problem (full run, --quick run).
SWEEPS = {
    "kernel": ((1, 3, 5, 7, 9, 11, 13, 15), (1, 3, 5, 7)),
    "image": ((16, 32, 64, 128), (8, 16, 32)),
    "channels": ((4, 16, 64, 256), (4, 16, 32)),
}
SWEEP_BASE = (Shape("sweep", 4, 16, 64, 64, 16, 5, 5, 1, 2), Shape("sweep", 1, 8, 32, 32, 8, 3, 3, 1, 1))


def sweep_title(kind: str, quick: bool, base: Shape | None = None) -> str:
    """What a sweep varies and the problem it holds fixed (for its plot), e.g. "kernel size R = S
    swept: N=1, C=8, K=8, 32x32 images, stride 1, padding R // 2"."""
    b = base or SWEEP_BASE[quick]
    kernel = f"{b.R}x{b.S} kernel, stride {b.stride}, padding {b.pad}" + (f", dilation {b.dilation}" if b.dilation != 1 else "")
    groups = f", groups {b.groups}" if b.groups != 1 else ""
    fixed = {"kernel": f"N={b.N}, C={b.C}, K={b.K}, {b.H}x{b.W} images, stride 1, padding R // 2{groups}",
             "image": f"N={b.N}, C={b.C}, K={b.K}, {kernel}{groups}",
             "channels": f"N={b.N}, {b.H}x{b.W} images, {kernel}"}
    varied = {"kernel": "kernel size R = S", "image": "image size H = W", "channels": "channels C = K"}
    return f"{varied[kind]} swept: {fixed[kind]}"


def sweep_shapes(kind: str, quick: bool, base: Shape | None = None) -> list[Shape]:
    """The shapes of one sweep: kernel size R = S (padding R // 2, stride 1), image size H = W, or
    channels C = K, the rest fixed at `base` (default: a mid-size problem)."""
    base = base or SWEEP_BASE[quick]
    out = []
    for v in SWEEPS[kind][quick]:
        if kind == "kernel":
            s = replace(base, name=f"kernel{v}", R=v, S=v, pad=v // 2, stride=1, dilation=1)
        elif kind == "image":
            s = replace(base, name=f"image{v}", H=v, W=v)
        else:
            s = replace(base, name=f"channels{v}", C=v, K=v, groups=1)
        try:
            s.params()
        except ValueError:
            continue  # e.g. a kernel larger than the padded image
        out.append(s)
    return out
