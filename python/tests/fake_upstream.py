"""A fake upstream API for rld's HTTP adapters: a small local HTTP server that enforces its
own quota (QUOTA requests per WINDOW seconds, fixed wall-clock windows, as GitHub's and many
APIs' are) and says so in every response:

    200  X-RateLimit-Limit/-Remaining/-Reset (epoch seconds), RateLimit-Limit/-Remaining/
         -Reset (seconds), RateLimit: "default";r=R;t=T
    429  the same, and Retry-After (whole seconds, rounded up, as HTTP says)
    503  while failing (GET /fail/on, /fail/off), with no headers: for breakers

/stats returns its counts as JSON (ok, limited, failed, in-flight now and at most), /reset
clears them. Each request may take DELAY seconds (``?delay=`` or the server's default), to
measure in-flight limits. Used by python/tests/test_http.py and the 429 comparison
python/bench/bench_upstream.py; run it alone with ``python3 fake_upstream.py QUOTA WINDOW``.
"""
from __future__ import annotations

import json
import math
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class State:
    def __init__(self, quota: int, window: float, delay: float = 0.0) -> None:
        self.quota = quota
        self.window = window
        self.delay = delay
        self.lock = threading.Lock()
        self.failing = False
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.win_index = -1
            self.used = 0
            self.ok = self.limited = self.failed = 0
            self.inflight = self.max_inflight = 0

    def take(self) -> tuple:
        """(allowed, remaining, reset_at epoch seconds)"""
        now = time.time()
        idx = int(now // self.window)
        with self.lock:
            if idx != self.win_index:
                self.win_index, self.used = idx, 0
            allowed = self.used < self.quota
            if allowed:
                self.used += 1
                self.ok += 1
            else:
                self.limited += 1
            return allowed, self.quota - self.used, (idx + 1) * self.window


def make_handler(st: State):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):           # quiet
            pass

        def _send(self, code: int, body: bytes, headers: dict) -> None:
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            u = urlparse(self.path)
            if u.path == "/stats":
                with st.lock:
                    d = {"ok": st.ok, "limited": st.limited, "failed": st.failed,
                         "inflight": st.inflight, "max_inflight": st.max_inflight}
                return self._send(200, json.dumps(d).encode(), {})
            if u.path == "/reset":
                st.reset()
                return self._send(200, b"{}", {})
            if u.path in ("/fail/on", "/fail/off"):
                st.failing = u.path.endswith("on")
                return self._send(200, b"{}", {})
            q = parse_qs(u.query)
            delay = float(q.get("delay", [st.delay])[0])
            with st.lock:
                st.inflight += 1
                st.max_inflight = max(st.max_inflight, st.inflight)
            done = False

            def served():
                # out of flight once answered, before the answer is written: the client
                # can only send its next request after reading this one's
                nonlocal done
                if not done:
                    done = True
                    with st.lock:
                        st.inflight -= 1
            try:
                if delay:
                    time.sleep(delay)
                if st.failing:
                    with st.lock:
                        st.failed += 1
                    served()
                    return self._send(503, b'{"error": "down"}', {})
                allowed, remaining, reset_at = st.take()
                served()
                now = time.time()
                left = max(0.0, reset_at - now)
                h = {
                    "X-RateLimit-Limit": str(st.quota),
                    "X-RateLimit-Remaining": str(remaining),
                    "X-RateLimit-Reset": str(int(math.ceil(reset_at))),
                    "RateLimit-Limit": str(st.quota),
                    "RateLimit-Remaining": str(remaining),
                    "RateLimit-Reset": str(int(math.ceil(left))),
                }
                if allowed:
                    return self._send(200, b'{"ok": true}', h)
                h["Retry-After"] = str(max(1, int(math.ceil(left))))
                return self._send(429, b'{"error": "rate limited"}', h)
            finally:
                served()

    return H


class FakeUpstream:
    """FakeUpstream(quota, window, delay=0): serving on 127.0.0.1:port in a thread."""

    def __init__(self, quota: int, window: float, delay: float = 0.0) -> None:
        self.state = State(quota, window, delay)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stats(self) -> dict:
        st = self.state
        with st.lock:
            return {"ok": st.ok, "limited": st.limited, "failed": st.failed,
                    "max_inflight": st.max_inflight}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    quota = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    window = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    f = FakeUpstream(quota, window)
    print(f.url, flush=True)
    try:
        f.thread.join()
    except KeyboardInterrupt:
        f.close()
