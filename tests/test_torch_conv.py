"""fastconv.torch's convolution layers against torch's: Conv1d, ConvTranspose2d, every padding and
padding_mode, 1-element tuple arguments, and what patch() swaps.

Parity bound: relative error 1e-5 of outputs and gradients (max |ours - torch| / max |torch|), as in
test_torch_ops.py.
"""

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import fastconv.torch as ft  # noqa: E402

from test_torch_ops import RTOL, check_same_as_torch, rel_err  # noqa: E402

# torch's own layers warn that they copy the input for an uneven "same" padding; so do ours.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


def _pair_of_layers(torch_cls, ours_cls, *args, **kwargs):
    torch.manual_seed(0)
    ref = torch_cls(*args, **kwargs)
    ours = ours_cls(*args, **kwargs)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    return ours, ref


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 0), "same", "valid"])
def test_conv2d_every_padding(padding_mode, padding):
    """(3, 4) kernel with dilation (1, 2): "same" pads the width unevenly (3 on the left, 3 on the
    right... and the height 1 and 1); (2, 4) kernel: both uneven."""
    for kernel in ((3, 4), (2, 4)):
        ours, ref = _pair_of_layers(nn.Conv2d, ft.Conv2d, 4, 6, kernel, padding=padding, dilation=(1, 2), groups=2,
                                    padding_mode=padding_mode)
        x = torch.randn(2, 4, 7, 9)
        check_same_as_torch(ours, ref, x)
        check_same_as_torch(ours, ref, x[0])  # unbatched


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("kwargs", [dict(padding=2, stride=2), dict(padding="same", dilation=3),
                                    dict(padding="valid", groups=3), dict(padding=(1,), stride=(3,), dilation=(2,))])
def test_conv1d(padding_mode, kwargs):
    ours, ref = _pair_of_layers(nn.Conv1d, ft.Conv1d, 3, 6, 4, padding_mode=padding_mode, **kwargs)
    x = torch.randn(2, 3, 13)
    check_same_as_torch(ours, ref, x)
    check_same_as_torch(ours, ref, x[1])  # unbatched (C, L)


@pytest.mark.parametrize("kwargs", [
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=(3, 1), padding=(0, 2), output_padding=(2, 0), groups=2, dilation=(1, 2)),
    dict(stride=1, padding=2, output_padding=2, dilation=3),  # output_padding >= stride
    dict(stride=(2,), padding=(1,), output_padding=(1,), dilation=(1,), bias=False),  # 1-element tuples
])
def test_conv_transpose2d(kwargs):
    ours, ref = _pair_of_layers(nn.ConvTranspose2d, ft.ConvTranspose2d, 4, 6, 3, **kwargs)
    x = torch.randn(2, 4, 5, 7)
    check_same_as_torch(ours, ref, x)
    check_same_as_torch(ours, ref, x[0])


def test_conv_transpose2d_output_size():
    ours, ref = _pair_of_layers(nn.ConvTranspose2d, ft.ConvTranspose2d, 3, 2, 3, stride=3, padding=1)
    x = torch.randn(1, 3, 4, 4)
    for size in ([10, 12], [1, 2, 11, 10]):
        check_same_as_torch(ours, ref, x, output_size=size)
    with pytest.raises(ValueError, match="requested an output size"):
        ours(x, output_size=[20, 20])


def _model_with_one_element_tuples():
    return nn.Sequential(nn.Conv2d(2, 4, 3, stride=(2,), padding=(1,), dilation=(1,)), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, padding="same", dilation=(2,)),
                         nn.Conv2d(4, 3, (3, 3), padding=(2,), stride=(1,), dilation=(2,)))


def test_patch_layers_with_one_element_tuples():
    """torch keeps stride=(2,) etc. as given and reads it as (2, 2); a patched layer must too, in
    eager mode and when traced (torch.export runs the ops' fake implementations, which index [1])."""
    torch.manual_seed(0)
    ref = _model_with_one_element_tuples()
    ours = _model_with_one_element_tuples()
    ours.load_state_dict(ref.state_dict())
    report = ft.patch(ours)
    assert len(report.swapped) == 3 and not report.left, str(report)
    x = torch.randn(2, 2, 11, 9)
    check_same_as_torch(ours, ref, x)
    exported = torch.export.export(ours, (x,))
    with torch.no_grad():
        assert rel_err(exported.module()(x), ref(x)) < RTOL


class Mixed(nn.Module):
    """A sequence model and a decoder: every convolution class patch swaps."""

    def __init__(self):
        super().__init__()
        self.seq = nn.Conv1d(3, 4, 5, padding="same", padding_mode="circular")
        self.up = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
        self.conv = nn.Conv2d(2, 2, 2, padding="same")  # uneven zero padding

    def forward(self, x):
        s = self.seq(x)  # (N, 4, 16)
        return self.conv(self.up(s.reshape(s.shape[0], 4, 4, 4)))


def test_patch_swaps_conv1d_and_conv_transpose2d():
    torch.manual_seed(0)
    ref = Mixed()
    ours = Mixed()
    ours.load_state_dict(ref.state_dict())
    report = ft.patch(ours, algo="direct")
    assert [(n, c) for n, c in report.swapped] == [("seq", "Conv1d"), ("up", "ConvTranspose2d"), ("conv", "Conv2d")]
    assert not report.left
    assert type(ours.seq) is ft.Conv1d and type(ours.up) is ft.ConvTranspose2d
    assert ours.seq.algo == ours.up.algo == ours.conv.algo == "direct"
    x = torch.randn(2, 3, 16)
    check_same_as_torch(ours, ref, x)
    assert len(ft.patch(ours).swapped) == 3  # patching again keeps them, with the new algo
    assert ours.up.algo == "auto"
    exported = torch.export.export(ours, (x,))
    ops = [str(n.target) for n in exported.graph.nodes if "fastconv" in str(n.target)]
    assert ops == ["fastconv.conv1d.default", "fastconv.conv_transpose2d.default", "fastconv.conv2d.default"]
