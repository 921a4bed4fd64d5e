"""Who runs a multi-step workflow: an orchestrator (a saga), or the services themselves (choreography).

Built only on the public broker API (queues, topics, workers, ``ctx.publish``, ``ctx.effect``,
``ctx.seen`` / ``ctx.remember``), so it doubles as an example of how such things are built:

- :class:`Service`: business functions behind a queue, run by an idempotent worker
  (:meth:`Service.handle` shows where the dedupe happens); :class:`Reject` says "no".
- :class:`Saga` and :class:`Step`: a workflow declared once as ordered steps, with
  compensations run in reverse order on failure; :class:`SagaState` is one instance's row.
- :class:`Choreography`: services that each declare what they react to and emit.
- :func:`run_orders`: the order workflow in either style, with a failure and faults;
  :data:`STYLES` and :data:`FAILURES` list the choices.
- :class:`Measures`, :func:`coupling_graph`: the trade-off in numbers, read from a trace.

>>> import evbroker as eb
>>> run = eb.workflows.run_orders(style="orchestration", failure="payment declined", orders=3)
>>> run.outcomes["order-1"]
'compensated'
"""

from evbroker.workflows.choreography import Choreography
from evbroker.workflows.measures import Measures, coupling_graph, measure
from evbroker.workflows.orders import (
    FAILURES,
    LEDGER,
    ORDER_CHOREOGRAPHY,
    ORDER_SAGA,
    ORDER_STEPS,
    PRICE,
    STYLES,
    OrderRun,
    order_data,
    run_orders,
)
from evbroker.workflows.saga import OUTCOMES, STEP_STATUSES, Saga, SagaState, Step, states_table
from evbroker.workflows.service import Command, Reaction, Reject, Reply, Service

__all__ = [
    "FAILURES",
    "LEDGER",
    "ORDER_CHOREOGRAPHY",
    "ORDER_SAGA",
    "ORDER_STEPS",
    "OUTCOMES",
    "PRICE",
    "STEP_STATUSES",
    "STYLES",
    "Choreography",
    "Command",
    "Measures",
    "OrderRun",
    "Reaction",
    "Reject",
    "Reply",
    "Saga",
    "SagaState",
    "Service",
    "Step",
    "coupling_graph",
    "measure",
    "order_data",
    "run_orders",
    "states_table",
]
