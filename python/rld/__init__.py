"""rld: host-local rate limits, shared by every process on the host, at memory speed.

A daemon (rld) keeps the limits of an instance in shared memory; this package attaches it
through librld. Taking tokens is one compare-and-swap, no system call; waiting queues
fairly at the daemon (FIFO across processes, priorities)::

    import rld
    c = rld.Client()                      # $RLD_INSTANCE, else "default"
    lim = c.limit("llm.requests")         # rld.NotFound (a LookupError) when there is none
    r = lim.try_acquire(1)                # rld.Result, truthy when admitted
    if not r:
        print("retry in", r.retry_after, "s")
    r = lim.acquire(1, timeout=5)         # waits (GIL released); rld.Timeout if it cannot fit
    r = await lim.acquire_async(1)        # the same in asyncio: no thread, cancellable
    lim.refund(1); lim.debit(10); lim.peek(); lim.info()

    # all or nothing over several limits: one request and 500 model tokens
    r = c.acquire_multi([(requests, 1), (tokens, 500)], timeout=30)   # or try_/_async

    # keyed limits: a [template] gives every key (client IP, user, tenant) its own bucket
    ip = c.template("api.ip")             # rld.NotFound when there is no such template
    r = ip.try_acquire("203.0.113.7")     # creates the key's bucket on first use
    ip.key("203.0.113.7")                 # an rld.Key: a Limit on that one key

``import rld.limits`` registers the ``rld://`` storage of the ``limits`` library
(Flask-Limiter, slowapi): see rld.limits.

Helpers: @rld.limited(name, cost=1, timeout=None) decorates sync and async functions and
is a context manager (``with`` / ``async with``); Limit.reserve(estimate) takes an
estimate and adjust(actual) settles the difference afterwards.

Errors are rld.Error (an OSError carrying the errno) and its subclasses: NotFound
(LookupError), Deleted, Timeout (TimeoutError), Denied, CostTooHigh and InvalidArgument
(ValueError), DebtOverflow (OverflowError), PermissionDenied (PermissionError), NotReady,
ABIMismatch, Corrupt, ClockMismatch, OutOfMemory (MemoryError), NoSpace (a template's key
table is full).

See python/README.md, librld(3), rld.conf(5).
"""
from ._rld import (ABIMismatch, ClockMismatch, Corrupt, CostTooHigh, DebtOverflow, Deleted,
                   Denied, EABI, ECLOCK, ECORRUPT, Error, Info, InvalidArgument, NoSpace,
                   NotFound, NotReady, OutOfMemory, PermissionDenied, PRIORITY_MAX, Result,
                   Timeout, librld_version, strerror)
from ._rld import __version__
from ._core import Client, Key, Limit, Template, default_client
from ._helpers import Reservation, limited
from . import _waits  # noqa: F401  (installs the waits of asyncio and of the main thread)
from .upstream import Backoff, Breaker, BreakerOpen, Lease   # issue 15; rld.http: adapters

__all__ = [
    "Client", "Limit", "Template", "Key", "Result", "Info", "default_client", "limited",
    "Reservation", "Error", "NotFound", "Deleted", "Timeout", "Denied", "CostTooHigh",
    "InvalidArgument", "DebtOverflow", "PermissionDenied", "NotReady", "ABIMismatch", "Corrupt",
    "ClockMismatch", "OutOfMemory", "NoSpace", "EABI", "ECORRUPT", "ECLOCK", "PRIORITY_MAX",
    "strerror", "librld_version", "__version__",
    "Backoff", "Breaker", "BreakerOpen", "Lease",
]
