"""Drive one notebook in a live JupyterLab page, and say what a learner would see.

`NotebookPage(page, server, "notebooks/04_delivery_guarantees.ipynb").open()` loads JupyterLab on
that notebook in a fresh workspace and waits for its kernel. `run_all()` runs every cell and waits,
with a bounded timeout, until the kernel has answered every request sent to it and no cell is
still running. `report()` reads
both the notebook model (what the kernel sent) and the DOM (what was drawn) cell by cell;
`problems(report, committed)` turns that into the sentences a test asserts to be empty: a traceback,
text on stderr, a widget showing "Error displaying widget" or still "Loading widget...", a widget
or image output that did not render, a cell that never ran, or fewer plots than the committed
notebook holds. `screenshot(path)` writes the whole notebook, top to bottom, as one PNG.

The selectors were read off JupyterLab 4 and ipywidgets 8: a cell's outputs are the
``.jp-OutputArea-child`` children of its ``.jp-Cell-outputArea`` (in the order of the model's
outputs); ToggleButtons render as ``.widget-toggle-buttons button`` (``data-value`` holds the
option, ``mod-active`` marks the chosen one); a Dropdown as ``.widget-dropdown select``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:  # playwright is imported by the fixtures, which skip or fail cleanly without it
    from playwright.sync_api import Locator, Page

    from .lab_server import LabServer

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
# Every wait below waits for an event (a kernel message, a DOM change), never for a length of time.
# The bounds only stop a hang; they are generous, because on a busy machine (a loaded CI runner) the
# same steps can take ten times as long: a passing test never waits for them.
# Bound on running one whole notebook (lessons take well under 20 s on an idle machine).
RUN_TIMEOUT = float(os.environ.get("EVBROKER_BROWSER_TIMEOUT", "300"))
# Bound on any other single wait: JupyterLab loading, a kernel starting, a click's redraw.
WAIT = float(os.environ.get("EVBROKER_BROWSER_WAIT", "180"))
WIDGET_TROUBLE = ("Error displaying widget", "Loading widget", "Error setting state", "Could not create a view")

# Finds the notebook panel for a path among JupyterLab's main-area widgets.
_PANEL = """
const panelFor = (path) => {
  const app = window.jupyterapp;
  if (!app || !app.shell) return null;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.content && w.content.model) return w;
  }
  return null;
};
"""

_LAB_UP = "() => !!(window.jupyterapp && window.jupyterapp.shell)"

_OPEN = "async (path) => { await window.jupyterapp.commands.execute('docmanager:open', {path, factory: 'Notebook'}); }"

_CLOSE = (
    "async (path) => {"
    + _PANEL
    + """
  const w = panelFor(path);
  if (!w) return;
  try { await w.sessionContext.shutdown(); } catch (e) { /* the server stops it in the end anyway */ }
  w.context.model.dirty = false;
  w.close();
}"""
)

# Anything a test left behind in the tab: an open dialog or an open document.
LEFTOVERS = """() => document.querySelectorAll('.jp-Dialog').length +
  [...window.jupyterapp.shell.widgets('main')].filter(w => w.context).length"""

# Ready: the document is loaded, its kernel idle, and every cell and output drawn. From then on every
# request sent to the kernel on its shell channel (an execute_request per cell run, a comm_msg per
# widget click) is noted as pending until the kernel's iopub "idle" status for it arrives, the way
# JupyterLab's own execution indicator counts cells. The kernel sends that status after the request's
# last output, also for a request it aborts after an error (ipykernel), so an empty set means all the
# work asked for is done and shown. (JupyterLab's cell prompts cannot tell: after a cell tagged
# raises-exception fails it stops showing the queued cells as queued, yet the kernel still runs them.)
_READY = (
    "(path) => {"
    + _PANEL
    + """
  const w = panelFor(path);
  if (!w || !w.context.isReady) return false;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  if (!kernel || kernel.status !== 'idle') return false;
  const models = [...w.content.model.cells];
  if (w.content.widgets.length !== models.length) return false;
  for (let i = 0; i < models.length; i++) {
    if (models[i].type !== 'code') continue;
    const area = w.content.widgets[i].node.querySelector('.jp-Cell-outputArea');
    const drawn = area ? area.querySelectorAll(':scope > .jp-OutputArea-child').length : 0;
    if (drawn !== models[i].outputs.length) return false;
  }
  if (!w.__pending) {
    const pending = new Set();
    w.__pending = pending;
    const watch = (k) => k && k.anyMessage.connect((_, {msg, direction}) => {
      if (direction === 'send' && msg.channel === 'shell') {
        pending.add(msg.header.msg_id);
      } else if (direction === 'recv' && msg.channel === 'iopub' && msg.header.msg_type === 'status'
                 && msg.content.execution_state === 'idle' && msg.parent_header) {
        pending.delete(msg.parent_header.msg_id);
      }
    });
    watch(kernel);
    w.sessionContext.kernelChanged.connect((_, change) => { pending.clear(); watch(change.newValue); });
  }
  return true;
}"""
)

# Idle: every request sent to the kernel since the notebook opened has been answered (see _READY),
# the kernel is idle, and no cell is running or queued.
_IDLE = (
    "(path) => {"
    + _PANEL
    + """
  const w = panelFor(path);
  if (!w || !w.__pending || w.__pending.size) return false;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  if (!kernel || kernel.status !== 'idle') return false;
  for (const cell of w.content.model.cells) {
    if (cell.type === 'code' && cell.executionState === 'running') return false;
  }
  return ![...w.node.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('[*]'));
}"""
)

_RUN_ALL = (
    "async ([path, ms]) => {"
    + _PANEL
    + """
  const app = window.jupyterapp;
  const w = panelFor(path);
  app.shell.activateById(w.id);
  const timeout = new Promise(resolve => setTimeout(() => resolve('timeout'), ms));
  const run = app.commands.execute('notebook:run-all-cells').then(ok => ok ? 'ok' : 'failed');
  return await Promise.race([run, timeout]);
}"""
)

_SETTLED = (
    "([path, trouble]) => {"
    + _PANEL
    + """
  const w = panelFor(path);
  if (!w) return false;
  const text = w.content.node.innerText;
  return !text.includes('Loading widget');
}"""
)

_REPORT = (
    "([path, widgetMime, trouble]) => {"
    + _PANEL
    + """
  const w = panelFor(path);
  const text = (el) => (el ? el.innerText : '').trim();
  const cells = [];
  const models = [...w.content.model.cells];
  w.content.widgets.forEach((cellWidget, i) => {
    const model = models[i];
    const info = {index: i, type: model.type, source: model.sharedModel.getSource().slice(0, 80),
                  tags: model.getMetadata('tags') || [],
                  executionCount: null, outputs: [], imgs: 0, widgets: 0, widgetErrors: []};
    if (model.type === 'code') {
      info.executionCount = model.executionCount;
      const area = cellWidget.node.querySelector('.jp-Cell-outputArea');
      const children = area ? [...area.querySelectorAll(':scope > .jp-OutputArea-child')] : [];
      for (let k = 0; k < model.outputs.length; k++) {
        const out = model.outputs.get(k);
        const json = out.toJSON();
        const el = children[k] || null;
        info.outputs.push({
          type: json.output_type,
          name: json.name || null,
          ename: json.ename || null,
          evalue: json.evalue || null,
          mimes: Object.keys(json.data || {}),
          streamText: json.output_type === 'stream' ? String(json.text).slice(0, 400) : null,
          dom: el ? {
            present: true,
            imgs: el.querySelectorAll('img').length,
            widgetViews: el.querySelectorAll('.jupyter-widgets').length,
            errorWidgets: el.querySelectorAll('.jupyter-widgets-error-widget').length,
            trouble: trouble.filter(t => el.innerText.includes(t)),
            text: text(el).slice(0, 300),
          } : {present: false},
        });
      }
      if (area) {
        info.imgs = area.querySelectorAll('img').length;
        info.widgets = area.querySelectorAll('.jupyter-widgets').length;
        // Errors an Output widget shows (an explorer's callback that raised, say).
        info.widgetErrors = [...area.querySelectorAll(
          '.widget-output .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
          .map(e => e.innerText.trim().slice(0, 300));
      }
    }
    cells.push(info);
  });
  const all = w.content.node;
  return {
    path,
    cells,
    widgetManager: w.content.rendermime.mimeTypes.includes(widgetMime),
    trouble: trouble.filter(t => all.innerText.includes(t)),
    errorWidgets: all.querySelectorAll('.jupyter-widgets-error-widget').length,
    kernel: w.sessionContext.session && w.sessionContext.session.kernel
      ? w.sessionContext.session.kernel.status : 'none',
  };
}"""
)


@dataclass
class NotebookReport:
    """What a notebook looks like in the browser: per-cell model outputs and their rendered DOM."""

    path: str
    cells: list[dict[str, Any]]
    widget_manager: bool
    trouble: list[str]
    error_widgets: int
    kernel: str
    console_errors: list[str] = field(default_factory=list)

    @property
    def images(self) -> int:
        """Images rendered anywhere in the outputs (plots shown directly and inside widgets)."""
        return sum(c["imgs"] for c in self.cells)

    @property
    def widgets(self) -> int:
        """Rendered ipywidgets views (every nested control counts)."""
        return sum(c["widgets"] for c in self.cells)


class NotebookPage:
    """One notebook open in a JupyterLab page."""

    def __init__(self, page: Page, server: LabServer, path: str) -> None:
        self.page = page
        self.server = server
        self.path = path
        self.console_errors: list[str] = []
        self.timings: dict[str, float] = {}  # seconds per step, for the test report (never asserted)
        self.panel_id = ""
        self._listeners = {
            "pageerror": lambda exc: self.console_errors.append(f"page error: {exc}"),
            "console": lambda msg: self.console_errors.append(msg.text[:300]) if msg.type == "error" else None,
        }
        for event, listener in self._listeners.items():
            page.on(event, listener)

    # -- opening and running -------------------------------------------------------------------

    def open(self, timeout: float = WAIT) -> NotebookPage:
        """Open the notebook and wait for its kernel to be idle.

        In a tab where JupyterLab already runs, the notebook opens beside the app (docmanager:open);
        otherwise JupyterLab is loaded on it, in a fresh workspace.
        """
        started = time.monotonic()
        if self.page.url.startswith(self.server.url) and self.page.evaluate(_LAB_UP):
            self.page.evaluate(_OPEN, self.path)
        else:
            self.page.goto(self.server.lab_url(self.path), wait_until="domcontentloaded")
            self.page.wait_for_function(_LAB_UP, timeout=timeout * 1000)
            self.page.evaluate("() => window.jupyterapp.restored")
        self.timings["lab"] = time.monotonic() - started
        self.page.wait_for_function(_READY, arg=self.path, timeout=timeout * 1000, polling=200)
        self.timings["open"] = time.monotonic() - started
        self.panel_id = self.page.evaluate("(path) => {" + _PANEL + "return panelFor(path).id; }", self.path)
        # The notebook alone at full width: no file browser beside it.
        self.page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        return self

    def run_all(self, timeout: float = RUN_TIMEOUT) -> str:
        """Run every cell; wait for the kernel to finish. Returns 'ok', 'failed' (a cell raised) or 'timeout'."""
        started = time.monotonic()
        outcome = self.page.evaluate(_RUN_ALL, [self.path, int(timeout * 1000)])
        if outcome != "timeout":
            self.wait_idle(timeout)
            self.settle_widgets()
        self.timings["run_all"] = time.monotonic() - started
        return outcome

    def close(self, timeout: float = WAIT) -> None:
        """Shut the notebook's kernel down and close it unsaved (the served files are copies anyway)."""
        for event, listener in self._listeners.items():
            self.page.remove_listener(event, listener)
        self.page.evaluate(_CLOSE, self.path)
        self.page.wait_for_function(
            "(path) => {" + _PANEL + "return !panelFor(path); }", arg=self.path, timeout=timeout * 1000
        )

    def wait_idle(self, timeout: float = WAIT) -> None:
        """Wait until the kernel has answered every request sent to it and no cell is running or queued."""
        self.page.wait_for_function(_IDLE, arg=self.path, timeout=timeout * 1000, polling=100)

    def settle_widgets(self, timeout: float = WAIT) -> bool:
        """Wait (bounded) until no widget says "Loading widget..."; False if some still do."""
        try:
            self.page.wait_for_function(_SETTLED, arg=[self.path, list(WIDGET_TROUBLE)], timeout=timeout * 1000)
        except Exception:  # a timeout here is reported by problems(), with the cell it happened in
            return False
        # Let images decode and layout settle before anything is measured or captured.
        self.page.evaluate(
            "() => Promise.all([...document.images].filter(i => !i.complete)"
            ".map(i => new Promise(r => { i.onload = i.onerror = r; })))"
        )
        return True

    # -- reading -------------------------------------------------------------------------------

    def report(self) -> NotebookReport:
        raw = self.page.evaluate(_REPORT, [self.path, WIDGET_MIME, list(WIDGET_TROUBLE)])
        return NotebookReport(
            path=raw["path"],
            cells=raw["cells"],
            widget_manager=raw["widgetManager"],
            trouble=raw["trouble"],
            error_widgets=raw["errorWidgets"],
            kernel=raw["kernel"],
            console_errors=list(self.console_errors),
        )

    def cell(self, index: int) -> Locator:
        """The cell at `index` (0-based, markdown cells included)."""
        return self.notebook.locator(".jp-Notebook-cell").nth(index)

    def cell_containing(self, source_snippet: str) -> int:
        """Index of the first cell whose source contains `source_snippet` (ValueError if none)."""
        index = self.page.evaluate(
            "([path, s]) => {"
            + _PANEL
            + "return [...panelFor(path).content.model.cells].findIndex(c => c.sharedModel.getSource().includes(s)); }",
            [self.path, source_snippet],
        )
        if index < 0:
            raise ValueError(f"no cell in {self.path} contains {source_snippet!r}")
        return index

    @property
    def notebook(self) -> Locator:
        """This notebook's panel (other documents may be open in the same JupyterLab)."""
        return self.page.locator(f"[id='{self.panel_id}']")

    # -- editing (exercises) -------------------------------------------------------------------

    def set_source(self, index: int, source: str) -> None:
        """Replace a cell's source, as a learner typing an answer would."""
        self.page.evaluate(
            "([path, i, s]) => {" + _PANEL + "panelFor(path).content.model.cells.get(i).sharedModel.setSource(s); }",
            [self.path, index, source],
        )

    def run_cells(self, indices: list[int], timeout: float = WAIT) -> None:
        """Run the given cells in order (each one selected and run with notebook:run-cell)."""
        for index in indices:
            self.page.evaluate(
                "async ([path, i]) => {"
                + _PANEL
                + """
  const app = window.jupyterapp; const w = panelFor(path);
  app.shell.activateById(w.id);
  w.content.activeCellIndex = i;
  w.content.deselectAll();
  await app.commands.execute('notebook:run-cell');
}""",
                [self.path, index],
            )
            self.wait_idle(timeout)
        self.settle_widgets()

    # -- widgets -------------------------------------------------------------------------------

    def outputs(self, index: int) -> Locator:
        """The output area of cell `index`."""
        return self.cell(index).locator(".jp-Cell-outputArea").first

    def explorer(self, constructor: str) -> Locator:
        """The first explorer widget displayed by a cell whose source contains `constructor`."""
        index = self.cell_containing(constructor)
        root = self.outputs(index).locator(".widget-vbox").first
        root.wait_for(state="visible")
        return root

    def choose(self, container: Locator, value: str, timeout: float = WAIT) -> bool:
        """Pick `value` in the ToggleButtons or Dropdown inside `container` that offers it, as a learner
        clicks; wait until the kernel has redrawn. Returns False if it was already chosen."""
        encoded = quote(value, safe="-_.!~*'()")  # ipywidgets writes data-value with encodeURIComponent
        button = container.locator(f'.widget-toggle-buttons button[data-value="{encoded}"]')
        select = container.locator(".widget-dropdown select").filter(
            has=self.page.locator(f'option[data-value="{encoded}"]')
        )
        if button.count():
            if "mod-active" in (button.first.get_attribute("class") or ""):
                return False
            action = button.first.click
        elif select.count():
            if select.first.input_value() == value:
                return False
            action = lambda: select.first.select_option(value=value)  # noqa: E731  (labels show nbsp for spaces)
        else:
            raise AssertionError(f"no toggle button or dropdown option {value!r} in this widget")
        before = container.evaluate(_WIDGET_STATE)
        action()
        self.page.wait_for_function(
            f"([el, before]) => ({_WIDGET_STATE})(el) !== before",
            arg=[container.element_handle(), before],
            timeout=timeout * 1000,
        )
        self.wait_idle(timeout)
        self.settle_widgets()
        return True

    @staticmethod
    def table(container: Locator, caption: str = "") -> list[dict[str, str]]:
        """The first HTML table inside `container` whose caption contains `caption`, one dict per body
        row ({heading: text}); [] when there is none. An explorer's summary, saga state, ledger."""
        for found in container.evaluate(_TABLES):
            if caption in found["caption"]:
                return [dict(zip(found["head"], row, strict=False)) for row in found["rows"]]
        return []

    @staticmethod
    def image_digest(container: Locator) -> str:
        """SHA-256 of the first image inside `container`, as the browser shows it."""
        return container.evaluate(_IMAGE_DIGEST)

    # -- pictures ------------------------------------------------------------------------------

    def screenshot(self, path: Path, max_height: int = 32_000) -> Path:
        """Write the whole notebook, first cell to last, as one PNG (cut at `max_height` pixels).

        The viewport is stretched to the notebook's height for the picture, so every cell is laid
        out and drawn as it is on screen, then put back.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        self.wait_idle()  # never a picture of a notebook half-way through an update
        self.settle_widgets()
        scroller = self.notebook.locator(".jp-WindowedPanel-outer").first
        scroller.evaluate("el => { el.scrollTop = 0; }")
        original = self.page.viewport_size or {"width": 1280, "height": 900}
        box = scroller.bounding_box()
        assert box is not None, "the notebook is not visible"
        content = scroller.evaluate(_CONTENT_HEIGHT)
        height = min(int(box["y"] + content + 80), max_height)
        try:
            self.page.set_viewport_size({"width": original["width"], "height": max(height, original["height"])})
            self.page.evaluate(_TWO_FRAMES)
            box = scroller.bounding_box() or box
            clip = {"x": box["x"], "y": box["y"], "width": box["width"], "height": min(content + 16, box["height"])}
            self.page.screenshot(path=str(path), clip=clip, animations="disabled", caret="hide")
        finally:
            self.page.set_viewport_size(original)
            self.page.evaluate(_TWO_FRAMES)
        return path


# Height of the notebook's content: the bottom of its last cell (JupyterLab pads below it so the
# last cell can be scrolled to the top; that blank space is left out of pictures).
_CONTENT_HEIGHT = """el => {
  const cells = el.querySelectorAll('.jp-Notebook-cell');
  if (!cells.length) return el.scrollHeight;
  const top = el.getBoundingClientRect().top;
  return Math.ceil(cells[cells.length - 1].getBoundingClientRect().bottom - top + el.scrollTop);
}"""

# Text and image sources of a widget: changes once the kernel has redrawn after a click.
_WIDGET_STATE = """el => el.innerText + '|' + [...el.querySelectorAll('img')].map(i => i.src).join('|')"""

_TABLES = """el => [...el.querySelectorAll('table')].map(table => {
  const clean = (c) => c.innerText.replace(/\\u00a0/g, ' ').trim();
  const rows = [...table.querySelectorAll('tr')];
  const headRow = rows.find(tr => tr.querySelector('th'));
  return {
    caption: table.caption ? clean(table.caption) : '',
    head: headRow ? [...headRow.querySelectorAll('th, td')].map(clean) : [],
    rows: rows.filter(tr => tr !== headRow && tr.querySelector('td'))
      .map(tr => [...tr.querySelectorAll('th, td')].map(clean)),
  };
})"""

_IMAGE_DIGEST = """async el => {
  const img = el.querySelector('img');
  if (!img) return '';
  const bytes = await (await fetch(img.src)).arrayBuffer();
  const hash = await crypto.subtle.digest('SHA-256', bytes);
  return [...new Uint8Array(hash)].map(b => b.toString(16).padStart(2, '0')).join('');
}"""

_TWO_FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


def problems(report: NotebookReport, committed: dict | None = None) -> list[str]:
    """Everything a learner would trip over in `report`, one sentence each (empty when all is well).

    An error in a cell tagged ``raises-exception`` (a lesson showing an error on purpose) is expected.
    `committed` is the notebook as stored in the repository (nbformat JSON): each cell that held
    images there must show at least as many images now, and each cell that held a widget must
    show a widget now.
    """
    found: list[str] = []
    if not report.widget_manager:
        found.append(
            "JupyterLab has no renderer for ipywidgets: the @jupyter-widgets/jupyterlab-manager extension "
            "was not found (check the environment's share/jupyter/labextensions)"
        )
    for cell in report.cells:
        if cell["type"] != "code":
            continue
        where = f"cell {cell['index']} ({cell['source'].splitlines()[0] if cell['source'] else 'empty'!s})"
        if cell["executionCount"] is None and cell["source"].strip():
            found.append(f"{where} never ran")
        for out in cell["outputs"]:
            dom = out["dom"]
            if out["type"] == "error" and "raises-exception" not in cell["tags"]:
                found.append(f"{where} raised {out['ename']}: {out['evalue']}")
            elif out["type"] == "stream" and out["name"] == "stderr":
                found.append(f"{where} wrote to stderr: {out['streamText']!r}")
            if not dom["present"]:
                found.append(f"{where}: a {out['type']} output was not drawn at all")
                continue
            if WIDGET_MIME in out["mimes"] and (dom["widgetViews"] == 0 or dom["errorWidgets"] or dom["trouble"]):
                found.append(f"{where}: widget not rendered, the page shows {dom['text'][:160]!r}")
            elif dom["trouble"]:
                found.append(f"{where}: {', '.join(dom['trouble'])} in {dom['text'][:160]!r}")
            if any(m in out["mimes"] for m in IMAGE_MIMES) and dom["imgs"] == 0:
                found.append(f"{where}: an image output was not drawn as an image")
        for text in cell["widgetErrors"]:
            found.append(f"{where}: a widget shows an error: {text!r}")
    if report.error_widgets:
        found.append(f"{report.error_widgets} widget(s) show the ipywidgets error view")
    if committed is not None:
        found.extend(_compare_with_committed(report, committed))
    # Trouble text anywhere (e.g. inside an Output widget) not already pinned to a cell above.
    if report.trouble and not any(t in f for f in found for t in report.trouble):
        found.append(f"the notebook shows {report.trouble}")
    return found


def _compare_with_committed(report: NotebookReport, committed: dict) -> list[str]:
    found: list[str] = []
    stored = committed.get("cells", [])
    if len(stored) != len(report.cells):
        return [f"the notebook has {len(report.cells)} cells in the browser but {len(stored)} on disk"]
    for cell, old in zip(report.cells, stored, strict=True):
        outputs = old.get("outputs", []) if old.get("cell_type") == "code" else []
        images = sum(1 for o in outputs if any(m in o.get("data", {}) for m in IMAGE_MIMES))
        widgets = sum(1 for o in outputs if WIDGET_MIME in o.get("data", {}))
        if cell["imgs"] < images:
            found.append(
                f"cell {cell['index']} shows {cell['imgs']} image(s) but the committed notebook has {images} there"
            )
        if widgets and cell["widgets"] == 0:
            found.append(f"cell {cell['index']} shows no widget but the committed notebook displays one there")
    return found
