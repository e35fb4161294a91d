"""Ready-made models."""

from __future__ import annotations

from . import nn
from ._validation import require_int, shape_str
from .autograd import cat
from .nn import functional as F


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

    def infer_shape(self, shape):
        if len(shape) != 4 or shape[1:] != (1, 28, 28):
            raise ValueError(f"LeNet5: expected input of shape (N, 1, 28, 28), got {shape_str(shape)}")
        return self.classifier.output_shape(self.features.output_shape(shape))

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

    def infer_shape(self, shape):
        return self.net.output_shape(shape)


# ---- the classic CNNs of the d2l chapters --------------------------------------------------------------
#
# Every constructor takes num_classes, in_channels and width (channel multiplier). small=False builds
# the standard definition (AlexNet, VGG, ResNet as in torchvision; NiN, GoogLeNet without auxiliary
# heads and DenseNet-121 as in their papers) for 224x224 images; small=True builds the version the
# d2l chapters train on Fashion-MNIST (1 input channel, 10 classes unless given).


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _check_width(width) -> float:
    if not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"width: expected a positive channel multiplier, got {width!r}")
    return float(width)


class ImageClassifier(nn.Module):
    """`features` (Sequential) then `classifier` (Sequential) on (N, in_channels, H, W) images.

    forward checks the input first: the channel count, and that H and W survive the downsampling
    (the error names the smallest square size that works, found by shape inference)."""

    def __init__(self, name: str, in_channels: int, features: nn.Sequential, classifier: nn.Sequential):
        super().__init__()
        self.name = name
        self.in_channels = in_channels
        self.features = features
        self.classifier = classifier
        self._min_size = None

    def infer_shape(self, shape):
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise ValueError(f"{self.name}: expected input of shape (N, {self.in_channels}, H, W), got "
                             f"{shape_str(shape)}")
        try:
            return self.classifier.output_shape(self.features.output_shape(shape))
        except ValueError as e:
            n = self.min_size()
            raise ValueError(f"{self.name}: input {shape_str(shape)} does not fit the downsampling; the smallest "
                             f"square input that works is {n}x{n} ({e})") from None

    def min_size(self) -> int:
        """The smallest H = W this model accepts (shape inference; 0 if none up to 1024)."""
        if self._min_size is None:
            self._min_size = next((n for n in range(1, 1025) if self._fits(n)), 0)
        return self._min_size

    def _fits(self, n: int) -> bool:
        try:
            self.classifier.output_shape(self.features.output_shape((1, self.in_channels, n, n)))
            return True
        except ValueError:
            return False

    def forward(self, x):
        self.output_shape(x.shape)  # raises the clear errors before any kernel runs
        return self.classifier(self.features(x))

    def extra_repr(self) -> str:
        return f"{self.name!r}"


# -- AlexNet


def alexnet(num_classes: int | None = None, in_channels: int | None = None, width: float = 1.0,
            small: bool = False) -> ImageClassifier:
    """AlexNet. Full: torchvision's (61,100,840 parameters at 1000 classes), any input >= 63x63
    thanks to its adaptive pooling to 6x6. small: d2l's (96-256-384-384-256 channels, padding 1,
    Linear(6400, 4096) on a 5x5 map), with an adaptive average pool to that 5x5 map in front of
    the classifier: the identity at d2l's 224x224 input, and any input >= 65x65 works."""
    num_classes, in_channels, width = _defaults(num_classes, in_channels, width, small)
    c = [_scaled(n, width) for n in ((96, 256, 384, 384, 256) if small else (64, 192, 384, 256, 256))]
    hidden = _scaled(4096, width)
    features = nn.Sequential(
        nn.Conv2d(in_channels, c[0], 11, stride=4, padding=1 if small else 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(),
        nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(),
        nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
    )
    if small:
        classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d((5, 5)), nn.Flatten(), nn.Linear(c[4] * 5 * 5, hidden), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(0.5), nn.Linear(hidden, num_classes))
    else:
        classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d((6, 6)), nn.Flatten(), nn.Dropout(0.5), nn.Linear(c[4] * 36, hidden), nn.ReLU(),
            nn.Dropout(0.5), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
    return ImageClassifier("alexnet", in_channels, features, classifier)


