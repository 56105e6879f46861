"""Build the offline web edition of the course: ``python scripts/build_book.py [--student] [--out DIR]``
(``make book``; ``--student`` builds the edition without solutions, as ``make homework`` strips them).

The site lands in ``build/book/`` (git-ignored) and opens as ``file:///.../build/book/index.html`` with no network:

- ``index.html``: the course title, the lesson map (number, title, learning goals, prerequisites, time on a 2-core
  CPU) and links to the API reference and the benchmark tables;
- ``NN_topic.html``: each executed lesson as JupyterLab shows it, rendered by nbconvert's ``HTMLExporter`` with the
  ``lab`` template from the committed outputs (nothing is executed), figures embedded as data URIs, a navigation
  bar (home / previous / next) above and below;
- ``api/``: one page per ``course_lib`` submodule, every name of its ``__all__`` with signature and docstring;
- ``benchmarks/``: ``benchmarks/README.md`` and ``benchmarks/results/*.md`` (not ``*_quick``, not ``*_parts``) with
  the images they show;
- ``_static/``: ``book.css`` and the MathJax files.

Design choices:

- **nbconvert and our own index, not Jupyter Book**: the lessons are already executed notebooks and nbconvert
  renders them exactly as JupyterLab shows them; Jupyter Book 1.x would add Sphinx and ~40 packages and loads
  MathJax from a CDN by default.
- **Learning goals come from each lesson's own "Learning goals" paragraph**, not from the README table: the lesson
  is the source the README summarises, so the site cannot drift from what a student reads. The README table gives
  only what the lessons do not hold: the measured time on a 2-core CPU.
- **MathJax 2.7 from the PyPI package ``jupyter-server-mathjax``** (pinned in ``requirements-teacher.txt``; 3 MB
  wheel, its only dependency ``jupyter-server`` is in the lock file): the same major version and TeX delimiters as
  nbconvert's own configuration (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``, escapes processed). The
  package ships only the STIX-Web fonts, so the HTML-CSS output is told to use them. We copy what a page can load
  (``MathJax.js``, ``config/``, ``jax/``, ``extensions/``, ``fonts/``: 1.8 MB), not the translations, the
  accessibility extensions or the SVG output's fonts, which this configuration never loads.
- **No external resource**: our template drops the lab template's require.js (only widgets with saved state need
  it, and the lessons are committed without widget state), its mermaid loader and its widget loader;
  :func:`external_resources` scans every page and stylesheet, and the build fails naming any URL that would be
  fetched from the network. Links (``<a href="https://...">`` to papers) are not resources and stay.
- **Links**: a Markdown link from a lesson to another lesson (``NN_topic.ipynb#anchor``) points to its page
  (``NN_topic.html#anchor``; nbconvert derives heading ids from the heading text as JupyterLab does, and a
  browser matches the fragment %-encoded or not). Links to repository files that
  have a page point to it: ``course_lib/...`` to the API page of that submodule, ``benchmarks/...md`` to its table,
  ``README.md`` to the home page. Links to other repository files (scripts, data) would be dead in a copied site,
  so they are rendered as their plain text. :func:`broken_links` checks every relative ``href``/``src`` and every
  ``#anchor`` into a lesson; the build fails on one.
- **The API reference is a small generator of our own with ``inspect``**, not pdoc: the public names are exactly
  each submodule's ``__all__``, one page per submodule; the docstrings are plain text with formulas, shown as
  written (pdoc renders docstrings as Markdown or reST, which turns the ``*`` and ``_`` of a plain-text formula
  into emphasis); it needs no new package; and the pages share the site's stylesheet and load nothing remote.
- **Widgets**: the committed outputs of a widget cell are their text repr (``VBox(children=...)``); the page shows
  a note that the widget runs in JupyterLab instead.
"""
from __future__ import annotations

import argparse
import html
import importlib
import inspect
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "lessons"
README = ROOT / "README.md"
BENCHMARKS = ROOT / "benchmarks"
DEFAULT_OUT = ROOT / "build" / "book"

MATHJAX_DIR = "_static/mathjax"
MATHJAX_ENTRY = "MathJax.js"
MATHJAX_QUERY = "?config=TeX-AMS-MML_HTMLorMML-full,Safe"
MATHJAX_PARTS = ("MathJax.js", "LICENSE", "config", "jax", "extensions", "fonts")
#: never loaded by our configuration: the accessibility extensions (only on explicit request) and the SVG output's
#: fonts (the package ships no SVG output to use them); 6 MB of the 8
MATHJAX_SKIP = ("extensions/a11y", "jax/output/SVG")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
WIDGET_REPR = re.compile(r"^(VBox|HBox|Box|GridBox|Tab|Accordion|interactive|Output)\(children=")
LESSON_NAME = re.compile(r"^(\d\d)_\w+$")


