"""The waits that go through librld's non-blocking wait engine (rld_wait_start, rld_wait_fd,
rld_wait_collect, rld_wait_cancel): every wait of asyncio code (Limit.acquire_async,
Client.acquire_multi_async), and the blocking waits of the main thread (Limit.acquire,
Client.acquire_multi), so that Ctrl-C gives their place up at once.

The C side (src/wait.c) has already taken the fast path and refused what cannot fit the
timeout; what reaches this module must queue at the daemon.

A librld client has ONE wait descriptor for all its waits, readable when it has work. Each
Client has one _Router (made on first need); the router's engine object (_rld._Waits, C)
starts waits, collects completions and cancels, each atomically with its table of
outstanding waits. An event loop that has waits on the client has the descriptor added
(loop.add_reader) and removed when its last wait ends, so a process may run loops in
several threads on one Client: whichever loop sees the descriptor readable collects, resolves
the Futures of its own waits and hands the others to their loops (call_soon_threadsafe).
A blocking wait of the main thread polls the descriptor itself, with the router's wake
descriptor (written when another thread collected its completion), in slices so that
signal handlers run.

Fork: in a child the parent's waits do not exist (librld forgets them and keeps the
descriptor's number); every router forgets them too, and its loops, and has librld rebuild
the descriptor before any loop of the child adds it (see _after_fork).
"""
from __future__ import annotations

import asyncio
import collections
import errno
import os
import select
import threading
import time
import weakref
from typing import Any, Dict, Optional, Tuple

from . import _rld

_SLICE_MS = 100            # a blocked main thread looks at its signals at least this often
_ROOM_POLL_S = 0.05        # the first wait in line for room tries again at least this often

_routers: "weakref.WeakSet[_Router]" = weakref.WeakSet()
_make_lock = threading.Lock()


