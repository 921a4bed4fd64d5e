"""The notebook client the lesson build runs kernels with: nbclient's, plus a watch for lost replies.

On a busy machine, a cell of a notebook that shows an ``Output`` widget (nbclient mirrors what
the widget captures back to the kernel as ``comm_msg`` updates on the shell channel) sometimes
finishes in the kernel, whose ``status: idle`` arrives, while its ``execute_reply`` is never
read: measured under load, the reply had reached the client's shell socket but the client's
asyncio wait on that socket never woke up (pyzmq signals a socket's messages on an
edge-triggered descriptor). Both processes then sit idle and nbclient waits until the cell
timeout (600 s in the build). With ``reply_grace`` set, a cell whose kernel went idle and whose
reply has not been read ``reply_grace`` seconds later stops the run with :class:`ReplyLost`
(saying whether the reply sits unread in the socket), so the build can run the notebook again
in a fresh kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import zmq
from nbclient import NotebookClient
from nbformat import NotebookNode
from traitlets import Float


class ReplyLost(Exception):
    """A cell finished in the kernel (idle on IOPub) but its execute_reply never arrived."""

    def __init__(self, cell_index: int, grace: float, unread: bool) -> None:
        where = "unread in this client's socket" if unread else "not in this client's socket"
        super().__init__(
            f"cell {cell_index + 1} finished in the kernel but its reply did not come within {grace:g} s ({where})"
        )
        self.cell_index = cell_index


class WatchedNotebookClient(NotebookClient):
    """nbclient's NotebookClient; with ``reply_grace`` set, a reply lost after the kernel went idle ends the wait."""

    reply_grace = Float(
        None,
        allow_none=True,
        help="Seconds to wait for a cell's execute_reply once the kernel reported idle for it (None: no limit).",
    ).tag(config=True)

    _idle: asyncio.Event | None = None
    _alive_watch: asyncio.Task | None = None

    def process_message(self, msg: dict[str, Any], cell: NotebookNode, cell_index: int) -> Any:
        if (
            self._idle is not None
            and msg.get("msg_type") == "status"
            and msg.get("content", {}).get("execution_state") == "idle"
        ):
            self._idle.set()
        return super().process_message(msg, cell, cell_index)

    async def _async_poll_kernel_alive(self) -> None:
        self._alive_watch = asyncio.current_task()
        await super()._async_poll_kernel_alive()

    async def async_execute_cell(
        self,
        cell: NotebookNode,
        cell_index: int,
        execution_count: int | None = None,
        store_history: bool = True,
    ) -> NotebookNode:
        if self.reply_grace is None:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        self._idle = idle = asyncio.Event()
        run = asyncio.ensure_future(super().async_execute_cell(cell, cell_index, execution_count, store_history))
        went_idle = asyncio.ensure_future(idle.wait())
        try:
            await asyncio.wait({run, went_idle}, return_when=asyncio.FIRST_COMPLETED)
            if not run.done():
                await asyncio.wait({run}, timeout=self.reply_grace)
            if not run.done():
                assert self.kc is not None
                unread = bool(self.kc.shell_channel.socket.get(zmq.EVENTS) & zmq.POLLIN)
                for task in (self.task_poll_for_reply, self._alive_watch, run):
                    if task is not None:
                        task.cancel()
                with contextlib.suppress(BaseException):
                    await run
                raise ReplyLost(cell_index, self.reply_grace, unread)
            return run.result()
        finally:
            went_idle.cancel()
            self._idle = None
