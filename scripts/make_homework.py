"""Student versions of the lessons: solutions removed, outputs of exercise and check cells cleared, into student/.

    python scripts/make_homework.py               # every lesson -> student/NN_topic.ipynb
Check cells stay, so students (and a teacher's autograder running nbval on the completed notebooks) get the
same automatic checks.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbtools import strip_solutions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    out_dir = ROOT / "student"
    out_dir.mkdir(exist_ok=True)
    for path in sorted((ROOT / "lessons").glob("[0-9]*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        n = strip_solutions(nb, stubs=True)
        nbformat.write(nb, out_dir / path.name)
        print(f"student/{path.name}: {n} solution(s) removed")


if __name__ == "__main__":
    main()
