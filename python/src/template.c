/*
 * template.c - rld.Template (a [template] of rld.conf(5): a limit per key, a client IP, a
 * user, a tenant) and rld.Key (one key of a template, a Limit: waits, refund, debit, peek,
 * info and the multi calls take it as they take a Limit).
 *
 * Template.try_acquire is the hot call of a web handler: rld_try_key finds or creates the
 * key's bucket in shared memory and takes the cost, with the GIL kept, as Limit.try_acquire.
 * Template.acquire and acquire_async take a key handle (rld_key) and go through the waits of
 * wait.c as a Limit does; a handle gone stale (the key was reclaimed: full again and idle,
 * or the template was deleted) is looked up again (rldpy_key_refind), the template found
 * again by name when it is the template that went.
 *
 * Keys are str (taken as UTF-8) or bytes, 1 to 256 bytes. rate=(count, period_seconds) is
 * for templates of rate = caller (rld_try_key_rate, rld_key_rate): each key's own rate.
 */
#include "rldpy.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define KEY_MAX 256                              /* librld's key length limit */
#define RATE_PERIOD_MAX_MS UINT64_C(4294967295)  /* rld_try_key_rate: up to 2^32-1 ms */

/* ---- arguments --------------------------------------------------------------------------- */

/* Raise rld.InvalidArgument (errno EINVAL) with a message; returns -1. */
#define invalid(...) (rldpy_raise_msg(rldpy_InvalidArgument, EINVAL, __VA_ARGS__), -1)

/* KEY's bytes: a str as UTF-8, or bytes; 1..256 of them. 0, or -1 with an exception. */
static int key_bytes(PyObject *key, const char **p, size_t *n)
{
    Py_ssize_t len;
    if (PyUnicode_Check(key)) {
        if (!(*p = PyUnicode_AsUTF8AndSize(key, &len)))
            return -1;
    } else if (PyBytes_Check(key)) {
        *p = PyBytes_AS_STRING(key);
        len = PyBytes_GET_SIZE(key);
    } else {
        PyErr_Format(PyExc_TypeError, "key must be a str or bytes, not %.100s",
                     Py_TYPE(key)->tp_name);
        return -1;
    }
    if (len < 1 || len > KEY_MAX) {
        return invalid("a key is 1 to %d bytes%s, not %zd", KEY_MAX,
                       PyUnicode_Check(key) ? " (UTF-8)" : "", len);
    }
    *n = (size_t)len;
    return 0;
}

/* RATE: None (0, 0) or (count, period_seconds): count 1..2^32-1, period whole milliseconds
 * from 1 ms to 2^32-1 ms (49.7 days), what rld_try_key_rate accepts. */
static int parse_rate(PyObject *rate, uint64_t *count, uint64_t *period_ns)
{
    *count = *period_ns = 0;
    if (!rate || rate == Py_None)
        return 0;
    if (!PyTuple_Check(rate) || PyTuple_GET_SIZE(rate) != 2) {
        PyErr_Format(PyExc_TypeError, "rate must be None or a (count, period_seconds) tuple, "
                     "not %.100s", Py_TYPE(rate)->tp_name);
        return -1;
    }
    uint64_t c;
    if (rldpy_parse_u64(PyTuple_GET_ITEM(rate, 0), "rate count", &c) < 0)
        return -1;
    PyObject *po = PyTuple_GET_ITEM(rate, 1);
    double s = PyFloat_AsDouble(po);
    if (s == -1.0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "rate period must be a number of seconds, not %.100s",
                         Py_TYPE(po)->tp_name);
        }
        return -1;
    }
    double ns = nearbyint(s * 1e9);
    if (c < 1 || c > UINT32_MAX) {
        return invalid("rate count must be 1 to 4294967295, not %llu", (unsigned long long)c);
    }
    if (!(ns >= 1e6 && ns <= (double)RATE_PERIOD_MAX_MS * 1e6) || fmod(ns, 1e6) != 0.0) {
        return invalid("rate period must be whole milliseconds from 0.001 s to 4294967.295 s "
                       "(49.7 days), not %R", PyTuple_GET_ITEM(rate, 1));
    }
    *count = c;
    *period_ns = (uint64_t)ns;
    return 0;
}

