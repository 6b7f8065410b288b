"""Listening to the upstream (issue 15): what an API's answers say, applied to rld's limits.

Attached to the classes when ``rld`` is imported::

    lim.penalize(30)                    # a 429 said Retry-After: 30 -> nobody takes for 30 s
    lim.sync(remaining=12, reset_after=40)   # X-RateLimit-*: at most 12 more in 40 s
    with lim.lease(timeout=10):         # concurrency = N: one of N calls in flight
        call_api()
    b = client.breaker("shop.api")      # a circuit breaker shared by every process
    with b:                             # rld.BreakerOpen when open; failures counted
        call_api()
    for delay in rld.Backoff(max_attempts=5): ...   # capped exponential, full jitter

``rld.http`` has the adapters for requests and httpx that do all of it per request.
"""
from __future__ import annotations

import errno
import os
import random
import time
from typing import Iterator, Optional

from . import _rld
from ._core import Client, Limit


# ---- penalize, sync ------------------------------------------------------------------

def _penalize(self: Limit, retry_after: float) -> None:
    """A 429 (or 503) said ``Retry-After: RETRY_AFTER`` seconds: no process takes from this
    limit before then (to the ns; then one token, then the rate). Never loosens the limit;
    queued waiters are re-timed. rld_penalize(3)."""
    _rld._penalize(self, retry_after)


def _sync(self: Limit, remaining: int, reset_after: float) -> None:
    """The server said REMAINING calls are left until its reset in RESET_AFTER seconds
    (X-RateLimit-Remaining/-Reset, RateLimit-*): from now on at most REMAINING are admitted
    before then, across processes. Never loosens the limit. rld_sync(3)."""
    _rld._sync(self, remaining, reset_after)


def _extra(self: Limit) -> tuple:
    return _rld._limit_extra(self)


Limit.penalize = _penalize                       # type: ignore[attr-defined]
Limit.sync = _sync                               # type: ignore[attr-defined]
Limit.mode = property(lambda self: _extra(self)[0],          # type: ignore[attr-defined]
                      doc="'enforce', or 'shadow' (admits all, counts would-be denials)")
Limit.concurrency = property(lambda self: _extra(self)[1],   # type: ignore[attr-defined]
                             doc="concurrency = N of the limit (leases at most), 0 if none")
Limit.shadowed = property(lambda self: _extra(self)[2],      # type: ignore[attr-defined]
                          doc="mode = shadow: calls admitted that it would have denied")


# ---- leases ---------------------------------------------------------------------------

class Lease:
    """One of a concurrency limit's N leases, held by this process until released (or this
    process dies: the daemon takes it back within a second). A context manager."""

    __slots__ = ("_client", "_opaque", "limit")

    def __init__(self, limit: Limit, opaque: tuple) -> None:
        self.limit = limit
        self._client = limit.client
        self._opaque: Optional[tuple] = opaque

    @property
    def held(self) -> bool:
        return self._opaque is not None

    def release(self) -> None:
        """Give it back (once; later calls do nothing)."""
        o, self._opaque = self._opaque, None
        if o is not None:
            _rld._release_lease(self._client, o[0], o[1])

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<rld.Lease of {self.limit.name!r}{'' if self.held else ' (released)'}>"


def _acquire_lease(self: Limit, timeout: Optional[float] = None) -> Lease:
    """Acquire one of this limit's leases (concurrency = N), waiting at most TIMEOUT seconds
    (None: as long as it takes; 0: only if one is free now) in the daemon's fair queue, GIL
    released. rld.Denied (timeout 0, none free), rld.Timeout, rld.InvalidArgument (the limit
    has no concurrency). rld_acquire_lease(3)."""
    return Lease(self, _rld._acquire_lease(self, timeout))


Limit.acquire_lease = _acquire_lease             # type: ignore[attr-defined]
Limit.lease = _acquire_lease                     # type: ignore[attr-defined]


# ---- breakers ---------------------------------------------------------------------------

