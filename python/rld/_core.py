"""rld's Client and Limit: the C types of rld._rld, with the pure-Python helpers attached."""
from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Optional

from . import _rld

if TYPE_CHECKING:
    from ._helpers import Reservation, limited


class Limit(_rld.Limit):
    """A limit of an rld instance, found by name: ``client.limit("llm.requests")``.

    Raises rld.NotFound (a LookupError) when the instance has no such limit. Find it once
    and keep it: taking tokens is one compare-and-swap in shared memory
    (:meth:`try_acquire`), or a fair wait at the daemon (:meth:`acquire`, and
    ``await`` :meth:`acquire_async` in asyncio).
    """

    __slots__ = ()
    __module__ = "rld"

    def acquiring(self, cost: int = 1, timeout: Optional[float] = None, *, priority: int = 0,
                  barge: bool = False, wait: bool = True) -> "limited":
        """A context manager (``with`` or ``async with``) and decorator taking COST tokens
        from this limit on entry: ``with lim.acquiring(2): call_api()``. See rld.limited."""
        from ._helpers import limited
        return limited(self, cost, timeout, priority=priority, barge=barge, wait=wait)

    def reserve(self, estimate: int, timeout: Optional[float] = None, *, priority: int = 0,
                on_error: str = "refund") -> "Reservation":
        """Estimate-then-adjust: take ESTIMATE tokens on entry, then ``r.adjust(actual)``
        refunds or debits the difference. See rld.Reservation.

        ``with tokens.reserve(2000) as r: reply = llm(prompt); r.adjust(reply.usage)``
        """
        from ._helpers import Reservation
        return Reservation(self, estimate, timeout, priority=priority, on_error=on_error)


class Client(_rld.Client):
    """Client(instance=None): attach rld instance INSTANCE (None: $RLD_INSTANCE, else
    "default").

    Make one per process and share it between threads and event loops; forked children
    may keep using their parent's. Raises rld.NotFound when no daemon ever created the
    instance. A context manager: leaving the ``with`` block closes it.

    Several limits at once, all or nothing: :meth:`try_acquire_multi`,
    :meth:`acquire_multi` and :meth:`acquire_multi_async` take a list of (Limit, cost)
    pairs: ``c.acquire_multi([(requests, 1), (tokens, 500)], timeout=30)``.
    """

    __slots__ = ()
    __module__ = "rld"
    limit_class = Limit

    def limit(self, name: str) -> Limit:   # type: ignore[override]
        """The limit NAME of this instance (rld.NotFound when there is none)."""
        return Limit(self, name)

    def __reduce__(self):
        return (type(self), (self.instance,))


_default: Optional[Client] = None
_default_lock = threading.Lock()


def _reset_lock_after_fork() -> None:
    global _default_lock
    _default_lock = threading.Lock()   # another thread may have held it at fork


os.register_at_fork(after_in_child=_reset_lock_after_fork)


def default_client() -> Client:
    """The process's shared Client for $RLD_INSTANCE (else "default"), opened on first use.

    The helpers (rld.limited, ...) use it when given a limit name and no client.
    """
    global _default
    c = _default
    if c is not None and not c.closed:
        return c
    with _default_lock:
        if _default is None or _default.closed:
            _default = Client()
        return _default