class BookError(RuntimeError):
    """The site is not self-contained or has a broken link; the message names the page and the URL."""


@dataclass
class Lesson:
    """One lesson: its notebook, the page it becomes and what the home page says about it."""

    path: Path
    number: str
    title: str
    goals: list[str] = field(default_factory=list)
    prerequisites: str = ""
    time: str = ""

    @property
    def page(self) -> str:
        return self.path.stem + ".html"


# --------------------------------------------------------------------------------------------- lessons: the map

def strip_comments(text: str) -> str:
    """Drop HTML comments (the lessons' ``<!-- out: ... -->`` markers that tie prose numbers to outputs)."""
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


def lesson_title(source: str) -> str:
    """The title from the first cell's ``# Lesson NN — Title`` heading, without the ``Lesson NN —`` prefix."""
    match = re.search(r"^# (.+)$", source, flags=re.M)
    if not match:
        raise BookError(f"no '# ' title in the first cell: {source[:80]!r}")
    return re.sub(r"^Lesson \d+\s*[—–-]+\s*", "", match.group(1).strip())


def learning_goals(source: str) -> list[str]:
    """The bullets after ``**Learning goals.**`` (each a Markdown string, continuation lines joined)."""
    start = source.find("**Learning goals.**")
    if start < 0:
        return []
    goals: list[str] = []
    for line in strip_comments(source[start:]).splitlines()[1:]:
        if line.startswith(("- ", "* ")):
            goals.append(line[2:].strip())
        elif goals and line.startswith(" ") and line.strip():
            goals[-1] += " " + line.strip()
        elif goals and (not line.strip() or not line.startswith(" ")):
            break
    return goals


def prerequisites(source: str) -> str:
    """The paragraph after ``**Prerequisites.**`` (Markdown), or ``""``."""
    match = re.search(r"\*\*Prerequisites\.\*\*(.*?)(?:\n\s*\n|\Z)", strip_comments(source), flags=re.S)
    return " ".join(match.group(1).split()) if match else ""


def prerequisite_lessons(paragraph: str) -> list[str]:
    """The lesson numbers a prerequisites paragraph names ("lesson 07", "lessons 03–05" as a range), leaving out a
    sentence that says nothing depends on a lesson ("Lesson 09 ... belongs to the next unit; nothing here depends
    on it")."""
    sentences = [s for s in re.split(r"(?<=\.)\s+", paragraph) if "nothing here depends" not in s]
    found = set()
    for sentence in sentences:
        for a, b in re.findall(r"\b(\d\d)\s*[–-]\s*(\d\d)\b", sentence):
            found.update(f"{n:02d}" for n in range(int(a), int(b) + 1))
        found.update(re.findall(r"\b(\d\d)\b", sentence))
    return sorted(found)


def readme_times(readme: Path = README) -> dict[str, str]:
    """Lesson stem -> its time on a 2-core CPU, from the last column of the README's lesson table."""
    times = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| \[\d\d [^\]]+\]\(lessons/(\w+)\.ipynb\) \|.*\| ([^|]*\d[^|]*) \|$", line)
        if match:
            times[match.group(1)] = match.group(2).strip()
    return times


def course_title(readme: Path = README) -> str:
    """The README's first heading."""
    return re.search(r"^# (.+)$", readme.read_text(encoding="utf-8"), flags=re.M).group(1).strip()


def read_lessons(lessons_dir: Path = LESSONS, readme: Path = README) -> list[Lesson]:
    """Every ``NN_topic.ipynb`` in teaching order, with title, goals and prerequisites from its first cells."""
    import nbformat

    times = readme_times(readme) if readme.exists() else {}
    lessons = []
    for path in sorted(lessons_dir.glob("*.ipynb")):
        if not LESSON_NAME.match(path.stem):
            continue
        nb = nbformat.read(path, as_version=4)
        intro = "\n\n".join(c.source for c in nb.cells[:3] if c.cell_type == "markdown")
        lessons.append(Lesson(path, path.stem[:2], lesson_title(intro), learning_goals(intro), prerequisites(intro),
                              times.get(path.stem, "")))
    if not lessons:
        raise BookError(f"no lessons in {lessons_dir}")
    return lessons


# --------------------------------------------------------------------------------------------- links

