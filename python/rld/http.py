"""rld.http: rld in front of an HTTP API, for requests and httpx.

Every request first passes the breaker (when one is given), takes a token from the limit
(waiting its turn at the daemon, fairly across processes) and a lease (when a concurrency
limit is given); every response's ``Retry-After``, ``X-RateLimit-*`` and ``RateLimit-*``
headers go into ``rld_penalize``/``rld_sync`` so that every process on the host learns what
the server said; 429, 502, 503 and 504 are retried with capped exponential backoff and full
jitter that honours Retry-After::

    import requests, rld.http
    s = requests.Session()
    s.mount("https://api.example.com/", rld.http.RequestsAdapter("api.requests",
            breaker="api.breaker", lease="api.inflight", retries=4))

    import httpx
    client = httpx.Client(transport=rld.http.HTTPXTransport("api.requests"))
    aclient = httpx.AsyncClient(transport=rld.http.AsyncHTTPXTransport("api.requests"))

``parse_retry_after`` and ``parse_rate_limit`` are the header parsers, on their own.
"""
from __future__ import annotations

import asyncio
import email.utils
import re
import time
from typing import Any, Mapping, Optional, Tuple, Union

from ._core import Client, Limit, default_client
from .upstream import Backoff, Breaker, BreakerOpen

RETRY_STATUSES = (429, 502, 503, 504)

__all__ = ["Policy", "RequestsAdapter", "HTTPXTransport", "AsyncHTTPXTransport",
           "parse_retry_after", "parse_rate_limit", "RETRY_STATUSES"]


# ---- headers -----------------------------------------------------------------------------

def _get(headers: Mapping[str, str], name: str) -> Optional[str]:
    v = headers.get(name)
    if v is None:
        v = headers.get(name.lower())
    return v.strip() if isinstance(v, str) else v


def parse_retry_after(headers: Mapping[str, str], now: Optional[float] = None) -> Optional[float]:
    """Retry-After in seconds (delta-seconds or an HTTP date), None when absent or bad."""
    v = _get(headers, "Retry-After")
    if not v:
        return None
    try:
        s = float(v)
        return s if s >= 0 and s == s else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _num(v: Optional[str]) -> Optional[float]:
    if v is None:
        return None
    try:
        x = float(v.split(",")[0].strip())       # "50, 50;w=60": the first (the policy's)
    except ValueError:
        return None
    return x if x >= 0 and x == x else None


def _reset_seconds(v: float, now: Optional[float]) -> float:
    # X-RateLimit-Reset is an epoch time for GitHub and others, seconds for others
    if v > 1e9:
        return max(0.0, v - (time.time() if now is None else now))
    return v


_SF = re.compile(r'(?:^|[;,\s])(remaining|reset|r|t)\s*=\s*"?([0-9.]+)"?', re.I)


def parse_rate_limit(headers: Mapping[str, str],
                     now: Optional[float] = None) -> Optional[Tuple[int, float]]:
    """(remaining, reset_after seconds) from the response's rate-limit headers, or None:
    ``RateLimit: "default";r=50;t=30`` or ``RateLimit: limit=100, remaining=50, reset=30``
    (the IETF drafts), ``RateLimit-Remaining``/``RateLimit-Reset`` (delta seconds),
    ``X-RateLimit-Remaining`` with ``X-RateLimit-Reset`` (epoch seconds or delta seconds) or
    ``X-RateLimit-Reset-After``."""
    sf = _get(headers, "RateLimit")
    if sf:
        found = {m.group(1).lower(): float(m.group(2)) for m in _SF.finditer(sf)}
        rem = found.get("remaining", found.get("r"))
        rst = found.get("reset", found.get("t"))
        if rem is not None and rst is not None:
            return int(rem), rst
    found = []
    rem = _num(_get(headers, "RateLimit-Remaining"))
    rst = _num(_get(headers, "RateLimit-Reset"))
    if rem is not None and rst is not None:
        found.append((int(rem), rst))
    rem = _num(_get(headers, "X-RateLimit-Remaining"))
    rst = _num(_get(headers, "X-RateLimit-Reset-After"))
    if rst is None:
        rst = _num(_get(headers, "X-RateLimit-Reset"))
        rst = None if rst is None else _reset_seconds(rst, now)
    if rem is not None and rst is not None:
        found.append((int(rem), rst))
    if not found:
        return None
    # both are whole seconds rounded up (bounds of the true reset): the tighter one
    return min(r for r, _ in found), min(t for _, t in found)