def _defaults(num_classes, in_channels, width, small):
    """Full size: 1000 classes of RGB images; small: 10 classes of grey images (Fashion-MNIST)."""
    num_classes = require_int(num_classes if num_classes is not None else (10 if small else 1000), "num_classes", 1)
    in_channels = require_int(in_channels if in_channels is not None else (1 if small else 3), "in_channels", 1)
    return num_classes, in_channels, _check_width(width)


# -- VGG

_VGG_CONFIGS = {
    "vgg11": ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)),
    "vgg16": ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)),
}


def _vgg(name, num_classes, in_channels, width, small):
    num_classes, in_channels, width = _defaults(num_classes, in_channels, width, small)
    layers, c = [], in_channels
    for num_convs, out in _VGG_CONFIGS[name]:
        out = _scaled(out, width)
        for _ in range(num_convs):
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU()]
            c = out
        layers.append(nn.MaxPool2d(2, 2))
    hidden = _scaled(4096, width)
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(), nn.Linear(c * 49, hidden), nn.ReLU(), nn.Dropout(0.5),
                               nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(0.5), nn.Linear(hidden, num_classes))
    return ImageClassifier(name, in_channels, nn.Sequential(*layers), classifier)


def vgg11(num_classes: int | None = None, in_channels: int | None = None, width: float = 1.0,
          small: bool = False) -> ImageClassifier:
    """VGG-11 (configuration A). Full: torchvision's, 132,863,336 parameters. small: d2l's layers (d2l
    trains it at width=0.25 on 224x224 images); both keep torchvision's adaptive pool to 7x7 in
    front of the classifier (the identity at 224x224), so any input >= 32x32 works."""
    return _vgg("vgg11", num_classes, in_channels, width, small)


def vgg16(num_classes: int | None = None, in_channels: int | None = None, width: float = 1.0,
          small: bool = False) -> ImageClassifier:
    """VGG-16 (configuration D). Full: torchvision's, 138,357,544 parameters. small: as vgg11's."""
    return _vgg("vgg16", num_classes, in_channels, width, small)


# -- NiN


def _nin_block(c_in, c_out, kernel, stride, padding):
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding), nn.ReLU(),
                         nn.Conv2d(c_out, c_out, 1), nn.ReLU(), nn.Conv2d(c_out, c_out, 1), nn.ReLU())


def nin(num_classes: int | None = None, in_channels: int | None = None, width: float = 1.0,
        small: bool = False) -> ImageClassifier:
    """Network in Network (Lin et al. 2013, as in d2l): four NiN blocks (a convolution and two 1x1
    convolutions each), the last with num_classes channels, then global average pooling. small only
    changes the defaults (1 channel, 10 classes): d2l trains this very network on 224x224 images."""
    num_classes, in_channels, width = _defaults(num_classes, in_channels, width, small)
    c = [_scaled(n, width) for n in (96, 256, 384)]
    features = nn.Sequential(
        _nin_block(in_channels, c[0], 11, 4, 0), nn.MaxPool2d(3, 2),
        _nin_block(c[0], c[1], 5, 1, 2), nn.MaxPool2d(3, 2),
        _nin_block(c[1], c[2], 3, 1, 1), nn.MaxPool2d(3, 2), nn.Dropout(0.5),
        _nin_block(c[2], num_classes, 3, 1, 1),
    )
    return ImageClassifier("nin", in_channels, features, nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten()))


# -- GoogLeNet


