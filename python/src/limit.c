/*
 * limit.c - rld.Limit: one limit of a Client, named; the calls that take and give tokens.
 *
 * try_acquire is the hot call: it parses its arguments by hand (vectorcall, no tuple or
 * dict), keeps the GIL (rld_try is ~35 ns: releasing and retaking the GIL would cost more)
 * and returns a fresh Result. acquire releases the GIL while it waits (wait.c).
 *
 * A Limit names the limit: when librld says the handle is stale (the limit was deleted, and
 * maybe created again by a reload or rlctl), the call looks the name up again and retries
 * once; only when the name is gone does it raise rld.Deleted (a NotFound).
 */
#include "rldpy.h"

#include <errno.h>
#include <string.h>

int rldpy_parse_u64(PyObject *o, const char *what, uint64_t *out)
{
    if (PyLong_CheckExact(o)) {
        unsigned long long v = PyLong_AsUnsignedLongLong(o);
        if (!(v == (unsigned long long)-1 && PyErr_Occurred())) {
            *out = v;
            return 0;
        }
        PyErr_Clear();
    }
    PyObject *i = PyNumber_Index(o);
    if (!i) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what,
                         Py_TYPE(o)->tp_name);
        }
        return -1;
    }
    int neg = PyObject_RichCompareBool(i, Py_False, Py_LT);   /* i < 0 */
    unsigned long long v = neg ? 0 : PyLong_AsUnsignedLongLong(i);
    Py_DECREF(i);
    if (neg < 0)
        return -1;
    if (neg) {
        PyErr_Format(PyExc_ValueError, "%s must be >= 0", what);
        return -1;
    }
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return -1;   /* OverflowError: above 2**64-1 */
    *out = v;
    return 0;
}

int rldpy_parse_timeout(PyObject *o, int64_t *out)
{
    if (!o || o == Py_None) {
        *out = -1;
        return 0;
    }
    double s = PyFloat_AsDouble(o);
    if (s == -1.0 && PyErr_Occurred())
        return -1;
    if (!(s >= 0.0)) {   /* also NaN */
        PyErr_SetString(PyExc_ValueError, "timeout must be None or a number of seconds >= 0");
        return -1;
    }
    /* 2^62 ns is 146 years: longer timeouts are none */
    *out = s >= 4.6e9 ? -1 : (int64_t)(s * 1e9 + 0.5);
    return 0;
}

int rldpy_parse_args(const char *fn, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames, const char *const *names, int npos, PyObject **out)
{
    if (nargs > npos) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional argument%s (%zd given)",
                     fn, npos, npos == 1 ? "" : "s", nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        out[i] = args[i];
    if (!kwnames)
        return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        int j = 0;
        while (names[j] && PyUnicode_CompareWithASCIIString(k, names[j]) != 0)
            j++;
        if (!names[j] || (j < nargs)) {
            PyErr_Format(PyExc_TypeError, names[j] ? "%s() got multiple values for argument '%U'"
                                                   : "%s() got an unexpected keyword argument '%U'",
                         fn, k);
            return -1;
        }
        out[j] = args[nargs + i];
    }
    return 0;
}

int rldpy_parse_priority(PyObject *o, int *out)
{
    *out = 0;
    if (!o)
        return 0;
    PyObject *i = PyNumber_Index(o);
    if (!i) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "priority must be an int, not %.100s",
                         Py_TYPE(o)->tp_name);
        }
        return -1;
    }
    int overflow = 0;
    long p = PyLong_AsLongAndOverflow(i, &overflow);
    Py_DECREF(i);
    if (p == -1 && PyErr_Occurred())
        return -1;
    if (overflow || p < 0 || p > RLD_PRIORITY_MAX) {
        rldpy_raise_msg(rldpy_InvalidArgument, EINVAL, "priority must be 0 to %d, not %R",
                        RLD_PRIORITY_MAX, o);
        return -1;
    }
    *out = (int)p;
    return 0;
}

void rldpy_limit_describe(rldpy_limit *self, char *buf, size_t size)
{
    if (self->tpl)
        rldpy_key_describe(self, buf, size);
    else
        PyOS_snprintf(buf, size, "limit '%.64s'", PyUnicode_AsUTF8(self->name));
}

