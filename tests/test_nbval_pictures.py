"""The picture check (tests/nbval_pictures.py): it passes a picture drawn again, and it fails a changed one.

The last test runs the real thing: a scratch notebook with a plot and an Image widget is built
with `make notebooks`' own executor, then nbval runs it in a fresh kernel with the picture plugin,
once as built (the pictures render to the same pixels in another process: they are deterministic)
and once with the plotted data changed (each changed picture fails, naming notebook and cell).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat
import pytest

from tests.nbval_pictures import (
    TOLERANCE,
    WidgetImages,
    compare_pictures,
    compare_png,
    png_outputs,
    stored_widget_images,
)

REPO = Path(__file__).resolve().parents[1]


def line_png(y: float = 1.0, size: tuple[float, float] = (4, 2)) -> bytes:
    fig, ax = plt.subplots(figsize=size)
    ax.plot([0, 1, 2], [0, y, 0], marker="o")
    ax.set_title("deliveries")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def test_the_same_drawing_twice_is_the_same_picture():
    first, second = line_png(), line_png()
    assert first == second  # byte for byte: nothing in the drawing depends on time or hashing
    assert compare_png(first, second, "nb, cell 3") == ""
    assert compare_pictures("nb, cell 3", [first], [second]) == []


def test_a_moved_mark_is_a_different_picture(tmp_path):
    problem = compare_png(line_png(1.0), line_png(1.2), "notebooks/04_x.ipynb: code cell 3", keep=tmp_path / "c3")
    assert problem.startswith("notebooks/04_x.ipynb: code cell 3: differs from the committed picture (RMS ")
    assert f"tolerance {TOLERANCE:g}" in problem
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == ["c3-actual-failed-diff.png", "c3-actual.png", "c3-expected.png"]


def test_a_resized_missing_or_extra_picture_is_named():
    assert "size" in compare_png(line_png(size=(4, 2)), line_png(size=(5, 2)), "cell 1")
    assert "cannot be compared" in compare_png(line_png(), b"not a png", "cell 1")
    found = compare_pictures("nb: code cell 2", [line_png()], [])
    assert found == ["nb: code cell 2: draws 0 picture(s) now, the committed notebook holds 1"]
    found = compare_pictures("nb: code cell 2", [line_png(1.0)], [line_png(1.0), line_png(2.0)])
    assert found == ["nb: code cell 2: draws 2 picture(s) now, the committed notebook holds 1"]


def test_png_outputs_and_stored_widget_images_are_read_in_order():
    one, two = line_png(1.0), line_png(2.0)
    outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="hi\n"),
        nbformat.v4.new_output("display_data", data={"image/png": _b64(one), "text/plain": "<Figure>"}),
        nbformat.v4.new_output("display_data", data={"image/png": _b64(two), "text/plain": "<Figure>"}),
    ]
    assert png_outputs(outputs) == [one, two]
    state = {
        "a": {"model_name": "LayoutModel", "state": {}},
        "b": {"model_name": "ImageModel", "state": {}, "buffers": [{"path": ["value"], "data": _b64(two)}]},
        "c": {"model_name": "ImageModel", "state": {}, "buffers": [{"path": ["value"], "data": _b64(one)}]},
    }
    nb = {"metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": state}}}}
    assert stored_widget_images(nb) == [two, one]


def test_widget_images_keep_each_image_widgets_last_value_and_its_cell():
    seen = WidgetImages()
    seen.cell = "nb: code cell 1"
    seen.see(_comm("comm_open", "L", {"_model_name": "LayoutModel"}))
    seen.see(_comm("comm_open", "I", {"_model_name": "ImageModel", "format": "png"}, value=b"first"))
    seen.cell = "nb: code cell 2"
    seen.see(_comm("comm_msg", "I", {}, value=line_png(1.0)))
    seen.see({"msg_type": "stream", "content": {"name": "stdout", "text": "x"}})
    assert seen.created_in == {"I": "nb: code cell 1"}
    assert seen.values == {"I": line_png(1.0)}
    assert seen.compare([line_png(1.0)], "nb") == []
    (problem,) = seen.compare([line_png(2.0)], "nb")
    assert problem.startswith("nb, image widget 1 (created in nb: code cell 1): differs from the committed picture")
    assert seen.compare([], "nb") == ["nb: 1 image widget(s) drawn now, the committed widget state holds 0"]


SETUP = "import io\nimport ipywidgets as widgets\nimport matplotlib.pyplot as plt"
PLOT = """\
fig, ax = plt.subplots(figsize=(4, 2))
ax.plot([0, 1, 2], [0, {y}, 0], marker="o")
ax.set_ylim(0, 3)
plt.show()"""
WIDGET = """\
fig, ax = plt.subplots(figsize=(4, 2))
ax.bar(["a", "b"], [1, {y}])
buf = io.BytesIO()
fig.savefig(buf, format="png")
plt.close(fig)
widgets.Image(value=buf.getvalue(), format="png")"""


@pytest.mark.slow
def test_nbval_with_the_plugin_passes_redrawn_pictures_and_fails_changed_ones(tmp_path):
    from evbroker.build import execute_notebook, write_notebook

    def notebook(name: str, y: int) -> Path:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        cells = [SETUP, PLOT.format(y=y), "print('between')", WIDGET.format(y=y)]
        nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        path = tmp_path / name
        write_notebook(nb, path)
        return path

    built = notebook("built.ipynb", 1)
    write_notebook(execute_notebook(built), built)
    assert len(png_outputs(nbformat.read(built, as_version=4).cells[1].outputs)) == 1
    changed = notebook("changed.ipynb", 2)
    stored = nbformat.read(built, as_version=4)
    edited = nbformat.read(changed, as_version=4)
    for cell, source in zip(stored.cells, edited.cells, strict=True):
        cell.source = source.source  # committed outputs of y=1, code now drawing y=2
    write_notebook(stored, changed)

    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["EVBROKER_PICTURES_DIR"] = str(tmp_path / "pictures")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.nbval_pictures", "--nbval",
         "--nbval-current-env", "-q", "built.ipynb", "changed.ipynb"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert "FAILED changed.ipynb::Cell 1" in out, out
    assert "FAILED changed.ipynb::Cell 3" in out, out  # the widget, checked after the notebook's last cell
    assert "2 failed, 6 passed" in out, out  # built.ipynb passes: redrawn in a fresh kernel, same pixels
    assert "changed.ipynb: code cell 1, cell 1 of the notebook ('fig, ax = plt.subplots(figsize=(4, 2))'), " in out
    assert "picture 1: differs from the committed picture (RMS" in out
    assert "image widget 1 (created in " in out and "code cell 3, cell 3 of the notebook" in out
    kept = sorted(p.relative_to(tmp_path / "pictures").as_posix() for p in (tmp_path / "pictures").rglob("*.png"))
    assert kept == [
        f"changed/{name}-{kind}.png"
        for name in ("cell-1-picture-1", "image-widget-1")
        for kind in ("actual-failed-diff", "actual", "expected")
    ], kept


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def _comm(kind: str, comm_id: str, state: dict, value: bytes | None = None) -> dict:
    data: dict = {"state": state, "buffer_paths": [["value"]] if value is not None else []}
    if kind == "comm_msg":
        data["method"] = "update"
    return {
        "msg_type": kind,
        "content": {"comm_id": comm_id, "data": data},
        "buffers": [value] if value is not None else [],
    }
