"""The views: plots (matplotlib, networkx) and widgets (ipywidgets) that read a trace or a run result.

Nothing here reaches into broker internals: every view takes a ``Broker``, a ``Trace`` or a run
result with a ``.trace`` and reads the recorded events only. The public faces are
``evbroker.plot`` and ``evbroker.widgets``.
"""