/* ---- Template ------------------------------------------------------------------------------ */

static void template_describe(rldpy_template *t, char *buf, size_t size)
{
    PyOS_snprintf(buf, size, "template '%.64s'", PyUnicode_AsUTF8(t->name));
}

/* KEY (a str or bytes) for messages: 'text' or b'...', at most ~70 characters. */
static void key_text(PyObject *key, char *buf, size_t size)
{
    PyObject *r = PyObject_Repr(key);
    const char *s = r ? PyUnicode_AsUTF8(r) : NULL;
    if (!s) {
        PyErr_Clear();
        s = "?";
    }
    if (strlen(s) > 72)
        PyOS_snprintf(buf, size, "%.68s...", s);
    else
        PyOS_snprintf(buf, size, "%s", s);
    Py_XDECREF(r);
}

void rldpy_key_describe(rldpy_limit *self, char *buf, size_t size)
{
    char k[80];
    key_text(self->key, k, sizeof(k));
    PyOS_snprintf(buf, size, "key %s of template '%.64s'", k, PyUnicode_AsUTF8(self->name));
}

/* The error ERR of a call on KEY (NULL: the template itself) of template T. RATE says
 * whether the call gave a rate, for the hint on -EINVAL. */
static PyObject *template_raise(rldpy_template *t, PyObject *key, int err, bool rate,
                                const rld_result *res)
{
    char detail[240], k[80];
    if (key) {
        key_text(key, k, sizeof(k));
        PyOS_snprintf(detail, sizeof(detail), "key %s of template '%.64s'%s", k,
                      PyUnicode_AsUTF8(t->name),
                      err != -EINVAL ? ""
                      : rate ? " (rate= is for templates of rate = caller)"
                             : " (a new key of a rate = caller template needs "
                               "rate=(count, period))");
    } else {
        template_describe(t, detail, sizeof(detail));
    }
    return rldpy_raise(err, detail, res);
}

/* The template was deleted (-ESTALE): find its name again. 0, or -1 with rld.Deleted (the
 * name is gone) or another error raised. */
static int template_refind(rldpy_template *t, rld_client *c)
{
    rld_template nt;
    int r = rld_find_template(c, PyUnicode_AsUTF8(t->name), &nt);
    if (r == 0) {
        t->t = nt;
        return 0;
    }
    template_raise(t, NULL, r == -ENOENT ? -ESTALE : r, false, NULL);
    return -1;
}

static PyObject *template_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    rldpy_client *cl;
    rld_client *c;
    PyObject *name;
    const char *n;
    if (rldpy_parse_named("Template", "template", args, kw, &cl, &c, &name, &n) < 0)
        return NULL;
    rld_template t;
    int r = rld_find_template(c, n, &t);
    if (r < 0)
        return rldpy_named_raise(cl, "template", n, r);
    rldpy_template *self = (rldpy_template *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->client = (rldpy_client *)Py_NewRef((PyObject *)cl);
    self->name = Py_NewRef(name);
    self->t = t;
    return (PyObject *)self;
}

static void template_dealloc(PyObject *op)
{
    rldpy_template *self = (rldpy_template *)op;
    Py_CLEAR(self->client);
    Py_CLEAR(self->name);
    Py_TYPE(op)->tp_free(op);
}

