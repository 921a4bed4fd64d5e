"""What every explorer widget shares: controls built once, a picture redrawn on change, errors shown.

An explorer is an ``ipywidgets.VBox``: displaying it needs nothing else. Its controls are real
ipywidgets controls kept as attributes (``w.guarantee``, ``w.fault``...), so a test or an
exercise drives it exactly as a learner does: ``w.guarantee.value = "exactly-once"``. Every
change recomputes the run and redraws synchronously, so right after the assignment
``w.result`` (the latest run) and ``w.summary`` (its numbers) are up to date.

The picture is one matplotlib ``Figure`` per explorer (not a pyplot figure, so nothing
leaks into pyplot's list of open figures), cleared and redrawn on every change and shown as
a PNG in an ``ipywidgets.Image``. That works the same in JupyterLab, headless, and in a
notebook saved with its widget state and opened without a kernel (the last picture is part
of the saved state).

A callback that raises would be silent in JupyterLab (the traceback goes to the log). Here
the error is caught and shown in the explorer's ``errors`` output, and kept as ``w.error``.
"""

from __future__ import annotations

import html
import io
import traceback
from collections.abc import Iterable
from typing import Any

import ipywidgets as widgets

from evbroker.errors import EvbrokerError
from evbroker.views import style
from evbroker.views import timeline as tl

#: Pre-drawn timeline legends, by their entries (see :meth:`Explorer.paste_legend`).
_LEGENDS: dict[tuple[str, ...], Any] = {}


class Explorer(widgets.VBox):
    """Base class: subclasses build ``controls``, then implement :meth:`compute` and :meth:`draw`."""

    #: The figure size in inches at the widget's resolution (subclasses may resize per run).
    figsize: tuple[float, float] = (style.NOTEBOOK_WIDTH, 4.0)

    def __init__(self, controls: list[widgets.Widget], *, header: str = "") -> None:
        from matplotlib.figure import Figure

        from evbroker.views.glyphs import FastCanvas

        self.controls = controls
        # no layout engine: it would draw every figure twice; subclasses place axes in inches
        self.figure = Figure(figsize=self.figsize, dpi=style.WIDGET_DPI)
        FastCanvas(self.figure)
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.summary_html = widgets.HTML()
        self.errors = widgets.Output(layout=widgets.Layout(border="0"))
        self.result: Any = None
        self.summary: dict[str, Any] = {}
        self.error: BaseException | None = None
        self.png: bytes = b""
        self.updates = 0
        self._axes: dict[str, Any] = {}
        head = [widgets.HTML(header)] if header else []
        rows = self.control_rows()
        super().__init__([*head, *rows, self.summary_html, self.image, self.errors])
        for control in controls:
            control.observe(self._changed, names="value")
        self.refresh()

    # ------------------------------------------------------------------ to override

    def control_rows(self) -> list[widgets.Widget]:
        """How the controls are arranged (default: one row)."""
        return [widgets.HBox(self.controls, layout=widgets.Layout(flex_flow="row wrap"))]

    def compute(self) -> Any:
        """Run the scenario for the current control values and return the result."""
        raise NotImplementedError

    def summarise(self, result: Any) -> tuple[dict[str, Any], str]:
        """The numbers of a result and their HTML."""
        return {}, ""

    def draw(self, result: Any) -> None:
        """Draw ``result`` on ``self.figure`` (already cleared)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ machinery

    def _changed(self, change: dict) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Recompute and redraw now; on failure keep the last picture and show the error."""
        try:
            result = self.compute()
            summary, text = self.summarise(result)
            for picture in list(self.figure.images):  # the pasted legend
                picture.remove()
            self.draw(result)
            png = self.render()
        except Exception as exc:  # shown to the learner, never swallowed
            self.error = exc
            self._show_error(exc)
            return
        self.result, self.summary, self.error = result, summary, None
        self.summary_html.value = text
        self.png = png
        self.image.value = png
        self.errors.outputs = ()
        self.updates += 1

    def render(self) -> bytes:
        """Draw the canvas once and encode it as PNG (fast compression, no timestamp)."""
        import matplotlib
        from PIL import Image

        canvas = self.figure.canvas
        with matplotlib.rc_context({"text.hinting": "none"}):  # unhinted glyphs draw ~40% faster
            canvas.draw()
        import numpy as np

        buf = io.BytesIO()
        # the figure is opaque: RGB encodes a little faster than RGBA
        Image.fromarray(np.asarray(canvas.buffer_rgba())[:, :, :3]).save(buf, format="png", compress_level=1)
        return buf.getvalue()

    def axes(
        self, name: str, *, left: float, right: float, top: float, bottom: float, band: tuple[float, float] = (0.0, 1.0)
    ) -> Any:
        """The explorer's axes called ``name``, placed by margins in inches and emptied.

        Axes are made once and reused: emptying them keeps their ticks, which matplotlib would
        otherwise rebuild on every redraw (a good part of the time a redraw takes).
        """
        width, height = self.figure.get_size_inches()
        x0, x1 = left / width, 1 - right / width
        y0, y1 = band[0] + bottom / height, band[1] - top / height
        box = (x0, y0, max(x1 - x0, 0.05), max(y1 - y0, 0.05))
        ax = self._axes.get(name)
        if ax is None:
            ax = self._axes[name] = self.figure.add_axes(box)
        else:
            wipe(ax)
            ax.set_position(box)
        return ax

    def draw_timeline(self, trace: Any, title: str, *, below: float = 0.0) -> tuple[float, float]:
        """Size the figure for ``trace``'s timeline plus ``below`` inches of panels, and draw it on top.

        Returns the share of the figure's height left below the timeline (the ``band`` for the
        panels there) and the timeline's right margin in inches.
        """
        lay = tl.layout(trace)
        top_h = tl.figsize(len(lay.lanes))[1]
        self.figure.set_size_inches(style.NOTEBOOK_WIDTH, top_h + below)
        split = below / (top_h + below)
        left, right = tl.margins(lay)
        ax = self.axes("timeline", left=left, right=right, top=0.35, bottom=0.5, band=(split, 1.0))
        self.paste_legend(tl.draw(ax, lay, title=title, trace=trace, legend=False), ax)
        return split, right

    def paste_legend(self, handles: list[Any], ax: Any, *, inside: bool = False) -> None:
        """Put a legend for ``handles`` right of ``ax`` (or inside its top right corner), as pixels.

        Text is the slowest thing matplotlib draws, and a legend hardly changes between two
        clicks, so it is drawn once per set of entries and pasted as a picture afterwards.
        """
        if not handles:
            return
        key = (inside, *(h.get_label() for h in handles))
        pixels = _LEGENDS.get(key)
        if pixels is None:
            pixels = _LEGENDS[key] = _draw_legend(handles, inside)
        bbox = ax.get_position()
        width, height = self.figure.canvas.get_width_height()
        x = int(bbox.x1 * width) - pixels.shape[1] - 4 if inside else int(bbox.x1 * width) + 6
        y = int(bbox.y1 * height) - pixels.shape[0]
        self.figure.figimage(pixels, xo=x, yo=y, origin="upper", zorder=10)

    def _show_error(self, exc: BaseException) -> None:
        if isinstance(exc, EvbrokerError):
            tb = [f"EvbrokerError: {exc}"]
        else:
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        self.errors.outputs = (
            {
                "output_type": "error",
                "ename": type(exc).__name__,
                "evalue": str(exc),
                "traceback": [line.rstrip("\n") for line in tb],
            },
        )

    @property
    def error_text(self) -> str:
        """What the errors area shows now ("" when the last update worked)."""
        parts = []
        for out in self.errors.outputs:
            if out.get("output_type") == "error":
                parts.append("\n".join(out.get("traceback", [])))
            else:
                parts.append(str(out.get("text", "")))
        return "\n".join(parts)

    def describe(self) -> str:
        """One plain line: the control values and the key numbers (the text fallback)."""
        values = ", ".join(f"{c.description or type(c).__name__}={c.value!r}" for c in self.controls)
        numbers = ", ".join(f"{k} {v}" for k, v in self.summary.items() if isinstance(v, int))
        text = f"{type(self).__name__}({values})"
        return f"{text}: {numbers}" if numbers else text

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle["text/plain"] = self.describe()
        return bundle

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    def close(self) -> None:
        """Close the widget and its children; drop the figure."""
        for child in [*self.controls, self.image, self.summary_html, self.errors]:
            child.close()
        super().close()


