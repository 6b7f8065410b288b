/*
 * result.c - rld.Result (what a take, wait or peek decided) and rld.Info (a limit's
 * configuration and counters).
 *
 * Result is a small immutable C object made on every try_acquire, so it stores the
 * rld_result as it came and converts on attribute access: times are float seconds (and
 * exact integer nanoseconds under *_ns), counts are ints.
 */
#include "rldpy.h"

#include <structmember.h>

PyTypeObject *rldpy_info_type;

PyObject *rldpy_result_new(const rld_result *r, bool ok)
{
    rldpy_result *o = PyObject_New(rldpy_result, &rldpy_result_type);
    if (!o)
        return NULL;
    o->r = *r;
    o->ok = ok;
    return (PyObject *)o;
}

static void result_dealloc(PyObject *self)
{
    PyObject_Free(self);
}

/* Result(admitted, limit, remaining, retry_after_ns, reset_after_ns, queue_position=0,
 * flags=0, index=0, window=0): for pickling and for tests; librld makes the real ones. */
static PyObject *result_tp_new(PyTypeObject *t, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "admitted", "limit", "remaining", "retry_after_ns",
                              "reset_after_ns", "queue_position", "flags", "index", "window",
                              NULL };
    int ok;
    unsigned long long lim, rem, ra, rs;
    unsigned int qp = 0, flags = 0, index = 0, window = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "pKKKK|IIII:Result", kwlist, &ok, &lim, &rem, &ra,
                                     &rs, &qp, &flags, &index, &window))
        return NULL;
    rld_result r = { lim, rem, ra, rs, qp, flags, index, window };
    return rldpy_result_new(&r, ok);
}

static int result_bool(PyObject *self)
{
    return ((rldpy_result *)self)->ok;
}

#define R(self) (&((rldpy_result *)(self))->r)

static PyObject *get_admitted(PyObject *self, void *c) { return PyBool_FromLong(((rldpy_result *)self)->ok); }
static PyObject *get_limit(PyObject *self, void *c) { return PyLong_FromUnsignedLongLong(R(self)->limit); }
static PyObject *get_remaining(PyObject *self, void *c) { return PyLong_FromUnsignedLongLong(R(self)->remaining); }
static PyObject *get_retry_after(PyObject *self, void *c) { return PyFloat_FromDouble((double)R(self)->retry_after_ns / 1e9); }
static PyObject *get_reset_after(PyObject *self, void *c) { return PyFloat_FromDouble((double)R(self)->reset_after_ns / 1e9); }
static PyObject *get_retry_after_ns(PyObject *self, void *c) { return PyLong_FromUnsignedLongLong(R(self)->retry_after_ns); }
static PyObject *get_reset_after_ns(PyObject *self, void *c) { return PyLong_FromUnsignedLongLong(R(self)->reset_after_ns); }
static PyObject *get_queue_position(PyObject *self, void *c) { return PyLong_FromUnsignedLong(R(self)->queue_position); }
static PyObject *get_degraded(PyObject *self, void *c) { return PyBool_FromLong(R(self)->flags & RLD_F_DEGRADED); }
static PyObject *get_unlimited(PyObject *self, void *c) { return PyBool_FromLong(R(self)->flags & RLD_F_UNLIMITED); }
static PyObject *get_flags(PyObject *self, void *c) { return PyLong_FromUnsignedLong(R(self)->flags); }
static PyObject *get_index(PyObject *self, void *c) { return PyLong_FromUnsignedLong(R(self)->index); }
static PyObject *get_window(PyObject *self, void *c) { return PyLong_FromUnsignedLong(R(self)->window); }
static PyObject *get_overflow(PyObject *self, void *c) { return PyBool_FromLong(R(self)->flags & RLD_F_OVERFLOW); }

static PyGetSetDef result_getset[] = {
    { "admitted", get_admitted, NULL, "True when the tokens were taken (also bool(result)).", NULL },
    { "limit", get_limit, NULL, "The limit's burst capacity, in tokens (X-RateLimit-Limit); 2**64-1 when unlimited.", NULL },
    { "remaining", get_remaining, NULL, "Tokens left after this call (X-RateLimit-Remaining); 2**64-1 when unlimited.", NULL },
    { "retry_after", get_retry_after, NULL, "Seconds until the cost would fit; 0.0 when admitted (Retry-After).", NULL },
    { "reset_after", get_reset_after, NULL, "Seconds until the bucket is full again (X-RateLimit-Reset).", NULL },
    { "retry_after_ns", get_retry_after_ns, NULL, "retry_after in integer nanoseconds, rounded up: never too early.", NULL },
    { "reset_after_ns", get_reset_after_ns, NULL, "reset_after in integer nanoseconds.", NULL },
    { "queue_position", get_queue_position, NULL, "Waits: callers that were ahead of this one in the daemon's queue; peek: callers queued now.", NULL },
    { "degraded", get_degraded, NULL, "True when a wait was served without the daemon (client-side reservation and sleep).", NULL },
    { "unlimited", get_unlimited, NULL, "True when the limit's rate is unlimited (it admits everything).", NULL },
    { "flags", get_flags, NULL, "The raw RLD_F_* flags.", NULL },
    { "index", get_index, NULL, "Multi-limit calls: the index of the charge that decided.", NULL },
    { "overflow", get_overflow, NULL, "Keyed limits: True when admitted without a bucket, the template's key table being full of keys with state (overflow = allow in rld.conf(5)); limit and remaining are then 2**64-1.", NULL },
    { "window", get_window, NULL, "Window limits (sliding, fixed): the window the tokens were taken in, for Limit.refund(n, window=...); 0 for GCRA limits.", NULL },
    { NULL },
};

