"""The kit on a real broker: Redis Streams, embedded by default.

>>> from evbroker.real import RedisBroker      # doctest: +SKIP
>>> with RedisBroker(time_unit=0.05) as b:     # doctest: +SKIP
...     ...

``import evbroker`` never imports this package (nor redis); it loads only when asked for.
"""

from evbroker.real.broker import RedisBroker
from evbroker.real.server import URL_VARIABLE

__all__ = ["URL_VARIABLE", "RedisBroker"]
