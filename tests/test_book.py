"""`make book`: the offline web edition (scripts/build_book.py), built once into a temporary folder and read back.

The pages are parsed here with the standard library's HTMLParser, independently of the builder's own checks: every
page exists, every relative link and image resolves (anchors into lessons included), nothing is loaded from the
network, MathJax is where the pages load it from, every figure of every lesson is on its page, the home page lists
every lesson, no link to a notebook is left, the API reference has every public name. No browser here: the
real-browser checks (math typeset, figures drawn, links followed) reuse :func:`build_book` in the browser tests.

jupyter-server-mathjax comes with `make test` (requirements-teacher.txt); without it these tests skip, except under
``CI=true``, where it is a failure.
"""
from __future__ import annotations

import importlib
import os
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_book as bb  # noqa: E402

LESSONS = sorted(p for p in (ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))
REMOTE = re.compile(r"^\s*(https?:)?//", re.I)
#: tags whose src a browser fetches by itself (an <a href> is a link the reader may follow, not a resource)
SRC_TAGS = {"script", "img", "iframe", "embed", "source", "video", "audio", "track", "input", "frame"}


def _need_mathjax():
    try:
        import jupyter_server_mathjax  # noqa: F401
    except ImportError:
        msg = "jupyter-server-mathjax is not installed: `make test` installs it (requirements-teacher.txt)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


class Page(HTMLParser):
    """Everything the checks need from one HTML page: tags with attributes, ids, inline style text."""

    def __init__(self, path: Path):
        super().__init__(convert_charrefs=True)
        self.path, self.tags, self.ids, self.styles, self._in_style = path, [], set(), [], False
        self.feed(path.read_text(encoding="utf-8"))
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        self._in_style = tag == "style"

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        self._in_style = False

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)

    def refs(self):
        """(tag, attribute, value) for every href and src."""
        return [(t, k, v) for t, a in self.tags for k, v in a.items() if k in ("href", "src") and v]

    def images(self):
        return [a.get("src", "") for t, a in self.tags if t == "img"]


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    _need_mathjax()
    index = bb.build_book(tmp_path_factory.mktemp("book") / "book")
    assert index.name == "index.html" and index.is_file()
    return index.parent


@pytest.fixture(scope="module")
def pages(book):
    return {p.relative_to(book).as_posix(): Page(p) for p in book.rglob("*.html")
            if not p.relative_to(book).as_posix().startswith(bb.MATHJAX_DIR)}


def _submodules():
    import course_lib

    return sorted(course_lib._SUBMODULES)


def test_one_page_per_lesson_plus_index_api_and_benchmarks(book):
    expected = {"index.html", "api/index.html", "benchmarks/index.html"}
    expected |= {p.stem + ".html" for p in LESSONS}
    expected |= {f"api/{sub}.html" for sub in _submodules()}
    tables = [p for p in (ROOT / "benchmarks" / "results").glob("*.md") if not p.stem.endswith(("_quick", "_parts"))]
    assert tables, "no benchmark tables to render"
    expected |= {f"benchmarks/{p.stem}.html" for p in tables}
    missing = sorted(e for e in expected if not (book / e).is_file())
    assert not missing, f"pages missing from the book: {missing}"
    assert not list(book.glob("benchmarks/*_quick*")), "the quick smoke runs are not part of the book"


def test_every_relative_link_and_image_resolves(book, pages):
    broken = []
    for name, page in pages.items():
        for tag, attr, ref in page.refs():
            if re.match(r"^([a-z][a-z0-9+.-]*:|//)", ref, flags=re.I):
                continue
            path, _, anchor = ref.partition("#")
            target = (page.path.parent / unquote(path.split("?")[0])).resolve() if path else page.path
            if not target.is_file():
                broken.append(f"{name}: <{tag} {attr}={ref!r}> (no file)")
            elif anchor and target.suffix == ".html":
                ids = {unquote(i) for i in pages[target.relative_to(book).as_posix()].ids}
                if unquote(anchor) not in ids:
                    broken.append(f"{name}: <{tag} {attr}={ref!r}> (no id {anchor!r})")
    assert not broken, "\n".join(broken[:20])