static unsigned long long ceil_s(uint64_t ns)
{
    return ns / 1000000000u + (ns % 1000000000u != 0);
}

static PyObject *result_headers(PyObject *self, PyObject *unused)
{
    const rld_result *r = R(self);
    PyObject *d = PyDict_New();
    /* librld(3), HEADERS: none for an unlimited limit or a handle admitting without an
     * instance or a limit (fail-open): both say remaining = UINT64_MAX */
    if (!d || (r->flags & RLD_F_UNLIMITED) || r->remaining == UINT64_MAX)
        return d;
    char buf[32];
    struct { const char *k; unsigned long long v; bool on; } h[] = {
        { "X-RateLimit-Limit", (unsigned long long)r->limit, true },
        { "X-RateLimit-Remaining", (unsigned long long)r->remaining, true },
        { "X-RateLimit-Reset", ceil_s(r->reset_after_ns), true },
        { "Retry-After", ceil_s(r->retry_after_ns), r->retry_after_ns > 0 },
    };
    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++) {
        if (!h[i].on)
            continue;
        PyOS_snprintf(buf, sizeof(buf), "%llu", h[i].v);
        PyObject *v = PyUnicode_FromString(buf);
        if (!v || PyDict_SetItemString(d, h[i].k, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(v);
    }
    return d;
}

static PyObject *result_reduce(PyObject *self, PyObject *unused)
{
    const rld_result *r = R(self);
    return Py_BuildValue("O(OKKKKIIII)", (PyObject *)Py_TYPE(self),
                         ((rldpy_result *)self)->ok ? Py_True : Py_False,
                         (unsigned long long)r->limit, (unsigned long long)r->remaining,
                         (unsigned long long)r->retry_after_ns,
                         (unsigned long long)r->reset_after_ns, r->queue_position, r->flags,
                         r->index, r->window);
}

static PyObject *result_repr(PyObject *self)
{
    const rld_result *r = R(self);
    bool ok = ((rldpy_result *)self)->ok;
    if (r->flags & RLD_F_UNLIMITED)
        return PyUnicode_FromFormat("<rld.Result %s unlimited>", ok ? "admitted" : "denied");
    char ra[32], rs[32], qp[32] = "";
    const char *dg = (r->flags & RLD_F_DEGRADED) ? " degraded" : "";
    /* %.9g keeps nanoseconds; PyUnicode_FromFormat has no %f */
    PyOS_snprintf(ra, sizeof(ra), "%.9g", (double)r->retry_after_ns / 1e9);
    PyOS_snprintf(rs, sizeof(rs), "%.9g", (double)r->reset_after_ns / 1e9);
    if (r->queue_position)
        PyOS_snprintf(qp, sizeof(qp), " queue_position=%u", r->queue_position);
    return PyUnicode_FromFormat(
        "<rld.Result %s remaining=%llu limit=%llu retry_after=%s reset_after=%s%s%s>",
        ok ? "admitted" : "denied", (unsigned long long)r->remaining,
        (unsigned long long)r->limit, ra, rs, qp, dg);
}

static PyMethodDef result_methods[] = {
    { "headers", result_headers, METH_NOARGS,
      "headers($self, /)\n--\n\n"
      "HTTP headers for this result, as librld(3) maps them: X-RateLimit-Limit (burst),\n"
      "X-RateLimit-Remaining, X-RateLimit-Reset (seconds until full, rounded up) and, when\n"
      "denied, Retry-After (seconds, rounded up: never too early). Empty when remaining is\n"
      "2**64-1 (an unlimited limit, or one admitting without an instance)." },
    { "__reduce__", result_reduce, METH_NOARGS, NULL },
    { NULL },
};

static PyNumberMethods result_as_number = {
    .nb_bool = result_bool,
};

PyTypeObject rldpy_result_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rld.Result",
    .tp_basicsize = sizeof(rldpy_result),
    .tp_dealloc = result_dealloc,
    .tp_repr = result_repr,
    .tp_as_number = &result_as_number,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "What a take, wait or peek decided. Truthy when admitted.\n\n"
              "Times are float seconds (exact integer nanoseconds under *_ns): retry_after is\n"
              "0.0 when admitted, else when the cost would fit (never too early); reset_after\n"
              "until the bucket is full. remaining and limit are tokens. headers() gives the\n"
              "X-RateLimit-* and Retry-After headers.",
    .tp_getset = result_getset,
    .tp_methods = result_methods,
    .tp_new = result_tp_new,
};

