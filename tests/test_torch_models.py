"""fastconv.bench.torch_models: the benchmark's ImageNet models have torchvision's sizes, and
fastconv.torch.patch swaps every layer of them and keeps their outputs."""

import copy

import pytest

torch = pytest.importorskip("torch")

import fastconv.torch as ft  # noqa: E402
from fastconv.bench.torch_models import MODELS, build, calibrate_batch_norm  # noqa: E402

# torchvision's parameter counts (GoogLeNet without its auxiliary classifiers)
PARAMETERS = {"resnet18": 11_689_512, "resnet50": 25_557_032, "mobilenet_v2": 3_504_872, "googlenet": 6_624_904}


@pytest.mark.parametrize("name", list(MODELS))
def test_sizes_are_torchvisions(name):
    model = build(name, calibration_batch=0)
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[name]


@pytest.mark.parametrize("name", list(MODELS))
def test_patched_model_keeps_the_outputs(name):
    """On 64x64 images (small enough for a test; every stage still runs): eval outputs within 5e-4
    of torch's (the registry's Winograd bound; on these 2x2-pixel last stages batch norm amplifies
    differences more than at 224x224, where the benchmark sees at most 5e-5), nothing left unpatched."""
    model = build(name, calibration_batch=0)
    x = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    calibrate_batch_norm(model, x)
    x = x[:2]
    patched = copy.deepcopy(model)
    report = ft.patch(patched)
    assert report.left == [] and report.swapped
    with torch.no_grad():
        want, got = model(x), patched(x)
    assert float(want.std()) > 1e-3  # activations kept their scale: the check compares something
    assert float((got - want).abs().max() / want.abs().max()) < 5e-4


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="resnet18"):
        build("vgg16")
