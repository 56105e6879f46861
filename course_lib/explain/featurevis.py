"""What a unit of the network responds to: its feature maps, and images optimised to excite it.

* :func:`feature_maps` returns a layer's output ``A`` (B, K, h, w): what each of its K channels sees in x.
* :func:`activation_maximization` (Erhan et al., 2009; Olah, Mordvintsev & Schubert, "Feature
  Visualization", Distill 2017) searches for an image that maximises one channel (or one logit):

      x* = argmax_{x in [0,1]^{C x H x W}}  E_{t ~ T} [ mean_{i,j} A_k(t(x))_{ij} ]  - regularisers

  Plain gradient ascent on pixels finds high-frequency patterns (adversarial noise for the unit). Two tricks
  make the picture readable: a *parameterisation* that favours natural images (a Fourier spectrum scaled by
  1/frequency, colours decorrelated, a sigmoid into [0, 1]), and *transformation robustness* (the image must
  excite the unit after random jitter, scaling and rotation t ~ T, so pixel-exact tricks do not pay).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .._blur import gaussian_blur
from .._rng import generator, normal, uniform
from .._validate import check_images, check_in, check_model
from ._common import capture, get_layer, model_device_dtype

__all__ = ["feature_maps", "activation_maximization"]

# Square root of the colour covariance of ImageNet photos (as used by Olah et al. / lucid): the Fourier
# parameters describe decorrelated colour components that this matrix mixes back into RGB.
_COLOR_SQRT_COV = torch.tensor([[0.26, 0.09, 0.02],
                                [0.27, 0.00, -0.05],
                                [0.27, -0.09, 0.03]])


class _Stop(Exception):
    """Raised by a hook to skip the layers after the one we need."""


def _layer_output(model: nn.Module, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``model(x)`` only as far as ``module`` and return its output (the hook is always removed)."""
    with capture(module) as store:
        def stop(_mod, _inp, _out):
            raise _Stop
        handle = module.register_forward_hook(stop)  # registered after capture's hook, so it runs second
        try:
            model(x)
        except _Stop:
            pass
        finally:
            handle.remove()
    if "out" not in store:
        raise ValueError("the layer was not called during model(x): is it part of the forward pass?")
    out = store["out"]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the layer's output must be a tensor, got {type(out).__name__}")
    return out


def feature_maps(model: nn.Module, x: torch.Tensor, layer=None) -> torch.Tensor:
    """The output of ``layer`` for the images ``x``: ``A = layer(...(x))``, shape (B, K, h, w) for a conv layer.

    Args:
        model: a classifier in eval mode taking images in [0, 1].
        x: images (B, C, H, W) in [0, 1].
        layer: a module name such as ``"features.relu2"`` or the module itself; ``None`` means
            ``model.cam_layer`` (the maps before global average pooling).

    Returns the maps, detached, on x's device. Only the layers up to ``layer`` are run.
    """
    check_images(x)
    check_model(model, x)
    module = get_layer(model, layer)
    with torch.no_grad():
        return _layer_output(model, module, x).detach()


# --------------------------------------------------------------------------- parameterisations
def _fourier_scale(h: int, w: int, decay_power: float, device, dtype) -> torch.Tensor:
    """1 / f^decay_power for the rfft2 grid of an h x w image (f in cycles per pixel, floored at 1/max(h, w))."""
    fy = torch.fft.fftfreq(h, device=device, dtype=dtype)[:, None]
    fx = torch.fft.rfftfreq(w, device=device, dtype=dtype)[None, :]
    f = torch.sqrt(fx ** 2 + fy ** 2).clamp_min(1.0 / max(h, w))
    return f ** (-decay_power)


def _to_image(params: torch.Tensor, param: str, shape, scale, color, blur: float, init: float) -> torch.Tensor:
    """Map the optimised parameters to images (n, C, H, W) in [0, 1]."""
    c, h, w = shape
    if param == "fourier":
        spectrum = torch.view_as_complex(params) * scale
        # "ortho" keeps unit variance per frequency; /4 keeps the start close to grey (as in lucid)
        img = torch.fft.irfft2(spectrum, s=(h, w), norm="ortho") / 4
    else:
        img = params
    if color is not None:  # (n, 3, H, W) decorrelated components -> RGB
        img = torch.einsum("ij,njhw->nihw", color, img)
    img = torch.sigmoid(img + math.log(init / (1 - init)))
    return gaussian_blur(img, blur, truncate=2.0, border="replicate") if blur > 0 else img