int rldpy_parse_wait_opts(PyObject *const *o, PyObject **timeo, int64_t *timeout_ns,
                          int *priority, int *barge)
{
    *timeo = o[0] ? o[0] : Py_None;
    *barge = 0;
    if (rldpy_parse_timeout(*timeo, timeout_ns) < 0 || rldpy_parse_priority(o[1], priority) < 0 ||
        (o[2] && (*barge = PyObject_IsTrue(o[2])) < 0))
        return -1;
    return 0;
}

int rldpy_parse_named(const char *type, const char *what, PyObject *args, PyObject *kw,
                      rldpy_client **cl, rld_client **c, PyObject **name, const char **n)
{
    static char *kwlist[] = { "client", "name", NULL };
    char fmt[32];
    PyOS_snprintf(fmt, sizeof(fmt), "O!U:%s", type);
    PyObject *client;
    if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &rldpy_client_type, &client, name))
        return -1;
    *cl = (rldpy_client *)client;
    if (!(*c = rldpy_client_get(*cl)))
        return -1;
    Py_ssize_t len;
    if (!(*n = PyUnicode_AsUTF8AndSize(*name, &len)))
        return -1;
    if (strlen(*n) != (size_t)len) {   /* a NUL inside: librld would see a shorter name */
        rldpy_named_raise(*cl, what, *n, -EINVAL);
        return -1;
    }
    return 0;
}

PyObject *rldpy_named_raise(rldpy_client *cl, const char *what, const char *n, int err)
{
    char detail[320];
    PyOS_snprintf(detail, sizeof(detail), "%s '%.64s%s' on instance '%.64s'%s", what, n,
                  strlen(n) > 64 ? "..." : "", PyUnicode_AsUTF8(cl->instance),
                  err == -EINVAL || err == -ENAMETOOLONG
                      ? " (a name is 1 to 64 bytes of A-Z a-z 0-9 . _ / : -, as in rld.conf)"
                      : "");
    return rldpy_raise(err, detail, NULL);
}

PyObject *rldpy_limit_raise(rldpy_limit *self, int err, const rld_result *res)
{
    char detail[200];
    rldpy_limit_describe(self, detail, sizeof(detail));
    return rldpy_raise(err, detail, res);
}

#define limit_raise rldpy_limit_raise
#define limit_refind rldpy_limit_refind

/* The handle went stale: find the name again. 0: found (retry), -1: exception set. */
int rldpy_limit_refind(rldpy_limit *self, rld_client *c)
{
    if (self->tpl)
        return rldpy_key_refind(self, c);
    rld_limit lim;
    int r = rld_find(c, PyUnicode_AsUTF8(self->name), &lim);
    if (r == 0) {
        self->lim = lim;
        return 0;
    }
    limit_raise(self, r == -ENOENT ? -ESTALE : r, NULL);
    return -1;
}

static PyObject *limit_tp_new(PyTypeObject *t, PyObject *args, PyObject *kw)
{
    rldpy_client *cl;
    rld_client *c;
    PyObject *name;
    const char *n;
    if (rldpy_parse_named("Limit", "limit", args, kw, &cl, &c, &name, &n) < 0)
        return NULL;
    rld_limit lim;
    int r = rld_find(c, n, &lim);
    if (r < 0)
        return rldpy_named_raise(cl, "limit", n, r);
    rldpy_limit *self = (rldpy_limit *)t->tp_alloc(t, 0);
    if (!self)
        return NULL;
    self->client = (rldpy_client *)Py_NewRef((PyObject *)cl);
    self->name = Py_NewRef(name);
    self->lim = lim;
    return (PyObject *)self;
}

static void limit_dealloc(PyObject *op)
{
    rldpy_limit *self = (rldpy_limit *)op;
    Py_CLEAR(self->client);
    Py_CLEAR(self->name);
    Py_CLEAR(self->tpl);
    Py_CLEAR(self->key);
    Py_TYPE(op)->tp_free(op);
}

