"""Detectors of adversarial examples, calibrated at a fixed false-positive rate, and the attack that knows them.

Every detector has the same four methods:

* ``fit(x_clean, x_adv=None) -> self``: learn what clean images look like (and, for a trained detector, what
  adversarial ones look like);
* ``score(x) -> (B,)``: higher = more suspicious; differentiable where the method allows it (the adaptive attack
  needs that): the graph is kept when ``x`` requires grad;
* ``calibrate(x_clean, fpr=0.05) -> self``: sets ``threshold`` so that at most a fraction ``fpr`` of these clean
  images scores above it. Use clean images that the detector was **not** fitted on (scores on the fitting images
  are optimistic; the detector refuses them) and never adversarial ones;
* ``detect(x) -> bool (B,)``: ``score(x) > threshold``.

The four detectors: :class:`SoftmaxDetector` (Hendrycks & Gimpel, 2017: low confidence), :class:`PCADetector`
(Hendrycks & Gimpel, 2017: energy on the low-variance principal components), :class:`DetectorNetwork` (Metzen et
al., 2017: a classifier on a hidden layer) and :class:`FeatureSqueezingDetector` (Xu, Evans & Qi, 2018: the
prediction changes when the input is squeezed). :func:`roc` gives the ROC curve of a detector on clean vs
adversarial images and :func:`adaptive_attack` the attack that fools the classifier *and* stays under the
threshold (Carlini & Wagner, 2017; Tramer et al., 2020).
"""
from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from .._batches import check_batch_size
from .._rng import generator
from .._validate import check_count, check_images, check_in, check_labels, check_model
from .transforms import BPDA, JPEG, BitDepth, MedianFilter

__all__ = ["Detector", "SoftmaxDetector", "PCADetector", "DetectorNetwork", "FeatureSqueezingDetector", "roc",
           "adaptive_attack"]


def _fingerprints(x: torch.Tensor) -> set[str]:
    """One hash per image (its float32 bytes): how a detector recognises the images it was fitted on."""
    flat = x.detach().to("cpu", torch.float32).reshape(x.shape[0], -1).numpy()
    return {hashlib.blake2b(row.tobytes(), digest_size=12).hexdigest() for row in flat}


def _check_fpr(fpr) -> float:
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 0.0 < fpr < 1.0:
        raise ValueError(f"fpr must be a number in (0, 1), the fraction of clean images allowed above the "
                         f"threshold, got {fpr!r}")
    return float(fpr)


def calibrated_threshold(scores: torch.Tensor, fpr: float) -> float:
    """The threshold that at most ``floor(fpr * n)`` of the ``n`` clean ``scores`` exceed::

        threshold = s_(k+1),   the (k+1)-th largest score,  k = floor(fpr * n)

    so ``score > threshold`` flags ``k`` of them (fewer with ties). For a new clean image exchangeable with the
    calibration images, P(flagged) <= (k + 1) / (n + 1) (the conformal bound): close to ``fpr`` for large ``n``."""
    s = scores.detach().flatten().double().sort(descending=True).values
    k = int(fpr * s.numel())
    return float(s[min(k, s.numel() - 1)])


