"""Limit: try_acquire, refund, debit, peek, info, Result and its headers, stale handles."""
import errno
import math
import time

import pytest

import rld


def test_try_acquire_burst_then_denied(client):
    lim = client.limit("slow")              # 10/s, burst 5
    admitted = [lim.try_acquire() for _ in range(5)]
    assert all(admitted) and all(r.admitted for r in admitted)
    assert all(r.limit == 5 and r.retry_after == 0.0 and r.retry_after_ns == 0 for r in admitted)
    assert admitted[0].remaining == 4 and admitted[-1].remaining == 0
    r = lim.try_acquire()
    assert not r and not r.admitted
    assert r.remaining == 0 and r.limit == 5
    assert 0.05 < r.retry_after <= 0.1
    assert r.retry_after_ns == pytest.approx(r.retry_after * 1e9, abs=1)
    assert 0.4 < r.reset_after <= 0.5
    assert not r.degraded and not r.unlimited and r.queue_position == 0
    assert isinstance(r.retry_after, float) and isinstance(r.remaining, int)


def test_retry_after_is_never_too_early(client):
    lim = client.limit("tiny")              # 2/s, burst 1
    assert lim.try_acquire()
    r = lim.try_acquire()
    assert not r
    time.sleep(r.retry_after)
    assert lim.try_acquire(), "waiting exactly retry_after must be enough"


def test_costs(client):
    lim = client.limit("slow")
    assert lim.try_acquire(0) and lim.try_acquire(cost=0).remaining == 5
    assert lim.try_acquire(5).remaining == 0
    assert not lim.try_acquire(cost=1)
    with pytest.raises(rld.CostTooHigh) as ei:
        lim.try_acquire(6)
    assert ei.value.errno == errno.E2BIG and "'slow'" in str(ei.value)
    with pytest.raises(ValueError):
        lim.try_acquire(-1)
    with pytest.raises(OverflowError):
        lim.try_acquire(2 ** 64)
    with pytest.raises(TypeError):
        lim.try_acquire(1.5)
    with pytest.raises(TypeError):
        lim.try_acquire("1")
    with pytest.raises(TypeError):
        lim.try_acquire(1, 2)
    with pytest.raises(TypeError):
        lim.try_acquire(1, cost=2)
    with pytest.raises(TypeError):
        lim.try_acquire(nope=1)
    with pytest.raises(TypeError):
        lim.try_acquire(1, barge=True, nope=1)
    assert lim.try_acquire(barge=True, cost=0) and lim.try_acquire(0, barge=1)
    lim.refund(5)
    assert lim.try_acquire(True).remaining in (3, 4)   # a bool is an int


def test_refund_debit_peek(client):
    lim = client.limit("slow")
    assert lim.try_acquire(5)
    p = lim.peek()
    assert not p and p.remaining == 0 and p.retry_after == 0.0
    lim.refund(3)
    p = lim.peek()
    assert p and 2 <= p.remaining <= 3    # a tick may have refilled some
    lim.refund(100)                       # never above the burst
    assert lim.peek().remaining == 5
    lim.debit(8)                          # 3 tokens of debt
    p = lim.peek()
    assert not p and p.remaining == 0 and 0.2 < p.retry_after <= 0.3
    r = lim.try_acquire()
    assert not r and 0.3 < r.retry_after <= 0.4
    with pytest.raises(ValueError):
        lim.refund(-1)
    with pytest.raises(TypeError):
        lim.debit("x")


def test_debt_overflow(make_daemon):
    d = make_daemon("[limit daily]\nrate = 1/day\n")
    lim = d.client().limit("daily")
    with pytest.raises(rld.DebtOverflow) as ei:
        lim.debit(10 ** 6)                # 10^6 days of debt > 2^62 ns
    assert isinstance(ei.value, OverflowError) and ei.value.errno == errno.ERANGE
    assert lim.try_acquire(), "nothing was taken"


