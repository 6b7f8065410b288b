"""rld.limits: the rld:// storage of the limits library. Its three strategies decide as
limits' own MemoryStorage on the same sequences of hits, run side by side (both storages
hit within microseconds of each other, so they see the same times); the moving window
where rld's sub-windows agree with the exact log (no counted hit near PERIOD old)."""
import time

import pytest

import limits
import limits.errors
import rld
import rld.limits
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import (FixedWindowElasticExpiryRateLimiter, FixedWindowRateLimiter,
                               MovingWindowRateLimiter)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def d(make_daemon):
    return make_daemon(rld.limits.TEMPLATES.replace("max_keys = 100000", "max_keys = 1000"))


@pytest.fixture
def rs(d):
    s = storage_from_string(f"rld://{d.instance}")
    yield s
    if s._client is not None:
        s._client.close()


def run_side_by_side(strategy, rs, item, steps):
    """STEPS: (seconds after the start, identifier, cost, how many hits). Both storages get
    each hit, rld right after memory; returns the decisions of each, and checks the
    windows' stats agree after every step (remaining exactly, reset within a second)."""
    mem, ours = strategy(MemoryStorage()), strategy(rs)
    got_mem, got_rld = [], []
    t0 = time.monotonic()
    for at, ident, cost, n in steps:
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        for _ in range(n):
            got_mem.append(mem.hit(item, ident, cost=cost))
            got_rld.append(ours.hit(item, ident, cost=cost))
        sm, sr = mem.get_window_stats(item, ident), ours.get_window_stats(item, ident)
        assert sm[1] == sr[1], f"remaining after the hits at {at} s: memory {sm}, rld {sr}"
        assert abs(sm[0] - sr[0]) <= 1, f"reset after the hits at {at} s: memory {sm}, rld {sr}"
        assert mem.test(item, ident) == ours.test(item, ident)
    return got_mem, got_rld


def test_registered(d, monkeypatch):
    s = storage_from_string("rld://")                  # $RLD_INSTANCE
    assert isinstance(s, rld.limits.RldStorage) and s.instance is None and s.check()
    assert s.client().instance == d.instance
    s2 = storage_from_string(f"rld://{d.instance}")
    assert s2.instance == d.instance and s2.check()
    assert not storage_from_string("rld://no-such-instance").check()
    with pytest.raises(rld.NotFound):
        storage_from_string("rld://no-such-instance").incr("k", 1)
    with pytest.raises(limits.errors.ConfigurationError):
        storage_from_string("rld://x/path")
    with pytest.raises(limits.errors.ConfigurationError):
        storage_from_string("rld://", nope=1)
    with pytest.raises(NotImplementedError):
        s.reset()


def test_fixed_window_as_memory(rs):
    """Windows anchored at their first hit, counts including the hits over the limit."""
    item = limits.parse("5/second")
    steps = [(0.0, "a", 1, 6), (0.0, "a", 3, 1), (0.0, "b", 2, 3), (0.4, "a", 1, 1),
             (1.35, "a", 2, 1), (1.35, "a", 4, 1), (1.35, "a", 1, 1), (1.6, "a", 1, 1),
             (1.6, "b", 5, 1), (2.75, "a", 1, 6)]
    m, r = run_side_by_side(FixedWindowRateLimiter, rs, item, steps)
    assert m == r
    assert m.count(True) >= 10 and m.count(False) >= 5


def test_fixed_window_counts_as_memory(rs):
    """incr's counts themselves, window by window (the strategies only compare them)."""
    mem = MemoryStorage()
    # no step one period after another (elastic: after the last hit; fixed: after the
    # window's first): at exactly 1 s, memory and rld, called a few ms apart, may each see
    # the window on either side (it failed so once under ASan, 0.3 -> 1.3)
    seq = [(0.0, 1), (0.0, 3), (0.0, 10), (0.3, 2), (1.2, 1), (1.2, 4), (1.5, 0), (2.7, 1)]
    t0 = time.monotonic()
    for at, amount in seq:
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        for elastic in (False, True):
            k = f"k/{elastic}"
            assert mem.incr(k, 1, elastic, amount) == rs.incr(k, 1, elastic, amount)
            assert mem.get(k) == rs.get(k)
            assert abs(mem.get_expiry(k) - rs.get_expiry(k)) <= 1
    assert rs.get("never") == 0 and abs(rs.get_expiry("never") - time.time()) <= 1


def test_elastic_expiry_as_memory(rs):
    """Every hit pushes the window's end a period on: a limit kept hitting stays shut."""
    item = limits.parse("5/second")
    steps = [(0.0, "a", 1, 6), (0.6, "a", 1, 1), (1.2, "a", 1, 1), (1.8, "a", 1, 1),
             (3.2, "a", 1, 6)]
    m, r = run_side_by_side(FixedWindowElasticExpiryRateLimiter, rs, item, steps)
    assert m == r
    assert m == [True] * 5 + [False] * 4 + [True] * 5 + [False]


def test_moving_window_as_memory(rs):
    """At most 5 in any second; the hits are far (> 0.3 s) from being PERIOD old when the
    next ones come, where the exact log and the sub-windows agree. 5 is under 8: the
    window is counted in units of 1/2 hit (rld.limits._moving)."""
    item = limits.parse("5/second")
    steps = [(0.0, "a", 1, 6), (0.5, "a", 1, 1), (1.4, "a", 1, 3), (1.6, "a", 1, 3),
             (2.1, "a", 1, 1), (3.0, "a", 1, 6), (3.0, "b", 2, 3), (3.0, "c", 5, 2)]
    m, r = run_side_by_side(MovingWindowRateLimiter, rs, item, steps)
    assert m == r
    assert m[:7] == [True] * 5 + [False] * 2