def _random_transform(img: torch.Tensor, gen: torch.Generator, jitter: int, scale, rotate: float) -> torch.Tensor:
    """One random translation (up to ``jitter`` pixels), scaling and rotation, the same for the whole batch."""
    h, w = img.shape[-2:]
    u = uniform(4, gen, dtype=torch.float64)
    dx = round((2 * float(u[0]) - 1) * jitter)
    dy = round((2 * float(u[1]) - 1) * jitter)
    s = scale[0] + (scale[1] - scale[0]) * float(u[2])
    a = math.radians((2 * float(u[3]) - 1) * rotate)
    if s == 1.0 and a == 0.0:
        # a pure integer shift: roll, no interpolation (reflection would cost a resampling)
        return torch.roll(img, shifts=(dy, dx), dims=(-2, -1))
    # affine_grid works in [-1, 1] coordinates: a shift of d pixels is 2d/size there
    cos, sin = math.cos(a) / s, math.sin(a) / s
    theta = torch.tensor([[cos, -sin, 2 * dx / w], [sin, cos, 2 * dy / h]], dtype=img.dtype, device=img.device)
    grid = F.affine_grid(theta.expand(img.shape[0], 2, 3), list(img.shape), align_corners=False)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _total_variation(img: torch.Tensor) -> torch.Tensor:
    return (img[..., 1:, :] - img[..., :-1, :]).abs().mean((1, 2, 3)) + \
        (img[..., :, 1:] - img[..., :, :-1]).abs().mean((1, 2, 3))


