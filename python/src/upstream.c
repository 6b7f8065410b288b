/*
 * upstream.c - rld._rld's bindings of issue 15 (listening to the upstream): rld_penalize,
 * rld_sync, leases, breakers, a limit's mode and shadow count. Plain module functions taking
 * a Limit or a Client; python/rld/upstream.py puts them on the classes (Limit.penalize,
 * Limit.lease, Client.breaker...) and adds what is pure Python (Lease, Breaker, Backoff).
 *
 * The blocking call (a lease wait) releases the GIL and holds a reference on the librld
 * client meanwhile, as Limit.acquire does; the others are shared-memory CASes (or one short
 * request to the daemon when waiters must be re-timed) and keep it.
 */
#include "rldpy.h"

#include <errno.h>
#include <string.h>

static int seconds_ns(PyObject *o, const char *what, uint64_t *ns)
{
    double s = PyFloat_AsDouble(o);
    if (s == -1.0 && PyErr_Occurred())
        return -1;
    if (!(s >= 0.0) || s > 4.5e15 / 1e9 * 1e3) {
        PyErr_Format(PyExc_ValueError, "%s must be a number of seconds >= 0", what);
        return -1;
    }
    *ns = (uint64_t)(s * 1e9 + 0.5);
    return 0;
}

/* _penalize(limit, retry_after_s) / _sync(limit, remaining, reset_after_s) */
static PyObject *do_sync(PyObject *lo, uint64_t remaining, uint64_t ns, bool penalty)
{
    rldpy_limit *l = (rldpy_limit *)lo;
    rld_client *c = rldpy_client_get(l->client);
    if (!c)
        return NULL;
    for (int attempt = 0;; attempt++) {
        int r = penalty ? rld_penalize(c, l->lim, ns) : rld_sync(c, l->lim, remaining, ns);
        if (r == -ESTALE && attempt == 0) {
            if (rldpy_limit_refind(l, c) < 0)
                return NULL;
            continue;
        }
        if (r < 0)
            return rldpy_limit_raise(l, r, NULL);
        Py_RETURN_NONE;
    }
}

static PyObject *mod_penalize(PyObject *m, PyObject *args)
{
    PyObject *lo, *so;
    uint64_t ns;
    if (!PyArg_ParseTuple(args, "O!O:_penalize", &rldpy_limit_type, &lo, &so) ||
        seconds_ns(so, "retry_after", &ns) < 0)
        return NULL;
    return do_sync(lo, 0, ns, true);
}

static PyObject *mod_sync(PyObject *m, PyObject *args)
{
    PyObject *lo, *ro, *so;
    uint64_t remaining, ns;
    if (!PyArg_ParseTuple(args, "O!OO:_sync", &rldpy_limit_type, &lo, &ro, &so) ||
        rldpy_parse_u64(ro, "remaining", &remaining) < 0 || seconds_ns(so, "reset_after", &ns) < 0)
        return NULL;
    return do_sync(lo, remaining, ns, false);
}

/* _acquire_lease(limit, timeout) -> (opaque0, opaque1) */
static PyObject *mod_acquire_lease(PyObject *m, PyObject *args)
{
    PyObject *lo, *to = Py_None;
    int64_t timeout;
    if (!PyArg_ParseTuple(args, "O!|O:_acquire_lease", &rldpy_limit_type, &lo, &to) ||
        rldpy_parse_timeout(to, &timeout) < 0)
        return NULL;
    rldpy_limit *l = (rldpy_limit *)lo;
    if (!rldpy_client_get(l->client))
        return NULL;
    rldpy_handle *h = l->client->h;
    rld_lease lease;
    for (int attempt = 0;; attempt++) {
        int r;
        rld_limit lim = l->lim;
        rldpy_handle_ref(h);
        Py_BEGIN_ALLOW_THREADS
        r = rld_acquire_lease(h->c, lim, timeout, &lease);
        Py_END_ALLOW_THREADS
        if (r == -ESTALE && attempt == 0)
            r = rldpy_limit_refind(l, h->c) == 0 ? 1 : 2;   /* 2: its exception is set */
        rldpy_handle_unref(h);
        if (r == 1)
            continue;
        if (r == 2)
            return NULL;
        if (r == -EINVAL) {
            char what[200], detail[300];
            rldpy_limit_describe(l, what, sizeof(what));
            PyOS_snprintf(detail, sizeof(detail), "lease of %s (a lease needs a limit with "
                          "concurrency = N in rld.conf)", what);
            return rldpy_raise(r, detail, NULL);
        }
        if (r < 0)
            return rldpy_limit_raise(l, r, NULL);
        return Py_BuildValue("(KK)", (unsigned long long)lease.opaque[0],
                             (unsigned long long)lease.opaque[1]);
    }
}

