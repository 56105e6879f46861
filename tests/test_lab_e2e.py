"""Every widget of the course, in a real browser: JupyterLab + headless Chromium (Debian's ``chromium`` package,
driven by Playwright through ``executable_path``; no browser is ever downloaded).

For each lesson that builds a widget (a call of a ``course_lib.widgets`` explorer), the test starts JupyterLab on a
free loopback port with a random token and temporary config, runtime, data, settings and workspace folders and a
temporary copy of the lesson (autosave never touches lessons/), opens the lesson, waits until the app reports the
kernel idle (read from ``window.jupyterapp``, not from the toolbar), runs all cells, and checks that no cell
failed. Then it moves every control of every explorer: each slider with the keyboard (one step right, one step
back) and by dragging its handle, each dropdown to another option and back, and asserts that the caption above the
figure states the control's new value (the explorer prints one line: image, method or attack, eps, the model's
answer), that the figure changed, that going back draws the very same figure again (it follows the control, it
did not merely change), and that no "Error displaying widget" and no traceback appears anywhere on the page.
A failure saves a screenshot in build/e2e-screenshots/. The server is shut down through its API and the test
checks that no server or kernel process is left.

The negative control (marker ``negative_control``) runs the same check with the widget manager extension
(@jupyter-widgets/jupyterlab-manager) disabled and expects it to fail: a check that passed there would not be
looking at the widgets.

``E2E_LESSONS=07`` (lesson numbers, space-separated) limits the run to those lessons while debugging; ``-s`` shows
each control's move and the caption it produced.

Without Playwright or a browser the test skips with the reason (``make test`` installs both when run as root);
under ``CI=true`` that is a failure.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "lessons"
SHOTS = ROOT / "build" / "e2e-screenshots"
WIDGET_MANAGER = "@jupyter-widgets/jupyterlab-manager"
# How the caption printed above an explorer's figure states each control's value (the control's description ->
# the text that must appear once the control shows ``value``, as the browser displays it).
CAPTION = {
    "image": lambda v: f"image {v}",
    "eps": lambda v: f"eps = {v}",
    "attack": lambda v: f", {v} at eps",
    "method": lambda v: f": {v} for '",
    "corruption": lambda v: f", {v} at severity",
    "severity": lambda v: f"at severity {v}:",
    "explain": lambda v: None if v == "predicted class" else f" for '{v}';",
}
CHROMIUM_CANDIDATES = ["/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome"]


def widget_lessons() -> list[Path]:
    """The lessons whose code builds an explorer (a ``*_explorer(`` call that is not its import)."""
    found = []
    for path in sorted(LESSONS.glob("[0-9]*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        if re.search(r"^(?!from |import ).*\b\w+_explorer\(", code, re.M):
            found.append(path)
    return found


def chromium() -> str | None:
    for c in CHROMIUM_CANDIDATES:
        path = c if os.path.isabs(c) else shutil.which(c)
        if path and os.access(path, os.X_OK):
            return path
    return None


def need_browser():
    """Playwright's module and a Chromium binary, or a skip (a failure under CI=true) that says what is missing."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright (pip install -r requirements-teacher.txt)")
    exe = chromium()
    if exe is None:
        missing.append("a Chromium browser (Debian: apt-get install chromium; make test installs it as root)")
    if missing:
        msg = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: not skipped)")
        pytest.skip(msg)
    return exe


def test_the_lessons_with_widgets_are_found():
    """The discovery that the browser test relies on: the two explorers of the course (a test that found no
    lesson would pass vacuously)."""
    names = [p.name for p in widget_lessons()]
    assert "04_cam_gradcam_occlusion.ipynb" in names and "07_adversarial_examples.ipynb" in names, names


