"""rld.limits: the ``rld://`` storage of the ``limits`` library (Flask-Limiter, slowapi...).

``import rld.limits`` registers the storage scheme ``rld://`` (the instance of
$RLD_INSTANCE, else "default") and ``rld://INSTANCE`` with ``limits`` (Debian's 2.8), so
that every process on the host shares the counts, in the instance's shared memory::

    import rld.limits
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address
    limiter = Limiter(get_remote_address, app=app, storage_uri="rld://",
                      strategy="fixed-window")        # or fixed-window-elastic-expiry,
                                                      # moving-window

The three strategies of ``limits`` map onto three templates of rate = caller, which
rld.conf must define (TEMPLATES below; the error names what is missing):

* fixed-window: ``limits.fixed``, algorithm = fixed, align = first: the window starts at
  the first hit and lasts the limit's period, as in limits' memory and Redis storages.
* fixed-window-elastic-expiry: ``limits.elastic``, align = elastic: every hit pushes the
  window's end a period on.
* moving-window: ``limits.moving``, algorithm = sliding.

The two fixed strategies only need a count from the storage (``incr`` returns the count
in the window and the strategy compares it with the limit, which ``incr`` is not told):
each key is a fixed window of 2**32-1 tokens per period, and the count is what it took;
hits over the limit are counted too, as ``limits`` counts them. These give the decisions
of limits' MemoryStorage and RedisStorage exactly.

The moving window is rld's sliding window with the limit's own count: at most COUNT hits
in any PERIOD, never more. Where limits keeps a log of every hit (a list per key), a key's
window in rld is its 16-byte state word, in N + 1 sub-windows of PERIOD/N (N is 15 for a
limit up to 15, 7 up to 255, 4 up to 4095, 3 up to 65535, fewer above): a hit can be
denied up to PERIOD/N later than the exact log would admit it again (the sub-window of
the oldest counted hit has to leave the window whole). The decisions are the same while
no counted hit is between PERIOD and PERIOD + PERIOD/N old at a hit, and never more
admissions than the exact log's. ``get_moving_window`` gives the start of the window as
when everything counted leaves less the period, rounded to the sub-window. A hit whose cost
exceeds the limit is denied (limits' memory and Redis storages admit it into an empty
window: their log is read at index limit - cost, a negative one).

Periods are whole seconds (limits') up to 49.7 days: "N per month" works, "N per year"
raises ValueError. A key longer than 256 bytes is replaced by its SHA-256. ``clear(key)``
gives back what the key's current window holds (on a moving window: only what its newest
sub-window holds); ``reset()`` raises NotImplementedError, as limits' Memcached storage
does (``rlctl reset limits.fixed`` resets every key of a template, as an admin).
"""
from __future__ import annotations

import hashlib
import threading
import time
import urllib.parse
from typing import Any, Optional, Tuple

import limits.errors
import limits.storage

from . import _rld
from ._core import Client, Template

__all__ = ["RldStorage", "TEMPLATES", "TemplateMissing"]

TEMPLATES = """\
[template limits.fixed]
rate = caller
algorithm = fixed
align = first
max_keys = 100000

[template limits.elastic]
rate = caller
algorithm = fixed
align = elastic
max_keys = 100000

[template limits.moving]
rate = caller
algorithm = sliding
max_keys = 100000
"""
"""The rld.conf snippet the storage needs (max_keys: at most that many keys with state in
each, 64 bytes of shared memory a key; ``overflow = allow`` admits rather than raising
rld.NoSpace when a table is full)."""

_COUNTER = 2 ** 32 - 1            # a fixed window's tokens: the most a window can count
_PERIOD_MAX = 4294967             # seconds: rate = caller periods are up to 2^32-1 ms
_SMALL = 8                        # see _moving


def _snippet(which: str) -> str:
    blocks = TEMPLATES.strip().split("\n\n")
    return next(b for b in blocks if b.startswith(f"[template limits.{which}]"))


class TemplateMissing(limits.errors.ConfigurationError, _rld.NotFound):
    """The rld instance has no template the strategy needs: rld.conf lacks the snippet
    (rld.limits.TEMPLATES). Both a limits ConfigurationError and an rld.NotFound."""