class BreakerOpen(_rld.Denied):
    """The breaker refused the call (open, or half-open with every probe out).
    ``.retry_after``: seconds until it may be tried again."""


class Breaker:
    """A circuit breaker ([breaker NAME] in rld.conf) shared by every process of the host.

    ``enter()`` before a call (False when refused), ``report(ok)`` after it; or as a context
    manager, which raises BreakerOpen when refused and reports an exception as a failure::

        with client.breaker("shop.api"):
            call_shop()
    """

    __slots__ = ("client", "name", "_h")

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name
        self._h = _rld._breaker_find(client, name)

    def enter(self) -> bool:
        """May a call go now? True: go (then report its outcome). False: refused
        (``retry_after()`` says for how long)."""
        ok, _probe, _ra = _rld._breaker_enter(self.client, *self._h)
        return ok

    def enter_ex(self) -> tuple:
        """(admitted, probe, retry_after seconds)."""
        ok, probe, ra = _rld._breaker_enter(self.client, *self._h)
        return ok, probe, ra / 1e9

    def check(self) -> bool:
        """enter(), raising BreakerOpen (with .retry_after) when refused."""
        ok, _probe, ra = _rld._breaker_enter(self.client, *self._h)
        if not ok:
            e = BreakerOpen(errno.EAGAIN, f"breaker {self.name!r} is open")
            e.retry_after = ra / 1e9
            raise e
        return True

    def report(self, ok: bool) -> None:
        """The outcome of a call that entered: ``ok`` True for a success."""
        _rld._breaker_report(self.client, self._h[0], self._h[1], bool(ok))

    def info(self) -> dict:
        """state ('closed', 'open', 'half-open'), failures, probes_out, successes,
        retry_after, opens, closes, admitted, denied, and the configuration (cfg_*)."""
        return _rld._breaker_info(self.client, *self._h)

    @property
    def state(self) -> str:
        return self.info()["state"]

    def __enter__(self) -> "Breaker":
        self.check()
        return self

    def __exit__(self, et, ev, tb) -> None:
        self.report(et is None)

    def __repr__(self) -> str:
        return f"<rld.Breaker {self.name!r} {self.state}>"


def _breaker(self: Client, name: str) -> Breaker:
    """The breaker NAME of this instance (rld.NotFound when there is none)."""
    return Breaker(self, name)


Client.breaker = _breaker                        # type: ignore[attr-defined]


# ---- backoff ------------------------------------------------------------------------------

class Backoff:
    """Capped exponential backoff with full jitter that honours a Retry-After, as
    rld_backoff_next(3): before retry n, a delay uniform in [0, min(cap, base * 2**n)], and
    never less than what the server said. Iterate for the delays (stops after max_attempts;
    None: never)::

        b = rld.Backoff(base=0.1, cap=30, max_attempts=5)
        delay = b.next(retry_after=3.0)     # None once the attempts are used up
    """

    __slots__ = ("base", "cap", "max_attempts", "attempt", "_rng")

    def __init__(self, base: float = 0.1, cap: float = 30.0,
                 max_attempts: Optional[int] = None) -> None:
        if base <= 0 or cap <= 0:
            raise ValueError("base and cap must be > 0")
        self.base = base
        self.cap = max(cap, base)
        self.max_attempts = max_attempts
        self.attempt = 0
        self._rng = random.Random(int.from_bytes(os.urandom(8), "little"))

    def next(self, retry_after: Optional[float] = None) -> Optional[float]:
        if self.max_attempts is not None and self.attempt >= self.max_attempts:
            return None
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 62)))
        self.attempt += 1
        d = self._rng.uniform(0.0, ceiling)
        return max(d, retry_after or 0.0)

    def reset(self) -> None:
        self.attempt = 0

    def __iter__(self) -> Iterator[float]:
        while True:
            d = self.next()
            if d is None:
                return
            yield d

    def sleep(self, retry_after: Optional[float] = None) -> bool:
        """Sleep the next delay; False (no sleep) once the attempts are used up."""
        d = self.next(retry_after)
        if d is None:
            return False
        time.sleep(d)
        return True