/* try_acquire(cost=1, *, barge=False) */
static PyObject *limit_try(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
    static const char *const names[] = { "cost", "barge", NULL };
    rldpy_limit *self = (rldpy_limit *)op;
    uint64_t cost = 1;
    int barge = 0;
    PyObject *o[2] = { NULL, NULL };
    if (nargs == 1 && !kwnames)
        o[0] = args[0];                           /* the common call: try_acquire(n) */
    else if (rldpy_parse_args("try_acquire", args, nargs, kwnames, names, 1, o) < 0)
        return NULL;
    if ((o[0] && rldpy_parse_u64(o[0], "cost", &cost) < 0) ||
        (o[1] && (barge = PyObject_IsTrue(o[1])) < 0))
        return NULL;
    rld_client *c = rldpy_client_get(self->client);
    if (!c)
        return NULL;
    rld_result res;
    for (int attempt = 0;; attempt++) {
        int r = barge ? rld_try_ex(c, self->lim, cost, RLD_TRY_BARGE, &res)
                      : rld_try(c, self->lim, cost, &res);
        if (r == 0 || r == -EAGAIN)
            return rldpy_result_new(&res, r == 0);
        if (r == -ESTALE && attempt == 0) {
            if (limit_refind(self, c) < 0)
                return NULL;
            continue;
        }
        return limit_raise(self, r, NULL);
    }
}

static const char *const wait_args[] = { "cost", "timeout", "priority", "barge", NULL };

/* The arguments of acquire and acquire_async: 0, or -1 with an exception. */
static int parse_wait(const char *fn, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames, uint64_t *cost, PyObject **timeo, int64_t *timeout_ns,
                      int *priority, int *barge)
{
    PyObject *o[4] = { NULL, NULL, NULL, NULL };
    if (rldpy_parse_args(fn, args, nargs, kwnames, wait_args, 4, o) < 0)
        return -1;
    *cost = 1;
    if ((o[0] && rldpy_parse_u64(o[0], "cost", cost) < 0) ||
        rldpy_parse_wait_opts(o + 1, timeo, timeout_ns, priority, barge) < 0)
        return -1;
    return 0;
}

/* acquire(cost=1, timeout=None, priority=0, barge=False) */
static PyObject *limit_acquire(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    rldpy_limit *self = (rldpy_limit *)op;
    uint64_t cost;
    PyObject *timeo;
    int64_t timeout_ns;
    int priority, barge;
    if (parse_wait("acquire", args, nargs, kwnames, &cost, &timeo, &timeout_ns, &priority,
                   &barge) < 0)
        return NULL;
    rldpy_charges cs;
    rldpy_charges_one(self, cost, &cs);
    PyObject *r = rldpy_wait(self->client, &cs, timeo, timeout_ns, priority, barge);
    rldpy_charges_clear(&cs);
    return r;
}

/* acquire_async(cost=1, timeout=None, priority=0, barge=False): argument errors raise now,
 * everything else happens when awaited, as with an async def. */
static PyObject *limit_acquire_async(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                     PyObject *kwnames)
{
    rldpy_limit *self = (rldpy_limit *)op;
    uint64_t cost;
    PyObject *timeo;
    int64_t timeout_ns;
    int priority, barge;
    if (parse_wait("acquire_async", args, nargs, kwnames, &cost, &timeo, &timeout_ns, &priority,
                   &barge) < 0)
        return NULL;
    rldpy_charges cs;
    rldpy_charges_one(self, cost, &cs);
    return rldpy_acquire_new(self->client, op, &cs, timeo, timeout_ns, priority, barge);
}

/* _refind(): look the name up again (rld/_waits.py, after a wait said the handle is stale). */
static PyObject *limit_refind_py(PyObject *op, PyObject *unused)
{
    rldpy_limit *self = (rldpy_limit *)op;
    rld_client *c = rldpy_client_get(self->client);
    if (!c || limit_refind(self, c) < 0)
        return NULL;
    Py_RETURN_NONE;
}

typedef int (*amount_fn)(rld_client *, rld_limit, uint64_t);

static PyObject *limit_amount(rldpy_limit *self, PyObject *arg, amount_fn f)
{
    uint64_t n;
    if (rldpy_parse_u64(arg, "amount", &n) < 0)
        return NULL;
    rld_client *c = rldpy_client_get(self->client);
    if (!c)
        return NULL;
    int r = f(c, self->lim, n);
    if (r == -ESTALE) {
        if (limit_refind(self, c) < 0)
            return NULL;
        r = f(c, self->lim, n);
    }
    if (r < 0)
        return limit_raise(self, r, NULL);
    Py_RETURN_NONE;
}

