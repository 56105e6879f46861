"""Interactive explorers for the lessons (ipywidgets). Their logic is in plain functions that tests call
without a browser; the widgets only wire sliders and menus to those functions and draw the result."""
from __future__ import annotations

import torch

from ._validate import check_images, check_model
from .corruptions import CORRUPTIONS, corrupt

__all__ = ["corruption_view", "corruption_explorer", "EXPLANATION_METHODS", "explanation_view", "explanation_heat",
           "explanation_defaults", "explanation_explorer"]


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


# --------------------------------------------------------------------------- explanations (lessons 03-04)
#: The methods :func:`explanation_view` knows, by name (each a function of ``course_lib.explain``).
EXPLANATION_METHODS = ("saliency", "smoothgrad", "integrated_gradients", "grad_cam", "cam", "occlusion")


def explanation_view(model, x: torch.Tensor, method: str, target=None, **kw) -> torch.Tensor:
    """The explanation of one image ``x`` ``(1, C, H, W)`` by ``method``, exactly as ``course_lib.explain``
    returns it: ``(1, C, H, W)`` for ``"saliency"``, ``"smoothgrad"``, ``"integrated_gradients"``; ``(1, H, W)``
    for ``"grad_cam"``, ``"cam"``, ``"occlusion"``.

    ``target`` is the class explained (``None`` = the predicted class); ``kw`` go to the method (e.g.
    ``sigma``, ``n_samples``, ``seed``, ``steps``, ``baseline``, ``layer``, ``window``, ``stride``).
    """
    from . import explain

    if not isinstance(method, str) or method not in EXPLANATION_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(EXPLANATION_METHODS)}")
    check_images(x)
    if x.shape[0] != 1:
        raise ValueError(f"explanation_view takes one image (1, C, H, W), got a batch of {x.shape[0]}")
    check_model(model, x)
    return getattr(explain, method)(model, x, target=target, **kw)


def explanation_heat(attribution: torch.Tensor) -> torch.Tensor:
    """One ``(H, W)`` map to draw from :func:`explanation_view`'s result: a ``(1, H, W)`` map as it is, a
    ``(1, C, H, W)`` attribution as ``|a|`` summed over the channels (how much each pixel matters, either sign)."""
    a = attribution.detach()
    if a.dim() == 4:
        a = a.abs().sum(1)
    if a.dim() != 3 or a.shape[0] != 1:
        raise ValueError(f"expected one map (1, H, W) or (1, C, H, W), got shape {tuple(attribution.shape)}")
    return a[0]


def explanation_defaults(method: str, x: torch.Tensor) -> dict:
    """Settings that keep an interactive redraw to about a second on a laptop CPU: fewer SmoothGrad samples and
    IG steps than the papers' 50, and occlusion windows of about 1/7 of the image with half-window strides."""
    size = min(x.shape[-2:])
    if method == "smoothgrad":
        return {"n_samples": 16, "seed": 0}
    if method == "integrated_gradients":
        return {"steps": 24}
    if method == "occlusion":
        window = max(2, size // 7)
        return {"window": window, "stride": max(1, window // 2), "progress": False}
    return {}


def explanation_explorer(model, x: torch.Tensor, class_names=None, labels=None, method_kwargs=None):
    """A widget: pick an image of ``x``, a method and the class to explain (default: the predicted one); see the
    image, the explanation as an overlay and the model's top 5.

    ``x`` is a batch ``(B, C, H, W)``; ``labels`` (optional, ``(B,)``) colours the true class green in the bars;
    ``method_kwargs`` (optional) ``{method: {argument: value}}`` replaces :func:`explanation_defaults`.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from .plot import show_heatmap, to_numpy_image

    check_images(x)
    check_model(model, x)
    with torch.no_grad():
        n_classes = model(x[:1]).shape[1]
    names = [class_names[i] if class_names is not None and i < len(class_names) else str(i) for i in range(n_classes)]
    pick = W.IntSlider(0, 0, len(x) - 1, description="image")
    method = W.Dropdown(options=list(EXPLANATION_METHODS), value="grad_cam", description="method")
    target = W.Dropdown(options=[("predicted class", -1)] + [(n, i) for i, n in enumerate(names)], value=-1,
                        description="explain")
    out = W.Output()

    def draw(*_):
        xi = x[pick.value:pick.value + 1]
        kw = (method_kwargs or {}).get(method.value, explanation_defaults(method.value, xi))
        with torch.no_grad():
            probs = torch.softmax(model(xi), dim=1)[0]
        t = int(probs.argmax()) if target.value == -1 else target.value
        heat = explanation_heat(explanation_view(model, xi, method.value, target=t, **kw))
        p, idx = probs.topk(min(5, n_classes))
        true = None if labels is None else int(labels[pick.value])
        with out:
            out.clear_output(wait=True)
            fig, (a, b, c) = plt.subplots(1, 3, figsize=(10, 2.8), gridspec_kw={"width_ratios": [1, 1, 1.4]})
            img = to_numpy_image(xi)
            a.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            a.axis("off")
            a.set_title("image" if true is None else f"image (true: {names[true]})", fontsize=9)
            show_heatmap(xi, heat, ax=b, title=f"{method.value} for '{names[t]}'")
            colors = ["tab:green" if int(i) == true else "tab:blue" for i in idx]
            c.barh(range(len(p))[::-1], p.cpu().numpy(), color=colors)
            c.set_yticks(range(len(p))[::-1], [names[int(i)] for i in idx], fontsize=8)
            c.set_xlim(0, 1)
            c.set_xlabel("probability")
            fig.tight_layout()
            plt.show()

    for w in (pick, method, target):
        w.observe(draw, names="value")
    draw()
    return W.VBox([W.HBox([pick, method, target]), out])
