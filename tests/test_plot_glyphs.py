"""The explorers' faster canvas draws text the way plain Agg does, give or take half a pixel."""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evbroker.views import glyphs


def draw(canvas_class):
    fig = Figure(figsize=(4, 1.5), dpi=96)
    canvas_class(fig)
    ax = fig.add_axes((0.2, 0.3, 0.7, 0.5))
    ax.plot([0, 1], [0, 1])
    ax.set_title("payments \u00b7 try 2", loc="left")
    ax.set_xlabel("virtual time")
    ax.text(0.3, 0.5, "m1 and all it caused", fontsize=8, fontweight="bold")
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).astype(int)


def test_text_looks_the_same_and_is_cached():
    glyphs._RUNS.clear()
    plain = draw(FigureCanvasAgg)
    fast = draw(glyphs.FastCanvas)
    assert glyphs._fast and glyphs._RUNS  # the fast path ran and kept what it drew
    assert np.abs(plain - fast).mean() < 3  # the same picture but for sub-pixel placement of text
    assert (draw(glyphs.FastCanvas) == fast).all()  # drawn again from the cache: identical


def test_rotated_text_takes_the_ordinary_path():
    glyphs._RUNS.clear()
    fig = Figure(figsize=(2, 2), dpi=96)
    glyphs.FastCanvas(fig)
    fig.text(0.5, 0.5, "sideways", rotation=90)
    fig.canvas.draw()
    assert not any(key[0] == "sideways" for key in glyphs._RUNS)
