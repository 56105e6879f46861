"""How many images go through the model at once when the caller does not say.

Large batches are fast for small images and on a GPU, but on a CPU a batch of big images is *slower per image*
than a small one (the activations no longer fit in the caches): EfficientNet-Lite0 at 224x224 on 2 cores takes
about 33 ms per image in a batch of 25 and 13 ms in batches of 4 (forward only; forward + backward 58 ms vs 19 ms
in batches of 8). So "auto" means about 2^20 input values per forward pass: 1,337 MNIST digits, 6 ImageNet photos.
"""
from __future__ import annotations

import torch
from torch import nn

#: input values per forward pass when ``batch_size=None``
VALUES_PER_BATCH = 2 ** 20


def check_batch_size(batch_size, x: torch.Tensor) -> int:
    """``batch_size`` (images per forward pass) checked; ``None`` = as many images as fit in
    :data:`VALUES_PER_BATCH` input values (1337 MNIST images, 6 ImageNet images at 224x224)."""
    if batch_size is None:
        return max(1, VALUES_PER_BATCH // x[0].numel())
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int (images per forward pass) or None, got {batch_size!r}")
    return batch_size


@torch.no_grad()
def logits_in_batches(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """``model(x)`` computed ``batch_size`` images at a time (``None`` = auto, see above), without gradients.
    No checks: the public callers have made them."""
    n = check_batch_size(batch_size, x)
    if n >= x.shape[0]:
        return model(x)  # one pass: no copy through torch.cat
    return torch.cat([model(x[i:i + n]) for i in range(0, x.shape[0], n)])