def site_map(lessons: list[Lesson]) -> dict[str, str]:
    """Repository path (POSIX, relative to the root) -> the site page that stands for it."""
    pages = {f"lessons/{lesson.path.name}": lesson.page for lesson in lessons}
    pages["README.md"] = "index.html"
    pages["benchmarks/README.md"] = "benchmarks/index.html"
    for md in result_tables():
        pages[f"benchmarks/results/{md.name}"] = f"benchmarks/{md.stem}.html"
    return pages


def api_page_for(repo_path: str) -> str | None:
    """``course_lib/attacks/pgd.py`` -> ``api/attacks.html``; ``course_lib/...`` private -> ``api/index.html``."""
    import course_lib

    parts = repo_path.split("/")
    if parts[0] != "course_lib":
        return None
    sub = parts[1].removesuffix(".py") if len(parts) > 1 else ""
    return f"api/{sub}.html" if sub in course_lib._SUBMODULES else "api/index.html"


def resolve_link(target: str, source: str, page: str, pages: dict[str, str]) -> str | None:
    """Where a link written in the repository file ``source`` should point from the site page ``page``.

    ``target`` is the link as written (relative to ``source``); the answer is a URL relative to ``page``, the
    target unchanged when it is external or a fragment, or ``None`` when the repository file has no page (then
    the link is rendered as plain text).
    """
    if re.match(r"^([a-z][a-z0-9+.-]*:|#|//)", target, flags=re.I):
        return target
    path, _, anchor = target.partition("#")
    repo_path = os.path.normpath(os.path.join(os.path.dirname(source), path)).replace(os.sep, "/")
    dest = pages.get(repo_path) or api_page_for(repo_path)
    if dest is None:
        return None
    rel = os.path.relpath(dest, os.path.dirname(page) or ".").replace(os.sep, "/")
    return rel + (f"#{anchor}" if anchor else "")


def rewrite_markdown_links(text: str, source: str, page: str, pages: dict[str, str]) -> str:
    """Rewrite ``[text](target)`` and ``<a href="target">`` for the site (images are left to the caller)."""

    def markdown_link(match: re.Match) -> str:
        label, target, title = match.group(1), match.group(2), match.group(3) or ""
        new = resolve_link(target, source, page, pages)
        return label if new is None else f"[{label}]({new}{title})"

    def html_link(match: re.Match) -> str:
        before, target, after, label = match.groups()
        new = resolve_link(target, source, page, pages)
        return label if new is None else f'<a {before}href="{new}"{after}>{label}</a>'

    text = re.sub(r"(?<!!)\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(\s+\"[^\"]*\")?\s*\)", markdown_link, text)
    return re.sub(r"<a\s([^>]*?)href=\"([^\"]+)\"([^>]*)>(.*?)</a>", html_link, text, flags=re.I | re.S)


def copy_markdown_images(text: str, source: Path, page_dir: Path) -> str:
    """Copy the local images a Markdown file shows next to its page; keep the link's file name."""

    def copy(match: re.Match) -> str:
        target = match.group(2)
        src = (source.parent / target).resolve()
        if re.match(r"^[a-z]+:", target) or src.suffix.lower() not in IMAGE_SUFFIXES or not src.is_file():
            return match.group(0)
        page_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, page_dir / src.name)
        return f"{match.group(1)}{src.name}{match.group(3)}"

    text = re.sub(r"(!\[[^\]]*\]\(\s*)([^)\s]+)(\s*(?:\"[^\"]*\")?\s*\))", copy, text)
    return re.sub(r"(<img\s[^>]*?src=\")([^\"]+)(\")", copy, text)


# --------------------------------------------------------------------------------------------- page chrome

def page_html(title: str, body: str, depth: int = 0, math: bool = False) -> str:
    """A site page (home, API, benchmarks): our stylesheet, the top bar, optionally MathJax."""
    up = "../" * depth
    head = f'<link rel="stylesheet" href="{up}_static/book.css">\n'
    if math:
        head += mathjax_tags(up)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1.0">\n'
            f"<title>{html.escape(title)}</title>\n{head}</head>\n<body class=\"book-page\">\n"
            f"{top_bar(up)}<main class=\"book-main\">\n{body}\n</main>\n</body>\n</html>\n")


def top_bar(up: str) -> str:
    """The bar at the top of every page: home, API reference, benchmarks."""
    return (f'<nav class="book-top"><a href="{up}index.html">Course home</a>'
            f'<a href="{up}api/index.html">API reference</a>'
            f'<a href="{up}benchmarks/index.html">Benchmarks</a></nav>\n')