def activation_maximization(model: nn.Module, layer, channel, shape, steps: int = 128, seed=None, *,
                            lr: float = 0.05, param: str = "fourier", decay_power: float = 1.0,
                            decorrelate: bool = True, jitter: int | None = None, scale=(0.95, 1.05),
                            rotate: float = 5.0, blur: float = 0.0, tv: float = 0.0, l2: float = 0.0,
                            init: float = 0.5, progress: bool = True) -> torch.Tensor:
    """An image in [0, 1] that maximises the mean activation of one channel of ``layer`` (Erhan et al. 2009;
    Olah et al. 2017, "Feature Visualization", Distill).

    Objective, maximised with Adam over the image parameters theta (never the model's)::

        x = sigmoid(decorrelate(irfft2(theta / f^decay_power)) + logit(init))     (param="fourier")
        J(theta) = mean_{i,j} A_k(t(x))_{ij} - tv * TV(x) - l2 * mean((x - init)^2),   t random each step

    where A_k is channel ``k`` of ``layer``'s output (for a 2-D output such as ``"fc"``, unit k: a class
    logit). One random transformation t per step (jitter, scale, rotation) is applied before the model.

    Pick a layer *before* its ReLU (``"features.bn5"`` rather than ``"features.relu5"``): a unit that is off on
    the grey start image passes no gradient and the image never changes (a warning says so when no penalty
    hides it). Defaults are tuned on imagenet_lite0 at 128 x 128 (class logits and ``blocks.*`` channels look
    like parts of objects and textures after 128 steps); for 28 x 28 digits ``lr=0.1, init=0.1`` (a dark start,
    like MNIST's background) gives clearer strokes.

    Args:
        model: a classifier in eval mode taking images in [0, 1]; it is never changed (mode, requires_grad
            and parameters' ``.grad`` stay as they were: gradients are taken with torch.autograd.grad).
        layer: a module name (``"features.relu3"``, ``"fc"``) or the module itself; None = ``model.cam_layer``.
        channel: the channel (or unit) index k. A list of indices optimises one image per index in one batch
            (faster than separate calls) and returns (len(channel), C, H, W).
        shape: (C, H, W) or (1, C, H, W) of the image, e.g. (1, 28, 28) for MNIST, (3, 128, 128) for ImageNet
            models (they work at reduced sizes; smaller is faster).
        steps: optimisation steps (default 128).
        seed: the randomness of the start and the transformations: ``None`` (fresh, from torch's global RNG), an
            int or a ``torch.Generator`` (see :mod:`course_lib._rng`); the same seed gives the same image.
        lr: Adam learning rate (default 0.05).
        param: ``"fourier"`` (default: spectrum scaled by 1/f, a strong prior for natural images) or ``"pixel"``
            (logits of the pixels; noisier, shows why a prior is needed).
        decay_power: exponent of the 1/f^p spectrum scaling (default 1; larger favours smoother images).
        decorrelate: mix 3-channel images through ImageNet's colour correlation (default True).
        jitter: maximal random translation in pixels per step; None = 5% of the image size (at least 1).
        scale: range of the random zoom factor per step (default (0.95, 1.05); (1, 1) turns it off).
        rotate: maximal random rotation in degrees per step (default 5; 0 turns it off).
        blur: sigma (pixels) of a Gaussian blur that is part of the parameterisation (default 0 = off).
        tv: weight of the total-variation penalty (default 0 = off).
        l2: weight of the penalty on the mean squared distance from the start grey level (default 0 = off).
        init: grey level of the start image in (0, 1) (default 0.5, the middle of the pixel range).
        progress: show a tqdm progress bar (default True).

    Returns:
        A detached image (1, C, H, W) (or (n, C, H, W) for a list of n channels) in [0, 1] on the model's device.
    """
    check_model(model)
    check_in(param, {"fourier", "pixel"}, "param")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    shape = tuple(int(s) for s in shape) if isinstance(shape, (tuple, list, torch.Size)) else shape
    if not isinstance(shape, tuple) or len(shape) not in (3, 4) or (len(shape) == 4 and shape[0] != 1) \
            or min(shape) < 1:
        raise ValueError(f"shape must be (C, H, W) or (1, C, H, W) with positive sizes, got {shape!r}")
    c, h, w = shape[-3:]
    channels = [channel] if not isinstance(channel, (Sequence, torch.Tensor)) else list(channel)
    channels = [int(k) if isinstance(k, torch.Tensor) else k for k in channels]
    if not channels or any(not isinstance(k, int) or isinstance(k, bool) or k < 0 for k in channels):
        raise ValueError(f"channel must be a non-negative int or a list of them, got {channel!r}")
    if not 0 < init < 1:
        raise ValueError(f"init must be a grey level strictly between 0 and 1, got {init!r}")
    if jitter is None:
        jitter = max(1, round(0.05 * max(h, w)))
    if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
        raise ValueError(f"scale must be a range (low, high) with 0 < low <= high, got {scale!r}")
    module = get_layer(model, layer)
    device, dtype = model_device_dtype(model)
    n = len(channels)

    gen = generator(seed)
    if param == "fourier":
        params = 0.01 * normal((n, c, h, w // 2 + 1, 2), gen, device, dtype)
        scale_f = _fourier_scale(h, w, decay_power, device, dtype)
    else:
        params = 0.01 * normal((n, c, h, w), gen, device, dtype)
        scale_f = None
    params = params.requires_grad_(True)
    color = None
    if decorrelate and c == 3:
        # normalise so the largest column has norm 1: the components keep roughly unit scale
        color = (_COLOR_SQRT_COV / _COLOR_SQRT_COV.norm(dim=0).max()).to(device=device, dtype=dtype)
    # Adam (Kingma & Ba, 2015), written out: each parameter moves about lr per step whatever its gradient's scale
    m1, m2, beta1, beta2 = torch.zeros_like(params), torch.zeros_like(params), 0.9, 0.999
    index = torch.arange(n, device=device)
    chan = torch.tensor(channels, device=device)

    with torch.enable_grad():
        for step in tqdm(range(steps), desc="activation maximisation", disable=not progress, leave=False):
            img = _to_image(params, param, (c, h, w), scale_f, color, blur, init)
            acts = _layer_output(model, module, _random_transform(img, gen, jitter, scale, rotate))
            if acts.dim() not in (2, 4):
                raise ValueError(f"the layer's output must be (B, K) or (B, K, h, w), got {tuple(acts.shape)}")
            if max(channels) >= acts.shape[1]:
                raise ValueError(f"channel must be in [0, {acts.shape[1]}) for this layer, got {channel!r}")
            objective = acts[index, chan]
            if objective.dim() == 3:
                objective = objective.mean((1, 2))
            if tv:
                objective = objective - tv * _total_variation(img)
            if l2:
                objective = objective - l2 * ((img - init) ** 2).mean((1, 2, 3))
            (grad,) = torch.autograd.grad(-objective.sum(), params)
            if step == 0 and (grad.flatten(1) == 0).all(1).any():
                warnings.warn("the channel passes no gradient on the start image (a ReLU that is off or a clamp "
                              "that is saturated everywhere), so the image will not change: pick the layer "
                              "before the activation, e.g. 'features.bn' instead of 'features'", stacklevel=2)
            with torch.no_grad():
                m1.mul_(beta1).add_(grad, alpha=1 - beta1)
                m2.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                m_hat, v_hat = m1 / (1 - beta1 ** (step + 1)), m2 / (1 - beta2 ** (step + 1))
                params -= lr * m_hat / (v_hat.sqrt() + 1e-8)
    with torch.no_grad():
        return _to_image(params, param, (c, h, w), scale_f, color, blur, init).detach()
