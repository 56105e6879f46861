"""course_lib.explain side by side with Captum, pytorch-grad-cam, shap and lime.

Run from the repository root with ``make bench`` or ``.venv-peers/bin/python benchmarks/explain.py`` (5-10
minutes on 2 busy CPU cores; ``BENCH_QUICK=1`` shrinks every size for a smoke run). Nothing is downloaded.
Results go to ``benchmarks/results/explain.json`` and ``explain.md``; the table is printed as well.

Setup, the same for every library in one run: the shipped ``mnist_cnn`` in eval mode, the first digits of
``load_mnist("test")`` (a held-out part of the official MNIST *training* set), the predicted class as target,
``torch.set_num_threads(2)``, the same batch sizes where a library lets us choose. Timings: one warm-up round,
then several rounds in which the libraries take turns (order reversed every other round), median per library;
background load then slows all alike and the ratios stay fair. Ratio = course_lib / peer (below 1: ours is
faster or closer).

Rows:
1. Grad-CAM at ``model.features`` vs Captum ``LayerGradCam`` (7x7, ReLU) and pytorch-grad-cam ``GradCAM`` (28x28,
   each map rescaled to [0, 1] then resized with cv2): Pearson per image, time per image.
2. Occlusion (window 4 / stride 2 and the default 8 / 8, baseline 0.5) vs Captum ``Occlusion``.
3. Saliency vs Captum ``Saliency(abs=True)``; Integrated Gradients (50 steps, zero baseline) vs Captum with each
   quadrature rule.
4. Shapley values of a 12-player game (3x4 grid of patches, baseline 0, target logit): error against the exact
   values at budgets of about 500 and 2,000 model evaluations, for our KernelSHAP and antithetic permutation
   sampling, shap's ``KernelExplainer`` and Captum's ``ShapleyValueSampling`` and ``KernelShap``.
5. LIME with 1,000 samples on 49 patches: time per image and rank agreement with lime and Captum ``Lime``.
"""
from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # lime draws a progress bar for every explanation

import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import add_row, interleaved_times, log, machine, median, rows_table, write_results  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from course_lib._batches import VALUES_PER_BATCH as AUTO_BATCH_VALUES  # noqa: E402
from course_lib.data import load_mnist  # noqa: E402
from course_lib.explain import (  # noqa: E402
    grad_cam,
    image_game,
    integrated_gradients,
    kernel_shap,
    lime,
    occlusion,
    patch_segments,
    saliency,
    shapley_exact,
    shapley_permutation,
)
from course_lib.explain.games import as_game  # noqa: E402
from course_lib.explain.saliency import quadrature  # noqa: E402
from course_lib.models import load_model  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
THREADS = 2
N_CAM = 20 if QUICK else 100          # Grad-CAM and saliency images
N_OCC = 5 if QUICK else 10            # occlusion 4/2 images (169 windows each)
N_OCC_DEFAULT = 20 if QUICK else 100  # occlusion 8/8 images (16 windows each)
N_IG = 5 if QUICK else 20             # Integrated Gradients images (50 path points each)
IG_STEPS = 50
N_SHAP = 4 if QUICK else 20           # digits for the Shapley game
SHAP_SEEDS = (0,) if QUICK else (0, 1, 2)
BUDGETS = (500, 2000)
N_SHAP_TIME = 1 if QUICK else 2       # digits per round for the Shapley timing with the real model
N_LIME = 3 if QUICK else 8            # digits for the LIME agreement
N_LIME_TIME = 1 if QUICK else 3       # digits per round for the LIME timing
LIME_SAMPLES = 1000
LIME_BATCH = 256                      # perturbed images per forward pass, all libraries (our default)
REPEATS = 3 if QUICK else 7           # timed rounds for the fast rows
REPEATS_SLOW = 2 if QUICK else 3      # timed rounds for occlusion 4/2, IG, LIME

ROWS: list[dict] = []