def lesson_nav(lessons: list[Lesson], i: int) -> str:
    """Home / previous / next for lesson ``i``."""
    prev = lessons[i - 1] if i > 0 else None
    nxt = lessons[i + 1] if i + 1 < len(lessons) else None
    link = '<a class="book-{cls}" href="{page}">{arrow}</a>'
    parts = ['<a class="book-home" href="index.html">Course home</a>']
    parts.append(link.format(cls="prev", page=prev.page, arrow=f"&larr; {prev.number} {html.escape(prev.title)}")
                 if prev else '<span class="book-prev"></span>')
    parts.append(link.format(cls="next", page=nxt.page, arrow=f"{nxt.number} {html.escape(nxt.title)} &rarr;")
                 if nxt else '<span class="book-next"></span>')
    return '<nav class="book-nav">' + "".join(parts) + "</nav>"


def mathjax_tags(up: str = "") -> str:
    """MathJax 2.7 from ``_static/mathjax``, configured like JupyterLab (``$...$``, ``$$...$$``, STIX-Web fonts)."""
    return (
        '<script type="text/x-mathjax-config">\n'
        "MathJax.Hub.Config({\n"
        "  tex2jax: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']],\n"
        "            processEscapes: true, processEnvironments: true},\n"
        "  TeX: {equationNumbers: {autoNumber: 'AMS', useLabelIds: true}},\n"
        "  'HTML-CSS': {availableFonts: [], preferredFont: null, webFont: 'STIX-Web', imageFont: null,\n"
        "               linebreaks: {automatic: true}},\n"
        "  displayAlign: 'center', messageStyle: 'none', menuSettings: {zoom: 'None'}\n"
        "});\n"
        "</script>\n"
        f'<script src="{up}{MATHJAX_DIR}/{MATHJAX_ENTRY}{MATHJAX_QUERY}"></script>\n'
    )


# The lab template without anything remote: no require.js, no mermaid or widget loaders from a CDN; our MathJax;
# the site's stylesheet and navigation bars.
LESSON_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}{{ resources.book_mathjax }}{%- endblock html_head_js_mathjax -%}
{%- block extra_css -%}<link rel="stylesheet" href="_static/book.css">{%- endblock extra_css -%}
{%- block body_header -%}{{ super() }}{{ resources.book_nav }}{%- endblock body_header -%}
{%- block body_footer -%}{{ resources.book_nav }}{{ super() }}{%- endblock body_footer -%}
"""


# --------------------------------------------------------------------------------------------- lessons: the pages

def widget_note(nb) -> None:
    """Replace a widget's text repr (``VBox(children=...)``) by a note that the widget runs in JupyterLab."""
    note = ('<p class="book-widget">Interactive widget: open this lesson in JupyterLab (<code>make lab</code>) '
            "to use it.</p>")
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain", "")
            if output.get("output_type") in ("execute_result", "display_data") and WIDGET_REPR.match(text):
                output["data"] = {"text/html": note, "text/plain": "(interactive widget)"}


def lesson_exporter():
    """nbconvert's HTMLExporter, lab template, images embedded, with :data:`LESSON_TEMPLATE`."""
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", raw_template=LESSON_TEMPLATE, embed_images=True,
                        anchor_link_text="¶")


def render_lesson(exporter, lessons: list[Lesson], i: int, pages: dict[str, str], out: Path) -> Path:
    """Write lesson ``i``'s page: links rewritten, widgets noted, navigation bars, local MathJax."""
    import nbformat

    lesson = lessons[i]
    nb = nbformat.read(lesson.path, as_version=4)
    source = f"lessons/{lesson.path.name}"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite_markdown_links(cell.source, source, lesson.page, pages)
    widget_note(nb)
    resources = {"metadata": {"name": f"{lesson.number} {lesson.title}", "path": str(lesson.path.parent)},
                 "book_nav": lesson_nav(lessons, i), "book_mathjax": mathjax_tags("")}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    target = out / lesson.page
    target.write_text(body, encoding="utf-8")
    return target


# --------------------------------------------------------------------------------------------- home page

def markdown_html(text: str) -> str:
    """Markdown to HTML with nbconvert's renderer (math left for MathJax, headings with ids, tables)."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return markdown2html_mistune(strip_comments(text))


def inline_markdown(text: str) -> str:
    """One line of Markdown to HTML without the surrounding ``<p>``."""
    rendered = markdown_html(text).strip()
    return re.sub(r"^<p>(.*)</p>$", r"\1", rendered, flags=re.S)


def readme_intro(readme: Path = README) -> str:
    """The README's first paragraph (what the course is)."""
    text = readme.read_text(encoding="utf-8")
    body = text.split("\n", 1)[1].strip()
    return body.split("\n\n", 1)[0]