def test_nothing_is_loaded_from_the_network(book, pages):
    remote = []
    for name, page in pages.items():
        for tag, attrs in page.tags:
            url = attrs.get("src") if tag in SRC_TAGS else attrs.get("href") if tag == "link" else None
            if url and REMOTE.match(url):
                remote.append(f"{name}: <{tag}> {url}")
            if tag == "script" and "import(" in "".join(attrs.values()):
                remote.append(f"{name}: dynamic import in a script attribute")
    css = [(p.relative_to(book).as_posix(), p.read_text(encoding="utf-8")) for p in book.rglob("*.css")]
    css += [(name, s) for name, page in pages.items() for s in page.styles]
    for name, text in css:
        for url in re.findall(r"(?:@import\s+(?:url\()?|url\()\s*[\"']?([^\"')\s;]+)", text):
            if REMOTE.match(url):
                remote.append(f"{name}: css {url}")
    for name in pages:
        text = (book / name).read_text(encoding="utf-8")
        remote += [f"{name}: import({u})" for u in re.findall(r"\bimport\(\s*[\"']([^\"']+)", text) if REMOTE.match(u)]
    assert not remote, "\n".join(remote[:20])
    # and papers may still be linked: an <a href="https://..."> is not a resource
    assert any(REMOTE.match(v) for p in pages.values() for t, k, v in p.refs() if t == "a")


def test_the_builder_refuses_a_page_that_loads_from_a_cdn(tmp_path):
    """The check inside the builder catches what nbconvert's lab template loads by default."""
    from nbconvert import HTMLExporter

    stock, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(LESSONS[0], as_version=4))
    found = bb.external_resources(stock)
    assert any("require" in u for u in found) and any("MathJax" in u or "mathjax" in u for u in found), found
    (tmp_path / "page.html").write_text('<link rel="stylesheet" href="https://cdn.example/x.css">\n'
                                        "<style>@import url(//fonts.example/f.css);</style>")
    with pytest.raises(bb.BookError, match=r"https://cdn\.example/x\.css[\s\S]*//fonts\.example/f\.css"):
        bb.check_offline(tmp_path)


def test_mathjax_is_bundled_where_the_pages_load_it(book, pages):
    loaders = {}
    for name, page in pages.items():
        for tag, attrs in page.tags:
            if tag == "script" and "MathJax.js" in attrs.get("src", ""):
                loaders[name] = attrs["src"]
    assert {p.stem + ".html" for p in LESSONS} <= set(loaders), "a lesson page does not load MathJax"
    for name, src in loaders.items():
        path, _, query = src.partition("?")
        entry = (book / name).parent / path
        assert entry.is_file(), f"{name}: {src} does not exist"
        mathjax = entry.parent
        configs = re.match(r"config=([^&]+)", query).group(1).split(",")
        for config in configs:
            assert (mathjax / "config" / f"{config}.js").is_file(), f"{name}: MathJax config {config} missing"
    text = (book / LESSONS[0].with_suffix(".html").name).read_text(encoding="utf-8")
    config = re.search(r'<script type="text/x-mathjax-config">(.*?)</script>', text, flags=re.S).group(1)
    assert "inlineMath: [['$', '$']" in config and "displayMath: [['$$', '$$']" in config
    assert "processEscapes: true" in config
    # the fonts the configuration asks for are there
    assert "webFont: 'STIX-Web'" in config
    assert any((book / bb.MATHJAX_DIR / "fonts" / "HTML-CSS" / "STIX-Web").rglob("*.woff"))


def _image_outputs(nb) -> int:
    count = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if any(m.startswith("image/") for m in output.get("data", {})):
                count += 1
        if cell.cell_type == "markdown":
            count += len(re.findall(r"!\[[^\]]*\]\(|<img\s", cell.source))
    return count


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_each_lesson_page_has_every_figure_embedded(book, pages, lesson):
    page = pages[lesson.stem + ".html"]
    images = page.images()
    assert len(images) == _image_outputs(nbformat.read(lesson, as_version=4)), lesson.name
    assert all(src.startswith("data:image/") for src in images), "figures are embedded as data URIs"
    text = page.path.read_text(encoding="utf-8")
    assert not re.search(r"^(VBox|HBox)\(children=", text, flags=re.M), "a widget's repr instead of the note"
    assert 'class="book-nav"' in text and 'href="index.html"' in text