class Inception(nn.Module):
    """Four parallel paths concatenated on channels: 1x1; 1x1 then 3x3; 1x1 then 5x5; 3x3 max pool then 1x1."""

    def __init__(self, in_channels: int, c1: int, c2: tuple, c3: tuple, c4: int):
        super().__init__()
        self.p1 = nn.Sequential(nn.Conv2d(in_channels, c1, 1), nn.ReLU())
        self.p2 = nn.Sequential(nn.Conv2d(in_channels, c2[0], 1), nn.ReLU(), nn.Conv2d(c2[0], c2[1], 3, padding=1),
                                nn.ReLU())
        self.p3 = nn.Sequential(nn.Conv2d(in_channels, c3[0], 1), nn.ReLU(), nn.Conv2d(c3[0], c3[1], 5, padding=2),
                                nn.ReLU())
        self.p4 = nn.Sequential(nn.MaxPool2d(3, 1, padding=1), nn.Conv2d(in_channels, c4, 1), nn.ReLU())

    def forward(self, x):
        return cat([self.p1(x), self.p2(x), self.p3(x), self.p4(x)], 1)

    def infer_shape(self, shape):
        outs = [p.output_shape(shape) for p in (self.p1, self.p2, self.p3, self.p4)]
        return outs[0][:1] + (sum(o[1] for o in outs),) + outs[0][2:]


def googlenet(num_classes: int | None = None, in_channels: int | None = None, width: float = 1.0,
              small: bool = False) -> ImageClassifier:
    """GoogLeNet (Szegedy et al. 2014) without the auxiliary heads, as in d2l: nine Inception blocks and
    global average pooling. small only changes the defaults (d2l trains it on 96x96 images)."""
    num_classes, in_channels, width = _defaults(num_classes, in_channels, width, small)

    def w(*cs):
        return tuple(_scaled(n, width) for n in cs)

    def inc(c_in, c1, c2, c3, c4):
        return Inception(c_in, w(c1)[0], w(*c2), w(*c3), w(c4)[0])

    def out(c1, c2, c3, c4):
        return w(c1)[0] + w(*c2)[1] + w(*c3)[1] + w(c4)[0]

    cfg3 = [(64, (96, 128), (16, 32), 32), (128, (128, 192), (32, 96), 64)]
    cfg4 = [(192, (96, 208), (16, 48), 64), (160, (112, 224), (24, 64), 64), (128, (128, 256), (24, 64), 64),
            (112, (144, 288), (32, 64), 64), (256, (160, 320), (32, 128), 128)]
    cfg5 = [(256, (160, 320), (32, 128), 128), (384, (192, 384), (48, 128), 128)]
    c64, c192 = w(64, 192)
    layers = [nn.Conv2d(in_channels, c64, 7, stride=2, padding=3), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1),
              nn.Conv2d(c64, c64, 1), nn.ReLU(), nn.Conv2d(c64, c192, 3, padding=1), nn.ReLU(),
              nn.MaxPool2d(3, 2, padding=1)]
    c = c192
    for stage, cfg in enumerate((cfg3, cfg4, cfg5)):
        for block in cfg:
            layers.append(inc(c, *block))
            c = out(*block)
        if stage < 2:
            layers.append(nn.MaxPool2d(3, 2, padding=1))
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(c, num_classes))
    return ImageClassifier("googlenet", in_channels, nn.Sequential(*layers), classifier)


# -- ResNet