def render_index(lessons: list[Lesson], out: Path) -> Path:
    """The home page: title, what the course is, the lesson map, links to the API reference and benchmarks."""
    rows = []
    for lesson in lessons:
        goals = "".join(f"<li>{inline_markdown(goal)}</li>" for goal in lesson.goals)
        prereq = (f'<p class="book-prereq"><strong>Prerequisites.</strong> {inline_markdown(lesson.prerequisites)}'
                  "</p>" if lesson.prerequisites else "")
        time_ = f'<span class="book-time">{html.escape(lesson.time)} on a 2-core CPU</span>' if lesson.time else ""
        rows.append(f'<li class="book-lesson" id="lesson-{lesson.number}"><h3><span class="book-num">'
                    f'{lesson.number}</span> <a href="{lesson.page}">{html.escape(lesson.title)}</a> {time_}</h3>'
                    f'<p class="book-goals-intro">After this lesson you can</p><ul class="book-goals">{goals}</ul>'
                    f"{prereq}</li>")
    title = course_title()
    body = (f"<h1>{html.escape(title)}</h1>\n{markdown_html(readme_intro())}\n"
            "<p>This is the web edition: every lesson as executed, with its outputs and figures, readable without "
            "Python and without a network. To run the code, change it and do the exercises, open the lessons in "
            "JupyterLab (<code>make lab</code>).</p>\n"
            '<p class="book-links"><a href="api/index.html">API reference of <code>course_lib</code></a> · '
            '<a href="benchmarks/index.html">Benchmarks: course_lib against the reference libraries</a></p>\n'
            f'<h2 id="lessons">Lessons</h2>\n<ol class="book-map">{"".join(rows)}</ol>\n')
    target = out / "index.html"
    target.write_text(page_html(title, body, math=True), encoding="utf-8")
    return target


# --------------------------------------------------------------------------------------------- API reference

def public_names(module) -> list[str]:
    """The module's ``__all__``, in its order."""
    return list(getattr(module, "__all__", []))


def signature_of(obj) -> str:
    """``(arg, ...)`` for a function or class, ``""`` where Python cannot tell."""
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def doc_block(obj) -> str:
    """The docstring as preformatted text (formulas stay as written)."""
    doc = inspect.getdoc(obj) or ""
    return f'<div class="book-doc">{html.escape(doc)}</div>' if doc else '<p class="book-nodoc">(no docstring)</p>'


def methods_of(cls) -> list[tuple[str, object]]:
    """Public methods and properties defined in ``cls`` itself (not inherited from torch or object)."""
    members = []
    for name, value in vars(cls).items():
        if name.startswith("_") or not (inspect.isfunction(value) or isinstance(value, (property, classmethod,
                                                                                          staticmethod))):
            continue
        members.append((name, value.fget if isinstance(value, property) else getattr(value, "__func__", value)))
    return members


def describe(name: str, obj) -> str:
    """One entry of an API page: name, signature, docstring (methods of a class below it)."""
    anchor = html.escape(name)
    if inspect.isclass(obj) or inspect.isroutine(obj) or callable(obj):
        kind = "class" if inspect.isclass(obj) else "def"
        head = (f'<h3 id="{anchor}"><span class="book-kind">{kind}</span> <code>{anchor}'
                f"{html.escape(signature_of(obj))}</code></h3>")
        parts = [head, doc_block(obj)]
        if inspect.isclass(obj):
            for mname, meth in methods_of(obj):
                parts.append(f'<h4 id="{anchor}.{html.escape(mname)}"><code>{html.escape(mname)}'
                             f"{html.escape(signature_of(meth))}</code></h4>{doc_block(meth)}")
        return '<section class="book-entry">' + "".join(parts) + "</section>"
    value = repr(obj)
    value = value if len(value) <= 400 else value[:400] + " ..."
    return (f'<section class="book-entry"><h3 id="{anchor}"><span class="book-kind">'
            f"{html.escape(type(obj).__name__)}</span> <code>{anchor}</code></h3>"
            f'<div class="book-doc">{html.escape(value)}</div></section>')


def module_page(module, title: str, depth: int = 1) -> str:
    """A page for one module: its docstring, an index of its public names, then each one."""
    names = public_names(module)
    index = ", ".join(f'<a href="#{html.escape(n)}"><code>{html.escape(n)}</code></a>' for n in names)
    entries = "\n".join(describe(n, getattr(module, n)) for n in names)
    body = (f"<h1><code>{html.escape(module.__name__)}</code></h1>\n{doc_block(module)}\n"
            f'<p class="book-names">{index}</p>\n{entries}')
    return page_html(title, body, depth=depth)


