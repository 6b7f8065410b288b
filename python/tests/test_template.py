"""Keyed limits: rld.Template (a [template] of rld.conf) and rld.Key (one key's bucket, a
Limit): try_acquire per key, rate = caller, waits on keys, handles on keys in the multi
calls, a full table (rld.NoSpace, Result.overflow), reclaimed keys found again."""
import asyncio
import errno
import pickle
import time

import pytest

import rld

CONF = """
[limit plain]
rate = 10/s

[template api.ip]
rate = 10/s
burst = 5
max_keys = 1000

[template tiny]
rate = 10/s
burst = 2
max_keys = 7

[template full.allow]
rate = 1/h
max_keys = 7
overflow = allow

[template tenant]
rate = caller
max_keys = 100

[template hourly]
rate = 3/h
algorithm = fixed
max_keys = 100

[template slow.key]
rate = 4/s
burst = 1
max_keys = 100
"""


@pytest.fixture
def d(make_daemon):
    return make_daemon(CONF)


@pytest.fixture
def c(d):
    with d.client() as c:
        yield c


def wait_until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def test_find(c):
    t = c.template("api.ip")
    assert isinstance(t, rld.Template) and t.name == "api.ip" and t.client is c
    assert "api.ip" in repr(t)
    with pytest.raises(rld.NotFound):
        c.template("nope")
    with pytest.raises(rld.NotFound):
        c.template("plain")            # a [limit] is not a template
    with pytest.raises(rld.NotFound):
        c.limit("api.ip")              # nor a template a limit
    with pytest.raises(rld.InvalidArgument) as e:
        c.template("bad name")
    assert "template 'bad name'" in str(e.value) and "a name is 1 to 64 bytes" in str(e.value)
    with pytest.raises(rld.InvalidArgument):
        c.template("api.ip\0")                       # a NUL inside: not the name before it
    info = t.info()
    assert info.kind == "template" and info.max_keys == 1000 and info.keys == 0
    assert info.name == "api.ip" and info.count == 10 and info.burst == 5
    assert info.algorithm == "gcra"
    assert len(tuple(info)) == 12      # the tuple keeps its fields; the new ones by name


def test_try_acquire_per_key(c):
    t = c.template("api.ip")
    for i in range(5):
        r = t.try_acquire("203.0.113.7")
        assert r and r.remaining == 4 - i and r.limit == 5
    r = t.try_acquire("203.0.113.7")
    assert not r and 0.05 < r.retry_after <= 0.1
    assert t.try_acquire("203.0.113.8", 5), "another key: its own bucket"
    # a str is its UTF-8: the same key as those bytes
    assert t.try_acquire("é", 5)
    assert not t.try_acquire("é".encode())
    assert t.try_acquire(b"\x00\xff" * 128, 1)       # 256 arbitrary bytes
    assert t.try_acquire("x", cost=0) and t.try_acquire(key="x", cost=2).remaining == 3
    assert t.info().keys >= 5
    with pytest.raises(rld.CostTooHigh):
        t.try_acquire("y", 6)


def test_key_arguments(c):
    t = c.template("api.ip")
    for bad in ("", b"", b"x" * 257, "é" * 129):
        with pytest.raises(rld.InvalidArgument) as e:
            t.try_acquire(bad)
        assert e.value.errno == errno.EINVAL and "1 to 256 bytes" in str(e.value)
    for bad in (3, None, bytearray(b"x"), ["x"]):
        with pytest.raises(TypeError):
            t.try_acquire(bad)
    with pytest.raises(TypeError):
        t.try_acquire()
    with pytest.raises(TypeError):
        t.try_acquire("x", 1, 2)
    with pytest.raises(TypeError):
        t.try_acquire("x", nope=1)
    with pytest.raises(ValueError):
        t.try_acquire("x", -1)


def test_caller_rate(c):
    t = c.template("tenant")
    with pytest.raises(rld.InvalidArgument) as e:
        t.try_acquire("acme")                      # a new key needs its rate
    assert "rate=(count, period)" in str(e.value)
    r = t.try_acquire("acme", 5, rate=(5, 1))      # 5/s, burst 5
    assert r and r.limit == 5 and r.remaining == 0
    r = t.try_acquire("acme", 1, rate=(5, 1.0))
    assert not r and 0.15 < r.retry_after <= 0.2
    assert not t.try_acquire("acme")               # an existing key: its own rate
    k = t.key("acme", rate=(1000, 60))             # a plan change keeps the state in time
    assert k.rate == (1000, 60.0)
    assert k.info().count == 1000 and k.info().period == 60.0 and k.info().kind == "key"
    assert k.peek().limit == 1000
    with pytest.raises(rld.InvalidArgument) as e:
        c.template("api.ip").try_acquire("x", rate=(5, 1))
    assert "rate = caller" in str(e.value)
    for bad in ((0, 1), (2 ** 32, 1), (5, 0.0015), (5, 0), (5, 5e6), (5, -1)):
        with pytest.raises(rld.InvalidArgument):
            t.try_acquire("x", rate=bad)
    for bad in (5, (5,), [5, 1], (5, "1"), ("5", 1)):
        with pytest.raises(TypeError) as e:
            t.try_acquire("x", rate=bad)
        assert "rate" in str(e.value), "the message names the argument"