def test_lesson_navigation_chains_every_lesson(pages):
    names = [p.stem + ".html" for p in LESSONS]
    for i, name in enumerate(names):
        links = {a.get("class"): a.get("href") for t, a in pages[name].tags if t == "a" and a.get("class")}
        assert links.get("book-home") == "index.html"
        assert links.get("book-prev") == (names[i - 1] if i else None), name
        assert links.get("book-next") == (names[i + 1] if i + 1 < len(names) else None), name


def test_the_home_page_lists_every_lesson_with_goals_and_links(pages):
    index = pages["index.html"]
    hrefs = {a.get("href") for t, a in index.tags if t == "a"}
    text = index.path.read_text(encoding="utf-8")
    for lesson in LESSONS:
        assert lesson.stem + ".html" in hrefs, f"the home page does not link {lesson.stem}"
        nb = nbformat.read(lesson, as_version=4)
        goals = bb.learning_goals("\n\n".join(c.source for c in nb.cells[:3] if c.cell_type == "markdown"))
        assert len(goals) >= 3, f"{lesson.name}: learning goals not found"
        item = re.search(rf'<li class="book-lesson" id="lesson-{lesson.stem[:2]}">(.*?)</li>\s*(?=<li class|</ol>)',
                         text, flags=re.S).group(1)
        assert item.count("<li>") == len(goals), lesson.name
    assert {"api/index.html", "benchmarks/index.html"} <= hrefs
    assert "<!--" not in re.sub(r"<script.*?</script>", "", text, flags=re.S), "a prose marker leaked"


def test_no_link_to_a_notebook_is_left(pages):
    left = [f"{n}: {v}" for n, p in pages.items() for t, k, v in p.refs()
            if re.search(r"\.ipynb(#|$)", v) and not REMOTE.match(v)]
    assert not left, left


def test_the_api_reference_has_every_public_name(pages):
    missing = []
    for sub in _submodules():
        module = importlib.import_module(f"course_lib.{sub}")
        ids = pages[f"api/{sub}.html"].ids
        missing += [f"course_lib.{sub}.{n}" for n in module.__all__ if n not in ids]
        assert f"{sub}.html" in {a.get("href") for t, a in pages["api/index.html"].tags if t == "a"}
    import course_lib

    missing += [f"course_lib.{n}" for n in course_lib.__all__ if n not in pages["api/index.html"].ids]
    assert not missing, missing


def test_benchmark_pages_show_their_images(book, pages):
    shown = [(n, src) for n, p in pages.items() if n.startswith("benchmarks/") for src in p.images()]
    assert ("benchmarks/blackbox.html", "blackbox.png") in shown
    assert (book / "benchmarks" / "blackbox.png").is_file()


