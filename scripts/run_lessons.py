"""Execute lessons in place (outputs a reader can browse) and clean them; print each lesson's run time.

    python scripts/run_lessons.py                 # every lessons/*.ipynb
    python scripts/run_lessons.py lessons/00_landscape.ipynb
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbtools import clean, problems  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(paths: list[str]) -> int:
    lessons = [Path(p) for p in paths] or sorted((ROOT / "lessons").glob("[0-9]*.ipynb"))
    status = 0
    for path in lessons:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        seconds = time.perf_counter() - start
        clean(nb)
        nbformat.write(nb, path)
        left = problems(nb)
        print(f"{path.name}: {seconds:.0f} s" + ("" if not left else f"  PROBLEMS: {left}"), flush=True)
        status |= bool(left)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