/* try_acquire(key, cost=1, *, rate=None) */
static PyObject *template_try(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames)
{
    static const char *const names[] = { "key", "cost", "rate", NULL };
    rldpy_template *self = (rldpy_template *)op;
    PyObject *o[3] = { NULL, NULL, NULL };
    if (nargs == 1 && !kwnames) {
        o[0] = args[0];                           /* the common call: try_acquire(ip) */
    } else {
        if (rldpy_parse_args("try_acquire", args, nargs, kwnames, names, 2, o) < 0)
            return NULL;
        if (!o[0])
            return PyErr_Format(PyExc_TypeError, "try_acquire() missing required argument 'key'");
    }
    const char *k;
    size_t klen;
    uint64_t cost = 1, count, period_ns;
    if (key_bytes(o[0], &k, &klen) < 0 || (o[1] && rldpy_parse_u64(o[1], "cost", &cost) < 0) ||
        parse_rate(o[2], &count, &period_ns) < 0)
        return NULL;
    rld_client *c = rldpy_client_get(self->client);
    if (!c)
        return NULL;
    rld_result res;
    for (int attempt = 0;; attempt++) {
        int r = count ? rld_try_key_rate(c, self->t, k, klen, count, period_ns, cost, &res)
                      : rld_try_key(c, self->t, k, klen, cost, &res);
        if (r == 0 || r == -EAGAIN)
            return rldpy_result_new(&res, r == 0);
        if (r == -ESTALE && attempt == 0) {
            if (template_refind(self, c) < 0)
                return NULL;
            continue;
        }
        return template_raise(self, o[0], r, count != 0, NULL);
    }
}

/* KEY's handle in T: rld_key, or rld_key_rate given a rate; the template found again once
 * when it was deleted. 0, or -1 with an exception. */
static int key_handle(rldpy_template *t, rld_client *c, PyObject *key, uint64_t count,
                      uint64_t period_ns, rld_limit *out)
{
    const char *k;
    size_t klen;
    if (key_bytes(key, &k, &klen) < 0)
        return -1;
    for (int attempt = 0;; attempt++) {
        int r = count ? rld_key_rate(c, t->t, k, klen, count, period_ns, out)
                      : rld_key(c, t->t, k, klen, out);
        if (r == 0)
            return 0;
        if (r == -ESTALE && attempt == 0) {
            if (template_refind(t, c) < 0)
                return -1;
            continue;
        }
        template_raise(t, key, r, count != 0, NULL);
        return -1;
    }
}

/* A new Key (of TYPE, rld._rld.Key or a subclass) on KEY of T. */
static PyObject *key_make(PyTypeObject *type, rldpy_template *t, PyObject *key, uint64_t count,
                          uint64_t period_ns)
{
    rld_client *c = rldpy_client_get(t->client);
    if (!c)
        return NULL;
    rld_limit lim;
    if (key_handle(t, c, key, count, period_ns, &lim) < 0)
        return NULL;
    rldpy_limit *self = (rldpy_limit *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->client = (rldpy_client *)Py_NewRef((PyObject *)t->client);
    self->name = Py_NewRef(t->name);
    self->lim = lim;
    self->tpl = (rldpy_template *)Py_NewRef((PyObject *)t);
    self->key = Py_NewRef(key);
    self->rate_count = count;
    self->rate_period_ns = period_ns;
    return (PyObject *)self;
}

int rldpy_key_refind(rldpy_limit *self, rld_client *c)
{
    rld_limit lim;
    if (key_handle(self->tpl, c, self->key, self->rate_count, self->rate_period_ns, &lim) < 0)
        return -1;
    self->lim = lim;
    return 0;
}

static const char *const wait_args[] = { "key", "cost", "timeout", "priority", "barge", "rate",
                                         NULL };

/* acquire and acquire_async: the arguments, and the Key (a new reference in *KEYOBJ). */
static int parse_wait(rldpy_template *self, const char *fn, PyObject *const *args,
                      Py_ssize_t nargs, PyObject *kwnames, PyObject **keyobj, uint64_t *cost,
                      PyObject **timeo, int64_t *timeout_ns, int *priority, int *barge)
{
    PyObject *o[6] = { NULL, NULL, NULL, NULL, NULL, NULL };
    if (rldpy_parse_args(fn, args, nargs, kwnames, wait_args, 5, o) < 0)   /* rate: by name */
        return -1;
    if (!o[0]) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument 'key'", fn);
        return -1;
    }
    uint64_t count, period_ns;
    *cost = 1;
    if ((o[1] && rldpy_parse_u64(o[1], "cost", cost) < 0) ||
        rldpy_parse_wait_opts(o + 2, timeo, timeout_ns, priority, barge) < 0 ||
        parse_rate(o[5], &count, &period_ns) < 0)
        return -1;
    *keyobj = key_make(&rldpy_key_type, self, o[0], count, period_ns);
    return *keyobj ? 0 : -1;
}