# ---- the policy: what every adapter does around a request -----------------------------------

LimitLike = Union[Limit, str, None]


class Policy:
    """What happens around each request.

    limit      a Limit or a limit's name: one token (``cost``) per attempt, waited for at most
               ``timeout`` seconds (None: as long as it takes); the headers feed it
    breaker    a Breaker or a breaker's name: checked first (rld.upstream.BreakerOpen when
               open); 5xx and connection errors are its failures, anything else a success
    lease      a Limit or name with concurrency = N: one lease held for the attempt
    retries    attempts after the first for 429/502/503/504 and connection errors
    backoff    (base, cap) seconds of the capped exponential backoff with full jitter;
               a Retry-After is never shortened
    """

    def __init__(self, limit: LimitLike = None, *, client: Optional[Client] = None, cost: int = 1,
                 timeout: Optional[float] = None, breaker: Union[Breaker, str, None] = None,
                 lease: LimitLike = None, lease_timeout: Optional[float] = None,
                 retries: int = 3, backoff: Tuple[float, float] = (0.1, 30.0),
                 retry_statuses: Tuple[int, ...] = RETRY_STATUSES,
                 default_penalty: float = 1.0) -> None:
        self._client = client
        self._limit_spec, self._breaker_spec, self._lease_spec = limit, breaker, lease
        self._limit: Optional[Limit] = None
        self._breaker: Optional[Breaker] = None
        self._lease: Optional[Limit] = None
        self.cost = cost
        self.timeout = timeout
        self.lease_timeout = lease_timeout if lease_timeout is not None else timeout
        self.retries = retries
        self.backoff = backoff
        self.retry_statuses = tuple(retry_statuses)
        self.default_penalty = default_penalty
        self.stats = {"attempts": 0, "retries": 0, "status_429": 0, "penalties": 0, "syncs": 0,
                      "breaker_open": 0}
        self._reset_at = 0.0          # the earliest bound of the server's reset seen (monotonic)

    # resolved on first use (decorators and adapters may be made before the daemon runs)
    def _c(self) -> Client:
        if self._client is None:
            self._client = default_client()
        return self._client

    def _find(self, spec: Any, cls: type, kind: str) -> Any:
        """SPEC itself when a CLS (or None), else the KIND ('limit', 'breaker') of that name."""
        return spec if spec is None or isinstance(spec, cls) else getattr(self._c(), kind)(spec)

    @property
    def limit(self) -> Optional[Limit]:
        if self._limit is None:
            self._limit = self._find(self._limit_spec, Limit, "limit")
        return self._limit

    @property
    def breaker(self) -> Optional[Breaker]:
        if self._breaker is None:
            self._breaker = self._find(self._breaker_spec, Breaker, "breaker")
        return self._breaker

    @property
    def lease_limit(self) -> Optional[Limit]:
        if self._lease is None:
            self._lease = self._find(self._lease_spec, Limit, "limit")
        return self._lease

    def new_backoff(self) -> Backoff:
        return Backoff(self.backoff[0], self.backoff[1], self.retries)

    # -- the steps --
    def enter(self) -> None:
        b = self.breaker
        if b is not None:
            try:
                b.check()
            except BreakerOpen:
                self.stats["breaker_open"] += 1
                raise

    def _reset_after(self, reset: float) -> float:
        """The server's reset, as tight as the responses seen say. Headers give whole
        seconds rounded up: every one is a bound of the true reset, so while one is still
        ahead, a later response whose bound lands within the rounding after it speaks of
        the same reset, and the earlier bound holds (left alone, each response would push
        the reset up to a second further and the limit would never reach it)."""
        now = time.monotonic()
        at = now + reset
        if now < self._reset_at <= at < self._reset_at + 1.0:
            return self._reset_at - now
        self._reset_at = at
        return reset

    def observe(self, status: int, headers: Mapping[str, str]) -> Optional[float]:
        """Feed a response to the limit and the breaker; the Retry-After it carried."""
        self.stats["attempts"] += 1
        ra = parse_retry_after(headers)
        lim = self.limit
        if lim is not None:
            rl = parse_rate_limit(headers)
            reset = None if rl is None else self._reset_after(rl[1])
            if status == 429 or (status == 503 and ra is not None):
                self.stats["status_429"] += status == 429
                wait = ra
                if rl is not None and rl[0] == 0 and (wait is None or reset < wait):
                    wait = reset               # the quota's own reset, when it is sooner
                lim.penalize(wait if wait is not None else self.default_penalty)
                self.stats["penalties"] += 1
                return wait
            if rl is not None:
                lim.sync(rl[0], reset)
                self.stats["syncs"] += 1
        b = self.breaker
        if b is not None:
            b.report(status < 500)
        return ra

    def begin(self) -> Any:
        """Before an attempt: the breaker, a token (waited for), a lease. The Lease, or None."""
        self.enter()
        if self.limit is not None:
            self.limit.acquire(self.cost, timeout=self.timeout)
        ll = self.lease_limit
        return ll.acquire_lease(self.lease_timeout) if ll is not None else None

    async def begin_async(self) -> Any:
        """begin() in asyncio: the token waited for without blocking the loop
        (Limit.acquire_async: the daemon's fair queue), a lease's wait in a thread."""
        self.enter()
        if self.limit is not None:
            await self.limit.acquire_async(self.cost, timeout=self.timeout)
        ll = self.lease_limit
        return await asyncio.to_thread(ll.acquire_lease, self.lease_timeout) if ll is not None else None

    def after(self, bo: Backoff, status: int, headers: Mapping[str, str]) -> Optional[float]:
        """A response: fed to the limit and the breaker (observe); the delay before it is
        tried again, or None when it is the answer."""
        return self.retry_delay(bo, status, self.observe(status, headers))

    def failed(self) -> None:
        """A connection error or timeout: the breaker's failure."""
        b = self.breaker
        if b is not None:
            b.report(False)

    def retry_delay(self, bo: Backoff, status: Optional[int], ra: Optional[float]) -> Optional[float]:
        """The delay before another attempt, or None when there is none to make."""
        if status is not None and status not in self.retry_statuses:
            return None
        d = bo.next(ra)
        if d is not None:
            self.stats["retries"] += 1
        return d


