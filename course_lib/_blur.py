"""The Gaussian blur of the package (the blur corruption, the blurred baseline of deletion/insertion, the blur
inside feature visualisation): one separable convolution, differentiable."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_blur(x: torch.Tensor, sigma: float, truncate: float = 3.0, border: str = "reflect") -> torch.Tensor:
    """Blur every channel of ``x`` ``(B, C, H, W)`` with a Gaussian of standard deviation ``sigma`` pixels::

        x' = x * g_sigma  (separable: rows, then columns),   g(t) = exp(-t^2 / (2 sigma^2)) / sum,  |t| <= r

    with the radius ``r = max(1, ceil(truncate * sigma))``. ``border``: ``"reflect"`` (mirror the image; where it is
    smaller than the radius, the rest is replicated) or ``"replicate"`` (repeat the edge pixels). ``sigma <= 0``
    returns ``x`` itself. Differentiable, so it can sit inside an optimisation.
    """
    if border not in ("reflect", "replicate"):
        raise ValueError(f"border must be 'reflect' or 'replicate', got {border!r}")
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(truncate * sigma))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    out = _pad(x, (radius, radius, 0, 0), border)
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = _pad(out, (0, 0, radius, radius), border)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _pad(x: torch.Tensor, pad: tuple[int, int, int, int], border: str) -> torch.Tensor:
    if border == "replicate":
        return F.pad(x, pad, mode="replicate")
    # reflection needs a pad smaller than the side: reflect what fits, replicate the rest (tiny images)
    side = x.shape[-1] if pad[0] else x.shape[-2]
    r = max(pad)
    fit = min(r, side - 1)
    out = F.pad(x, tuple(fit if p else 0 for p in pad), mode="reflect") if fit > 0 else x
    if fit < r:
        out = F.pad(out, tuple(r - fit if p else 0 for p in pad), mode="replicate")
    return out
