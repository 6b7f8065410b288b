"""Limit.acquire: waits at the daemon with the GIL released, refuses at once what cannot fit
in time, handles signals in the main thread (Ctrl-C: KeyboardInterrupt at once, the place
given up, nothing taken), degrades when the daemon is gone."""
import errno
import os
import signal
import threading
import time

import pytest

import rld
from rld import _waits

CONF = """
[limit w]
rate  = 20/s
burst = 1

[limit q]
rate  = 4/s
burst = 1

[limit ten]
rate  = 100/s
burst = 10

[limit fast]
rate = 1000000/s
"""


@pytest.fixture
def wd(make_daemon):
    return make_daemon(CONF)


@pytest.fixture
def wc(wd):
    with wd.client() as c:
        yield c


def test_acquire_at_once(wc):
    t = time.monotonic()
    r = wc.limit("fast").acquire(5)
    assert r and r.admitted and r.queue_position == 0 and not r.degraded
    assert time.monotonic() - t < 0.05


def test_acquire_waits_its_turn(wc):
    lim = wc.limit("w")                     # one token per 50 ms
    assert lim.try_acquire()
    t = time.monotonic()
    r = lim.acquire()
    waited = time.monotonic() - t
    assert r and not r.degraded
    assert 0.03 < waited < 0.5


def test_timeout_refused_at_once(wc):
    lim = wc.limit("q")                     # one token per 250 ms
    assert lim.try_acquire()
    for timeout in (0, 0.1):
        t = time.monotonic()
        with pytest.raises(rld.Timeout) as ei:
            lim.acquire(1, timeout=timeout)
        assert time.monotonic() - t < 0.05, "refused without waiting"
        e = ei.value
        assert isinstance(e, TimeoutError) and e.errno == 110
        assert 0.1 < e.retry_after <= 0.25 and e.result is not None and not e.result
        assert e.result.retry_after == e.retry_after
    assert lim.acquire(1, timeout=1.0)        # but it fits in a second


def test_argument_checks(wc):
    lim = wc.limit("w")
    with pytest.raises(rld.InvalidArgument):
        lim.acquire(1, priority=8)
    with pytest.raises(rld.InvalidArgument) as ei:
        lim.acquire(1, priority=-1)
    # an rld.Error as librld's are: its errno set, the message saying what is allowed
    assert ei.value.errno == errno.EINVAL and "priority must be 0 to 7" in str(ei.value)
    with pytest.raises(ValueError):
        lim.acquire(1, timeout=-1)
    with pytest.raises(ValueError):
        lim.acquire(1, timeout=float("nan"))
    with pytest.raises(TypeError):
        lim.acquire(1, timeout="1")
    with pytest.raises(rld.CostTooHigh):
        lim.acquire(2)
    assert lim.acquire(cost=1, timeout=None, priority=rld.PRIORITY_MAX, barge=True)
    assert lim.acquire(0)


def _count_while(fn):
    """Run FN in this thread while another thread counts in Python; the count proves the
    GIL was released during FN."""
    stop = threading.Event()
    n = [0]

    def counter():
        while not stop.is_set():
            n[0] += 1
    t = threading.Thread(target=counter)
    t.start()
    try:
        fn()
    finally:
        stop.set()
        t.join()
    return n[0]


def test_gil_released_main_thread(wc):
    lim = wc.limit("q")
    lim.try_acquire()
    assert _count_while(lambda: lim.acquire()) > 1000


def test_gil_released_other_thread(wc):
    lim = wc.limit("q")
    lim.try_acquire()
    out = []
    t = threading.Thread(target=lambda: out.append(lim.acquire()))
    n = 0
    t.start()
    while t.is_alive():
        n += 1
    t.join()
    assert out and out[0] and n > 1000


