"""Natural deviations ("safety"): seven corruptions at five severities each, batched and seeded.

Safety asks whether a model keeps working when its inputs drift in ways nobody designed: sensor noise,
focus, lighting, rotation, resolution, compression. The corruptions follow the spirit of ImageNet-C
(Hendrycks & Dietterich, ICLR 2019); severities are scaled to the image size so 28x28 digits and
224x224 photos degrade comparably. Every function maps ``(B, C, H, W)`` in ``[0, 1]`` to the same shape
in ``[0, 1]``; severity 0 returns an unchanged copy. ``seed`` (noise and rotation only) means what it means in
the whole package (:mod:`course_lib._rng`): ``None`` = fresh randomness from torch's global RNG, an int = the
same result for the same int, a ``torch.Generator`` = used as is.

======================  =============================================================================
name                    x' for severity s = 1..5
======================  =============================================================================
``gaussian_noise``      clip(x + n), n ~ N(0, sigma_s^2), sigma = .08 .12 .18 .26 .38
``gaussian_blur``       x * G_sigma (separable), sigma = (.4 .6 .8 1.0 1.3) * H / 32 pixels
``brightness``          clip(x + b), b = .1 .2 .3 .4 .5
``contrast``            clip(m + c (x - m)), m = per-image channel mean, c = .4 .3 .2 .1 .05
``rotation``            rotate by +-theta (random sign per image), theta = 10 20 30 45 60 degrees
``pixelate``            downsample to (f H, f W) by area, upsample nearest, f = .6 .5 .4 .3 .25
``jpeg``                JPEG encode/decode (Pillow) with quality 25 18 15 10 7
======================  =============================================================================
"""
from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import _blur
from ._batches import logits_in_batches
from ._rng import generator, integers, normal
from ._validate import check_images, check_labels, check_model

__all__ = ["CORRUPTIONS", "SEVERITIES", "corrupt", "gaussian_noise", "gaussian_blur", "brightness", "contrast",
           "rotation", "pixelate", "jpeg", "accuracy_under_corruptions", "print_and_photograph",
           "PRINT_PHOTO"]

SEVERITIES = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "gaussian_blur": (0.4, 0.6, 0.8, 1.0, 1.3),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "rotation": (10, 20, 30, 45, 60),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
    "jpeg": (25, 18, 15, 10, 7),
}


def _param(name: str, severity: int):
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 0 <= severity <= 5:
        raise ValueError(f"severity must be an int in 0..5 (0 = clean), got {severity!r}")
    return None if severity == 0 else SEVERITIES[name][severity - 1]


def gaussian_noise(x: torch.Tensor, severity: int, seed=None) -> torch.Tensor:
    """``clip(x + n, 0, 1)`` with ``n ~ N(0, sigma^2)`` i.i.d. per pixel (sensor noise)."""
    check_images(x)
    sigma = _param("gaussian_noise", severity)
    if sigma is None:
        return x.clone()
    noise = normal(x.shape, generator(seed), x.device, x.dtype)
    return (x + sigma * noise).clamp(0, 1)


def gaussian_blur(x: torch.Tensor, severity: int, seed=None) -> torch.Tensor:
    """Convolution with a Gaussian of standard deviation ``sigma * H / 32`` pixels (defocus)."""
    check_images(x)
    s = _param("gaussian_blur", severity)
    if s is None:
        return x.clone()
    return _blur.gaussian_blur(x, s * x.shape[-2] / 32, truncate=3.0, border="reflect").clamp(0, 1)


def brightness(x: torch.Tensor, severity: int, seed=None) -> torch.Tensor:
    """``clip(x + b, 0, 1)``: more light."""
    check_images(x)
    b = _param("brightness", severity)
    return x.clone() if b is None else (x + b).clamp(0, 1)