def _key(key: str) -> Any:
    """KEY as rld takes it: itself when it fits (1 to 256 bytes of UTF-8), else its SHA-256."""
    if len(key) <= 64:                      # at most 256 bytes of UTF-8: the common case
        return key
    b = key.encode()
    return key if len(b) <= 256 else b"\0sha256:" + hashlib.sha256(b).digest()


def _period(expiry: int) -> int:
    if not 1 <= expiry <= _PERIOD_MAX:
        raise ValueError(f"rld.limits: a limit's period is 1 s to {_PERIOD_MAX} s (49.7 days), "
                         f"not {expiry} s")
    return expiry


_counters: dict = {}                # expiry -> the rate of a counting window (few of them)


def _counter(expiry: int) -> Tuple[int, int]:
    r = _counters.get(expiry)
    if r is None:
        r = _counters[expiry] = (_COUNTER, _period(expiry))
    return r


def _moving(limit: int, expiry: int) -> Tuple[int, Tuple[int, int]]:
    """(S, the key's rate) of a moving window of LIMIT per EXPIRY seconds.

    Below 8 a window counts in units of 1/S hit (COUNT x S, each hit S), which decides the
    same: librld's keyed sliding windows of a COUNT under 8 overrun their sub-window array
    (N = 64 / bits - 1 > 16). Scaled, such a window has 15 sub-windows, the most any has."""
    s = 1 if limit >= _SMALL else -(-_SMALL // limit)
    if limit * s > _COUNTER:
        raise ValueError(f"rld.limits: a moving window counts at most {_COUNTER}, not {limit}")
    return s, (limit * s, _period(expiry))


class RldStorage(limits.storage.Storage, limits.storage.MovingWindowSupport):
    """The ``rld://`` storage: limits' counters in an rld instance's shared memory.

    ``rld://`` is the instance of $RLD_INSTANCE (else "default"), ``rld://NAME`` instance
    NAME. Options (Flask-Limiter's storage_options): fixed_template, elastic_template,
    moving_template name other templates than limits.fixed, limits.elastic and
    limits.moving. The instance is attached on first use (the daemon need not run at
    import); the Client is shared with forked children (gunicorn --preload).
    """

    STORAGE_SCHEME = ["rld"]

    def __init__(self, uri: Optional[str] = None, *, fixed_template: str = "limits.fixed",
                 elastic_template: str = "limits.elastic",
                 moving_template: str = "limits.moving", **options: Any) -> None:
        if options:
            raise limits.errors.ConfigurationError(
                f"rld://: unknown option(s) {', '.join(sorted(options))} (known: "
                "fixed_template, elastic_template, moving_template)")
        super().__init__(uri)
        u = urllib.parse.urlparse(uri or "rld://")
        if u.scheme and u.scheme != "rld" or u.path not in ("", "/") or u.query:
            raise limits.errors.ConfigurationError(
                f"rld storage: {uri!r} is not rld:// or rld://INSTANCE")
        self.instance: Optional[str] = urllib.parse.unquote(u.netloc) or None
        self._names = {"fixed": fixed_template, "elastic": elastic_template,
                       "moving": moving_template}
        self._client: Optional[Client] = None
        self._fixed: Optional[Template] = None
        self._elastic: Optional[Template] = None
        self._moving: Optional[Template] = None
        self._missing: dict = {}            # which -> when a lookup found no template
        self._open_lock = threading.Lock()

    # -- the instance and its templates, found on first use --------------------------------
    def client(self) -> Client:
        """The Client (opened on first use)."""
        c = self._client
        if c is None or c.closed:
            with self._open_lock:
                c = self._client
                if c is None or c.closed:
                    c = self._client = Client(self.instance)
        return c

    def _template(self, which: str, required: bool = True) -> Optional[Template]:
        t = getattr(self, "_" + which)
        if t is not None:
            return t
        if not required and time.monotonic() - self._missing.get(which, -9.0) < 1.0:
            return None                     # looked for less than a second ago
        name = self._names[which]
        c = self.client()                   # rld.NotFound when there is no instance
        try:
            t = c.template(name)
        except _rld.NotFound:
            self._missing[which] = time.monotonic()
            if not required:
                return None
            snippet = _snippet(which).replace("limits." + which, name)
            raise TemplateMissing(
                2, f"rld instance {c.instance!r} has no [template {name}], which "
                f"the rld:// storage of limits needs for its {_STRATEGY[which]} strategy. "
                f"Add to rld.conf (rld.limits.TEMPLATES has all three) and reload rld "
                f"(systemctl reload rld, or SIGHUP):\n\n{snippet}\n") from None
        setattr(self, "_" + which, t)
        return t

    def _peek(self, which: str, key: Any) -> Optional[_rld.Result]:
        """KEY's state in template WHICH, or None when the key has none there (never was,
        or was reclaimed: a new key's state) or the template does not exist."""
        t = self._template(which, required=False)
        if t is None:
            return None
        try:
            k = t.key(key)                  # no rate: an existing key only
        except _rld.InvalidArgument:
            return None                     # a new key of a rate = caller template
        return k.peek()

    # -- limits.storage.Storage ------------------------------------------------------------
    def incr(self, key: str, expiry: int, elastic_expiry: bool = False, amount: int = 1) -> int:
        """Count AMOUNT hits on KEY in its window of EXPIRY seconds (started by the first
        hit; pushed a period on by every hit when ELASTIC_EXPIRY) and return the window's
        count, hits beyond the limit included."""
        t = (self._elastic or self._template("elastic")) if elastic_expiry else \
            (self._fixed or self._template("fixed"))
        r = t.try_acquire(key if len(key) <= 64 else _key(key), amount,
                          rate=_counters.get(expiry) or _counter(expiry))
        if r:
            left = r.remaining              # 2**64-1: admitted without a bucket (overflow)
            return _COUNTER - left if left <= _COUNTER else amount
        return _COUNTER + amount            # the window counted 2^32-1: more than any limit

    def get(self, key: str) -> int:
        """KEY's count in its current window (0 when none)."""
        k = _key(key)
        for which in ("fixed", "elastic"):
            p = self._peek(which, k)
            if p is not None and p.limit > p.remaining:
                return p.limit - p.remaining
        return 0

    def get_expiry(self, key: str) -> int:
        """When KEY's window ends (Unix seconds); now when it has none."""
        k = _key(key)
        now = time.time()
        for which in ("fixed", "elastic"):
            p = self._peek(which, k)
            if p is not None and p.limit > p.remaining:
                return int(now + p.reset_after)
        return int(now)

    def check(self) -> bool:
        """True when the instance can be attached."""
        try:
            self.client()
            return True
        except _rld.Error:
            return False

    def reset(self) -> Optional[int]:
        raise NotImplementedError(
            "rld://: the templates are shared by every process on the host; reset them "
            "as an admin with rlctl reset " + " ".join(self._names.values()))

    def clear(self, key: str) -> None:
        """Give back what KEY's current window counts (on a moving window: what its newest
        sub-window counts, which is all of it only within PERIOD/N of the last hit)."""
        k = _key(key)
        for which in ("fixed", "elastic", "moving"):
            t = self._template(which, required=False)
            if t is None:
                continue
            try:
                h = t.key(k)
            except _rld.InvalidArgument:
                continue
            p = h.peek()
            if p.limit > p.remaining and p.window:
                h.refund(p.limit - p.remaining, window=p.window)

    # -- limits.storage.MovingWindowSupport ------------------------------------------------
    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Take AMOUNT hits in KEY's moving window of LIMIT per EXPIRY seconds, if they fit."""
        if amount > limit or limit <= 0:
            return False                    # can never fit
        s, rate = _moving(limit, expiry)
        t = self._moving or self._template("moving")
        return bool(t.try_acquire(_key(key), amount * s, rate=rate))

    def get_moving_window(self, key: str, limit: int, expiry: int) -> Tuple[int, int]:
        """(start of the window: when what it counts leaves, less EXPIRY; hits counted)."""
        now = time.time()
        if limit <= 0:
            return int(now), 0
        s, rate = _moving(limit, expiry)
        t = self._moving or self._template("moving")
        p = t.key(_key(key), rate=rate).peek()
        acquired = (p.limit - p.remaining) // s
        if acquired <= 0:
            return int(now), 0
        return int(now + p.reset_after - expiry), acquired

    def __repr__(self) -> str:
        return f"<rld.limits.RldStorage instance={self.instance!r}>"


_STRATEGY = {"fixed": "fixed-window", "elastic": "fixed-window-elastic-expiry",
             "moving": "moving-window"}
