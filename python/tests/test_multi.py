"""Client.try_acquire_multi, acquire_multi and acquire_multi_async: all or nothing over
several limits (one request token and N model tokens), Result.index naming the charge that
decided, errors naming its limit."""
import asyncio
import errno
import os
import signal
import threading
import time

import pytest

import rld

CONF = """
[limit req]
rate  = 10/s
burst = 2

[limit tok]
rate  = 10000/s
burst = 1000

[limit slow]
rate  = 4/s
burst = 1

[limit hour]
rate  = 1000/h
burst = 1000
"""


@pytest.fixture
def md(make_daemon):
    return make_daemon(CONF)


@pytest.fixture
def mc(md):
    with md.client() as c:
        yield c


def test_try_acquire_multi(mc):
    req, tok = mc.limit("req"), mc.limit("tok")
    r = mc.try_acquire_multi([(req, 1), (tok, 500)])
    assert r and r.admitted
    # the tightest charge decides: req has 1 of 2 left (50%), tok 500 of 1000 (50%) or a
    # little more (it refilled meanwhile): either way its figures are that charge's
    assert r.index in (0, 1) and r.limit == (2, 1000)[r.index]
    r = mc.try_acquire_multi(((req, 1), (tok, 900)))     # tok cannot: nothing taken
    assert not r and r.index == 1 and r.retry_after > 0
    assert req.peek().remaining == 1
    r = mc.try_acquire_multi([[req, 1], [tok, 1]])
    assert r
    r = mc.try_acquire_multi([(req, 1), (tok, 1)])       # req is empty now
    assert not r and r.index == 0 and 0 < r.retry_after <= 0.1
    assert tok.peek().remaining >= 498


def test_argument_errors(mc):
    req, tok = mc.limit("req"), mc.limit("tok")
    with pytest.raises(rld.CostTooHigh) as ei:
        mc.try_acquire_multi([(req, 1), (tok, 1001)])
    assert "'tok'" in str(ei.value)
    with pytest.raises(rld.InvalidArgument) as ei:
        mc.try_acquire_multi([])
    assert ei.value.errno == errno.EINVAL and "1 to 64 charges" in str(ei.value)
    with pytest.raises(rld.InvalidArgument):
        mc.try_acquire_multi([(tok, 1)] * 65)
    with pytest.raises(TypeError):
        mc.try_acquire_multi([(req,)])
    with pytest.raises(TypeError):
        mc.try_acquire_multi([("req", 1)])
    with pytest.raises(TypeError):
        mc.try_acquire_multi(req)
    with pytest.raises(ValueError):
        mc.try_acquire_multi([(req, -1)])
    with rld.Client(mc.instance) as other:
        with pytest.raises(ValueError):
            mc.try_acquire_multi([(req, 1), (other.limit("tok"), 1)])
    with pytest.raises(TypeError):
        mc.acquire_multi()
    with pytest.raises(rld.InvalidArgument):
        mc.acquire_multi([(req, 1)], priority=9)
    with pytest.raises(TypeError):
        mc.acquire_multi_async([(req, 1)], bogus=1)
    assert mc.try_acquire_multi([(tok, 1)] * 64)         # 64 charges, one limit


def test_acquire_multi_waits_for_all(mc):
    req, tok = mc.limit("req"), mc.limit("tok")
    assert req.try_acquire(2)                            # req empty: 100 ms to the next
    t = time.monotonic()
    r = mc.acquire_multi([(req, 1), (tok, 500)], timeout=2)
    waited = time.monotonic() - t
    assert r and not r.degraded and 0.05 < waited < 0.5
    assert tok.peek().remaining <= 600                   # both were taken


def test_acquire_multi_timeout_names_the_charge(mc):
    req, slow = mc.limit("req"), mc.limit("slow")
    assert slow.try_acquire()
    t = time.monotonic()
    with pytest.raises(rld.Timeout) as ei:
        mc.acquire_multi([(req, 1), (slow, 1)], timeout=0.1)
    assert time.monotonic() - t < 0.05, "refused at once"
    e = ei.value
    assert e.result.index == 1 and "'slow'" in str(e) and 0.1 < e.retry_after <= 0.25
    assert req.peek().remaining == 2, "nothing taken"