def test_moving_window_large(rs):
    """A limit of 10 per 2 s (15 sub-windows of 133 ms, no scaling), cost 3 hits."""
    item = limits.parse("10 per 2 seconds")
    steps = [(0.0, "a", 3, 4), (0.3, "a", 1, 2), (0.5, "a", 1, 1), (2.7, "a", 3, 4)]
    m, r = run_side_by_side(MovingWindowRateLimiter, rs, item, steps)
    assert m == r
    assert m == [True, True, True, False, True, False, False, True, True, True, False]


def test_moving_window_stats(rs):
    mw = MovingWindowRateLimiter(rs)
    item = limits.parse("3/minute")
    t = time.time()
    assert all(mw.hit(item, "s") for _ in range(3)) and not mw.hit(item, "s")
    reset, remaining = mw.get_window_stats(item, "s")
    assert remaining == 0 and t - 1 <= reset - 60 <= time.time() + 1 + 60 / 15
    assert rs.get_moving_window(item.key_for("s"), 3, 60)[1] == 3
    assert rs.get_moving_window(item.key_for("none"), 3, 60)[1] == 0
    # a cost above the limit never fits; limits' memory and Redis storages admit it into
    # an empty window (their log is indexed at limit - cost, a negative index), rld does not
    assert not rs.acquire_entry("x", 3, 60, 4)
    assert MemoryStorage().acquire_entry("x", 3, 60, 4)


def test_shared_between_clients(d):
    """Two storages (two Clients, as two processes would have) count in the same keys."""
    a, b = storage_from_string("rld://"), storage_from_string(f"rld://{d.instance}")
    item = limits.parse("4/minute")
    fa, fb = FixedWindowRateLimiter(a), FixedWindowRateLimiter(b)
    assert [fa.hit(item, "u"), fb.hit(item, "u"), fa.hit(item, "u"), fb.hit(item, "u")] == [True] * 4
    assert not fa.hit(item, "u") and not fb.hit(item, "u")
    assert fa.get_window_stats(item, "u")[1] == 0
    ma, mb = MovingWindowRateLimiter(a), MovingWindowRateLimiter(b)
    assert [ma.hit(item, "u"), mb.hit(item, "u"), ma.hit(item, "u", cost=2)] == [True] * 3
    assert not mb.hit(item, "u")


def test_clear(rs):
    fw, ew = FixedWindowRateLimiter(rs), FixedWindowElasticExpiryRateLimiter(rs)
    item = limits.parse("2/minute")
    for lim in (fw, ew):
        ident = type(lim).__name__
        assert lim.hit(item, ident) and lim.hit(item, ident) and not lim.hit(item, ident)
        lim.clear(item, ident)
        assert lim.get_window_stats(item, ident)[1] == 2 and lim.hit(item, ident)
    mw = MovingWindowRateLimiter(rs)
    assert mw.hit(item, "m") and mw.hit(item, "m") and not mw.hit(item, "m")
    mw.clear(item, "m")                   # within the newest sub-window: all of it
    assert mw.hit(item, "m")


def test_long_keys_and_periods(rs):
    fw = FixedWindowRateLimiter(rs)
    item = limits.parse("1/month")
    long_a, long_b = "a" * 300, "a" * 299 + "b"
    assert fw.hit(item, long_a) and not fw.hit(item, long_a)
    assert fw.hit(item, long_b), "keys over 256 bytes: their SHA-256, still distinct"
    assert fw.hit(item, "é" * 100) and not fw.hit(item, "é" * 100)
    with pytest.raises(ValueError) as e:
        fw.hit(limits.parse("1/year"), "x")
    assert "49.7 days" in str(e.value)


def test_missing_templates(make_daemon):
    d = make_daemon("[template limits.fixed]\nrate = caller\nalgorithm = fixed\n"
                    "align = first\nmax_keys = 10\n")
    s = storage_from_string("rld://")
    item = limits.parse("1/second")
    assert FixedWindowRateLimiter(s).hit(item, "x")
    assert s.get(item.key_for("x")) == 1, "the elastic template is not needed for get"
    for strategy, name in ((FixedWindowElasticExpiryRateLimiter, "limits.elastic"),
                           (MovingWindowRateLimiter, "limits.moving")):
        with pytest.raises(rld.limits.TemplateMissing) as e:
            strategy(s).hit(item, "x")
        assert isinstance(e.value, limits.errors.ConfigurationError)
        assert isinstance(e.value, rld.NotFound)
        assert f"[template {name}]" in str(e.value) and "rate = caller" in str(e.value)
        assert d.instance in str(e.value)
    # other template names through the options (Flask-Limiter's storage_options)
    s2 = storage_from_string("rld://", elastic_template="limits.fixed")
    assert FixedWindowElasticExpiryRateLimiter(s2).hit(item, "y")


def test_overflow_allow(make_daemon):
    """A full table with overflow = allow admits (fail-open) instead of raising."""
    make_daemon("[template limits.fixed]\nrate = caller\nalgorithm = fixed\nalign = first\n"
                "max_keys = 7\noverflow = allow\n")
    s = storage_from_string("rld://")     # the strategies hold a weak reference to it
    fw = FixedWindowRateLimiter(s)
    item = limits.parse("1/minute")
    assert all(fw.hit(item, f"k{i}") for i in range(40))
