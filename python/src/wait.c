/*
 * wait.c - the waits behind Limit.acquire, Limit.acquire_async, Client.acquire_multi and
 * Client.acquire_multi_async: one path for one charge and for sets.
 *
 * Every wait first decides what it can at once, with the GIL held and no system call: the
 * fast path (rld_try_ex, rld_try_multi), and the local refusal of a wait that cannot fit its
 * timeout (what rld_wait does before asking the daemon). An admitted call never touches a
 * thread, a descriptor or an event loop. What must wait goes:
 *
 *  - blocking, in a thread other than the main one: rld_wait_ex / rld_wait_multi with the
 *    GIL released (a connection of the thread's own; signals are not handled there anyway);
 *  - blocking, in the main thread: to rld/_waits.py (the sync hook), which starts the wait on
 *    the client's non-blocking engine (rld_wait_start) and polls the client's wait
 *    descriptor while Python runs the signal handlers: Ctrl-C raises KeyboardInterrupt at
 *    once and rld_wait_cancel gives the place up (the waits behind move up at once, nothing
 *    is taken; a grant that crossed the cancel is given back);
 *  - awaited: to rld/_waits.py (the async hook), the same engine with the descriptor added
 *    to the running loop (loop.add_reader) and a Future per wait.
 *
 * A handle gone stale (the limit deleted, maybe created again) is found again by name and
 * the wait retried once, with what is left of its timeout; rld.Deleted when the name is gone.
 */
#include "rldpy.h"

#include <errno.h>
#include <string.h>
#include <time.h>

PyObject *rldpy_hook_sync, *rldpy_hook_async;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void rldpy_charges_clear(rldpy_charges *cs)
{
    Py_CLEAR(cs->tuple);
}

PyObject *rldpy_charges_tuple(rldpy_charges *cs)
{
    if (cs->tuple)
        return cs->tuple;
    PyObject *t = PyTuple_New((Py_ssize_t)cs->n);
    if (!t)
        return NULL;
    for (size_t i = 0; i < cs->n; i++) {
        PyObject *pair = Py_BuildValue("(OK)", (PyObject *)cs->lims[i],
                                       (unsigned long long)cs->ch[i].cost);
        if (!pair) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, pair);
    }
    cs->tuple = t;
    return t;
}

void rldpy_charges_one(rldpy_limit *lim, uint64_t cost, rldpy_charges *cs)
{
    cs->n = 1;
    cs->lims[0] = lim;
    cs->ch[0].limit = lim->lim;
    cs->ch[0].cost = cost;
    cs->tuple = NULL;
}

void rldpy_charges_reload(rldpy_charges *cs)
{
    for (size_t i = 0; i < cs->n; i++)
        cs->ch[i].limit = cs->lims[i]->lim;
}

static rldpy_limit *charge_limit(rldpy_charges *cs, uint32_t index)
{
    return cs->lims[index < cs->n ? index : 0];
}

static PyObject *charges_raise(rldpy_charges *cs, int err, const rld_result *res)
{
    return rldpy_limit_raise(charge_limit(cs, res->index), err,
                             err == -ETIMEDOUT || err == -EAGAIN ? res : NULL);
}

/*
 * What can be decided now: 0 admitted (RES filled), 1 the caller must wait, -1 an exception
 * is set (an error of librld naming the limit, or rld.Timeout when the wait cannot fit).
 * A set that may barge skips the fast path here (librld has no public barging
 * rld_try_multi): the wait's own fast path barges.
 */
static int decide_now(rld_client *c, rldpy_charges *cs, int64_t timeout_ns, int barge,
                      rld_result *res)
{
    memset(res, 0, sizeof(*res));
    if (cs->n > 1 && barge)
        return 1;
    for (int attempt = 0;; attempt++) {
        int r = cs->n == 1
                    ? rld_try_ex(c, cs->ch[0].limit, cs->ch[0].cost, barge ? RLD_TRY_BARGE : 0, res)
                    : rld_try_multi(c, cs->ch, cs->n, res);
        if (r == 0)
            return 0;
        if (r == -ESTALE && attempt == 0) {
            if (rldpy_limit_refind(charge_limit(cs, res->index), c) < 0)
                return -1;
            rldpy_charges_reload(cs);
            continue;
        }
        if (r != -EAGAIN) {
            charges_raise(cs, r, res);
            return -1;
        }
        if (timeout_ns >= 0 && res->retry_after_ns > (uint64_t)timeout_ns) {
            charges_raise(cs, -ETIMEDOUT, res);   /* cannot fit in time: refused now */
            return -1;
        }
        return 1;
    }
}

