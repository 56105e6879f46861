"""Lesson 09's checks accept right answers and reject the plausible wrong ones with the intended message."""
import pytest
import torch

from course_lib import homework as hw
from course_lib.attacks import boundary_attack, carlini_wagner, hop_skip_jump, noise_start, square_attack
from course_lib.attacks.oracle import Oracle


# --------------------------------------------------------------------------- exercise 1: the symmetric difference
def _f(oracle, rows, y, owner=None):
    logp = oracle(rows, owner=owner, log=True)
    own = logp.gather(1, y[:, None]).squeeze(1)
    return own - logp.scatter(1, y[:, None], float("-inf")).amax(1)


def _probe(x, i, h):
    e = torch.zeros_like(x)
    e.view(-1)[i] = h
    return e


def sd_right(oracle, x, y, i, h):
    e = _probe(x, i, h)
    return ((_f(oracle, x + e, y) - _f(oracle, x - e, y)) / (2 * h)).item()


def sd_right_one_call(oracle, x, y, i, h):
    """Also right: both probes in one call (each row is a query for image 0), a tensor returned."""
    e = _probe(x, i, h)
    f = _f(oracle, torch.cat([x + e, x - e]), y.repeat(2), owner=torch.zeros(2, dtype=torch.long))
    return (f[0] - f[1]) / (2 * h)


def sd_right_logits_gap(oracle, x, y, i, h):
    """Also right: the log-probability margin computed with topk (y is the top class, as for an image to attack)."""
    e = _probe(x, i, h)
    vals = []
    for rows in (x + e, x - e):
        logp = oracle(rows, log=True)[0]
        top2 = logp.topk(2).values
        other = top2[1] if int(logp.argmax()) == int(y) else top2[0]
        vals.append(logp[y[0]] - other)
    return float((vals[0] - vals[1]) / (2 * h))


def sd_by_h(oracle, x, y, i, h):
    return 2 * sd_right(oracle, x, y, i, h)


def sd_forward(oracle, x, y, i, h):
    e = _probe(x, i, h)
    return ((_f(oracle, x + e, y) - _f(oracle, x, y)) / h).item()


def sd_backward(oracle, x, y, i, h):
    e = _probe(x, i, h)
    return ((_f(oracle, x, y) - _f(oracle, x - e, y)) / h).item()


def sd_flipped(oracle, x, y, i, h):
    return -sd_right(oracle, x, y, i, h)


def sd_probabilities(oracle, x, y, i, h):
    e = _probe(x, i, h)

    def f(rows):
        p = oracle(rows)
        return p.gather(1, y[:, None]).squeeze(1) - p.scatter(1, y[:, None], float("-inf")).amax(1)

    return ((f(x + e) - f(x - e)) / (2 * h)).item()


def sd_max_all(oracle, x, y, i, h):
    e = _probe(x, i, h)

    def f(rows):
        logp = oracle(rows, log=True)
        return logp.gather(1, y[:, None]).squeeze(1) - logp.amax(1)

    return ((f(x + e) - f(x - e)) / (2 * h)).item()


def sd_three_queries(oracle, x, y, i, h):
    _f(oracle, x, y)  # a look at x itself "to be safe"
    return sd_right(oracle, x, y, i, h)


def sd_in_place(oracle, x, y, i, h):
    x.view(-1)[i] += h
    fp = _f(oracle, x, y)
    x.view(-1)[i] -= 2 * h
    fm = _f(oracle, x, y)
    return ((fp - fm) / (2 * h)).item()


def sd_model(oracle, x, y, i, h):
    """The model instead of the oracle (a white-box attacker's habit)."""
    from course_lib.models import load_model

    model = load_model("mnist_cnn").to(x.dtype)
    e = _probe(x, i, h)
    with torch.no_grad():
        logp = model(torch.cat([x + e, x - e])).log_softmax(1)
    f = logp[:, y[0]] - logp.scatter(1, y.repeat(2)[:, None], float("-inf")).amax(1)
    return float((f[0] - f[1]) / (2 * h))


def sd_off(oracle, x, y, i, h):
    return sd_right(oracle, x, y, i, h) + 0.1


@pytest.mark.parametrize("fn", [sd_right, sd_right_one_call, sd_right_logits_gap])
def test_symmetric_difference_accepts_right_answers(fn, capsys):
    hw.check_symmetric_difference(fn)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, message", [
    (sd_by_h, "divided by h"),
    (sd_forward, "one-sided \\(forward\\)"),
    (sd_backward, "one-sided \\(backward\\)"),
    (sd_flipped, "sign is flipped"),
    (sd_probabilities, "probabilities"),
    (sd_max_all, "max over all classes"),
    (sd_three_queries, "spent 3 queries"),
    (sd_in_place, "in place"),
    (sd_model, "never asked the oracle"),
    (sd_off, "the symmetric difference"),
])
def test_symmetric_difference_rejects_wrong_answers(fn, message):
    with pytest.raises(AssertionError, match=message):
        hw.check_symmetric_difference(fn)


