/*
 * multi.c - sets of charges, all or nothing: Client.try_acquire_multi (rld_try_multi),
 * Client.acquire_multi (rld_wait_multi, GIL released) and Client.acquire_multi_async (the
 * non-blocking engine). A set is a sequence of (Limit, cost) pairs, 1 to 64, every Limit of
 * this Client; the Result's index names the charge that decided (an index into the
 * sequence), and errors name its limit.
 */
#include "rldpy.h"

#include <errno.h>
#include <string.h>

int rldpy_charges_parse(rldpy_client *cl, PyObject *seq, rldpy_charges *cs)
{
    cs->n = 0;
    cs->tuple = NULL;
    PyObject *fast = PySequence_Fast(seq, "charges must be a sequence of (Limit, cost) pairs");
    if (!fast)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n < 1 || n > RLD_MULTI_MAX) {
        rldpy_raise_msg(rldpy_InvalidArgument, EINVAL, "a set has 1 to %d charges, not %zd",
                        RLD_MULTI_MAX, n);
        Py_DECREF(fast);
        return -1;
    }
    PyObject *t = PyTuple_New(n);
    if (!t) {
        Py_DECREF(fast);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
        PyObject *pair = PySequence_Fast(item, "a charge is a (Limit, cost) pair");
        if (!pair)
            goto fail;
        PyObject *lim = PySequence_Fast_GET_SIZE(pair) == 2 ? PySequence_Fast_GET_ITEM(pair, 0)
                                                              : NULL;
        if (!lim || !PyObject_TypeCheck(lim, &rldpy_limit_type)) {
            PyErr_Format(PyExc_TypeError, "charge %zd: a charge is a (Limit, cost) pair", i);
            Py_DECREF(pair);
            goto fail;
        }
        if (((rldpy_limit *)lim)->client != cl) {
            PyErr_Format(PyExc_ValueError, "charge %zd: %R was found through another Client", i,
                         lim);
            Py_DECREF(pair);
            goto fail;
        }
        uint64_t cost;
        if (rldpy_parse_u64(PySequence_Fast_GET_ITEM(pair, 1), "cost", &cost) < 0) {
            Py_DECREF(pair);
            goto fail;
        }
        PyObject *norm = Py_BuildValue("(OK)", lim, (unsigned long long)cost);
        Py_DECREF(pair);
        if (!norm)
            goto fail;
        PyTuple_SET_ITEM(t, i, norm);
        cs->lims[i] = (rldpy_limit *)lim;   /* held by T */
        cs->ch[i].limit = ((rldpy_limit *)lim)->lim;
        cs->ch[i].cost = cost;
    }
    Py_DECREF(fast);
    cs->n = (size_t)n;
    cs->tuple = t;
    return 0;
fail:
    Py_DECREF(t);
    Py_DECREF(fast);
    return -1;
}

/* try_acquire_multi(charges) */
static PyObject *client_try_multi(PyObject *op, PyObject *charges)
{
    rldpy_client *cl = (rldpy_client *)op;
    rldpy_charges cs;
    if (rldpy_charges_parse(cl, charges, &cs) < 0)
        return NULL;
    PyObject *ret = NULL;
    rld_client *c = rldpy_client_get(cl);
    if (!c)
        goto out;
    rld_result res;
    for (int attempt = 0;; attempt++) {
        memset(&res, 0, sizeof(res));
        int r = rld_try_multi(c, cs.ch, cs.n, &res);
        if (r == 0 || r == -EAGAIN) {
            ret = rldpy_result_new(&res, r == 0);
            break;
        }
        rldpy_limit *lim = cs.lims[res.index < cs.n ? res.index : 0];
        if (r == -ESTALE && attempt == 0) {
            if (rldpy_limit_refind(lim, c) < 0)
                break;
            rldpy_charges_reload(&cs);
            continue;
        }
        rldpy_limit_raise(lim, r, NULL);
        break;
    }
out:
    rldpy_charges_clear(&cs);
    return ret;
}

static const char *const multi_args[] = { "charges", "timeout", "priority", "barge", NULL };

