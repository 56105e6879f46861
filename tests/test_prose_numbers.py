"""The numbers that a lesson's prose quotes from its outputs (or from a benchmark's results) agree with them.

How to mark a number: see tests/_prose.py. A lesson re-executed by `make outputs` whose numbers moved fails here,
with the cell, the number the prose says and the one the output prints."""
import nbformat
import pytest
from _prose import ROOT, Quote, check, outputs_text, quotes, unmarked

LESSONS = sorted((ROOT / "lessons").glob("[0-9]*.ipynb"))


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_quoted_numbers_agree_with_the_outputs(path):
    found = quotes(path)
    assert found, f"{path.name} marks none of the numbers its prose quotes (see tests/_prose.py)"
    text = outputs_text(nbformat.read(path, as_version=4))
    wrong = [msg for msg in (check(q, text) for q in found) if msg]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name", ["README.md", "benchmarks/README.md"])
def test_numbers_the_readmes_quote_agree_with_their_sources(name):
    wrong = [msg for msg in (check(q, "") for q in quotes(ROOT / name)) if msg]
    assert not wrong, "\n".join(wrong)


# The mechanism itself, on hand-made outputs: it must reject what disagrees.
OUT = "FGSM accuracy: 0.1412\nPGD accuracy: 0.0000\nsteps 2809\nratio 1.3x\nattack FGSM\nFGSM accuracy: 0.1412\n"


def q(prose, pattern, file=None):
    if pattern is None:  # a marker that names a file the repository does not have
        return Quote("toy", 0, prose, r"(\d+)", "benchmarks/results/no_such_file.md")
    return Quote("toy", 0, prose, pattern, file)


@pytest.mark.parametrize("prose, pattern", [
    ("14 %", r"FGSM accuracy: (\S+)"),      # a fraction quoted as a percentage, rounded
    ("14.1 %", r"FGSM accuracy: (\S+)"),
    ("0.14", r"FGSM accuracy: (\S+)"),
    ("2,809", r"steps (\d+)"),
    ("1.3", r"ratio (\S+)x"),
    ("0 %", r"PGD accuracy: (\S+)"),
])
def test_agreeing_quotes_pass(prose, pattern):
    assert check(q(prose, pattern), OUT) is None


@pytest.mark.parametrize("prose, pattern, why", [
    ("15 %", r"FGSM accuracy: (\S+)", "says"),
    ("14.2 %", r"FGSM accuracy: (\S+)", "says"),     # the prose's precision decides the tolerance
    ("0.2", r"FGSM accuracy: (\S+)", "says"),
    ("2,209", r"steps (\d+)", "says"),
    ("14 %", r"(\S+) accuracy", "ambiguous"),         # FGSM and PGD: which one?
    ("14 %", r"CW accuracy: (\S+)", "matches nothing"),
    ("14 %", r"FGSM accuracy: \S+", "exactly one group"),
    ("14 %", r"attack (\w+)", "not a number"),
    ("14 %", None, "no file"),
    (None, r"steps (\d+)", "no number"),
])
def test_disagreeing_quotes_fail(prose, pattern, why):
    msg = check(q(prose, pattern), OUT)
    assert msg is not None and why in msg


def test_a_marker_reads_the_number_before_it_and_a_file(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("FGSM leaves **14 %**<!-- out: FGSM accuracy: (\\S+) --> of the digits,\n"
                                      "the benchmark 0.578<!-- out benchmarks/results/explain.md: x -->."),
        nbformat.v4.new_code_cell("print(...)", outputs=[nbformat.v4.new_output("stream", text=OUT)]),
    ]
    path = tmp_path / "toy.ipynb"
    nbformat.write(nb, path)
    found = quotes(path)
    assert [(f.prose, f.file) for f in found] == [("14 %", None), ("0.578", "benchmarks/results/explain.md")]
    assert check(found[0], outputs_text(nb)) is None
    assert unmarked(path) == [] and "FGSM accuracy: 0.1412" in outputs_text(nb)


def test_unmarked_numbers_are_listed(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("FGSM leaves 14 % of the digits; $\\epsilon = 0.1$ is a formula, "
                                              "`0.3` is code.\n\nThe median is 0.58 here.")]
    path = tmp_path / "toy.ipynb"
    nbformat.write(nb, path)
    assert [line for _, line in unmarked(path)] == ["FGSM leaves 14 % of the digits; $\\epsilon = 0.1$ is a formula, "
                                                    "`0.3` is code.", "The median is 0.58 here."]