/* acquire(key, cost=1, timeout=None, priority=0, barge=False, *, rate=None) */
static PyObject *template_acquire(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames)
{
    PyObject *k, *timeo;
    uint64_t cost;
    int64_t timeout_ns;
    int priority, barge;
    if (parse_wait((rldpy_template *)op, "acquire", args, nargs, kwnames, &k, &cost, &timeo,
                   &timeout_ns, &priority, &barge) < 0)
        return NULL;
    rldpy_limit *key = (rldpy_limit *)k;
    rldpy_charges cs;
    rldpy_charges_one(key, cost, &cs);
    PyObject *r = rldpy_wait(key->client, &cs, timeo, timeout_ns, priority, barge);
    rldpy_charges_clear(&cs);
    Py_DECREF(k);
    return r;
}

/* acquire_async(key, cost=1, timeout=None, priority=0, barge=False, *, rate=None): the key's
 * handle now (argument errors and rld.NoSpace raise now), everything else when awaited. */
static PyObject *template_acquire_async(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                        PyObject *kwnames)
{
    PyObject *k, *timeo;
    uint64_t cost;
    int64_t timeout_ns;
    int priority, barge;
    if (parse_wait((rldpy_template *)op, "acquire_async", args, nargs, kwnames, &k, &cost,
                   &timeo, &timeout_ns, &priority, &barge) < 0)
        return NULL;
    rldpy_limit *key = (rldpy_limit *)k;
    rldpy_charges cs;
    rldpy_charges_one(key, cost, &cs);
    PyObject *r = rldpy_acquire_new(key->client, k, &cs, timeo, timeout_ns, priority, barge);
    Py_DECREF(k);
    return r;
}

/* key(key, *, rate=None): an instance of type(self).key_class (rld.Key for rld.Template). */
static PyObject *template_key(PyObject *op, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "", "rate", NULL };
    PyObject *key, *rate = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$O:key", kwlist, &key, &rate))
        return NULL;
    PyObject *cls = PyObject_GetAttrString(op, "key_class");
    if (!cls)
        return NULL;
    PyObject *r = PyObject_CallFunctionObjArgs(cls, op, key, rate, NULL);
    Py_DECREF(cls);
    return r;
}

static PyObject *template_info(PyObject *op, PyObject *unused)
{
    rldpy_template *self = (rldpy_template *)op;
    rld_client *c = rldpy_client_get(self->client);
    if (!c)
        return NULL;
    rld_limit_info in;
    int r = rld_info(c, (rld_limit){ self->t.slot, self->t.gen }, &in);
    if (r == -ESTALE) {
        if (template_refind(self, c) < 0)
            return NULL;
        r = rld_info(c, (rld_limit){ self->t.slot, self->t.gen }, &in);
    }
    if (r < 0)
        return template_raise(self, NULL, r, false, NULL);
    return rldpy_info_new(&in);
}

static PyObject *template_reduce(PyObject *op, PyObject *unused)
{
    rldpy_template *self = (rldpy_template *)op;
    return Py_BuildValue("O(OO)", (PyObject *)Py_TYPE(op), (PyObject *)self->client, self->name);
}

static PyObject *template_repr(PyObject *op)
{
    rldpy_template *self = (rldpy_template *)op;
    return PyUnicode_FromFormat("<rld.Template %R instance=%R>", self->name,
                                self->client->instance);
}

static PyObject *tget_name(PyObject *op, void *c) { return Py_NewRef(((rldpy_template *)op)->name); }
static PyObject *tget_client(PyObject *op, void *c) { return Py_NewRef((PyObject *)((rldpy_template *)op)->client); }

