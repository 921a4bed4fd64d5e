"""The browser harness itself: it sees a healthy notebook as healthy, and it sees what is broken.

These run on scratch notebooks written into the served temporary folder (never into the
repository), so they prove the set-up before and independently of the lessons: the kernel runs
this checkout's evbroker, inline plots arrive as images, ipywidgets render and answer clicks, and
every kind of problem the lesson tests look for is actually detected.
"""

from __future__ import annotations

import nbformat
import pytest

from .notebook_files import write_scratch_notebook
from .notebook_page import NotebookPage, problems

pytestmark = pytest.mark.browser

SETUP = """\
import evbroker as eb
import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

def run(guarantee, fault):
    b = eb.Broker(seed=0)
    b.queue("payments", guarantee=guarantee, ack_timeout=5.0)
    crash = (lambda m: m.id == "m2" and m.attempt == 1) if fault == "crash before ack" else 0
    b.worker("payments", lambda msg, ctx: ctx.effect("charge", order=msg.payload["order"]),
             count=2, faults=eb.Faults(crash_before_ack=crash))
    for order in range(3):
        b.publish("payments", {"order": order})
    b.run()
    return b

def draw(b, ax):
    for kind, marker in (("deliver", ">"), ("effect", "o"), ("crash", "x"), ("ack", "s")):
        events = b.trace.where(kind=kind)
        ax.scatter([e.time for e in events], [e.actor for e in events], marker=marker, label=kind)
    ax.legend(loc="upper left", fontsize=7)
    ax.set_xlabel("virtual time")
"""

STATIC_PLOT = """\
b = run("at-least-once", "crash before ack")
fig, ax = plt.subplots(figsize=(7, 2.2))
draw(b, ax)
ax.set_title(f"crash before ack: {len(b.effects('charge'))} charges for 3 orders")
plt.show()
"""

EXPLORER = """\
guarantee = widgets.ToggleButtons(options=["at-most-once", "at-least-once", "exactly-once"], value="at-least-once")
fault = widgets.Dropdown(options=["none", "crash before ack"], value="none", description="fault")
summary = widgets.HTML()
timeline = widgets.Output()

def update(_=None):
    b = run(guarantee.value, fault.value)
    summary.value = f"<b>charges: {len(b.effects('charge'))}</b>, redeliveries: {b.stats('payments')['redeliveries']}"
    with timeline:
        timeline.clear_output(wait=True)
        fig, ax = plt.subplots(figsize=(7, 2.2))
        draw(b, ax)
        plt.show()

guarantee.observe(update, "value")
fault.observe(update, "value")
update()
display(widgets.VBox([guarantee, fault, summary, timeline]))
"""


def summary_text(nb: NotebookPage) -> str:
    return nb.page.locator(".widget-html").first.inner_text().strip()


def timeline_src(nb: NotebookPage) -> str:
    return nb.page.locator(".widget-output img").first.get_attribute("src") or ""


def test_a_healthy_notebook_runs_clean_renders_and_answers_clicks(lab_root, open_notebook, screenshots):
    """evbroker runs in the kernel, the plot and the widget render, and clicking changes both."""
    path = write_scratch_notebook(
        lab_root,
        "healthy.ipynb",
        [
            nbformat.v4.new_markdown_cell("# Scratch\nA static timeline and a small explorer, run in JupyterLab."),
            nbformat.v4.new_code_cell(SETUP),
            nbformat.v4.new_code_cell(STATIC_PLOT),
            nbformat.v4.new_code_cell(EXPLORER),
        ],
    )
    nb = open_notebook(path)
    outcome = nb.run_all()
    report = nb.report()
    assert problems(report) == []
    assert outcome == "ok"
    assert report.cells[2]["imgs"] == 1  # the static plot
    assert report.cells[3]["imgs"] == 1  # the plot inside the Output widget
    assert report.widgets >= 4  # VBox, toggle, dropdown, HTML, Output
    assert summary_text(nb) == "charges: 3, redeliveries: 0"

    # Crash before ack under at-least-once: order m2 is redelivered and charged twice.
    before = timeline_src(nb)
    nb.page.locator(".widget-dropdown select").first.select_option("crash before ack")
    nb.page.wait_for_function("() => document.querySelector('.widget-html').innerText.includes('charges: 4')")
    assert summary_text(nb) == "charges: 4, redeliveries: 1"
    nb.page.wait_for_function("(old) => document.querySelector('.widget-output img')?.src !== old", arg=before)

    # Exactly-once: the redelivered copy is deduplicated, three charges again.
    nb.page.locator(".widget-toggle-buttons button[data-value='exactly-once']").click()
    nb.page.wait_for_function("() => document.querySelector('.widget-html').innerText.includes('charges: 3')")
    assert summary_text(nb) == "charges: 3, redeliveries: 1"
    assert "mod-active" in (
        nb.page.locator(".widget-toggle-buttons button[data-value='exactly-once']").get_attribute("class") or ""
    )
    shot = nb.screenshot(screenshots / "harness-scratch.png")
    assert shot.stat().st_size > 10_000


