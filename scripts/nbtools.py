"""Notebook hygiene shared by `make outputs`, `make homework` and tests/test_lessons_hygiene.py."""
from __future__ import annotations

import base64
import io
import re

ABSOLUTE_PATH = re.compile(r"(/home/|/root/|/tmp/|/work/|/Users/|[A-Z]:\\\\Users)")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def shrink_png(b64: str, min_bytes: int = 50_000) -> str:
    """A large PNG re-encoded with a 256-colour palette (median cut, no dithering) when that saves a third or
    more; plots and heat maps survive this visibly unchanged, and lessons stay small enough to commit."""
    raw = base64.b64decode(b64)
    if len(raw) < min_bytes:
        return b64
    from PIL import Image

    img = Image.open(io.BytesIO(raw))
    if img.mode == "P":  # already a palette image
        return b64
    pal = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    pal.save(buf, "PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode() if buf.tell() < 0.67 * len(raw) else b64


def clean(nb) -> None:
    """In place: drop widget state, stderr streams, volatile metadata; renumber execution counts 1..n; set the
    nbgrader metadata of the exercise cells (:func:`nbgrader_metadata`)."""
    nbgrader_metadata(nb)
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    lang = nb.metadata.get("language_info", {})
    nb.metadata["language_info"] = {"name": "python", **({"version": lang["version"]} if "version" in lang else {})}
    count = 0
    for cell in nb.cells:
        for key in ("execution", "collapsed", "scrolled", "jupyter"):
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream" and out.name == "stderr":
                continue  # warnings and progress bars: noise with paths of the machine that ran it
            if "data" in out:
                out.data.pop(WIDGET_MIME, None)
                if "image/png" in out.data:
                    out.data["image/png"] = shrink_png(out.data["image/png"])
                if not out.data:
                    continue
                out.setdefault("metadata", {})  # required by the nbformat schema (JupyterLab warns without it)
            outputs.append(out)
        cell.outputs = outputs
        if cell.execution_count is not None:
            count += 1
            cell.execution_count = count
            for out in cell.outputs:
                if "execution_count" in out:
                    out.execution_count = count


def problems(nb) -> list[str]:
    """What keeps a committed lesson from being clean: stored errors, widget state, paths, numbering, formats."""
    import nbformat

    found = []
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as e:
        found.append(f"is not valid nbformat {nb.get('nbformat')}: {e.message}")
    if "widgets" in nb.metadata:
        found.append("stores widget state (metadata.widgets)")
    expected = 0
    executed = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                found.append(f"cell {i} stores an error: {out.get('ename')}: {out.get('evalue')}")
            if out.output_type == "stream" and out.name == "stderr":
                found.append(f"cell {i} stores stderr output")
            data = out.get("data", {})
            if WIDGET_MIME in data:
                found.append(f"cell {i} stores a widget view")
            for mime in data:
                if mime.startswith("image/") and mime != "image/png":
                    found.append(f"cell {i} stores a {mime} figure (PNG expected)")
            text = str(out.get("text", "")) + "".join(str(v) for k, v in data.items() if k.startswith("text/"))
            m = ABSOLUTE_PATH.search(text)
            if m:
                found.append(f"cell {i} stores an absolute path ({m.group(0)}...)")
        if cell.source.strip() and cell.execution_count is not None:
            expected += 1
            if cell.execution_count != expected:
                found.append(f"cell {i} has execution count {cell.execution_count}, expected {expected}")
    if executed and all(c.execution_count is None for c in executed):
        found.append("was never executed (run `make outputs`)")
    return found


CHECK_CALL = re.compile(r"course_lib\.homework\.check_\w+\(")
RUBRIC_POINTS = re.compile(r"\*\*Rubric for the teacher\.\*\*\s+(\d+) points? in all")


def nbgrader_metadata(nb) -> None:
    """In place: nbgrader's cell metadata (schema 3), so that every lesson is an nbgrader source assignment as it
    stands. A code cell with solution markers is a solution cell (the student's answer, checked by the cell after
    it); a Markdown cell with them is a manually graded answer worth its rubric's points; a code cell that calls
    ``course_lib.homework.check_*`` is a locked autograder test worth one point per call (it raises on a wrong
    answer). Grade ids number the cells of each kind in order (``answer-1``, ``check-1``, ``written-1``)."""
    counts = {"answer": 0, "check": 0, "written": 0}
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
        solution = BEGIN in cell.source
        calls = len(CHECK_CALL.findall(cell.source)) if cell.cell_type == "code" else 0
        if solution and cell.cell_type == "markdown":
            kind = "written"
            m = RUBRIC_POINTS.search(cell.source)
            meta = {"solution": True, "grade": True, "locked": False, "points": int(m.group(1)) if m else 1}
        elif solution:
            kind, meta = "answer", {"solution": True, "grade": False, "locked": False}
        elif calls:
            kind, meta = "check", {"solution": False, "grade": True, "locked": True, "points": calls}
        else:
            continue
        counts[kind] += 1
        cell.metadata["nbgrader"] = {**meta, "grade_id": f"{kind}-{counts[kind]}", "schema_version": 3}


def _top_level_stubs(solution: str) -> list[str]:
    """For a solution written at the cell's top level: ``name = ...`` for every name it assigns and
    ``def f(args):`` with a ``raise NotImplementedError()`` body for every function it defines, so that the check
    cell after it finds the names and tells the student what is missing (not a NameError)."""
    import ast

    try:
        tree = ast.parse(solution)
    except SyntaxError:
        return []
    stubs, seen = [], set()

    def names(target):
        if isinstance(target, ast.Name):
            yield target.id
        elif isinstance(target, (ast.Tuple, ast.List)):
            for t in target.elts:
                yield from names(t)

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name not in seen:
            seen.add(node.name)
            stubs.append(f"def {node.name}({ast.unparse(node.args)}):\n    raise NotImplementedError()")
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
            if isinstance(node, ast.AnnAssign) else []
        for t in targets:
            for name in names(t):
                if name not in seen:
                    seen.add(name)
                    stubs.append(f"{name} = ...")
    return stubs


def strip_solutions(nb, stubs: bool = False) -> int:
    """In place: replace what lies between the solution markers by a placeholder; returns how many.

    The placeholder is nbgrader's (``# YOUR CODE HERE`` and ``raise NotImplementedError()``; ``YOUR ANSWER HERE``
    in Markdown). ``stubs=True`` (the student versions of ``make homework``) also keeps, for a solution written at
    the cell's top level, the names it defines: ``answer = ...`` and ``def f(args): raise NotImplementedError()``
    before the ``raise``, so that an untouched exercise fails its check with the check's message for students
    ("still ``...``", "still raises NotImplementedError") instead of a ``NameError``, and clears the outputs of
    every exercise and check cell (nbgrader metadata), so no "correct" of the lesson's run is left.
    """
    n = 0
    pattern = re.compile(rf"^([ \t]*){re.escape(BEGIN)}.*?^[ \t]*{re.escape(END)}[^\n]*", re.S | re.M)

    def placeholder(m, code: bool) -> str:
        indent = m.group(1)
        if not code:
            return f"{indent}YOUR ANSWER HERE"
        lines = ["# YOUR CODE HERE"]
        if stubs and not indent:
            body = "\n".join(m.group(0).splitlines()[1:-1])
            found = _top_level_stubs(body)
            if found:
                todo = " and ".join(w for w, there in [("write each function's body", "def " in "".join(found)),
                                                        ("replace each ... by your answer", "= ..." in "".join(found))]
                                    if there)
                lines = [f"# YOUR CODE HERE: {todo}, then delete the raise below", *found]
        lines.append("raise NotImplementedError()")
        return "\n".join(indent + ln if ln else ln for ln in "\n".join(lines).split("\n"))

    for cell in nb.cells:
        if stubs and cell.cell_type == "code" and cell.metadata.get("nbgrader"):
            cell.outputs, cell.execution_count = [], None   # a check's stale "correct" is not the student's
        if BEGIN not in cell.source:
            continue
        code = cell.cell_type == "code"
        cell.source, k = pattern.subn(lambda m, code=code: placeholder(m, code), cell.source)
        n += k
        if code:
            cell.outputs, cell.execution_count = [], None
    return n
