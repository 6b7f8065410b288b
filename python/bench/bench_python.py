#!/usr/bin/python3
"""bench_python: what one rate-limit check costs a Python program, in one run, one table.

Rows (every call admitted, one process, one thread, a tight loop written as a user would):
  rld try_acquire(1)                  Limit.try_acquire of this package
  rld tpl.try_acquire(key, 1)         Template.try_acquire: a keyed limit (rld_try_key: the
                                      key's bucket found by its hash, then the same take)
  rld await acquire_async(1)          Limit.acquire_async awaited in a coroutine: the fast
                                      path through asyncio (admitted, the loop untouched)
  ctypes rld_try(1)                   the same librld call through ctypes (argtypes set,
                                      result struct passed by reference, not read)
  limits FixedWindow, MemoryStorage   the `limits` library (Debian's 2.8), in-process storage
  limits FixedWindow, RedisStorage    the same with its Redis storage (loopback TCP)
  limits FixedWindow, rld:// storage  the same with this package's storage (rld.limits): a
                                      key of the template limits.fixed per limit and id
  redis-py EVALSHA token bucket       redis-py calling the token-bucket Lua script of
                                      tests/bench/peers (peers_redis.c), loopback TCP
  empty loop (floor)                  the Python loop alone, for reference

Targets (issue 12): try_acquire >= 3x faster than ctypes rld_try, >= 30x faster than each
Redis row. Each repetition runs every row for --ms milliseconds, rows in rotating order; the
table gives the median and min-max over --reps repetitions.

Then the waiters (--waiters N, 10,000): N concurrent acquire_async in one loop on a limit of
10^6/s and burst 1, put 0.3 s into debt first so that every one of them queues at the
daemon; it reports how long starting them took, how fast the completions came once the
debt was paid (the daemon is not the bottleneck at that rate: this is what one Python
process absorbs), the client's CPU time per wait, and whether they completed in FIFO order.

Needs PYTHONPATH=<build>/python and RLD_BIN=<build>/daemon/rld (it starts rld on a private
instance), and redis-server for the Redis rows (started on a private port unless
REDIS_URL names a running one). Run with /usr/bin/python3 (Debian's limits and redis).
  --reps N (5)  --ms MS (300)  --smoke (1 rep of 20 ms, 200 waiters: checks every row
  runs)  --json  --no-redis  --waiters N (0: none)
"""
import argparse
import ctypes
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import rld
import rld.limits

TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local requested = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil then tokens = capacity; ts = now end
local delta = math.max(0, now - ts)
tokens = math.min(capacity, tokens + delta * rate)
local allowed = 0
if tokens >= requested then
  tokens = tokens - requested
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate * 2))
return {allowed, math.floor(tokens)}
"""

RATE = 10 ** 9        # every call admitted, as in bench_peers
WAIT_RATE = 10 ** 6   # the waiters' limit
WAIT_DEBT = 0.3       # seconds of debt before the waiters: every one of them queues


class Private:
    """Processes this run started (rld, redis-server) and their directory; stopped at exit.
    rld's segment keeper goes by itself once the directory holding its socket is removed."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rldbench.py.")
        self.procs = []

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_rld(priv):
    rld_bin = os.environ.get("RLD_BIN")
    if not rld_bin:
        for p in os.environ.get("PYTHONPATH", "").split(os.pathsep):
            cand = os.path.join(os.path.dirname(os.path.abspath(p)), "daemon", "rld")
            if p and os.path.exists(cand):
                rld_bin = cand
    if not rld_bin:
        sys.exit("bench_python: set RLD_BIN to the rld daemon")
    inst = f"bench-py-{os.getpid()}"
    conf = os.path.join(priv.dir, "rld.conf")
    log = os.path.join(priv.dir, "rld.log")
    with open(conf, "w") as f:
        f.write(f"[limit bench]\nrate = {RATE}/s\nburst = {RATE}\n\n"
                f"[template bench.ip]\nrate = {RATE}/s\nburst = {RATE}\nmax_keys = 1000\n\n"
                f"[limit bench.q]\nrate = {WAIT_RATE}/s\nburst = 1\n\n"
                + rld.limits.TEMPLATES.replace("max_keys = 100000", "max_keys = 1000"))
    with open(log, "wb") as lf:
        priv.procs.append(subprocess.Popen(
            [rld_bin, "--foreground", "--config", conf, "--instance", inst],
            stdout=lf, stderr=lf, env=dict(os.environ, RLD_RUNTIME_DIR=priv.dir)))
    os.environ["RLD_RUNTIME_DIR"] = priv.dir    # where librld finds the instance (and ctypes)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if " ready: " in open(log).read():
            return inst
        if priv.procs[-1].poll() is not None:
            break
        time.sleep(0.01)
    sys.exit("bench_python: rld did not start:\n" + open(log).read())


