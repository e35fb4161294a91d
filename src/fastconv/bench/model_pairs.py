"""The d2l models of benchmarks/bench_models.py and benchmarks/profile_model.py: their sizes, and
each as a pair, ours and its PyTorch mirror from the same weights with their optimizers and one
training step each. Needs torch."""

from __future__ import annotations

import torch

from .. import models, optim
from ..autograd import Tensor
from ..nn import functional as F
from ..nn.init import manual_seed
from ..runtime import set_num_threads
from .torch_mirror import copy_weights, to_torch

# name -> (width, input size), sized to train on 2 CPU cores. d2l feeds 224 pixels to AlexNet, VGG and
# NiN and 96 to GoogLeNet, ResNet and DenseNet; here AlexNet gets about its smallest workable size
# (65 -> 67), VGG its smallest (32), GoogLeNet, ResNet and DenseNet 32 (the issue's `--resize 32`).
# NiN gets 160: its global average pool then sees a 3x3 map (1x1 at 68 pixels, where whole classes
# die at the last ReLU; results/2026-11-26_epyc2c_nin.md), and it trains with d2l's recipe (plain
# SGD lr 0.1, batch 128, Xavier) plus a cosine schedule. At 224 pixels an epoch of AlexNet or VGG-11
# at width 0.25 takes about 150 s and 2,000 s here.
CONFIGS = {
    "alexnet": (0.25, 67), "vgg11": (0.25, 32), "nin": (0.25, 160), "googlenet": (0.25, 32),
    "resnet18": (0.25, 32), "densenet121": (0.5, 32),
}


def make_pair(name, width, size, threads, lr, optimizer="adam", momentum=0.9, init="default"):
    """Our small model and the same architecture in torch from the same weights, each with its
    optimizer: Adam, or SGD with `momentum`; init "xavier" redraws the weights as d2l's init_cnn."""
    set_num_threads(threads)
    torch.set_num_threads(threads)
    manual_seed(0)
    ours = models.get(name, small=True, width=width)
    if init == "xavier":
        models.xavier_init_(ours)
    ref = to_torch(ours)
    copy_weights(ref, ours)  # torch starts from our weights, whichever initialisation drew them
    if optimizer == "sgd":
        return (ours, optim.SGD(ours.parameters(), lr, momentum=momentum),
                ref, torch.optim.SGD(ref.parameters(), lr, momentum=momentum))
    return ours, optim.Adam(ours.parameters(), lr), ref, torch.optim.Adam(ref.parameters(), lr)


def make_steps(ours, opt, ref, ropt):
    """(step_ours, step_ref): one training step (cross-entropy, backward, optimizer step) on a numpy
    batch (images, labels) for each side of a pair."""

    def step_ours(xb, yb):
        loss = F.cross_entropy(ours(Tensor(xb)), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def step_ref(xb, yb):
        loss = torch.nn.functional.cross_entropy(ref(torch.from_numpy(xb)), torch.from_numpy(yb))
        ropt.zero_grad()
        loss.backward()
        ropt.step()

    return step_ours, step_ref