static PyGetSetDef template_getset[] = {
    { "name", tget_name, NULL, "The template's name.", NULL },
    { "client", tget_client, NULL, "The Client it was found through.", NULL },
    { NULL },
};

static PyMethodDef template_methods[] = {
    { "try_acquire", RLDPY_METH(template_try), METH_FASTCALL | METH_KEYWORDS,
      "try_acquire($self, /, key, cost=1, *, rate=None)\n--\n\n"
      "Take COST tokens from KEY's bucket if they fit now, creating the bucket (full) when\n"
      "the key is new: the one call a request handler needs (rld_try_key: shared memory, no\n"
      "system call, the GIL kept). KEY is a str (its UTF-8) or bytes, 1 to 256 bytes. The\n"
      "Result is truthy when taken; when not, retry_after says when they would fit.\n\n"
      "RATE=(count, period_seconds) is for templates of rate = caller (per-tenant plans):\n"
      "the key's rate, set when it is created and changed when it differs (the key keeps\n"
      "its state in time); count 1 to 2**32-1, period whole milliseconds up to 49.7 days.\n"
      "Such a template needs it for a new key (rld.InvalidArgument otherwise).\n\n"
      "When the key is new and the table is full of keys with state: rld.NoSpace (the\n"
      "template's overflow = deny), or admitted with Result.overflow (overflow = allow).\n"
      "rld.CostTooHigh when COST exceeds the burst; rld.Deleted when the template is gone." },
    { "acquire", RLDPY_METH(template_acquire), METH_FASTCALL | METH_KEYWORDS,
      "acquire($self, /, key, cost=1, timeout=None, priority=0, barge=False, *, rate=None)\n"
      "--\n\n"
      "Wait until COST tokens of KEY's bucket fit, then take them: Limit.acquire on the key\n"
      "(self.key(key, rate=rate)): the fast path, then a fair wait at the daemon in the\n"
      "key's own queue; rld.Timeout at once when it cannot fit in TIMEOUT seconds. A key\n"
      "reclaimed meanwhile is looked up again. KEY and RATE as for try_acquire." },
    { "acquire_async", RLDPY_METH(template_acquire_async), METH_FASTCALL | METH_KEYWORDS,
      "acquire_async($self, /, key, cost=1, timeout=None, priority=0, barge=False, *, "
      "rate=None)\n--\n\n"
      "acquire for asyncio: ``r = await tpl.acquire_async(ip)``; see Limit.acquire_async.\n"
      "The key's handle is taken when called (argument errors and rld.NoSpace raise then);\n"
      "the rest happens when awaited." },
    { "key", RLDPY_METH(template_key), METH_VARARGS | METH_KEYWORDS,
      "key($self, key, /, *, rate=None)\n--\n\n"
      "A handle on KEY's bucket (created, full, when the key is new): an rld.Key, which is\n"
      "an rld.Limit: try_acquire, acquire, acquire_async, refund, debit, peek, info, the\n"
      "helpers, and the multi calls (a key's token with the template's others, all or\n"
      "nothing). RATE as for try_acquire. rld.NoSpace when the key is new and the table\n"
      "is full of keys with state (whatever the overflow policy)." },
    { "info", template_info, METH_NOARGS,
      "info($self, /)\n--\n\nThe template's configuration and counters: an rld.Info whose\n"
      "kind is 'template', rate and burst its keys', admitted and denied the sums over its\n"
      "keys, max_keys the table's capacity and keys the keys live now." },
    { "__reduce__", template_reduce, METH_NOARGS, NULL },
    { NULL },
};

PyTypeObject rldpy_template_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rld._rld.Template",
    .tp_basicsize = sizeof(rldpy_template),
    .tp_dealloc = template_dealloc,
    .tp_repr = template_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Template(client, name)\n--\n\n"
              "A [template] of an rld instance (Client.template(name) makes one): a limit per\n"
              "key, every client IP, user or tenant its own bucket, created in shared memory\n"
              "on first use. Raises rld.NotFound when there is no template of that name (a\n"
              "[limit] is not one). Find it once; take with try_acquire(key) per request.",
    .tp_getset = template_getset,
    .tp_methods = template_methods,
    .tp_new = template_tp_new,
};

