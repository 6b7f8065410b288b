"""rld.Client, Limit lookup, the package surface, and every error code as an exception."""
import errno
import fcntl
import os
import pickle
import pydoc
import socket
import struct
import threading
import time

import pytest

import rld


def test_surface_and_help():
    assert rld.__version__ == "0.1.0"
    assert rld.librld_version == 100
    for name in rld.__all__:
        assert hasattr(rld, name), name
    text = pydoc.render_doc(rld, renderer=pydoc.plaintext)
    for needle in ("try_acquire", "acquire", "limited", "Reservation", "NotFound", "Timeout"):
        assert needle in text
    assert "Take COST tokens if they fit now" in rld.Limit.try_acquire.__doc__
    assert "GIL released" in rld.Limit.acquire.__doc__
    assert rld.Result.__doc__ and rld.Info.__doc__ and rld.Client.__doc__


def test_default_instance_from_env(daemon):
    c = rld.Client()
    assert c.instance == daemon.instance
    assert c.limit("slow").name == "slow"
    c.close()


def test_named_instance_and_repr(daemon, monkeypatch):
    monkeypatch.setenv("RLD_INSTANCE", "some-other")
    with rld.Client(daemon.instance) as c:
        assert repr(c) == f"<rld.Client instance='{daemon.instance}'>"
        lim = c.limit("slow")
        assert repr(lim) == f"<rld.Limit 'slow' instance='{daemon.instance}'>"
        assert lim.client is c
        assert isinstance(lim, rld.Limit)
    assert c.closed
    assert repr(c).endswith(" closed>")


def test_default_is_the_default_instance(monkeypatch):
    monkeypatch.delenv("RLD_INSTANCE", raising=False)
    try:
        c = rld.Client()
    except rld.NotFound as e:
        assert "'default'" in str(e)
    else:
        assert c.instance == "default"


def test_no_instance():
    with pytest.raises(rld.NotFound) as ei:
        rld.Client("t-py-no-such-instance")
    e = ei.value
    assert isinstance(e, LookupError) and isinstance(e, OSError)
    assert e.errno == errno.ENOENT
    assert "t-py-no-such-instance" in str(e) and "is rld running?" in str(e)


def test_bad_instance_names():
    with pytest.raises(rld.InvalidArgument):
        rld.Client("bad/name")
    with pytest.raises(TypeError):
        rld.Client(42)


def test_limit_lookup_errors(client):
    with pytest.raises(rld.NotFound) as ei:
        client.limit("nope")
    assert ei.value.errno == errno.ENOENT and "'nope'" in str(ei.value)
    for bad in ("", "has space", "x" * 65, "nul\0inside"):
        with pytest.raises(rld.InvalidArgument) as ei:
            client.limit(bad)
        assert isinstance(ei.value, ValueError) and ei.value.errno == errno.EINVAL
        assert "a name is 1 to 64 bytes of A-Z a-z 0-9" in str(ei.value), "says what a name is"
    with pytest.raises(TypeError):
        client.limit(b"slow")


def test_closed_client(daemon):
    c = daemon.client()
    lim = c.limit("slow")
    c.close()
    c.close()   # idempotent
    for call in (lim.try_acquire, lim.peek, lim.info, lambda: lim.acquire(1),
                 lambda: lim.refund(1), lambda: c.limit("slow")):
        with pytest.raises(rld.Error) as ei:
            call()
        assert ei.value.errno == errno.EBADF and "closed" in str(ei.value)
        assert "open another" in str(ei.value), "says what to do"
    with pytest.raises(rld.Error):
        with c:
            pass


def test_limit_keeps_client_alive(daemon):
    lim = daemon.client().limit("slow")   # the Client object is only referenced by lim
    assert lim.try_acquire()


def test_pickle(client):
    lim = client.limit("slow")
    lim2 = pickle.loads(pickle.dumps(lim))
    assert lim2.name == "slow" and lim2.client.instance == client.instance
    assert lim2.client is not client
    r = lim.try_acquire()
    r2 = pickle.loads(pickle.dumps(r))
    assert (bool(r2), r2.remaining, r2.limit, r2.reset_after_ns) == \
        (bool(r), r.remaining, r.limit, r.reset_after_ns)


CODES = [
    (errno.EAGAIN, rld.Denied, ()),
    (errno.ENOENT, rld.NotFound, (LookupError,)),
    (errno.ESTALE, rld.Deleted, (rld.NotFound, LookupError)),
    (errno.E2BIG, rld.CostTooHigh, (ValueError,)),
    (errno.EINVAL, rld.InvalidArgument, (ValueError,)),
    (errno.ENAMETOOLONG, rld.InvalidArgument, (ValueError,)),
    (errno.ERANGE, rld.DebtOverflow, (OverflowError,)),
    (errno.EACCES, rld.PermissionDenied, (PermissionError,)),
    (errno.ENOMEM, rld.OutOfMemory, (MemoryError,)),
    (errno.ETIMEDOUT, rld.Timeout, (TimeoutError,)),
    (rld.EABI, rld.ABIMismatch, ()),
    (rld.ECORRUPT, rld.Corrupt, ()),
    (rld.ECLOCK, rld.ClockMismatch, ()),
    (errno.ECONNREFUSED, rld.Error, ()),
]


