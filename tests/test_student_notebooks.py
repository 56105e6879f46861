"""The student versions of `make homework` (scripts/make_homework.py), without nbgrader.

- A student version is its lesson with each solution replaced by a placeholder and nothing else changed, so the
  completed notebook is the lesson, which `make test` runs under `pytest --nbval-lax` (pyproject's addopts).
- An untouched exercise fails its check with a message written for the student: "not answered yet" (an answer
  still `...`) or "not written yet" (a function still raising NotImplementedError), never a NameError or a bare
  NotImplementedError from inside course_lib. Shown for every check function directly, and end to end on two
  lessons run top to bottom in a kernel (the fastest ones; nbgrader's autograde runs lesson 14's release in
  tests/test_nbgrader.py).
"""
from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib import homework as hw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from nbtools import BEGIN, END, strip_solutions  # noqa: E402

LESSONS = sorted((ROOT / "lessons").glob("[0-9]*.ipynb"))
#: lessons run top to bottom as students get them (9 s and 23 s as lessons; between them every kind of check:
#: a function, a value, multiple choice)
RUN = ["01_interpretability.ipynb", "08_carlini_wagner.ipynb"]
SOLUTION = re.compile(rf"^([ \t]*){re.escape(BEGIN)}.*?^[ \t]*{re.escape(END)}[^\n]*", re.S | re.M)
PLACEHOLDER = re.compile(r"^([ \t]*)# YOUR CODE HERE.*?^\1raise NotImplementedError\(\)[^\n]*|YOUR ANSWER HERE",
                         re.S | re.M)
FOR_STUDENTS = ("not answered yet", "not written yet")


def student(path: Path):
    nb = nbformat.read(path, as_version=4)
    strip_solutions(nb, stubs=True)
    return nb


def is_check(cell) -> bool:
    md = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and md.get("grade") and not md.get("solution")


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_the_completed_student_notebook_is_the_lesson(path):
    """Cell by cell, the student version equals the lesson outside the solutions: a student who writes the
    solution in each placeholder has the lesson, whose run under --nbval-lax is part of `make test`."""
    lesson, stud = nbformat.read(path, as_version=4), student(path)
    assert len(lesson.cells) == len(stud.cells)
    for i, (a, b) in enumerate(zip(lesson.cells, stud.cells, strict=True)):
        assert a.cell_type == b.cell_type
        assert SOLUTION.sub("<answer>", a.source) == PLACEHOLDER.sub("<answer>", b.source), f"{path.name}, cell {i}"
        if is_check(a):
            assert a.source == b.source, f"{path.name}, cell {i}: a check cell changed"
    assert len(SOLUTION.findall("\n".join(c.source for c in lesson.cells))) == \
        len(PLACEHOLDER.findall("\n".join(c.source for c in stud.cells)))


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_no_solution_text_survives_in_the_student_version(path):
    """Every line of every solution block (12 characters or more, and not also shown outside the solutions, as
    a hint may be) is gone from the student version; no output of an exercise or check cell is left."""
    from test_nbgrader import _solution_lines

    stud = student(path)
    text = "\n".join(c.source for c in stud.cells)
    assert BEGIN not in text and END not in text
    lines = _solution_lines(path)
    assert lines, f"{path.name}: no solution line found to look for"
    left = [ln for ln in lines if ln in text
            and not re.fullmatch(r"def \w+\(.*\):", ln)]    # a function's signature is kept as its stub
    assert not left, f"{path.name}: solution text survives in the student version: {left[:3]}"
    for c in stud.cells:
        if c.cell_type == "code" and c.metadata.get("nbgrader"):
            assert not c.outputs


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_student_code_cells_are_python_and_name_what_the_checks_use(path):
    """Every code cell of the student version compiles, and a top-level answer keeps its names as `name = ...`
    (or a function stub) before the raise, so its check finds them."""
    for i, cell in enumerate(student(path).cells):
        if cell.cell_type != "code":
            continue
        code = "\n".join(ln for ln in cell.source.splitlines() if not ln.lstrip().startswith(("%", "!")))
        compile(code, f"{path.name} cell {i}", "exec")
    lesson = nbformat.read(path, as_version=4)
    for a, b in zip(lesson.cells, student(path).cells, strict=True):
        for m in SOLUTION.finditer(a.source):
            if m.group(1):       # inside a function: the def line stays outside the solution
                continue
            for name in re.findall(r"^(\w+)\s*=(?!=)", m.group(0), re.M):
                assert re.search(rf"^{name} = \.\.\.$", b.source, re.M), f"{path.name}: no stub for {name}"
            for name in re.findall(r"^def (\w+)\(", m.group(0), re.M):
                assert re.search(rf"^def {name}\(.*\):\n    raise NotImplementedError\(\)$", b.source, re.M)