class _Router:
    """The waits of one Client on librld's engine, and the event loops they wait in."""

    __slots__ = ("w", "fd", "loops", "room", "__weakref__")

    def __init__(self, w: Any) -> None:
        self.w = w                                  # _rld._Waits: owns the librld client
        self.fd: int = w.fd()
        # loop -> [its waits here, its inbox]: the waits whose Futures are not resolved
        # yet, and the ones collected for it, in completion order (appended by collect)
        self.loops: Dict[asyncio.AbstractEventLoop, list] = {}
        # [loop, Future or None] of the async waits that found the client at librld's cap
        # (16,384 charges queued at the daemon): they start in this order as room frees
        self.room: "collections.deque[list]" = collections.deque()
        _routers.add(self)

    # -- event loops: the descriptor is in a loop while that loop has waits. Called in the
    # loop's own thread only.
    def attach(self, loop: asyncio.AbstractEventLoop) -> "collections.deque[Any]":
        ent = self.loops.get(loop)
        if ent is None:
            loop.add_reader(self.fd, self.drain, loop)
            ent = self.loops[loop] = [0, collections.deque()]
        ent[0] += 1
        return ent[1]

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        ent = self.loops.get(loop)
        if ent is None:
            return
        ent[0] -= 1
        if ent[0] > 0:
            return
        del self.loops[loop]
        if not loop.is_closed():
            loop.remove_reader(self.fd)

    def drain(self, here: Optional[asyncio.AbstractEventLoop]) -> None:
        """Collect what the client has (each async waiter lands in its loop's inbox, in
        completion order); resolve HERE's (the calling loop, or None) now and have the
        other loops resolve theirs."""
        before = len(self.w)
        done = self.w.collect()
        if self.room and len(self.w) < before:
            self.wake_room()                        # completions free room at the cap
        seen = set()
        for wt in done:
            loop = wt.loop
            if loop in seen:
                continue
            seen.add(loop)
            if loop is here:
                self.flush(wt.inbox)
                continue
            try:
                loop.call_soon_threadsafe(self.flush, wt.inbox)
            except RuntimeError:                    # its loop is closed: nobody will come
                inbox = wt.inbox
                while inbox:
                    self.w.cancel(inbox.popleft())  # so they keep nothing
                self.loops.pop(loop, None)

    def flush(self, inbox: "collections.deque[Any]") -> None:
        """Resolve the Futures of a loop's collected waits, in order (in that loop)."""
        while inbox:
            wt = inbox.popleft()
            try:
                if not wt.fut.done():               # cancelled: its coroutine gave it up
                    wt.fut.set_result(None)
            finally:
                self.detach(wt.loop)

    # -- the line for room, beyond librld's cap of charges queued per client
    def wake_room(self) -> None:
        """Have the first wait in line try to start again."""
        try:
            loop, fut = self.room[0]
        except IndexError:
            return
        if fut is None:
            return                                  # trying now, or about to wait
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        try:
            if loop is running:
                loop.call_soon(_wake, fut)
            else:
                loop.call_soon_threadsafe(_wake, fut)
        except RuntimeError:                        # its loop is closed
            pass

    async def start_async(self, wt: Any, loop: asyncio.AbstractEventLoop,
                          deadline: Optional[float], priority: int, barge: bool) -> None:
        """Start WT. When the client is at librld's cap (-ENOSPC), or others already wait
        for room, wait in line (FIFO across the client's loops) instead of failing."""
        if not self.room:
            try:
                self.w.start(wt, _ns_left(deadline), priority, barge)
                return
            except _rld.Error as e:
                if e.errno != errno.ENOSPC:
                    raise
        ent: list = [loop, None]
        self.room.append(ent)
        try:
            while True:
                if self.room[0] is ent:
                    try:
                        self.w.start(wt, _ns_left(deadline), priority, barge)
                        return
                    except _rld.Error as e:
                        if e.errno != errno.ENOSPC:
                            raise
                fut = ent[1] = loop.create_future()
                # the first in line also polls: room frees without a completion too (a
                # cancelled wait's charges count until the daemon has answered it)
                poll = loop.call_later(_ROOM_POLL_S, _wake, fut) if self.room[0] is ent else None
                try:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise asyncio.TimeoutError
                    await asyncio.wait_for(fut, left)
                except asyncio.TimeoutError:
                    raise _rld._error(-errno.ETIMEDOUT, "no room in this client's waits "
                                      "(16,384 charges queued) within the timeout") from None
                finally:
                    ent[1] = None
                    if poll is not None:
                        poll.cancel()
        finally:
            first = self.room and self.room[0] is ent
            self.room.remove(ent)
            if first:
                self.wake_room()                    # the next one tries

    # -- the blocking wait of the main thread
    def block(self, wt: Any, timeout_ns: int, priority: int, barge: bool) -> None:
        """Start WT and return when it is done; signal handlers run meanwhile (an exception
        they raise propagates: the caller cancels WT)."""
        w = self.w
        w.start(wt, timeout_ns, priority, barge)
        p = select.poll()
        p.register(self.fd, select.POLLIN)
        p.register(w.wake_fd(), select.POLLIN)
        while True:
            w.unwake()
            self.drain(None)
            if not wt.state == "pending":
                return
            p.poll(_SLICE_MS)


