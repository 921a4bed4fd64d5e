"""Pictures compared: every picture a committed notebook holds is drawn again and compared, pixel by pixel.

nbval (``make test`` runs it in strict mode over ``notebooks/`` and ``solutions/``) re-executes each
notebook cell by cell and compares text outputs, but it skips ``image/png``: a committed plot could
silently stop matching the code that draws it. This pytest plugin rides on nbval's own run, so no
notebook is executed twice:

* plots a cell shows (``image/png`` outputs): after nbval runs a cell, the PNGs it produced now are
  compared, in order, with the PNGs committed in that cell;
* pictures inside widgets (an explorer's ``ipywidgets.Image``): the plugin listens to the kernel
  messages nbval reads, keeps each Image widget's last value, and after the notebook's last cell
  compares them, in creation order, with the images in the notebook's stored widget state (which
  ``make notebooks`` writes in creation order, as nbclient does).

Pixels are compared with ``matplotlib.testing.compare.compare_images`` (RMS difference of 0-255
values at most ``TOLERANCE``). A difference fails that cell's test, naming the notebook, the cell
(nbval's code-cell number, its index among all cells and its first line) and the RMS; the
expected, actual and difference images are written to ``artifacts/pictures/<notebook>/``.
Cells nbval does not check (``nbval-skip``, ``nbval-ignore-output``) are not compared either.

The kit's plots are deterministic (same code and seed, same pixels: matplotlib's bundled DejaVu
fonts, ``PYTHONHASHSEED=0``, no dates drawn), so the tolerance is only headroom for anti-aliasing
noise, far below what a moved mark or a changed label costs.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# Where a mismatch's expected, actual and difference images go (git-ignored); EVBROKER_PICTURES_DIR overrides.
ARTIFACTS = Path(os.environ.get("EVBROKER_PICTURES_DIR") or REPO / "artifacts" / "pictures")
TOLERANCE = 1.0  # RMS of 0-255 pixel values; identical renders score 0.0
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


# ------------------------------------------------------------------------------------------- comparing


def compare_png(expected: bytes, actual: bytes, label: str, tol: float = TOLERANCE, keep: Path | None = None) -> str:
    """'' when the two PNGs match within `tol`, else one sentence (starting with `label`) saying how they differ.

    With `keep` (a path without suffix, e.g. ``artifacts/pictures/04_x/cell-11-picture-1``), the
    expected, actual and difference images of a mismatch are written beside it.
    """
    if expected == actual:
        return ""
    from matplotlib.testing.compare import compare_images
    from matplotlib.testing.exceptions import ImageComparisonFailure

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stem = keep.name if keep is not None else "picture"
        want, got = folder / f"{stem}-expected.png", folder / f"{stem}-actual.png"
        want.write_bytes(expected)
        got.write_bytes(actual)
        try:
            result = compare_images(str(want), str(got), tol, in_decorator=True)
        except ImageComparisonFailure as exc:  # different sizes
            result = {"rms": None, "detail": str(exc).splitlines()[0]}
        except Exception as exc:  # not a readable PNG
            result = {"rms": None, "detail": f"cannot be compared ({type(exc).__name__}: {exc})"}
        if result is None:
            return ""
        if keep is not None:
            keep.parent.mkdir(parents=True, exist_ok=True)
            for produced in folder.iterdir():
                (keep.parent / produced.name).write_bytes(produced.read_bytes())
    if result["rms"] is None:
        return f"{label}: {result['detail']}"
    return f"{label}: differs from the committed picture (RMS {result['rms']:.2f} > tolerance {tol:g})"


def compare_pictures(
    label: str, expected: list[bytes], actual: list[bytes], tol: float = TOLERANCE, keep: Path | None = None
) -> list[str]:
    """Compare two lists of PNGs in order; one sentence per difference (count, size or pixels).

    With `keep` (a folder and a file prefix), a mismatch's images go to ``<keep>-picture-<n>-*.png``."""
    found = []
    if len(expected) != len(actual):
        found.append(f"{label}: draws {len(actual)} picture(s) now, the committed notebook holds {len(expected)}")
    for n, (want, got) in enumerate(zip(expected, actual, strict=False), start=1):
        where = keep.with_name(f"{keep.name}-picture-{n}") if keep is not None else None
        problem = compare_png(want, got, f"{label}, picture {n}", tol, where)
        if problem:
            found.append(problem)
    return found


def png_outputs(outputs: Iterable[Any]) -> list[bytes]:
    """The image/png data of a cell's outputs (nbformat dicts), decoded, in order."""
    return [_decode(out["data"]["image/png"]) for out in outputs if "image/png" in (out.get("data") or {})]


