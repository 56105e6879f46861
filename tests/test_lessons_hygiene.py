"""Committed lessons are clean (no stored errors, widget state or machine paths; PNG figures; contiguous
counts) and have the course's shape (goals, exercises with checks, references). nbval runs them separately."""
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from nbtools import clean, problems, strip_solutions  # noqa: E402

LESSONS = sorted((ROOT / "lessons").glob("*.ipynb"))


def test_there_are_lessons():
    assert LESSONS and all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", p.name) for p in LESSONS)


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_is_clean(path):
    nb = nbformat.read(path, as_version=4)
    assert problems(nb) == [], f"{path.name}: run `make outputs` ({problems(nb)})"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_has_the_course_shape(path):
    nb = nbformat.read(path, as_version=4)
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown").lower()
    for heading in ["learning goals", "your turn", "summary", "references"]:
        assert heading in md, f"{path.name} has no '{heading}' section"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "%matplotlib inline" in code[0].source + code[1].source
    solutions = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "### BEGIN SOLUTION" in c.source]
    assert len(solutions) >= 2, "at least two exercises with a solution between the markers"
    for i in solutions:
        after = [c for c in nb.cells[i + 1:] if c.cell_type == "code"][:1]
        assert after and "check_" in after[0].source, f"cell {i}: a solution must be followed by a check cell"
    assert any(c.cell_type == "code" and c.outputs and any(o.get("data", {}).get("image/png") for o in c.outputs)
               for c in nb.cells), "a lesson shows at least one figure"


def make_nb():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("Q?\n\n### BEGIN SOLUTION\nThe answer.\n### END SOLUTION"),
        nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n",
                                  execution_count=3, outputs=[nbformat.v4.new_output("stream", text="hi")]),
        nbformat.v4.new_code_cell("check(f)", execution_count=7),
    ]
    return nb


def test_strip_solutions_removes_answers_and_keeps_checks():
    nb = make_nb()
    assert strip_solutions(nb) == 2
    assert "The answer" not in nb.cells[0].source and "YOUR ANSWER HERE" in nb.cells[0].source
    assert "2 * x" not in nb.cells[1].source and "    raise NotImplementedError()" in nb.cells[1].source
    assert nb.cells[1].outputs == [] and nb.cells[2].source == "check(f)"
    compile(nb.cells[1].source, "cell", "exec")  # still valid Python


def test_clean_renumbers_and_drops_noise():
    nb = make_nb()
    nb.metadata["widgets"] = {"state": {}}
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stderr", text="/home/me/x.py: Warning"),
                           nbformat.v4.new_output("display_data", data={
                               "application/vnd.jupyter.widget-view+json": {}, "text/plain": "bar"})]
    assert problems(nb)
    clean(nb)
    assert problems(nb) == []
    assert [c.execution_count for c in nb.cells[1:]] == [1, 2]
    assert nb.cells[2].outputs[0].data == {"text/plain": "bar"}


def test_problems_finds_errors_and_paths():
    nb = make_nb()
    nb.cells[2].outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[]),
                           nbformat.v4.new_output("stream", text="saved to /root/out.png")]
    found = " ".join(problems(nb))
    assert "ValueError" in found and "absolute path" in found and "execution count" in found
