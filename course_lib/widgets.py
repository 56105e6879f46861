"""Interactive explorers for the lessons (ipywidgets). Their logic is in plain functions that tests call
without a browser; the widgets only wire sliders and menus to those functions and draw the result."""
from __future__ import annotations

import torch

from ._validate import check_images, check_model
from .corruptions import CORRUPTIONS, corrupt

__all__ = ["corruption_view", "corruption_explorer", "EXPLANATION_METHODS", "explanation_view", "explanation_heat",
           "explanation_defaults", "explanation_explorer"]


def _true_text(true, class_names) -> str:
    """`` (true: <name>)`` for a caption, or nothing without a label."""
    from .plot import _name

    return "" if true is None else f" (true: {_name(true, class_names)})"


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
    """A widget: pick an image of ``x``, a corruption and a severity; see the image and the model's top 5, under a
    one-line caption that states the selection and the model's answer (readable without the figure).

    ``x`` is a batch ``(B, C, H, W)``; ``labels`` (optional, ``(B,)``) colours the true class green.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from .plot import _name, to_numpy_image, topk_bars

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
            print(f"image {pick.value}{_true_text(true, class_names)}, {kind.value} at severity {sev.value}: "
                  f"the model says {_name(idx[0], class_names)} ({float(p[0]):.1%})")
            fig, (a, b) = plt.subplots(1, 2, figsize=(7, 2.8), gridspec_kw={"width_ratios": [1, 1.4]})
            img = to_numpy_image(xc)
            a.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            a.axis("off")
            a.set_title(f"{kind.value}, severity {sev.value}", fontsize=9)
            full = torch.zeros(int(idx.max()) + 1).index_put_((idx,), p)  # back to per-class probabilities
            topk_bars(full, class_names, k=len(p), ax=b, true=true)
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
    image, the explanation as an overlay and the model's top 5, under a one-line caption of the selection.

    ``x`` is a batch ``(B, C, H, W)``; ``labels`` (optional, ``(B,)``) colours the true class green in the bars;
    ``method_kwargs`` (optional) ``{method: {argument: value}}`` replaces :func:`explanation_defaults`.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from .plot import _name, show_heatmap, to_numpy_image, topk_bars

    check_images(x)
    check_model(model, x)
    with torch.no_grad():
        n_classes = model(x[:1]).shape[1]
    names = [_name(i, class_names) for i in range(n_classes)]
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
        true = None if labels is None else int(labels[pick.value])
        with out:
            out.clear_output(wait=True)
            top = int(probs.argmax())
            print(f"image {pick.value}{_true_text(true, names)}: {method.value} for '{names[t]}'; "
                  f"the model says {names[top]} ({float(probs[top]):.1%})")
            fig, (a, b, c) = plt.subplots(1, 3, figsize=(10, 2.8), gridspec_kw={"width_ratios": [1, 1, 1.4]})
            img = to_numpy_image(xi)
            a.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            a.axis("off")
            a.set_title("image" if true is None else f"image (true: {names[true]})", fontsize=9)
            show_heatmap(xi, heat, ax=b, title=f"{method.value} for '{names[t]}'")
            topk_bars(probs, names, k=5, ax=c, true=true)
            fig.tight_layout()
            plt.show()

    for w in (pick, method, target):
        w.observe(draw, names="value")
    draw()
    return W.VBox([W.HBox([pick, method, target]), out])


# --------------------------------------------------------------------------- adversarial examples (lesson 07)
#: The attacks :func:`attack_view` and :func:`attack_explorer` know, by name (functions of ``course_lib.attacks``).
ATTACK_NAMES = ("fgsm", "pgd")


def attack_view(model, x: torch.Tensor, eps: float, attack: str = "fgsm", y=None, steps: int = 10,
                alpha: float | None = None, seed: int = 0, k: int = 5):
    """One image ``x`` ``(1, C, H, W)`` attacked inside the L-infinity ball of radius ``eps`` (pixel units, [0, 1]).

    ``attack="fgsm"``: ``x' = clip_[0,1](x + eps * sign(grad_x L(f(x), y)))`` (:func:`course_lib.attacks.fgsm`);
    ``attack="pgd"``: ``steps`` projected steps of size ``alpha`` (default ``2.5 * eps / steps``) from a random
    start drawn with ``seed`` (:func:`course_lib.attacks.pgd`). ``y`` (LongTensor ``(1,)`` or an int) is the
    label the attack pushes away from; ``None`` (default) means the model's own prediction on ``x``, so no
    label is needed. ``eps = 0`` returns ``x`` unchanged.

    Returns ``(x_adv (1, C, H, W), top-k probabilities (k,), top-k classes (k,))``, the last two of the model
    on ``x_adv``, on the CPU.
    """
    from .attacks import fgsm, pgd
    from .attacks._common import check_eps

    if not isinstance(attack, str) or attack not in ATTACK_NAMES:
        raise ValueError(f"unknown attack {attack!r}; choose one of {list(ATTACK_NAMES)}")
    check_images(x)
    if x.shape[0] != 1:
        raise ValueError(f"attack_view takes one image (1, C, H, W), got a batch of {x.shape[0]}")
    check_model(model, x)
    eps = check_eps(eps)
    with torch.no_grad():
        logits = model(x)
    if y is None:
        y = logits.argmax(1)
    elif not isinstance(y, torch.Tensor):
        y = torch.tensor([int(y)], device=x.device)
    if eps == 0:  # the ball is the point x
        x_adv = x.detach().clone()
    elif attack == "fgsm":
        x_adv = fgsm(model, x, y, eps)
    else:
        x_adv = pgd(model, x, y, eps, 2.5 * eps / max(steps, 1) if alpha is None else alpha, steps, seed=seed)
    with torch.no_grad():
        probs = torch.softmax(model(x_adv), dim=1)[0]
    p, idx = probs.topk(min(k, probs.numel()))
    return x_adv, p.cpu(), idx.cpu()


def amplify_perturbation(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """A perturbation made visible: ``0.5 + delta / (2 eps)``, clipped to ``[0, 1]``.

    ``[-eps, eps]`` is stretched onto ``[0, 1]``: grey = pixel unchanged, white = ``+eps``, black = ``-eps``
    (per channel for colour images). ``eps = 0`` gives a uniform grey image.
    """
    if eps <= 0:
        return torch.full_like(delta, 0.5)
    return (0.5 + delta / (2 * eps)).clamp(0, 1)


def show_attack(model, x: torch.Tensor, x_adv: torch.Tensor, eps: float, class_names=None, label=None,
                axes=None, title: str | None = None, k: int = 5):
    """Four panels for one attacked image: the original with the model's answer, the perturbation
    ``x_adv - x`` amplified by :func:`amplify_perturbation`, the adversarial image with the model's answer, and
    the model's top-``k`` on it (:func:`course_lib.plot.show_topk`). ``label`` (optional) colours the answers
    green (right) or red (wrong). Draws on ``axes`` (four) when given; returns the figure."""
    import matplotlib.pyplot as plt

    from .plot import _name, show_topk, to_numpy_image

    own = axes is None
    if own:
        _, axes = plt.subplots(1, 4, figsize=(11, 2.6), gridspec_kw={"width_ratios": [1, 1, 1, 1.5]})
    fig = axes[0].figure
    with torch.no_grad():
        probs = torch.softmax(model(torch.cat([x, x_adv])), dim=1)
    conf, pred = probs.max(1)
    k = min(k, probs.shape[1])

    def name(i):
        return _name(i, class_names)

    def color(i):
        return "black" if label is None else ("tab:green" if int(i) == int(label) else "tab:red")

    delta = x_adv - x
    linf = float(delta.abs().max())
    panels = [(x, f"original: {name(pred[0])} ({conf[0]:.0%})", color(pred[0])),
              (amplify_perturbation(delta, eps), f"perturbation ×{1 / (2 * eps):.3g}, max |δ| = {linf:.3g}"
               if eps > 0 else "perturbation (none)", "black"),
              (x_adv, f"adversarial: {name(pred[1])} ({conf[1]:.0%})", color(pred[1]))]
    for ax, (img, text, col) in zip(list(axes)[:3], panels, strict=True):
        arr = to_numpy_image(img)
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(text, fontsize=8, color=col)
        ax.axis("off")
    budget = f"{eps:.3g}" + (f" = {eps * 255:.3g}/255" if x.shape[1] == 3 and eps > 0 else "")  # photos: grey levels
    show_topk(model, x_adv, class_names, k=k, ax=axes[3], title=f"top-{k} on the adversarial image, ε = {budget}")
    if title:
        fig.suptitle(title)
    if own:
        fig.tight_layout()
    return fig


def attack_grid(model, x: torch.Tensor, y: torch.Tensor, advs: dict, eps: float, class_names=None,
                title: str | None = None, size: float = 1.25, photos: bool = False):
    """A grid of several images under several attacks: the originals, then for each attack (``advs``: name ->
    ``x_adv`` of ``x``'s shape) its perturbation amplified by :func:`amplify_perturbation`,
    ``0.5 + (x_adv - x) / (2 eps)``, labelled ``"<name> δ"``, and its adversarial images. Every image (not the
    perturbations) is titled with the model's prediction, green when it equals ``y``, red otherwise.

    Kinds in rows and images in columns; ``photos=True`` transposes (images in rows), for a few large photos.
    ``size`` is the side of one panel in inches. Returns the figure.
    """
    import matplotlib.pyplot as plt

    from .plot import show_images

    check_images(x)
    check_model(model, x)
    if not isinstance(advs, dict) or not advs:
        raise ValueError("advs must be a non-empty dict: attack name -> adversarial images")
    for name, x_adv in advs.items():
        if not isinstance(x_adv, torch.Tensor) or x_adv.shape != x.shape:
            raise ValueError(f"advs[{name!r}] must be a tensor of x's shape {tuple(x.shape)}, got "
                             f"{tuple(x_adv.shape) if isinstance(x_adv, torch.Tensor) else type(x_adv).__name__}")
    kinds = [("original", x)]
    for name, x_adv in advs.items():
        kinds += [(f"{name} δ", amplify_perturbation(x_adv - x, eps)), (name, x_adv)]
    shape = (len(x), len(kinds)) if photos else (len(kinds), len(x))
    fig, axes = plt.subplots(*shape, figsize=(size * shape[1] + 0.6, 1.15 * size * shape[0]), squeeze=False)
    for j, (name, imgs) in enumerate(kinds):
        panels = axes[:, j] if photos else axes[j]
        is_delta = name.endswith("δ")
        with torch.no_grad():
            preds = None if is_delta else model(imgs).argmax(1)
        show_images(imgs, labels=None if is_delta else y, class_names=class_names, axes=panels, preds=preds)
        anchor = panels[-1] if photos else panels[0]
        if photos:
            anchor.text(0.5, -0.06, name, rotation=0, ha="center", va="top", transform=anchor.transAxes)
        else:
            anchor.text(-0.12, 0.5, name, rotation=90, ha="right", va="center", transform=anchor.transAxes)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def attack_explorer(model, x: torch.Tensor, class_names=None, labels=None, eps_max: float | None = None,
                    steps: int = 10, seed: int = 0):
    """A widget: pick an image of ``x``, an attack (FGSM or PGD) and a budget ``eps``; see the original, the
    amplified perturbation, the adversarial image and the model's top 5 (:func:`show_attack`), under a one-line
    caption: the image, the attack, ``eps`` and the model's answer on the adversarial image.

    ``x`` is a batch ``(B, C, H, W)``; ``labels`` (optional, ``(B,)``) are the labels the attack pushes away from
    (default: the model's own predictions) and colour the answers. ``eps_max`` is the slider's end (default 0.3
    for one-channel images, 16/255 for colour photos); PGD takes ``steps`` steps of ``2.5 * eps / steps``.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from .plot import _name

    check_images(x)
    check_model(model, x)
    if eps_max is None:
        eps_max = 0.3 if x.shape[1] == 1 else 16 / 255
    pick = W.IntSlider(0, 0, len(x) - 1, description="image")
    kind = W.Dropdown(options=[(a.upper(), a) for a in ATTACK_NAMES], value="fgsm", description="attack")
    eps = W.FloatSlider(value=round(eps_max / 3, 4), min=0.0, max=eps_max, step=eps_max / 30, readout_format=".3f",
                        description="eps", continuous_update=False)
    out = W.Output()

    def draw(*_):
        i = pick.value
        xi = x[i:i + 1]
        yi = None if labels is None else labels[i:i + 1].to(x.device)
        x_adv, p, idx = attack_view(model, xi, eps.value, kind.value, y=yi, steps=steps, seed=seed)
        true = None if labels is None else int(labels[i])
        with out:
            out.clear_output(wait=True)
            print(f"image {i}{_true_text(true, class_names)}, {kind.value.upper()} at eps = {eps.value:.3f}: "
                  f"the model says {_name(idx[0], class_names)} ({float(p[0]):.1%}) on the adversarial image")
            show_attack(model, xi, x_adv, eps.value, class_names=class_names,
                        label=None if labels is None else int(labels[i]))
            plt.show()

    for w in (pick, kind, eps):
        w.observe(draw, names="value")
    draw()
    return W.VBox([W.HBox([pick, kind, eps]), out])


__all__ += ["ATTACK_NAMES", "attack_view", "amplify_perturbation", "show_attack", "attack_grid",
            "attack_explorer"]