def _draw_legend(handles: list[Any], inside: bool) -> Any:
    """A legend drawn on its own, cropped to its ink: an RGBA array."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from evbroker.views.timeline import legend_at

    fig = Figure(figsize=(2.6, 0.1 + 0.175 * len(handles)), dpi=style.WIDGET_DPI)
    FigureCanvasAgg(fig)
    holder = fig.add_axes((0, 0, 0.001, 1))
    holder.set_axis_off()
    legend = legend_at(holder, handles)
    if inside:
        for text in legend.get_texts():
            text.set_fontsize(8)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    ink = np.nonzero((pixels[:, :, :3] < 250).any(axis=2).any(axis=0))[0]
    return pixels[:, : int(ink.max()) + 3] if ink.size else pixels


def wipe(ax: Any) -> None:
    """Remove what was drawn on ``ax`` (artists, legend, title, labels) but keep the axes and ticks."""
    for artist in [*ax.collections, *ax.texts, *ax.lines, *ax.patches, *ax.images, *ax.artists]:
        artist.remove()
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    ax.set_title("", loc="left")
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.relim()
    ax.autoscale(True)
    ax.set_axis_on()


def axes_at(
    fig: Any, *, left: float, right: float, top: float, bottom: float, band: tuple[float, float] = (0.0, 1.0)
) -> Any:
    """Add axes with margins in inches, inside ``band`` (bottom and top, as fractions of the height)."""
    width, height = fig.get_size_inches()
    x0, x1 = left / width, 1 - right / width
    y0, y1 = band[0] + bottom / height, band[1] - top / height
    return fig.add_axes((x0, y0, max(x1 - x0, 0.05), max(y1 - y0, 0.05)))


def html_table(rows: Iterable[tuple[str, Any]], caption: str = "") -> str:
    """A small two-row HTML table: names on top, numbers below."""
    rows = list(rows)
    cell = "padding:2px 10px;text-align:center;border:1px solid #ddd"
    head = "".join(f'<th style="{cell};font-weight:normal;color:#555">{html.escape(k)}</th>' for k, _ in rows)
    body = "".join(f'<td style="{cell};font-size:1.1em"><b>{html.escape(str(v))}</b></td>' for _, v in rows)
    cap = f'<caption style="text-align:left">{caption}</caption>' if caption else ""
    return f'<table style="border-collapse:collapse;margin:4px 0">{cap}<tr>{head}</tr><tr>{body}</tr></table>'
