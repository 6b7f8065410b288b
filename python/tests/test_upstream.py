"""Issue 15 from Python: Limit.penalize/sync, leases (and a holder's death), breakers shared
by processes, shadow mode, burst = 1.5x, rld.Backoff."""
import multiprocessing as mp
import os
import signal
import time

import pytest

import rld

CONF = """
[limit api]
rate = 20/s
burst = 5

[limit pool]
concurrency = 3

[limit shadowed]
rate = 2/s
mode = shadow

[limit multiple]
rate = 10/s
burst = 1.5x

[breaker shop]
failures = 3
open_for = 200ms
probes = 1
successes = 1
"""


@pytest.fixture
def up(make_daemon):
    d = make_daemon(CONF)
    with d.client() as c:
        yield c


def test_penalize_sync(up):
    lim = up.limit("api")
    t0 = time.monotonic()
    lim.penalize(0.3)
    r = lim.try_acquire()
    assert not r and 0.25 < r.retry_after <= 0.3
    while not lim.try_acquire():
        time.sleep(0.005)
    assert time.monotonic() - t0 >= 0.3
    lim.sync(remaining=0, reset_after=0.2)
    assert not lim.try_acquire()
    with pytest.raises(ValueError):
        lim.penalize(-1)
    with pytest.raises(rld.Error):
        lim.penalize(86400 * 60)
    assert lim.mode == "enforce" and lim.concurrency == 0


def test_lease(up):
    pool = up.limit("pool")
    assert pool.concurrency == 3
    leases = [pool.acquire_lease(timeout=1) for _ in range(3)]
    with pytest.raises(rld.Denied):
        pool.acquire_lease(timeout=0)
    with pytest.raises(rld.Timeout):
        pool.acquire_lease(timeout=0.1)
    leases[0].release()
    leases[0].release()                      # once
    with pool.lease(timeout=1) as l:
        assert l.held
    assert not l.held
    for x in leases[1:]:
        x.release()
    with pytest.raises(rld.InvalidArgument) as e:
        up.limit("api").acquire_lease(timeout=0)
    assert "limit 'api'" in str(e.value) and "concurrency = N" in str(e.value)


def _hold(name, ready):
    c = rld.Client()
    l = c.limit(name).acquire_lease(timeout=5)
    ready.set()
    time.sleep(60)
    l.release()


def test_lease_holder_killed(up):
    """A process holding a lease dies (SIGKILL): the lease comes back within a second."""
    ctx = mp.get_context("fork")
    ready = [ctx.Event() for _ in range(3)]
    ps = [ctx.Process(target=_hold, args=("pool", ready[i])) for i in range(3)]
    for p in ps:
        p.start()
    for e in ready:
        assert e.wait(5)
    pool = up.limit("pool")
    with pytest.raises(rld.Denied):
        pool.acquire_lease(timeout=0)
    t0 = time.monotonic()
    os.kill(ps[0].pid, signal.SIGKILL)
    l = pool.acquire_lease(timeout=2)
    assert time.monotonic() - t0 < 1.0
    l.release()
    for p in ps[1:]:
        p.kill()
    for p in ps:
        p.join()


def _probe(ready, go, out):
    c = rld.Client()
    b = c.breaker("shop")
    ready.set()
    go.wait(5)
    ok, probe, _ = b.enter_ex()
    out.put((ok, probe))
    if ok:
        time.sleep(0.05)                       # within probe_timeout (= open_for, 200 ms)
        b.report(True)


def test_breaker_across_processes(up):
    b = up.breaker("shop")
    assert b.state == "closed"
    for _ in range(3):
        with pytest.raises(ZeroDivisionError):
            with b:
                1 / 0
    assert b.state == "open"
    with pytest.raises(rld.BreakerOpen) as ei:
        b.check()
    assert 0 < ei.value.retry_after <= 0.201          # whole ms, rounded up
    time.sleep(0.25)
    ctx = mp.get_context("fork")
    go, out = ctx.Event(), ctx.Queue()
    ready = [ctx.Event() for _ in range(5)]
    ps = [ctx.Process(target=_probe, args=(ready[i], go, out)) for i in range(5)]
    for p in ps:
        p.start()
    for e in ready:
        assert e.wait(5)
    go.set()
    got = [out.get(timeout=5) for _ in ps]
    for p in ps:
        p.join()
    assert sum(ok for ok, _ in got) == 1 and sum(pr for _, pr in got) == 1
    info = b.info()
    assert info["state"] == "closed" and info["opens"] == 1 and info["closes"] == 1


def test_shadow_and_burst(up):
    s = up.limit("shadowed")
    rs = [s.try_acquire() for _ in range(6)]
    assert all(rs)
    assert s.mode == "shadow" and s.shadowed == 4
    assert up.limit("multiple").info().burst == 15


def test_backoff():
    b = rld.Backoff(base=0.1, cap=1.0, max_attempts=4)
    ds = list(b)
    assert len(ds) == 4 and all(0 <= d <= min(1.0, 0.1 * 2 ** i) for i, d in enumerate(ds))
    b.reset()
    assert b.next(retry_after=3.0) == 3.0
