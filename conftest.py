"""Repository-wide pytest hooks (fixtures live in tests/conftest.py): after a run that executed lessons through
nbval, a table of each lesson's time (kernel start, every cell, shutdown) and of its slowest check cell, so that
`make test` shows what each lesson costs on the machine that ran it. A check cell (one that calls
``course_lib.homework.check_...``, marked so in its nbgrader metadata) that takes longer than CHECK_LIMIT_S
fails: a student waits for it after every attempt."""
from __future__ import annotations

from collections import defaultdict

import pytest

LESSON_SECONDS: dict[str, float] = defaultdict(float)
SLOWEST_CHECK: dict[str, tuple[float, int]] = {}
CHECK_LIMIT_S = 10.0


def is_check_cell(cell) -> bool:
    """A check cell as nbgrader sees it: graded and not a solution (scripts/nbtools.py sets that metadata on every
    cell that calls ``course_lib.homework.check_...``; tests/test_nbgrader.py checks it is up to date)."""
    meta = getattr(cell, "metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    cell = getattr(item, "cell", None)
    if rep.when != "call" or cell is None or not is_check_cell(cell):
        return
    path = rep.nodeid.split("::")[0]
    index = int(getattr(item, "cell_num", -1))
    rep.user_properties.append(("check_cell", index))   # read back in logreport (also across xdist workers)
    if rep.passed and rep.duration > CHECK_LIMIT_S:
        rep.outcome = "failed"
        rep.longrepr = (f"{path}: check cell {index} took {rep.duration:.1f} s, more than {CHECK_LIMIT_S:.0f} s "
                        "(a student waits for it after every attempt: make the check cheaper)")


def pytest_runtest_logreport(report) -> None:
    path = report.nodeid.split("::")[0]
    if path.startswith("lessons/") and path.endswith(".ipynb"):
        LESSON_SECONDS[path] += report.duration
    for key, index in getattr(report, "user_properties", []):
        if key == "check_cell" and report.duration > SLOWEST_CHECK.get(path, (0.0, -1))[0]:
            SLOWEST_CHECK[path] = (report.duration, index)


def lesson_table(seconds: dict[str, float]) -> list[str]:
    """The lines of the table: one per lesson (file name, seconds), then the total."""
    lines = [f"{path.removeprefix('lessons/'):55s} {s:6.0f} s" for path, s in sorted(seconds.items())]
    return lines + [f"{'all lessons':55s} {sum(seconds.values()):6.0f} s"]


def check_table(slowest: dict[str, tuple[float, int]]) -> list[str]:
    """One line per lesson: its slowest check cell (index, seconds)."""
    return [f"{path.removeprefix('lessons/'):55s} cell {i:3d} {s:5.1f} s" for path, (s, i) in sorted(slowest.items())]


def pytest_terminal_summary(terminalreporter) -> None:
    if not LESSON_SECONDS:
        return
    terminalreporter.section("lesson times under this run (nbval)")
    for line in lesson_table(LESSON_SECONDS):
        terminalreporter.write_line(line)
    if SLOWEST_CHECK:
        terminalreporter.section(f"slowest check cell per lesson (limit {CHECK_LIMIT_S:.0f} s)")
        for line in check_table(SLOWEST_CHECK):
            terminalreporter.write_line(line)
