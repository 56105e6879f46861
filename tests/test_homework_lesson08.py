"""Lesson 08's checks accept right answers and reject the plausible wrong ones with the intended message."""
import pytest
import torch

from course_lib import homework as hw


# --------------------------------------------------------------------------- the objective f
def _split(z, t):
    z_t = z.gather(1, t[:, None]).squeeze(1)
    others = z.scatter(1, t[:, None], float("-inf")).amax(1)
    return z_t, others


def f_right(z, t, kappa):
    z_t, others = _split(z, t)
    return torch.clamp(others - z_t, min=-kappa)


def f_right_loop(z, t, kappa):
    """A different but correct formulation: a Python loop and a boolean mask."""
    out = []
    for row, target in zip(z, t, strict=True):
        keep = torch.ones_like(row, dtype=torch.bool)
        keep[target] = False
        out.append(torch.maximum(row[keep].max() - row[target], torch.tensor(-kappa, dtype=row.dtype)))
    return torch.stack(out)


def f_right_log_softmax(z, t, kappa):
    """Log-probabilities differ from the logits by one constant per row: the differences, hence f, are equal."""
    return f_right(z.log_softmax(1), t, kappa)


def f_sign(z, t, kappa):
    z_t, others = _split(z, t)
    return torch.clamp(z_t - others, min=-kappa)


def f_zero_floor(z, t, kappa):
    z_t, others = _split(z, t)
    return torch.clamp(others - z_t, min=0.0)


def f_no_clamp(z, t, kappa):
    z_t, others = _split(z, t)
    return others - z_t


def f_plus_kappa(z, t, kappa):
    z_t, others = _split(z, t)
    return torch.clamp(others - z_t, min=kappa)


def f_max_all(z, t, kappa):
    z_t, _ = _split(z, t)
    return torch.clamp(z.amax(1) - z_t, min=-kappa)


def f_zero_mask(z, t, kappa):
    onehot = torch.nn.functional.one_hot(t, z.shape[1]).to(z.dtype)
    z_t = (onehot * z).sum(1)
    return torch.clamp(((1 - onehot) * z).amax(1) - z_t, min=-kappa)


def f_probabilities(z, t, kappa):
    return f_right(z.softmax(1), t, kappa)


def f_mean(z, t, kappa):
    return f_right(z, t, kappa).mean()


def f_in_place(z, t, kappa):
    z_t = z.gather(1, t[:, None]).squeeze(1)
    z[torch.arange(len(t)), t] = float("-inf")
    return torch.clamp(z.amax(1) - z_t, min=-kappa)


def f_off(z, t, kappa):
    return f_right(z, t, kappa) + 0.1


@pytest.mark.parametrize("fn", [f_right, f_right_loop, f_right_log_softmax])
def test_objective_accepts_right_answers(fn, capsys):
    hw.check_cw_objective(fn)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, message", [
    (f_sign, "sign is flipped"),
    (f_zero_floor, "never goes below 0"),
    (f_no_clamp, "nothing is clamped"),
    (f_plus_kappa, r"\+kappa"),
    (f_max_all, "never goes below 0"),
    (f_zero_mask, "masked the target logit with 0"),
    (f_probabilities, "softmax probabilities"),
    (f_mean, "one value per image"),
    (f_in_place, "in place"),
    (f_off, "the definition gives"),
])
def test_objective_rejects_wrong_answers(fn, message):
    with pytest.raises(AssertionError, match=message):
        hw.check_cw_objective(fn)


# --------------------------------------------------------------------------- the tanh change of variables
def from_w_right(w):
    return (torch.tanh(w) + 1) / 2


def to_w_right(x):
    return torch.atanh((2 * x - 1) * (1 - 1e-6))


def to_w_clamped_argument(x):
    """Also right: clamp the argument of atanh instead of scaling it."""
    return torch.atanh((2 * x - 1).clamp(-1 + 1e-6, 1 - 1e-6))


def to_w_library(x):
    """The shrink factor course_lib.attacks.carlini_wagner uses."""
    from course_lib.attacks.cw import _SQUASH

    return torch.atanh(((2 * x - 1) * _SQUASH).clamp(-_SQUASH, _SQUASH))


def to_w_no_clip(x):
    return torch.atanh(2 * x - 1)


def to_w_float32_rounding(x):
    return torch.atanh((2 * x - 1) * (1 - 1e-8))


def to_w_clamp_after(x):
    return torch.atanh(2 * x - 1).clamp(-20, 20)


def to_w_too_much(x):
    return torch.atanh((2 * x - 1) * 0.99)


def to_w_not_inverse(x):
    return torch.atanh((x * (1 - 1e-6)).clamp(-1 + 1e-6, 1 - 1e-6))


def to_w_in_place(x):
    x.mul_(2).sub_(1).mul_(1 - 1e-6)
    return torch.atanh(x)


def from_w_tanh_only(w):
    return torch.tanh(w)


def from_w_sigmoid(w):
    return torch.sigmoid(w)


def from_w_clip(w):
    return w.clamp(0, 1)


