"""A kinder message for an exercise cell that still holds its ``raise NotImplementedError()`` stub.

Importing :mod:`evbroker.grading` inside IPython installs a handler for ``NotImplementedError``:
when the error comes straight from a stub line, the cell shows what to do instead of a
traceback (it still counts as an error for nbgrader and nbval). Any other
``NotImplementedError`` shows its usual traceback.
"""

from __future__ import annotations

import linecache
import sys
from types import TracebackType
from typing import Any

STUB_LINE = "raise NotImplementedError()"
MESSAGE = [
    "NotImplementedError: this answer is not written yet.",
    "Replace `# YOUR CODE HERE` and `raise NotImplementedError()` with your code, run this cell again,",
    "then run the check cell below it.",
]


def install_friendly_errors() -> bool:
    """Install the handler in the running IPython shell; False outside IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    shell.set_custom_exc((NotImplementedError,), _show)
    return True


def _show(shell: Any, etype: type, value: BaseException, tb: TracebackType, tb_offset: int | None = None) -> list[str]:
    """IPython's custom-exception hook: display the message (it is still sent as an error)."""
    if is_stub_error(tb):
        stb = list(MESSAGE)
    else:
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    shell._showtraceback(etype, value, stb)
    return stb


def is_stub_error(tb: TracebackType | None) -> bool:
    """True when the innermost frame of ``tb`` is a bare ``raise NotImplementedError()`` line."""
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    line = linecache.getline(tb.tb_frame.f_code.co_filename, tb.tb_lineno).strip()
    return line == STUB_LINE
