"""Bounds on a network's outputs that hold for every input in an L-inf ball (intersected with [0, 1]).

The model is traced with ``torch.fx`` into a chain of steps, each either **affine** (``Conv2d``, ``Linear``,
``BatchNorm`` in eval mode, average pooling, flatten / view / reshape, ``+ - * /`` with constants such as the
normalisation inside our models, identity and eval-mode dropout) or **piecewise linear** (``ReLU``,
``MaxPool2d``). Anything else gets an error that names the operation and the module. No list of our own models:
the shipped CNNs work because they are made of these parts.

* :func:`interval_bounds`: interval bound propagation (IBP; Gowal et al., 2018): a box through every step.
* :func:`crown_bounds`: CROWN (Zhang, Weng, Chen, Hsieh & Daniel, 2018): each output bounded by a linear function
  of the input, built backwards through linear relaxations of ReLU and max-pooling, then minimised over the box.
* :func:`margin_bounds`: lower bounds on ``z_y - z_k`` (what certification needs), with the specification folded
  into the last affine layers, tighter than subtracting two logit intervals; :func:`certified`: where they are all
  positive.
"""
from __future__ import annotations

import operator

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from .._validate import check_count, check_images, check_in, check_labels, check_model

__all__ = ["interval_bounds", "crown_bounds", "margin_bounds", "certified", "layer_widths"]

SUPPORTED = ("Conv2d, Linear, ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten / view / reshape, BatchNorm "
             "in eval mode, Identity, Dropout in eval mode, and + - * / with constants")


class _Step:
    """One operation of the chain: ``kind`` "affine" (``f`` the operation, ``abs_lin(r)`` = ``|A| r``), "relu"
    or "maxpool" (``pool``: kernel, stride, padding, dilation); ``name`` says where it comes from."""

    def __init__(self, kind, name, f=None, abs_lin=None, pool=None):
        self.kind, self.name, self.f, self.abs_lin, self.pool = kind, name, f, abs_lin, pool
        self.in_shape = self.out_shape = None


def _unsupported(what: str, where: str) -> ValueError:
    return ValueError(f"certify: {what} ({where}) is not supported; bounds work on chains of: {SUPPORTED}")


def _reshape_to(shape):
    return lambda z: z.reshape(z.shape[0], *shape)