/* A blocking wait without the GIL; a stale handle is found again once. */
static PyObject *wait_blocking(rldpy_client *cl, rldpy_charges *cs, int64_t timeout_ns,
                               int priority, int barge)
{
    rldpy_handle *h = cl->h;
    rld_wait_opts opts = { priority, barge ? RLD_WAIT_BARGE : 0 };
    rld_result res;
    memset(&res, 0, sizeof(res));
    rldpy_handle_ref(h);   /* the client may be closed by another thread while we wait */
    int r;
    bool exc = false;
    for (int attempt = 0;; attempt++) {
        uint64_t start = timeout_ns > 0 ? mono_ns() : 0;
        Py_BEGIN_ALLOW_THREADS
        r = cs->n == 1 ? rld_wait_ex(h->c, cs->ch[0].limit, cs->ch[0].cost, timeout_ns, &opts, &res)
                       : rld_wait_multi(h->c, cs->ch, cs->n, timeout_ns, &opts, &res);
        Py_END_ALLOW_THREADS
        if (r != -ESTALE || attempt > 0)
            break;
        if (rldpy_limit_refind(charge_limit(cs, res.index), h->c) < 0) {
            exc = true;
            break;
        }
        rldpy_charges_reload(cs);
        if (timeout_ns > 0) {   /* what is left of the timeout */
            uint64_t spent = mono_ns() - start;
            timeout_ns = spent >= (uint64_t)timeout_ns ? 0 : timeout_ns - (int64_t)spent;
        }
    }
    rldpy_handle_unref(h);
    if (exc)
        return NULL;
    if (r == 0)
        return rldpy_result_new(&res, true);
    return charges_raise(cs, r, &res);
}

PyObject *rldpy_wait(rldpy_client *cl, rldpy_charges *cs, PyObject *timeo, int64_t timeout_ns,
                     int priority, int barge)
{
    rld_client *c = rldpy_client_get(cl);
    if (!c)
        return NULL;
    rld_result res;
    int d = decide_now(c, cs, timeout_ns, barge, &res);
    if (d < 0)
        return NULL;
    if (d == 0)
        return rldpy_result_new(&res, true);
    if (rldpy_hook_sync && _PyOS_IsMainThread()) {
        PyObject *t = rldpy_charges_tuple(cs);
        if (!t)
            return NULL;
        return PyObject_CallFunction(rldpy_hook_sync, "OOOii", (PyObject *)cl, t, timeo, priority,
                                     barge);
    }
    return wait_blocking(cl, cs, timeout_ns, priority, barge);
}

int rldpy_wait_async(rldpy_client *cl, rldpy_charges *cs, PyObject *timeo, int64_t timeout_ns,
                     int priority, int barge, PyObject **out)
{
    *out = NULL;
    rld_client *c = rldpy_client_get(cl);
    if (!c)
        return -1;
    rld_result res;
    int d = decide_now(c, cs, timeout_ns, barge, &res);
    if (d < 0)
        return -1;
    if (d == 0)
        return (*out = rldpy_result_new(&res, true)) ? 0 : -1;
    if (!rldpy_hook_async) {
        PyErr_SetString(PyExc_RuntimeError,
                        "rld._rld: waiting in asyncio needs the package (import rld)");
        return -1;
    }
    PyObject *t = rldpy_charges_tuple(cs);
    if (!t)
        return -1;
    *out = PyObject_CallFunction(rldpy_hook_async, "OOOii", (PyObject *)cl, t, timeo, priority,
                                 barge);
    return *out ? 1 : -1;
}
