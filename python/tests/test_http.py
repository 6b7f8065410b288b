"""rld.http: the header parsers, and the requests and httpx adapters against a fake upstream
(tests/fake_upstream.py) that enforces its own quota: fewer 429s than the same load
without them, a breaker that stops calling a failing API, a lease that caps calls in flight."""
import asyncio
import email.utils
import multiprocessing as mp
import os
import sys
import time

import pytest

import rld

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_upstream import FakeUpstream   # noqa: E402

requests = pytest.importorskip("requests")
httpx = pytest.importorskip("httpx")
import rld.http   # noqa: E402

CONF = """
[limit api]
rate = 60/s

[limit inflight]
concurrency = 2

[breaker api.breaker]
failures = 3
open_for = 300ms
"""


def test_parse_headers():
    now = 1_700_000_000.0
    assert rld.http.parse_retry_after({"Retry-After": "7"}) == 7.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert abs(rld.http.parse_retry_after({"Retry-After": date}, now=now) - 30) < 1
    assert rld.http.parse_retry_after({"Retry-After": "soon"}) is None
    assert rld.http.parse_retry_after({}) is None
    assert rld.http.parse_rate_limit({"RateLimit-Remaining": "5", "RateLimit-Reset": "12"}) == (5, 12)
    assert rld.http.parse_rate_limit({"x-ratelimit-remaining": "3",
                                      "x-ratelimit-reset": str(int(now) + 20)}, now=now) == (3, 20)
    assert rld.http.parse_rate_limit({"X-RateLimit-Remaining": "3",
                                      "X-RateLimit-Reset-After": "1.5"}) == (3, 1.5)
    assert rld.http.parse_rate_limit({"RateLimit": '"default";r=50;t=30'}) == (50, 30)
    assert rld.http.parse_rate_limit({"RateLimit": "limit=100, remaining=7, reset=9"}) == (7, 9)
    assert rld.http.parse_rate_limit({"X-RateLimit-Remaining": "3"}) is None


def _worker(mode, url, n, q):
    s = requests.Session()
    if mode == "rld":
        s.mount(url, rld.http.RequestsAdapter("api", client=rld.Client(), retries=1000,
                                              backoff=(0.01, 1.0)))
    done = 0
    while done < n:
        r = s.get(url + "/x")
        if r.status_code == 200:
            done += 1
        else:
            time.sleep(0.02)
    q.put(done)


def _run(mode, quota, procs, n):
    up = FakeUpstream(quota, 1.0)
    try:
        time.sleep(1.0 - time.time() % 1.0 + 0.01)
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        ps = [ctx.Process(target=_worker, args=(mode, up.url, n, q)) for _ in range(procs)]
        for p in ps:
            p.start()
        assert sum(q.get(timeout=30) for _ in ps) == procs * n
        for p in ps:
            p.join()
        return up.stats()["limited"]
    finally:
        up.close()


def test_requests_adapter_fewer_429s(make_daemon):
    """The same load (3 processes x 25 successful requests, an API allowing 30 a second)
    with and without the adapter: rld's limit is twice the API's quota, so it is the
    headers that keep the processes out of 429s."""
    make_daemon(CONF)
    plain = _run("plain", 30, 3, 25)
    adapted = _run("rld", 30, 3, 25)
    print(f"429s: plain {plain}, with rld.http {adapted}")
    assert plain > 10
    assert adapted * 4 <= plain


def test_httpx_transports(make_daemon):
    rc = make_daemon(CONF).client()
    up = FakeUpstream(10, 1.0)
    try:
        with httpx.Client(transport=rld.http.HTTPXTransport("api", client=rc, retries=50,
                                                            backoff=(0.01, 1.0))) as c:
            codes = [c.get(up.url + "/x").status_code for _ in range(15)]
        assert codes == [200] * 15           # the 429s were retried (and held back)

        async def main():
            t = rld.http.AsyncHTTPXTransport("api", client=rc, retries=50, backoff=(0.01, 1.0))
            async with httpx.AsyncClient(transport=t) as c:
                rs = await asyncio.gather(*[c.get(up.url + "/y") for _ in range(8)])
            return [r.status_code for r in rs], t.policy.stats
        codes, stats = asyncio.run(main())
        assert codes == [200] * 8 and stats["attempts"] >= 8
    finally:
        up.close()
        rc.close()


def test_policy_waits(make_daemon):
    """Policy.begin and begin_async wait as Limit.acquire and acquire_async do: a token that
    cannot come within the timeout is rld.Timeout at once, with the wait it would need."""
    rc = make_daemon(CONF).client()
    try:
        p = rld.http.Policy("api", client=rc, timeout=0.05, lease="inflight")
        lease = p.begin()
        assert lease is not None and lease.held
        lease.release()
        rc.limit("api").debit(120)                    # 2 s of debt at 60/s
        with pytest.raises(rld.Timeout) as e:
            p.begin()
        assert e.value.retry_after > 1.0

        async def main():
            with pytest.raises(rld.Timeout) as e:
                await p.begin_async()
            assert e.value.retry_after > 1.0 and "'api'" in str(e.value)
            p.timeout = None
            rc.limit("api").refund(200)
            lease = await p.begin_async()
            assert lease is not None and lease.held
            lease.release()
        asyncio.run(main())
    finally:
        rc.close()


def test_breaker_and_lease(make_daemon):
    rc = make_daemon(CONF).client()
    up = FakeUpstream(1000, 1.0, delay=0.05)
    try:
        s = requests.Session()
        ad = rld.http.RequestsAdapter("api", client=rc, breaker="api.breaker", lease="inflight",
                                      retries=0)
        s.mount(up.url, ad)
        # calls in flight: at most 2 (the lease), from 6 threads
        import concurrent.futures as cf
        with cf.ThreadPoolExecutor(6) as ex:
            assert all(r.status_code == 200 for r in ex.map(lambda _: s.get(up.url + "/z"), range(12)))
        assert up.stats()["max_inflight"] <= 2
        # the API fails: 3 failures open the breaker, then calls are refused without a request
        requests.get(up.url + "/fail/on")
        for _ in range(3):
            assert s.get(up.url + "/z").status_code == 503
        sent = up.stats()["failed"]
        with pytest.raises(rld.BreakerOpen):
            s.get(up.url + "/z")
        assert up.stats()["failed"] == sent
        requests.get(up.url + "/fail/off")
        time.sleep(0.35)
        assert s.get(up.url + "/z").status_code == 200      # the probe, which closes it
        assert ad.policy.breaker.state == "closed"
    finally:
        up.close()
        rc.close()
