"""The teacher's cycle with nbgrader, run for real: every lesson, as committed, is an nbgrader source assignment;
`nbgrader generate_assignment` makes a release version with no solution left in it; `nbgrader autograde` scores
the untouched release 0 and the lesson itself (solutions in) full marks on the automatic checks.

nbgrader is installed by `make test` (requirements-teacher.txt). Without it these tests skip, except under
``CI=true``, where a missing nbgrader is a failure."""
from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from nbtools import BEGIN, END, nbgrader_metadata  # noqa: E402

LESSONS = sorted((ROOT / "lessons").glob("[0-9]*.ipynb"))
BIN = Path(sys.executable).parent
NBGRADER = shutil.which("nbgrader", path=str(BIN)) or shutil.which("nbgrader")
#: the lesson whose release is run and autograded in the tests: the fastest (9 s as a lesson), so two autograde
#: runs and a release run cost seconds, not the minutes of a long lesson; it has function, value and choice checks
AUTOGRADED = "01_interpretability.ipynb"


def _need_nbgrader():
    if NBGRADER:
        return
    msg = "nbgrader is not installed: `make test` installs it (requirements-teacher.txt)"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_every_lesson_carries_its_nbgrader_metadata(path):
    nb = nbformat.read(path, as_version=4)
    stored = [c.metadata.get("nbgrader") for c in nb.cells]
    nbgrader_metadata(nb)
    assert stored == [c.metadata.get("nbgrader") for c in nb.cells], (
        f"{path.name}: its nbgrader metadata is out of date: run `make outputs` (scripts/nbtools.py sets it)")
    metas = [m for m in stored if m]
    assert any(m["grade"] and not m["solution"] for m in metas), f"{path.name}: no autograded check cell"
    assert len({m["grade_id"] for m in metas}) == len(metas)


def _solution_lines(path) -> list[str]:
    """Every line of every solution block (long enough to be telling) that the lesson does not also show outside
    the solutions (an exercise may quote a line as a hint)."""
    pattern = re.compile(rf"{re.escape(BEGIN)}(.*?){re.escape(END)}", re.S)
    sources = [c.source for c in nbformat.read(path, as_version=4).cells]
    outside = "\n".join(pattern.sub("", s) for s in sources)
    return [ln.strip() for s in sources for block in pattern.findall(s) for ln in block.splitlines()
            if len(ln.strip()) >= 12 and ln.strip() not in outside]


def _run(args, cwd):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}   # nbgrader calls alembic
    return subprocess.run([NBGRADER, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A temporary nbgrader course with every lesson as a source assignment, released."""
    _need_nbgrader()
    root = tmp_path_factory.mktemp("course")
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        "c.CourseDirectory.course_id = 'ssnn'\n"
        "c.Execute.timeout = 900\n"                    # a lesson cell may take a minute on a busy machine
        "c.ExecutePreprocessor.timeout = 900\n")
    for path in LESSONS:
        dest = root / "source" / path.stem / path.name
        dest.parent.mkdir(parents=True)
        shutil.copy(path, dest)
        done = _run(["generate_assignment", path.stem, "--force"], root)
        assert done.returncode == 0, f"generate_assignment {path.stem} failed:\n{done.stdout}\n{done.stderr}"
    return root


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_the_release_keeps_no_solution(course, path):
    release = course / "release" / path.stem / path.name
    nb = nbformat.read(release, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert BEGIN not in text and END not in text
    left = [ln for ln in _solution_lines(path) if ln in text]
    assert not left, f"{path.name}: solution text survives in the release: {left[:3]}"
    assert "raise NotImplementedError()" in text            # the code answers became stubs
    for c in nb.cells:                                       # and no output of an answer or a check survives
        if c.cell_type == "code" and c.metadata.get("nbgrader"):
            assert not c.outputs


def _autograde_scores(course, lesson, submissions: dict) -> dict:
    for student, source in submissions.items():
        dest = course / "submitted" / student / lesson.stem / lesson.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, dest)
    done = _run(["autograde", lesson.stem, "--force"], course)
    assert done.returncode == 0, f"autograde failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    out = course / "grades.csv"
    done = _run(["export", "--to", str(out)], course)
    assert done.returncode == 0, done.stderr[-2000:]
    with out.open() as f:
        return {row["student_id"]: (float(row["score"]), float(row["max_score"])) for row in csv.DictReader(f)
                if row["assignment"] == lesson.stem}


def test_autograde_scores_the_release_zero_and_the_lesson_full_marks(course):
    lesson = ROOT / "lessons" / AUTOGRADED
    nb = nbformat.read(lesson, as_version=4)
    auto = sum(c.metadata["nbgrader"]["points"] for c in nb.cells
               if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"]["solution"])
    written = sum(c.metadata["nbgrader"]["points"] for c in nb.cells
                  if c.metadata.get("nbgrader", {}).get("grade") and c.metadata["nbgrader"]["solution"])
    scores = _autograde_scores(course, lesson, {"untouched": course / "release" / lesson.stem / lesson.name,
                                                "teacher": lesson})
    assert scores["untouched"] == (0.0, auto + written)
    # the written answers wait for the teacher (manual grading); every automatic check passes
    assert scores["teacher"] == (float(auto), auto + written)


def test_the_release_runs_to_its_first_exercise_and_stops_there(course):
    """A student who runs the released lesson top to bottom gets every figure up to the first exercise, then a
    NotImplementedError from the first unwritten answer (not an error of the lesson itself)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    lesson = ROOT / "lessons" / AUTOGRADED
    nb = nbformat.read(course / "release" / lesson.stem / lesson.name, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "lessons")}})
    with pytest.raises(CellExecutionError) as err:
        client.execute()
    assert "NotImplementedError" in str(err.value)
    first_answer = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("solution"))
    ran = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("execution_count")]
    failed = max(ran)
    assert first_answer <= failed <= first_answer + 1, "it stops at the first answer or at the check after it"
    before = [c for c in nb.cells[:first_answer] if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in before)
    assert not any(o.output_type == "error" for c in before for o in c.outputs), "the lesson itself ran cleanly"
