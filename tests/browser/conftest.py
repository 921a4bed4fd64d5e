"""Browser tests: the kit as a learner sees it, in JupyterLab driven by a real Chromium.

Headless widget tests cannot see a widget that shows "Error displaying widget", a plot that never
appears, or a toggle that does nothing in JupyterLab. These tests open every lesson in a live
JupyterLab, run all its cells, and look at the page.

Running them
------------
    .venv/bin/pytest tests/browser -m browser -v        # just these (~10 s set-up, then ~10-20 s a notebook)
    .venv/bin/pytest tests/browser -k 04_               # one lesson
    make test                                           # everything, these included
    make test-fast                                      # everything but these

They need Debian's Chromium (``sudo apt-get install chromium chromium-driver``; ``.ci/run`` installs
it) and Playwright for Python (in the test extra). Playwright drives the system Chromium through
``executable_path``; ``playwright install`` is never needed. Set ``EVBROKER_CHROMIUM`` to use
another Chromium or Chrome binary. Without a browser the tests skip with that advice, except in CI
(``CI=true``), where a missing browser is a failure: CI must run them.

What happens
------------
* One JupyterLab server (``lab_server``), started from this environment
  (``sys.executable -m jupyter lab``) on 127.0.0.1 with a free port and a random token. It serves a
  temporary COPY of ``notebooks/``, ``exercises/`` and ``solutions/`` (``lab_root``), so running cells
  never touches committed notebooks, and it uses throwaway Jupyter config/data/runtime/settings
  directories. The kernel is this environment's Python, with this checkout's ``evbroker`` first on
  its path; ``MPLBACKEND`` from the test process is not passed on, so plots use the inline backend.
* One Chromium and one JupyterLab tab (``lab_tab``); the first notebook loads JupyterLab in a fresh
  workspace, the next ones open beside it (``open_notebook``). When a test ends its notebooks are
  closed unsaved and their kernels shut down; a tab left untidy (a dialog, an open document) is
  replaced.
* Server and browser (``browser_session``) start with the first browser test and stop right after
  the last one of a run, before any other test: an open Playwright keeps an asyncio loop running,
  which would break later tests that call ``asyncio.run`` (nbclient, nbval).
* The server is always stopped: kernels shut down, the process group terminated (SIGKILL if it
  lingers), kernels that outlived it killed; also on failure, Ctrl-C, and (Linux) if pytest itself
  is killed.

The files
---------
``test_lessons.py``      every notebooks/NN_*.ipynb: run all, no error, every widget and plot drawn, screenshot
``test_interaction.py``  click the explorers (lessons 03 and 04, and on their own), an exercise's check cell
``test_harness.py``      the harness on scratch notebooks: healthy is healthy, every kind of trouble is caught
``test_skip_rules.py``   skip outside CI, fail in CI (no browser needed)
``lab_server.py``        start and stop the throwaway JupyterLab
``notebook_page.py``     drive one notebook in the page and say what a learner sees (``problems()``)
``notebook_files.py``    which lessons and exercises exist, what was committed, scratch notebooks

Writing one
-----------
    def test_something(open_notebook):
        nb = open_notebook("notebooks/04_delivery_guarantees.ipynb")   # fresh tab, kernel idle
        nb.run_all()                                                    # "ok" | "failed" | "timeout"
        assert problems(nb.report()) == []
        explorer = nb.explorer("DeliveryExplorer(")                     # the widget that cell displays
        nb.choose(explorer, "exactly-once")                             # click; waits for the redraw
        nb.table(explorer)[0]["charges"], nb.image_digest(explorer)     # read what it shows now

Reading a failure
-----------------
``notebook_page.problems()`` lists what a learner would trip over, one sentence per problem (cell
number, first line of the cell, what was wrong). Screenshots of every lesson after running are in
``artifacts/screenshots/<notebook>.png`` (git-ignored); the JupyterLab server log is printed on
start-up failures. ``EVBROKER_BROWSER_TIMEOUT`` (seconds, default 300) bounds each notebook's run and
``EVBROKER_BROWSER_WAIT`` (default 180) any other wait. Every wait is for an event (a kernel message,
a change in the page), never a pause, so the bounds are generous: on a loaded CI runner the same
steps take many times longer, and a passing test never waits for a bound.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .lab_server import REPO, LabServer, start_lab_server
from .notebook_page import LEFTOVERS, WAIT, NotebookPage

INSTALL_HINT = "sudo apt-get install chromium chromium-driver"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps trying to reach Google's services and stalls on a closed network.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVED_FOLDERS = ("notebooks", "exercises", "solutions")
SCREENSHOTS = REPO / "artifacts" / "screenshots"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def find_chromium() -> str | None:
    """The Chromium binary to drive: $EVBROKER_CHROMIUM, then chromium on PATH, then Debian's path."""
    override = os.environ.get("EVBROKER_CHROMIUM")
    if override:
        return override if Path(override).exists() else None
    for candidate in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _unavailable(reason: str) -> None:
    """Skip outside CI; fail in CI, where the browser tests must run."""
    if in_ci():
        pytest.fail(f"{reason}. CI=true, so the browser tests must run: install it ({INSTALL_HINT}).")
    pytest.skip(f"{reason}; install it with `{INSTALL_HINT}` to run the browser tests")


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    path = find_chromium()
    if path is None:
        looked = os.environ.get("EVBROKER_CHROMIUM") or "chromium, chromium-browser, /usr/bin/chromium"
        _unavailable(f"Chromium was not found (looked for {looked})")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install -e '.[test]')")
    return path


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary copy of the notebooks JupyterLab serves; running cells never touches the originals."""
    root = tmp_path_factory.mktemp("lab-root")
    for folder in SERVED_FOLDERS:
        source = REPO / folder
        if source.is_dir():
            shutil.copytree(source, root / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return root


class LabTab:
    """The one JupyterLab tab the browser tests share. Loading JupyterLab costs seconds, so every test
    opens its notebooks in the same tab; a tab a test left untidy (a dialog, a document still open)
    or broken is replaced by a fresh one."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.page: Any = None

    def get(self) -> Any:
        if self.page is None or self.page.is_closed():
            self.page = self.context.new_page()
        return self.page

    def tidy(self) -> None:
        if self.page is None or self.page.is_closed():
            return
        try:
            clean = self.page.evaluate(f"() => !window.jupyterapp || ({LEFTOVERS})() === 0")
        except Exception:  # a crashed or navigated-away page
            clean = False
        if not clean:
            self.page.close()
            self.page = None


