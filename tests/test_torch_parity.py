"""LeNet-5 in fastconv equals the same network in PyTorch with the same weights (copied through
state_dict): logits, loss, every gradient, and parameters after optimizer steps, to 1e-4."""

import numpy as np
import pytest

import fastconv
from fastconv.nn import functional as F

torch = pytest.importorskip("torch")

from fastconv.bench.torch_mirror import torch_lenet  # noqa: E402  (needs torch)


def rel(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)


@pytest.mark.parametrize("variant", ["modern", "classic"])
@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_lenet_matches_torch(rng, variant, opt_name):
    fastconv.manual_seed(0)
    ours = fastconv.models.LeNet5(variant)
    ref = torch_lenet(variant)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    if opt_name == "sgd":
        o1 = fastconv.optim.SGD(ours.parameters(), 0.1, momentum=0.9, weight_decay=1e-4)
        o2 = torch.optim.SGD(ref.parameters(), 0.1, momentum=0.9, weight_decay=1e-4)
    else:
        o1 = fastconv.optim.Adam(ours.parameters(), 1e-3)
        o2 = torch.optim.Adam(ref.parameters(), 1e-3)
    for step in range(2):
        x = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
        y = rng.integers(0, 10, 8)
        logits = ours(fastconv.Tensor(x))
        loss = F.cross_entropy(logits, y)
        t_logits = ref(torch.from_numpy(x))
        t_loss = torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(y))
        assert rel(logits.numpy(), t_logits.detach().numpy()) < 1e-4
        assert abs(loss.item() - t_loss.item()) < 1e-4 * abs(t_loss.item())
        o1.zero_grad()
        o2.zero_grad()
        loss.backward()
        t_loss.backward()
        t_params = dict(ref.named_parameters())
        for name, p in ours.named_parameters():
            assert rel(p.grad, t_params[name].grad.numpy()) < 1e-4, (step, name)
        if opt_name == "adam":
            # Adam's first step is lr * g / (|g| + 1e-8) per element: where a gradient element is
            # near 1e-8, float32 rounding differences of the network (any conv algorithm's) move
            # its step by up to its whole size. The gradients were compared just above; the two
            # optimizers are compared on the same gradients.
            for name, p in ours.named_parameters():
                t_params[name].grad = torch.from_numpy(p.grad.copy())
        o1.step()
        o2.step()
        for name, p in ours.named_parameters():
            if opt_name == "sgd":
                assert rel(p.data, t_params[name].detach().numpy()) < 1e-4, (step, name)
            else:
                # Same gradients, so only the optimizers' own round-off is left; bounded by 1% of
                # the step size rather than relative to the weights.
                assert np.abs(p.data - t_params[name].detach().numpy()).max() < 1e-2 * 1e-3, (step, name)