static PyStructSequence_Field info_fields[] = {
    { "name", "the limit's name" },
    { "rate", "tokens per second (float; math.inf when unlimited)" },
    { "count", "tokens per period as configured (0 when unlimited)" },
    { "period", "the configured period, in seconds (float)" },
    { "burst", "tokens available at once" },
    { "admitted", "tokens admitted and kept since the limit was created (published in batches)" },
    { "denied", "calls denied since the limit was created (published in batches)" },
    { "waiters", "callers queued at the daemon now" },
    { "unlimited", "True when the rate is unlimited" },
    { "refunded", "tokens given back after admission (refund, granted waits cancelled)" },
    { "rolled_back", "tokens taken and put back by all-or-nothing calls that failed" },
    { "debited", "tokens taken without asking (debit); in use: admitted + debited - refunded" },
    /* by name only (the tuple keeps its 12 items) */
    { "kind", "'limit', 'template' (counters: the sum over its keys) or 'key' (name: its template's)" },
    { "algorithm", "'gcra', 'sliding' or 'fixed'" },
    { "max_keys", "a template's (or a key's template's) key table capacity; 0 for a limit" },
    { "keys", "a template or a key: the keys of the template live now (approximate while they change); 0 for a limit" },
    { NULL },
};

static PyStructSequence_Desc info_desc = {
    "rld.Info",
    "A limit's configuration and counters (Limit.info(), Template.info(), Key.info()).\n"
    "Counters lag by what each thread has not published yet (every 64 calls or 50 ms, see\n"
    "librld(3)). kind, algorithm, max_keys and keys are attributes only (the tuple has the\n"
    "first 12 fields).",
    info_fields,
    12,
};

#define INFO_FIELDS 16

PyObject *rldpy_info_new(const rld_limit_info *in)
{
    PyObject *o = PyStructSequence_New(rldpy_info_type);
    if (!o)
        return NULL;
    static const char *const kinds[] = { "limit", "template", "key", "breaker" };
    static const char *const algos[] = { "gcra", "sliding", "fixed" };
    bool unl = in->rate_count == 0;
    double period = (double)in->rate_period_ns / 1e9;
    double rate = unl ? Py_HUGE_VAL : period > 0 ? (double)in->rate_count / period : 0.0;
    PyObject *v[INFO_FIELDS] = {
        PyUnicode_FromString(in->name),
        PyFloat_FromDouble(rate),
        PyLong_FromUnsignedLongLong(in->rate_count),
        PyFloat_FromDouble(period),
        PyLong_FromUnsignedLongLong(in->burst),
        PyLong_FromUnsignedLongLong(in->admitted),
        PyLong_FromUnsignedLongLong(in->denied),
        PyLong_FromUnsignedLong(in->waiters),
        PyBool_FromLong(unl),
        PyLong_FromUnsignedLongLong(in->refunded),
        PyLong_FromUnsignedLongLong(in->rolled_back),
        PyLong_FromUnsignedLongLong(in->debited),
        PyUnicode_FromString(in->kind < 4 ? kinds[in->kind] : "unknown"),
        PyUnicode_FromString(in->algorithm < 3 ? algos[in->algorithm] : "unknown"),
        PyLong_FromUnsignedLong(in->max_keys),
        PyLong_FromUnsignedLongLong(in->keys),
    };
    for (int i = 0; i < INFO_FIELDS; i++) {
        if (!v[i]) {
            for (int j = i + 1; j < INFO_FIELDS; j++)
                Py_XDECREF(v[j]);
            Py_DECREF(o);
            return NULL;
        }
        PyStructSequence_SetItem(o, i, v[i]);
    }
    return o;
}

int rldpy_result_init(PyObject *m)
{
    if (PyType_Ready(&rldpy_result_type) < 0 ||
        PyModule_AddObjectRef(m, "Result", (PyObject *)&rldpy_result_type) < 0)
        return -1;
    rldpy_info_type = PyStructSequence_NewType(&info_desc);
    if (!rldpy_info_type ||
        PyModule_AddObjectRef(m, "Info", (PyObject *)rldpy_info_type) < 0)
        return -1;
    return 0;
}
