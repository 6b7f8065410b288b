"""The helpers people expect on top of Limit: a decorator and context manager (sync and
async) and the estimate-then-adjust reservation for LLM-style costs known only afterwards."""
from __future__ import annotations

import errno
import functools
import inspect
from typing import Any, Callable, Optional, TypeVar, Union

from . import _rld
from ._core import Client, Limit, default_client

F = TypeVar("F", bound=Callable[..., Any])


def _denied(lim: Limit, r: _rld.Result) -> _rld.Error:
    # named as the C calls' errors name it (a Key's name is its template's)
    what = (f"key {lim.key!r} of template '{lim.name}'" if isinstance(lim, _rld.Key)
            else f"limit '{lim.name}'")
    e = _rld._error(errno.EAGAIN, what)
    e.result = r
    e.retry_after = r.retry_after
    return e


class limited:
    """Take tokens from a limit around a call: a decorator and a context manager, for sync
    and async code alike.

    ::

        @rld.limited("shop.api")                 # 1 token per call; waits its turn
        def get_product(pid): ...

        @rld.limited("llm.requests", timeout=5)  # rld.Timeout if it cannot fit in 5 s
        async def ask(prompt): ...

        with rld.limited("shop.api", cost=3):    # or: async with
            ...

    LIMIT is a name (looked up on first use in CLIENT, default: rld.default_client()) or a
    Limit. With wait=False nothing waits: rld.Denied is raised when the tokens are not
    there now (its .retry_after says when they will be). The context manager's value is
    the rld.Result.

    In async code (``async def`` under the decorator, ``async with``) the wait is
    Limit.acquire_async: the same fair queue at the daemon, no thread blocked, and a
    cancelled task gives its place up and takes nothing.
    """

    __module__ = "rld"

    def __init__(self, limit: Union[str, Limit], cost: int = 1,
                 timeout: Optional[float] = None, *, priority: int = 0, barge: bool = False,
                 wait: bool = True, client: Optional[Client] = None) -> None:
        if not isinstance(limit, (str, _rld.Limit)):
            raise TypeError(f"limit must be a name or an rld.Limit, not {type(limit).__name__}")
        if cost < 0:
            raise ValueError("cost must be >= 0")
        self._name = limit if isinstance(limit, str) else limit.name
        self._lim: Optional[Limit] = None if isinstance(limit, str) else limit
        self._client = client
        self.cost = cost
        self.timeout = timeout
        self.priority = priority
        self.barge = barge
        self.wait = wait

    @property
    def limit(self) -> Limit:
        """The Limit, found on first use (so a decorator may be applied at import time,
        before the daemon runs)."""
        lim = self._lim
        if lim is None:
            c = self._client if self._client is not None else default_client()
            lim = self._lim = c.limit(self._name)
        return lim

    def acquire(self) -> _rld.Result:
        """Take the tokens now, as the decorator and ``with`` do."""
        lim = self.limit
        if self.wait:
            return lim.acquire(self.cost, self.timeout, self.priority, self.barge)
        r = lim.try_acquire(self.cost, barge=self.barge)
        if not r:
            raise _denied(lim, r)
        return r

    async def acquire_async(self) -> _rld.Result:
        """Take the tokens without blocking the event loop (Limit.acquire_async)."""
        lim = self.limit
        if self.wait:
            return await lim.acquire_async(self.cost, self.timeout, self.priority, self.barge)
        r = lim.try_acquire(self.cost, barge=self.barge)
        if not r:
            raise _denied(lim, r)
        return r

    def __enter__(self) -> _rld.Result:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        return None

    async def __aenter__(self) -> _rld.Result:
        return await self.acquire_async()

    async def __aexit__(self, *exc: Any) -> None:
        return None

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                await self.acquire_async()
                return await fn(*args, **kwargs)
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.acquire()
            return fn(*args, **kwargs)
        return wrapper  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"rld.limited({self._name!r}, cost={self.cost}, timeout={self.timeout})"


class Reservation:
    """Estimate-then-adjust, for costs known only afterwards (LLM tokens)::

        with tokens.reserve(estimate) as r:       # waits for ESTIMATE tokens, takes them
            reply = llm(prompt)
            r.adjust(reply.usage.total_tokens)    # refunds or debits the difference

    adjust(actual) may be called more than once; each call settles the total charged to
    ACTUAL (a debit may put the limit into debt, which later callers wait out: the API
    was used, the limit must know). Exceptions in the block: when adjust() was never
    called, on_error="refund" (the default) gives the whole estimate back, as the work
    most likely did not consume it; on_error="keep" keeps it charged. Once adjust() was
    called its figure stands whatever happens next. ``async with`` works too
    (Limit.acquire_async).

    A refund goes back to the window the estimate was taken in (Result.window) on window
    limits (sliding, fixed); when librld cannot tell that window, or it is over, the
    tokens stay counted where they were taken (rld_refund(3)).
    """

    __module__ = "rld"

    def __init__(self, limit: Limit, estimate: int, timeout: Optional[float] = None, *,
                 priority: int = 0, on_error: str = "refund") -> None:
        if on_error not in ("refund", "keep"):
            raise ValueError("on_error must be 'refund' or 'keep'")
        if estimate < 0:
            raise ValueError("estimate must be >= 0")
        self.limit = limit
        self.estimate = estimate
        self.timeout = timeout
        self.priority = priority
        self.on_error = on_error
        self.charged = 0          # tokens charged to the limit now
        self.adjusted = False
        self.result: Optional[_rld.Result] = None

    def acquire(self) -> "Reservation":
        """Wait for and take the estimate (what entering the with block does)."""
        self.result = self.limit.acquire(self.estimate, self.timeout, self.priority)
        self.charged = self.estimate
        return self

    async def acquire_async(self) -> "Reservation":
        """Wait for and take the estimate without blocking the loop (``async with``)."""
        self.result = await self.limit.acquire_async(self.estimate, self.timeout, self.priority)
        self.charged = self.estimate
        return self

    def adjust(self, actual: int) -> None:
        """Settle the charge to ACTUAL tokens: refund what was over-estimated, debit what
        was under-estimated."""
        if actual < 0:
            raise ValueError("actual must be >= 0")
        diff = actual - self.charged
        if diff > 0:
            self.limit.debit(diff)
        elif diff < 0:
            # a window limit's tokens go back to the window they were taken in (0 for GCRA)
            w = self.result.window if self.result is not None else 0
            try:
                self.limit.refund(-diff, window=w)
            except _rld.Error as e:
                if e.errno != errno.EOPNOTSUPP:
                    raise
                # a window limit whose window librld did not report: they stay charged
                self.adjusted = True
                return
        self.charged = actual
        self.adjusted = True

    def cancel(self) -> None:
        """Give everything back (adjust(0))."""
        self.adjust(0)

    def __enter__(self) -> "Reservation":
        return self.acquire()

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        if et is not None and not self.adjusted and self.on_error == "refund" and self.charged:
            self.cancel()

    async def __aenter__(self) -> "Reservation":
        return await self.acquire_async()

    async def __aexit__(self, et: Any, ev: Any, tb: Any) -> None:
        self.__exit__(et, ev, tb)

    def __repr__(self) -> str:
        return (f"<rld.Reservation {self.limit.name!r} estimate={self.estimate} "
                f"charged={self.charged}{' adjusted' if self.adjusted else ''}>")