def test_key_handle(c):
    t = c.template("api.ip")
    k = t.key("198.51.100.1")
    assert isinstance(k, rld.Key) and isinstance(k, rld.Limit)
    assert k.name == "api.ip" and k.key == "198.51.100.1" and k.template is t and k.rate is None
    assert "198.51.100.1" in repr(k) and "api.ip" in repr(k)
    assert k.try_acquire(3).remaining == 2
    assert t.try_acquire("198.51.100.1").remaining == 1, "the same bucket"
    k.refund(2)
    assert k.peek().remaining == 3
    k.debit(10)
    p = k.peek()
    assert not p and p.retry_after > 0.5, "in debt"
    info = k.info()
    assert info.kind == "key" and info.name == "api.ip" and info.max_keys == 1000
    assert info.burst == 5 and info.keys >= 1, "its template's keys"
    # the helpers of rld.Limit
    k2 = t.key(b"198.51.100.2")
    with k2.acquiring(2) as r:
        assert r.remaining == 3
    with k2.reserve(3) as res:
        res.adjust(1)
    assert k2.peek().remaining == 2
    assert pickle.loads(pickle.dumps(k2)).peek().remaining == 2
    assert pickle.loads(pickle.dumps(t)).name == "api.ip"
    tn = c.template("tenant").key("acme", rate=(7, 2))
    assert pickle.loads(pickle.dumps(tn)).rate == (7, 2.0)
    with pytest.raises(rld.InvalidArgument):
        c.template("tenant").key("globex")          # new, and no rate


def test_multi_with_keys(c):
    t, plain = c.template("api.ip"), c.limit("plain")
    ip = t.key("192.0.2.1")
    r = c.try_acquire_multi([(ip, 5), (plain, 1)])
    assert r
    r = c.try_acquire_multi([(plain, 1), (ip, 1)])
    assert not r and r.index == 1, "the key decided"
    assert plain.peek().remaining == 9, "all or nothing"
    r = c.acquire_multi([(plain, 1), (ip, 1)], timeout=1)
    assert r and r.index in (0, 1)


def test_acquire_waits(c):
    t = c.template("slow.key")                      # 4/s, burst 1
    assert t.try_acquire("k")
    t0 = time.monotonic()
    r = t.acquire("k", timeout=2)
    assert r and 0.2 <= time.monotonic() - t0 < 1.5
    with pytest.raises(rld.Timeout) as e:
        t.acquire("k", 1, timeout=0.05)             # refused at once
    assert e.value.retry_after > 0.05
    assert "key 'k' of template 'slow.key'" in str(e.value)
    assert time.monotonic() - t0 < 1.5
    with pytest.raises(rld.CostTooHigh):
        t.acquire("k", 2)
    # rate = caller keys wait too
    tn = c.template("tenant")
    assert tn.try_acquire("w", 1, rate=(5, 1))
    assert tn.acquire("w", 4, timeout=1, rate=(5, 1))
    t0 = time.monotonic()
    assert tn.acquire("w", 1, timeout=2, rate=(5, 1))
    assert time.monotonic() - t0 >= 0.1


def test_acquire_in_threads(c):
    """Not the main thread: the blocking wait of librld with the GIL released."""
    import threading
    t = c.template("slow.key")
    assert t.try_acquire("th")
    out = []
    th = threading.Thread(target=lambda: out.append(t.acquire("th", timeout=2)))
    t0 = time.monotonic()
    th.start()
    th.join(5)
    assert out and out[0] and time.monotonic() - t0 >= 0.2


