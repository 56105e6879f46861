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
