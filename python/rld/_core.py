"""rld's Client, Limit, Template and Key: the C types of rld._rld, with the pure-Python
helpers attached."""
from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Optional, Tuple, Union

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


class Key(_rld.Key, Limit):
    """One key's bucket of a template: ``c.template("api.ip").key("203.0.113.7")``.

    An rld.Limit: try_acquire, acquire, acquire_async, refund, debit, peek, info, the
    helpers (acquiring, reserve) and the multi calls take it. Its ``name`` is the
    template's, ``key`` the key as given, ``template`` the Template. A key whose bucket is
    full again and idle may be reclaimed; the next call looks it up again by itself.
    """

    __slots__ = ()
    __module__ = "rld"


class Template(_rld.Template):
    """A [template] of an rld instance: a limit per key (every client IP, user or tenant
    its own bucket, created in shared memory on first use): ``c.template("api.ip")``.

    Raises rld.NotFound when the instance has no template of that name. Per request,
    :meth:`try_acquire` (``tpl.try_acquire(ip)``) finds or creates the key's bucket and
    takes from it with one compare-and-swap; :meth:`acquire` and :meth:`acquire_async`
    wait for it fairly at the daemon; :meth:`key` gives a Limit-like handle on one key.
    Templates of ``rate = caller`` take each key's rate from the call:
    ``tpl.try_acquire(tenant, 1, rate=(1000, 3600))``.
    """

    __slots__ = ()
    __module__ = "rld"
    key_class = Key

    def key(self, key: Union[str, bytes], *, rate: Optional[Tuple[int, float]] = None) -> Key:  # type: ignore[override]
        """A handle on KEY's bucket (created, full, when new): an rld.Key. rld.NoSpace when
        the key is new and the table is full of keys with state."""
        return Key(self, key, rate)


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
    template_class = Template

    def limit(self, name: str) -> Limit:   # type: ignore[override]
        """The limit NAME of this instance (rld.NotFound when there is none)."""
        return Limit(self, name)

    def template(self, name: str) -> Template:   # type: ignore[override]
        """The template NAME of this instance (rld.NotFound when there is none; a [limit]
        of that name is not one)."""
        return Template(self, name)

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
