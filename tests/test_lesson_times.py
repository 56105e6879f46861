"""The table of lesson times that `make test` prints (the root conftest.py): per lesson, the sum of the setup,
call and teardown times of its nbval items, and nothing from unit tests."""
import importlib.util
from pathlib import Path
from types import SimpleNamespace


def _hooks():
    spec = importlib.util.spec_from_file_location("root_conftest", Path(__file__).resolve().parents[1] / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_lesson_times_add_up_per_lesson_and_ignore_unit_tests():
    hooks = _hooks()
    for nodeid, d in [("lessons/07_adversarial_examples.ipynb::Cell 0", 1.5),
                      ("lessons/07_adversarial_examples.ipynb::Cell 1", 2.0),
                      ("lessons/14_verification.ipynb::Cell 3", 4.25),
                      ("tests/test_models.py::test_normalize", 100.0)]:
        hooks.pytest_runtest_logreport(SimpleNamespace(nodeid=nodeid, duration=d))
    assert dict(hooks.LESSON_SECONDS) == {"lessons/07_adversarial_examples.ipynb": 3.5,
                                          "lessons/14_verification.ipynb": 4.25}
    lines = hooks.lesson_table(hooks.LESSON_SECONDS)
    assert lines[0].split() == ["07_adversarial_examples.ipynb", "4", "s"]     # 3.5 rounds to 4
    assert lines[-1].split() == ["all", "lessons", "8", "s"]
    written = []
    reporter = SimpleNamespace(section=lambda title: written.append(title), write_line=written.append)
    hooks.pytest_terminal_summary(reporter)
    assert written[0].startswith("lesson times") and len(written) == 4


CHECK = {"nbgrader": {"grade": True, "solution": False, "locked": True, "points": 1}}
ANSWER = {"nbgrader": {"grade": False, "solution": True, "locked": False}}


def _report(hooks, metadata, duration, cell_num=5, path="lessons/03_saliency.ipynb"):
    """Run the root conftest's makereport hook on a fake nbval cell item; return the report it leaves."""
    rep = SimpleNamespace(when="call", nodeid=f"{path}::Cell {cell_num}", duration=duration, outcome="passed",
                          passed=True, longrepr=None, user_properties=[])
    item = SimpleNamespace(cell=SimpleNamespace(metadata=metadata), cell_num=cell_num)
    gen = hooks.pytest_runtest_makereport(item, None)
    next(gen)
    try:
        gen.send(SimpleNamespace(get_result=lambda: rep))
    except StopIteration:
        pass
    hooks.pytest_runtest_logreport(rep)    # where the controller (or the only process) records it
    return rep


def test_a_slow_check_cell_fails_and_the_slowest_is_reported():
    hooks = _hooks()
    assert _report(hooks, CHECK, 3.0).outcome == "passed"
    assert _report(hooks, {}, 60.0, cell_num=9).outcome == "passed"          # a lesson cell: no limit
    assert _report(hooks, ANSWER, 30.0, cell_num=8).outcome == "passed"      # an answer cell: no limit
    slow = _report(hooks, CHECK, 10.5, cell_num=7)
    assert slow.outcome == "failed" and "check cell 7 took 10.5 s" in slow.longrepr
    assert hooks.SLOWEST_CHECK == {"lessons/03_saliency.ipynb": (10.5, 7)}
    assert hooks.check_table(hooks.SLOWEST_CHECK)[0].split() == ["03_saliency.ipynb", "cell", "7", "10.5", "s"]
