/*
 * client.c - rld.Client: one attached instance (rld_open), and the reference-counted librld
 * client behind it.
 *
 * A Client is meant to be made once per process and shared by every thread (librld's client
 * is thread-safe). Forked children inherit it: the shared-memory fast path works there as it
 * does in the parent. close() (or leaving a with block) detaches; the rld_close() itself is
 * deferred until no wait still runs on the client.
 */
#include "rldpy.h"

#include <errno.h>
#include <stdlib.h>

rldpy_handle *rldpy_handle_new(rld_client *c)
{
    rldpy_handle *h = malloc(sizeof(*h));
    if (!h)
        return NULL;
    h->c = c;
    atomic_init(&h->refs, 1);
    return h;
}

void rldpy_handle_ref(rldpy_handle *h)
{
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
}

void rldpy_handle_unref(rldpy_handle *h)
{
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1) {
        rld_close(h->c);
        free(h);
    }
}

rld_client *rldpy_client_get(rldpy_client *c)
{
    if (c->h)
        return c->h->c;
    rldpy_raise_msg(rldpy_Error, EBADF, "the rld.Client of instance %R is closed: open another "
                    "(rld.Client(instance)) and find the limit again through it", c->instance);
    return NULL;
}

static void client_close_handle(rldpy_client *self)
{
    rldpy_handle *h = self->h;
    self->h = NULL;
    Py_CLEAR(self->router);   /* its waits go on: it holds a reference of its own to H */
    if (h) {
        /* rld_close may flush counters and close sockets: nothing to hold the GIL for */
        Py_BEGIN_ALLOW_THREADS
        rldpy_handle_unref(h);
        Py_END_ALLOW_THREADS
    }
}

static PyObject *client_tp_new(PyTypeObject *t, PyObject *args, PyObject *kw)
{
    rldpy_client *self = (rldpy_client *)t->tp_alloc(t, 0);
    if (self) {
        self->h = NULL;
        self->instance = Py_NewRef(Py_None);
        self->router = NULL;
    }
    return (PyObject *)self;
}

static int client_tp_init(PyObject *op, PyObject *args, PyObject *kw)
{
    rldpy_client *self = (rldpy_client *)op;
    static char *kwlist[] = { "instance", NULL };
    PyObject *inst = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:Client", kwlist, &inst))
        return -1;
    const char *name = NULL;
    PyObject *resolved;
    if (inst == Py_None) {
        const char *env = getenv("RLD_INSTANCE");
        resolved = PyUnicode_FromString(env && *env ? env : "default");
    } else if (PyUnicode_Check(inst)) {
        resolved = Py_NewRef(inst);
    } else {
        PyErr_Format(PyExc_TypeError, "instance must be a str or None, not %.100s",
                     Py_TYPE(inst)->tp_name);
        return -1;
    }
    if (!resolved || !(name = PyUnicode_AsUTF8(resolved))) {
        Py_XDECREF(resolved);
        return -1;
    }
    rld_client *c = NULL;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = rld_open(name, 0, &c);
    Py_END_ALLOW_THREADS
    if (r < 0) {
        char detail[160];
        PyObject *e;
        if (r == -ENOENT) {
            PyOS_snprintf(detail, sizeof(detail), "instance '%.64s' (is rld running?)", name);
            e = rldpy_error_new(r, detail);
        } else if (r == -EAGAIN) {
            PyOS_snprintf(detail, sizeof(detail),
                          "instance '%.64s': the daemon is still creating its segment", name);
            e = rldpy_error_new_as(rldpy_NotReady, r, detail);
        } else {
            PyOS_snprintf(detail, sizeof(detail), "instance '%.64s'", name);
            e = rldpy_error_new(r, detail);
        }
        if (e) {
            PyErr_SetObject((PyObject *)Py_TYPE(e), e);
            Py_DECREF(e);
        }
        Py_DECREF(resolved);
        return -1;
    }
    rldpy_handle *h = rldpy_handle_new(c);
    if (!h) {
        rld_close(c);
        Py_DECREF(resolved);
        PyErr_NoMemory();
        return -1;
    }
    client_close_handle(self);     /* __init__ called again: the old one goes */
    self->h = h;
    Py_SETREF(self->instance, resolved);
    return 0;
}

static void client_dealloc(PyObject *op)
{
    rldpy_client *self = (rldpy_client *)op;
    if (self->h)
        rldpy_handle_unref(self->h);
    self->h = NULL;
    Py_CLEAR(self->instance);
    Py_CLEAR(self->router);
    Py_TYPE(op)->tp_free(op);
}

static PyObject *client_close(PyObject *op, PyObject *unused)
{
    client_close_handle((rldpy_client *)op);
    Py_RETURN_NONE;
}

static PyObject *client_enter(PyObject *op, PyObject *unused)
{
    if (!rldpy_client_get((rldpy_client *)op))
        return NULL;
    return Py_NewRef(op);
}

static PyObject *client_exit(PyObject *op, PyObject *args)
{
    client_close_handle((rldpy_client *)op);
    Py_RETURN_FALSE;
}