/* refund(amount, /, window=None): librld's rld_refund, or rld_refund_ex given a window. */
static PyObject *limit_refund(PyObject *op, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "", "window", NULL };
    rldpy_limit *self = (rldpy_limit *)op;
    PyObject *amount, *window = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:refund", kwlist, &amount, &window))
        return NULL;
    if (window == Py_None)
        return limit_amount(self, amount, rld_refund);
    uint64_t n, w;
    if (rldpy_parse_u64(amount, "amount", &n) < 0 || rldpy_parse_u64(window, "window", &w) < 0)
        return NULL;
    if (w > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "window: not a window of a Result (0 .. 2**32-1)");
        return NULL;
    }
    rld_client *c = rldpy_client_get(self->client);
    if (!c)
        return NULL;
    int r = rld_refund_ex(c, self->lim, n, (uint32_t)w);
    if (r == -ESTALE) {
        if (limit_refind(self, c) < 0)
            return NULL;
        r = rld_refund_ex(c, self->lim, n, (uint32_t)w);
    }
    if (r < 0)
        return limit_raise(self, r, NULL);
    Py_RETURN_NONE;
}

static PyObject *limit_debit(PyObject *op, PyObject *arg)
{
    return limit_amount((rldpy_limit *)op, arg, rld_debit);
}

static PyObject *limit_peek(PyObject *op, PyObject *unused)
{
    rldpy_limit *self = (rldpy_limit *)op;
    rld_client *c = rldpy_client_get(self->client);
    if (!c)
        return NULL;
    rld_result res;
    int r = rld_peek(c, self->lim, &res);
    if (r == -ESTALE) {
        if (limit_refind(self, c) < 0)
            return NULL;
        r = rld_peek(c, self->lim, &res);
    }
    if (r < 0)
        return limit_raise(self, r, NULL);
    return rldpy_result_new(&res, res.remaining > 0 || (res.flags & RLD_F_UNLIMITED));
}

static PyObject *limit_info(PyObject *op, PyObject *unused)
{
    rldpy_limit *self = (rldpy_limit *)op;
    rld_client *c = rldpy_client_get(self->client);
    if (!c)
        return NULL;
    rld_limit_info in;
    int r = rld_info(c, self->lim, &in);
    if (r == -ESTALE) {
        if (limit_refind(self, c) < 0)
            return NULL;
        r = rld_info(c, self->lim, &in);
    }
    if (r < 0)
        return limit_raise(self, r, NULL);
    if (self->rate_count) {       /* a key of a rate = caller template: its own rate */
        in.rate_count = in.burst = self->rate_count;
        in.rate_period_ns = self->rate_period_ns;
    }
    return rldpy_info_new(&in);
}

static PyObject *limit_reduce(PyObject *op, PyObject *unused)
{
    rldpy_limit *self = (rldpy_limit *)op;
    return Py_BuildValue("O(OO)", (PyObject *)Py_TYPE(op), (PyObject *)self->client, self->name);
}

static PyObject *limit_repr(PyObject *op)
{
    rldpy_limit *self = (rldpy_limit *)op;
    return PyUnicode_FromFormat("<rld.Limit %R instance=%R>", self->name,
                                self->client->instance);
}

static PyObject *get_name(PyObject *op, void *c) { return Py_NewRef(((rldpy_limit *)op)->name); }
static PyObject *get_client(PyObject *op, void *c) { return Py_NewRef(((rldpy_limit *)op)->client); }

static PyGetSetDef limit_getset[] = {
    { "name", get_name, NULL, "The limit's name.", NULL },
    { "client", get_client, NULL, "The Client it was found through.", NULL },
    { NULL },
};