class BrowserSession:
    """The JupyterLab server, Chromium and the shared tab: started when a browser test first needs
    them, stopped as soon as the run moves on to tests that do not (and at the end of the session).

    Stopping early matters: while Playwright's sync API is open it keeps an asyncio loop running in
    the main thread, and every later test that calls ``asyncio.run`` (nbclient, nbval) would fail.
    """

    def __init__(self, chromium: str, root: Path, workdir: Callable[[], Path]) -> None:
        self.chromium, self.root, self.workdir = chromium, root, workdir
        self._server: LabServer | None = None
        self._playwright: Any = None
        self._browser: Any = None
        self._tab: LabTab | None = None

    def server(self) -> LabServer:
        if self._server is None:
            # Build matplotlib's font cache here, not in the first kernel (where it would print a warning).
            import matplotlib.font_manager  # noqa: F401

            self._server = start_lab_server(self.root, self.workdir())
            atexit.register(self._server.stop)  # a last line of defence; stop() is idempotent
        return self._server

    def tab(self) -> LabTab:
        if self._tab is None:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=self.chromium, args=CHROMIUM_ARGS, headless=True
            )
            # One context: JupyterLab's scripts are cached after the first page.
            context = self._browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(WAIT * 1000)  # a bound, never a pause: see notebook_page.WAIT
            self._tab = LabTab(context)
        return self._tab

    def stop(self) -> None:
        """Close the browser and stop Playwright and the server; each step runs even if one before fails."""
        browser, playwright, server = self._browser, self._playwright, self._server
        self._tab = self._browser = self._playwright = self._server = None
        try:
            if browser is not None:
                with contextlib.suppress(Exception):  # already gone if Chromium crashed
                    browser.close()
            if playwright is not None:
                playwright.stop()
        finally:
            if server is not None:
                server.stop()
                atexit.unregister(server.stop)


_SESSION = pytest.StashKey[BrowserSession]()


@pytest.fixture(scope="session")
def browser_session(
    request: pytest.FixtureRequest, chromium_executable: str, lab_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserSession]:
    session = BrowserSession(chromium_executable, lab_root, lambda: tmp_path_factory.mktemp("jupyter"))
    request.config.stash[_SESSION] = session
    try:
        yield session
    finally:
        session.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After the last of a run of browser tests, stop the browser session (see BrowserSession)."""
    yield
    session = item.config.stash.get(_SESSION, None)
    if session is not None and (nextitem is None or nextitem.get_closest_marker("browser") is None):
        session.stop()


@pytest.fixture
def lab_server(browser_session: BrowserSession) -> LabServer:
    """The JupyterLab server (one for a run of browser tests)."""
    return browser_session.server()


@pytest.fixture
def lab_tab(browser_session: BrowserSession, lab_server: LabServer) -> LabTab:
    """The shared JupyterLab tab (one Chromium for a run of browser tests)."""
    return browser_session.tab()


@pytest.fixture
def open_notebook(lab_tab: LabTab, lab_server: LabServer) -> Iterator[Callable[[str | Path], NotebookPage]]:
    """`open_notebook("notebooks/04_x.ipynb")` -> a NotebookPage, open, kernel idle.

    Notebooks open in the shared JupyterLab tab; at the end of the test each is closed unsaved and
    its kernel shut down.
    """
    opened: list[NotebookPage] = []

    def open_(path: str | Path) -> NotebookPage:
        nb = NotebookPage(lab_tab.get(), lab_server, Path(path).as_posix())
        opened.append(nb)
        return nb.open()

    try:
        yield open_
    finally:
        for nb in opened:
            with contextlib.suppress(Exception):  # tidy() replaces the tab if closing failed
                nb.close()
        lab_tab.tidy()
        lab_server.shutdown_kernels()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """artifacts/screenshots/ (git-ignored), where each lesson's picture goes."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