def test_links_between_lessons_and_to_repository_files(tmp_path):
    """Two small lessons that link each other (with an anchor), a library file, a script and a paper."""
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    for number, other in (("00", "01_second"), ("01", "00_first")):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(
            f"# Lesson {number} — Title {number}\n\n**Learning goals.** After this lesson you can\n\n- do $x^2$;\n"
            f"- and more.\n\n**Prerequisites.** None.\n\n## Part two\n\n"
            f"See [the other lesson]({other}.ipynb#Part-two), [PGD](../course_lib/attacks/pgd.py), "
            f"[a script](../scripts/train_models.py) and [a paper](https://arxiv.org/abs/1706.06083).")]
        nbformat.write(nb, lessons / f"{number}_{'first' if number == '00' else 'second'}.ipynb")
    out = bb.build_book(tmp_path / "site", lessons_dir=lessons).parent
    first = (out / "00_first.html").read_text(encoding="utf-8")
    assert 'href="01_second.html#Part-two"' in first
    assert 'href="api/attacks.html"' in first
    assert "a script" in first and "train_models.py" not in first
    assert 'href="https://arxiv.org/abs/1706.06083"' in first
    # a link to an anchor that does not exist fails the build
    nb = nbformat.read(lessons / "00_first.ipynb", as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace("#Part-two", "#No-such-part")
    nbformat.write(nb, lessons / "00_first.ipynb")
    with pytest.raises(bb.BookError, match="No-such-part"):
        bb.build_book(tmp_path / "site2", lessons_dir=lessons)


def test_the_builder_never_empties_a_folder_that_is_not_a_book(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(bb.BookError, match="not empty"):
        bb.clear_output(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


class _Text(HTMLParser):
    """The text a page shows (syntax-highlighted code comes back as its source: the spans only split it)."""

    def __init__(self, path: Path):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_data(self, data):
        self.parts.append(data)


def test_the_student_edition_has_no_solution_and_the_lesson_edition_has_them(book, tmp_path):
    """`build_book.py --student`: a lesson's page shows its placeholders and none of its code solutions' lines,
    while the same lines are on the page of the usual edition (so the search can find them)."""
    from test_nbgrader import _solution_lines

    _need_mathjax()
    student = bb.build_book(tmp_path / "student", student=True).parent
    for name in ["07_adversarial_examples", "14_verification"]:
        nb = nbformat.read(ROOT / "lessons" / f"{name}.ipynb", as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")   # Markdown is rendered, not shown
        lines = [ln for ln in _solution_lines(ROOT / "lessons" / f"{name}.ipynb")
                 if ln in code and not re.fullmatch(r"def \w+\(.*\):", ln)]
        shown = "".join(_Text(book / f"{name}.html").parts)
        hidden = "".join(_Text(student / f"{name}.html").parts)
        assert lines and all(ln in shown for ln in lines), name
        assert not [ln for ln in lines if ln in hidden], name
        assert "YOUR CODE HERE" in hidden and "raise NotImplementedError()" in hidden
        # the prose answers too: the teacher's rubric is in the lesson edition only
        assert "Rubric for the teacher" in shown and "Rubric for the teacher" not in hidden
        assert "YOUR ANSWER HERE" in hidden


# --------------------------------------------------------------------------- in a real browser
#: pages opened in Chromium: the home page, and two lessons with many formulas and figures
BROWSED = ["index.html", "03_saliency.html", "14_verification.html"]
JS_MATH_DONE = "() => new Promise(done => MathJax.Hub.Queue(() => done(true)))"
JS_MATH = """() => ({
    sources: document.querySelectorAll('script[type^="math/tex"]').length,
    typeset: document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_CHTML').length,
    errors: document.querySelectorAll('.MathJax_Error, merror, [data-mjx-error]').length,
    raw: (document.body.innerText.match(/\\$[^$\\n]*\\\\[a-zA-Z]+[^$\\n]*\\$/g) || []).slice(0, 3),
})"""
JS_IMAGES = """() => Array.from(document.images).map(
    i => ({src: i.src.slice(0, 60), ok: i.complete && i.naturalWidth > 0}))"""


@pytest.mark.browser
def test_three_pages_in_a_real_browser(book):
    """Opened from disk in headless Chromium with every non-file request blocked (and recorded): the formulas of
    the two lessons are typeset by the bundled MathJax (one typeset element per TeX source, no error, no raw
    `$\\...$` left), every image is decoded, and the links home -> lesson 03 -> next (04) -> home and lesson 14
    -> previous (13) lead to those pages."""
    from playwright.sync_api import sync_playwright
    from test_lab_e2e import need_browser

    exe = need_browser()
    site = book
    remote = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()

            def only_files(route):
                url = route.request.url
                if url.startswith(("file:", "data:", "about:")):
                    route.continue_()
                else:
                    remote.append(url)
                    route.abort()

            page.route("**/*", only_files)
            for name in BROWSED:
                page.goto((site / name).as_uri())
                page.evaluate(JS_MATH_DONE)
                math = page.evaluate(JS_MATH)
                if name != "index.html":
                    assert math["sources"] >= 20, (name, math)
                    assert math["typeset"] >= math["sources"], (name, math)
                assert math["errors"] == 0 and not math["raw"], (name, math)
                images = page.evaluate(JS_IMAGES)
                assert name == "index.html" or len(images) >= 5, (name, len(images))
                assert all(i["ok"] for i in images), (name, [i for i in images if not i["ok"]][:3])
            page.goto((site / "index.html").as_uri())
            page.click('a[href="03_saliency.html"]')
            assert page.url.endswith("/03_saliency.html") and "Saliency" in page.title()
            page.click("nav.book-nav >> nth=0 >> a.book-next")
            assert page.url.endswith("/04_cam_gradcam_occlusion.html")
            page.click("nav.book-nav >> nth=0 >> a.book-home")
            assert page.url.endswith("/index.html")
            page.goto((site / "14_verification.html").as_uri())
            page.click("nav.book-nav >> nth=0 >> a.book-prev")
            assert page.url.endswith("/13_detecting_adversarial_examples.html")
        finally:
            browser.close()
    assert not remote, f"pages asked the network for {remote[:5]}"
