"""fastconv inside PyTorch (optional extra ``fastconv[torch]``).

``torch.ops.fastconv.*`` custom operators (registered on import, see ``fastconv.torch.ops``),
drop-in layers ``Conv2d``, ``Conv1d``, ``ConvTranspose2d``, ``MaxPool2d``, ``AvgPool2d``,
``AdaptiveAvgPool2d``, and ``patch(model)`` to convert an existing model's layers in place. This
subpackage and ``fastconv.distributed`` (data-parallel training of native models over
torch.distributed) are the only parts of fastconv that import torch.
"""

from __future__ import annotations

from . import ops
from .modules import AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, ConvTranspose2d, MaxPool2d, PatchReport, patch

__all__ = ["ops", "Conv2d", "Conv1d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
           "PatchReport", "patch"]