def stored_widget_images(nb: Any) -> list[bytes]:
    """The values of the notebook's stored ipywidgets Image models, in the stored (creation) order."""
    state = (nb.get("metadata") or {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    images = []
    for model in state.values():
        if model.get("model_name") != "ImageModel":
            continue
        buffers = {tuple(b["path"]): b for b in model.get("buffers", [])}
        value = buffers.get(("value",))
        images.append(_decode(value["data"]) if value else b"")
    return images


def _decode(data: Any) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, list):
        data = "".join(data)
    return base64.b64decode(data)


# ------------------------------------------------------------------------------- widgets, as they run


@dataclass
class WidgetImages:
    """Each ipywidgets Image model a kernel creates, its last value, and the cell that created it."""

    created_in: dict[str, str] = field(default_factory=dict)  # comm id -> cell label, creation order
    values: dict[str, bytes] = field(default_factory=dict)
    _models: dict[str, str] = field(default_factory=dict)  # comm id -> model name (every widget seen)
    cell: str = ""

    def see(self, msg: dict[str, Any]) -> None:
        """Note one iopub message (others pass by)."""
        if msg.get("msg_type") not in ("comm_open", "comm_msg"):
            return
        content = msg.get("content") or {}
        data = content.get("data") or {}
        state = data.get("state")
        comm_id = content.get("comm_id")
        if not isinstance(state, dict) or not comm_id:
            return
        name = state.get("_model_name")
        if name and comm_id not in self._models:
            self._models[comm_id] = name
            if name == "ImageModel":
                self.created_in[comm_id] = self.cell
        if self._models.get(comm_id) != "ImageModel":
            return
        buffers = msg.get("buffers") or []
        for path, buffer in zip(data.get("buffer_paths") or [], buffers, strict=False):
            if list(path) == ["value"]:
                self.values[comm_id] = bytes(buffer)
        if isinstance(state.get("value"), str):  # an image sent without a binary buffer
            self.values[comm_id] = _decode(state["value"]) if state["value"] else b""

    def wrap(self, get_message: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        def recorded(*args: Any, **kwargs: Any) -> dict[str, Any]:
            msg = get_message(*args, **kwargs)
            self.see(msg)
            return msg

        return recorded

    def compare(self, stored: list[bytes], where: str, tol: float = TOLERANCE, keep: Path | None = None) -> list[str]:
        """Compare the last value of each Image widget, in creation order, with `stored`; `keep` is a folder."""
        found = []
        drawn = list(self.created_in)
        if len(drawn) != len(stored):
            found.append(
                f"{where}: {len(drawn)} image widget(s) drawn now, the committed widget state holds {len(stored)}"
            )
        for n, (comm_id, want) in enumerate(zip(drawn, stored, strict=False), start=1):
            label = f"{where}, image widget {n} (created in {self.created_in[comm_id]})"
            file = keep / f"image-widget-{n}" if keep is not None else None
            problem = compare_png(want, self.values.get(comm_id, b""), label, tol, file)
            if problem:
                found.append(problem)
        return found


# ------------------------------------------------------------------------------------------ the hooks

_PROBLEMS = pytest.StashKey[list[str]]()


def _shown(path: Path) -> str:
    try:
        return path.relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def _is_nbval_cell(item: pytest.Item) -> bool:
    return type(item).__name__ == "IPyNbCell" and hasattr(item, "cell") and hasattr(item.parent, "kernel")


def _cell_label(item: Any) -> str:
    notebook = Path(str(item.fspath))
    try:
        notebook = notebook.relative_to(REPO)
    except ValueError:
        pass
    index = _cell_index(item)
    first = (item.cell.source.strip().splitlines() or [""])[0][:60]
    at = f", cell {index} of the notebook" if index is not None else ""
    return f"{notebook.as_posix()}: code cell {item.cell_num}{at} ({first!r})"


def _cell_index(item: Any) -> int | None:
    """The cell's index among all the notebook's cells (markdown included), as a reader counts them."""
    cells = item.parent.nb.cells if getattr(item.parent, "nb", None) is not None else []
    return next((i for i, c in enumerate(cells) if c is item.cell), None)


def _last_cell_of_its_notebook(item: pytest.Item) -> bool:
    same = [i for i in item.session.items if i.parent is item.parent]
    return bool(same) and same[-1] is item


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):  # type: ignore[no-untyped-def]
    if not _is_nbval_cell(item):
        return (yield)
    parent: Any = item.parent
    recorder = getattr(parent, "_evbroker_widget_images", None)
    if recorder is None:
        recorder = parent._evbroker_widget_images = WidgetImages()
        parent.get_kernel_message = recorder.wrap(parent.get_kernel_message)
    label = _cell_label(item)
    recorder.cell = label
    result = yield  # nbval runs the cell (raises if it failed: then there is nothing to compare)
    found: list[str] = []
    keep = ARTIFACTS / Path(str(item.fspath)).stem
    if item.options.get("check") and not item.options.get("skip") and item.cell.execution_count is not None:
        cell = keep / f"cell-{_cell_index(item)}"
        found += compare_pictures(
            label, png_outputs(item.cell.outputs), png_outputs(item.test_outputs or []), keep=cell
        )
    if _last_cell_of_its_notebook(item):
        import nbformat

        stored = stored_widget_images(nbformat.read(str(item.fspath), as_version=4))
        notebook = label.split(": code cell")[0]
        found += recorder.compare(stored, notebook, keep=keep)
    item.stash[_PROBLEMS] = found
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
    report = yield
    found = item.stash.get(_PROBLEMS, None)
    if call.when == "call" and found and report.passed:
        report.outcome = "failed"
        report.longrepr = (
            "The pictures this notebook draws now do not match the committed ones:\n  "
            + "\n  ".join(found)
            + f"\nExpected, actual and difference images: {_shown(ARTIFACTS)}/. If the change is "
            "intended, re-run `make notebooks` and commit the new outputs."
        )
    return report