def _module_step(mod: nn.Module, name: str) -> _Step:
    where = f"module {name!r}, {type(mod).__name__}"
    if isinstance(mod, nn.Conv2d):
        if mod.padding_mode != "zeros":
            raise _unsupported(f"Conv2d with padding_mode={mod.padding_mode!r}", where)
        # |W| read at call time (not detached): certified training differentiates the bounds
        return _Step("affine", name, mod, lambda r: F.conv2d(r, mod.weight.abs().to(r.dtype), None, mod.stride,
                                                             mod.padding, mod.dilation, mod.groups))
    if isinstance(mod, nn.Linear):
        return _Step("affine", name, mod, lambda r: F.linear(r, mod.weight.abs().to(r.dtype)))
    if isinstance(mod, nn.modules.batchnorm._BatchNorm):
        if mod.training or not mod.track_running_stats:
            raise _unsupported("BatchNorm in training mode or without running statistics", where)
        def abs_bn(r):
            scale = (mod.weight if mod.affine else 1.0) / torch.sqrt(mod.running_var + mod.eps)
            return r * scale.abs().to(r.dtype).view(1, -1, *([1] * (r.dim() - 2)))
        return _Step("affine", name, mod, abs_bn)
    if isinstance(mod, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        return _Step("affine", name, mod, mod)                  # non-negative weights, no bias
    if isinstance(mod, (nn.Identity, nn.Dropout, nn.Flatten)):
        if isinstance(mod, nn.Dropout) and mod.training:
            raise _unsupported("Dropout in training mode", where)
        return _Step("affine", name, mod, mod)
    if isinstance(mod, nn.ReLU):
        return _Step("relu", name)
    if isinstance(mod, nn.MaxPool2d):
        if mod.ceil_mode or mod.return_indices:
            raise _unsupported("MaxPool2d with ceil_mode or return_indices", where)
        return _Step("maxpool", name, pool=(mod.kernel_size, mod.stride, mod.padding, mod.dilation))
    raise _unsupported(f"the module type {type(mod).__name__}", where)


_ARITH = {operator.add: "add", torch.add: "add", operator.sub: "sub", torch.sub: "sub", operator.mul: "mul",
          torch.mul: "mul", operator.truediv: "div", torch.div: "div", "add": "add", "sub": "sub", "mul": "mul",
          "div": "div", "__add__": "add", "__sub__": "sub", "__mul__": "mul", "__truediv__": "div"}
_RESHAPE = {torch.flatten, "flatten", "view", "reshape"}
_RELU = {F.relu, torch.relu, "relu"}


def _chain(model: nn.Module, x: torch.Tensor) -> tuple[list[_Step], torch.Tensor]:
    """Trace ``model`` and run it on ``x``: the chain of steps from the input to the output, with every step's
    input and output shape (per image), and the output on ``x``."""
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as err:                                    # noqa: BLE001 - any tracing failure
        raise ValueError(f"certify: torch.fx cannot trace {type(model).__name__} ({type(err).__name__}: {err}); "
                         f"bounds need a model without data-dependent control flow, made of: {SUPPORTED}") from err
    values: dict = {}
    live: set = set()                                           # nodes that depend on the input
    steps: list[_Step] = []
    last = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if values:
                raise _unsupported("a second input", f"argument {node.name!r}")
            values[node], last = x, node
            live.add(node)
            continue
        if node.op == "get_attr":
            obj = gm
            for part in node.target.split("."):
                obj = getattr(obj, part)
            values[node] = obj.detach() if isinstance(obj, torch.Tensor) else obj
            continue
        if node.op == "output":
            out = node.args[0]
            if out is not last:
                raise _unsupported("an output that is not the end of one chain", "the model's output")
            return steps, values[out]
        args = torch.fx.node.map_arg(node.args, lambda n: values[n])
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: values[n])
        inputs = [a for a in node.all_input_nodes if a in live]
        if not inputs:                                          # constants only (e.g. a buffer reshaped)
            values[node] = _run(gm, node, args, kwargs)
            continue
        if node.op == "call_method" and node.target in ("size", "dim") or (
                node.op == "call_function" and node.target is getattr):
            values[node] = _run(gm, node, args, kwargs)         # a shape, known for this x
            continue
        if len(inputs) != 1 or inputs[0] is not last:
            raise _unsupported(f"{_describe(gm, node)} with several inputs or a branch", f"node {node.name!r}")
        step = _step(gm, node, values, last)
        value = _run(gm, node, args, kwargs)
        step.in_shape, step.out_shape = tuple(values[last].shape[1:]), tuple(value.shape[1:])
        if value.shape[0] != x.shape[0]:
            raise _unsupported(f"{_describe(gm, node)} that mixes images of the batch", f"node {node.name!r}")
        if step.kind == "affine" and node.op != "call_module" and (
                node.target in _RESHAPE or getattr(node.target, "__name__", "") in ("flatten",)):
            step.f = step.abs_lin = _reshape_to(step.out_shape)
        steps.append(step)
        values[node], last = value, node
        live.add(node)
    raise ValueError("certify: the traced graph has no output")


def _describe(gm, node) -> str:
    if node.op == "call_module":
        return f"module {node.target!r} ({type(gm.get_submodule(node.target)).__name__})"
    return f"{node.op} {getattr(node.target, '__name__', node.target)!s}"


def _run(gm, node, args, kwargs):
    if node.op == "call_module":
        return gm.get_submodule(node.target)(*args, **kwargs)
    if node.op == "call_method":
        self_obj, *rest = args
        return getattr(self_obj, node.target)(*rest, **kwargs)
    return node.target(*args, **kwargs)


