"""check_distillation_loss accepts the definition written as a cross-entropy or as a KL divergence, and names each
plausible slip."""
import pytest
import torch
import torch.nn.functional as F

import course_lib.homework as hw


def right_ce(s, t, T):
    return T ** 2 * -(F.softmax(t.detach() / T, 1) * F.log_softmax(s / T, 1)).sum(1).mean()


def right_kl(s, t, T):  # differs from the cross-entropy by the teacher's entropy: the same gradient
    return T ** 2 * F.kl_div(F.log_softmax(s / T, 1), F.softmax(t.detach() / T, 1), reduction="batchmean")


@pytest.mark.parametrize("fn", [right_ce, right_kl])
def test_right_answers_pass(fn, capsys):
    hw.check_distillation_loss(fn)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, match", [
    (lambda s, t, T: -(F.softmax(t.detach() / T, 1) * F.log_softmax(s / T, 1)).sum(1).mean(), "T\\^2"),
    (lambda s, t, T: T ** 2 * -(F.softmax(t.detach() / T, 1) * F.log_softmax(s, 1)).sum(1).mean(), "only the teacher"),
    (lambda s, t, T: T ** 2 * -(F.softmax(t.detach(), 1) * F.log_softmax(s / T, 1)).sum(1).mean(), "only the student"),
    (lambda s, t, T: T ** 2 * F.cross_entropy(s / T, t.argmax(1)), "hard labels"),
    (lambda s, t, T: T ** 2 * -(F.softmax(t.detach() / T, 1) * F.log_softmax(s / T, 1)).sum(), "summed"),
    (lambda s, t, T: T ** 2 * -(F.softmax(t / T, 1) * F.log_softmax(s / T, 1)).sum(1).mean(), "teacher's logits"),
    (lambda s, t, T: torch.tensor(0.0, requires_grad=True) * 1, "differs"),
    (lambda s, t, T: right_ce(s, t, T).item(), "0-dim tensor"),
])
def test_slips_are_named(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_distillation_loss(fn)
