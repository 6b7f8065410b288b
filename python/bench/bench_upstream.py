#!/usr/bin/python3
"""429s against a fake upstream, with and without rld's adapters (issue 15).

The fake API (python/tests/fake_upstream.py) allows QUOTA requests per WINDOW-second wall
clock window and says so in headers. PROCS worker processes each need REQS successful
requests; every client retries a 429 until it succeeds. Rows:

  plain          requests, a 429 retried after 50 ms (what a loop does without a limiter)
  retry-after    requests, a 429 retried after its Retry-After, each process on its own
  rld            rld.http.RequestsAdapter on a limit TWICE the API's quota: the headers
                 (Retry-After -> rld_penalize, X-RateLimit-* -> rld_sync) correct it for
                 every process at once
  rld-matched    the same with the limit at the API's quota

Prints one line per row: 429s served, successes, seconds. Needs requests and an rld binary
(RLD_BIN, else ../build/daemon/rld beside PYTHONPATH). --smoke: a small, quick run.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import requests                                     # noqa: E402

import rld                                          # noqa: E402
import rld.http                                     # noqa: E402
from fake_upstream import FakeUpstream               # noqa: E402


def rld_bin() -> str:
    b = os.environ.get("RLD_BIN")
    if b:
        return b
    for p in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        cand = os.path.join(os.path.dirname(os.path.abspath(p)), "daemon", "rld")
        if p and os.path.exists(cand):
            return cand
    sys.exit("bench_upstream: no rld binary (set RLD_BIN)")


def worker(mode: str, url: str, reqs: int, q) -> None:
    s = requests.Session()
    if mode.startswith("rld"):
        s.mount(url, rld.http.RequestsAdapter("api" if mode == "rld" else "api.matched",
                                              retries=10000, backoff=(0.01, 2.0)))
    done = 0
    while done < reqs:
        r = s.get(url + "/item")
        if r.status_code == 200:
            done += 1
            continue
        if mode == "plain":
            time.sleep(0.05)
        elif mode == "retry-after":
            time.sleep(float(r.headers.get("Retry-After", "1")))
    q.put(done)


def run(mode: str, procs: int, reqs: int, quota: int, window: float) -> tuple:
    up = FakeUpstream(quota, window)
    try:
        # start at a window boundary, so that every row meets the same windows
        time.sleep(window - (time.time() % window) + 0.01)
        q = mp.Queue()
        ps = [mp.Process(target=worker, args=(mode, up.url, reqs, q)) for _ in range(procs)]
        t0 = time.monotonic()
        for p in ps:
            p.start()
        got = sum(q.get() for _ in ps)
        for p in ps:
            p.join()
        took = time.monotonic() - t0
        st = up.stats()
        return st["limited"], got, took
    finally:
        up.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--reqs", type=int, default=60, help="successful requests per process")
    ap.add_argument("--quota", type=int, default=40)
    ap.add_argument("--window", type=float, default=1.0)
    ap.add_argument("--rows", default="plain,retry-after,rld,rld-matched")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    if a.smoke:
        a.procs, a.reqs, a.quota = 2, 10, 20
    d = tempfile.mkdtemp(prefix="rld-bench-upstream.")
    os.chmod(d, 0o755)
    inst = f"bench-upstream-{os.getpid()}"
    conf = os.path.join(d, "rld.conf")
    with open(conf, "w") as f:
        f.write(f"[limit api]\nrate = {2 * a.quota}/{int(a.window * 1000)}ms\n\n"
                f"[limit api.matched]\nrate = {a.quota}/{int(a.window * 1000)}ms\n")
    os.environ["RLD_INSTANCE"] = inst
    os.environ["RLD_RUNTIME_DIR"] = d
    log = open(os.path.join(d, "rld.log"), "w")
    daemon = subprocess.Popen([rld_bin(), "--foreground", "--config", conf, "--instance", inst],
                              stdout=log, stderr=log)
    try:
        for _ in range(500):
            if os.path.exists(os.path.join(d, inst + ".sock")):
                break
            time.sleep(0.01)
        time.sleep(0.1)
        print(f"fake API: {a.quota} per {a.window:g} s window; {a.procs} processes x "
              f"{a.reqs} successful requests each ({a.procs * a.reqs} in all)")
        print(f"{'row':<12} {'429s':>6} {'successes':>9} {'seconds':>8}")
        for mode in a.rows.split(","):
            limited, got, took = run(mode, a.procs, a.reqs, a.quota, a.window)
            print(f"{mode:<12} {limited:>6} {got:>9} {took:>8.2f}", flush=True)
    finally:
        daemon.terminate()
        daemon.wait(10)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    mp.set_start_method("fork")
    main()