NOTES = [
    "Data: `load_mnist('test')` is a held-out part of the official MNIST *training* set (images 0-9999, split by "
    "class), not the official MNIST test set.",
    "Timings share 2 cores with other processes (see the load averages): absolute times are inflated and noisy; "
    "the libraries take turns, so the ratios are the fairer number.",
    "Grad-CAM: pytorch-grad-cam applies ReLU, rescales each 7x7 map to [0, 1] (min-max) and resizes it with "
    "`cv2.resize` (bilinear, pixel centres aligned); ours is `F.interpolate(bilinear, align_corners=False)`, not "
    "rescaled. Pearson correlation ignores the rescaling.",
    "IG `riemann_trapezoid`: Captum puts the points i/(n-1) with weights (1/2, 1, ..., 1, 1/2)/n, which sum to "
    "1 - 1/n, so its attributions are (n-1)/n times the trapezoidal rule's (and miss completeness by 1/n); ours "
    "use the weights /(n-1). Ours = Captum x n/(n-1) to rounding.",
    "Shapley: players = 3x4 grid (`patch_segments(28, (10, 7))`: rows of 10/10/8 pixels, columns of 7), removed "
    "patches = 0, value = the predicted class's logit. Each digit's 4,096 coalition values are computed once with "
    "the model and then served from a table to every estimator (accuracy depends only on the values received); "
    "Captum, which hands over images, is served by reading one pixel with ink per patch. A direct run through the "
    "model gives the same exact values and the same Captum estimate (checked in the run). Evaluation counts are "
    "counted through wrappers. shap `KernelExplainer`: background = one all-zeros row, explained = all ones, "
    "nsamples = budget - 2 (+ v(background) + v(explained)), `l1_reg=False` (its default `num_features(10)` "
    "would drop 2 of the 12 players). Captum `ShapleyValueSampling`: 1 + 12 m evaluations for m permutations, no "
    "antithetic pairs. Captum `KernelShap`: n_samples coalitions drawn with replacement from the Shapley kernel, "
    "equal weights, v(N) and v(empty) as its first two samples. Ours: `kernel_shap` (sizes 1 and 11, ... enumerated "
    "while the budget covers them, the rest stratified in complementary pairs, efficiency exact) and "
    "`shapley_permutation` (antithetic, 2 + 11 m evaluations).",
    "LIME: the three kernels differ. lime's `LimeImageExplainer`: Bernoulli(1/2) samples, cosine distance of the "
    "binary vectors (unscaled: the x100 is `LimeTextExplainer`'s, with width 25), kernel sqrt(exp(-d^2/0.25^2)), "
    "`Ridge(alpha=1)`. Captum `Lime`: Bernoulli(1/2), cosine distance between the perturbed and the original "
    "*images*, kernel exp(-d^2/2), `Lasso(alpha=0.01)` (zeroes many coefficients). Ours: coalition sizes uniform, "
    "kernel exp(-d^2/0.25^2), ridge alpha=1e-3; 'lime's settings' = `sampling='bernoulli', "
    "kernel_width=0.25*sqrt(2), alpha=1`. Black patches of the digit do not change the game, so their "
    "coefficients are noise: agreement is also given on the patches with ink.",
]


def add(*args, **kwargs) -> None:
    """One line of this benchmark's results table (:func:`_common.add_row` on ``ROWS``)."""
    add_row(ROWS, *args, **kwargs)


def pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (NaN where a row is constant)."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def timed(fns: dict, n: int, repeats: int, warmup: int = 1) -> tuple[dict, dict, dict]:
    """Interleaved timing of ``fns`` (each handles ``n`` images): median wall-clock and CPU ms per image, and
    each function's first output."""
    wall, cpu, out = interleaved_times(fns, repeats=repeats, warmup=warmup)
    return ({k: 1e3 * median(v) / n for k, v in wall.items()}, {k: 1e3 * median(v) / n for k, v in cpu.items()},
            out)


def add_time(row: str, metric: str, ms: dict, cpu: dict, ours: str, peer: str, name: str, target="<= peer"):
    """A timing line judged on the wall-clock median; the CPU-time ratio goes into the note."""
    met = None if not target else ms[ours] <= ms[peer]
    add(row, metric, ms[ours], name, ms[peer], target=target, met=met,
        note=f"CPU-time ratio {cpu[ours] / cpu[peer]:.2f}")


# --------------------------------------------------------------------------------------------------- rows 1-3

def row_gradcam(model, x, t):
    from captum.attr import LayerGradCam
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    log(f"\n[1] Grad-CAM at model.features ({x.shape[0]} images, one batch)")
    targets = [ClassifierOutputTarget(int(c)) for c in t]

    def pgc():
        # constructed per call: the object keeps hooks on model.features for as long as it lives
        with GradCAM(model=model, target_layers=[model.features]) as cam:
            return torch.from_numpy(cam(input_tensor=x, targets=targets))

    fns = {
        "ours_7x7": lambda: grad_cam(model, x, t, upsample=False),
        "captum": lambda: LayerGradCam(model, model.features).attribute(x, target=t,
                                                                         relu_attributions=True)[:, 0].detach(),
        "ours_28x28": lambda: grad_cam(model, x, t),
        "pytorch_grad_cam": pgc,
    }
    ms, cpu, out = timed(fns, x.shape[0], REPEATS)
    model.zero_grad(set_to_none=True)  # pytorch-grad-cam calls loss.backward(), which fills the parameters' .grad

    r_captum = pearson_rows(out["ours_7x7"], out["captum"])
    r_pgc = pearson_rows(out["ours_28x28"], out["pytorch_grad_cam"])
    scale = float(out["captum"].abs().max())
    diff = float((out["ours_7x7"] - out["captum"]).abs().max())
    flat = int((out["ours_7x7"].flatten(1).amax(1) == 0).sum())
    ok = lambda r: bool(torch.nan_to_num(r, nan=-1).min() >= 0.999)  # noqa: E731
    add("1 Grad-CAM", "Pearson per image vs Captum 7x7, median (min)",
        f"{r_captum.nanmedian():.6f} ({r_captum.min():.6f})", "Captum LayerGradCam", target=">= 0.999",
        met=ok(r_captum))
    add("1 Grad-CAM", "max |ours - Captum| (7x7, unscaled)", diff, "Captum LayerGradCam",
        note=f"largest map value {scale:.3g}")
    add("1 Grad-CAM", "Pearson per image vs pytorch-grad-cam 28x28, median (min)",
        f"{r_pgc.nanmedian():.6f} ({r_pgc.min():.6f})", "pytorch-grad-cam GradCAM", target=">= 0.999",
        met=ok(r_pgc), note="theirs is rescaled to [0, 1] per image; Pearson ignores that")
    add_time("1 Grad-CAM", f"ms per image, 7x7 (batch of {x.shape[0]})", ms, cpu, "ours_7x7", "captum",
             "Captum LayerGradCam")
    add_time("1 Grad-CAM", "ms per image, upsampled to 28x28", ms, cpu, "ours_28x28", "pytorch_grad_cam",
             "pytorch-grad-cam GradCAM")
    if flat:
        log(f"  note: {flat} of our maps are all zero (ReLU removed everything); their Pearson is NaN")
    return {"pearson_captum": r_captum.tolist(), "pearson_pytorch_grad_cam": r_pgc.tolist(), "ms_per_image": ms,
            "cpu_ms_per_image": cpu}