def render_api(out: Path) -> list[Path]:
    """``api/index.html`` (course_lib itself and the list of submodules) and ``api/<submodule>.html``."""
    import course_lib

    api = out / "api"
    api.mkdir(parents=True, exist_ok=True)
    written, rows = [], []
    for sub in sorted(course_lib._SUBMODULES):
        module = importlib.import_module(f"course_lib.{sub}")
        first = (inspect.getdoc(module) or "").split("\n\n")[0].replace("\n", " ")
        rows.append(f'<li><a href="{sub}.html"><code>course_lib.{sub}</code></a>: {html.escape(first)}</li>')
        target = api / f"{sub}.html"
        target.write_text(module_page(module, f"course_lib.{sub}"), encoding="utf-8")
        written.append(target)
    top = module_page(course_lib, "course_lib API reference")
    top = top.replace("</main>", f'<h2 id="submodules">Submodules</h2>\n<ul class="book-subs">{"".join(rows)}</ul>'
                                 "\n</main>", 1)
    (api / "index.html").write_text(top, encoding="utf-8")
    return [api / "index.html", *written]


# --------------------------------------------------------------------------------------------- benchmarks

def result_tables(results: Path = BENCHMARKS / "results") -> list[Path]:
    """``benchmarks/results/*.md`` without the quick smoke runs (``*_quick``) and partial runs (``*_parts``)."""
    return [p for p in sorted(results.glob("*.md")) if not p.stem.endswith(("_quick", "_parts"))]


def render_markdown_page(source: Path, page: str, out: Path, pages: dict[str, str], title: str) -> Path:
    """A Markdown file of the repository as a site page: links rewritten, images copied beside it."""
    repo_path = source.relative_to(ROOT).as_posix()
    text = source.read_text(encoding="utf-8")
    target = out / page
    text = copy_markdown_images(text, source, target.parent)
    text = rewrite_markdown_links(text, repo_path, page, pages)
    body = markdown_html(text)
    target.parent.mkdir(parents=True, exist_ok=True)
    prose = re.sub(r"<(pre|code)\b[^>]*>.*?</\1>", "", body, flags=re.S)
    math = bool(re.search(r"\$[^$\n]+\$|\\\(|\\\[", prose))
    target.write_text(page_html(title, body, depth=page.count("/"), math=math), encoding="utf-8")
    return target


def render_benchmarks(out: Path, pages: dict[str, str]) -> list[Path]:
    """``benchmarks/index.html`` (the README plus a list of the result tables) and one page per table."""
    written = []
    tables = result_tables()
    for md in tables:
        written.append(render_markdown_page(md, f"benchmarks/{md.stem}.html", out, pages,
                                            f"Benchmark results: {md.stem}"))
    index = render_markdown_page(BENCHMARKS / "README.md", "benchmarks/index.html", out, pages, "Benchmarks")
    links = " · ".join(f'<a href="{md.stem}.html">{md.stem}</a>' for md in tables)
    text = index.read_text(encoding="utf-8").replace(
        "</h1>", f'</h1>\n<p class="book-links" id="result-tables">Result tables: {links}</p>', 1)
    index.write_text(text, encoding="utf-8")
    return [index, *written]


# --------------------------------------------------------------------------------------------- checks

RESOURCE_PATTERNS = (
    re.compile(r"<script\b[^>]*?\bsrc\s*=\s*[\"']?([^\"'\s>]+)", re.I),
    re.compile(r"<link\b[^>]*?\bhref\s*=\s*[\"']?([^\"'\s>]+)", re.I),
    re.compile(r"<(?:img|iframe|embed|source|video|audio|track|input)\b[^>]*?\bsrc\s*=\s*[\"']?([^\"'\s>]+)", re.I),
    re.compile(r"@import\s+(?:url\()?\s*[\"']?([^\"')\s;]+)", re.I),
    re.compile(r"url\(\s*[\"']?([^\"')\s]+)", re.I),
    re.compile(r"\bimport\(\s*[\"']([^\"']+)", re.I),
)
REMOTE = re.compile(r"^\s*(?:https?:)?//", re.I)


def external_resources(text: str) -> list[str]:
    """Every URL in an HTML page or stylesheet that a browser would fetch from the network."""
    return [url for pattern in RESOURCE_PATTERNS for url in pattern.findall(text) if REMOTE.match(url)]


def site_files(out: Path, suffixes: tuple[str, ...] = (".html", ".css")) -> list[Path]:
    """The site's pages and stylesheets (MathJax's own files included)."""
    return sorted(p for p in out.rglob("*") if p.suffix in suffixes)