# --------------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server in a temporary home: ``Lab(tmp, notebooks, disabled=[...])``; ``.url(path)``;
    ``.close()`` shuts it down through the API and asserts that no process of it is left."""

    def __init__(self, tmp: Path, notebooks: list[Path], disabled: tuple[str, ...] = ()):
        import psutil

        self.tmp, self.port, self.token = tmp, free_port(), secrets.token_hex(16)
        work = tmp / "course"
        work.mkdir(parents=True)
        for nb in notebooks:
            shutil.copy(nb, work / nb.name)
        dirs = {k: tmp / k.lower() for k in ["JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR",
                                             "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR"]}
        for d in dirs.values():
            d.mkdir()
        page_config = {"disabledExtensions": {name: True for name in disabled}}
        (dirs["JUPYTER_CONFIG_DIR"] / "labconfig").mkdir()
        (dirs["JUPYTER_CONFIG_DIR"] / "labconfig" / "page_config.json").write_text(json.dumps(page_config))
        settings = dirs["JUPYTERLAB_SETTINGS_DIR"]
        # every cell in the page (no virtual scrolling), no news or update pop-ups over the notebook
        for plugin, values in [("@jupyterlab/notebook-extension/tracker", {"windowingMode": "none"}),
                               ("@jupyterlab/apputils-extension/notification", {"fetchNews": "false",
                                                                               "checkForUpdates": False})]:
            f = settings / f"{plugin}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(values))
        env = {**os.environ, **{k: str(v) for k, v in dirs.items()}, "OMP_NUM_THREADS": "2"}
        env.pop("JUPYTER_PATH", None)
        cmd = [str(Path(sys.executable).with_name("jupyter-lab")), "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={work}",
               f"--IdentityProvider.token={self.token}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if os.getuid() == 0:
            cmd.append("--ServerApp.allow_root=True")
        self.log = open(tmp / "server.log", "w")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.server_log()}")
            try:
                with urllib.request.urlopen(self.api("status"), timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"jupyter lab did not answer within 90 s:\n{self.server_log()}")
            time.sleep(0.5)

    def api(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/api/{path}?token={self.token}"

    def url(self, notebook: str) -> str:
        return f"http://127.0.0.1:{self.port}/lab/tree/{notebook}?token={self.token}&reset"

    def server_log(self) -> str:
        self.log.flush()
        return (self.tmp / "server.log").read_text()[-4000:]

    def close(self) -> None:
        """Shut the server down (it stops its kernels first); then no server or kernel process may remain."""
        import psutil

        try:
            family = [self.ps, *self.ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        try:
            urllib.request.urlopen(urllib.request.Request(self.api("shutdown"), method="POST"), timeout=10)
        except OSError:
            pass
        _, alive = psutil.wait_procs(family, timeout=30)
        for p in alive:  # clean up anyway, then fail below
            p.kill()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()
        assert not alive, f"processes left behind after the server's shutdown: {[p.pid for p in alive]}"


# --------------------------------------------------------------------------- the page
JS_WAIT_APP = """async () => {
    const app = window.jupyterapp;
    await app.started; await app.restored;
}"""
JS_NOTEBOOK_READY = """(name) => {
    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    if (!w || !w.context || !w.context.path.endsWith(name) || !w.sessionContext) return false;
    const k = w.sessionContext.session && w.sessionContext.session.kernel;
    return !!k && k.status === 'idle' && k.connectionStatus === 'connected';
}"""
JS_RUN_ALL = """async () => {
    const w = window.jupyterapp.shell.currentWidget;
    const ok = await window.jupyterapp.commands.execute('notebook:run-all-cells');
    return ok;
}"""
JS_KERNEL_IDLE = """() => {
    const w = window.jupyterapp.shell.currentWidget;
    const k = w.sessionContext.session.kernel;
    return k.status === 'idle' && !w.content.widgets.some(c => c.model.type === 'code' && c.promptNode &&
        c.promptNode.textContent.includes('*'));
}"""
JS_COUNT_IDLES = """() => {
    window.__idles = 0;
    const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
    k.statusChanged.connect((_, status) => { if (status === 'idle') window.__idles += 1; });
}"""
JS_CELL_ERRORS = """() => {
    const w = window.jupyterapp.shell.currentWidget;
    const bad = [];
    w.content.widgets.forEach((c, i) => {
        if (c.model.type !== 'code') return;
        const outs = c.model.outputs.toJSON();
        for (const o of outs) if (o.output_type === 'error') bad.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
        if (c.model.executionCount === null) bad.push(`cell ${i}: not executed`);
    });
    return bad;
}"""


def wait_idle(page, timeout_s: float = 120) -> None:
    page.wait_for_function(JS_KERNEL_IDLE, timeout=timeout_s * 1000, polling=200)


def open_and_run(page, lab: Lab, name: str, run_timeout_s: float = 600) -> None:
    """Open ``name``, wait for an idle kernel, run every cell; assert that every code cell ran without error."""
    page.goto(lab.url(name))
    page.wait_for_function("() => !!window.jupyterapp", timeout=120_000)
    page.evaluate(JS_WAIT_APP)
    page.wait_for_function(JS_NOTEBOOK_READY, arg=name, timeout=120_000, polling=250)
    page.set_default_timeout(run_timeout_s * 1000)
    page.evaluate(JS_RUN_ALL)
    wait_idle(page, run_timeout_s)
    page.set_default_timeout(30_000)
    errors = page.evaluate(JS_CELL_ERRORS)
    assert not errors, f"{name}: cells failed in JupyterLab: {errors}"
    page.evaluate(JS_COUNT_IDLES)


def no_errors_on_page(page, where: str) -> None:
    text = page.evaluate("() => document.body.innerText")
    for bad in ["Error displaying widget", "Traceback (most recent call last)"]:
        assert bad not in text, f"{where}: the page shows {bad!r}"


def text(s: str) -> str:
    """What the page shows, with the no-break spaces that ipywidgets puts in labels made plain."""
    return s.replace("\xa0", " ").strip()


class Explorer:
    """One explorer on the page: its controls by description, its caption and its figure."""

    def __init__(self, page, box):
        self.page, self.box = page, box

    def control(self, kind: str, label: str):
        return self.box.locator(f".widget-{kind}").filter(has=self.page.locator(".widget-label", has_text=label))

    def labels(self, kind: str) -> list[str]:
        return [text(t) for t in self.box.locator(f".widget-{kind} .widget-label").all_inner_texts()]

    def caption(self) -> str:
        texts = self.box.locator(".widget-output .jp-OutputArea-output pre").all_inner_texts()
        return text(texts[0]) if texts else ""

    def figure(self) -> str:
        imgs = self.box.locator(".widget-output img")
        return imgs.first.get_attribute("src") if imgs.count() else ""

    def state(self):
        wait_idle(self.page)
        return self.caption(), self.figure()

    def redraws(self) -> int:
        """How many times the kernel has gone idle since the lesson ran (each widget callback ends with one)."""
        return self.page.evaluate("() => window.__idles")

    def readout(self, label: str) -> str:
        return text(self.control("slider", label).locator(".widget-readout").inner_text())

    def wait_caption(self, label: str, shown: str, since: int, exact: str | None = None) -> tuple[str, str]:
        """After an action taken when ``redraws()`` was ``since``: wait for the kernel to have run the widget's
        callback and gone idle, the caption to state ``shown`` for the control ``label`` (or, with ``exact``, to be
        exactly that caption) and the figure to be there and settled; return (caption, figure)."""
        want = CAPTION[label](shown)
        deadline = time.monotonic() + 60
        last = None
        while time.monotonic() < deadline:
            if self.redraws() > since:
                now = self.state()
                cap, fig = now
                if fig and (cap == exact if exact is not None else want is None or want in cap):
                    if now == last:  # the same twice, 0.3 s apart: nothing more is coming
                        return now
                    last = now
            time.sleep(0.3)
        expected = f"exactly {exact!r}" if exact is not None else f"it to contain {want!r}"
        raise AssertionError(f"control {label!r} shows {shown!r} but the caption says {self.caption()!r} "
                             f"(expected {expected})")


def check_slider(ex: Explorer, label: str, where: str) -> None:
    slider = ex.control("slider", label)
    handle = slider.locator(".noUi-handle")
    cap0, fig0 = ex.state()
    v0 = ex.readout(label)
    assert CAPTION[label](v0) in cap0, f"{where}: caption {cap0!r} does not state {label} = {v0}"
    # keyboard: one step right, then one step back
    handle.focus()
    n = ex.redraws()
    handle.press("ArrowRight" if handle.get_attribute("aria-valuenow") != handle.get_attribute("aria-valuemax")
                 else "ArrowLeft")
    v1 = ex.readout(label)
    assert v1 != v0, f"{where}: the {label} slider did not move with the keyboard"
    cap1, fig1 = ex.wait_caption(label, v1, n)
    print(f"  {where}: {label} {v0} -> {v1} (keyboard): {cap1}")
    assert fig1 != fig0, f"{where}: {label} {v0} -> {v1} (keyboard) changed the caption but not the figure"
    n = ex.redraws()
    handle.press("ArrowLeft" if float(v1) > float(v0) else "ArrowRight")
    assert ex.readout(label) == v0
    cap2, fig2 = ex.wait_caption(label, v0, n, exact=cap0)
    assert fig2 == fig0, f"{where}: back at {label} = {v0}, a different figure"
    # drag the handle by a third of the track (to the right, or left when it sits in the right half)
    track = slider.locator(".noUi-target").bounding_box()
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    dx = track["width"] / 3 * (1 if x < track["x"] + track["width"] / 2 else -1)
    n = ex.redraws()
    ex.page.mouse.move(x, y)
    ex.page.mouse.down()
    ex.page.mouse.move(x + dx / 2, y, steps=5)
    ex.page.mouse.move(x + dx, y, steps=5)
    ex.page.mouse.up()
    v3 = ex.readout(label)
    assert v3 != v0, f"{where}: dragging the {label} slider did not move it"
    cap3, fig3 = ex.wait_caption(label, v3, n)
    print(f"  {where}: {label} {v0} -> {v3} (drag): {cap3}")
    assert fig3 != fig0, f"{where}: {label} {v0} -> {v3} (drag) did not change the figure"
    # and back with the keyboard's Home/End-free way: set it back step by step
    handle.focus()
    n = ex.redraws()
    key = "ArrowLeft" if float(v3) > float(v0) else "ArrowRight"
    for _ in range(200):
        if ex.readout(label) == v0:
            break
        handle.press(key)
    cap4, fig4 = ex.wait_caption(label, v0, n, exact=cap0)
    assert fig4 == fig0, f"{where}: back at {label} = {v0} after the drag, another figure"
    no_errors_on_page(ex.page, where)


def check_dropdown(ex: Explorer, label: str, where: str) -> None:
    """Select other options until one draws another figure (an option can legitimately draw the same one: 'explain
    T-shirt' when the model predicts T-shirt), each stated by the caption; then the first option again."""
    select = ex.control("dropdown", label).locator("select")
    options = [text(o) for o in select.locator("option").all_inner_texts()]
    cap0, fig0 = ex.state()
    first = text(select.evaluate("s => s.options[s.selectedIndex].text"))
    assert len(options) > 1, f"{where}: the {label} dropdown has one option"
    for other in [o for o in options if o != first][:3]:
        n = ex.redraws()
        select.select_option(index=options.index(other))
        cap1, fig1 = ex.wait_caption(label, other, n)
        print(f"  {where}: {label} {first} -> {other}: {cap1}")
        if fig1 != fig0:
            break
    else:
        raise AssertionError(f"{where}: three other options of {label!r} all drew the figure of {first!r}")
    n = ex.redraws()
    select.select_option(index=options.index(first))
    cap2, fig2 = ex.wait_caption(label, first, n, exact=cap0)
    assert fig2 == fig0, f"{where}: back at {label} = {first!r}, a different figure"
    no_errors_on_page(ex.page, where)


def check_widgets(page, lab: Lab, name: str) -> int:
    """Run the lesson in the lab and move every control of every explorer; returns how many controls moved."""
    open_and_run(page, lab, name)
    boxes = page.locator(".jp-OutputArea-output > .widget-vbox")
    n = boxes.count()
    assert n > 0, f"{name}: no widget on the page after running all cells (is the widget manager working?)"
    moved = 0
    for b in range(n):
        ex = Explorer(page, boxes.nth(b))
        ex.box.scroll_into_view_if_needed()
        where = f"{name}, explorer {b}"
        assert ex.caption() and ex.figure(), f"{where}: no caption or no figure drawn"
        sliders, dropdowns = ex.labels("slider"), ex.labels("dropdown")
        assert sliders or dropdowns, f"{where}: no control found"
        for label in sliders:
            check_slider(ex, label, where)
            moved += 1
        for label in dropdowns:
            check_dropdown(ex, label, where)
            moved += 1
    no_errors_on_page(page, name)
    # stop this lesson's kernel before the next lesson starts its own (two busy kernels on two cores)
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    return moved


def run_checked(tmp_path: Path, lessons: list[Path], disabled: tuple[str, ...] = ()) -> dict:
    """Start a lab, check every lesson of ``lessons`` in one Chromium; a screenshot per failure; always shut down."""
    from playwright.sync_api import sync_playwright

    exe = need_browser()
    lab = Lab(tmp_path, lessons, disabled)
    moved = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                for path in lessons:
                    try:
                        moved[path.name] = check_widgets(page, lab, path.name)
                    except Exception:
                        SHOTS.mkdir(parents=True, exist_ok=True)
                        shot = SHOTS / f"{path.stem}{'-negative' if disabled else ''}.png"
                        page.screenshot(path=str(shot), full_page=False)
                        print(f"screenshot of the failure: {shot}")
                        raise
            finally:
                browser.close()
    finally:
        lab.close()
    return moved


@pytest.mark.browser
def test_every_widget_follows_its_controls_in_jupyterlab(tmp_path):
    lessons = [p for p in widget_lessons() if p.name[:2] in os.environ.get("E2E_LESSONS", p.name[:2])]
    moved = run_checked(tmp_path, lessons)
    print("controls moved per lesson:", moved)
    assert set(moved) == {p.name for p in lessons} and all(moved.values()), moved


NEGATIVE_NB = """import torch
from course_lib.data import load_mnist
from course_lib.models import load_model
from course_lib.widgets import attack_explorer

x, y = load_mnist("test")
attack_explorer(load_model("mnist_cnn"), x[:3], labels=y[:3])
"""


@pytest.mark.browser
@pytest.mark.negative_control
def test_negative_control_the_check_fails_without_the_widget_manager(tmp_path):
    """The same check, on a small notebook with one explorer, passes with the widget manager and fails without
    it (the widgets then show as plain text): the check looks at the widgets and not at something else."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NEGATIVE_NB)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "nb" / "one_explorer.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    assert run_checked(tmp_path / "with", [path])["one_explorer.ipynb"] == 3
    with pytest.raises(AssertionError, match="no widget on the page"):
        run_checked(tmp_path / "without", [path], disabled=(WIDGET_MANAGER,))
