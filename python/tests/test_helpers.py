"""The helpers: @rld.limited (sync and async functions, with and async with), Limit.acquiring,
and the estimate-then-adjust Reservation (refunds to the window the estimate was taken in)."""
import asyncio
import threading
import time

import pytest

import rld
import rld._core

CONF = """
[limit w]
rate  = 20/s
burst = 1

[limit tok]
rate  = 1000/h
burst = 1000

[limit many]
rate = 1000000/s

[limit win]
rate = 100/10s
algorithm = sliding

[limit winq]
rate = 2/200ms
algorithm = sliding

[template per.ip]
rate  = 20/s
burst = 1
max_keys = 10
"""


@pytest.fixture
def hd(make_daemon):
    return make_daemon(CONF)


@pytest.fixture
def hc(hd):
    with hd.client() as c:
        yield c


@pytest.fixture
def fresh_default():
    rld._core._default = None
    yield
    if rld._core._default is not None:
        rld._core._default.close()
    rld._core._default = None


def test_decorator_sync(hc):
    calls = []

    @rld.limited("w", client=hc)
    def work(x, y=1):
        """doc"""
        calls.append(x)
        return x + y
    assert work.__name__ == "work" and work.__doc__ == "doc"
    t = time.monotonic()
    assert [work(i, y=10) for i in range(3)] == [10, 11, 12]
    assert time.monotonic() - t >= 0.09        # 1 at once, then one per 50 ms
    assert calls == [0, 1, 2]


def test_decorator_default_client_resolves_lazily(make_daemon, fresh_default):
    @rld.limited("tok", cost=5)                 # no daemon yet: nothing is looked up
    def f():
        return "ok"
    d = make_daemon(CONF)
    assert f() == "ok"
    assert rld.default_client().instance == d.instance
    assert rld.default_client() is rld.default_client()
    assert d.client().limit("tok").peek().remaining in (995, 996)


def test_decorator_no_wait_raises_denied(hc):
    @rld.limited("w", wait=False, client=hc)
    def f():
        return 1
    assert f() == 1
    with pytest.raises(rld.Denied) as ei:
        f()
    e = ei.value
    assert 0 < e.retry_after <= 0.05 and not e.result and e.errno == 11
    assert "limit 'w'" in str(e)
    # a Key is named as a key, not as a limit called after its template
    g = rld.limited(hc.template("per.ip").key("203.0.113.9"), wait=False)
    g.acquire()
    with pytest.raises(rld.Denied) as ei:
        g.acquire()
    assert "key '203.0.113.9' of template 'per.ip'" in str(ei.value)


def test_decorator_timeout(hc):
    lim = hc.limit("w")

    @rld.limited(lim, timeout=0.01)
    def f():
        return 1
    lim.debit(3)                               # 200 ms to wait
    with pytest.raises(rld.Timeout):
        f()


def test_context_managers(hc):
    lim = hc.limit("tok")
    with rld.limited("tok", cost=10, client=hc) as r:
        assert r and r.remaining <= 990
    with lim.acquiring(10) as r:
        assert r and r.remaining <= 980
    assert lim.peek().remaining in (980, 981)
    with pytest.raises(RuntimeError):
        with lim.acquiring(10):
            raise RuntimeError("the tokens stay taken: the call was made")
    assert lim.peek().remaining in (970, 971)


def test_argument_checks(hc):
    with pytest.raises(TypeError):
        rld.limited(42)
    with pytest.raises(ValueError):
        rld.limited("w", cost=-1)
    assert repr(rld.limited("w", 2)) == "rld.limited('w', cost=2, timeout=None)"
    with pytest.raises(rld.NotFound):
        with rld.limited("nope", client=hc):
            pass


def test_decorator_async(hc):
    @rld.limited("w", client=hc)
    async def work(i):
        await asyncio.sleep(0)
        return i

    async def main():
        t = time.monotonic()
        out = await asyncio.gather(*(work(i) for i in range(4)))
        return out, time.monotonic() - t
    out, took = asyncio.run(main())
    assert sorted(out) == [0, 1, 2, 3]
    assert took >= 0.14                        # 1 at once, 3 more at 50 ms each


def test_decorator_async_fifo_and_priority(hc):
    """The async forms queue at the daemon (Limit.acquire_async): FIFO, priorities."""
    lim = hc.limit("w")
    order = []

    def make(name, prio):
        @rld.limited(lim, priority=prio)
        async def work():
            order.append(name)
        return work

    async def main():
        lim.try_acquire()
        lim.debit(2)                           # 150 ms before anyone
        tasks = []
        for name, prio in (("a", 0), ("b", 0), ("c", 0), ("urgent", 5)):
            tasks.append(asyncio.ensure_future(make(name, prio)()))
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
    asyncio.run(main())
    assert order == ["urgent", "a", "b", "c"]
    assert hc._router is not None, "they waited through the engine, not by polling"