def test_acquire_multi_in_a_thread(mc):
    req, tok = mc.limit("req"), mc.limit("tok")
    assert req.try_acquire(2)
    out = []
    t = threading.Thread(target=lambda: out.append(mc.acquire_multi([(req, 1), (tok, 10)])))
    n = 0
    t.start()
    while t.is_alive():
        n += 1                                           # the GIL is released
    t.join()
    assert out and out[0] and n > 1000


def test_acquire_multi_ctrl_c(mc):
    req, slow = mc.limit("req"), mc.limit("slow")
    assert slow.try_acquire()
    threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        mc.acquire_multi([(req, 1), (slow, 1)])
    assert time.monotonic() - t0 < 0.2
    time.sleep(max(0.0, t0 + 0.4 - time.monotonic()))
    assert req.peek().remaining == 2 and slow.peek().remaining == 1, "nothing taken"


def test_acquire_multi_async(mc):
    req, tok = mc.limit("req"), mc.limit("tok")

    async def main():
        r = await mc.acquire_multi_async([(req, 1), (tok, 100)])
        assert r and r.queue_position == 0               # the fast path
        assert mc._router is None
        assert req.try_acquire()                         # empty now
        order = []

        async def one(i):
            r = await mc.acquire_multi_async([(req, 1), (tok, 100)], timeout=5)
            order.append(i)
            return r
        t0 = time.monotonic()
        rs = await asyncio.gather(*(one(i) for i in range(4)))
        took = time.monotonic() - t0
        assert order == [0, 1, 2, 3] and all(rs) and not any(r.degraded for r in rs)
        assert 0.3 < took < 1.5                          # 4 request tokens at 10/s
        with pytest.raises(rld.Timeout) as ei:
            await mc.acquire_multi_async([(tok, 1), (req, 2)], timeout=0.05)
        assert ei.value.result.index == 1
    asyncio.run(main())


def test_acquire_multi_async_cancel_takes_nothing(mc):
    req, hour = mc.limit("req"), mc.limit("hour")

    async def main():
        assert hour.try_acquire(1000)                    # hour: ~3.6 s per token
        tasks = [asyncio.ensure_future(mc.acquire_multi_async([(req, 1), (hour, 1)]))
                 for _ in range(3)]
        await asyncio.sleep(0.05)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert all(t.cancelled() for t in tasks)
    asyncio.run(main())
    end = time.monotonic() + 2
    while req.info().waiters and time.monotonic() < end:
        time.sleep(0.01)
    assert req.info().waiters == 0 and hour.info().waiters == 0
    assert req.peek().remaining == 2, "the request tokens were never taken"
    assert req.try_acquire(2)


def test_all_or_nothing_while_waiting(mc):
    """A set waiting for one limit does not hold the other's tokens meanwhile."""
    req, slow = mc.limit("req"), mc.limit("slow")
    assert slow.try_acquire()
    out = []
    t = threading.Thread(target=lambda: out.append(mc.acquire_multi([(req, 2), (slow, 1)])))
    t.start()
    time.sleep(0.1)
    assert req.peek().remaining == 2                    # untouched while the set waits
    t.join(5)
    assert out and out[0]
    assert req.peek().remaining == 0


def test_deleted_while_waiting(md, mc):
    req, slow = mc.limit("req"), mc.limit("slow")
    assert slow.try_acquire()
    slow.debit(4)
    out = []

    def waiter():
        try:
            mc.acquire_multi([(req, 1), (slow, 1)])
        except rld.Error as e:
            out.append(e)
    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.1)
    md.reload("[limit req]\nrate = 10/s\nburst = 2\n")
    t.join(5)
    assert not t.is_alive()
    assert out and isinstance(out[0], rld.Deleted) and "'slow'" in str(out[0]), out