static PyMethodDef limit_methods[] = {
    { "try_acquire", RLDPY_METH(limit_try), METH_FASTCALL | METH_KEYWORDS,
      "try_acquire($self, /, cost=1, *, barge=False)\n--\n\n"
      "Take COST tokens if they fit now: one compare-and-swap in shared memory, no system\n"
      "call (the GIL is kept). The Result is truthy when taken; when not, retry_after says\n"
      "when they would fit. While callers are queued at the daemon a try is denied so the\n"
      "queue is not starved, unless BARGE. Cost 0 always succeeds and takes nothing.\n"
      "Raises rld.CostTooHigh when COST exceeds the burst (it can never fit)." },
    { "acquire", RLDPY_METH(limit_acquire), METH_FASTCALL | METH_KEYWORDS,
      "acquire($self, /, cost=1, timeout=None, priority=0, barge=False)\n--\n\n"
      "Wait until COST tokens fit, then take them: the fast path first, then a queued wait\n"
      "at the daemon (FIFO across processes within a priority 0..7, higher first). Blocks\n"
      "with the GIL released. Raises rld.Timeout (a TimeoutError) at once, without waiting,\n"
      "when the wait cannot be served within TIMEOUT seconds (None: no limit); its\n"
      "retry_after is the wait it would have needed. When the daemon is down the wait is\n"
      "served client-side and Result.degraded is True.\n\n"
      "Signals: in the main thread the wait polls the client's wait descriptor and runs\n"
      "signal handlers as they come: Ctrl-C raises KeyboardInterrupt at once, the wait gives\n"
      "its place up (the callers behind move up) and takes nothing (a grant that crossed\n"
      "the interrupt is given back). A handler that does not raise lets the wait go on." },
    { "acquire_async", RLDPY_METH(limit_acquire_async), METH_FASTCALL | METH_KEYWORDS,
      "acquire_async($self, /, cost=1, timeout=None, priority=0, barge=False)\n--\n\n"
      "acquire for asyncio: ``r = await lim.acquire_async(1)``. A coroutine: nothing happens\n"
      "until it is awaited; then the fast path (an admitted call never touches the event\n"
      "loop), and when that says no, a wait queued at the daemon as acquire's (FIFO across\n"
      "processes within a priority, the same rld.Timeout at once when it cannot fit) that\n"
      "blocks no thread: the client's one wait descriptor is added to the running loop\n"
      "(loop.add_reader) while it has waits there. Cancelling the task (task.cancel(),\n"
      "asyncio.timeout, wait_for) gives its place up at once and takes nothing; tokens\n"
      "granted as it was cancelled are given back. Works in any number of loops and\n"
      "threads, and in forked children. When the daemon is down the wait is served\n"
      "client-side (Result.degraded)." },
    { "_refind", limit_refind_py, METH_NOARGS,
      "_refind($self, /)\n--\n\nLook the name up again (internal); rld.Deleted when it is gone." },
    { "refund", (PyCFunction)(void (*)(void))limit_refund, METH_VARARGS | METH_KEYWORDS,
      "refund($self, amount, /, window=None)\n--\n\nGive back AMOUNT tokens taken earlier (the bucket never\n"
      "exceeds its burst). On a window limit (sliding, fixed) they go back to the window\n"
      "they were taken in while it is current: WINDOW is the taking call's Result.window;\n"
      "without it, the window of this thread's last take of this limit, and rld.Error\n"
      "(EOPNOTSUPP) when that is not known." },
    { "debit", limit_debit, METH_O,
      "debit($self, amount, /)\n--\n\nTake AMOUNT tokens without asking: may go into debt,\n"
      "which later callers wait out. rld.DebtOverflow when the debt would exceed 2^62 ns\n"
      "of the rate (nothing taken)." },
    { "peek", limit_peek, METH_NOARGS,
      "peek($self, /)\n--\n\nThe limit's state now, taking nothing. Truthy when at least one\n"
      "token is available; retry_after > 0 only while in debt; queue_position is the number\n"
      "of callers queued at the daemon." },
    { "info", limit_info, METH_NOARGS,
      "info($self, /)\n--\n\nThe limit's configuration (rate, burst) and counters: an rld.Info." },
    { "__reduce__", limit_reduce, METH_NOARGS, NULL },
    { NULL },
};

PyTypeObject rldpy_limit_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rld._rld.Limit",
    .tp_basicsize = sizeof(rldpy_limit),
    .tp_dealloc = limit_dealloc,
    .tp_repr = limit_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Limit(client, name)\n--\n\n"
              "A limit of an rld instance, found by name (Client.limit(name) makes one).\n"
              "Raises rld.NotFound when there is none. Cheap to keep: find once, take often.\n"
              "A limit deleted and created again under the same name is found again on use.",
    .tp_getset = limit_getset,
    .tp_methods = limit_methods,
    .tp_new = limit_tp_new,
};

int rldpy_limit_init(PyObject *m)
{
    if (PyType_Ready(&rldpy_limit_type) < 0)
        return -1;
    return PyModule_AddObjectRef(m, "Limit", (PyObject *)&rldpy_limit_type);
}
