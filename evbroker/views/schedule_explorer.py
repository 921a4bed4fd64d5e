"""ScheduleExplorer: the violating fault schedules of an ``eb.explore`` search, smallest first,
and the one picked drawn on the timeline."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from evbroker.core.explore import Exploration
from evbroker.errors import EvbrokerError
from evbroker.views import style
from evbroker.views.explorer import Explorer
from evbroker.views.schedules import HOLDS, point_label


class ScheduleExplorer(Explorer):
    """The violating schedules of an ``eb.explore`` result, smallest first; the one picked, drawn.

    ``schedule`` (a Dropdown) picks a violation by its place in ``res.violations``; ``result``
    is that :class:`~evbroker.core.explore.Violation` (None when every schedule held) and
    ``summary`` has ``schedules``, ``violations`` and ``faults`` (of the one picked).
    """

    figsize = (style.NOTEBOOK_WIDTH, 3.2)

    def __init__(self, res: Exploration, *, limit: int = 200) -> None:
        if not isinstance(res, Exploration):
            raise EvbrokerError(
                f"ScheduleExplorer needs the result of eb.explore(...) (got {type(res).__name__}); "
                "e.g. eb.widgets.ScheduleExplorer(eb.explore(build, invariant))"
            )
        self.res = res
        shown = res.violations[:limit]
        options = [(f"{i + 1}. {v}"[:140], i) for i, v in enumerate(shown)] or [(res.summary(), -1)]
        self.schedule = widgets.Dropdown(
            options=options,
            value=options[0][1],
            description="schedule",
            layout=widgets.Layout(width="98%"),
        )
        super().__init__([self.schedule])

    def compute(self) -> Any:
        i = self.schedule.value
        return self.res.violations[i] if i >= 0 else None

    def summarise(self, v: Any) -> tuple[dict[str, Any], str]:
        res = self.res
        numbers = {"schedules": res.schedules, "violations": len(res.violations), "faults": len(v.faults) if v else 0}
        if v is None:
            return numbers, f"<b>\u2714 {html.escape(res.summary())}</b>"
        said = "; ".join(str(p) for p in v.faults) or "no fault at all"
        text = (
            f"<b>{len(res.violations)} of {res.schedules} schedules</b> (up to {res.max_faults} faults) break the "
            f"invariant. This one: <b>{html.escape(said)}</b> \u2192 {html.escape(v.message.splitlines()[0])}"
            f"<br><code>{html.escape(v.replay)}</code>"
        )
        return numbers, text

    def draw(self, v: Any) -> None:
        if v is None:
            self.figure.set_size_inches(style.NOTEBOOK_WIDTH, 1.0)
            ax = self.axes("timeline", left=0.2, right=0.2, top=0.2, bottom=0.2)
            ax.set_axis_off()
            ax.text(0.0, 0.5, self.res.summary(), fontsize=12, color=HOLDS, va="center")
            return
        said = "; ".join(point_label(p) for p in v.faults) or "no fault"
        self.draw_timeline(v.broker.trace, f"{said} \u2192 {v.message.splitlines()[0]}"[:110])

    def describe(self) -> str:
        return f"ScheduleExplorer({self.res.summary().splitlines()[0]})"

    def close(self) -> None:
        if not hasattr(self, "controls"):  # refused before it was built: nothing to close
            return
        super().close()
