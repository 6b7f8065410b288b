"""Limit.acquire_async: the fast path without the loop, fair waits at the daemon through the
client's one wait descriptor in the running loop (10,000 at once, served in FIFO order),
cancellation (the place given up, nothing taken), timeouts, loops in several threads,
degraded mode, forked children."""
import asyncio
import multiprocessing
import os
import signal
import threading
import time

import pytest

import rld
from rld import _waits

CONF = """
[limit many]
rate  = 20000/s
burst = 1

[limit w]
rate  = 20/s
burst = 1

[limit q]
rate  = 4/s
burst = 1

[limit ten]
rate  = 100/s
burst = 10

[limit tok]
rate  = 1000/h
burst = 1000

[limit fast]
rate = 1000000/s
burst = 1000000
"""


@pytest.fixture
def ad(make_daemon):
    return make_daemon(CONF)


@pytest.fixture
def ac(ad):
    with ad.client() as c:
        yield c


SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")


def run(coro):
    return asyncio.run(coro)


def wait_until(pred, timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return pred()


def test_fast_path_never_touches_the_loop(ac):
    lim = ac.limit("fast")

    async def main():
        rs = [await lim.acquire_async() for _ in range(100)]
        rs.append(await lim.acquire_async(5, timeout=0, priority=3))
        return rs
    rs = run(main())
    assert all(r and r.admitted and not r.degraded and r.queue_position == 0 for r in rs)
    assert ac._router is None, "no wait engine, no descriptor: the loop was never touched"


def test_a_coroutine_that_takes_nothing_until_awaited(ac):
    lim = ac.limit("tok")
    co = lim.acquire_async(10)
    assert asyncio.iscoroutine(co) and "acquire_async" in repr(co)
    co.close()                             # never awaited: nothing taken
    lim.acquire_async(10)                  # dropped: nothing taken
    assert lim.peek().remaining == 1000

    async def main():
        t = asyncio.create_task(lim.acquire_async(10))   # a coroutine for create_task too
        r = await t
        with pytest.raises(RuntimeError):
            await t.get_coro()                           # not twice
        return r
    assert run(main()).remaining == 990
    with pytest.raises(TypeError):
        lim.acquire_async(1, None, 0, False, 5)
    with pytest.raises(TypeError):
        lim.acquire_async(bogus=1)
    with pytest.raises(ValueError):
        lim.acquire_async(-1)
    with pytest.raises(rld.InvalidArgument):
        lim.acquire_async(1, priority=8)


def test_errors_when_awaited(ac):
    lim = ac.limit("w")

    async def main():
        with pytest.raises(rld.CostTooHigh) as ei:
            await lim.acquire_async(2)
        assert "'w'" in str(ei.value)
        ac2 = rld.Client(ac.instance)
        l2 = ac2.limit("w")
        ac2.close()
        with pytest.raises(rld.Error) as ei:
            await l2.acquire_async()
        assert ei.value.errno == 9    # EBADF
    run(main())


def test_waits_its_turn(ac):
    lim = ac.limit("w")                    # one token per 50 ms

    async def main():
        assert await lim.acquire_async()
        t = time.monotonic()
        r = await lim.acquire_async()
        return r, time.monotonic() - t
    r, waited = run(main())
    assert r and not r.degraded
    assert 0.03 < waited < 0.5
    assert ac._router is not None and ac._router.loops == {}, "the descriptor left the loop"
    assert len(ac._router.w) == 0


def test_fifo_10000(ac):
    """10,000 concurrent acquire_async in one process complete in the order they were
    started (the daemon's FIFO, the completions resolved in collection order)."""
    N = 10000
    lim = ac.limit("many")                 # 20,000/s, burst 1
    lim.debit(10000)                       # 0.5 s of debt: every one of them queues

    async def main():
        order = []

        async def one(i):
            r = await lim.acquire_async(1, timeout=20)
            order.append(i)
            return r
        t0 = time.monotonic()
        rs = await asyncio.gather(*(one(i) for i in range(N)))
        return order, rs, time.monotonic() - t0
    order, rs, took = run(main())
    assert len(order) == N
    assert order == list(range(N)), "completed in start order"
    assert all(r.admitted and not r.degraded for r in rs)
    assert max(r.queue_position for r in rs) > N // 2, "they queued together"
    # 0.5 s of debt and 10,000 tokens at 20,000/s: no sooner than 1 s
    assert 0.9 < took < 15, took
    print(f"10,000 acquire_async: {took:.3f} s")
    assert ac._router.loops == {} and len(ac._router.w) == 0


CAP_CONF = "[rld]\nmax_waits_per_uid = 20000\n\n" + "".join(f"[limit c{i}]\nrate = 5000/s\nburst = 1\n\n" for i in range(64)) + \
    "[limit x]\nrate = 4/s\nburst = 1\n"


def test_beyond_the_cap(make_daemon):
    """librld queues at most 16,384 charges per client at the daemon: the waits beyond it
    wait in line, in order, instead of failing (ENOSPC). 300 sets of 64 charges: 256 fit."""
    d = make_daemon(CAP_CONF)
    c = d.client()
    lims = [c.limit(f"c{i}") for i in range(64)]
    charges = [(lim, 1) for lim in lims]
    N = 300

    async def main():
        for lim in lims:
            # 300 ms: every set is started and sent before the first grant (librld's start
            # may admit a set ahead of this client's own sets not yet sent to the daemon)
            lim.debit(1500)
        order = []

        async def one(i):
            r = await c.acquire_multi_async(charges, timeout=20)
            order.append(i)
            return r
        tasks = [asyncio.ensure_future(one(i)) for i in range(N)]
        await asyncio.sleep(0)
        in_line = len(c._router.room)
        rs = await asyncio.gather(*tasks)
        return order, rs, in_line
    order, rs, in_line = run(main())
    assert in_line >= N - 256 - 5, in_line
    assert sorted(order) == list(range(N)) and all(rs) and not any(r.degraded for r in rs)
    if not SANITIZED:
        # Under ASan the daemon enqueues a 64-charge set more slowly than it grants: its
        # queue runs empty while sets of this client are still unread, and librld's fast
        # path in rld_wait_start admits later sets ahead of them (python/README.md, known
        # limitations). Not the line's doing: it starts them in order.
        assert order == list(range(N))
    assert len(c._router.room) == 0 and len(c._router.w) == 0
    # In line, the timeout holds too. The cap full of slow sets; a wait on another limit
    # that would fit in time, but waits in line, and meanwhile another client queues ahead
    # of it on that limit (priority 7): refused within its timeout (when it tries again
    # and cannot fit any more, or when its time is up in line: "no room").
    for lim in lims:
        lim.debit(5000 * 30)               # 30 s of debt
    x = c.limit("x")                       # 4/s
    other = rld.Client(d.instance)
    ox = other.limit("x")
    ahead = [threading.Thread(target=ox.acquire, kwargs={"priority": 7}) for _ in range(3)]

    async def timeouts():
        tasks = [asyncio.ensure_future(c.acquire_multi_async(charges)) for _ in range(256)]
        await asyncio.sleep(0.05)
        assert len(c._router.w) == 256
        assert x.try_acquire()
        later = asyncio.get_running_loop().call_later
        later(0.05, lambda: [t_.start() for t_ in ahead])
        t = time.monotonic()
        with pytest.raises(rld.Timeout) as ei:
            await x.acquire_async(1, timeout=0.4)   # it would fit, but finds no room
        took = time.monotonic() - t
        assert ei.value.errno == 110
        for t_ in tasks:
            t_.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return took
    took = run(timeouts())
    for t_ in ahead:
        t_.join(5)
    assert 0.04 < took < 1.0, took
    other.close()
    c.close()


def test_timeout_refused_at_once(ac):
    lim = ac.limit("q")                    # one token per 250 ms

    async def main():
        assert await lim.acquire_async()
        for timeout in (0, 0.1):
            t = time.monotonic()
            with pytest.raises(rld.Timeout) as ei:
                await lim.acquire_async(1, timeout=timeout)
            assert time.monotonic() - t < 0.05, "refused without waiting"
            e = ei.value
            assert isinstance(e, TimeoutError) and e.errno == 110
            assert 0.1 < e.retry_after <= 0.25 and e.result is not None and not e.result
        # behind a queued waiter: refused at once too (by the daemon or before asking)
        first = asyncio.ensure_future(lim.acquire_async())
        await asyncio.sleep(0.02)
        t = time.monotonic()
        with pytest.raises(rld.Timeout) as ei:
            await lim.acquire_async(1, timeout=0.3)
        assert time.monotonic() - t < 0.1
        assert ei.value.retry_after > 0.3
        assert await first
        assert await lim.acquire_async(1, timeout=1.0)    # but it fits in a second
    run(main())


def test_cancelled_waits_take_nothing(ad, ac):
    lim = ac.limit("tok")                  # 1000/h: no refill worth counting

    async def main():
        assert lim.try_acquire(1000)
        lim.refund(5)                      # 5 there, 10 asked: ~18 s each
        assert wait_until(lambda: lim.info().admitted == 1000)   # published
        tasks = [asyncio.ensure_future(lim.acquire_async(10)) for _ in range(20)]
        await asyncio.sleep(0.05)
        assert wait_until(lambda: lim.info().waiters == 20)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with pytest.raises(asyncio.CancelledError):
                await t
        # the daemon dropped them: nothing queued, and a try is not held behind them
        assert wait_until(lambda: lim.info().waiters == 0)
        assert lim.peek().remaining == 5
        assert lim.info().admitted == 1000, "none of the cancelled ones was admitted"
        assert lim.try_acquire(5)
    run(main())
    assert ac._router.loops == {} and len(ac._router.w) == 0


def test_cancel_gives_the_place_up(ac):
    lim = ac.limit("q")                    # one token per 250 ms

    async def main():
        assert lim.try_acquire()
        t0 = time.monotonic()
        done = {}

        async def one(name):
            await lim.acquire_async()
            done[name] = time.monotonic() - t0
        a = asyncio.ensure_future(one("a"))
        await asyncio.sleep(0.01)
        b = asyncio.ensure_future(one("b"))
        await asyncio.sleep(0.01)
        c = asyncio.ensure_future(one("c"))
        await asyncio.sleep(0.05)
        b.cancel()
        await asyncio.gather(a, c, return_exceptions=True)
        assert b.cancelled()
        return done
    done = run(main())
    assert set(done) == {"a", "c"}
    assert done["a"] < done["c"] < 0.65, done     # c moved up: 500 ms, not 750


def test_granted_as_cancelled_is_given_back(ac, monkeypatch):
    """The grant is collected, then the task is cancelled before it resumes: the tokens go
    back (Result.window for window limits, see test_windows_refund)."""
    lim = ac.limit("ten")                  # 100/s, burst 10
    flush = _waits._Router.flush
    box = {}

    def cancel_first(self, inbox):
        box["task"].cancel()               # cancels the Future the task awaits
        flush(self, inbox)
    monkeypatch.setattr(_waits._Router, "flush", cancel_first)

    async def main():
        assert lim.try_acquire(10)         # empty: 10 more in 100 ms
        box["task"] = asyncio.ensure_future(lim.acquire_async(10))
        with pytest.raises(asyncio.CancelledError):
            await box["task"]
        return lim.peek()
    p = run(main())
    # granted at ~100 ms and given back: full again (without the refund: ~0)
    assert p.remaining >= 9, p


def test_wait_for_and_timeout_context(ac):
    lim = ac.limit("q")

    async def main():
        assert lim.try_acquire()
        t = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(lim.acquire_async(), 0.05)
        assert time.monotonic() - t < 0.2
        assert wait_until(lambda: lim.info().waiters == 0)
        # it took nothing: the next one is served when the first token comes (~250 ms)
        r = await lim.acquire_async(1, timeout=0.5)
        assert r
    run(main())


def test_ctrl_c_in_asyncio_run(ac):
    """asyncio.run turns Ctrl-C into the main task's cancellation: the wait gives its place
    up and takes nothing, and KeyboardInterrupt comes out of asyncio.run at once."""
    lim = ac.limit("q")
    assert lim.try_acquire()

    async def main():
        await lim.acquire_async()
    threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())
    assert time.monotonic() - t0 < 0.2
    assert lim.info().waiters == 0 or wait_until(lambda: lim.info().waiters == 0)
    time.sleep(max(0.0, t0 + 0.4 - time.monotonic()))
    assert lim.peek().remaining == 1, "nothing taken"