def test_stubs_keep_names_and_signatures():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        f"x = 1\n{BEGIN}\nanswer_a = 'b'\nw, (h, k) = 1, (2, 3)\ndef f(x, k=2, *, y=None):\n    return x\n{END}\n"
        "print(answer_a)"),
        nbformat.v4.new_code_cell(f"def g(x):\n    {BEGIN}\n    z = 2 * x\n    return z\n    {END}\n")]
    strip_solutions(nb, stubs=True)
    top, inner = nb.cells[0].source, nb.cells[1].source
    assert "answer_a = ...\nw = ...\nh = ...\nk = ...\ndef f(x, k=2, *, y=None):\n    raise NotImplementedError()\n" \
        "raise NotImplementedError()\nprint(answer_a)" in top
    assert "write each function's body and replace each ... by your answer" in top
    assert "'b'" not in top and "return x" not in top
    assert inner == "def g(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"   # no stubs inside a def
    plain = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"{BEGIN}\nanswer = 1\n{END}")])
    strip_solutions(plain)                                      # nbgrader's placeholder unless stubs are asked
    assert plain.cells[0].source == "# YOUR CODE HERE\nraise NotImplementedError()"


CHECKS = sorted(n for n in hw.__all__ if n.startswith("check_"))


@pytest.mark.parametrize("name", CHECKS)
def test_every_check_says_not_answered_yet_to_a_placeholder(name):
    """Every check, given the student version's placeholder `...` for each argument, says so (and which argument)
    instead of failing somewhere inside."""
    check = getattr(hw, name)
    params = [p for p in inspect.signature(check).parameters.values()
              if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    args = ["01_occlusion_access" if name == "check_choice" and p.name == "key" else ... for p in params]
    with pytest.raises(AssertionError, match="not answered yet"):
        check(*args)


def test_a_function_that_still_raises_is_not_written_yet():
    def untouched(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match=r"not written yet: your function still raises NotImplementedError\."):
        hw.check_interval_layer(untouched)
    with pytest.raises(AssertionError, match="not written yet"):
        hw.check_gaussian_noise(untouched)
    # a wrong answer still gets the check's own message, and a right one still passes
    with pytest.raises(AssertionError) as err:
        hw.check_interval_layer(lambda W, b, lo, hi: (lo, hi))
    assert not str(err.value).startswith(FOR_STUDENTS)


@pytest.mark.parametrize("name", RUN)
def test_an_untouched_student_notebook_fails_its_checks_with_messages_for_students(name):
    from nbclient import NotebookClient

    nb = student(ROOT / "lessons" / name)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(ROOT / "lessons")}}).execute()
    checks = [(i, c) for i, c in enumerate(nb.cells) if is_check(c)]
    assert len(checks) >= 2
    for i, cell in checks:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert errors, f"{name}, check cell {i}: an untouched exercise passed its check"
        e = errors[0]
        assert e.ename == "AssertionError" and e.evalue.startswith(FOR_STUDENTS), (
            f"{name}, check cell {i}: {e.ename}: {e.evalue[:300]}")
    # the lesson runs as usual up to its first exercise; the first error is that exercise's placeholder (its
    # NotImplementedError, or, when the cell only defines the function, its check's "not written yet")
    first = min(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "YOUR CODE HERE" in c.source)
    errors = [(i, o.ename) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    i, ename = errors[0]
    assert i >= first and any(o.outputs for o in nb.cells[:first] if o.cell_type == "code")
    assert (i == first and ename == "NotImplementedError") or (is_check(nb.cells[i]) and ename == "AssertionError"), (
        f"{name}: the first error is {ename} in cell {i}, the first exercise is cell {first}")