static int parse_multi(const char *fn, rldpy_client *cl, PyObject *const *args,
                       Py_ssize_t nargs, PyObject *kwnames, rldpy_charges *cs, PyObject **timeo,
                       int64_t *timeout_ns, int *priority, int *barge)
{
    PyObject *o[4] = { NULL, NULL, NULL, NULL };
    cs->tuple = NULL;
    if (rldpy_parse_args(fn, args, nargs, kwnames, multi_args, 4, o) < 0)
        return -1;
    if (!o[0]) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument 'charges'", fn);
        return -1;
    }
    if (rldpy_parse_wait_opts(o + 1, timeo, timeout_ns, priority, barge) < 0)
        return -1;
    return rldpy_charges_parse(cl, o[0], cs);
}

/* acquire_multi(charges, timeout=None, priority=0, barge=False) */
static PyObject *client_acquire_multi(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                      PyObject *kwnames)
{
    rldpy_client *cl = (rldpy_client *)op;
    rldpy_charges cs;
    PyObject *timeo;
    int64_t timeout_ns;
    int priority, barge;
    if (parse_multi("acquire_multi", cl, args, nargs, kwnames, &cs, &timeo, &timeout_ns,
                    &priority, &barge) < 0)
        return NULL;
    PyObject *r = rldpy_wait(cl, &cs, timeo, timeout_ns, priority, barge);
    rldpy_charges_clear(&cs);
    return r;
}

/* acquire_multi_async(charges, timeout=None, priority=0, barge=False) */
static PyObject *client_acquire_multi_async(PyObject *op, PyObject *const *args,
                                            Py_ssize_t nargs, PyObject *kwnames)
{
    rldpy_client *cl = (rldpy_client *)op;
    rldpy_charges cs;
    PyObject *timeo;
    int64_t timeout_ns;
    int priority, barge;
    if (parse_multi("acquire_multi_async", cl, args, nargs, kwnames, &cs, &timeo, &timeout_ns,
                    &priority, &barge) < 0)
        return NULL;
    PyObject *r = rldpy_acquire_new(cl, cs.tuple, &cs, timeo, timeout_ns, priority, barge);
    rldpy_charges_clear(&cs);
    return r;
}

PyMethodDef rldpy_multi_methods[] = {
    { "try_acquire_multi", client_try_multi, METH_O,
      "try_acquire_multi($self, charges, /)\n--\n\n"
      "Take from several limits at once, all or nothing, if every charge fits now\n"
      "(rld_try_multi: no system call). CHARGES is a sequence of (Limit, cost) pairs, 1 to\n"
      "64, Limits of this Client: [(requests, 1), (tokens, 500)]. The Result is truthy when\n"
      "every charge was taken. Its index names the charge that decided (an index into\n"
      "CHARGES): when taken, the one left with the least remaining relative to its burst\n"
      "(its remaining, limit, reset_after); when denied, the one with the longest wait\n"
      "(retry_after). A denial takes nothing. Errors (rld.CostTooHigh...) name the limit." },
    { "acquire_multi", RLDPY_METH(client_acquire_multi), METH_FASTCALL | METH_KEYWORDS,
      "acquire_multi($self, /, charges, timeout=None, priority=0, barge=False)\n--\n\n"
      "Wait until every charge fits, then take them all at once (rld_wait_multi): the fast\n"
      "path first, then one wait at the daemon with a place in the queue of each limit,\n"
      "served when it is first in all of them and all fit: no retry loop. Blocks with the\n"
      "GIL released. rld.Timeout at once when the set cannot be served within TIMEOUT\n"
      "seconds (its result.index names the charge with the longest wait). CHARGES and the\n"
      "Result as for try_acquire_multi; the rest as Limit.acquire (Ctrl-C included)." },
    { "acquire_multi_async", RLDPY_METH(client_acquire_multi_async),
      METH_FASTCALL | METH_KEYWORDS,
      "acquire_multi_async($self, /, charges, timeout=None, priority=0, barge=False)\n--\n\n"
      "acquire_multi for asyncio: await it. The fast path when awaited, else a wait in the\n"
      "running loop (the client's wait descriptor added to it, no thread); cancelling the\n"
      "task gives its place up and takes nothing. See Limit.acquire_async." },
    { NULL },
};
