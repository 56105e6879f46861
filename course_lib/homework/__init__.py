"""Checks that the lessons' "your turn" cells call: ``course_lib.homework.check_...``.

Each ``check_*`` raises ``AssertionError`` with a message that says what is wrong (and usually why), and
prints a one-line confirmation when the answer is right. They test behaviour, not code: a correct
answer written differently passes, and the plausible wrong answers a student might write are rejected.

One module per lesson (``lesson00.py``, ``lesson01.py``, ...); everything is re-exported here, and the
multiple-choice questions of every lesson are merged into :data:`QUESTIONS` for :func:`check_choice`.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil

from ._common import _ok, _require


def _for_students(check):
    """``check`` with the two states of an untouched exercise turned into messages for the student: an argument
    that is still the placeholder ``...`` of the student version, and a function of the student's that still raises
    ``NotImplementedError`` (both as ``AssertionError``, like every other failed check)."""
    sig = inspect.signature(check)

    @functools.wraps(check)
    def run(*args, **kwargs):
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{check.__name__}{sig}: {e}") from None
        for name, value in bound.arguments.items():
            if value is Ellipsis:
                which = f" (question {bound.arguments['key']!r})" if "key" in bound.arguments else ""
                raise AssertionError(f"not answered yet{which}: the {name!r} you passed to {check.__name__} is still "
                                     "the placeholder `...`. Replace it by your answer in the exercise cell above and "
                                     "delete the line `raise NotImplementedError()`, then run that cell and this one")
        try:
            return check(*args, **kwargs)
        except NotImplementedError as e:
            detail = f" (its message: {e})" if str(e) else ""
            raise AssertionError(f"not written yet: your function still raises NotImplementedError{detail}. Write "
                                 "its body in the exercise cell above, in place of `raise NotImplementedError()`, "
                                 "then run that cell and this one") from None
    return run


QUESTIONS: dict = {}
__all__ = ["check_choice", "QUESTIONS"]

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("lesson"):
        continue
    _mod = importlib.import_module(f"{__name__}.{_info.name}")
    for _name in getattr(_mod, "__all__", []):
        if _name == "QUESTIONS":
            continue
        _obj = getattr(_mod, _name)
        globals()[_name] = _for_students(_obj) if _name.startswith("check_") and callable(_obj) else _obj
        __all__.append(_name)
    for _key, _q in getattr(_mod, "QUESTIONS", {}).items():
        if _key in QUESTIONS:
            raise RuntimeError(f"question {_key!r} is defined twice (in {_info.name})")
        QUESTIONS[_key] = _q


#: Wrong answers given so far in this kernel, per question (see :func:`check_choice`).
_MISSED: dict = {}


def check_choice(key: str, answer: str) -> None:
    """A multiple-choice question from :data:`QUESTIONS`: ``answer`` must be the right option.

    One attempt per question and kernel: with two or three options, trying them in turn would always end in a
    "correct". A wrong answer is told so together with the right one and the reason; the question then stays
    missed for the rest of the session (a later right answer is acknowledged but still fails the check, so a
    grader running the notebook once and a student re-running the cell see the same result). An answer that is
    not one of the options (a typo) costs no attempt. Restarting the kernel resets the record.
    """
    if key not in QUESTIONS:
        raise KeyError(f"unknown question {key!r}")
    options, correct, explanation = QUESTIONS[key]
    _require(isinstance(answer, str) and answer.strip().lower() in options,
             f"answer with one of {list(options)} (a string), got {answer!r}")
    given = answer.strip().lower()
    if key in _MISSED:
        raise AssertionError(f"question {key!r} was already answered with {_MISSED[key]!r}; one attempt per question. "
                             + ("You have it now: " if given == correct else f"The answer is {correct!r}: ")
                             + explanation)
    if given != correct:
        _MISSED[key] = given
        raise AssertionError(f"{answer!r} is not it. The answer is {correct!r}: {explanation} "
                             "(One attempt per question: this one stays missed until the kernel restarts.)")
    _ok(f"{correct}. {explanation}")


check_choice = _for_students(check_choice)