def test_acquire_async(c):
    t = c.template("slow.key")

    async def main():
        assert await t.acquire_async("a")                   # admitted at once
        t0 = time.monotonic()
        rs = await asyncio.gather(*(t.acquire_async("a", timeout=3) for _ in range(3)))
        assert all(rs) and time.monotonic() - t0 >= 0.6
        with pytest.raises(rld.Timeout) as e:
            await t.acquire_async("a", timeout=0.01)
        assert "key 'a' of template 'slow.key'" in str(e.value)
        # cancelled: takes nothing
        task = asyncio.ensure_future(t.acquire_async("a"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.35)
        assert t.key("a").peek().remaining == 1, "nothing taken by the cancelled wait"
    asyncio.run(main())


def test_full_table(c):
    """7 keys of capacity: 16 places. Keys with state fill it; a new key is refused
    (NoSpace), or admitted without a bucket (overflow = allow); an existing key works."""
    t = c.template("tiny")
    placed = 0
    for i in range(64):
        try:
            t.try_acquire(f"k{i}")
            placed += 1
        except rld.NoSpace as e:
            assert e.errno == errno.ENOSPC and isinstance(e, rld.Error)
            assert "tiny" in str(e)
    assert placed == 16
    with pytest.raises(rld.NoSpace):
        t.key("late")
    with pytest.raises(rld.NoSpace):
        t.acquire("late", timeout=1)
    assert t.try_acquire("k0").remaining == 0
    a = c.template("full.allow")
    flagged = 0
    for i in range(64):
        r = a.try_acquire(f"k{i}")
        assert r
        if r.overflow:
            flagged += 1
            assert r.limit == r.remaining == 2 ** 64 - 1 and r.headers() == {}
            assert r.flags & rld._rld.F_OVERFLOW
        else:
            assert r.remaining == 0
    assert flagged == 64 - 16
    with pytest.raises(rld.NoSpace):
        a.key("late")                                # a handle needs a bucket


def test_reclaimed_key_found_again(c):
    """A handle on a key that was reclaimed (full again and idle, its place taken by
    another key) says ESTALE in librld; a Key looks itself up again."""
    t = c.template("tiny")                            # 10/s, burst 2
    for i in range(16):
        assert t.try_acquire(f"k{i}", 2)
    old = t.key("k1")
    time.sleep(0.3)                                   # every key full again: idle
    for i in range(16):
        assert t.try_acquire(f"n{i}", 2)              # the n keys take the places
    # k1 was reclaimed; as it has no place now, finding it again is NoSpace...
    with pytest.raises(rld.NoSpace):
        old.try_acquire(1)
    time.sleep(0.3)                                   # ...until the n keys are idle
    r = old.try_acquire(1)
    assert r and r.remaining == 1, "found again: a full bucket"
    assert old.peek().remaining == 1
    # a wait on a handle that went stale finds its key again too
    k = t.key("w")
    assert k.try_acquire(2)
    time.sleep(0.3)
    for i in range(16):
        try:
            t.try_acquire(f"m{i}", 2)
        except rld.NoSpace:
            pass
    time.sleep(0.3)
    assert k.acquire(2, timeout=1)
    assert k.peek().remaining == 0


def test_reclaimed_key_upstream_calls(c):
    """penalize, sync and mode on a Key whose bucket was reclaimed look the key up again,
    as its takes do (not the template's name as a limit: that is no limit)."""
    t = c.template("tiny")                            # 10/s, burst 2
    for i in range(16):
        assert t.try_acquire(f"k{i}", 2)
    old = t.key("k1")
    time.sleep(0.3)                                   # every key full again: idle
    for i in range(16):
        assert t.try_acquire(f"n{i}", 2)              # the n keys take the places
    time.sleep(0.3)                                   # ...and are idle in turn
    assert old.mode == "enforce" and old.concurrency == 0
    old.sync(remaining=0, reset_after=0.2)
    r = old.try_acquire()
    assert not r and 0.1 < r.retry_after <= 0.2, "the sync went to the key found again"
    old2 = t.key("k2")
    time.sleep(0.3)
    for i in range(16):
        try:
            t.try_acquire(f"p{i}", 2)                 # k2 reclaimed (a place may be left)
        except rld.NoSpace:
            pass
    time.sleep(0.3)
    old2.penalize(0.2)
    assert not old2.try_acquire(), "the penalty went to the key found again"


def test_template_reload(d, c):
    t = c.template("slow.key")
    k = t.key("r")
    assert k.try_acquire()
    d.reload(CONF.replace("rate = 4/s\nburst = 1", "rate = 4/s\nburst = 3"))
    assert t.info().burst == 3 and k.peek().limit == 3, "a rate change keeps the keys"
    d.reload(CONF.replace("[template slow.key]", "[template other]"))
    with pytest.raises(rld.Deleted) as e:
        t.try_acquire("r")
    assert "slow.key" in str(e.value)
    with pytest.raises(rld.Deleted):
        k.try_acquire()
    with pytest.raises(rld.Deleted):
        t.info()
    d.reload(CONF)                                    # created again: found again by name
    assert t.try_acquire("r") and t.info().burst == 1
    assert not k.try_acquire() and k.peek().limit == 1, "the key of the new template"