def test_fifo_across_threads(wc):
    lim = wc.limit("w")
    lim.try_acquire()
    done = []
    lock = threading.Lock()

    def waiter(i):
        lim.acquire()
        with lock:
            done.append(i)
    threads = []
    for i in range(5):
        t = threading.Thread(target=waiter, args=(i,))
        t.start()
        threads.append(t)
        time.sleep(0.01)       # queued in this order (a grant takes 50 ms)
    for t in threads:
        t.join()
    assert done == list(range(5))


def test_ctrl_c_interrupts_and_takes_nothing(wc):
    lim = wc.limit("q")                 # the wait would last 250 ms
    assert lim.try_acquire()
    threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        lim.acquire()
    assert time.monotonic() - t0 < 0.2, "interrupted at once, not when the grant came"
    # The interrupted wait was cancelled at the daemon: at 400 ms the bucket is full again
    # (had it been served at 250 ms it would hold 0.6 of a token).
    time.sleep(max(0.0, t0 + 0.4 - time.monotonic()))
    p = lim.peek()
    assert p.remaining == 1, p
    assert p.queue_position == 0, "nobody left queued"
    assert lim.try_acquire()


def test_ctrl_c_gives_the_place_up(wc):
    """The callers behind an interrupted wait move up at once."""
    lim = wc.limit("q")                 # one token per 250 ms
    assert lim.try_acquire()
    t0 = time.monotonic()
    served = []

    def behind():
        lim.acquire()                   # another thread: queued behind the main thread
        served.append(time.monotonic() - t0)
    t = threading.Timer(0.03, behind)
    t.start()
    threading.Timer(0.08, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        lim.acquire()
    t.join(5)
    assert served and served[0] < 0.4, served     # at 250 ms, not 500


def test_ctrl_c_after_the_grant_gives_it_back(wc, monkeypatch):
    """KeyboardInterrupt once the grant was collected, before acquire returned: the tokens
    go back."""
    lim = wc.limit("ten")               # 100/s, burst 10
    block = _waits._Router.block

    def interrupted(self, *a):
        block(self, *a)
        raise KeyboardInterrupt
    monkeypatch.setattr(_waits._Router, "block", interrupted)
    assert lim.try_acquire(10)          # empty: 10 more in 100 ms
    with pytest.raises(KeyboardInterrupt):
        lim.acquire(10)
    p = lim.peek()
    assert p.remaining >= 9, p          # granted at ~100 ms and given back


def test_signal_handler_that_does_not_raise(wc):
    lim = wc.limit("q")
    assert lim.try_acquire()
    seen = []
    old = signal.signal(signal.SIGUSR1, lambda *a: seen.append(time.monotonic()))
    try:
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        t0 = time.monotonic()
        r = lim.acquire()
        end = time.monotonic()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert r and end - t0 > 0.15
    assert len(seen) == 1 and seen[0] < end - 0.1, "the handler ran during the wait"


def test_close_while_waiting(wc):
    lim = wc.limit("q")
    lim.try_acquire()
    out = []
    t = threading.Thread(target=lambda: out.append(lim.acquire()))
    t.start()
    time.sleep(0.05)
    wc.close()                          # the wait keeps its librld client until it ends
    t.join()
    assert out and out[0]
    with pytest.raises(rld.Error):
        lim.try_acquire()


def test_deleted_while_waiting(wd, wc):
    lim = wc.limit("q")
    lim.try_acquire()
    lim.debit(4)                        # a second and a quarter to wait
    out = []

    def waiter():
        try:
            lim.acquire()
        except rld.Error as e:
            out.append(e)
    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.1)
    wd.reload("[limit fast]\nrate = 10/s\n")
    t.join(5)
    assert not t.is_alive()
    assert out and isinstance(out[0], rld.Deleted), out


def test_degraded_without_daemon(wd, wc):
    lim = wc.limit("w")
    wd.stop()
    lim.try_acquire()
    t = time.monotonic()
    r = lim.acquire()
    assert r and r.degraded
    assert "degraded" in repr(r)
    assert 0.02 < time.monotonic() - t < 0.5
    with pytest.raises(rld.Timeout):
        lim.acquire(1, timeout=0.001)