def test_priority(ac):
    lim = ac.limit("w")

    async def main():
        assert lim.try_acquire()
        lim.debit(2)                       # 150 ms before anyone
        order = []

        async def one(name, prio):
            await lim.acquire_async(1, priority=prio)
            order.append(name)
        tasks = []
        for name, prio in (("low1", 0), ("low2", 0), ("high", 7)):
            tasks.append(asyncio.ensure_future(one(name, prio)))
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
        return order
    assert run(main()) == ["high", "low1", "low2"]


def test_loops_in_threads(ac):
    """Four threads, each its own loop, one Client: whichever loop sees the descriptor
    collects and hands the others theirs."""
    lim = ac.limit("many")
    lim.debit(2000)                        # 100 ms: they all queue
    N, T = 200, 4
    out, errors = {}, []

    def thread(k):
        async def main():
            got = []

            async def one(i):
                r = await lim.acquire_async(1, timeout=10)
                got.append((i, r.degraded))
            await asyncio.gather(*(one(i) for i in range(N)))
            return got
        try:
            out[k] = asyncio.run(main())
        except BaseException as e:   # noqa: B902 - reported below
            errors.append(e)
    ts = [threading.Thread(target=thread, args=(k,)) for k in range(T)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert not errors, errors
    assert sorted(out) == list(range(T))
    for k, got in out.items():
        assert [i for i, _ in got] == list(range(N)), f"loop {k}: in its start order"
        assert not any(dg for _, dg in got)
    assert ac._router.loops == {} and len(ac._router.w) == 0


def test_sync_main_thread_wait_beside_a_loop_thread(ac):
    """The main thread's blocking acquire and a loop in another thread share the client's
    descriptor: each gets its own completion whoever collects it."""
    lim = ac.limit("w")
    assert lim.try_acquire()
    res = []

    def loop_thread():
        async def main():
            rs = await asyncio.gather(*(lim.acquire_async() for _ in range(3)))
            res.extend(rs)
        asyncio.run(main())
    t = threading.Thread(target=loop_thread)
    t.start()
    time.sleep(0.02)
    rs = [lim.acquire() for _ in range(3)]
    t.join(5)
    assert all(rs) and len(res) == 3 and all(res)


def test_degraded_without_daemon(ad, ac):
    lim = ac.limit("w")

    async def main():
        assert await lim.acquire_async()
        ad.stop()
        t = time.monotonic()
        r = await lim.acquire_async()
        waited = time.monotonic() - t
        assert r and r.degraded
        assert 0.02 < waited < 0.5
        with pytest.raises(rld.Timeout) as ei:
            await lim.acquire_async(1, timeout=0.001)
        # a cancelled degraded wait gives its reservation back
        lim.debit(10)                      # 550 ms ahead
        task = asyncio.ensure_future(lim.acquire_async())
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return lim.peek()
    p = run(main())
    assert 0.45 < p.retry_after < 0.6, p


def test_daemon_stops_while_waiting(ad, ac):
    lim = ac.limit("q")

    async def main():
        assert lim.try_acquire()
        tasks = [asyncio.ensure_future(lim.acquire_async(1, timeout=5)) for _ in range(3)]
        await asyncio.sleep(0.05)
        ad.stop()                          # the daemon says it stops: served client-side
        return await asyncio.gather(*tasks)
    rs = run(main())
    assert all(rs) and all(r.degraded for r in rs)


def test_deleted_while_waiting(ad, ac):
    lim = ac.limit("q")

    async def main():
        assert lim.try_acquire()
        lim.debit(4)
        task = asyncio.ensure_future(lim.acquire_async())
        await asyncio.sleep(0.05)
        ad.reload("[limit fast]\nrate = 10/s\n")
        with pytest.raises(rld.Deleted):
            await asyncio.wait_for(task, 5)
    run(main())


def test_close_while_waiting(ac):
    lim = ac.limit("q")

    async def main():
        assert lim.try_acquire()
        task = asyncio.ensure_future(lim.acquire_async())
        await asyncio.sleep(0.02)
        ac.close()                         # the wait keeps its librld client until it ends
        r = await asyncio.wait_for(task, 5)
        with pytest.raises(rld.Error):
            await lim.acquire_async()
        return r
    assert run(main())


_parent_lim = None


def _child(q, n):
    try:
        async def main():
            lim = _parent_lim
            lim.debit(3)                   # 150 ms: every wait queues at the daemon
            order = []

            async def one(i):
                r = await lim.acquire_async(1, timeout=5)
                order.append((i, r.degraded))
            await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), 10)
            return order
        q.put((asyncio.run(main()), None))
    except BaseException as e:   # noqa: B902 - report, do not hang the parent
        q.put((None, repr(e)))


def test_after_fork(make_daemon):
    """gunicorn --preload: the parent made the client and awaited (its engine, descriptor
    and router exist); a forked child uses the same Limit in a new loop."""
    global _parent_lim
    d = make_daemon(CONF)
    c = d.client()
    _parent_lim = c.limit("w")

    async def parent():
        _parent_lim.debit(1)
        return await _parent_lim.acquire_async()     # a real wait at the daemon
    assert run(parent())
    assert c._router is not None
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q, 5))
    p.start()
    try:
        order, err = q.get(timeout=15)
    finally:
        p.join(5)
        if p.is_alive():
            p.kill()
    assert err is None, err
    assert [i for i, _ in order] == list(range(5))
    assert not any(dg for _, dg in order), "served by the daemon, not degraded"
    assert p.exitcode == 0
    # the parent's own waits go on
    r = run(parent())
    assert r and not r.degraded