class Detector:
    """The shared interface: ``fit``, ``score``, ``calibrate``, ``detect`` (see the module docstring).

    Subclasses implement ``_score(x)`` (differentiable where the method allows) and, if they learn anything,
    ``_fit(x_clean, x_adv)``. ``attack_score(x)`` is the score as an attacker differentiates it: the same values,
    with a differentiable surrogate where the detector has a step without a useful gradient (BPDA)."""

    #: set by :meth:`calibrate`; ``detect`` flags ``score > threshold``
    threshold: float | None = None
    channels: int | tuple[int, ...] | None = None

    def __init__(self):
        self.threshold = None
        self.fitted = False
        self._seen: set[str] = set()

    # -- the interface ----------------------------------------------------------------------------------------
    def fit(self, x_clean: torch.Tensor, x_adv: torch.Tensor | None = None) -> Detector:
        """Learn from clean images (and adversarial ones, where the method trains on them). Returns ``self``."""
        check_images(x_clean, "x_clean", channels=self.channels)
        if x_adv is not None:
            check_images(x_adv, "x_adv", channels=self.channels)
        self._fit(x_clean, x_adv)
        self._seen = _fingerprints(x_clean) | (_fingerprints(x_adv) if x_adv is not None else set())
        self.fitted = True
        self.threshold = None          # a threshold calibrated before fitting belongs to another detector
        return self

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,)`` scores, higher = more suspicious; differentiable (graph kept) when ``x`` requires grad."""
        check_images(x, "x", channels=self.channels)
        self._check_fitted()
        with torch.set_grad_enabled(x.requires_grad and torch.is_grad_enabled()):
            s = self._score(x)
        return s if x.requires_grad else s.detach()

    def attack_score(self, x: torch.Tensor) -> torch.Tensor:
        """The score with the graph an attacker follows (values equal to :meth:`score`'s); no input checks."""
        return self._score(x)

    def calibrate(self, x_clean: torch.Tensor, fpr: float = 0.05) -> Detector:
        """Set ``threshold`` so that at most a fraction ``fpr`` of ``x_clean`` is flagged
        (:func:`calibrated_threshold`). ``x_clean``: clean images the detector was not fitted on."""
        fpr = _check_fpr(fpr)
        check_images(x_clean, "x_clean", channels=self.channels)
        self._check_fitted()
        overlap = len(_fingerprints(x_clean) & self._seen)
        if overlap:
            raise ValueError(f"{overlap} of the {x_clean.shape[0]} calibration images were used to fit this "
                             "detector (as clean or as adversarial examples): their scores are optimistic, so the "
                             "false-positive rate on new clean images would not be fpr. Calibrate on clean images "
                             "held out from fit().")
        if x_clean.shape[0] < 20:
            raise ValueError(f"calibrating at a false-positive rate needs clean images in the tens at least "
                             f"(got {x_clean.shape[0]}): the threshold would be one of a handful of scores")
        self.threshold = calibrated_threshold(self.score(x_clean), fpr)
        self.fpr = fpr
        return self

    def detect(self, x: torch.Tensor) -> torch.Tensor:
        """``score(x) > threshold`` as a bool tensor ``(B,)``."""
        if self.threshold is None:
            raise RuntimeError(f"{type(self).__name__} has no threshold yet: call .calibrate(x_clean, fpr) on "
                               "held-out clean images first")
        with torch.no_grad():
            return self.score(x.detach()) > self.threshold

    # -- for subclasses -----------------------------------------------------------------------------------------
    needs_fit = False

    def _fit(self, x_clean, x_adv) -> None:
        pass

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if self.needs_fit and not self.fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call .fit(x_clean) first")

    def __repr__(self) -> str:
        t = "uncalibrated" if self.threshold is None else f"threshold={self.threshold:.4g}"
        return f"{type(self).__name__}({self._describe()}{', ' if self._describe() else ''}{t})"

    def _describe(self) -> str:
        return ""


class SoftmaxDetector(Detector):
    """The naive baseline (Hendrycks & Gimpel, ICLR 2017): a low top-class probability is suspicious::

        score(x) = 1 - max_k softmax(f(x))_k

    Nothing to fit (``fit`` only records the images, so that calibration refuses them). An attack with a
    confidence margin (C&W's kappa, or more PGD steps) makes adversarial images *more* confident than clean ones."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = check_model(model)

    def _score(self, x):
        check_model(self.model, x)
        return 1.0 - F.softmax(self.model(x), dim=1).amax(dim=1)


class PCADetector(Detector):
    """Energy outside the main principal components of clean images (Hendrycks & Gimpel, ICLR 2017 workshop:
    adversarial images put unusual weight on the low-variance components)::

        c = V^T (x - mu)                      coefficients of the flattened image on the principal directions
        score(x) = (1 / (D - k)) * sum_{j > k} c_j^2 / (lambda_j + reg)       all but the k leading components

    ``mu``, ``V``, ``lambda`` (mean, eigenvectors, eigenvalues of the covariance, largest first) come from the
    clean images given to :meth:`fit`; ``D`` is the number of pixel values and ``k = n_components`` the
    components kept as "what clean images look like". ``reg`` (default 1e-3 times the mean eigenvalue) keeps the
    directions of zero variance finite, and they weigh the most: on MNIST they are the border pixels that are 0
    in every training digit (Carlini & Wagner, 2017), so *any* ink there, adversarial or not, is flagged. Linear
    in ``x`` before the square, so differentiable.

    Args:
        n_components: ``k``, the leading components left out of the score (default 50).
        reg: added to each eigenvalue (``None``: 1e-3 x the mean eigenvalue)."""

    needs_fit = True

    def __init__(self, n_components: int = 50, reg: float | None = None):
        super().__init__()
        self.n_components = check_count(n_components, "n_components", minimum=0)
        self.reg = reg

    def _fit(self, x_clean, x_adv):
        flat = x_clean.detach().reshape(x_clean.shape[0], -1).double()
        d = flat.shape[1]
        if self.n_components >= d:
            raise ValueError(f"n_components must be below the number of pixel values ({d}), got {self.n_components}")
        self.mean = flat.mean(0)
        cov = (flat - self.mean).T @ (flat - self.mean) / max(flat.shape[0] - 1, 1)
        evals, evecs = torch.linalg.eigh(cov)                      # ascending
        self.eigenvalues = evals.flip(0).clamp_min(0)              # descending: component 0 has the most variance
        self.components = evecs.flip(1)                            # (D, D), one component per column
        reg = 1e-3 * float(self.eigenvalues.mean()) if self.reg is None else float(self.reg)
        tail = self.components[:, self.n_components:]
        scale = (self.eigenvalues[self.n_components:] + reg).rsqrt()
        # sum_j c_j^2 / (lambda_j + reg) over the tail = (x - mu)^T W (x - mu): W does not depend on how eigh
        # picked the basis inside a repeated eigenvalue (the many zero-variance pixels), so neither does the score
        self._proj = (tail * scale).to(x_clean.dtype)              # whitened projection on the tail
        self._mean = self.mean.to(x_clean.dtype)
        self._tail = d - self.n_components
        self.channels = x_clean.shape[1]
        self._shape = tuple(x_clean.shape[1:])

    def pixel_weights(self) -> torch.Tensor:
        """How much each pixel weighs in the score: the diagonal of ``W = sum_{j > k} v_j v_j^T / (lambda_j +
        reg)``, shaped like an image ``(C, H, W)`` (the score of ``mu + delta`` for a one-pixel ``delta`` of size 1
        is that pixel's weight divided by ``D - k``)."""
        self._check_fitted()
        return (self._proj.double() ** 2).sum(1).view(self._shape)

    def _score(self, x):
        if tuple(x.shape[1:]) != self._shape:
            raise ValueError(f"the detector was fitted on images of shape {self._shape}, got {tuple(x.shape[1:])}")
        flat = x.reshape(x.shape[0], -1)
        z = (flat - self._mean.to(x.device, x.dtype)) @ self._proj.to(x.device, x.dtype)
        return z.pow(2).sum(dim=1) / self._tail

    def _describe(self):
        return f"n_components={self.n_components}"


class _FeatureHook:
    """Records the output of one named layer of a model during its forward pass."""

    def __init__(self, model: nn.Module, layer: str):
        modules = dict(model.named_modules())
        if layer not in modules or layer == "":
            names = [n for n in modules if n]
            raise ValueError(f"model has no layer named {layer!r}; its layers are: {', '.join(names)}")
        self.module = modules[layer]

    def __call__(self, model, x):
        out = {}
        handle = self.module.register_forward_hook(lambda m, i, o: out.__setitem__("a", o))
        try:
            logits = model(x)
        finally:
            handle.remove()
        return out["a"], logits


class DetectorNetwork(Detector):
    """A small binary classifier on the activations of one hidden layer (Metzen, Genewein, Fischer & Bischoff,
    "On Detecting Adversarial Perturbations", ICLR 2017)::

        a = f_layer(x)                         the classifier's activations at ``layer`` (frozen)
        score(x) = D(a)                        the detector's logit for "adversarial"
        train D on {(a(x), 0) : x clean} + {(a(x'), 1) : x' adversarial}, binary cross-entropy

    ``D`` is two 3x3 convolutions (``width`` = 16 channels), global average pooling and a linear layer for feature
    maps, or a 2-layer MLP for vectors. :meth:`fit` trains it on ``x_clean`` and ``x_adv`` (equal numbers are best);
    when ``x_adv`` is ``None`` it makes them with PGD (L-inf ``eps``, 20 steps of ``eps / 8``, random start, away from
    the model's own predictions). Adam, ``epochs`` passes, batches of 128, seeded. The classifier is not changed.

    Args:
        model: the classifier (eval mode).
        layer: the name of the hidden layer, as in ``dict(model.named_modules())`` (e.g. ``"features.relu3"``).
        eps: the PGD budget used when ``fit`` makes the adversarial images itself.
        epochs, lr, seed, progress: training of ``D``."""

    needs_fit = True

    def __init__(self, model: nn.Module, layer: str, eps: float = 0.1, epochs: int = 10, lr: float = 1e-3,
                 width: int = 16, seed=0, progress: bool = True):
        super().__init__()
        self.model = check_model(model)
        self.layer = layer
        self._hook = _FeatureHook(model, layer)
        self.eps = float(eps)
        self.epochs = check_count(epochs, "epochs", minimum=1)
        self.lr = float(lr)
        self.width = check_count(width, "width", minimum=1)
        self.seed = seed
        self.progress = progress
        self.net: nn.Module | None = None
        self.history: dict = {}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The activations of ``layer`` for ``x`` (graph kept when ``x`` requires grad)."""
        return self._hook(self.model, x)[0]

    def _make_net(self, a: torch.Tensor) -> nn.Module:
        w = self.width
        if a.dim() == 4:
            net = nn.Sequential(nn.Conv2d(a.shape[1], w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, w, 3, padding=1),
                                nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w, 1))
        else:
            net = nn.Sequential(nn.Flatten(), nn.Linear(a[0].numel(), 4 * w), nn.ReLU(), nn.Linear(4 * w, 1))
        return net.to(a.device, a.dtype)

    def _fit(self, x_clean, x_adv):
        from tqdm.auto import tqdm

        from ..attacks import pgd
        check_model(self.model, x_clean)
        gen = generator(self.seed)
        if x_adv is None:
            with torch.no_grad():
                pred = torch.cat([self.model(c).argmax(1) for c in x_clean.split(512)])
            x_adv = pgd(self.model, x_clean, pred, self.eps, self.eps / 8, 20, seed=gen)
        with torch.no_grad():
            a = torch.cat([self.features(c) for c in torch.cat([x_clean, x_adv]).split(512)])
        t = torch.cat([torch.zeros(x_clean.shape[0]), torch.ones(x_adv.shape[0])]).to(a.device, a.dtype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2 ** 31 - 1, (1,), generator=gen)))
            self.net = self._make_net(a)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        losses = []
        self.net.train()
        for _ in tqdm(range(self.epochs), desc="DetectorNetwork", disable=not self.progress, leave=False):
            order = torch.randperm(a.shape[0], generator=gen).to(a.device)
            total = 0.0
            for idx in order.split(128):
                loss = F.binary_cross_entropy_with_logits(self.net(a[idx]).squeeze(1), t[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * idx.numel()
            losses.append(total / a.shape[0])
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.history = {"loss": losses}

    def _score(self, x):
        check_model(self.model, x)
        return self.net(self.features(x)).squeeze(1)

    def _describe(self):
        return f"layer={self.layer!r}"


class FeatureSqueezingDetector(Detector):
    """Feature squeezing (Xu, Evans & Qi, NDSS 2018): an adversarial input's prediction moves when the input is
    squeezed, a clean one's hardly does::

        score(x) = max_{s in squeezers} || softmax(f(x)) - softmax(f(s(x))) ||_1

    Default squeezers: the paper's MNIST pair, bit depth 1 (:class:`BitDepth`) and 2x2 median smoothing
    (:class:`MedianFilter`); for colour images the paper uses bit depth 5, 2x2 median and non-local means (pass
    ``squeezers=``). Nothing to fit. :meth:`attack_score` passes bit-depth and JPEG squeezers through
    :class:`BPDA` (identity backward), the way an adaptive attacker differentiates them.

    Args:
        model: the classifier (eval mode).
        squeezers: modules or functions from images to images in [0, 1]."""

    def __init__(self, model: nn.Module, squeezers=None):
        super().__init__()
        self.model = check_model(model)
        self.squeezers = list(squeezers) if squeezers is not None else [BitDepth(1), MedianFilter(2)]
        if not self.squeezers or not all(callable(s) for s in self.squeezers):
            raise TypeError("squeezers must be a non-empty list of modules or functions of the images")

    def distances(self, x: torch.Tensor, bpda: bool = False) -> torch.Tensor:
        """``(B, S)``: the L1 distance between the softmax outputs before and after each squeezer."""
        p = F.softmax(self.model(x), dim=1)
        cols = []
        for s in self.squeezers:
            sq = BPDA(s) if bpda and isinstance(s, (BitDepth, JPEG)) else s
            cols.append((p - F.softmax(self.model(sq(x)), dim=1)).abs().sum(dim=1))
        return torch.stack(cols, dim=1)

    def _score(self, x):
        check_model(self.model, x)
        return self.distances(x).amax(dim=1)

    def attack_score(self, x):
        return self.distances(x, bpda=True).amax(dim=1)

    def _describe(self):
        return "squeezers=[" + ", ".join(repr(s) for s in self.squeezers) + "]"


def roc(detector: Detector, x_clean: torch.Tensor, x_adv: torch.Tensor):
    """The ROC curve of ``detector`` on clean (negatives) vs adversarial (positives) images.

    Returns ``(fpr, tpr, auc)``: 1-D float tensors from (0, 0) to (1, 1), one point per distinct score used as
    threshold (flag ``score >= t``), and the area under the curve by the trapezoid rule, which equals the
    probability that a random adversarial image scores above a random clean one (ties count one half)."""
    with torch.no_grad():
        s_clean = detector.score(x_clean.detach()).double().cpu()
        s_adv = detector.score(x_adv.detach()).double().cpu()
    return roc_from_scores(s_clean, s_adv)


def roc_from_scores(s_clean: torch.Tensor, s_adv: torch.Tensor):
    """:func:`roc` from precomputed scores (negatives ``s_clean``, positives ``s_adv``)."""
    s = torch.cat([s_clean, s_adv]).double().cpu()
    t = torch.cat([torch.zeros(len(s_clean)), torch.ones(len(s_adv))]).double()
    if len(s_clean) == 0 or len(s_adv) == 0:
        raise ValueError("roc needs at least one clean and one adversarial image")
    order = s.argsort(descending=True)
    s, t = s[order], t[order]
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]                  # the last position of each run of equal scores
    tp = t.cumsum(0)[last]
    fp = (1 - t).cumsum(0)[last]
    zero = torch.zeros(1, dtype=torch.float64)
    tpr = torch.cat([zero, tp / len(s_adv)])
    fpr = torch.cat([zero, fp / len(s_clean)])
    auc = float(torch.trapezoid(tpr, fpr))
    return fpr, tpr, auc


def adaptive_attack(model: nn.Module, detector: Detector, x: torch.Tensor, y: torch.Tensor, eps: float,
                    alpha: float | None = None, steps: int = 100, norm: str = "linf", kappa: float = 3.0,
                    random_start: bool = True, seed=None, batch_size: int | None = None,
                    progress: bool = False) -> torch.Tensor:
    """PGD that knows the detector (Carlini & Wagner, 2017; Tramer, Carlini, Brendel & Madry, 2020): it must make
    the classifier wrong **and** keep the detector's score at or under its threshold::

        m(x') = z_y(x') - max_{k != y} z_k(x')         the classifier's margin (fooled when m < 0)
        s(x')                                          the detector's score (undetected when s <= threshold)
        u_m = grad m / ||grad m||_2,   u_s = grad s / ||grad s||_2,   on = [m >= -kappa]
        u_s <- u_s - on * min(0, <u_s, u_m>) * u_m        the detector's term may not undo the classifier's
        g = on * u_m + u_s
        x^{t+1} = Proj_{B(x, eps) ∩ [0,1]}( x^t - alpha_t * sign(g) )      (l2: alpha_t * g / ||g||_2)

    Each objective's gradient is normalised before they are added, so no weight between two losses of different
    scales is needed (a softmax probability, a PCA energy, a detector's logit, an L1 distance between softmax
    outputs all work alike); the margin term is dropped once the classifier is wrong by ``kappa``, while the
    score keeps going down. While both are on, the part of ``u_s`` that points against ``u_m`` is removed (for
    the softmax detector "more confident" would otherwise mean "more confident in the true class"). The step
    ``alpha_t = alpha * (1 - t / steps)`` shrinks linearly, so the last steps settle. The detector's score is
    differentiated through :meth:`Detector.attack_score` (BPDA for bit-depth and JPEG squeezers). Each step's
    forward pass tells which images succeed (fooled and ``score <= threshold``, the exact values); an image keeps
    its last successful iterate, else its last one.

    Args:
        model, x, y: the classifier, images in [0, 1], true labels.
        detector: a fitted and calibrated detector (its ``threshold`` is the one to stay under).
        eps, norm: the budget (``"linf"`` or ``"l2"``); alpha: the first step (default ``eps / 4``).
        steps: iterations; kappa: how wrong (in logits) the classifier must be before the attack stops pushing it.
        random_start, seed: a uniform start in the ball (seeded).
        batch_size: images per pass (``None``: auto).
    Returns:
        ``x_adv``, detached, inside the ball and [0, 1].
    """
    from tqdm.auto import tqdm

    from ..attacks._common import margin
    from ..attacks.pgd import pgd_step, random_start_point
    check_images(x, "x")
    check_labels(y, x.shape[0], "y", device=x.device)
    check_model(model, x)
    if not isinstance(detector, Detector):
        raise TypeError(f"detector must be one of course_lib.defenses' detectors, got {type(detector).__name__}")
    if detector.threshold is None:
        raise ValueError("the detector has no threshold: calibrate it on held-out clean images first "
                         "(detector.calibrate(x_clean, fpr=0.05)); the attack stays under that threshold")
    check_in(norm, {"linf", "l2"}, "norm")
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or eps <= 0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    steps = check_count(steps, "steps", minimum=1)
    alpha = eps / 4 if alpha is None else float(alpha)
    gen = generator(seed)
    n = check_batch_size(batch_size, x)
    thr = detector.threshold
    out = []
    chunks = list(zip(x.split(n), y.split(n), strict=True))
    bar = tqdm(total=steps * len(chunks), desc="adaptive attack", disable=not progress, leave=False)

    def unit(g):
        return g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (g.dim() - 1)))

    for xb, yb in chunks:
        xb = xb.detach()
        x_adv = random_start_point(xb, eps, norm, gen) if random_start else xb.clone()
        best = x_adv.clone()
        found = torch.zeros(xb.shape[0], dtype=torch.bool, device=xb.device)
        for t in range(steps + 1):
            with torch.enable_grad():
                xg = x_adv.detach().requires_grad_(True)
                z = model(xg)
                s = detector.attack_score(xg)
                m = margin(z, yb)
                ok = (m.detach() < 0) & (s.detach() <= thr)
                best[ok] = x_adv[ok]
                found |= ok
                if t == steps:
                    break
                (g_m,) = torch.autograd.grad(m.sum(), xg, retain_graph=True)
                (g_s,) = torch.autograd.grad(s.sum(), xg, allow_unused=True) if s.requires_grad else (None,)
            push = (m.detach() >= -kappa).to(xb.dtype).view(-1, *([1] * (xb.dim() - 1)))
            um = unit(g_m)
            us = unit(g_s) if g_s is not None else torch.zeros_like(um)
            # while the classifier term is on, the detector term loses its part that would undo it (for the
            # softmax detector, "lower the score" before fooling means "more confident in the true class")
            dot = (us * um).flatten(1).sum(1).view(-1, *([1] * (xb.dim() - 1)))
            us = us - push * dot.clamp(max=0) * um
            g = push * um + us
            x_adv = pgd_step(x_adv, -g, xb, eps, alpha * (1 - t / steps), norm).detach()
            bar.update(1)
        best[~found] = x_adv[~found]
        out.append(best)
    bar.close()
    return torch.cat(out)