def test_async_with_and_timeout(hc):
    lim = hc.limit("w")

    async def main():
        async with rld.limited(lim) as r:
            assert r
        async with lim.acquiring(1) as r:
            assert r
        lim.debit(3)
        t = time.monotonic()
        with pytest.raises(rld.Timeout) as ei:
            async with lim.acquiring(1, timeout=0.05):
                pass
        assert time.monotonic() - t < 0.03, "refused at once"
        assert ei.value.retry_after > 0.05
        with pytest.raises(rld.Denied):
            async with lim.acquiring(1, wait=False):
                pass
    asyncio.run(main())


def test_async_cancel_takes_nothing(hc):
    lim = hc.limit("tok")

    async def main():
        lim.try_acquire(1000)
        lim.refund(5)                         # 5 there, 10 asked: waits ~18 s
        task = asyncio.ensure_future(rld.limited(lim, cost=10).acquire_async())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(main())
    assert lim.peek().remaining == 5


def test_reserve_refunds_and_debits(hc):
    lim = hc.limit("tok")
    with lim.reserve(100) as r:
        assert r.charged == 100 and r.result and r.result.remaining == 900
        r.adjust(30)                            # 70 back
        assert r.charged == 30
    assert lim.peek().remaining in (970, 971)
    with lim.reserve(100) as r:
        r.adjust(250)                           # 150 more, without asking
    assert lim.peek().remaining in (720, 721)
    with lim.reserve(10) as r:
        r.adjust(50)
        r.adjust(20)                            # settles the total, again and again
    assert lim.peek().remaining in (700, 701)
    lim.refund(1000)
    with lim.reserve(100) as r:
        r.adjust(1100)                          # beyond the burst: into debt
    p = lim.peek()
    assert not p and p.retry_after > 300        # 100 tokens of debt at 1000/h
    assert "adjusted" in repr(r)


def test_reserve_and_exceptions(hc):
    lim = hc.limit("tok")
    with pytest.raises(KeyError):
        with lim.reserve(100):
            raise KeyError("before adjust: the estimate is given back")
    assert lim.peek().remaining in (1000, 999)
    with pytest.raises(KeyError):
        with lim.reserve(100, on_error="keep"):
            raise KeyError
    assert lim.peek().remaining in (900, 901)
    with pytest.raises(KeyError):
        with lim.reserve(100) as r:
            r.adjust(40)
            raise KeyError("after adjust: its figure stands")
    assert lim.peek().remaining in (860, 861)
    with lim.reserve(60) as r:
        r.cancel()
    assert lim.peek().remaining in (860, 861)
    with pytest.raises(ValueError):
        lim.reserve(10, on_error="bogus")
    with pytest.raises(ValueError):
        with lim.reserve(10) as r:
            r.adjust(-1)
    with pytest.raises(rld.Timeout):
        with lim.reserve(1000, timeout=0):
            pass


def test_reserve_async(hc):
    lim = hc.limit("tok")

    async def main():
        async with lim.reserve(200) as r:
            await asyncio.sleep(0)
            r.adjust(50)
        with pytest.raises(ZeroDivisionError):
            async with lim.reserve(300):
                1 / 0
    asyncio.run(main())
    assert lim.peek().remaining in (950, 951)


def test_reserve_refunds_to_its_window(hc):
    """A window limit: the refund goes back to the window the estimate was taken in."""
    lim = hc.limit("win")                       # 100 in any 10 s (sliding)
    with lim.reserve(80) as r:
        assert r.result.window != 0             # taken by this thread's fast path
        r.adjust(30)
    assert lim.peek().remaining == 70

    async def main():
        async with lim.reserve(40) as r:
            assert r.result.window != 0
            r.adjust(10)
    asyncio.run(main())
    assert lim.peek().remaining == 60


def test_reserve_window_not_reported(hc):
    """A wait granted by the daemon: librld does not report its window (Result.window is 0
    on a window limit; see python/README.md), so the refund cannot be placed: adjust()
    leaves the tokens charged (never too many admitted) instead of failing."""
    lim = hc.limit("winq")                      # 2 in any 200 ms
    assert lim.try_acquire(2)
    with lim.reserve(2, timeout=5) as r:        # waits ~200 ms at the daemon
        r.adjust(0)
    assert r.adjusted
    if r.result.window == 0:
        assert r.charged == 2                   # not given back: it stays counted
    else:                                       # librld reports it: given back
        assert r.charged == 0 and lim.peek().remaining == 2
