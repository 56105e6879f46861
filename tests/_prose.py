"""Numbers quoted in a lesson's prose, checked against the outputs stored in the notebook.

A number in a Markdown cell that comes from a result carries an invisible marker right after it:

    FGSM leaves 14 %<!-- out: FGSM accuracy (\\S+) --> of the digits correctly classified.
    the benchmark's median is 0.578<!-- out benchmarks/results/explain.md: \\| saliency \\| (\\S+) -->

In the README (or any Markdown file of the repository), a number quoted from a lesson names the notebook,
whose stored outputs are then searched: `PGD leaves 0.5 %<!-- out lessons/07_adversarial_examples.ipynb: ... -->`.

The marker is an HTML comment (JupyterLab and the web edition do not show it) holding a regular expression with
one group. The expression is searched in the text of every stored output of the notebook (streams and
`text/plain`), or in the named file of the repository; it must match, and every match must capture the same text.
The number is the last one before the marker on its line. It must equal the captured value to the precision the
prose writes it with (14 % accepts 13.5 to 14.5 %; 0.58 accepts 0.575 to 0.585); a percentage quoted from a
fraction is compared with 100 times the fraction.

`python tests/_prose.py lessons/07_adversarial_examples.ipynb` lists each marker with what it found, and the
numbers of the prose that carry no marker, for an author looking for what to mark.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!--\s*out(?:\s+(?P<file>[^\s:]+))?\s*:\s*(?P<pattern>.*?)\s*-->", re.S)
NUMBER = re.compile(r"(?<![\w.])[-−]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d.])|(?<![\w.,])[-−]?\d+(?:\.\d+)?(?![\d,])")


@dataclass
class Quote:
    lesson: str
    cell: int
    prose: str          # the number as written, with its % sign if any
    pattern: str
    file: str | None

    def __str__(self):
        where = self.file or "outputs"
        return f"{self.lesson}[{self.cell}] {self.prose!r} <- {where}: {self.pattern}"


def outputs_text(nb) -> str:
    """The text of every stored output of a notebook, one block per output."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.output_type == "stream":
                parts.append(out.text)
            elif "data" in out and "text/plain" in out.data:
                parts.append(out.data["text/plain"])
    return "\n".join(parts)


def _number_before(text: str) -> str | None:
    line = text.rsplit("\n", 1)[-1]
    found = list(NUMBER.finditer(line))
    if not found:
        return None
    last = found[-1]
    rest = line[last.end():]
    return last.group() + (" %" if re.match(r"\s?%", rest) else "")


def quotes(path: Path) -> list[Quote]:
    """The marked numbers of a notebook's Markdown cells, or of a Markdown file (cell = line number there)."""
    if path.suffix == ".md":
        text = path.read_text()
        return [Quote(path.name, text.count("\n", 0, m.start()) + 1, _number_before(text[:m.start()]),
                      m.group("pattern"), m.group("file")) for m in MARKER.finditer(text)]
    nb = nbformat.read(path, as_version=4)
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for m in MARKER.finditer(cell.source):
            prose = _number_before(cell.source[:m.start()])
            found.append(Quote(path.stem, i, prose, m.group("pattern"), m.group("file")))
    return found


def _value(text: str) -> tuple[float, bool]:
    text = text.strip().replace(",", "").replace("−", "-")
    percent = text.endswith("%")
    return float(text.rstrip("%").strip()), percent


def check(quote: Quote, outputs: str) -> str | None:
    """None when the prose agrees with the source, else a message saying what disagrees."""
    if quote.prose is None:
        return f"{quote}: no number before the marker on its line"
    if quote.file and not (ROOT / quote.file).is_file():
        return f"{quote}: there is no file {quote.file} in the repository"
    if quote.file and quote.file.endswith(".ipynb"):
        source = outputs_text(nbformat.read(ROOT / quote.file, as_version=4))
    else:
        source = (ROOT / quote.file).read_text() if quote.file else outputs
    try:
        regex = re.compile(quote.pattern, re.M)
    except re.error as e:
        return f"{quote}: bad expression ({e})"
    if regex.groups != 1:
        return f"{quote}: the expression needs exactly one group, it has {regex.groups}"
    captured = sorted({m.group(1) for m in regex.finditer(source)})
    if not captured:
        return f"{quote}: the expression matches nothing in the {'file' if quote.file else 'stored outputs'}"
    if len(captured) > 1:
        return f"{quote}: the expression is ambiguous, it captures {captured}"
    try:
        value, value_percent = _value(captured[0])
    except ValueError:
        return f"{quote}: captured {captured[0]!r}, not a number"
    number, percent = quote.prose.replace(" %", ""), quote.prose.endswith("%")
    said = float(number.replace(",", "").replace("−", "-"))
    if percent and not value_percent:
        value *= 100
    decimals = len(number.split(".")[1]) if "." in number else 0
    if abs(value - said) > 0.5 * 10 ** -decimals + 1e-9 * max(1.0, abs(said)):
        return f"{quote}: the prose says {quote.prose}, the source says {captured[0]}"
    return None


def unmarked(path: Path) -> list[tuple[int, str]]:
    """Numbers with a decimal point or a percent sign in the prose, outside formulas and code, with no marker."""
    nb = nbformat.read(path, as_version=4)
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        source = re.sub(r"\$\$.*?\$\$|```.*?```", lambda m: "\n" * m.group().count("\n"), cell.source, flags=re.S)
        for original in source.splitlines():
            line = MARKER.sub("\0", re.sub(r"\$[^$]*\$|`[^`]*`", " ", original))
            for m in NUMBER.finditer(line):
                rest = line[m.end():]
                if not (re.match(r"\s?%", rest) or "." in m.group()):
                    continue
                if re.match(r"\s?%?\**\)?\s?\0", rest) or re.match(r"\s?%?[^\d\0]{0,12}\0", rest):
                    continue
                found.append((i, original.strip()[:110]))
                break
    return found


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        p = Path(arg)
        text = "" if p.suffix == ".md" else outputs_text(nbformat.read(p, as_version=4))  # a .md names its sources
        for q in quotes(p):
            print(("ok   " if check(q, text) is None else "FAIL ") + (check(q, text) or str(q)))
        for i, line in unmarked(p):
            print(f"unmarked [{i}] {line}")