@pytest.mark.parametrize("code,cls,bases", CODES, ids=[c[1].__name__ + str(c[0]) for c in CODES])
def test_every_code_is_an_exception(code, cls, bases):
    e = rld._rld._error(-code, "detail")
    assert type(e) is cls
    assert isinstance(e, rld.Error) and isinstance(e, OSError)
    for b in bases:
        assert isinstance(e, b)
    assert e.errno == code
    assert e.strerror == "detail: " + rld.strerror(code)
    assert rld.strerror(code) == rld.strerror(-code)
    assert e.result is None and e.retry_after is None
    assert type(e).__module__ == "rld" and type(e).__doc__
    # the positive form is accepted too
    assert type(rld._rld._error(code)) is cls


def test_abi_constants():
    assert (rld.EABI, rld.ECORRUPT, rld.ECLOCK) == (1001, 1002, 1003)
    assert "time namespace" in rld.strerror(rld.ECLOCK)
    assert "incompatible" in rld.strerror(rld.EABI)
    assert "damaged" in rld.strerror(rld.ECORRUPT)


# The segment comes from the instance's keeper: a sealed memfd handed out on
# <runtime>/<instance>.seg with this header (common/handout.h, rldi_handout).
HANDOUT = struct.Struct("<8sIIQQIHH")   # magic, version, keeper pid, its CLOCK_MONOTONIC,
                                        # size, slot count, ABI major, reserved


def fetch_segment(daemon):
    """The real keeper's handout fields and a copy of the segment's bytes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.connect(os.path.join(daemon.dir, daemon.instance + ".seg"))
        msg, fds, _, _ = socket.recv_fds(s, HANDOUT.size + 1, 1)
    magic, version, _, _, size, slots, abi, _ = HANDOUT.unpack(msg)
    assert magic == b"RLDSEG01" and len(fds) == 1
    try:
        data = bytearray(os.pread(fds[0], size, 0))
    finally:
        os.close(fds[0])
    return {"version": version, "slots": slots, "abi": abi}, data


class FakeKeeper:
    """A keeper of the test's own making for instance NAME in DIR: it hands DATA out in a
    memfd (sealed or not) announced with SLOTS, ABI and a clock SKEW_NS off ours."""

    def __init__(self, dirpath, name, data, version, slots, abi, sealed=True, skew_ns=0):
        self.fd = os.memfd_create("fake", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
        os.ftruncate(self.fd, len(data))
        os.pwrite(self.fd, bytes(data), 0)
        if sealed:
            fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS,
                        fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
        self.head = (version, slots, abi, skew_ns, len(data))
        self.path = os.path.join(dirpath, name + ".seg")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.sock.settimeout(0.02)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve)
        self.thread.start()

    def _serve(self):
        version, slots, abi, skew_ns, size = self.head
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            with c:
                h = HANDOUT.pack(b"RLDSEG01", version, os.getpid(),
                                 time.monotonic_ns() + skew_ns, size, slots, abi, 0)
                socket.send_fds(c, [h], [self.fd])

    def stop(self):
        self.stopping = True
        self.thread.join()
        self.sock.close()
        os.unlink(self.path)
        os.close(self.fd)


def _open_fake(daemon, name, data, head, **kw):
    k = FakeKeeper(daemon.dir, name, data, head["version"], head["slots"], head["abi"], **kw)
    try:
        rld.Client(name).close()
        return None
    except rld.Error as e:
        return e
    finally:
        k.stop()


def test_bad_segments(daemon):
    """Damaged or foreign segments, as a keeper could hand them out: each refused by name."""
    head, data = fetch_segment(daemon)
    name = daemon.instance + "-fake"
    assert _open_fake(daemon, name, data, head) is None          # the copy itself is fine
    cases = [
        ("another rld's keeper", rld.ABIMismatch, rld.EABI, data,
         dict(head, abi=head["abi"] + 1), {}),
        ("not sealed", rld.Corrupt, rld.ECORRUPT, data, head, {"sealed": False}),
        ("another time namespace", rld.ClockMismatch, rld.ECLOCK, data, head,
         {"skew_ns": 10 ** 10}),
    ]
    for what, off, fmt, value, exc, code in [
            ("header of another ABI", 8, "<H", head["abi"] + 1, rld.ABIMismatch, rld.EABI),
            ("bad magic", 0, "<8s", b"NOTRLD\0\0", rld.Corrupt, rld.ECORRUPT),
            ("still being built", 72, "<I", 0, rld.NotReady, errno.EAGAIN)]:
        bad = bytearray(data)
        struct.pack_into(fmt, bad, off, value)
        cases.append((what, exc, code, bad, head, {}))
    cases.append(("zeroed", rld.Corrupt, rld.ECORRUPT, bytearray(len(data)), head, {}))
    for what, exc, code, d, h, kw in cases:
        e = _open_fake(daemon, name, d, h, **kw)
        assert type(e) is exc, (what, e)
        assert e.errno == code and name in str(e), (what, e)
    with pytest.raises(rld.NotFound):                             # no keeper: no instance
        rld.Client(name)


def test_permission_denied(daemon):
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges in a child")
    pid = os.fork()
    if pid == 0:   # child: become nobody, the segment is 0600 root
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                rld.Client(daemon.instance)
            except rld.PermissionDenied as e:
                code = 0 if isinstance(e, PermissionError) and e.errno == errno.EACCES else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
