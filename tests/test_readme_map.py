"""The README's lesson map cannot drift from the lessons: its "lessons it builds on" column is what each lesson's
own **Prerequisites.** paragraph names (read with the web edition's parser, scripts/build_book.py)."""
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_book as bb  # noqa: E402

LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))


def readme_rows() -> dict[str, list[str]]:
    rows = {}
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\| \[(\d\d) .*\| ([\d, ]+|none) \| [\d.]+ s \|$", line)
        if m:
            rows[m.group(1)] = [] if m.group(2) == "none" else m.group(2).split(", ")
    return rows


def test_prerequisite_lessons_reads_ranges_and_skips_what_nothing_depends_on():
    assert bb.prerequisite_lessons("Lessons 07 (PGD), 11 (masking) and 03–05 (the methods).") == \
        ["03", "04", "05", "07", "11"]
    assert bb.prerequisite_lessons("Lesson 04 (Grad-CAM). Lesson 09, on black-box attacks, belongs to the next "
                                   "unit; nothing here depends on it.") == ["04"]
    assert bb.prerequisite_lessons("None from this course. You should know Python.") == []


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_the_readme_map_names_each_lessons_prerequisites(path):
    nb = nbformat.read(path, as_version=4)
    paragraph = bb.prerequisites("\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown"))
    assert paragraph, f"{path.name} has no **Prerequisites.** paragraph"
    rows = readme_rows()
    number = path.name[:2]
    assert number in rows, f"README's lesson table has no row for lesson {number} with a prerequisites column"
    assert rows[number] == bb.prerequisite_lessons(paragraph), (
        f"README says lesson {number} builds on {rows[number]}, the lesson says: {paragraph}")