def _policy(limit: Any, kw: dict) -> Policy:
    return limit if isinstance(limit, Policy) else Policy(limit, **kw)


# ---- requests -----------------------------------------------------------------------------

try:
    import requests as _requests
    from requests.adapters import HTTPAdapter as _HTTPAdapter
except ImportError:                               # pragma: no cover - optional
    _requests = None
    _HTTPAdapter = object                         # type: ignore[misc,assignment]


class RequestsAdapter(_HTTPAdapter):              # type: ignore[misc,valid-type]
    """A requests transport adapter: ``session.mount(prefix, RequestsAdapter(limit, ...))``.
    Arguments as rld.http.Policy (or a Policy); the rest go to requests' HTTPAdapter."""

    def __init__(self, limit: Any = None, *, policy_kw: Optional[dict] = None, **kw: Any) -> None:
        if _requests is None:
            raise ImportError("rld.http.RequestsAdapter needs requests (python3-requests)")
        pkw = {k: kw.pop(k) for k in list(kw) if k in _POLICY_KEYS}
        pkw.update(policy_kw or {})
        self.policy = _policy(limit, pkw)
        super().__init__(**kw)

    def send(self, request, **kwargs):            # type: ignore[override]
        p = self.policy
        bo = p.new_backoff()
        while True:
            lease = p.begin()
            try:
                resp = super().send(request, **kwargs)
            except (_requests.ConnectionError, _requests.Timeout):
                p.failed()
                d = p.retry_delay(bo, None, None)
                if d is None:
                    raise
                time.sleep(d)
                continue
            finally:
                if lease is not None:
                    lease.release()
            d = p.after(bo, resp.status_code, resp.headers)
            if d is None:
                return resp
            resp.close()
            time.sleep(d)