/* ---- Key ----------------------------------------------------------------------------------- */

static PyObject *key_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "template", "key", "rate", NULL };
    PyObject *tpl, *key, *rate = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O|O:Key", kwlist, &rldpy_template_type, &tpl,
                                     &key, &rate))
        return NULL;
    uint64_t count, period_ns;
    if (parse_rate(rate, &count, &period_ns) < 0)
        return NULL;
    return key_make(type, (rldpy_template *)tpl, key, count, period_ns);
}

static PyObject *key_rate(const rldpy_limit *self)
{
    if (!self->rate_count)
        Py_RETURN_NONE;
    return Py_BuildValue("(Kd)", (unsigned long long)self->rate_count,
                         (double)self->rate_period_ns / 1e9);
}

static PyObject *key_reduce(PyObject *op, PyObject *unused)
{
    rldpy_limit *self = (rldpy_limit *)op;
    PyObject *rate = key_rate(self);
    if (!rate)
        return NULL;
    PyObject *r = Py_BuildValue("O(OOO)", (PyObject *)Py_TYPE(op), (PyObject *)self->tpl,
                                self->key, rate);
    Py_DECREF(rate);
    return r;
}

static PyObject *key_repr(PyObject *op)
{
    rldpy_limit *self = (rldpy_limit *)op;
    return PyUnicode_FromFormat("<rld.Key %R of template %R instance=%R>", self->key, self->name,
                                self->client->instance);
}

static PyObject *kget_key(PyObject *op, void *c) { return Py_NewRef(((rldpy_limit *)op)->key); }
static PyObject *kget_template(PyObject *op, void *c) { return Py_NewRef((PyObject *)((rldpy_limit *)op)->tpl); }
static PyObject *kget_rate(PyObject *op, void *c) { return key_rate((rldpy_limit *)op); }

static PyGetSetDef key_getset[] = {
    { "key", kget_key, NULL, "The key, as given (str or bytes).", NULL },
    { "template", kget_template, NULL, "The Template it is a key of.", NULL },
    { "rate", kget_rate, NULL,
      "(count, period_seconds) given for a rate = caller template, else None.", NULL },
    { NULL },
};

static PyMethodDef key_methods[] = {
    { "__reduce__", key_reduce, METH_NOARGS, NULL },
    { NULL },
};

PyTypeObject rldpy_key_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rld._rld.Key",
    .tp_basicsize = sizeof(rldpy_limit),
    .tp_repr = key_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Key(template, key, rate=None)\n--\n\n"
              "One key's bucket of a template (Template.key(key) makes one): an rld.Limit, so\n"
              "try_acquire, acquire, acquire_async, refund, debit, peek, info and the multi\n"
              "calls take it. Its name is the template's. Once the key is reclaimed (full\n"
              "again and idle) a call looks it up again by itself, as it finds a deleted\n"
              "limit again.",
    .tp_getset = key_getset,
    .tp_methods = key_methods,
    .tp_new = key_tp_new,
};

int rldpy_template_init(PyObject *m)
{
    rldpy_key_type.tp_base = &rldpy_limit_type;
    if (PyType_Ready(&rldpy_template_type) < 0 || PyType_Ready(&rldpy_key_type) < 0 ||
        PyDict_SetItemString(rldpy_template_type.tp_dict, "key_class",
                             (PyObject *)&rldpy_key_type) < 0)
        return -1;
    PyType_Modified(&rldpy_template_type);
    if (PyModule_AddObjectRef(m, "Template", (PyObject *)&rldpy_template_type) < 0 ||
        PyModule_AddObjectRef(m, "Key", (PyObject *)&rldpy_key_type) < 0)
        return -1;
    return 0;
}
