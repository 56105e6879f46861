"""Repository-wide pytest hooks (fixtures live in tests/conftest.py): after a run that executed lessons through
nbval, a table of each lesson's time (kernel start, every cell, shutdown), so that `make test` shows what each
lesson costs on the machine that ran it."""
from __future__ import annotations

from collections import defaultdict

LESSON_SECONDS: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report) -> None:
    path = report.nodeid.split("::")[0]
    if path.startswith("lessons/") and path.endswith(".ipynb"):
        LESSON_SECONDS[path] += report.duration


def lesson_table(seconds: dict[str, float]) -> list[str]:
    """The lines of the table: one per lesson (file name, seconds), then the total."""
    lines = [f"{path.removeprefix('lessons/'):55s} {s:6.0f} s" for path, s in sorted(seconds.items())]
    return lines + [f"{'all lessons':55s} {sum(seconds.values()):6.0f} s"]


def pytest_terminal_summary(terminalreporter) -> None:
    if not LESSON_SECONDS:
        return
    terminalreporter.section("lesson times under this run (nbval)")
    for line in lesson_table(LESSON_SECONDS):
        terminalreporter.write_line(line)
