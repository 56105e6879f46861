"""Input transforms that defend by preprocessing, and the tools that break them (Athalye, Carlini & Wagner, 2018).

A defense here is a module, and breaking it is composition:

* :class:`Defended` ``(model, transform)``: the transform, then the model; an ``nn.Module`` that every attack of
  :mod:`course_lib.attacks` accepts as it is.
* Transforms that mask gradients: :class:`BitDepth` (quantisation: its derivative is 0 almost everywhere,
  "shattered" gradients), :class:`JPEG` (not differentiable at all; its gradient is defined as 0 here, which is
  what an attacker gets who differentiates through a library that does not know it), :class:`RandomResizePad`
  (Xie et al., 2018: randomness, "stochastic" gradients).
* :class:`BPDA` ``(transform, backward=None)``: Backward Pass Differentiable Approximation: the forward pass is the
  transform, the backward pass the identity (or the derivative of a differentiable ``backward`` approximation).
* :class:`EOT` ``(module, samples)``: Expectation over Transformation: the forward pass averages the logits over
  ``samples`` draws of the module's randomness, so that its gradient is the gradient of the expectation.

``pgd(Defended(model, BPDA(BitDepth(2))), x, y, eps, ...)`` is BPDA-PGD against bit-depth reduction;
``pgd(EOT(Defended(model, RandomResizePad()), 10), ...)`` is EOT-PGD against random resizing and padding.
Every module is created in eval mode (they have no training behaviour), and :class:`Defended`, :class:`BPDA` and
:class:`EOT` take the mode of what they wrap, so :func:`course_lib.attacks.pgd` accepts them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._rng import generator, uniform
from .._validate import check_count, check_images
from ..corruptions import _jpeg_roundtrip

__all__ = ["Defended", "BitDepth", "MedianFilter", "JPEG", "RandomResizePad", "BPDA", "EOT"]


class Defended(nn.Module):
    """``model(transform(x))``: a preprocessing defense as one classifier.

    Args:
        model: the classifier (``[0, 1]`` images to logits).
        transform: an ``nn.Module`` or function from images ``(B, C, H, W)`` in ``[0, 1]`` to images the model
            takes (e.g. :class:`BitDepth`, :class:`JPEG`, :class:`RandomResizePad`, or :class:`BPDA` around one).
    The module is in the mode of ``model`` when created (eval for the shipped models)."""

    def __init__(self, model: nn.Module, transform):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not callable(transform):
            raise TypeError("transform must be an nn.Module or a function of the images, got "
                            f"{type(transform).__name__}")
        self.model = model
        self.transform = transform
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.transform(x))


class BitDepth(nn.Module):
    """Bit-depth reduction (Xu, Evans & Qi, 2018): each value rounded to the nearest of ``2^bits`` levels::

        T(x) = round( x * (2^bits - 1) ) / (2^bits - 1)          (bits = 1: 0 below 0.5, 1 above)

    Its derivative is 0 almost everywhere (``torch.round`` has a zero gradient), so a gradient attack through it
    sees nothing: the textbook case of shattered gradients, which :class:`BPDA` repairs."""

    def __init__(self, bits: int):
        super().__init__()
        self.bits = check_count(bits, "bits", minimum=1)
        if self.bits > 16:
            raise ValueError(f"bits must be at most 16, got {bits}")
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = 2 ** self.bits - 1
        return torch.round(x * levels) / levels

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class MedianFilter(nn.Module):
    """Median smoothing (the spatial squeezer of Xu, Evans & Qi, 2018): each pixel, per channel, replaced by the
    median of the ``size x size`` window around it::

        T(x)[c, i, j] = median{ x[c, i + u, j + v] : u, v in {-(size // 2), ..., size - 1 - size // 2} }

    exactly as ``scipy.ndimage.median_filter(x, size=(1, 1, size, size), mode="reflect")``, which Xu et al.'s code
    and ART's ``SpatialSmoothing`` call: for an even size (Xu et al. use 2x2 on MNIST) the window reaches one more
    pixel up and left than down and right, the "median" of an even count is its upper middle value
    (rank ``size^2 // 2`` of the sorted window), and the border is extended by mirroring it (``d c b a | a b c d``).
    The output is one of the window's values, so gradients flow to that pixel only (sparse, but not masked)."""

    def __init__(self, size: int = 2):
        super().__init__()
        self.size = check_count(size, "size", minimum=1)
        self.eval()

    @staticmethod
    def _mirror(n: int, before: int, after: int, device) -> torch.Tensor:
        i = torch.arange(-before, n + after, device=device)
        i = torch.where(i < 0, -i - 1, i)                 # scipy "reflect": the edge pixel is repeated
        return torch.where(i >= n, 2 * n - i - 1, i)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.size
        if k == 1:
            return x
        before, after = k // 2, k - 1 - k // 2
        b, c, h, w = x.shape
        xp = x[:, :, self._mirror(h, before, after, x.device)][:, :, :, self._mirror(w, before, after, x.device)]
        windows = xp.unfold(2, k, 1).unfold(3, k, 1).reshape(b, c, h, w, k * k)
        return windows.sort(dim=-1).values[..., (k * k) // 2]

    def extra_repr(self) -> str:
        return f"size={self.size}"


class JPEG(nn.Module):
    """JPEG compression and decompression at ``quality`` (1..100; Dziugaite et al., 2016; Guo et al., 2018), with
    Pillow, image by image on the CPU (the round trip of :func:`course_lib.corruptions.jpeg`; torchvision's JPEG
    functions are deprecated since 0.29); results on the input's device.

    JPEG is not differentiable; this module's gradient is 0 (the output is ``jpeg(x)`` as a constant plus
    ``0 * x``), which is what a naive attacker meets: plain PGD cannot move. ``BPDA(JPEG(q))`` differentiates it
    as the identity, which is how Athalye et al. broke it."""

    def __init__(self, quality: int = 75):
        super().__init__()
        self.quality = check_count(quality, "quality", minimum=1)
        if self.quality > 100:
            raise ValueError(f"quality must be in 1..100, got {quality}")
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        if x.shape[1] not in (1, 3):
            raise ValueError(f"JPEG needs 1 or 3 channels, got {x.shape[1]}")
        out = _jpeg_roundtrip(x.detach(), self.quality)
        return out + 0 * x  # part of the graph, with a zero gradient: the attacker's autograd gets 0, not an error

    def extra_repr(self) -> str:
        return f"quality={self.quality}"


class RandomResizePad(nn.Module):
    """Random resizing and padding (Xie et al., 2018), per image: the image is shrunk to a random side ``s`` drawn
    uniformly from ``[min_scale * H, H]``, placed at a random offset in an ``H x W`` frame filled with ``fill``, all
    in one bilinear resampling (``affine_grid``/``grid_sample``, differentiable). Xie et al. enlarge to a random
    size and pad to a fixed larger one before the network; keeping the model's input size, as here, is the same
    transformation up to a final resize.

    Every call draws new sizes and offsets: the gradient an attacker computes belongs to one random draw
    ("stochastic gradients"); :class:`EOT` averages over draws.

    Args:
        min_scale: the smallest relative size (default 0.8); 1 leaves the image unchanged.
        fill: the value of the padding (default 0, the MNIST background).
        seed: ``None`` (default: fresh draws from torch's global RNG at every call), an int (a private generator
            seeded once, advanced by every call: a fixed sequence of draws) or a ``torch.Generator``.
    """

    def __init__(self, min_scale: float = 0.8, fill: float = 0.0, seed=None):
        super().__init__()
        if not isinstance(min_scale, (int, float)) or isinstance(min_scale, bool) or not 0 < min_scale <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale!r}")
        self.min_scale, self.fill = float(min_scale), float(fill)
        self._gen = None if seed is None else generator(seed)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        b = x.shape[0]
        gen = self._gen if self._gen is not None else generator(None)
        scale = self.min_scale + (1 - self.min_scale) * uniform((b,), gen, x.device, x.dtype)   # s / H
        # the shrunken image's centre may go anywhere that keeps it inside the frame: |offset| <= 1 - scale
        offset = (2 * uniform((b, 2), gen, x.device, x.dtype) - 1) * (1 - scale)[:, None]
        theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
        theta[:, :, 2] = -offset / scale[:, None]
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        inside = F.grid_sample(torch.ones_like(x[:, :1]), grid, align_corners=False)       # 1 on the image
        out = F.grid_sample(x, grid, align_corners=False)                                  # zeros outside
        return out + (1 - inside) * self.fill

    def extra_repr(self) -> str:
        return f"min_scale={self.min_scale}, fill={self.fill}"


class BPDA(nn.Module):
    """Backward Pass Differentiable Approximation (Athalye, Carlini & Wagner, ICML 2018)::

        forward:   BPDA(x) = T(x)                         (the defense's transform, exactly)
        backward:  d BPDA / dx := d g / dx                (g = backward; the identity when backward is None)

    computed as ``g(x) + (T(x) - g(x)).detach()``: the value of ``T``, the gradient of ``g``. For a transform that
    is close to the identity (quantisation, JPEG, denoising) the identity is the approximation the paper uses.

    Args:
        transform: the non-differentiable (or gradient-masking) transform ``T``.
        backward: ``None`` (identity) or a differentiable function / module ``g`` with ``g(x) ~ T(x)``."""

    def __init__(self, transform, backward=None):
        super().__init__()
        if not callable(transform) or (backward is not None and not callable(backward)):
            raise TypeError("transform (and backward, if given) must be modules or functions of the images")
        self.transform = transform
        self.backward = backward
        self.train(getattr(transform, "training", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            value = self.transform(x)
        approx = x if self.backward is None else self.backward(x)
        return approx + (value - approx).detach()


class EOT(nn.Module):
    """Expectation over Transformation (Athalye et al., ICML 2018): the logits averaged over ``samples`` draws of
    the randomness of ``module``::

        EOT(x) = (1 / n) * sum_{i=1..n} module_i(x)        (module_i: the i-th call, with fresh random draws)

    so its gradient is the average of the ``n`` gradients, an estimate of the gradient of the expected logits
    that an attack can follow. The ``n`` copies of the batch go through ``module`` in one call when their size
    allows (``chunk`` images per call, default 4096), so a module that draws its randomness per image
    (:class:`RandomResizePad`) gives independent draws per copy.

    Args:
        module: a classifier with random behaviour, e.g. ``Defended(model, RandomResizePad())``.
        samples: ``n``, the draws averaged (>= 1).
        chunk: the most images per call of ``module``."""

    def __init__(self, module: nn.Module, samples: int, chunk: int = 4096):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
        self.module = module
        self.samples = check_count(samples, "samples", minimum=1)
        self.chunk = check_count(chunk, "chunk", minimum=1)
        self.train(module.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        copies = max(1, self.chunk // max(b, 1))          # copies of the batch per call
        total, done = 0, 0
        while done < self.samples:
            k = min(copies, self.samples - done)
            logits = self.module(x.repeat(k, *([1] * (x.dim() - 1))))
            total = total + logits.view(k, b, -1).sum(0)
            done += k
        return total / self.samples

    def extra_repr(self) -> str:
        return f"samples={self.samples}"
