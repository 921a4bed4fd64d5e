"""Explorer widgets and quizzes for the lessons (ipywidgets 8).

Each explorer is an ``ipywidgets.VBox``: put it last in a cell to show it. Its controls are
real ipywidgets controls kept as attributes; set ``.value`` to drive it from code, and read
``.result`` (the latest run) and ``.summary`` (its numbers) right after::

    w = eb.widgets.DeliveryExplorer()
    w.guarantee.value = "exactly-once"
    w.summary["charges"]            # 4: the crash before the ack no longer charges twice

Errors raised while updating are shown in the widget (``w.errors``) and kept in ``w.error``.
"""

from evbroker.views.delivery_explorer import DeliveryExplorer
from evbroker.views.explorer import Explorer
from evbroker.views.queue_explorer import QueueExplorer
from evbroker.views.quiz import Quiz
from evbroker.views.schedule_explorer import ScheduleExplorer
from evbroker.views.workflow_explorer import WorkflowExplorer

__all__ = ["DeliveryExplorer", "Explorer", "QueueExplorer", "Quiz", "ScheduleExplorer", "WorkflowExplorer"]
