"""Lesson 04's checks accept right answers and reject the plausible wrong ones with the intended message."""
import pytest
import torch

from course_lib import homework as hw
from course_lib.data import add_mark, load_fashion_mnist
from course_lib.explain import grad_cam, occlusion
from course_lib.homework.lesson04 import _grad_cam_inputs
from course_lib.models import load_model


# --------------------------------------------------------------------------- Grad-CAM by hand
def gc_right(a, da):
    alpha = da.mean((2, 3), keepdim=True)
    return (alpha * a).sum(1).clamp_min(0)


def gc_sum(a, da):
    return (da.sum((2, 3), keepdim=True) * a).sum(1).clamp_min(0)


def gc_no_relu(a, da):
    return (da.mean((2, 3), keepdim=True) * a).sum(1)


def gc_abs(a, da):
    return (da.abs().mean((2, 3), keepdim=True) * a).sum(1).clamp_min(0)


def gc_no_pooling(a, da):
    return (da * a).sum(1).clamp_min(0)


def gc_channel_mean(a, da):
    return (da.mean(1, keepdim=True) * a).sum(1).clamp_min(0)


def gc_upsampled(a, da):
    return torch.nn.functional.interpolate(gc_right(a, da)[:, None], size=(28, 28), mode="bilinear")[:, 0]


def gc_in_place(a, da):
    return a.mul_(da.mean((2, 3), keepdim=True)).sum(1).clamp_min(0)


def test_grad_cam_inputs_give_course_libs_grad_cam():
    model = load_model("fashion_cnn")
    x = load_fashion_mnist("test")[0][:3]
    t = torch.tensor([0, 5, 9])
    for layer in ("features", "features.bn4"):
        a, da = _grad_cam_inputs(model, x, t, layer)
        torch.testing.assert_close(gc_right(a, da), grad_cam(model, x, t, layer=layer, upsample=False))
    assert all(p.grad is None for p in model.parameters())


def test_grad_cam_by_hand_accepts(capsys):
    hw.check_grad_cam_by_hand(gc_right)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, match", [
    (gc_sum, "times too large"), (gc_no_relu, "apply the ReLU"), (gc_abs, r"averaged \|dA\|"),
    (gc_no_pooling, "its own gradient"), (gc_channel_mean, "over the channels"), (gc_upsampled, "resolution"),
    (gc_in_place, "in place"), (lambda a, da: gc_right(a, da)[0], "shape"), (lambda a, da: 0.5 * gc_right(a, da),
                                                                               "differs from Grad-CAM"),
])
def test_grad_cam_by_hand_rejects(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_grad_cam_by_hand(fn)


# --------------------------------------------------------------------------- occlusion of one window
def drop_right(model, x, target, top, left, size, baseline=0.5):
    occluded = x.clone()
    occluded[:, :, top:top + size, left:left + size] = baseline
    with torch.no_grad():
        return (model(x) - model(occluded)).gather(1, target[:, None]).squeeze(1)


def drop_reversed(model, x, target, top, left, size, baseline=0.5):
    return -drop_right(model, x, target, top, left, size, baseline)


def drop_probability(model, x, target, top, left, size, baseline=0.5):
    occluded = x.clone()
    occluded[:, :, top:top + size, left:left + size] = baseline
    with torch.no_grad():
        return (model(x).softmax(1) - model(occluded).softmax(1)).gather(1, target[:, None]).squeeze(1)


def drop_black(model, x, target, top, left, size, baseline=0.5):
    return drop_right(model, x, target, top, left, size, 0.0)


def drop_swapped(model, x, target, top, left, size, baseline=0.5):
    return drop_right(model, x, target, left, top, size, baseline)


def drop_in_place(model, x, target, top, left, size, baseline=0.5):
    with torch.no_grad():
        clean = model(x).gather(1, target[:, None]).squeeze(1)
        x[:, :, top:top + size, left:left + size] = baseline
        return clean - model(x).gather(1, target[:, None]).squeeze(1)


def drop_off_by_one(model, x, target, top, left, size, baseline=0.5):
    return drop_right(model, x, target, top, left, size + 1, baseline)


def test_occlusion_drop_accepts(capsys):
    hw.check_occlusion_drop(drop_right)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, match", [
    (drop_reversed, "sign is reversed"), (drop_probability, "softmax probability"), (drop_black, "black"),
    (drop_swapped, "swapped rows and columns"), (drop_in_place, "in place"), (drop_off_by_one, "is wrong"),
    (lambda *a, **k: drop_right(*a, **k)[None], "one drop per image"),
])
def test_occlusion_drop_rejects(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_occlusion_drop(fn)


# --------------------------------------------------------------------------- the most important window
@pytest.fixture(scope="module")
def marked_trouser():
    x, y = load_fashion_mnist("test")
    i = int((y == 1).nonzero()[0])
    return load_model("fashion_marked"), add_mark(x[i:i + 1], y[i:i + 1]), y[i:i + 1]


def _all_drops(model, x, t, size, stride):
    starts = [(r, c) for r in range(0, 28 - size + 1, stride) for c in range(0, 28 - size + 1, stride)]
    batch = x.repeat(len(starts), 1, 1, 1)
    for n, (r, c) in enumerate(starts):
        batch[n, :, r:r + size, c:c + size] = 0.5
    with torch.no_grad():
        drops = model(x)[0, int(t)] - model(batch)[:, int(t)]
    return dict(zip(starts, drops.tolist(), strict=True))


def test_worst_window(marked_trouser, capsys):
    model, x, t = marked_trouser
    drops = _all_drops(model, x, t, 4, 2)
    best, worst = max(drops, key=drops.get), min(drops, key=drops.get)
    # the brute force agrees with course_lib's occlusion (stride = window: one window per pixel)
    ref = occlusion(model, x, t, window=4, stride=4, progress=False)
    for (r, c), d in drops.items():
        if r % 4 == 0 and c % 4 == 0:
            assert abs(float(ref[0, r, c]) - d) < 1e-4
    # the most important window of a marked image is on the mark (the lesson's claim)
    from course_lib.data import MARK_POSITIONS
    mr, mc = MARK_POSITIONS[int(t)]
    assert best[0] <= mr and mr + 2 <= best[0] + 4 and best[1] <= mc and mc + 2 <= best[1] + 4
    hw.check_worst_window(best, model, x, t, size=4, stride=2)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="argmin"):
        hw.check_worst_window(worst, model, x, t, size=4, stride=2)
    if best[0] != best[1]:
        with pytest.raises(AssertionError, match="swapped"):
            hw.check_worst_window(best[::-1], model, x, t, size=4, stride=2)
    with pytest.raises(AssertionError, match="not a window start"):
        hw.check_worst_window((1, 1), model, x, t, size=4, stride=2)
    with pytest.raises(AssertionError, match="pair"):
        hw.check_worst_window(best[0], model, x, t, size=4, stride=2)
    other = next(k for k in drops if k not in (best, worst, best[::-1]))
    with pytest.raises(AssertionError, match="another window"):
        hw.check_worst_window(other, model, x, t, size=4, stride=2)


def test_choice_04():
    hw.check_choice("04_shortcut_evidence", "b")
    with pytest.raises(AssertionError, match="is not it"):
        hw.check_choice("04_shortcut_evidence", "a")