/* limit(name): an instance of type(self).limit_class (rld.Limit for rld.Client). */
static PyObject *client_limit(PyObject *op, PyObject *name)
{
    PyObject *cls = PyObject_GetAttrString(op, "limit_class");
    if (!cls)
        return NULL;
    PyObject *r = PyObject_CallFunctionObjArgs(cls, op, name, NULL);
    Py_DECREF(cls);
    return r;
}

/* template(name): an instance of type(self).template_class (rld.Template for rld.Client). */
static PyObject *client_template(PyObject *op, PyObject *name)
{
    PyObject *cls = PyObject_GetAttrString(op, "template_class");
    if (!cls)
        return NULL;
    PyObject *r = PyObject_CallFunctionObjArgs(cls, op, name, NULL);
    Py_DECREF(cls);
    return r;
}

static PyObject *client_repr(PyObject *op)
{
    rldpy_client *self = (rldpy_client *)op;
    return PyUnicode_FromFormat("<rld.Client instance=%R%s>", self->instance,
                                self->h ? "" : " closed");
}

static PyObject *get_instance(PyObject *op, void *c)
{
    return Py_NewRef(((rldpy_client *)op)->instance);
}

static PyObject *get_closed(PyObject *op, void *c)
{
    return PyBool_FromLong(((rldpy_client *)op)->h == NULL);
}

/* _waits(): a new engine object (rld._rld._Waits) for this client's handle. */
static PyObject *client_waits(PyObject *op, PyObject *unused)
{
    rldpy_client *self = (rldpy_client *)op;
    if (!rldpy_client_get(self))
        return NULL;
    return rldpy_waits_new(self->h);
}

static PyObject *get_router(PyObject *op, void *c)
{
    PyObject *r = ((rldpy_client *)op)->router;
    return Py_NewRef(r ? r : Py_None);
}

static int set_router(PyObject *op, PyObject *v, void *c)
{
    rldpy_client *self = (rldpy_client *)op;
    if (v && v != Py_None && !self->h) {
        rldpy_client_get(self);   /* EBADF */
        return -1;
    }
    Py_XSETREF(self->router, v && v != Py_None ? Py_NewRef(v) : NULL);
    return 0;
}

static PyGetSetDef client_getset[] = {
    { "_router", get_router, set_router,
      "rld/_waits.py's router of this client's waits (internal), or None.", NULL },
    { "instance", get_instance, NULL, "The instance name (as resolved when opened).", NULL },
    { "closed", get_closed, NULL, "True after close().", NULL },
    { NULL },
};

static PyMethodDef client_methods[] = {
    { "limit", client_limit, METH_O,
      "limit($self, name, /)\n--\n\n"
      "The limit NAME of this instance. Raises rld.NotFound (a LookupError) when there is\n"
      "none, rld.InvalidArgument for a malformed name. Find once, use many times." },
    { "template", client_template, METH_O,
      "template($self, name, /)\n--\n\n"
      "The template NAME of this instance (a [template] of rld.conf(5): a limit per key).\n"
      "Raises rld.NotFound when there is none (a [limit] of that name is not one)." },
    { "close", client_close, METH_NOARGS,
      "close($self, /)\n--\n\nDetach from the instance. Limits found through it then raise\n"
      "rld.Error (EBADF). Waits still running finish first. Idempotent." },
    { "_waits", client_waits, METH_NOARGS,
      "_waits($self, /)\n--\n\nThe non-blocking wait engine of this client (internal)." },
    { "__enter__", client_enter, METH_NOARGS, NULL },
    { "__exit__", client_exit, METH_VARARGS, NULL },
    { NULL },
};

PyTypeObject rldpy_client_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rld._rld.Client",
    .tp_basicsize = sizeof(rldpy_client),
    .tp_dealloc = client_dealloc,
    .tp_repr = client_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Client(instance=None)\n--\n\n"
              "Attach rld instance INSTANCE (None: $RLD_INSTANCE, else \"default\"): its\n"
              "shared-memory segment, created by the daemon rld. Make one per process and share\n"
              "it between threads. Raises rld.NotFound when no daemon ever created the instance.\n"
              "A context manager: leaving the with block closes it.",
    .tp_getset = client_getset,
    .tp_methods = client_methods,
    .tp_init = client_tp_init,
    .tp_new = client_tp_new,
};

int rldpy_client_init(PyObject *m)
{
    if (PyType_Ready(&rldpy_client_type) < 0 ||
        PyDict_SetItemString(rldpy_client_type.tp_dict, "limit_class",
                             (PyObject *)&rldpy_limit_type) < 0 ||
        PyDict_SetItemString(rldpy_client_type.tp_dict, "template_class",
                             (PyObject *)&rldpy_template_type) < 0)
        return -1;
    for (PyMethodDef *d = rldpy_multi_methods; d->ml_name; d++) {   /* multi.c */
        PyObject *f = PyDescr_NewMethod(&rldpy_client_type, d);
        if (!f || PyDict_SetItemString(rldpy_client_type.tp_dict, d->ml_name, f) < 0) {
            Py_XDECREF(f);
            return -1;
        }
        Py_DECREF(f);
    }
    PyType_Modified(&rldpy_client_type);
    return PyModule_AddObjectRef(m, "Client", (PyObject *)&rldpy_client_type);
}
