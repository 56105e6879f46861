"""Claims a lesson's prose makes about its results, checked on the outputs stored in the notebook.

Teaching cells do not assert: an ``assert`` in a lesson is test-harness code that a student has to read past.
A claim the prose makes ("PGD stays below FGSM at every eps", "the patch fools more than half of the photos") is
checked here instead, on the text the lesson printed in its stored run (``make outputs`` rewrites it), next to
the numbers that tests/_prose.py checks. So the code of the lesson must *print* what its claims rest on.

    from _claims import stored, number, numbers

    def test_pgd_below_fgsm():
        out = stored("07")
        fgsm = numbers(out, r"^ +FGSM: +(.*)$")          # one group; a line of numbers becomes a list
        ...

``stored(lesson)`` is the text of every stored output of ``lessons/<lesson>_*.ipynb``; ``number(text, regex)``
the one number its single group captures (every match must capture the same text, as for the prose markers);
``numbers(text, regex)`` every number in that captured text, in order; ``text(out, regex)`` the captured text itself.
"""
from __future__ import annotations

import re
from functools import cache

import nbformat
from _prose import ROOT, outputs_text

# a printed number: optional sign, thousands separators, decimals, an exponent (1.5e-07)
NUMBER = re.compile(r"(?<![\w.])[-\u2212+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?!\w|\.\d)")


@cache
def stored(lesson: str) -> str:
    """The stored output text of the lesson whose file name starts with ``lesson`` (e.g. ``"07"``)."""
    paths = sorted((ROOT / "lessons").glob(f"{lesson}_*.ipynb"))
    assert len(paths) == 1, f"no single lesson starts with {lesson!r}: {paths}"
    return outputs_text(nbformat.read(paths[0], as_version=4))


def _captured(text: str, regex: str) -> str:
    pattern = re.compile(regex, re.M)
    assert pattern.groups == 1, f"the expression needs exactly one group: {regex}"
    found = {m.group(1) for m in pattern.finditer(text)}
    assert found, f"the stored outputs print nothing that matches {regex!r}: run `make outputs`, or fix the regex"
    assert len(found) == 1, f"{regex!r} captures different texts in the stored outputs: {sorted(found)}"
    return found.pop()


def text(out: str, regex: str) -> str:
    """The one text that the single group of ``regex`` captures (e.g. a printed ``True``)."""
    return _captured(out, regex)


def _float(s: str) -> float:
    s = s.replace(",", "").replace("\u2212", "-")
    return float(s)


def numbers(text: str, regex: str) -> list[float]:
    """Every number inside what the single group of ``regex`` captures (a printed row becomes a list)."""
    return [_float(m.group(0)) for m in NUMBER.finditer(_captured(text, regex))]


def number(text: str, regex: str) -> float:
    """The one number that the single group of ``regex`` captures; a trailing % is dropped (no scaling)."""
    got = numbers(text, regex)
    assert len(got) == 1, f"{regex!r} should capture one number, captured {got}"
    return got[0]