def _step(gm, node, values, last) -> _Step:
    name = str(node.target) if node.op == "call_module" else node.name
    if node.op == "call_module":
        return _module_step(gm.get_submodule(node.target), name)
    target = node.target
    if target in _RELU:
        return _Step("relu", name)
    if target is F.max_pool2d:
        a = node.args
        k = node.kwargs.get("kernel_size", a[1] if len(a) > 1 else None)
        s = node.kwargs.get("stride", a[2] if len(a) > 2 else None) or k
        p = node.kwargs.get("padding", a[3] if len(a) > 3 else 0)
        d = node.kwargs.get("dilation", a[4] if len(a) > 4 else 1)
        return _Step("maxpool", name, pool=(k, s, p, d))
    if target in _RESHAPE or target in ("contiguous", "clone", "detach"):
        ident = lambda z: z  # noqa: E731
        return _Step("affine", name, ident, ident)
    if target in (F.avg_pool2d, F.adaptive_avg_pool2d, "mean"):
        args = node.args

        def f(z):
            return _run(gm, node, (z, *torch.fx.node.map_arg(args[1:], lambda n: values[n])),
                        torch.fx.node.map_arg(node.kwargs, lambda n: values[n]))
        return _Step("affine", name, f, f)
    op = _ARITH.get(target)
    if op is None:
        raise _unsupported(_describe(gm, node), f"node {node.name!r}")
    a, b = node.args[0], node.args[1]
    x_first = a is last
    other = b if x_first else a
    const = values[other] if isinstance(other, torch.fx.Node) else other
    if isinstance(const, torch.Tensor):
        const = const.detach()
    if op == "add":
        return _Step("affine", name, lambda z: z + const, lambda r: r)
    if op == "sub":
        if x_first:
            return _Step("affine", name, lambda z: z - const, lambda r: r)
        return _Step("affine", name, lambda z: const - z, lambda r: r)
    if op == "mul":
        return _Step("affine", name, lambda z: z * const, lambda r: r * abs(const))
    if not x_first:
        raise _unsupported("division by the input (not affine)", f"node {node.name!r}")
    return _Step("affine", name, lambda z: z / const, lambda r: r / abs(const))


def _check(model, x, eps):
    check_images(x, "x")
    check_model(model, x)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0:
        raise ValueError(f"eps must be a number >= 0 (the L-inf radius), got {eps!r}")


def _box(x, eps):
    return (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)


def _ibp_step(step: _Step, lo, hi):
    if step.kind == "affine":
        mid, rad = (hi + lo) / 2, (hi - lo) / 2
        mid, rad = step.f(mid), step.abs_lin(rad)
        return mid - rad, mid + rad
    if step.kind == "relu":
        return lo.clamp_min(0), hi.clamp_min(0)
    k, s, p, d = step.pool
    return F.max_pool2d(lo, k, s, p, d), F.max_pool2d(hi, k, s, p, d)


def _ibp_all(steps, x, eps):
    """The box at the input of every step and at the output: a list of ``len(steps) + 1`` (lo, hi) pairs."""
    boxes = [_box(x, eps)]
    for step in steps:
        boxes.append(_ibp_step(step, *boxes[-1]))
    return boxes


@torch.no_grad()
def interval_bounds(model: nn.Module, x: torch.Tensor, eps: float, per_layer: bool = False):
    """Interval bound propagation (Gowal et al., "On the Effectiveness of Interval Bound Propagation for Training
    Verifiably Robust Models", 2018): a box ``[l, u]`` pushed through every step, starting from
    ``[max(x - eps, 0), min(x + eps, 1)]``::

        affine  z -> W z + b:   mid' = W mid + b,   rad' = |W| rad        (mid, rad: centre and half-width)
        ReLU, max-pooling:      l' = g(l),  u' = g(u)                    (monotone)

    Returns ``(lower, upper)``, each ``(B, K)``: every input in the ball has logits between them. Sound (up to
    floating-point rounding), fast (two forward passes' worth of work), and loose: the boxes grow with depth.
    ``per_layer=True`` returns the box after every step instead, as a list of ``(name, lower, upper)`` (the name
    of the module or operation; shapes ``(B, *that step's output)``), the last one the logits' (to watch the boxes
    grow; with ``eps = 0`` the boxes are the activations themselves)."""
    _check(model, x, eps)
    steps, _ = _chain(model, x)
    boxes = _ibp_all(steps, x, eps)
    if per_layer:
        return [(step.name, lo.detach(), hi.detach()) for step, (lo, hi) in zip(steps, boxes[1:], strict=True)]
    lo, hi = boxes[-1]
    return lo.detach(), hi.detach()


# ---------------------------------------------------------------------------------------------------------------
# CROWN: linear bounds built backwards


def _affine_back(step: _Step, lam: torch.Tensor, create_graph: bool = False):
    """``(lam A, lam . b)`` for the affine step ``z -> A z + b``, with ``lam`` of shape ``(B, S, *out_shape)``.
    ``create_graph``: keep both differentiable with respect to the parameters (certified training)."""
    b, s = lam.shape[:2]
    with torch.enable_grad():
        z = torch.zeros((b * s, *step.in_shape), dtype=lam.dtype, device=lam.device, requires_grad=True)
        out = step.f(z)
        (grad,) = torch.autograd.grad(out, z, grad_outputs=lam.reshape(b * s, *step.out_shape),
                                      create_graph=create_graph)
    offset = out if create_graph else out.detach()                                      # out at z = 0 is b
    bias = (lam.reshape(b * s, -1) * offset.reshape(b * s, -1)).sum(1).view(b, s)
    return grad.view(b, s, *step.in_shape), bias


