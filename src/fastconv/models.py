"""Ready-made models."""

from __future__ import annotations

from . import nn


class LeNet5(nn.Module):
    """LeNet-5 for (N, 1, 28, 28) input and 10 classes.

    Conv2d(1, 6, 5, padding=2) - act - pool(2) - Conv2d(6, 16, 5) - act - pool(2) - Flatten -
    Linear(400, 120) - act - Linear(120, 84) - act - Linear(84, 10).
    variant="modern" (default): ReLU and max pooling. variant="classic": sigmoid and average
    pooling, as in LeCun et al. 1998 and the d2l chapter.
    """

    VARIANTS = ("modern", "classic")

    def __init__(self, variant: str = "modern", num_classes: int = 10):
        super().__init__()
        if variant not in self.VARIANTS:
            raise ValueError(f"LeNet5: variant must be one of {self.VARIANTS}, got {variant!r}")
        self.variant = variant
        act = nn.ReLU if variant == "modern" else nn.Sigmoid
        pool = nn.MaxPool2d if variant == "modern" else nn.AvgPool2d
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), act(), pool(2),
            nn.Conv2d(6, 16, 5), act(), pool(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), act(),
            nn.Linear(120, 84), act(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"LeNet5: expected input of shape (N, 1, 28, 28), got {x.shape}")
        return self.classifier(self.features(x))

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}"


class MLP(nn.Module):
    """A small multilayer perceptron on flattened images: Flatten - (Linear - ReLU) x len(hidden) - Linear."""

    def __init__(self, in_features: int = 784, hidden=(256, 128), num_classes: int = 10):
        super().__init__()
        layers, width = [nn.Flatten()], in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


_MODELS = {"lenet5": LeNet5, "mlp": MLP}


def get_model(name: str, **kwargs) -> nn.Module:
    """Build a model by name (see :data:`names`)."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name](**kwargs)


names = sorted(_MODELS)

__all__ = ["LeNet5", "MLP", "get_model", "names"]
