"""Interactive explorers for the lessons (ipywidgets). Their logic is in plain functions that tests call
without a browser; the widgets only wire sliders and menus to those functions and draw the result."""
from __future__ import annotations

import torch

from ._validate import check_images, check_model
from .corruptions import CORRUPTIONS, corrupt

__all__ = ["corruption_view", "corruption_explorer"]


@torch.no_grad()
def corruption_view(model, x: torch.Tensor, name: str, severity: int, seed: int = 0, k: int = 5):
    """One image under one corruption: ``(x_corrupted (1,C,H,W), top-k probabilities (k,), top-k classes (k,))``."""
    check_images(x)
    if x.shape[0] != 1:
        raise ValueError(f"corruption_view takes one image (1, C, H, W), got a batch of {x.shape[0]}")
    check_model(model, x)
    xc = corrupt(x, name, severity, seed=seed)
    probs = torch.softmax(model(xc), dim=1)[0]
    p, idx = probs.topk(min(k, probs.numel()))
    return xc, p.cpu(), idx.cpu()


def corruption_explorer(model, x: torch.Tensor, class_names=None, labels=None, seed: int = 0):
    """A widget: pick an image of ``x``, a corruption and a severity; see the image and the model's top 5.

    ``x`` is a batch ``(B, C, H, W)``; ``labels`` (optional, ``(B,)``) colours the true class green.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from .plot import to_numpy_image

    check_images(x)
    check_model(model, x)
    pick = W.IntSlider(0, 0, len(x) - 1, description="image")
    kind = W.Dropdown(options=list(CORRUPTIONS), value="gaussian_noise", description="corruption")
    sev = W.IntSlider(0, 0, 5, description="severity")
    out = W.Output()

    def draw(*_):
        xc, p, idx = corruption_view(model, x[pick.value:pick.value + 1], kind.value, sev.value, seed=seed)
        true = None if labels is None else int(labels[pick.value])
        with out:
            out.clear_output(wait=True)
            fig, (a, b) = plt.subplots(1, 2, figsize=(7, 2.8), gridspec_kw={"width_ratios": [1, 1.4]})
            img = to_numpy_image(xc)
            a.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            a.axis("off")
            a.set_title(f"{kind.value}, severity {sev.value}", fontsize=9)
            names = [class_names[int(i)] if class_names else str(int(i)) for i in idx]
            colors = ["tab:green" if int(i) == true else "tab:blue" for i in idx]
            b.barh(range(len(p))[::-1], p.numpy(), color=colors)
            b.set_yticks(range(len(p))[::-1], names, fontsize=8)
            b.set_xlim(0, 1)
            b.set_xlabel("probability")
            fig.tight_layout()
            plt.show()

    for w in (pick, kind, sev):
        w.observe(draw, names="value")
    draw()
    return W.VBox([W.HBox([pick, kind, sev]), out])