def _relu_back(lam, lo, hi):
    """Backward through ReLU for a LOWER bound: for each neuron, the lower line where ``lam >= 0``, the upper line
    where ``lam < 0``. Unstable neurons (l < 0 < u): upper line ``u (z - l) / (u - l)``, lower line ``a z`` with
    ``a = 1`` if ``u >= -l`` else 0 (CROWN's adaptive choice)."""
    lo, hi = lo.unsqueeze(1), hi.unsqueeze(1)
    unstable = (lo < 0) & (hi > 0)
    active = lo >= 0
    up_slope = torch.where(unstable, hi / (hi - lo).clamp_min(1e-12), active.to(lam.dtype))
    up_bias = torch.where(unstable, -up_slope * lo, torch.zeros_like(lo))
    low_slope = torch.where(unstable, (hi >= -lo).to(lam.dtype), active.to(lam.dtype))
    pos, neg = lam.clamp(min=0), lam.clamp(max=0)
    bias = (neg * up_bias).flatten(2).sum(2)
    return pos * low_slope + neg * up_slope, bias


def _maxpool_back(step: _Step, lam, lo, hi):
    """Backward through max-pooling for a LOWER bound. Per window, ``i*`` = the input with the largest lower
    bound: ``max >= z_{i*}`` always; ``max <= z_{i*}`` when ``l_{i*} >= u_j`` for every other ``j`` of the window,
    else ``max <= max_j u_j`` (a constant)."""
    k, s, p, d = step.pool
    low_best, idx = F.max_pool2d(lo, k, s, p, d, return_indices=True)
    masked = hi.flatten(2).scatter(2, idx.flatten(2), float("-inf")).view_as(hi)
    second = F.max_pool2d(masked, k, s, p, d)
    top = F.max_pool2d(hi, k, s, p, d)
    kk, ss, pp, dd = (nn.modules.utils._pair(v) for v in (k, s if s is not None else k, p, d))
    disjoint = all(a >= b for a, b in zip(ss, kk, strict=True)) and pp == (0, 0) and dd == (1, 1)
    # with overlapping windows an input masked for one window may be another's runner-up: no exact windows then
    exact = ((low_best >= second) & disjoint).unsqueeze(1)
    pos, neg = lam.clamp(min=0), lam.clamp(max=0)
    to_idx = pos + torch.where(exact, neg, torch.zeros_like(neg))
    bias = torch.where(exact, torch.zeros_like(neg), neg * top.unsqueeze(1)).flatten(2).sum(2)
    b, n = lam.shape[:2]
    c, h, w = step.in_shape
    out = torch.zeros(b, n, c, h * w, dtype=lam.dtype, device=lam.device)
    index = idx.flatten(2).unsqueeze(1).expand(b, n, c, -1)
    out.scatter_add_(3, index, to_idx.flatten(3))
    return out.view(b, n, c, h, w), bias


def _backward(steps, upto: int, lam, pre, box, create_graph: bool = False):
    """The lower bound of ``lam . (output of step upto - 1)`` over the input box, with the pre-activation bounds
    ``pre[j] = (l, u)`` at the input of every piecewise-linear step ``j < upto``."""
    bias = torch.zeros(lam.shape[:2], dtype=lam.dtype, device=lam.device)
    for j in range(upto - 1, -1, -1):
        step = steps[j]
        if step.kind == "affine":
            lam, add = _affine_back(step, lam, create_graph)
        elif step.kind == "relu":
            lam, add = _relu_back(lam, *pre[j])
        else:
            lam, add = _maxpool_back(step, lam, *pre[j])
        bias = bias + add
    lo, hi = box
    return bias + (lam.clamp(min=0) * lo.unsqueeze(1) + lam.clamp(max=0) * hi.unsqueeze(1)).flatten(2).sum(2)