def contrast(x: torch.Tensor, severity: int, seed=None) -> torch.Tensor:
    """``m + c (x - m)`` with ``m`` the per-image, per-channel mean: less contrast (fog, glare)."""
    check_images(x)
    c = _param("contrast", severity)
    if c is None:
        return x.clone()
    m = x.mean(dim=(2, 3), keepdim=True)
    return (m + c * (x - m)).clamp(0, 1)


def rotation(x: torch.Tensor, severity: int, seed=None) -> torch.Tensor:
    """Rotate each image by ``+-theta`` degrees around its centre (random sign per image), zeros outside."""
    check_images(x)
    theta = _param("rotation", severity)
    if theta is None:
        return x.clone()
    sign = integers(0, 2, (x.shape[0],), generator(seed), x.device) * 2 - 1
    a = torch.deg2rad(sign.to(x.dtype) * theta)
    cos, sin, zero = torch.cos(a), torch.sin(a), torch.zeros_like(a)
    mat = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(mat, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp(0, 1)


def pixelate(x: torch.Tensor, severity: int, seed=None) -> torch.Tensor:
    """Average-pool to a fraction ``f`` of the resolution, then blow back up with nearest neighbours."""
    check_images(x)
    f = _param("pixelate", severity)
    if f is None:
        return x.clone()
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, round(h * f)), max(1, round(w * f))), mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest").clamp(0, 1)