def check_offline(out: Path) -> None:
    """Fail with the page and the URL if any page or stylesheet would load something from the network."""
    bad = [f"{p.relative_to(out)}: {url}" for p in site_files(out) for url in external_resources(p.read_text(
        encoding="utf-8", errors="replace"))]
    if bad:
        raise BookError("the site loads resources from the network:\n  " + "\n  ".join(bad))


def page_ids(page: Path) -> set[str]:
    """Every ``id`` (and ``name``) in a page, HTML entities and %-escapes decoded (nbconvert %-encodes heading ids,
    a browser matches a fragment either way)."""
    text = page.read_text(encoding="utf-8")
    return {unquote(html.unescape(v)) for v in re.findall(r"\b(?:id|name)=\"([^\"]+)\"", text)}


def local_references(text: str) -> list[str]:
    """Every relative ``href`` and ``src`` of a page (data URIs, external links and ``#fragments`` excluded)."""
    refs = re.findall(r"\b(?:href|src)=\"([^\"]*)\"", text)
    return [html.unescape(r) for r in refs if r and not re.match(r"^([a-z][a-z0-9+.-]*:|//|#)", r, flags=re.I)]


def broken_links(out: Path) -> list[str]:
    """Relative links that point to no file of the site, and ``#anchors`` that point to no id of a site page."""
    broken, ids = [], {}
    for page in site_files(out, (".html",)):
        if MATHJAX_DIR in page.relative_to(out).as_posix():
            continue
        for ref in local_references(page.read_text(encoding="utf-8")):
            path, _, anchor = ref.partition("#")
            target = (page.parent / path.split("?")[0]).resolve()
            if not target.is_file():
                broken.append(f"{page.relative_to(out)}: {ref}")
            elif anchor and target.suffix == ".html":
                if target not in ids:
                    ids[target] = page_ids(target)
                if unquote(anchor) not in ids[target]:
                    broken.append(f"{page.relative_to(out)}: {ref} (no id {anchor!r})")
    return broken


# --------------------------------------------------------------------------------------------- assets and main

def mathjax_source() -> Path:
    """The MathJax 2.7 files that ``jupyter-server-mathjax`` ships."""
    try:
        import jupyter_server_mathjax
    except ImportError as err:
        raise BookError("jupyter-server-mathjax is missing: `make book` installs it (requirements-teacher.txt), "
                        "or `.venv/bin/pip install -r requirements-teacher.txt`") from err
    return Path(jupyter_server_mathjax.__file__).parent / "static"


def copy_mathjax(out: Path) -> Path:
    """Copy the parts of MathJax a page loads into ``_static/mathjax``; returns the entry file."""
    src, dest = mathjax_source(), out / MATHJAX_DIR

    def skip(folder: str, names: list[str]) -> list[str]:
        here = Path(folder).relative_to(src).as_posix()
        return [n for n in names if f"{here}/{n}" in MATHJAX_SKIP]

    for part in MATHJAX_PARTS:
        if (src / part).is_dir():
            shutil.copytree(src / part, dest / part, ignore=skip, dirs_exist_ok=True)
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / part, dest / part)
    return dest / MATHJAX_ENTRY


