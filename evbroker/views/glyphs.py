"""A faster Agg canvas for the explorers: each distinct text is laid out and rasterised once.

An explorer redraws the same lane names, tick labels and titles on every click, and text is by
far the slowest thing matplotlib's Agg renderer draws (each string is shaped and each glyph
rasterised anew). :class:`GlyphCache` keeps the rasterised glyphs of every (string, font, size)
it has drawn and stamps them again at the next position, snapped to whole pixels (at most half
a pixel from where plain Agg would put them). Rotated text and math text go the ordinary way.

This leans on Agg internals of recent matplotlib; if they are not there (an older or newer
matplotlib), the canvas quietly draws text the ordinary way, only slower.
"""

from __future__ import annotations

from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg, get_hinting_flag

#: Most glyph runs kept (one per distinct string, font and size); the oldest go first.
CACHE_SIZE = 4000
_RUNS: dict[tuple, list[tuple[Any, int, int]]] = {}
_fast = True


def _raster(renderer: RendererAgg, s: str, prop: Any, antialiased: bool, mtext: Any) -> list[tuple[Any, int, int]]:
    """Rasterise ``s`` with its origin at (0, 0): a list of (alpha bitmap, left, top)."""
    import numpy as np
    from matplotlib.ft2font import RenderMode

    flags = get_hinting_flag()
    font = renderer._prepare_font(prop)
    items = font._layout(
        s,
        flags=flags,
        features=mtext.get_fontfeatures() if mtext is not None else None,
        language=mtext.get_language() if mtext is not None else None,
    )
    size = prop.get_size_in_points()
    identity = np.array([[0x10000, 0], [0, 0x10000]])
    run = []
    for item in items:
        ft = item.ft_object
        ft.set_size(size, renderer.dpi)
        ft._set_transform(identity, [round(0x40 * item.x), round(0x40 * item.y)])
        bitmap = ft._render_glyph(item.glyph_index, flags, RenderMode.NORMAL if antialiased else RenderMode.MONO)
        buffer = np.array(bitmap.buffer, copy=True)
        if not antialiased:
            buffer *= 0xFF
        run.append((buffer, bitmap.left, bitmap.top))
    return run


class GlyphCache(RendererAgg):
    """An Agg renderer that keeps rasterised text and stamps it again on later draws."""

    def draw_text(
        self, gc: Any, x: float, y: float, s: str, prop: Any, angle: float, ismath: Any = False, mtext: Any = None
    ) -> None:
        global _fast
        if ismath or angle % 360 or not _fast:
            return super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
        antialiased = bool(gc.get_antialiased())
        shaping = (mtext.get_fontfeatures(), mtext.get_language()) if mtext is not None else None
        key = (s, hash(prop), prop.get_size_in_points(), self.dpi, antialiased, get_hinting_flag(), shaping)
        run = _RUNS.get(key)
        if run is None:
            try:
                run = _raster(self, s, prop, antialiased, mtext)
            except (AttributeError, TypeError, ImportError):  # Agg internals not as expected
                _fast = False
                return super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
            if len(_RUNS) >= CACHE_SIZE:
                _RUNS.pop(next(iter(_RUNS)))
            _RUNS[key] = run
        height = int(self.height)
        left0, up0 = round(x), round(self.height - y)  # y is downwards here, FreeType's is upwards
        for buffer, left, top in run:
            self._renderer.draw_text_image(buffer, left0 + left, height - (up0 + top) + buffer.shape[0], 0, gc)
        return None

    def _get_font_height_metrics(self, prop: Any) -> tuple[float | None, float | None, float | None]:
        """Ascent, descent and line gap of a font at a size: what Text reads for every layout, kept."""
        key = (hash(prop), prop.get_size_in_points(), self.dpi)
        metrics = _HEIGHTS.get(key)
        if metrics is None:
            metrics = (None, None, None)
            try:
                from matplotlib.font_manager import fontManager, get_font

                font = get_font(fontManager._find_fonts_by_props(prop))
                for table_name, gap, ascent, descent in (
                    ("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"),
                    ("hhea", "lineGap", "ascent", "descent"),
                ):
                    table = font.get_sfnt_table(table_name)
                    if table is None:
                        continue
                    scale = prop.get_size_in_points() * self.dpi / 72 / font.get_sfnt_table("head")["unitsPerEm"]
                    metrics = (table[ascent] * scale, -table[descent] * scale, table[gap] * scale)
                    break
            except (AttributeError, TypeError, KeyError, ImportError):
                metrics = (None, None, None)  # Text falls back to measuring "lp"
            _HEIGHTS[key] = metrics
        return metrics


_HEIGHTS: dict[tuple, tuple[float | None, float | None, float | None]] = {}
#: Renderers kept per canvas (one per figure size), so each keeps its text-metrics cache warm.
RENDERERS_KEPT = 6


class FastCanvas(FigureCanvasAgg):
    """A ``FigureCanvasAgg`` whose renderer is a :class:`GlyphCache`, one kept per figure size."""

    def get_renderer(self) -> RendererAgg:
        w, h = self.get_width_height(physical=True)
        key = w, h, self.figure.dpi
        kept = self.__dict__.setdefault("_kept", {})
        renderer = kept.get(key)
        if renderer is None:
            if len(kept) >= RENDERERS_KEPT:
                kept.pop(next(iter(kept)))
            renderer = kept[key] = GlyphCache(w, h, self.figure.dpi)
        self.renderer = renderer
        self._lastKey = key
        return renderer
