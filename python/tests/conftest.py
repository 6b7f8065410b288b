"""Fixtures for the rld Python tests: a real `rld --foreground` on a private instance (its
own instance name, runtime directory and segment), as tests/harness.c does for the C tests.

Run by ctest (label python) with PYTHONPATH=<build>/python and RLD_BIN=<build>/daemon/rld;
by hand: PYTHONPATH=build/python RLD_BIN=build/daemon/rld /usr/bin/python3 -m pytest python/tests
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import rld

HERE = os.path.dirname(os.path.abspath(__file__))

DEFAULT_CONF = """
[limit fast]
rate  = 1000000/s
burst = 1000000

[limit slow]
rate  = 10/s
burst = 5

[limit tiny]
rate  = 2/s
burst = 1

[limit unl]
rate = unlimited
"""


def rld_bin():
    b = os.environ.get("RLD_BIN")
    if b:
        return b
    # PYTHONPATH=<build>/python: the daemon is <build>/daemon/rld
    for p in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        cand = os.path.join(os.path.dirname(os.path.abspath(p)), "daemon", "rld")
        if p and os.path.exists(cand):
            return cand
    pytest.skip("no rld binary: set RLD_BIN")


class Daemon:
    """A private rld instance and its daemon. instance, dir (runtime directory: the daemon's
    and the segment keeper's sockets), conf, log; start(), stop(), reload(text), client().
    The keeper the daemon starts exits by itself once dir is removed (within a second)."""

    def __init__(self, tag, conf_text):
        self.dir = tempfile.mkdtemp(prefix=f"rldtest.py-{tag}.")
        os.chmod(self.dir, 0o755)
        self.instance = f"t-py-{tag}-{os.getpid()}-{os.path.basename(self.dir).rsplit('.', 1)[1]}"
        self.conf = os.path.join(self.dir, "rld.conf")
        self.log = os.path.join(self.dir, "rld.log")
        self.proc = None
        self._mark = 0
        self.write_conf(conf_text)

    def write_conf(self, text):
        with open(self.conf, "w") as f:
            f.write(text)

    def log_text(self, since_mark=False):
        try:
            with open(self.log) as f:
                if since_mark:
                    f.seek(self._mark)
                return f.read()
        except FileNotFoundError:
            return ""

    def _wait_log(self, needle, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_text(since_mark=True):
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"rld exited {self.proc.returncode}:\n{self.log_text()}")
            time.sleep(0.002)
        raise RuntimeError(f"rld: no {needle!r} in {timeout} s:\n{self.log_text()}")

    def start(self, *extra):
        self._mark = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        env = dict(os.environ, RLD_RUNTIME_DIR=self.dir)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [rld_bin(), "--foreground", "--config", self.conf, "--instance", self.instance,
                 *extra], stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        self._wait_log(" ready: ")
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        rc = self.proc.wait(10)
        self.proc = None
        return rc

    def reload(self, text):
        """Rewrite the configuration and SIGHUP; returns once the daemon has reloaded."""
        self.write_conf(text)
        self._mark = os.path.getsize(self.log)
        self.proc.send_signal(signal.SIGHUP)
        self._wait_log("reloaded ")

    def client(self):
        return rld.Client(self.instance)

    def cleanup(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        if not os.environ.get("RLD_TEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    """A skip must not pass: when something was skipped (a module that is not installed,
    no root) and nothing failed, exit 77, which ctest reports as skipped
    (SKIP_RETURN_CODE, as the C tests)."""
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = tr is not None and tr.stats.get("skipped")
    if skipped and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = 77


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def make_daemon(request, monkeypatch):
    """make_daemon(conf=DEFAULT_CONF, start=True) -> Daemon, with RLD_INSTANCE and
    RLD_RUNTIME_DIR exported (forked children inherit them). Stopped and removed after the
    test; its log is printed when the test failed."""
    made = []
    tag = request.node.name.replace("test_", "")[:12].strip("_[]").replace("[", "-")
    tag = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in tag)

    def make(conf=DEFAULT_CONF, start=True):
        d = Daemon(tag, conf)
        made.append(d)
        monkeypatch.setenv("RLD_INSTANCE", d.instance)
        monkeypatch.setenv("RLD_RUNTIME_DIR", d.dir)
        if start:
            d.start()
        return d

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for d in made:
        if failed:
            print(f"---- rld log ({d.log}) ----\n{d.log_text()}")
        d.cleanup()


@pytest.fixture
def daemon(make_daemon):
    """A running daemon with DEFAULT_CONF."""
    return make_daemon()


@pytest.fixture
def client(daemon):
    with daemon.client() as c:
        yield c