BOOK_CSS = """\
/* The web edition's own pages; the lesson pages keep JupyterLab's look and take only the bars from here. */
body.book-page { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  line-height: 1.55; color: #1d1d1f; background: #fff; margin: 0; }
.book-main { max-width: 60rem; margin: 0 auto; padding: 1rem 1.5rem 4rem; }
.book-main table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; display: block; overflow-x: auto; }
.book-main th, .book-main td { border: 1px solid #d0d0d5; padding: 0.25rem 0.5rem; vertical-align: top; }
.book-main th { background: #f3f3f6; }
.book-main pre { background: #f6f6f8; padding: 0.6rem; overflow-x: auto; }
.book-main code { font-size: 0.92em; }
.book-main img { max-width: 100%; }
.book-top, .book-nav { display: flex; gap: 1.5rem; flex-wrap: wrap; padding: 0.6rem 1.5rem; background: #f3f3f6;
  border-bottom: 1px solid #d0d0d5; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  font-size: 0.95rem; }
.book-nav { justify-content: space-between; margin: 0 0 1rem; border: 1px solid #d0d0d5; border-radius: 4px; }
.book-nav .book-next { text-align: right; }
.book-top a, .book-nav a { text-decoration: none; color: #0b57d0; }
.book-top a:hover, .book-nav a:hover { text-decoration: underline; }
.book-map { list-style: none; padding: 0; }
.book-lesson { border-top: 1px solid #e2e2e8; padding: 0.5rem 0 0.75rem; }
.book-lesson h3 { margin: 0.3rem 0; font-size: 1.15rem; }
.book-num { display: inline-block; min-width: 2rem; color: #6b6b75; font-variant-numeric: tabular-nums; }
.book-time { font-size: 0.8rem; font-weight: normal; color: #6b6b75; margin-left: 0.5rem; }
.book-goals-intro { margin: 0.2rem 0 0; color: #4a4a55; font-size: 0.95rem; }
.book-goals { margin: 0.2rem 0; font-size: 0.95rem; }
.book-prereq { margin: 0.2rem 0; font-size: 0.9rem; color: #4a4a55; }
.book-entry { border-top: 1px solid #e2e2e8; margin-top: 1rem; }
.book-entry h3 code, .book-entry h4 code { font-size: 0.95rem; white-space: pre-wrap; }
.book-kind { font-size: 0.8rem; color: #6b6b75; font-weight: normal; }
.book-doc { white-space: pre-wrap; font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 0.88rem; background: #f8f8fa; padding: 0.5rem 0.75rem; border-left: 3px solid #d0d0d5; }
.book-names { line-height: 1.9; }
.book-main .anchor-link { visibility: hidden; text-decoration: none; margin-left: 0.3em; color: #6b6b75; }
.book-main :is(h1, h2, h3, h4):hover .anchor-link { visibility: visible; }
.book-widget { padding: 0.4rem 0.6rem; background: #fff8e1; border-left: 3px solid #f0b400; margin: 0; }
body.jp-Notebook > main { max-width: 76rem; margin: 0 auto; }
"""


def write_css(out: Path) -> Path:
    """``_static/book.css``: system fonts, a readable width, no framework."""
    target = out / "_static" / "book.css"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(BOOK_CSS, encoding="utf-8")
    return target


def clear_output(out: Path) -> None:
    """Empty ``out`` for a new build, but only if it is empty or an earlier book: never delete anything else."""
    if out.exists() and any(out.iterdir()):
        if not ((out / "index.html").is_file() and (out / "_static" / "book.css").is_file()):
            raise BookError(f"{out} is not empty and holds no earlier book: choose an empty or new folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def student_lessons(lessons_dir: Path, dest: Path) -> Path:
    """The lessons as students get them from ``make homework`` (solutions replaced by placeholders, exercise and
    check outputs cleared), written to ``dest``; returns ``dest``."""
    import nbformat

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from nbtools import strip_solutions

    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(lessons_dir).glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        strip_solutions(nb, stubs=True)
        nbformat.write(nb, dest / path.name)
    return dest


def build_book(out: Path = DEFAULT_OUT, lessons_dir: Path = LESSONS, verbose: bool = False,
               student: bool = False) -> Path:
    """Build the whole site into ``out`` (emptied first) and check it; returns the path of ``index.html``.
    ``student=True``: the student edition, every solution replaced by its placeholder (as ``make homework``).

    Raises :class:`BookError` when a page would load something from the network or a local link is broken.
    """
    if student:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            return build_book(out, student_lessons(lessons_dir, Path(tmp)), verbose)
    out = Path(out).resolve()
    clear_output(out)
    started = time.perf_counter()
    lessons = read_lessons(lessons_dir)
    pages = site_map(lessons)
    write_css(out)
    copy_mathjax(out)
    exporter = lesson_exporter()
    for i, lesson in enumerate(lessons):
        render_lesson(exporter, lessons, i, pages, out)
        if verbose:
            print(f"  {lesson.page}  ({time.perf_counter() - started:.1f} s)", flush=True)
    render_api(out)
    render_benchmarks(out, pages)
    index = render_index(lessons, out)
    check_offline(out)
    broken = broken_links(out)
    if broken:
        raise BookError("broken links in the site:\n  " + "\n  ".join(broken))
    return index


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python scripts/build_book.py [--student] [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the site (default build/book, with --student build/book-student)")
    parser.add_argument("--student", action="store_true",
                        help="the student edition: solutions replaced by placeholders, as in make homework")
    args = parser.parse_args(argv)
    out = args.out or (DEFAULT_OUT.with_name("book-student") if args.student else DEFAULT_OUT)
    started = time.perf_counter()
    try:
        index = build_book(out, verbose=True, student=args.student)
    except BookError as err:
        print(f"make book: {err}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in index.parent.rglob("*") if p.is_file())
    print(f"built {index} ({size / 2**20:.1f} MiB) in {time.perf_counter() - started:.1f} s; "
          f"open it in any browser, e.g. xdg-open {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