def _crown_pre(steps, x, eps, intermediate: str, chunk: int):
    """Pre-activation bounds at every piecewise-linear step: IBP, tightened by CROWN (the tighter of the two, both
    sound) when ``intermediate == "crown"``."""
    boxes = _ibp_all(steps, x, eps)
    box = boxes[0]
    pre: dict = {}
    for i, step in enumerate(steps):
        if step.kind == "affine":
            continue
        lo, hi = boxes[i]
        if intermediate == "crown" and i > 0:
            n = lo[0].numel()
            lows, highs = [], []
            for start in range(0, n, chunk):
                m = min(chunk, n - start)
                c = torch.zeros(m, n, dtype=x.dtype, device=x.device)
                c[torch.arange(m), torch.arange(start, start + m)] = 1
                c = c.view(1, m, *lo.shape[1:]).expand(x.shape[0], -1, *lo.shape[1:])
                lows.append(_backward(steps, i, c, pre, box))
                highs.append(-_backward(steps, i, -c, pre, box))
            lo = torch.maximum(lo, torch.cat(lows, 1).view_as(lo))
            hi = torch.minimum(hi, torch.cat(highs, 1).view_as(hi))
        pre[i] = (lo, hi)
        # the next steps' IBP boxes start from the tightened bounds
        boxes[i + 1] = _ibp_step(step, lo, hi)
        for j in range(i + 1, len(steps)):
            boxes[j + 1] = _ibp_step(steps[j], *boxes[j])
    return pre, boxes


@torch.no_grad()
def crown_bounds(model: nn.Module, x: torch.Tensor, eps: float, intermediate: str = "crown",
                 chunk: int = 1024, per_layer: bool = False):
    """CROWN (Zhang, Weng, Chen, Hsieh & Daniel, "Efficient Neural Network Robustness Certification with General
    Activation Functions", NeurIPS 2018): each logit bounded by a linear function of the input, built backwards::

        z_k  >=  Lambda_k . x + beta_k   for every x in the box  =>   z_k >= min over the box = sum_i
             Lambda_ki * (l_i if Lambda_ki >= 0 else u_i) + beta_k

    Going back through an affine step multiplies ``Lambda`` by its matrix; through a ReLU, each neuron is replaced
    by a line below it (where ``Lambda >= 0``) or above it (where ``Lambda < 0``), chosen from its pre-activation
    bounds ``[l, u]``; through max-pooling, by the input with the largest lower bound (below) and that input or
    the window's largest upper bound (above). The pre-activation bounds come from IBP, tightened by CROWN itself
    for every earlier layer (``intermediate="crown"``, the paper's method; ``"ibp"`` is the cheaper CROWN-IBP
    variant); ``chunk`` neurons are bounded at a time. Upper bounds are minus the lower bounds of ``-z``.

    Returns ``(lower, upper)``, ``(B, K)``, at least as tight as :func:`interval_bounds`' (the result is
    intersected with them). ``per_layer=True`` returns a list of ``(name, lower, upper)`` instead: the bounds on
    the input of every ReLU / max-pooling step (named after the step that computes it, e.g. ``"fc1"``) and, last,
    the logits', comparable with ``interval_bounds(..., per_layer=True)`` entry by name."""
    _check(model, x, eps)
    check_in(intermediate, {"crown", "ibp"}, "intermediate")
    steps, out = _chain(model, x)
    pre, boxes = _crown_pre(steps, x, eps, intermediate, chunk)
    k = out[0].numel()
    c = torch.eye(k, dtype=x.dtype, device=x.device).view(1, k, *out.shape[1:]).expand(x.shape[0], -1,
                                                                                         *out.shape[1:])
    lower = _backward(steps, len(steps), c, pre, boxes[0])
    upper = -_backward(steps, len(steps), -c, pre, boxes[0])
    ibp_lo, ibp_hi = boxes[-1]
    lower = torch.maximum(lower, ibp_lo.flatten(1)).view_as(out)
    upper = torch.minimum(upper, ibp_hi.flatten(1)).view_as(out)
    if per_layer:
        layers = [(steps[i - 1].name if i > 0 else "input", lo, hi) for i, (lo, hi) in sorted(pre.items())]
        return layers + [(steps[-1].name, lower, upper)]
    return lower, upper