@pytest.mark.parametrize("to_w", [to_w_right, to_w_clamped_argument, to_w_library])
def test_tanh_box_accepts_right_answers(to_w, capsys):
    hw.check_tanh_box(to_w, from_w_right)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("to_w, from_w, message", [
    (to_w_no_clip, from_w_right, "infinite w"),
    (to_w_float32_rounding, from_w_right, "1 - 1e-8 == 1"),
    (to_w_clamp_after, from_w_right, "frozen"),
    (to_w_too_much, from_w_right, "round trip"),
    (to_w_not_inverse, from_w_right, "round trip"),
    (to_w_in_place, from_w_right, "in place"),
    (to_w_right, from_w_tanh_only, "below 0"),
    (to_w_right, from_w_sigmoid, "sigmoid"),
    (to_w_right, from_w_clip, r"\(tanh\(w\) \+ 1\) / 2"),
])
def test_tanh_box_rejects_wrong_answers(to_w, from_w, message):
    with pytest.raises(AssertionError, match=message):
        hw.check_tanh_box(to_w, from_w)


# --------------------------------------------------------------------------- multiple choice
def test_questions_are_registered():
    for key in ("08_larger_c", "08_kappa_transfer"):
        options, correct, explanation = hw.QUESTIONS[key]
        assert correct in options and explanation
    hw.check_choice("08_larger_c", "b")
    with pytest.raises(AssertionError):
        hw.check_choice("08_larger_c", "a")
    hw.check_choice("08_kappa_transfer", "c")
    with pytest.raises(AssertionError):
        hw.check_choice("08_kappa_transfer", "a")


# --------------------------------------------------------------------------- one step of the search over c
def update_right(c, lower, upper, success):
    """The lesson's solution."""
    upper = torch.where(success, torch.minimum(upper, c), upper)
    lower = torch.where(success, lower, torch.maximum(lower, c))
    c = torch.where(torch.isinf(upper), c * 10, (lower + upper) / 2)
    return c, lower, upper


def update_right_masks(c, lower, upper, success):
    """Also right: boolean-mask assignments on clones, isfinite instead of isinf."""
    c, lower, upper = c.clone(), lower.clone(), upper.clone()
    upper[success] = torch.minimum(upper[success], c[success])
    lower[~success] = torch.maximum(lower[~success], c[~success])
    known = torch.isfinite(upper)
    c[known] = (lower[known] + upper[known]) / 2
    c[~known] = c[~known] * 10
    return c, lower, upper


def update_library(c, lower, upper, success):
    from course_lib.attacks._search import ConstantSearch
    s = ConstantSearch(1.0, len(c), dtype=c.dtype)
    s.c, s.lower, s.upper = c.clone(), lower.clone(), upper.clone()
    s.update(success)
    return s.c, s.lower, s.upper


def update_wrong_way(c, lower, upper, success):
    return update_right(c, lower, upper, ~success)


def update_no_free_case(c, lower, upper, success):
    upper = torch.where(success, torch.minimum(upper, c), upper)
    lower = torch.where(success, lower, torch.maximum(lower, c))
    return (lower + upper) / 2, lower, upper


def update_times_two(c, lower, upper, success):
    upper = torch.where(success, torch.minimum(upper, c), upper)
    lower = torch.where(success, lower, torch.maximum(lower, c))
    return torch.where(torch.isinf(upper), c * 2, (lower + upper) / 2), lower, upper


def update_grow_on_every_failure(c, lower, upper, success):
    upper = torch.where(success, torch.minimum(upper, c), upper)
    lower = torch.where(success, lower, torch.maximum(lower, c))
    return torch.where(success, (lower + upper) / 2, c * 10), lower, upper


def update_all_alike(c, lower, upper, success):
    return update_right(c, lower, upper, success.all().expand_as(success))


def update_any_alike(c, lower, upper, success):
    return update_right(c, lower, upper, success.any().expand_as(success))


def update_in_place(c, lower, upper, success):
    upper[success] = torch.minimum(upper[success], c[success])
    lower[~success] = torch.maximum(lower[~success], c[~success])
    return torch.where(torch.isinf(upper), c * 10, (lower + upper) / 2), lower, upper


def update_scalar(c, lower, upper, success):
    c, lower, upper = update_right(c, lower, upper, success)
    return c.mean(), lower, upper


@pytest.mark.parametrize("fn", [update_right, update_right_masks, update_library])
def test_c_update_accepts_right_answers(fn, capsys):
    hw.check_c_update(fn)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, message", [
    (update_wrong_way, "wrong way round"),
    (update_no_free_case, "inf or nan"),
    (update_times_two, "multiplies c by 10 until the first success"),
    (update_grow_on_every_failure, "must bisect"),
    (update_all_alike, "every image alike"),
    (update_any_alike, "every image alike"),
    (update_in_place, "in place"),
    (update_scalar, "one value per image"),
])
def test_c_update_rejects_wrong_answers(fn, message):
    with pytest.raises(AssertionError, match=message):
        hw.check_c_update(fn)