def _jpeg_roundtrip(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode each image as JPEG with ``quality`` (Pillow, on the CPU); 1 or 3 channels."""
    from PIL import Image

    arr = (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = []
    for img in arr:
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=int(quality))
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255.0
        out.append(dec[..., None] if dec.ndim == 2 else dec)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype).contiguous()


def jpeg(x: torch.Tensor, severity: int, seed=None) -> torch.Tensor:
    """Encode and decode each image as JPEG with the severity's quality (Pillow, on the CPU)."""
    check_images(x)
    q = _param("jpeg", severity)
    if q is None:
        return x.clone()
    if x.shape[1] not in (1, 3):
        raise ValueError(f"jpeg needs 1 or 3 channels, got {x.shape[1]}")
    return _jpeg_roundtrip(x, q)


CORRUPTIONS = {
    "gaussian_noise": gaussian_noise, "gaussian_blur": gaussian_blur, "brightness": brightness,
    "contrast": contrast, "rotation": rotation, "pixelate": pixelate, "jpeg": jpeg,
}


def corrupt(x: torch.Tensor, name: str, severity: int, seed=None) -> torch.Tensor:
    """Apply the corruption ``name`` (a key of :data:`CORRUPTIONS`) at ``severity`` 0..5."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; available: {list(CORRUPTIONS)}")
    return CORRUPTIONS[name](x, severity, seed=seed)


@torch.no_grad()
def accuracy_under_corruptions(model: nn.Module, x: torch.Tensor, y: torch.Tensor, names=None,
                               severities=range(6), seed: int = 0, batch_size: int = 256,
                               progress: bool = True) -> dict[str, list[float]]:
    """Accuracy of ``model`` on ``corrupt(x, name, s)`` for each corruption and severity (0 = clean).

    The images are corrupted ``batch_size`` at a time (the chunk starting at image ``i`` with seed ``seed + i``)
    and classified in forward passes of about 2^20 input values (fast on a CPU for photos too).
    Returns ``{name: [accuracy at each severity]}``, ready for :func:`course_lib.plot.plot_curves`.
    """
    from tqdm.auto import tqdm

    check_images(x)
    check_labels(y, len(x), device=x.device)
    check_model(model, x)
    names = list(CORRUPTIONS) if names is None else list(names)
    for n in names:
        if n not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {n!r}; available: {list(CORRUPTIONS)}")
    severities = list(severities)
    result = {n: [] for n in names}
    jobs = [(n, s) for n in names for s in severities]
    clean = None
    for n, s in tqdm(jobs, desc="corruptions", disable=not progress):
        if s == 0 and clean is not None:
            result[n].append(clean)
            continue
        correct = 0
        for i in range(0, len(x), batch_size):
            xb = corrupt(x[i:i + batch_size], n, s, seed=seed + i)
            correct += int((logits_in_batches(model, xb).argmax(1) == y[i:i + batch_size]).sum())
        acc = correct / len(x)
        if s == 0:
            clean = acc
        result[n].append(acc)
    return result


# --------------------------------------------------------------------------- print and photograph
#: Print-and-photograph parameters per severity 1..5 (Brown et al. printed their patch and photographed it):
#: the printer's range ``[lo, hi]`` (ink is never black, paper never white), the camera's blur ``sigma * H / 224``
#: pixels (focus, resampling), its sensor noise and the phone's JPEG quality.
PRINT_PHOTO = {
    "lo": (0.03, 0.06, 0.09, 0.12, 0.15),
    "hi": (0.96, 0.92, 0.88, 0.84, 0.80),
    "blur": (0.2, 0.4, 0.6, 0.8, 1.0),
    "noise": (0.01, 0.02, 0.03, 0.04, 0.05),
    "jpeg": (85, 75, 65, 55, 45),
}


def print_and_photograph(x: torch.Tensor, severity: int, seed=None, skip=()) -> torch.Tensor:
    """What printing an image and photographing it with a phone does to it, at ``severity`` 0..5 (0 = a copy)::

        printed  = lo + (hi - lo) x                         (the printer's range: grey ink, off-white paper)
        photo    = clip( G_sigma * printed + n ),  n ~ N(0, s_n^2)     (camera blur, sensor noise)
        result   = JPEG(photo, quality q)                   (the phone's compression)

    with ``lo, hi, sigma * H / 224, s_n, q`` from :data:`PRINT_PHOTO` for the severity. Composed from the same
    pieces as :func:`gaussian_blur`, :func:`gaussian_noise` and :func:`jpeg`, but milder and all at once.
    Changes of viewpoint (place, scale, rotation of a patch) are :func:`course_lib.attacks.place_patch`'s job.

    Args:
        x: images ``(B, C, H, W)`` in ``[0, 1]`` with 1 or 3 channels.
        severity: an int in 0..5.
        seed: the sensor noise: ``None`` (fresh, from torch's global RNG), an int or a ``torch.Generator``.
        skip: steps to leave out, any of ``"print"``, ``"blur"``, ``"noise"``, ``"jpeg"`` (default none): which
            part of the chain does the damage.

    Returns:
        ``(B, C, H, W)`` in ``[0, 1]``, a new tensor on ``x``'s device (``x`` is not changed).
    """
    check_images(x)
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 0 <= severity <= 5:
        raise ValueError(f"severity must be an int in 0..5 (0 = clean), got {severity!r}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"print_and_photograph needs 1 or 3 channels, got {x.shape[1]}")
    skip = {skip} if isinstance(skip, str) else set(skip)
    if not skip <= {"print", "blur", "noise", "jpeg"}:
        raise ValueError(f"skip must name steps among 'print', 'blur', 'noise', 'jpeg', got {sorted(skip)}")
    if severity == 0:
        return x.detach().clone()
    k = int(severity) - 1
    out = x.detach()
    if "print" not in skip:
        lo, hi = PRINT_PHOTO["lo"][k], PRINT_PHOTO["hi"][k]
        out = lo + (hi - lo) * out
    if "blur" not in skip:
        out = _blur.gaussian_blur(out, PRINT_PHOTO["blur"][k] * x.shape[-2] / 224, truncate=3.0, border="reflect")
    if "noise" not in skip:
        out = out + PRINT_PHOTO["noise"][k] * normal(x.shape, generator(seed), x.device, x.dtype)
    out = out.clamp(0, 1)
    return out.clone() if "jpeg" in skip else _jpeg_roundtrip(out, PRINT_PHOTO["jpeg"][k])
