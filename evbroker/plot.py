"""Plots of a run: the swimlane timeline, the flow graph and queue depth over time.

>>> import evbroker as eb
>>> b = eb.scenarios.payments("at-least-once", "crash before ack")
>>> ax = eb.plot.timeline(b)                 # doctest: +SKIP
>>> ax, g = eb.plot.flow(b)                  # doctest: +SKIP
>>> ax = eb.plot.queue_depth(b)              # doctest: +SKIP
>>> ax = eb.plot.schedule_grid(eb.explore(build, invariant))  # doctest: +SKIP

Each function takes a ``Broker``, a ``Trace`` or a workflow run result (anything with a
``.trace``) and reads the recorded events only.
"""

from evbroker.views.depth import depths, queue_depth
from evbroker.views.flow import Flow, flow
from evbroker.views.flow import graph as flow_graph
from evbroker.views.schedules import schedule_grid
from evbroker.views.style import MARKERS
from evbroker.views.timeline import layout, timeline

__all__ = ["MARKERS", "Flow", "depths", "flow", "flow_graph", "layout", "queue_depth", "schedule_grid", "timeline"]