def _wake(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


def _router_of(client: Any) -> _Router:
    r = client._router
    if r is None:
        with _make_lock:
            r = client._router
            if r is None:
                r = _Router(client._waits())        # rld.Error (EBADF) once closed
                client._router = r
    return r


def _after_fork() -> None:
    global _make_lock
    _make_lock = threading.Lock()                   # another thread may have held it
    for r in list(_routers):
        r.loops.clear()                             # the parent's loops are not ours
        r.room.clear()
        try:
            r.w.forget()
            # librld rebuilds its engine in a child at the first call, on the same number:
            # until then the number is the parent's epoll instance, and a loop that added
            # it (add_reader) would watch the parent's waits. Rebuild it now.
            r.fd = r.w.fd()
        except OSError:
            pass


os.register_at_fork(after_in_child=_after_fork)


def _ns_left(deadline: Optional[float]) -> int:
    if deadline is None:
        return -1
    return max(0, int((deadline - time.monotonic()) * 1e9))


def _charge_limit(charges: Tuple[Tuple[Any, int], ...], res: Any) -> Any:
    i = res.index if res is not None and res.index < len(charges) else 0
    return charges[i][0]


def _error(code: int, res: Any, charges: Tuple[Tuple[Any, int], ...]) -> BaseException:
    lim = _charge_limit(charges, res)
    what = (f"key {lim.key!r} of template '{lim.name}'" if isinstance(lim, _rld.Key)
            else f"limit '{lim.name}'")
    e = _rld._error(code, what)
    if code == -errno.ETIMEDOUT and res is not None:
        e.result = res
        e.retry_after = res.retry_after
    return e


def _stale_at_start(e: BaseException, attempt: int) -> bool:
    """A handle went stale between the fast path and the wait's start (rld_wait_start said
    -ESTALE: no ticket, nothing taken): a limit deleted, or a key reclaimed (full again and
    idle) meanwhile. Looked up again and retried once."""
    return attempt == 0 and isinstance(e, _rld.Error) and e.errno == errno.ESTALE


def _refind_all(charges: Tuple[Tuple[Any, int], ...]) -> None:
    for lim, _ in charges:
        lim._refind()                               # rld.Deleted when a name is gone


def _deadline(timeout: Optional[float]) -> Optional[float]:
    return None if timeout is None else time.monotonic() + timeout


def wait_sync(client: Any, charges: Tuple[Tuple[Any, int], ...], timeout: Optional[float],
              priority: int, barge: bool) -> Any:
    """The blocking wait of the main thread (the C side's sync hook)."""
    router = _router_of(client)
    deadline = _deadline(timeout)
    for attempt in (0, 1):
        wt = _rld._Waiter(charges)
        try:
            router.block(wt, _ns_left(deadline), priority, barge)
            code, res = wt.code, wt.result
            if code == 0:
                if res.retry_after_ns:              # see rld_wait_start(3), degraded mode
                    time.sleep(res.retry_after)
                return res
        except BaseException as e:
            router.w.cancel(wt)                     # nothing stays taken
            if _stale_at_start(e, attempt):
                _refind_all(charges)
                continue
            raise
        if code == -errno.ESTALE and attempt == 0:
            _charge_limit(charges, res)._refind()   # found again: retry, what is left of it
            continue
        raise _error(code, res, charges)
    raise AssertionError("unreachable")


async def wait_async(client: Any, charges: Tuple[Tuple[Any, int], ...],
                     timeout: Optional[float], priority: int, barge: bool) -> Any:
    """The wait of acquire_async and acquire_multi_async once the fast path said no (the
    C side's async hook)."""
    loop = asyncio.get_running_loop()
    router = _router_of(client)
    deadline = _deadline(timeout)
    for attempt in (0, 1):
        inbox = router.attach(loop)
        wt = None
        try:
            wt = _rld._Waiter(charges, loop.create_future(), loop, inbox)
            await router.start_async(wt, loop, deadline, priority, barge)
            await wt.fut
            code, res = wt.code, wt.result
            if code == 0 and res.retry_after_ns:    # see rld_wait_start(3), degraded mode
                await asyncio.sleep(res.retry_after)
        except BaseException as e:
            # cancelled (or closed): give the place up; a grant already collected is given
            # back. True: never collected, so no flush will detach it.
            if wt is None or router.w.cancel(wt):
                router.detach(loop)
            if _stale_at_start(e, attempt):
                _refind_all(charges)
                continue
            raise
        if code == 0:
            return res
        if code == -errno.ESTALE and attempt == 0:
            _charge_limit(charges, res)._refind()
            continue
        raise _error(code, res, charges)
    raise AssertionError("unreachable")


_rld._set_hooks(wait_sync, wait_async)