def test_info(client):
    lim = client.limit("slow")
    for _ in range(3):
        lim.try_acquire()
    info = lim.info()
    assert isinstance(info, rld.Info) and isinstance(info, tuple)
    assert info.name == "slow" and info.burst == 5 and info.count == 10
    assert info.period == 1.0 and info.rate == 10.0 and not info.unlimited
    assert info.waiters == 0 and info.admitted >= 0 and info.denied >= 0
    assert min(info.refunded, info.rolled_back, info.debited) >= 0
    assert "name='slow'" in repr(info)
    u = client.limit("unl").info()
    assert u.unlimited and u.rate == math.inf and u.count == 0


def test_unlimited(client):
    u = client.limit("unl")
    r = u.try_acquire(10 ** 12)
    assert r and r.unlimited and r.remaining == 2 ** 64 - 1 and r.limit == 2 ** 64 - 1
    assert r.headers() == {}
    assert repr(r) == "<rld.Result admitted unlimited>"
    assert u.peek().unlimited and u.peek()


def test_headers_follow_librld3(client):
    lim = client.limit("slow")
    r = lim.try_acquire(2)
    h = r.headers()
    assert h == {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": str(r.remaining),
                 "X-RateLimit-Reset": str(math.ceil(r.reset_after_ns / 1e9))}
    assert h["X-RateLimit-Reset"] == "1"          # 0.2 s rounds up to 1
    lim.try_acquire(3)
    r = lim.try_acquire()
    h = r.headers()
    assert h["Retry-After"] == "1" and h["X-RateLimit-Remaining"] == "0"
    # whole seconds round up, exact ones stay: the man page's (ns + 999999999) / 10^9
    assert rld.Result(False, 5, 0, 2_000_000_000, 3_000_000_001).headers() == {
        "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "4",
        "Retry-After": "2"}
    # none at all when remaining is 2**64-1 (unlimited, or admitted without an instance)
    assert rld.Result(True, 2 ** 64 - 1, 2 ** 64 - 1, 0, 0, 0, rld._rld.F_DEGRADED).headers() == {}


def test_result_repr_and_construct():
    r = rld.Result(False, 5, 0, 250_000_000, 1_000_000_000, 3, 1)
    assert repr(r) == ("<rld.Result denied remaining=0 limit=5 retry_after=0.25 "
                       "reset_after=1 queue_position=3 degraded>")
    assert not r and r.degraded and r.queue_position == 3 and r.flags == 1
    assert rld.Result(True, 5, 4, 0, 1).admitted


def test_barge(client):
    lim = client.limit("slow")
    assert lim.try_acquire(barge=True)
    assert lim.try_acquire(1, barge=False)


def test_deleted_limit_raises_deleted(daemon, client):
    lim = client.limit("slow")
    daemon.reload("[limit fast]\nrate = 1000/s\n")
    with pytest.raises(rld.Deleted) as ei:
        lim.try_acquire()
    assert isinstance(ei.value, rld.NotFound) and ei.value.errno == errno.ESTALE
    for call in (lim.peek, lim.info, lambda: lim.refund(1), lambda: lim.acquire(1)):
        with pytest.raises(rld.Deleted):
            call()


def test_recreated_limit_is_found_again(daemon, client):
    lim = client.limit("slow")
    assert lim.try_acquire(5)
    daemon.reload("[limit fast]\nrate = 1000/s\n")
    daemon.reload("[limit slow]\nrate = 100/s\nburst = 50\n")
    r = lim.try_acquire()                 # stale handle: found again by name
    assert r and r.limit == 50
    assert lim.info().burst == 50
    lim.refund(1)
    assert lim.acquire(1).limit == 50


def test_rate_change_keeps_the_handle(daemon, client):
    lim = client.limit("slow")
    daemon.reload("[limit slow]\nrate = 20/s\nburst = 7\n")
    assert lim.try_acquire().limit == 7
