"""Flask-Limiter with storage_uri="rld://" behind gunicorn with 4 sync workers: one limit
enforced across every worker (with limits' memory storage each worker would admit its
own 10 per second). Client threads hammer the limited endpoint for a few seconds; the 200s
stay within the limit, the rest are 429s, and several workers answered."""
import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import rld.limits

requests = pytest.importorskip("requests")
pytest.importorskip("flask_limiter")

HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS, CLIENTS, SECONDS, LIMIT = 4, 6, 2.5, 10


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn(make_daemon, request):
    """Start gunicorn (4 sync workers) on the app of apps/flask_app.py with STRATEGY; yields
    its base URL once every worker is up."""
    d = make_daemon(rld.limits.TEMPLATES.replace("max_keys = 100000", "max_keys = 1000"))
    procs = []

    def start(strategy):
        port = free_port()
        log = open(os.path.join(d.dir, "gunicorn.log"), "ab")
        env = dict(os.environ, RLD_TEST_STRATEGY=strategy,
                   PYTHONPATH=os.pathsep.join([HERE + "/apps", os.environ.get("PYTHONPATH", "")]))
        p = subprocess.Popen([sys.executable, "-m", "gunicorn", "--workers", str(WORKERS),
                              "--worker-class", "sync", "--bind", f"127.0.0.1:{port}",
                              "--log-level", "warning", "flask_app:app"],
                             stdout=log, stderr=log, env=env, start_new_session=True)
        procs.append((p, log))
        url = f"http://127.0.0.1:{port}"
        pids = set()
        deadline = time.monotonic() + 30
        while len(pids) < WORKERS and time.monotonic() < deadline:
            if p.poll() is not None:
                pytest.fail("gunicorn exited:\n" + open(log.name).read())
            try:
                pids.add(int(requests.get(url + "/free", timeout=2).text))
            except requests.RequestException:
                time.sleep(0.05)
        assert len(pids) >= 1, "gunicorn did not answer:\n" + open(log.name).read()
        return url
    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for p, log in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        log.close()
        if failed:
            print(f"---- gunicorn log ({log.name}) ----\n{open(log.name).read()}")


def hammer(url):
    """CLIENTS threads GET url for SECONDS: [(status, pid, admitted-at or None)]."""
    out, stop = [], time.monotonic() + SECONDS
    lock = threading.Lock()

    def client():
        s = requests.Session()
        mine = []
        while time.monotonic() < stop:
            r = s.get(url, timeout=10)
            if r.status_code == 200:
                pid, at = r.text.split()
                mine.append((200, int(pid), float(at)))
            else:
                mine.append((r.status_code, None, None))
        with lock:
            out.extend(mine)
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out, time.monotonic() - t0


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window"])
def test_one_limit_across_workers(gunicorn, strategy):
    url = gunicorn(strategy) + "/limited"
    got, elapsed = hammer(url)
    status = collections.Counter(s for s, _, _ in got)
    ok = sorted(at for s, _, at in got if s == 200)
    pids = collections.Counter(p for s, p, _ in got if s == 200)
    detail = f"{strategy}: {dict(status)} in {elapsed:.2f} s, 200s by worker {dict(pids)}"
    print(detail)
    assert set(status) <= {200, 429}, detail
    assert status[429] > status[200], "the clients asked far more than the limit: " + detail
    # fixed windows of 1 s from their first hit: at most ceil(elapsed) + 1 of them; the
    # moving window: at most LIMIT in any second (less a millisecond for the time between
    # the admission and the view reading the clock)
    assert status[200] <= LIMIT * (int(elapsed) + 2), detail
    assert status[200] >= LIMIT * (int(elapsed) - 1), "it admits its rate: " + detail
    per = 2 * LIMIT if strategy == "fixed-window" else LIMIT
    for i in range(len(ok) - per):
        assert ok[i + per] - ok[i] >= 0.99, f"{per + 1} admitted within a second: " + detail
    assert len(pids) >= 2, "several workers admitted: " + detail