/* _release_lease(client, opaque0, opaque1) */
static PyObject *mod_release_lease(PyObject *m, PyObject *args)
{
    PyObject *co;
    unsigned long long a, b;
    if (!PyArg_ParseTuple(args, "O!KK:_release_lease", &rldpy_client_type, &co, &a, &b))
        return NULL;
    rld_client *c = rldpy_client_get((rldpy_client *)co);
    if (!c)
        return NULL;
    rld_lease lease = { { a, b } };
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = rld_release_lease(c, &lease);
    Py_END_ALLOW_THREADS
    if (r < 0)
        return rldpy_raise(r, "release of a lease", NULL);
    Py_RETURN_NONE;
}

/* _breaker_find(client, name) -> (slot, gen) */
static PyObject *mod_breaker_find(PyObject *m, PyObject *args)
{
    PyObject *co;
    const char *name;
    if (!PyArg_ParseTuple(args, "O!s:_breaker_find", &rldpy_client_type, &co, &name))
        return NULL;
    rld_client *c = rldpy_client_get((rldpy_client *)co);
    if (!c)
        return NULL;
    rld_limit b;
    int r = rld_breaker_find(c, name, &b);
    if (r < 0) {
        char detail[200];
        PyOS_snprintf(detail, sizeof(detail), "breaker '%.64s'", name);
        return rldpy_raise(r, detail, NULL);
    }
    return Py_BuildValue("(II)", b.slot, b.gen);
}

/* _breaker_enter(client, slot, gen) -> (admitted, probe, retry_after_ns) */
static PyObject *mod_breaker_enter(PyObject *m, PyObject *args)
{
    PyObject *co;
    unsigned int slot, gen;
    if (!PyArg_ParseTuple(args, "O!II:_breaker_enter", &rldpy_client_type, &co, &slot, &gen))
        return NULL;
    rld_client *c = rldpy_client_get((rldpy_client *)co);
    if (!c)
        return NULL;
    rld_result res;
    int r = rld_breaker_enter(c, (rld_limit){ slot, gen }, &res);
    if (r != 0 && r != -EAGAIN)
        return rldpy_raise(r, "breaker", NULL);
    return Py_BuildValue("(OOK)", r == 0 ? Py_True : Py_False,
                         r == 0 && (res.flags & RLD_F_PROBE) ? Py_True : Py_False,
                         (unsigned long long)res.retry_after_ns);
}

/* _breaker_report(client, slot, gen, ok) */
static PyObject *mod_breaker_report(PyObject *m, PyObject *args)
{
    PyObject *co;
    unsigned int slot, gen;
    int ok;
    if (!PyArg_ParseTuple(args, "O!IIp:_breaker_report", &rldpy_client_type, &co, &slot, &gen,
                          &ok))
        return NULL;
    rld_client *c = rldpy_client_get((rldpy_client *)co);
    if (!c)
        return NULL;
    int r = rld_breaker_report(c, (rld_limit){ slot, gen }, ok);
    if (r < 0)
        return rldpy_raise(r, "breaker", NULL);
    Py_RETURN_NONE;
}