# --------------------------------------------------------------------------- exercise 2: one Boundary step
def _d(t):
    return t.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


def _eta(x, x_adv, delta):
    diff = x_adv - x
    u = diff / _d(diff)
    eta = torch.randn_like(x)
    eta = eta - u * (eta * u).flatten(1).sum(1).view(-1, 1, 1, 1)
    return eta * delta * _d(diff) / _d(eta)


def step_right(x, x_adv, delta, epsilon):
    d = _d(x_adv - x)
    eta = _eta(x, x_adv, delta)
    x_s = x + (x_adv + eta - x) * d / _d(x_adv + eta - x)
    return eta, x_s, x_s + epsilon * (x - x_s)


def step_right_clipped_loop(x, x_adv, delta, epsilon):
    """Also right: one image at a time, the library's clip to [0, 1] (which does not bite on the check's points)."""
    outs = []
    for xo, xa in zip(x, x_adv, strict=True):
        diff = (xa - xo).flatten()
        d = diff.norm()
        eta = torch.randn(diff.numel())
        eta -= (eta @ diff) / d ** 2 * diff
        eta *= delta * d / eta.norm()
        on = diff + eta
        x_s = (xo.flatten() + on * d / on.norm()).clamp(0, 1)
        x_new = (x_s + epsilon * (xo.flatten() - x_s)).clamp(0, 1)
        outs.append([t.view_as(xo) for t in (eta, x_s, x_new)])
    return tuple(torch.stack(ts) for ts in zip(*outs, strict=True))


def step_library(x, x_adv, delta, epsilon):
    """course_lib's own proposal (x_s and x_new; eta recovered from x_s): the library satisfies the definition."""
    from course_lib.attacks.boundary import _propose

    b = x.shape[0]
    x_s, x_new = _propose(x, x_adv, torch.full((b,), float(delta)), torch.full((b,), float(epsilon)),
                          torch.Generator().manual_seed(int(torch.randint(0, 10_000, (1,)))))
    d = _d(x_adv - x)
    v = x_s - x
    u = (x_adv - x) / d
    along = (v * u).flatten(1).sum(1).view(-1, 1, 1, 1)
    eta = (v - along * u) * d / along
    return eta, x_s, x_new


def step_not_orthogonal(x, x_adv, delta, epsilon):
    d = _d(x_adv - x)
    eta = torch.randn_like(x)
    eta = eta * delta * d / _d(eta)
    x_s = x + (x_adv + eta - x) * d / _d(x_adv + eta - x)
    return eta, x_s, x_s + epsilon * (x - x_s)


def step_scale_delta(x, x_adv, delta, epsilon):
    eta = _eta(x, x_adv, delta)
    eta = eta * delta / _d(eta)
    d = _d(x_adv - x)
    x_s = x + (x_adv + eta - x) * d / _d(x_adv + eta - x)
    return eta, x_s, x_s + epsilon * (x - x_s)


def step_batch_norm(x, x_adv, delta, epsilon):
    diff = x_adv - x
    d = diff.norm()  # over the whole batch
    eta = _eta(x, x_adv, delta)
    eta = eta * delta * d / _d(eta)
    x_s = x + (x_adv + eta - x) * d / (x_adv + eta - x).norm()
    return eta, x_s, x_s + epsilon * (x - x_s)


def step_no_rescale(x, x_adv, delta, epsilon):
    eta = _eta(x, x_adv, delta)
    x_s = x_adv + eta
    return eta, x_s, x_s + epsilon * (x - x_s)


def step_away(x, x_adv, delta, epsilon):
    eta, x_s, _ = step_right(x, x_adv, delta, epsilon)
    return eta, x_s, x_s - epsilon * (x - x_s)


def step_from_adv(x, x_adv, delta, epsilon):
    eta, x_s, _ = step_right(x, x_adv, delta, epsilon)
    return eta, x_s, x_adv + epsilon * (x - x_adv)


def step_old_direction(x, x_adv, delta, epsilon):
    eta, x_s, _ = step_right(x, x_adv, delta, epsilon)
    return eta, x_s, x_s + epsilon * (x - x_adv)


def step_epsilon_left(x, x_adv, delta, epsilon):
    eta, x_s, _ = step_right(x, x_adv, delta, epsilon)
    return eta, x_s, x + epsilon * (x_s - x)