class Residual(nn.Module):
    """Basic residual block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), two 3x3 convolutions.

    `d2l=False` (torchvision): convolutions without bias, the projection shortcut (1x1 convolution
    where stride or channels change) followed by batch norm. `d2l=True`: convolutions with bias and
    a bare 1x1 convolution as the projection."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, d2l: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=d2l)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=d2l)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        elif d2l:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride))
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x):
        y = self.bn1.forward(self.conv1(x), relu=True)  # relu(bn1(...)) in one fused pass
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))

    def infer_shape(self, shape):
        y = self.bn2.output_shape(self.conv2.output_shape(self.bn1.output_shape(self.conv1.output_shape(shape))))
        s = self.shortcut.output_shape(shape)
        if y != s:  # cannot happen for blocks built here; guards hand-made ones
            raise ValueError(f"Residual: main path gives {shape_str(y)}, shortcut gives {shape_str(s)}")
        return y


def _resnet(name, blocks, num_classes, in_channels, width, small):
    num_classes, in_channels, width = _defaults(num_classes, in_channels, width, small)
    c = _scaled(64, width)
    layers = [nn.Conv2d(in_channels, c, 7, stride=2, padding=3, bias=small), nn.BatchNorm2d(c), nn.ReLU(),
              nn.MaxPool2d(3, 2, padding=1)]
    for stage, (n, out) in enumerate(zip(blocks, (64, 128, 256, 512))):
        out = _scaled(out, width)
        for i in range(n):
            layers.append(Residual(c, out, 2 if stage > 0 and i == 0 else 1, d2l=small))
            c = out
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(c, num_classes))
    return ImageClassifier(name, in_channels, nn.Sequential(*layers), classifier)


def resnet18(num_classes: int | None = None, in_channels: int | None = None, width: float = 1.0,
             small: bool = False) -> ImageClassifier:
    """ResNet-18. Full: torchvision's (11,689,512 parameters). small: d2l's (convolutions with bias,
    projection shortcuts without batch norm; d2l trains it on 96x96 images). Any input size works."""
    return _resnet("resnet18", (2, 2, 2, 2), num_classes, in_channels, width, small)


def resnet34(num_classes: int | None = None, in_channels: int | None = None, width: float = 1.0,
             small: bool = False) -> ImageClassifier:
    """ResNet-34. Full: torchvision's (21,797,672 parameters). small: with d2l's blocks, as resnet18."""
    return _resnet("resnet34", (3, 4, 6, 3), num_classes, in_channels, width, small)


# -- DenseNet


class DenseBlock(nn.Module):
    """`num_layers` layers, each seeing the concatenation of the block input and all earlier outputs
    and adding `growth` channels. bottleneck (DenseNet-BC): BN-ReLU-Conv1x1(bottleneck) then
    BN-ReLU-Conv3x3; otherwise (d2l) BN-ReLU-Conv3x3 only."""

    def __init__(self, num_layers: int, in_channels: int, growth: int, bottleneck: int | None, bias: bool):
        super().__init__()
        self.layers = nn.ModuleList()
        c = in_channels
        for _ in range(num_layers):
            if bottleneck:
                layer = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, bottleneck, 1, bias=bias),
                                      nn.BatchNorm2d(bottleneck), nn.ReLU(),
                                      nn.Conv2d(bottleneck, growth, 3, padding=1, bias=bias))
            else:
                layer = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, growth, 3, padding=1, bias=bias))
            self.layers.append(layer)
            c += growth
        self.out_channels = c

    def forward(self, x):
        for layer in self.layers:
            x = cat([x, layer(x)], 1)
        return x

    def infer_shape(self, shape):
        for layer in self.layers:
            y = layer.output_shape(shape)
            shape = shape[:1] + (shape[1] + y[1],) + shape[2:]
        return shape


def _transition(c_in, c_out, bias):
    return nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=bias), nn.AvgPool2d(2, 2))


def densenet121(num_classes: int | None = None, in_channels: int | None = None, width: float = 1.0,
                small: bool = False) -> ImageClassifier:
    """DenseNet-121 (Huang et al. 2017; torchvision's layout, 7,978,856 parameters): blocks of 6, 12, 24
    and 16 bottleneck layers, growth 32, compression 0.5. small: d2l's DenseNet (four blocks of four
    BN-ReLU-Conv3x3 layers with bias, growth 32; d2l trains it on 96x96 images)."""
    num_classes, in_channels, width = _defaults(num_classes, in_channels, width, small)
    c, growth = _scaled(64, width), _scaled(32, width)
    layers = [nn.Conv2d(in_channels, c, 7, stride=2, padding=3, bias=small), nn.BatchNorm2d(c), nn.ReLU(),
              nn.MaxPool2d(3, 2, padding=1)]
    sizes = (4, 4, 4, 4) if small else (6, 12, 24, 16)
    bottleneck = None if small else 4 * growth
    for i, n in enumerate(sizes):
        block = DenseBlock(n, c, growth, bottleneck, bias=small)
        layers.append(block)
        c = block.out_channels
        if i < len(sizes) - 1:
            layers.append(_transition(c, c // 2, small))
            c //= 2
    layers += [nn.BatchNorm2d(c), nn.ReLU()]
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(c, num_classes))
    return ImageClassifier("densenet121", in_channels, nn.Sequential(*layers), classifier)


_MODELS = {"lenet5": LeNet5, "mlp": MLP, "alexnet": alexnet, "vgg11": vgg11, "vgg16": vgg16, "nin": nin,
           "googlenet": googlenet, "resnet18": resnet18, "resnet34": resnet34, "densenet121": densenet121}



def get_model(name: str, **kwargs) -> nn.Module:
    """Build a model by name (see :data:`names`)."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name](**kwargs)