def test_every_kind_of_trouble_is_reported(lab_root, open_notebook):
    """A stale widget, stderr text, a traceback, a cell never run and a missing plot are each named;
    an error in a cell tagged raises-exception is not."""
    stale_widget = nbformat.v4.new_code_cell("print('placeholder')")
    stale_widget.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "application/vnd.jupyter.widget-view+json": {
                    "version_major": 2,
                    "version_minor": 0,
                    "model_id": "0" * 32,
                },
                "text/plain": "VBox()",
            },
        )
    ]
    cells = [
        stale_widget,
        nbformat.v4.new_code_cell("import sys\nprint('careful', file=sys.stderr)"),
        nbformat.v4.new_code_cell("raise ValueError('shown on purpose')", metadata={"tags": ["raises-exception"]}),
        nbformat.v4.new_code_cell("1 / 0"),
        nbformat.v4.new_code_cell("print('never reached')"),
    ]
    path = write_scratch_notebook(lab_root, "broken.ipynb", cells)
    nb = open_notebook(path)

    # Before running: the stored widget output is untrusted, so JupyterLab shows its text fallback.
    opened = problems(nb.report())
    assert any("cell 0" in p and "widget not rendered" in p and "VBox()" in p for p in opened), opened

    assert nb.run_all() == "failed"
    found = problems(nb.report())
    assert not any("cell 0" in p for p in found), found
    assert any("cell 1" in p and "stderr" in p and "careful" in p for p in found), found
    assert not any("cell 2" in p for p in found), found  # tagged raises-exception: expected, and not blocking
    assert any("cell 3" in p and "ZeroDivisionError" in p for p in found), found
    assert any("cell 4" in p and "never ran" in p for p in found), found

    # A widget whose model the kernel does not have (as after a kernel restart) shows the error text.
    nb.page.evaluate(
        """([path, modelId]) => {
      const panel = [...window.jupyterapp.shell.widgets('main')].find(w => w.context && w.context.path === path);
      const cell = panel.content.model.cells.get(0);
      cell.trusted = true;
      cell.outputs.add({output_type: 'display_data', metadata: {}, data: {
        'application/vnd.jupyter.widget-view+json': {version_major: 2, version_minor: 0, model_id: modelId},
        'text/plain': 'VBox()'}});
    }""",
        [path, "f" * 32],
    )
    nb.settle_widgets()
    missing = problems(nb.report())
    assert any("cell 0" in p and "Error displaying widget" in p for p in missing), missing

    # Compared with a committed version that had a plot in cell 1, the missing image is named.
    committed = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("") for _ in cells])
    committed.cells[1].outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="})]
    against = problems(nb.report(), committed)
    assert any("cell 1 shows 0 image(s)" in p and "has 1" in p for p in against), against


# Makes the kernel wait before it takes up each request it is sent, as a kernel on a loaded machine
# may: between two queued cells it sits idle for a while. (The pause is inside the kernel, standing
# in for a busy CPU; the test itself waits on events only.)
STARVED_KERNEL = """\
import asyncio

_kernel = get_ipython().kernel
_dispatch = _kernel.dispatch_shell

async def _after_a_pause(msg, *args, **kwargs):
    await asyncio.sleep(1.5)
    return await _dispatch(msg, *args, **kwargs)

_kernel.dispatch_shell = _after_a_pause
"""


def test_run_all_waits_for_a_slow_kernel_to_finish_every_queued_cell(lab_root, open_notebook):
    """After a cell tagged raises-exception fails, JupyterLab stops showing the cells after it as queued,
    while the kernel still runs them. On a busy machine the kernel can stay idle for seconds before it
    takes the next one: run_all must still wait for it (it counts the kernel's answers, not quiet time)."""
    cells = [
        nbformat.v4.new_code_cell(STARVED_KERNEL),
        nbformat.v4.new_code_cell("raise ValueError('shown on purpose')", metadata={"tags": ["raises-exception"]}),
        nbformat.v4.new_code_cell("print('ran after the pause')"),
    ]
    nb = open_notebook(write_scratch_notebook(lab_root, "slow-kernel.ipynb", cells))
    nb.run_all()
    report = nb.report()
    assert problems(report) == []
    assert [out["streamText"] for out in report.cells[2]["outputs"]] == ["ran after the pause\n"]