def step_same_noise(x, x_adv, delta, epsilon):
    torch.manual_seed(0)
    return step_right(x, x_adv, delta, epsilon)


def step_in_place(x, x_adv, delta, epsilon):
    eta, x_s, x_new = step_right(x, x_adv, delta, epsilon)
    x_adv.copy_(x_new)
    return eta, x_s, x_new


def step_two_outputs(x, x_adv, delta, epsilon):
    return step_right(x, x_adv, delta, epsilon)[1:]


@pytest.mark.parametrize("fn", [step_right, step_right_clipped_loop, step_library])
def test_boundary_step_accepts_right_answers(fn, capsys):
    hw.check_boundary_step(fn)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, message", [
    (step_not_orthogonal, "not orthogonal"),
    (step_scale_delta, "is delta"),
    (step_batch_norm, "whole batch"),
    (step_no_rescale, "sqrt\\(1 \\+ delta\\^2\\)"),
    (step_away, "away from x"),
    (step_from_adv, "instead of x_s"),
    (step_old_direction, "segment from x_s to x"),
    (step_epsilon_left, "fraction of the way"),
    (step_same_noise, "same eta"),
    (step_in_place, "in place"),
    (step_two_outputs, "three tensors"),
])
def test_boundary_step_rejects_wrong_answers(fn, message):
    with pytest.raises(AssertionError, match=message):
        hw.check_boundary_step(fn)


# --------------------------------------------------------------------------- exercise 3: the query budget
def budget_hsj(oracle, x, y):
    return hop_skip_jump(oracle, x, y, max_queries=hw.BUDGET_QUERIES, seed=0, progress=False)


def test_budget_attack_accepts_hop_skip_jump(capsys):
    hw.check_budget_attack(budget_hsj)
    assert "correct" in capsys.readouterr().out


def budget_over(oracle, x, y):
    """A hand-written search that does not count: 1,001 probes of each digit, sent in one call."""
    n = hw.BUDGET_QUERIES + 1
    oracle(x.repeat(n, 1, 1, 1), owner=torch.arange(len(x)).repeat(n))
    return x


def budget_white_box(oracle, x, y):
    """White-box C&W on a model of one's own, then one 'confirming' query per digit of the start image."""
    from course_lib.models import load_model

    oracle(x)
    return carlini_wagner(load_model("mnist_cnn"), x, y, c=1.0, binary_search_steps=2, steps=20, lr=0.05)


def budget_other_oracle(oracle, x, y):
    """A fresh oracle of one's own (on the model the student has), not the one handed over."""
    from course_lib.models import load_model

    return noise_start(Oracle(load_model("mnist_cnn"), "labels"), x, y, max_queries=50, seed=0)


def budget_in_place(oracle, x, y):
    adv = noise_start(oracle, x, y, max_queries=50, seed=0)
    x.copy_(adv)
    return adv


def budget_start_only(oracle, x, y):
    """A decision-based attack's start only: noise and a few bisection steps, far from the digits."""
    return boundary_attack(oracle, x, y, max_queries=40, seed=0, progress=False)


def budget_square(oracle, x, y):
    return square_attack(oracle, x, y, eps=0.1, max_queries=hw.BUDGET_QUERIES, seed=0, progress=False)


def budget_nothing(oracle, x, y):
    oracle(x)
    return x.clone()


def budget_out_of_range(oracle, x, y):
    return noise_start(oracle, x, y, max_queries=50, seed=0) * 2 - 0.5


@pytest.mark.parametrize("fn, message", [
    (budget_over, "more than 1000 queries"),
    (budget_white_box, "not found through the oracle"),
    (budget_other_oracle, "never asked the oracle"),
    (budget_in_place, "in place"),
    (budget_start_only, "target is below"),
    (budget_square, "target is below"),
    (budget_nothing, "none of the six digits"),
    (budget_out_of_range, "valid images"),
])
def test_budget_attack_rejects_wrong_answers(fn, message):
    with pytest.raises(AssertionError, match=message):
        hw.check_budget_attack(fn)


def test_budget_digits_are_fixed_and_classified_correctly():
    x, y = hw.budget_digits()
    assert x.shape == (6, 1, 28, 28) and y.tolist() == [0, 2, 3, 4, 6, 7]
    from course_lib.models import load_model

    with torch.no_grad():
        assert (load_model("mnist_cnn")(x).argmax(1) == y).all()


# --------------------------------------------------------------------------- multiple choice
def test_questions_are_registered():
    for key, right in (("09_noise_baseline", "b"), ("09_eights", "c")):
        options, correct, explanation = hw.QUESTIONS[key]
        assert correct == right and correct in options and explanation
        hw.check_choice(key, right)
        with pytest.raises(AssertionError):
            hw.check_choice(key, "a")