/* _breaker_info(client, slot, gen) -> dict */
static PyObject *mod_breaker_info(PyObject *m, PyObject *args)
{
    PyObject *co;
    unsigned int slot, gen;
    if (!PyArg_ParseTuple(args, "O!II:_breaker_info", &rldpy_client_type, &co, &slot, &gen))
        return NULL;
    rld_client *c = rldpy_client_get((rldpy_client *)co);
    if (!c)
        return NULL;
    rld_breaker_status s;
    int r = rld_breaker_info(c, (rld_limit){ slot, gen }, &s);
    if (r < 0)
        return rldpy_raise(r, "breaker", NULL);
    static const char *const states[] = { "closed", "open", "half-open" };
    return Py_BuildValue("{s:s,s:s,s:I,s:I,s:I,s:d,s:K,s:K,s:K,s:K,s:I,s:d,s:I,s:I,s:d}",
                         "name", s.name, "state", states[s.state < 3 ? s.state : 0],
                         "failures", s.failures, "probes_out", s.probes_out,
                         "successes", s.successes, "retry_after", (double)s.retry_after_ns / 1e9,
                         "opens", (unsigned long long)s.opens,
                         "closes", (unsigned long long)s.closes,
                         "admitted", (unsigned long long)s.admitted,
                         "denied", (unsigned long long)s.denied,
                         "cfg_failures", s.cfg_failures,
                         "cfg_open_for", (double)s.cfg_open_for_ns / 1e9,
                         "cfg_probes", s.cfg_probes, "cfg_successes", s.cfg_successes,
                         "cfg_probe_timeout", (double)s.cfg_probe_timeout_ns / 1e9);
}

/* _limit_extra(limit) -> (mode, concurrency, shadowed) */
static PyObject *mod_limit_extra(PyObject *m, PyObject *args)
{
    PyObject *lo;
    if (!PyArg_ParseTuple(args, "O!:_limit_extra", &rldpy_limit_type, &lo))
        return NULL;
    rldpy_limit *l = (rldpy_limit *)lo;
    rld_client *c = rldpy_client_get(l->client);
    if (!c)
        return NULL;
    rld_limit_info info;
    int r = rld_info(c, l->lim, &info);
    if (r == -ESTALE) {
        if (rldpy_limit_refind(l, c) < 0)
            return NULL;
        r = rld_info(c, l->lim, &info);
    }
    if (r < 0)
        return rldpy_limit_raise(l, r, NULL);
    return Py_BuildValue("(sIK)", info.mode == RLD_MODE_SHADOW ? "shadow" : "enforce",
                         info.concurrency, (unsigned long long)info.shadowed);
}

static PyMethodDef upstream_methods[] = {
    { "_penalize", mod_penalize, METH_VARARGS, "_penalize(limit, retry_after_s): rld_penalize(3)" },
    { "_sync", mod_sync, METH_VARARGS, "_sync(limit, remaining, reset_after_s): rld_sync(3)" },
    { "_acquire_lease", mod_acquire_lease, METH_VARARGS,
      "_acquire_lease(limit, timeout=None) -> (a, b): rld_acquire_lease(3), GIL released" },
    { "_release_lease", mod_release_lease, METH_VARARGS,
      "_release_lease(client, a, b): rld_release_lease(3)" },
    { "_breaker_find", mod_breaker_find, METH_VARARGS, "_breaker_find(client, name) -> (slot, gen)" },
    { "_breaker_enter", mod_breaker_enter, METH_VARARGS,
      "_breaker_enter(client, slot, gen) -> (admitted, probe, retry_after_ns)" },
    { "_breaker_report", mod_breaker_report, METH_VARARGS, "_breaker_report(client, slot, gen, ok)" },
    { "_breaker_info", mod_breaker_info, METH_VARARGS, "_breaker_info(client, slot, gen) -> dict" },
    { "_limit_extra", mod_limit_extra, METH_VARARGS,
      "_limit_extra(limit) -> (mode, concurrency, shadowed)" },
    { NULL },
};

int rldpy_upstream_init(PyObject *m)
{
    if (PyModule_AddFunctions(m, upstream_methods) < 0)
        return -1;
    return PyModule_AddIntConstant(m, "F_SHADOW", RLD_F_SHADOW) < 0 ||
                   PyModule_AddIntConstant(m, "F_PROBE", RLD_F_PROBE) < 0
               ? -1 : 0;
}
