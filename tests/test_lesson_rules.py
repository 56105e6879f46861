"""The lesson rules of ../shared/CONVENTIONS.md that a machine can check, on every lesson:

- helpers live in course_lib: no ``def`` or ``class`` in a teaching cell (exercise solutions excepted);
- test-harness code lives in tests/: no ``assert`` in a teaching cell (claims are checked on the stored outputs by
  tests/test_claims_lessonNN.py);
- lessons use the public API only: no import of an underscore name from course_lib;
- the end of a lesson is separate cells: Pitfalls, Summary, Self-check quiz, References each start their own cell;
- a prose exercise's solution carries a rubric for the teacher (stripped from the student version with it);
- method sections end with "**In practice.**": when to use the method and which library does it.
"""
import re

import nbformat
import pytest
from _prose import ROOT

LESSONS = sorted((ROOT / "lessons").glob("[0-9]*.ipynb"))


def cells(path):
    return nbformat.read(path, as_version=4).cells


def teaching_code(path):
    return [(i, c.source) for i, c in enumerate(cells(path))
            if c.cell_type == "code" and "### BEGIN SOLUTION" not in c.source]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_no_helpers_defined_in_teaching_cells(path):
    found = [f"cell {i}: {m.group(0).strip()}" for i, s in teaching_code(path)
             for m in re.finditer(r"^\s*(?:def|class) \w+", s, re.M)]
    assert not found, f"{path.name}: move these into course_lib (tested) and import them: {found}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_no_asserts_in_teaching_cells(path):
    found = [f"cell {i}: {m.group(0).strip()[:60]}" for i, s in teaching_code(path)
             for m in re.finditer(r"^\s*assert\b.*", s, re.M)]
    assert not found, (f"{path.name}: print what the claim rests on and check it in "
                       f"tests/test_claims_lesson{path.name[:2]}.py: {found}")


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_only_public_names_are_imported(path):
    found = [f"cell {i}: {m.group(0)}" for i, s in teaching_code(path)
             for m in re.finditer(r"from course_lib[\w.]* import [^\n]*\b_\w+|course_lib(?:\.\w+)*\._\w+", s)]
    assert not found, f"{path.name} uses private names of course_lib: {found}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_the_final_sections_are_separate_cells(path):
    md = [c.source for c in cells(path) if c.cell_type == "markdown"]
    for heading in ["## Summary", "## Self-check quiz", "## References"]:
        owners = [s for s in md if re.search(rf"^{re.escape(heading)}\s*$", s, re.M)]
        assert len(owners) == 1, f"{path.name}: one cell must hold {heading!r}, found {len(owners)}"
        assert owners[0].lstrip().startswith(heading), (
            f"{path.name}: {heading!r} must start its own cell (split the final cell: pitfalls, summary, quiz, "
            "answers, references)")
    pitfalls = [s for s in md if re.search(r"^## Pitfalls", s, re.M)]
    assert pitfalls and all(s.lstrip().startswith("## Pitfalls") for s in pitfalls), \
        f"{path.name}: '## Pitfalls' must start its own cell"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_prose_exercises_have_a_rubric(path):
    solutions = [i for i, c in enumerate(cells(path))
                 if c.cell_type == "markdown" and "### BEGIN SOLUTION" in c.source]
    missing = [i for i in solutions if "**Rubric for the teacher.**" not in cells(path)[i].source]
    assert not missing, f"{path.name}: prose solutions without '**Rubric for the teacher.**' in cells {missing}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_method_sections_end_with_in_practice(path):
    n = sum("**In practice.**" in c.source for c in cells(path) if c.cell_type == "markdown")
    assert n >= 1, f"{path.name}: no '**In practice.**' paragraph (when to use the method, which library does it)"