# ---- httpx ----------------------------------------------------------------------------------

try:
    import httpx as _httpx
    _Base = _httpx.BaseTransport
    _ABase = _httpx.AsyncBaseTransport
except ImportError:                               # pragma: no cover - optional
    _httpx = None
    _Base = _ABase = object                       # type: ignore[misc,assignment]

_POLICY_KEYS = {"client", "cost", "timeout", "breaker", "lease", "lease_timeout", "retries",
                "backoff", "retry_statuses", "default_penalty"}


class HTTPXTransport(_Base):                      # type: ignore[misc,valid-type]
    """An httpx transport: ``httpx.Client(transport=HTTPXTransport(limit, ...))``. Wraps
    ``transport`` (default: httpx.HTTPTransport()). Arguments as rld.http.Policy."""

    def __init__(self, limit: Any = None, *, transport: Any = None, **kw: Any) -> None:
        if _httpx is None:
            raise ImportError("rld.http.HTTPXTransport needs httpx (python3-httpx)")
        self.policy = _policy(limit, kw)
        self.inner = transport if transport is not None else _httpx.HTTPTransport()

    def handle_request(self, request):            # type: ignore[override]
        p = self.policy
        bo = p.new_backoff()
        while True:
            lease = p.begin()
            try:
                resp = self.inner.handle_request(request)
                if resp.status_code in p.retry_statuses:
                    resp.read()
            except _httpx.TransportError:
                p.failed()
                d = p.retry_delay(bo, None, None)
                if d is None:
                    raise
                time.sleep(d)
                continue
            finally:
                if lease is not None:
                    lease.release()
            d = p.after(bo, resp.status_code, resp.headers)
            if d is None:
                return resp
            resp.close()
            time.sleep(d)

    def close(self) -> None:
        self.inner.close()


class AsyncHTTPXTransport(_ABase):                # type: ignore[misc,valid-type]
    """The same for ``httpx.AsyncClient`` (wraps httpx.AsyncHTTPTransport by default). The
    token is waited for without blocking the loop (Limit.acquire_async: the daemon's fair
    queue, as the sync adapters'); a lease wait runs in a thread."""

    def __init__(self, limit: Any = None, *, transport: Any = None, **kw: Any) -> None:
        if _httpx is None:
            raise ImportError("rld.http.AsyncHTTPXTransport needs httpx (python3-httpx)")
        self.policy = _policy(limit, kw)
        self.inner = transport if transport is not None else _httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request):    # type: ignore[override]
        p = self.policy
        bo = p.new_backoff()
        while True:
            lease = await p.begin_async()
            try:
                resp = await self.inner.handle_async_request(request)
                if resp.status_code in p.retry_statuses:
                    await resp.aread()
            except _httpx.TransportError:
                p.failed()
                d = p.retry_delay(bo, None, None)
                if d is None:
                    raise
                await asyncio.sleep(d)
                continue
            finally:
                if lease is not None:
                    lease.release()
            d = p.after(bo, resp.status_code, resp.headers)
            if d is None:
                return resp
            await resp.aclose()
            await asyncio.sleep(d)

    async def aclose(self) -> None:
        await self.inner.aclose()