def row_occlusion(model, x, t, window, stride, tag):
    from captum.attr import Occlusion

    b = x.shape[0]
    per_pass = max(1, (AUTO_BATCH_VALUES // x[0].numel()) // b)  # our default: ~1337 occluded images per pass
    log(f"\n[2] Occlusion window {window}, stride {stride}, baseline 0.5 ({b} images; both libraries "
        f"{per_pass} window positions x {b} images per forward pass)")
    fns = {
        "ours": lambda: occlusion(model, x, t, window=window, stride=stride, baseline=0.5, progress=False),
        "captum": lambda: Occlusion(model).attribute(x, sliding_window_shapes=(1, window, window),
                                                     strides=(1, stride, stride), baselines=0.5, target=t,
                                                     perturbations_per_eval=per_pass)[:, 0],
    }
    ms, cpu, out = timed(fns, b, REPEATS_SLOW if window < 8 else REPEATS)
    diff = float((out["ours"] - out["captum"]).abs().max())
    scale = float(out["captum"].abs().max())
    add(f"2 Occlusion {tag}", "max |ours - Captum|", diff, "Captum Occlusion", target="<= 1e-5",
        met=diff <= 1e-5, note=f"largest |value| {scale:.3g}; relative {diff / scale:.2e}")
    add_time(f"2 Occlusion {tag}", "ms per image", ms, cpu, "ours", "captum", "Captum Occlusion")
    return {"max_abs_diff": diff, "scale": scale, "ms_per_image": ms, "cpu_ms_per_image": cpu, "per_pass": per_pass}


def row_saliency(model, x, t):
    from captum.attr import Saliency

    log(f"\n[3a] Saliency |d y_t / d x| ({x.shape[0]} images, one batch)")
    fns = {"ours": lambda: saliency(model, x, t),
           "captum": lambda: Saliency(model).attribute(x, target=t, abs=True)}
    ms, cpu, out = timed(fns, x.shape[0], REPEATS)
    diff = float((out["ours"] - out["captum"]).abs().max())
    scale = float(out["captum"].abs().max())
    add("3 Saliency", "max |ours - Captum|", diff, "Captum Saliency(abs=True)", target="<= 1e-5",
        met=diff <= 1e-5, note=f"largest value {scale:.3g}")
    add_time("3 Saliency", "ms per image", ms, cpu, "ours", "captum", "Captum Saliency")
    return {"max_abs_diff": diff, "scale": scale, "ms_per_image": ms, "cpu_ms_per_image": cpu}


def row_ig(model, x, t):
    from captum.attr import IntegratedGradients

    b = x.shape[0]
    log(f"\n[3b] Integrated Gradients, {IG_STEPS} steps, zero baseline ({b} images; both libraries evaluate all "
        f"{b * IG_STEPS} path images in one pass)")
    ig = IntegratedGradients(model)
    result = {}
    for method in ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"):
        ours = integrated_gradients(model, x, t, steps=IG_STEPS, method=method)
        theirs = ig.attribute(x, baselines=0.0, target=t, n_steps=IG_STEPS, method=method,
                              internal_batch_size=b * IG_STEPS)
        scale = float(theirs.abs().max())
        diff = float((ours - theirs).abs().max())
        # diagnostic through a private Captum method: Captum's own code fed our nodes and weights (Captum builds its
        # Riemann nodes with a float32 linspace, up to one float32 step away from (i + offset) / n)
        alphas, weights = quadrature(method, IG_STEPS)
        same_nodes = ig._attribute((x,), (torch.zeros_like(x),), target=t, n_steps=IG_STEPS,
                                   step_sizes_and_alphas=(weights.tolist(), alphas.tolist()))[0]
        diag = float((ours - same_nodes).abs().max())
        off = int(((ours - theirs).abs() > 1e-5).sum())
        entry = {"max_abs_diff": diff, "scale": scale, "relative": diff / scale, "pixels_over_1e-5": off,
                 "max_abs_diff_captum_with_our_nodes": diag}
        if method == "riemann_trapezoid":
            # Captum's trapezoid weights (1/2, 1, ..., 1, 1/2) / n sum to 1 - 1/n; ours divide by n - 1
            factor = IG_STEPS / (IG_STEPS - 1)
            rescaled = float((ours - theirs * factor).abs().max())
            entry["max_abs_diff_vs_captum_times_n_over_n_minus_1"] = rescaled
            add("3 IG riemann_trapezoid", "max |ours - Captum| (raw)", diff, "Captum IntegratedGradients",
                note=f"Captum's weights sum to 1 - 1/{IG_STEPS}; relative {diff / scale:.2e}")
            add("3 IG riemann_trapezoid", f"max |ours - Captum x {IG_STEPS}/{IG_STEPS - 1}|", rescaled,
                "Captum IntegratedGradients", target="<= 1e-5 (or 1e-5 relative)",
                met=rescaled <= 1e-5 or rescaled / scale <= 1e-5,
                note=f"largest |value| {scale:.3g}; relative {rescaled / scale:.2e}")
        else:
            add(f"3 IG {method}", "max |ours - Captum|", diff, "Captum IntegratedGradients",
                target="<= 1e-5 (or 1e-5 relative)", met=diff <= 1e-5 or diff / scale <= 1e-5,
                note=f"largest |value| {scale:.3g}; relative {diff / scale:.2e}; {off} of {ours.numel()} pixels "
                     f"differ by > 1e-5")
        add(f"3 IG {method}", "max |ours - Captum fed our nodes and weights|", diag, "Captum (private _attribute)",
            note="diagnostic: isolates the quadrature nodes")
        result[method] = entry
    fns = {"ours": lambda: integrated_gradients(model, x, t, steps=IG_STEPS),
           "captum": lambda: ig.attribute(x, baselines=0.0, target=t, n_steps=IG_STEPS,
                                          internal_batch_size=b * IG_STEPS)}
    ms, cpu, _ = timed(fns, b, REPEATS_SLOW)
    add_time("3 IG gausslegendre", "ms per image", ms, cpu, "ours", "captum", "Captum IntegratedGradients")
    result["ms_per_image"], result["cpu_ms_per_image"] = ms, cpu
    return result


# --------------------------------------------------------------------------------------------------- row 4

class Tabulated:
    """One digit's 12-player game with all 4,096 coalition values computed once by the model.

    Every estimator's accuracy depends only on the values it receives, so the accuracy runs read them from this
    table (the same numbers the model gives; about 100 times faster than asking it again). Coalition ``k`` holds
    player ``i`` iff bit ``i`` of ``k`` is set. ``from_images`` serves Captum, whose estimators hand over
    perturbed images, not masks: a kept patch equals the digit there, a removed one is 0, so one non-zero pixel
    of the digit per patch tells them apart (a patch that is all zero in the digit looks the same either way,
    and so has the same value either way).
    """

    def __init__(self, table: torch.Tensor, x: torch.Tensor, segments: torch.Tensor):
        self.table = table
        self.n = int(segments.max()) + 1
        self.powers = 1 << torch.arange(self.n)
        flat, seg = x.flatten(), segments.flatten()
        self.probe = torch.tensor([int(torch.nonzero((seg == i) & (flat != 0))[0]) if ((seg == i) & (flat != 0)).any()
                                   else -1 for i in range(self.n)])

    def values(self, masks: torch.Tensor) -> torch.Tensor:
        return self.table[(masks.long() * self.powers).sum(1)]

    def from_images(self, images: torch.Tensor) -> torch.Tensor:
        pixels = images.flatten(1)[:, self.probe.clamp_min(0)]
        return self.values((pixels != 0) & (self.probe >= 0))


def _all_masks(n: int) -> torch.Tensor:
    return (torch.arange(2 ** n)[:, None] >> torch.arange(n)) & 1 == 1


def _brute_force_shapley(table: torch.Tensor, n: int) -> torch.Tensor:
    """phi_i = sum_{S not containing i} |S|! (n-|S|-1)! / n! (v(S + i) - v(S)), written out independently."""
    idx = torch.arange(2 ** n)
    size = torch.tensor([bin(k).count("1") for k in range(2 ** n)])
    w = torch.tensor([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)],
                     dtype=torch.float64)
    phi = torch.zeros(n, dtype=torch.float64)
    for i in range(n):
        without = idx[(idx >> i) & 1 == 0]
        phi[i] = (w[size[without]] * (table[without | (1 << i)] - table[without])).sum()
    return phi


def _segment_values(attr: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Per-player values from a Captum attribution map ``(1, 1, H, W)``, which is constant on each segment."""
    first = torch.tensor([int(torch.nonzero(segments.flatten() == i)[0]) for i in range(int(segments.max()) + 1)])
    return attr.reshape(-1)[first].double()


def run_shap_kernel(f_masks, budget: int, seed: int) -> tuple[torch.Tensor, int]:
    """shap.KernelExplainer on the game: background = the empty coalition, explained = the full one."""
    import shap

    count = [0]

    def f(z):
        count[0] += len(z)
        return f_masks(torch.from_numpy(z != 0)).cpu().double().numpy()

    np.random.seed(seed)  # KernelExplainer samples with numpy's global RNG
    explainer = shap.KernelExplainer(f, np.zeros((1, 12)))
    # nsamples coalitions + v(background) in the constructor + v(explained row) = budget; l1_reg=False: plain
    # KernelSHAP regression (the default "num_features(10)" would keep only 10 of the 12 players)
    phi = explainer.shap_values(np.ones((1, 12)), nsamples=budget - 2, l1_reg=False, silent=True)
    return torch.as_tensor(np.asarray(phi, dtype=np.float64)).reshape(-1), count[0]


def run_captum_svs(forward, x, segments, budget: int, seed: int, target=None) -> tuple[torch.Tensor, int]:
    """Captum ShapleyValueSampling: 1 evaluation of the baseline + 12 per permutation."""
    from captum.attr import ShapleyValueSampling

    count = [0]

    def fwd(images):
        count[0] += images.shape[0]
        return forward(images)

    torch.manual_seed(seed)  # Captum draws permutations with torch's global RNG
    n = int(segments.max()) + 1
    attr = ShapleyValueSampling(fwd).attribute(x, baselines=0.0, target=target, feature_mask=segments[None, None],
                                               n_samples=(budget - 1) // n, perturbations_per_eval=n)
    return _segment_values(attr, segments), count[0]


def run_captum_kernel(forward, x, segments, budget: int, seed: int, target=None,
                      per_eval: int = 256) -> tuple[torch.Tensor, int]:
    """Captum KernelShap with n_samples = budget (the full and the empty coalition are its first two samples)."""
    from captum.attr import KernelShap

    count = [0]

    def fwd(images):
        count[0] += images.shape[0]
        return forward(images)

    torch.manual_seed(seed)
    attr = KernelShap(fwd).attribute(x, baselines=0.0, target=target, feature_mask=segments[None, None],
                                     n_samples=budget, perturbations_per_eval=per_eval, return_input_shape=False)
    return attr.flatten().double(), count[0]


def row_shapley(model, x, t):
    segments = patch_segments(28, (10, 7))  # 3 x 4 grid: rows of 10, 10, 8 pixels, columns of 7
    n = int(segments.max()) + 1
    assert n == 12
    log(f"\n[4] Shapley values, 12 players = 3x4 grid of patches (rows of 10/10/8 pixels x columns of 7), "
        f"baseline 0, value = target logit; {x.shape[0]} digits x seeds {list(SHAP_SEEDS)}; reference = "
        "shapley_exact (4,096 coalitions)")
    t0 = time.perf_counter()
    masks = _all_masks(n)
    tabs, exact = [], []
    for i in range(x.shape[0]):
        game = image_game(model, x[i:i + 1], int(t[i]), segments, 0.0, batch_size=4096)
        table = game(masks).double()
        tab = Tabulated(table, x[i, 0], segments)
        phi = shapley_exact(as_game(tab.values, n), n)
        brute = _brute_force_shapley(table, n)
        if float((phi - brute).abs().max()) > 1e-9 * (1 + float(brute.abs().max())):
            raise AssertionError(f"shapley_exact disagrees with the brute-force formula on digit {i}")
        if abs(float(phi.sum()) - float(table[-1] - table[0])) > 1e-9 * (1 + abs(float(table[-1]))):
            raise AssertionError(f"shapley_exact is not efficient on digit {i}")
        tabs.append(tab)
        exact.append(phi)
    # the table is the model: one direct run through the real game must give the same exact values
    direct = shapley_exact(image_game(model, x[:1], int(t[0]), segments, 0.0), n).double()
    table_vs_model = float((direct - exact[0]).abs().max())
    log(f"  tables for {x.shape[0]} digits in {time.perf_counter() - t0:.1f} s; shapley_exact = brute-force formula; "
        f"max |exact(table) - exact(model)| = {table_vs_model:.2e}")

    methods = ("ours kernel_shap", "ours shapley_permutation", "shap KernelExplainer",
               "Captum ShapleyValueSampling", "Captum KernelShap")
    errors = {b: {m: [] for m in methods} for b in BUDGETS}
    evals = {b: {m: set() for m in methods} for b in BUDGETS}
    t0 = time.perf_counter()
    for budget in BUDGETS:
        for i, (tab, phi) in enumerate(zip(tabs, exact, strict=True)):
            norm = float(phi.norm())
            for seed in SHAP_SEEDS:
                game = as_game(tab.values, n)
                est = {"ours kernel_shap": kernel_shap(game, n, budget, seed=seed)}
                evals[budget]["ours kernel_shap"].add(game.evaluations)
                game = as_game(tab.values, n)
                est["ours shapley_permutation"] = shapley_permutation(game, n, budget, seed=seed)
                evals[budget]["ours shapley_permutation"].add(game.evaluations)
                est["shap KernelExplainer"], c = run_shap_kernel(tab.values, budget, seed)
                evals[budget]["shap KernelExplainer"].add(c)
                est["Captum ShapleyValueSampling"], c = run_captum_svs(tab.from_images, x[i:i + 1], segments,
                                                                       budget, seed)
                evals[budget]["Captum ShapleyValueSampling"].add(c)
                est["Captum KernelShap"], c = run_captum_kernel(tab.from_images, x[i:i + 1], segments, budget, seed)
                evals[budget]["Captum KernelShap"].add(c)
                for m in methods:
                    errors[budget][m].append(float((est[m].double() - phi).norm()) / norm)
    log(f"  {len(BUDGETS) * len(tabs) * len(SHAP_SEEDS) * len(methods)} estimates in "
        f"{time.perf_counter() - t0:.1f} s")
    summary = {}
    for budget in BUDGETS:
        goal = 0.02 if budget == 500 else 0.01
        med = {m: statistics.median(errors[budget][m]) for m in methods}
        ev = {m: sorted(evals[budget][m]) for m in methods}
        summary[budget] = {"median_relative_error": med, "evaluations": ev,
                           "p90_relative_error": {m: float(np.percentile(errors[budget][m], 90)) for m in methods}}
        for ours in ("ours kernel_shap", "ours shapley_permutation"):
            for peer in methods[2:]:
                add(f"4 Shapley ~{budget} evals", f"median rel. L2 error, {ours[5:]} ({ev[ours][0]} evals)",
                    med[ours], f"{peer} ({'/'.join(map(str, ev[peer]))} evals)", med[peer],
                    target=f"ours <= {goal}", met=med[ours] <= goal)

    # time per explanation with the real model at the smaller budget (Captum's ShapleyValueSampling runs one
    # forward pass of 12 images per permutation, which makes it slow)
    budget = BUDGETS[0]

    def f_target(images):  # Captum gets logits and picks the target column itself
        with torch.no_grad():
            return model(images)

    def over_digits(fn):
        return lambda n_digits=N_SHAP_TIME: [fn(i) for i in range(n_digits)]

    def game_of(i):
        return image_game(model, x[i:i + 1], int(t[i]), segments, 0.0)

    fns = {
        "ours kernel_shap": over_digits(lambda i: kernel_shap(game_of(i), n, budget, seed=0)),
        "ours shapley_permutation": over_digits(lambda i: shapley_permutation(game_of(i), n, budget, seed=0)),
        "shap KernelExplainer": over_digits(lambda i: run_shap_kernel(game_of(i), budget, 0)),
        "Captum ShapleyValueSampling": over_digits(
            lambda i: run_captum_svs(f_target, x[i:i + 1], segments, budget, 0, target=int(t[i]))),
        "Captum KernelShap": over_digits(
            lambda i: run_captum_kernel(f_target, x[i:i + 1], segments, budget, 0, target=int(t[i]))),
    }
    log(f"  timing with the real model, budget {budget}, {N_SHAP_TIME} digit(s) per round (image_game and Captum "
        "KernelShap: 256 images per forward pass; ShapleyValueSampling: 12, one permutation)")
    for fn in fns.values():  # warm-up on one digit (the first calls are several times slower)
        fn(1)
    ms, cpu, out = timed(fns, N_SHAP_TIME, REPEATS_SLOW, warmup=0)
    # the same seed through the table and through the model gives the same Captum estimate: the table is faithful
    svs_model = out["Captum ShapleyValueSampling"][0][0].double()
    svs_table = run_captum_svs(tabs[0].from_images, x[:1], segments, budget, 0)[0].double()
    log(f"  Captum ShapleyValueSampling, seed 0: max |table run - model run| = "
        f"{float((svs_model - svs_table).abs().max()):.2e}")
    for ours in ("ours kernel_shap", "ours shapley_permutation"):
        for peer in methods[2:]:
            add_time(f"4 Shapley ~{budget} evals", f"ms per explanation, {ours[5:]}", ms, cpu, ours, peer, peer,
                     target="")
    summary[f"ms_per_explanation_budget_{budget}"], summary[f"cpu_ms_per_explanation_budget_{budget}"] = ms, cpu
    summary["table_vs_model_max_abs"] = table_vs_model
    summary["errors"] = {str(b): errors[b] for b in BUDGETS}
    return summary


# --------------------------------------------------------------------------------------------------- row 5

def row_lime(model, x, t):
    from captum.attr import Lime
    from lime.lime_image import LimeImageExplainer

    segments = patch_segments(28, 4)
    n = int(segments.max()) + 1
    seg_np = segments.numpy()
    log(f"\n[5] LIME, {LIME_SAMPLES} samples, {n} players = 4x4 patches (agreement on {x.shape[0]} digits, timing "
        f"{N_LIME_TIME} digits per round; every library evaluates its perturbed images {LIME_BATCH} per forward pass)")

    def ours(i, **kw):
        game = image_game(model, x[i:i + 1], int(t[i]), segments, 0.0, batch_size=LIME_BATCH)
        return lime(game, n, LIME_SAMPLES, seed=i, **kw).double()

    def classifier(images):  # lime hands over (N, 28, 28, 3) float64 (gray2rgb of our digit)
        with torch.no_grad():
            return model(torch.from_numpy(images[..., 0]).float()[:, None]).numpy()

    def lime_pkg(i):
        explainer = LimeImageExplainer(random_state=i)
        exp = explainer.explain_instance(x[i, 0].double().numpy(), classifier, labels=(int(t[i]),), hide_color=0,
                                         top_labels=None, num_features=n, num_samples=LIME_SAMPLES,
                                         batch_size=LIME_BATCH, segmentation_fn=lambda _img: seg_np,
                                         random_seed=i)
        coef = torch.zeros(n, dtype=torch.float64)
        for k, w in exp.local_exp[int(t[i])]:
            coef[k] = w
        return coef

    def captum_lime(i):
        torch.manual_seed(i)
        attr = Lime(model).attribute(x[i:i + 1], target=int(t[i]), baselines=0.0, feature_mask=segments[None, None],
                                     n_samples=LIME_SAMPLES, perturbations_per_eval=LIME_BATCH,
                                     return_input_shape=False)
        return attr.flatten().double()

    perturbed = x[0:1].expand(LIME_SAMPLES, -1, -1, -1).contiguous()

    def forward_only(_i):  # the floor: the model on 1,000 digits, the cost every LIME implementation pays
        with torch.no_grad():
            return [model(c) for c in perturbed.split(LIME_BATCH)]

    impls = {"ours": ours, "lime": lime_pkg, "captum": captum_lime, "forward": forward_only}
    out = {k: [fn(i) for i in range(x.shape[0])] for k, fn in impls.items()}  # agreement data, and the warm-up
    fns = {k: (lambda fn=fn: [fn(i) for i in range(N_LIME_TIME)]) for k, fn in impls.items()}
    ms, cpu, _ = timed(fns, N_LIME_TIME, REPEATS_SLOW, warmup=0)
    # ours with lime's settings: Bernoulli(1/2) sampling, kernel sqrt(exp(-d^2/0.25^2)) = exp(-d^2/(0.25 sqrt 2)^2),
    # Ridge(alpha=1)
    matched = [ours(i, sampling="bernoulli", kernel_width=0.25 * math.sqrt(2), alpha=1.0) for i in range(x.shape[0])]
    other_seed = [lime(image_game(model, x[i:i + 1], int(t[i]), segments, 0.0, batch_size=LIME_BATCH), n,
                       LIME_SAMPLES, seed=1000 + i).double() for i in range(x.shape[0])]
    # patches with ink: a patch that is black in the digit has no effect on the game (true coefficient 0), so
    # the order among those patches is sampling noise
    ink = [torch.zeros(n, dtype=torch.bool).index_fill_(0, segments[x[i, 0] > 0].unique(), True)
           for i in range(x.shape[0])]

    def rho(a, b, only_ink=False):
        return statistics.median(float(spearmanr(u[k].numpy() if only_ink else u.numpy(),
                                                 v[k].numpy() if only_ink else v.numpy())[0])
                                 for u, v, k in zip(a, b, ink, strict=True))

    pairs = {
        "ours vs lime": (out["ours"], out["lime"]),
        "ours vs Captum Lime": (out["ours"], out["captum"]),
        "ours (lime's settings) vs lime": (matched, out["lime"]),
        "lime vs Captum Lime": (out["lime"], out["captum"]),
        "ours vs ours, another seed (noise floor)": (out["ours"], other_seed),
    }
    agreement = {k: {"all 49 patches": rho(a, b), "patches with ink": rho(a, b, True)} for k, (a, b) in pairs.items()}
    zeros = statistics.median(int((c == 0).sum()) for c in out["captum"])
    n_ink = statistics.median(int(k.sum()) for k in ink)
    for peer, name in (("lime", "lime LimeImageExplainer"), ("captum", "Captum Lime")):
        add("5 LIME", "ms per image", ms["ours"], name, ms[peer], target="ours <= 150 ms", met=ms["ours"] <= 150,
            note=f"CPU-time ratio {cpu['ours'] / cpu[peer]:.2f}")
    add("5 LIME", f"ms per image, the model's forward pass on {LIME_SAMPLES} digits only (floor)", ms["forward"], "-")
    for k, v in agreement.items():
        note = f"Captum's Lasso(alpha=0.01) zeroes a median {zeros} of {n} coefficients" if "Captum" in k else ""
        add("5 LIME", f"Spearman median, {k}: all 49 / {n_ink:g} with ink",
            f"{v['all 49 patches']:.3f} / {v['patches with ink']:.3f}", "-", lower_is_better=False, note=note)
    return {"ms_per_image": ms, "cpu_ms_per_image": cpu, "spearman_median": agreement,
            "captum_zero_coefficients_median": zeros, "patches_with_ink_median": n_ink}


# --------------------------------------------------------------------------------------------------- main

def main() -> None:
    torch.set_num_threads(THREADS)
    warnings.filterwarnings("ignore", module="captum")
    warnings.filterwarnings("ignore", module="shap")
    start = time.perf_counter()
    info = machine()
    model = load_model("mnist_cnn")
    x_all, _ = load_mnist("test")
    n_max = max(N_CAM, N_OCC, N_OCC_DEFAULT, N_IG, N_SHAP, N_LIME, N_LIME_TIME)
    with torch.no_grad():
        t_all = model(x_all[:n_max]).argmax(1)
    from importlib.metadata import version

    versions = {name: version(name) for name in ("course_lib", "captum", "grad-cam", "shap", "lime", "numpy")}
    log("course_lib.explain vs Captum, pytorch-grad-cam, shap, lime")
    log(f"machine: {info['cpu']}, {info['logical_cores']} logical cores, torch threads {THREADS}, "
        f"load average (1/5/15 min) {info['load_average_1_5_15']}")
    log(f"versions: {versions}, torch {info['torch']}")
    log("model: mnist_cnn (eval); images: the first digits of load_mnist('test'), a held-out part of the official "
        "MNIST training set (not the official test set); target = the predicted class")
    log("timings: 1 warm-up, then rounds in which the libraries take turns (order reversed every other round); "
        "median; ratio = course_lib / peer")

    details = {
        "gradcam": row_gradcam(model, x_all[:N_CAM], t_all[:N_CAM]),
        "occlusion_4_2": row_occlusion(model, x_all[:N_OCC], t_all[:N_OCC], 4, 2, "4/2"),
        "occlusion_8_8": row_occlusion(model, x_all[:N_OCC_DEFAULT], t_all[:N_OCC_DEFAULT], 8, 8, "8/8"),
        "saliency": row_saliency(model, x_all[:N_CAM], t_all[:N_CAM]),
        "integrated_gradients": row_ig(model, x_all[:N_IG], t_all[:N_IG]),
        "shapley": row_shapley(model, x_all[:N_SHAP], t_all[:N_SHAP]),
        "lime": row_lime(model, x_all[:N_LIME], t_all[:N_LIME]),
    }
    info["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    elapsed = time.perf_counter() - start
    config = {"quick": QUICK, "threads": THREADS, "n_gradcam_saliency": N_CAM, "n_occlusion_4_2": N_OCC,
              "n_occlusion_8_8": N_OCC_DEFAULT, "n_ig": N_IG, "ig_steps": IG_STEPS, "n_shapley_digits": N_SHAP,
              "shapley_seeds": list(SHAP_SEEDS), "budgets": list(BUDGETS), "n_lime": N_LIME,
              "n_lime_time": N_LIME_TIME, "n_shapley_time": N_SHAP_TIME,
              "lime_samples": LIME_SAMPLES, "repeats": REPEATS, "repeats_slow": REPEATS_SLOW,
              "data": "load_mnist('test'): held out from the official MNIST training set", "model": "mnist_cnn"}

    table = rows_table(ROWS)
    md = "\n".join([
        "# course_lib.explain vs Captum, pytorch-grad-cam, shap, lime",
        "",
        f"Machine: {info['cpu']}, {info['logical_cores']} logical cores, torch threads {THREADS}; load average "
        f"(1/5/15 min) {info['load_average_1_5_15']} at the start, {info['load_average_at_end']} at the end. "
        f"Versions: {', '.join(f'{k} {v}' for k, v in versions.items())}, torch {info['torch']}.",
        "",
        "Model `mnist_cnn` (eval); images: the first digits of `load_mnist('test')`, a held-out part of the official "
        "MNIST training set; target = predicted class. Timings: warm-up, then interleaved rounds, median; ratio = "
        "course_lib / peer (below 1: ours faster, or closer to the exact values). Times in ms per image "
        "(per explanation for Shapley and LIME).",
        "",
        table,
        "",
        "Notes:",
        "",
        *[f"- {note}" for note in NOTES],
        "",
        f"Total run time {elapsed:.0f} s{' (BENCH_QUICK=1: reduced sizes)' if QUICK else ''}.",
    ])
    js, mdp = write_results("explain", {"machine": info, "versions": versions, "config": config, "rows": ROWS,
                                        "details": details, "elapsed_s": elapsed}, md)
    log("\n" + table)
    log(f"\nload average at the end {info['load_average_at_end']}; total {elapsed:.0f} s; wrote {js} and {mdp}")


if __name__ == "__main__":
    main()