@torch.no_grad()
def margin_bounds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, method: str = "ibp",
                  chunk: int = 1024) -> torch.Tensor:
    """Lower bounds on the margins ``z_y - z_k`` over the ball, ``(B, K)`` (0 at ``k = y``): the image is certified
    when every entry with ``k != y`` is positive.

    The specification ``c_k = e_y - e_k`` is folded into the trailing affine layers (after the last ReLU or
    max-pooling): for a last layer ``z = W h + b`` the bound is ``min over the box of h`` of
    ``(w_y - w_k) . h + b_y - b_k``, tighter than ``lower(z_y) - upper(z_k)`` because the two logits share
    ``h``. ``method="ibp"``: the box of ``h`` from :func:`interval_bounds`; ``"crown"``: the whole network
    bounded backwards as in :func:`crown_bounds`."""
    _check(model, x, eps)
    check_in(method, {"ibp", "crown"}, "method")
    steps, out = _chain(model, x)
    if out.dim() != 2:
        raise ValueError(f"margin_bounds needs logits of shape (B, K), the model returns {tuple(out.shape)}")
    k = out.shape[1]
    check_labels(y, x.shape[0], "y", num_classes=k, device=x.device)
    ibp = _ibp_margin(steps, x, y, eps)
    if method == "ibp":
        return ibp
    c = F.one_hot(y, k).to(x.dtype).unsqueeze(1) - torch.eye(k, dtype=x.dtype, device=x.device).unsqueeze(0)
    pre, boxes = _crown_pre(steps, x, eps, "crown", chunk)
    return torch.maximum(_backward(steps, len(steps), c, pre, boxes[0]), ibp)     # both sound: the tighter


@torch.no_grad()
def certified(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, method: str = "ibp",
              chunk: int = 1024) -> torch.Tensor:
    """``(B,)`` bool: True where the digit is certified, i.e. every lower bound of :func:`margin_bounds` with
    ``k != y`` is positive (then no input of the ball is classified other than ``y``; a misclassified ``x`` is
    never certified). The mean is the certified accuracy."""
    m = margin_bounds(model, x, y, eps, method=method, chunk=chunk)
    others = torch.ones_like(m, dtype=torch.bool)
    others[torch.arange(len(y), device=m.device), y] = False
    return (m > 0).logical_or(~others).all(1)


def layer_widths(model: nn.Module, x: torch.Tensor, eps: float, samples: int = 1000, seed=0) -> dict:
    """How loose the bounds are, layer by layer, for one image ``x`` ``(1, C, H, W)``: the mean width ``hi - lo``
    over the neurons of every layer that feeds a ReLU / max-pooling, and of the logits, for

    * ``"ibp"``: :func:`interval_bounds`' boxes;  ``"crown"``: :func:`crown_bounds`' bounds (both sound);
    * ``"reached"``: the spread (max - min) of the activations of ``samples`` uniform random points of the ball
      and of targeted PGD points towards every class (20 steps): an under-estimate of the true range.

    The true range of each neuron lies between "reached" and "crown". Returns ``{"layers": [names], "ibp": [...],
    "crown": [...], "reached": [...]}`` (``layers``: the module names without their parents, e.g. ``"fc1"``)."""
    from ..attacks import pgd

    _check(model, x, eps)
    if x.shape[0] != 1:
        raise ValueError(f"layer_widths takes one image, x of shape (1, C, H, W); got {tuple(x.shape)}")
    samples = check_count(samples, "samples", minimum=1)
    ibp = {name: (hi - lo).mean().item() for name, lo, hi in interval_bounds(model, x, eps, per_layer=True)}
    crown = {name: (hi - lo).mean().item() for name, lo, hi in crown_bounds(model, x, eps, per_layer=True)}
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    u = torch.rand(samples, *x.shape[1:], generator=g).to(device=x.device, dtype=x.dtype)
    noise = (x + eps * (2 * u - 1)).clamp(0, 1)
    out = _chain(model, x)[1]
    classes = torch.arange(out.shape[1], device=x.device)
    attacked = pgd(model, x.expand(len(classes), *x.shape[1:]), classes, eps, eps / 4, 20, targeted=True,
                   seed=int(seed)) if eps > 0 else x
    acts = interval_bounds(model, torch.cat([noise, attacked]), 0.0, per_layer=True)   # eps 0: the activations
    seen = {name: (a.amax(0) - a.amin(0)).mean().item() for name, a, _ in acts}
    names = list(crown)
    return {"layers": [n.split(".")[-1] for n in names], "ibp": [ibp[n] for n in names],
            "crown": [crown[n] for n in names], "reached": [seen[n] for n in names]}


def _ibp_margin(steps, x, y, eps, create_graph: bool = False):
    """IBP lower bounds on ``z_y - z_k`` with the specification folded into the trailing affine steps
    (differentiable with respect to the parameters when ``create_graph``)."""
    k = steps[-1].out_shape[0]
    c = F.one_hot(y, k).to(x.dtype).unsqueeze(1) - torch.eye(k, dtype=x.dtype, device=x.device).unsqueeze(0)
    boxes = _ibp_all(steps, x, eps)
    start = max([i + 1 for i, s in enumerate(steps) if s.kind != "affine"], default=0)
    return _backward(steps[start:], len(steps) - start, c, {}, boxes[start], create_graph)