names = sorted(_MODELS)

get = get_model


def xavier_init_(model: nn.Module) -> None:
    """Re-draw the weight of every Conv2d and Linear of ``model`` with nn.init.xavier_uniform, in
    place (biases keep their defaults), as d2l's ``init_cnn`` does for the CNNs it trains. (It was
    nn.init.xavier_init_; it lives here so that nn.init needs no layer types.)"""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a fastconv.nn.Module, got {type(model).__name__}")
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.weight.data[...] = nn.init.xavier_uniform(module.weight.data.shape)


def summary(model: nn.Module, input_shape) -> list[dict]:
    """One row per layer (in execution order) for an input of `input_shape` (with batch dimension):
    name, type, output shape (shape inference, no arrays), parameters, multiply-adds (convolutions and
    linear layers) and, for convolutions, the forward algorithm that runs (``conv.auto_forward`` for
    ``algo="auto"``). Where "auto" drops kernel taps that only see zero padding, the algorithm says
    so (e.g. "gemm (1x1 of 3x3 taps)") and the multiply-adds are those of the smaller problem."""
    from .conv import auto_forward

    names = {id(m): name for name, m in model.named_modules()}
    rows = []
    for m, shape_in, shape_out in nn.trace_shapes(model, input_shape):
        if m._modules:  # containers: their layers have rows of their own
            continue
        row = {"name": names.get(id(m), "?"), "type": type(m).__name__, "output_shape": shape_out,
               "params": sum(p.numel() for p in m._parameters.values() if p is not None), "macs": 0, "algo": ""}
        if isinstance(m, nn.Conv2d):
            if m.algo == "auto":
                algo, p = auto_forward(shape_in, m.weight.shape, m.stride, m.padding, m.dilation, m.groups)
                R, S = m.weight.shape[2:]
                row["algo"] = algo if (p.R, p.S) == (R, S) else f"{algo} ({p.R}x{p.S} of {R}x{S} taps)"
            else:
                p, row["algo"] = m.conv_params(shape_in), m.algo
            row["macs"] = p.N * p.K * p.P * p.Q * (p.C // p.groups) * p.R * p.S
        elif isinstance(m, nn.Linear):
            row["macs"] = shape_in[0] * m.in_features * m.out_features
        rows.append(row)
    return rows

__all__ = ["LeNet5", "MLP", "ImageClassifier", "Inception", "Residual", "DenseBlock", "alexnet", "vgg11", "vgg16",
           "nin", "googlenet", "resnet18", "resnet34", "densenet121", "get", "get_model", "names", "summary", "xavier_init_"]
