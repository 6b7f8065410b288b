"""rld.Client, Limit lookup, the package surface, and every error code as an exception."""
import errno
import mmap
import os
import pickle
import pydoc
import struct

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
    assert (rld.EABI, rld.ECORRUPT) == (1001, 1002)
    assert "incompatible" in rld.strerror(rld.EABI)
    assert "damaged" in rld.strerror(rld.ECORRUPT)


def _patched_copy(daemon, tmp_name, patch):
    """Copy DAEMON's segment to /dev/shm/rld.TMP_NAME with PATCH(mmap) applied."""
    with open(daemon.shm, "rb") as f:
        data = bytearray(f.read())
    patch(data)
    path = f"/dev/shm/rld.{tmp_name}"
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
    return path


@pytest.mark.parametrize("what,exc,code", [
    ("abi", rld.ABIMismatch, rld.EABI),
    ("magic", rld.Corrupt, rld.ECORRUPT),
    ("state", rld.NotReady, errno.EAGAIN),
])
def test_bad_segments(daemon, what, exc, code):
    name = f"{daemon.instance}-{what}"

    def patch(data):
        if what == "abi":
            struct.pack_into("<H", data, 8, 99)        # abi_major
        elif what == "magic":
            data[0:8] = b"NOTRLD\0\0"
        else:
            struct.pack_into("<I", data, 72, 0)       # state: not READY (being created)
    path = _patched_copy(daemon, name, patch)
    try:
        with pytest.raises(exc) as ei:
            rld.Client(name)
        assert ei.value.errno == code
        assert name in str(ei.value)
    finally:
        os.unlink(path)


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
