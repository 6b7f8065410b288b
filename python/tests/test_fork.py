"""Forked children (multiprocessing's fork start method, as gunicorn --preload and celery
prefork do) keep using the Client their parent opened."""
import multiprocessing
import os
import time

import pytest

import rld

CONF = """
[limit t]
rate  = 100/s
burst = 10

[limit w]
rate  = 50/s
burst = 1
"""

CHILDREN = 4
_lim = None            # set in the parent before forking: the children inherit it


def _hammer(q, seconds):
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if _lim.try_acquire():
            n += 1
    q.put((os.getpid(), n))


def test_try_acquire_in_forked_children(make_daemon):
    global _lim
    d = make_daemon(CONF)
    _lim = d.client().limit("t")
    assert _lim.try_acquire()            # the parent used it before forking
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    t0 = time.monotonic()
    procs = [ctx.Process(target=_hammer, args=(q, 0.4)) for _ in range(CHILDREN)]
    for p in procs:
        p.start()
    got = [q.get(timeout=10) for _ in procs]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    elapsed = time.monotonic() - t0
    admitted = sum(n for _, n in got)
    assert len({pid for pid, _ in got}) == CHILDREN
    # one bucket for the parent and every child: burst 10 (1 taken by the parent) + 100/s
    assert admitted <= 9 + int(100 * elapsed), (admitted, elapsed)
    assert admitted >= 9 + 40 - 10, (admitted, elapsed)
    assert sum(1 for _, n in got if n) >= 2


def _waiter(q, n):
    try:
        out = []
        for _ in range(n):
            r = _lim.acquire(timeout=0.5)   # 12 grants at 50/s: 80 ms at most each
            out.append(bool(r) and not r.degraded)
        q.put((os.getpid(), out, None))
    except BaseException as e:          # report, do not hang the parent
        q.put((os.getpid(), [], repr(e)))


@pytest.mark.xfail(strict=True, reason=(
    "librld defect: a client opened before fork shares its pooled daemon connection with "
    "the children, so their waits read each other's replies (or the parent's) and break; "
    "remove this mark when librld's fork-safe waits land"))
def test_acquire_in_forked_children_after_parent_waited(make_daemon):
    global _lim
    d = make_daemon(CONF)
    _lim = d.client().limit("w")
    assert _lim.try_acquire()
    r = _lim.acquire(timeout=5)          # a real wait: the client now pools a connection
    assert r and not r.degraded
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    per_child = 3
    t0 = time.monotonic()
    procs = [ctx.Process(target=_waiter, args=(q, per_child)) for _ in range(CHILDREN)]
    for p in procs:
        p.start()
    got = []
    for _ in procs:
        got.append(q.get(timeout=20))
    for p in procs:
        p.join(10)
    elapsed = time.monotonic() - t0
    errors = [e for _, _, e in got if e]
    assert not errors, errors
    # every child waited at the daemon (not degraded) and got its tokens
    assert all(len(out) == per_child and all(out) for _, out, _ in got), got
    # burst 1 at 50/s: the 12 grants need 11 intervals
    assert elapsed >= (CHILDREN * per_child - 1) / 50 - 0.001