def start_redis(priv):
    """A redis URL: REDIS_URL, else a private redis-server on a free loopback port."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"], None
    server = shutil.which("redis-server") or (os.path.exists("/usr/bin/redis-server")
                                              and "/usr/bin/redis-server")
    if not server:
        return None, "no redis-server"
    import redis
    for _ in range(5):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        p = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", priv.dir, "--logfile",
                              os.path.join(priv.dir, "redis.log")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
        priv.procs.append(p)
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and p.poll() is None:
            try:
                redis.Redis.from_url(url).ping()
                return url, None
            except redis.exceptions.ConnectionError:
                time.sleep(0.02)
    return None, "redis-server did not start"


def librld_path():
    """The librld the extension loaded (so ctypes calls the very same library)."""
    with open("/proc/self/maps") as f:
        for line in f:
            if "librld.so" in line:
                return line.split()[-1]
    sys.exit("bench_python: librld is not loaded")


class RldResult(ctypes.Structure):
    _fields_ = [("limit", ctypes.c_uint64), ("remaining", ctypes.c_uint64),
                ("retry_after_ns", ctypes.c_uint64), ("reset_after_ns", ctypes.c_uint64),
                ("queue_position", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("index", ctypes.c_uint32)]


class RldLimit(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_uint32), ("gen", ctypes.c_uint32)]


# Each row: a function running N calls (the loop as a user writes it), and a check.

def row_rld(inst):
    lim = rld.Client(inst).limit("bench")

    def run(n):
        for _ in range(n):
            lim.try_acquire(1)
    assert lim.try_acquire(1)
    return run


def row_rld_key(inst):
    tpl = rld.Client(inst).template("bench.ip")

    def run(n):
        for _ in range(n):
            tpl.try_acquire("203.0.113.7", 1)
    assert tpl.try_acquire("203.0.113.7", 1)
    return run


def row_rld_async(inst):
    import asyncio
    lim = rld.Client(inst).limit("bench")
    loop = asyncio.new_event_loop()

    async def many(n):
        for _ in range(n):
            await lim.acquire_async(1)

    def run(n):
        loop.run_until_complete(many(n))
    run(1)
    return run


def waiters(inst, n):
    """N concurrent acquire_async, every one queued at the daemon (see the docstring)."""
    import asyncio
    c = rld.Client(inst)
    lim = c.limit("bench.q")

    async def main():
        loop = asyncio.get_running_loop()
        order = []

        async def one(i):
            r = await lim.acquire_async(1, timeout=60)
            order.append(i)
            return r
        lim.try_acquire()
        lim.debit(int(WAIT_RATE * WAIT_DEBT))
        cpu0, t0 = time.process_time(), time.perf_counter()
        tasks = [loop.create_task(one(i)) for i in range(n)]
        await asyncio.sleep(0)            # every task has run its first step: started
        t_started = time.perf_counter()
        rs = await asyncio.gather(*tasks)
        t_done, cpu1 = time.perf_counter(), time.process_time()
        served = t_done - max(t_started, t0 + WAIT_DEBT)
        return {"waiters": n, "start_s": t_started - t0, "wall_s": t_done - t0,
                "served_s": served, "per_s": n / served if served > 0 else 0.0,
                "cpu_us_per_wait": (cpu1 - cpu0) / n * 1e6,
                "fifo": order == list(range(n)),
                "degraded": sum(1 for r in rs if r.degraded),
                "max_queue_position": max(r.queue_position for r in rs)}
    try:
        return asyncio.run(main())
    finally:
        c.close()


def row_ctypes(inst):
    lib = ctypes.CDLL(librld_path())
    lib.rld_open.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)]
    lib.rld_find.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(RldLimit)]
    lib.rld_try.argtypes = [ctypes.c_void_p, RldLimit, ctypes.c_uint64,
                            ctypes.POINTER(RldResult)]
    lib.rld_try.restype = ctypes.c_int
    c = ctypes.c_void_p()
    h = RldLimit()
    if lib.rld_open(inst.encode(), 0, ctypes.byref(c)) or \
            lib.rld_find(c, b"bench", ctypes.byref(h)):
        sys.exit("bench_python: ctypes rld_open/rld_find failed")
    res = RldResult()
    rld_try, byref = lib.rld_try, ctypes.byref

    def run(n):
        for _ in range(n):
            rld_try(c, h, 1, byref(res))
    assert rld_try(c, h, 1, byref(res)) == 0
    return run


storages = []


def _limits_row(storage):
    from limits import RateLimitItemPerSecond
    from limits.strategies import FixedWindowRateLimiter
    limiter = FixedWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(RATE)
    storages.append(storage)          # the strategy holds a weak reference only

    def run(n):
        for _ in range(n):
            limiter.hit(item, "bench")
    assert limiter.hit(item, "bench")
    return run


def row_limits_memory(_):
    from limits.storage import MemoryStorage
    return _limits_row(MemoryStorage())


def row_limits_redis(url):
    from limits.storage import storage_from_string
    return _limits_row(storage_from_string(url))


def row_limits_rld(inst):
    from limits.storage import storage_from_string
    return _limits_row(storage_from_string(f"rld://{inst}"))


def row_evalsha(url):
    import redis
    r = redis.Redis.from_url(url)
    sha = r.script_load(TOKEN_BUCKET_LUA)
    evalsha = r.evalsha

    def run(n):
        for _ in range(n):
            evalsha(sha, 1, "bench:tb", RATE, RATE, 1)
    assert evalsha(sha, 1, "bench:tb", RATE, RATE, 1)[0] == 1
    return run


def row_empty(_):
    def run(n):
        for _ in range(n):
            pass
    return run


def measure(run, ms):
    """ns per call of RUN over about MS milliseconds (calibrated chunks)."""
    n = 1
    while True:                       # calibrate: a chunk of ~1/20 of the run
        t = time.perf_counter_ns()
        run(n)
        dt = time.perf_counter_ns() - t
        if dt > ms * 1e6 / 20 or n >= 1 << 24:
            break
        n *= 4 if dt < ms * 1e6 / 200 else 2
    calls, spent = 0, 0
    while spent < ms * 1e6:
        t = time.perf_counter_ns()
        run(n)
        spent += time.perf_counter_ns() - t
        calls += n
    return spent / calls


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ms", type=float, default=300)
    ap.add_argument("--smoke", action="store_true", help="1 rep of 20 ms: every row runs")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-redis", action="store_true")
    ap.add_argument("--waiters", type=int, default=10000)
    a = ap.parse_args()
    if a.smoke:
        a.reps, a.ms, a.waiters = 1, 20, 200
    priv = Private()
    try:
        return bench(a, priv)
    finally:
        priv.close()


def bench(a, priv):
    load_before = os.getloadavg()[0]
    inst = start_rld(priv)
    url, why = (None, "--no-redis") if a.no_redis else start_redis(priv)
    rows = [("rld try_acquire(1)", row_rld, inst),
            ("rld tpl.try_acquire(key, 1)", row_rld_key, inst),
            ("rld await acquire_async(1)", row_rld_async, inst),
            ("ctypes rld_try(1)", row_ctypes, inst),
            ("limits FixedWindow, MemoryStorage", row_limits_memory, None),
            ("limits FixedWindow, RedisStorage", row_limits_redis, url),
            ("limits FixedWindow, rld:// storage", row_limits_rld, inst),
            ("redis-py EVALSHA token bucket", row_evalsha, url),
            ("empty loop (floor)", row_empty, None)]
    runs, skipped = {}, {}
    for name, make, arg in rows:
        if "Redis" in name or "redis" in name:
            if not url:
                skipped[name] = why
                continue
        runs[name] = make(arg)
    samples = {name: [] for name in runs}
    names = list(runs)
    pids = [os.getpid()] + [p.pid for p in priv.procs]
    busy0, steal0 = cpu_ticks()
    own0 = own_ticks(pids)
    wall0 = time.monotonic()
    for rep in range(a.reps):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            samples[name].append(measure(runs[name], a.ms))
    wt = waiters(inst, a.waiters) if a.waiters > 0 else None
    busy1, steal1 = cpu_ticks()
    own1 = own_ticks(pids)
    hz = os.sysconf("SC_CLK_TCK")
    capacity = (time.monotonic() - wall0) * hz * (os.cpu_count() or 1)
    others = max(0.0, (busy1 - busy0) - (own1 - own0)) / capacity
    steal = (steal1 - steal0) / capacity
    med = {n: statistics.median(s) for n, s in samples.items()}
    ref = med["rld try_acquire(1)"]
    targets = []

    def target(what, other, factor):
        if other not in med:
            targets.append(("SKIPPED", f"{what}: {skipped.get(other, 'not run')}", None, factor))
            return
        x = med[other] / ref
        targets.append(("PASS" if x >= factor else "MISS", what, x, factor))
    target("try_acquire >= 3x faster than ctypes rld_try", "ctypes rld_try(1)", 3)
    target("try_acquire >= 30x faster than limits RedisStorage",
           "limits FixedWindow, RedisStorage", 30)
    target("try_acquire >= 30x faster than redis-py EVALSHA", "redis-py EVALSHA token bucket",
           30)
    if "limits FixedWindow, RedisStorage" in med:
        x = med["limits FixedWindow, RedisStorage"] / med["limits FixedWindow, rld:// storage"]
        targets.append(("INFO", "limits on the rld:// storage vs on RedisStorage: times faster",
                        x, None))
    redis_version = None
    if url:
        import redis
        redis_version = redis.Redis.from_url(url).info("server").get("redis_version")
    import limits
    import redis as redis_py
    env = {"python": sys.version.split()[0], "executable": sys.executable,
           "cpus": os.cpu_count(), "cpu": cpu_model(), "kernel": platform.release(),
           "redis": redis_version, "limits": limits.__version__, "redis_py": redis_py.__version__,
           "reps": a.reps, "ms": a.ms, "load_before": load_before,
           "others_cpu": others, "steal": steal}
    if a.json:
        print(json.dumps({"env": env, "rows": [
            {"name": n, "unit": "ns/call", "median": med[n], "min": min(samples[n]),
             "max": max(samples[n]), "x_rld": med[n] / ref} for n in names] +
            [{"name": n, "skipped": why} for n, why in skipped.items()],
            "targets": [{"status": s, "what": w, "value": x, "limit": f}
                        for s, w, x, f in targets],
            "waiters": wt}, indent=1))
    else:
        print(f"bench_python: {a.reps} reps x {a.ms:g} ms per row; Python {env['python']} "
              f"({sys.executable}); {env['cpus']} CPUs ({env['cpu']}); Linux {env['kernel']}; "
              f"limits {env['limits']}, redis-py {env['redis_py']}, redis {redis_version}")
        print(f"load before the run {env['load_before']:.2f}; during it other processes used "
              f"{others:.1%} of the CPUs' time, steal {steal:.1%}"
              + ("  ** busy machine: figures inflated **" if others > 0.05 else ""))
        print("every call admitted; median and min-max over the reps; "
              "x rld = row / try_acquire\n")
        print(f"  {'':38} {'unit':8} {'median':>9} {'min-max':>19} {'x rld':>9}")
        for n in names:
            s = samples[n]
            print(f"  {n:38} {'ns/call':8} {fmt(med[n]):>9} "
                  f"{fmt(min(s)) + '-' + fmt(max(s)):>19} {fmt(med[n] / ref) + 'x':>9}")
        for n, why in skipped.items():
            print(f"  {n:38} skipped: {why}")
        print("\ntargets")
        for s, w, x, f in targets:
            print(f"  {s:7} {w}" + ("" if x is None else f": {fmt(x)}" if f is None
                                    else f": {fmt(x)} >= {f}"))
        if wt:
            print(f"\nwaiters: {wt['waiters']} concurrent acquire_async, one loop, limit "
                  f"{WAIT_RATE}/s burst 1 after {WAIT_DEBT:g} s of debt")
            print(f"  started in {wt['start_s'] * 1e3:.0f} ms "
                  f"({wt['start_s'] / wt['waiters'] * 1e6:.1f} us each); all done "
                  f"{wt['wall_s']:.3f} s after the first")
            print(f"  served {wt['per_s']:.0f}/s once the debt was paid; client CPU "
                  f"{wt['cpu_us_per_wait']:.1f} us per wait; FIFO order: "
                  f"{'yes' if wt['fifo'] else 'NO'}; degraded {wt['degraded']}; "
                  f"max queue_position {wt['max_queue_position']}")
    if a.smoke:
        ok = all(v > 0 for v in med.values()) and len(med) + len(skipped) == len(rows)
        ok = ok and (wt is None or wt["fifo"])
        return 0 if ok else 1
    return 0


def cpu_ticks():
    """(busy ticks of every CPU, ticks of this process and the ones it started)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = sum(v) - v[3] - v[4]                 # minus idle and iowait
    return busy, v[7] if len(v) > 7 else 0      # steal


def own_ticks(pids):
    n = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            n += int(fields[11]) + int(fields[12])    # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return n


def fmt(v):
    return f"{v:.4g}" if v < 1000 else f"{v:.0f}"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


if __name__ == "__main__":
    sys.exit(main())
