/*
 * async.c - the objects of the waits that go through librld's non-blocking engine
 * (rld_wait_start, rld_wait_fd, rld_wait_collect, rld_wait_cancel): the waits of asyncio
 * code, and the blocking waits of the main thread (so Ctrl-C cancels them). The event-loop
 * side (the descriptor added to each loop that has waits, Futures, retries, errors) is
 * rld/_waits.py; what must not be interrupted half-way is here:
 *
 *  - _Acquire: the awaitable that Limit.acquire_async and Client.acquire_multi_async return.
 *    Nothing happens until it is awaited (as with an async def); then the fast path, and
 *    only when that says wait, the coroutine of rld/_waits.py, which it delegates to. A
 *    call admitted at once never touches the event loop, and costs one object. It has
 *    send/throw/close/__await__, so asyncio takes it for a coroutine (create_task...).
 *
 *  - _Waits: one per librld client handle. It owns a reference to the handle (so the
 *    librld client stays open while waits run, even after Client.close()) and the table of
 *    outstanding waits (a dict ticket -> _Waiter). start() starts a wait and enters it in
 *    the table; collect() takes the completions librld has and removes their waiters from
 *    the table; cancel() removes a waiter and cancels its wait. Each is one C call made with
 *    the GIL held, which is released nowhere inside: so a completion and its table entry
 *    change hands atomically between the threads that collect (several event loops may
 *    share a client, each polling its descriptor), and no signal handler (Ctrl-C) can run
 *    between a wait started and its entry made, or a completion collected and its waiter
 *    told.
 *
 *  - _Waiter: one wait. Its state moves NEW -> PENDING (started) -> DONE (its completion
 *    collected: code and result set) and to GONE when given up. cancel() guarantees that a
 *    waiter given up holds nothing: PENDING, librld cancels it (nothing taken; a grant that
 *    crossed the cancel is given back by librld); DONE and granted, the tokens are refunded
 *    here, each to the window it was taken in when that is known (Result.window, for the
 *    charge Result.index names).
 *
 * A sync waiter (no Future) is told by its state and the _Waits' wake descriptor (an
 * eventfd written when another thread collected its completion); an async waiter is handed
 * back by collect() for rld/_waits.py to resolve its Future in its own loop.
 */
#include "rldpy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------ */
/* _Acquire                                                                              */

enum { A_NEW, A_INNER, A_DONE };

typedef struct {
    PyObject_HEAD
    rldpy_client *cl;
    PyObject     *owner;      /* the Limit (one charge) or the tuple of charges (a set) */
    uint64_t      cost;       /* one charge */
    PyObject     *timeo;
    int64_t       timeout_ns;
    int           priority, barge, state;
    PyObject     *inner;      /* A_INNER: the coroutine of rld/_waits.py */
} rldpy_acquire;

static PyTypeObject acquire_type;

PyObject *rldpy_acquire_new(rldpy_client *cl, PyObject *owner, const rldpy_charges *cs,
                            PyObject *timeo, int64_t timeout_ns, int priority, int barge)
{
    rldpy_acquire *a = PyObject_GC_New(rldpy_acquire, &acquire_type);
    if (!a)
        return NULL;
    a->cl = (rldpy_client *)Py_NewRef((PyObject *)cl);
    a->owner = Py_NewRef(owner);
    a->cost = cs->n == 1 ? cs->ch[0].cost : 0;
    a->timeo = Py_NewRef(timeo);
    a->timeout_ns = timeout_ns;
    a->priority = priority;
    a->barge = barge;
    a->state = A_NEW;
    a->inner = NULL;
    PyObject_GC_Track(a);
    return (PyObject *)a;
}

/* Tracked by the collector: a Task, its _Acquire, the coroutine it delegates to and that
 * coroutine's Future (whose callback is the Task's) make a cycle while the wait runs. */
static int acquire_traverse(PyObject *op, visitproc visit, void *arg)
{
    rldpy_acquire *a = (rldpy_acquire *)op;
    Py_VISIT(a->cl);
    Py_VISIT(a->owner);
    Py_VISIT(a->timeo);
    Py_VISIT(a->inner);
    return 0;
}

static int acquire_clear(PyObject *op)
{
    rldpy_acquire *a = (rldpy_acquire *)op;
    Py_CLEAR(a->cl);
    Py_CLEAR(a->owner);
    Py_CLEAR(a->timeo);
    Py_CLEAR(a->inner);   /* an unfinished coroutine is closed: it cancels its wait */
    return 0;
}

static void acquire_dealloc(PyObject *op)
{
    PyObject_GC_UnTrack(op);
    acquire_clear(op);
    PyObject_GC_Del(op);
}

static int acquire_charges(rldpy_acquire *a, rldpy_charges *cs)
{
    if (PyTuple_Check(a->owner))
        return rldpy_charges_parse(a->cl, a->owner, cs);
    rldpy_limit *lim = (rldpy_limit *)a->owner;
    cs->n = 1;
    cs->lims[0] = lim;
    cs->ch[0].limit = lim->lim;
    cs->ch[0].cost = a->cost;
    cs->tuple = NULL;
    return 0;
}

static PySendResult acquire_am_send(PyObject *op, PyObject *arg, PyObject **result)
{
    rldpy_acquire *a = (rldpy_acquire *)op;
    *result = NULL;
    if (a->state == A_NEW) {
        if (!a->cl) {
            PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
            return PYGEN_ERROR;
        }
        if (arg != Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "can't send non-None value to a just-started coroutine");
            return PYGEN_ERROR;
        }
        a->state = A_DONE;
        rldpy_charges cs;
        if (acquire_charges(a, &cs) < 0)
            return PYGEN_ERROR;
        PyObject *out;
        int r = rldpy_wait_async(a->cl, &cs, a->timeo, a->timeout_ns, a->priority, a->barge,
                                 &out);
        rldpy_charges_clear(&cs);
        if (r < 0)
            return PYGEN_ERROR;
        if (r == 0) {
            *result = out;
            return PYGEN_RETURN;
        }
        a->inner = out;
        a->state = A_INNER;
    }
    if (a->state == A_INNER) {
        PySendResult sr = PyIter_Send(a->inner, arg, result);
        if (sr != PYGEN_NEXT) {
            a->state = A_DONE;
            Py_CLEAR(a->inner);
        }
        return sr;
    }
    PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
    return PYGEN_ERROR;
}

/* send() and __next__ for callers that do not use am_send: a return is StopIteration. */
static PyObject *acquire_send(PyObject *op, PyObject *arg)
{
    PyObject *res;
    PySendResult sr = acquire_am_send(op, arg, &res);
    if (sr == PYGEN_NEXT)
        return res;
    if (sr == PYGEN_RETURN) {
        PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, res);
        Py_DECREF(res);
        if (e) {
            PyErr_SetObject(PyExc_StopIteration, e);
            Py_DECREF(e);
        }
    }
    return NULL;
}

static PyObject *acquire_iternext(PyObject *op)
{
    return acquire_send(op, Py_None);
}

static PyObject *acquire_throw(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    rldpy_acquire *a = (rldpy_acquire *)op;
    if (nargs < 1 || nargs > 3)
        return PyErr_Format(PyExc_TypeError, "throw expected 1 to 3 arguments, got %zd", nargs);
    if (a->state == A_INNER) {
        PyObject *meth = PyObject_GetAttrString(a->inner, "throw");
        PyObject *res = meth ? PyObject_Vectorcall(meth, args, (size_t)nargs, NULL) : NULL;
        Py_XDECREF(meth);
        if (!res) {
            a->state = A_DONE;
            Py_CLEAR(a->inner);
        }
        return res;
    }
    a->state = A_DONE;       /* not started: nothing was taken; raise what was thrown in */
    PyObject *typ = args[0], *val = nargs > 1 ? args[1] : Py_None;
    if (PyExceptionInstance_Check(typ)) {
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    } else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, val);
    } else {
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
    }
    return NULL;
}

static PyObject *acquire_close(PyObject *op, PyObject *unused)
{
    rldpy_acquire *a = (rldpy_acquire *)op;
    int state = a->state;
    a->state = A_DONE;
    if (state == A_INNER) {
        PyObject *inner = a->inner;
        a->inner = NULL;
        PyObject *r = PyObject_CallMethod(inner, "close", NULL);
        Py_DECREF(inner);
        if (!r)
            return NULL;
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

static PyObject *acquire_await(PyObject *op)
{
    return Py_NewRef(op);
}

static PyObject *acquire_repr(PyObject *op)
{
    rldpy_acquire *a = (rldpy_acquire *)op;
    if (!a->owner)
        return PyUnicode_FromString("<rld acquire_async>");
    if (PyTuple_Check(a->owner))
        return PyUnicode_FromFormat("<rld acquire_multi_async of %zd charges>",
                                    PyTuple_GET_SIZE(a->owner));
    return PyUnicode_FromFormat("<rld acquire_async %R cost=%llu>",
                                ((rldpy_limit *)a->owner)->name, (unsigned long long)a->cost);
}

static PyAsyncMethods acquire_as_async = {
    .am_await = acquire_await,
    .am_send = acquire_am_send,
};

static PyMethodDef acquire_methods[] = {
    { "send", acquire_send, METH_O, "send(value): as a coroutine's." },
    { "throw", RLDPY_METH(acquire_throw), METH_FASTCALL,
      "throw(typ[, val[, tb]]): as a coroutine's. Before the first send nothing was taken." },
    { "close", acquire_close, METH_NOARGS,
      "close(): as a coroutine's; a wait still queued is cancelled, nothing is taken." },
    { NULL },
};

static PyTypeObject acquire_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rld._rld._Acquire",
    .tp_basicsize = sizeof(rldpy_acquire),
    .tp_dealloc = acquire_dealloc,
    .tp_repr = acquire_repr,
    .tp_as_async = &acquire_as_async,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = acquire_traverse,
    .tp_clear = acquire_clear,
    .tp_doc = "The awaitable of Limit.acquire_async and Client.acquire_multi_async: a\n"
              "coroutine that takes the fast path when awaited, and waits in the running loop\n"
              "only when that says no.",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = acquire_iternext,
    .tp_methods = acquire_methods,
};

/* ------------------------------------------------------------------------------------ */
/* _Waiter                                                                               */

enum { W_NEW, W_PENDING, W_DONE, W_GONE };

typedef struct {
    PyObject_HEAD
    PyObject   *charges;      /* ((Limit, cost), ...) */
    PyObject   *fut;          /* async: its Future; sync: None */
    PyObject   *loop;         /* async: the Future's loop; sync: None */
    PyObject   *inbox;        /* async: the loop's deque of collected waiters; sync: None */
    uint64_t    ticket;       /* 0 until started */
    int         state;
    int         code;         /* W_DONE: the completion's code */
    rld_result  res;
    size_t      n;            /* the charges as started, for a give-back */
    rld_charge *ch;
} rldpy_waiter;

static PyTypeObject waiter_type;

static PyObject *waiter_new(PyTypeObject *t, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "charges", "fut", "loop", "inbox", NULL };
    PyObject *charges, *fut = Py_None, *loop = Py_None, *inbox = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!|OOO:_Waiter", kwlist, &PyTuple_Type,
                                     &charges, &fut, &loop, &inbox))
        return NULL;
    if ((fut == Py_None) != (inbox == Py_None))
        return PyErr_Format(PyExc_ValueError, "an async _Waiter has a Future and an inbox");
    rldpy_waiter *w = (rldpy_waiter *)t->tp_alloc(t, 0);
    if (!w)
        return NULL;
    w->charges = Py_NewRef(charges);
    w->fut = Py_NewRef(fut);
    w->loop = Py_NewRef(loop);
    w->inbox = Py_NewRef(inbox);
    w->state = W_NEW;
    return (PyObject *)w;
}

static int waiter_traverse(PyObject *op, visitproc visit, void *arg)
{
    rldpy_waiter *w = (rldpy_waiter *)op;
    Py_VISIT(w->charges);
    Py_VISIT(w->fut);
    Py_VISIT(w->loop);
    Py_VISIT(w->inbox);
    return 0;
}

static int waiter_clear(PyObject *op)
{
    rldpy_waiter *w = (rldpy_waiter *)op;
    Py_CLEAR(w->charges);
    Py_CLEAR(w->fut);
    Py_CLEAR(w->loop);
    Py_CLEAR(w->inbox);
    return 0;
}

static void waiter_dealloc(PyObject *op)
{
    rldpy_waiter *w = (rldpy_waiter *)op;
    PyObject_GC_UnTrack(op);
    waiter_clear(op);
    free(w->ch);
    Py_TYPE(op)->tp_free(op);
}

static PyObject *waiter_get_result(PyObject *op, void *c)
{
    rldpy_waiter *w = (rldpy_waiter *)op;
    if (w->state != W_DONE)
        Py_RETURN_NONE;
    return rldpy_result_new(&w->res, w->code == 0);
}

static PyObject *waiter_get_code(PyObject *op, void *c)
{
    rldpy_waiter *w = (rldpy_waiter *)op;
    if (w->state != W_DONE)
        Py_RETURN_NONE;
    return PyLong_FromLong(w->code);
}

static PyObject *waiter_get_done(PyObject *op, void *c)
{
    return PyBool_FromLong(((rldpy_waiter *)op)->state == W_DONE);
}

static PyObject *waiter_get_ticket(PyObject *op, void *c)
{
    return PyLong_FromUnsignedLongLong(((rldpy_waiter *)op)->ticket);
}

static PyObject *waiter_get_fut(PyObject *op, void *c) { return Py_NewRef(((rldpy_waiter *)op)->fut); }
static PyObject *waiter_get_loop(PyObject *op, void *c) { return Py_NewRef(((rldpy_waiter *)op)->loop); }
static PyObject *waiter_get_inbox(PyObject *op, void *c) { return Py_NewRef(((rldpy_waiter *)op)->inbox); }
static PyObject *waiter_get_charges(PyObject *op, void *c) { return Py_NewRef(((rldpy_waiter *)op)->charges); }

static PyObject *waiter_get_state(PyObject *op, void *c)
{
    static const char *names[] = { "new", "pending", "done", "gone" };
    return PyUnicode_FromString(names[((rldpy_waiter *)op)->state]);
}

static PyGetSetDef waiter_getset[] = {
    { "charges", waiter_get_charges, NULL, "((Limit, cost), ...)", NULL },
    { "fut", waiter_get_fut, NULL, "The Future (async), or None.", NULL },
    { "loop", waiter_get_loop, NULL, "The Future's loop (async), or None.", NULL },
    { "inbox", waiter_get_inbox, NULL, "Its loop's deque of collected waiters (async), or None.", NULL },
    { "ticket", waiter_get_ticket, NULL, "librld's ticket; 0 until started.", NULL },
    { "done", waiter_get_done, NULL, "True once its completion was collected (and not given up).", NULL },
    { "code", waiter_get_code, NULL, "The completion's code (0: taken), or None.", NULL },
    { "result", waiter_get_result, NULL, "The completion's Result, or None.", NULL },
    { "state", waiter_get_state, NULL, "'new', 'pending', 'done' or 'gone'.", NULL },
    { NULL },
};

static PyTypeObject waiter_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rld._rld._Waiter",
    .tp_basicsize = sizeof(rldpy_waiter),
    .tp_dealloc = waiter_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "_Waiter(charges, fut=None, loop=None, inbox=None): one wait on a client's engine\n"
              "(internal).",
    .tp_traverse = waiter_traverse,
    .tp_clear = waiter_clear,
    .tp_getset = waiter_getset,
    .tp_new = waiter_new,
};

/* ------------------------------------------------------------------------------------ */
/* _Waits                                                                                */

typedef struct {
    PyObject_HEAD
    rldpy_handle *h;
    PyObject     *pending;    /* dict: ticket -> _Waiter (PENDING) */
    int           wake;       /* eventfd: a sync waiter's completion was collected */
} rldpy_waits;

static PyTypeObject waits_type;

PyObject *rldpy_waits_new(rldpy_handle *h)
{
    rldpy_waits *w = PyObject_GC_New(rldpy_waits, &waits_type);
    if (!w)
        return NULL;
    w->h = NULL;
    w->wake = -1;
    if (!(w->pending = PyDict_New())) {
        Py_DECREF(w);
        return NULL;
    }
    if ((w->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(w);
        return NULL;
    }
    rldpy_handle_ref(h);
    w->h = h;
    PyObject_GC_Track(w);
    return (PyObject *)w;
}

static int waits_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(((rldpy_waits *)op)->pending);
    return 0;
}

static int waits_clear(PyObject *op)
{
    Py_CLEAR(((rldpy_waits *)op)->pending);
    return 0;
}

static void waits_dealloc(PyObject *op)
{
    rldpy_waits *w = (rldpy_waits *)op;
    PyObject_GC_UnTrack(op);
    waits_clear(op);
    if (w->wake >= 0)
        close(w->wake);
    if (w->h) {
        /* the last reference closes the librld client: waits still outstanding end
         * without a completion and their grants are given back (rld_close(3)) */
        rldpy_handle *h = w->h;
        w->h = NULL;
        Py_BEGIN_ALLOW_THREADS
        rldpy_handle_unref(h);
        Py_END_ALLOW_THREADS
    }
    PyObject_GC_Del(op);
}

static PyObject *waits_raise(int err, const char *what)
{
    return rldpy_raise(err, what, NULL);
}

static PyObject *waits_fd(PyObject *op, PyObject *unused)
{
    int fd = rld_wait_fd(((rldpy_waits *)op)->h->c);
    if (fd < 0)
        return waits_raise(fd, "the client's wait descriptor");
    return PyLong_FromLong(fd);
}

static PyObject *waits_wake_fd(PyObject *op, PyObject *unused)
{
    return PyLong_FromLong(((rldpy_waits *)op)->wake);
}

/* unwake(): clear the wake descriptor (before a sync waiter looks at its state). */
static PyObject *waits_unwake(PyObject *op, PyObject *unused)
{
    uint64_t v;
    while (read(((rldpy_waits *)op)->wake, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
    Py_RETURN_NONE;
}

/* The charges of a waiter's tuple: Limits and costs (checked again: the tuple is the
 * caller's). */
static int waiter_charges(rldpy_waiter *wt, rld_charge *ch, size_t *n)
{
    Py_ssize_t k = PyTuple_GET_SIZE(wt->charges);
    if (k < 1 || k > RLD_MULTI_MAX) {
        PyErr_SetString(PyExc_ValueError, "a wait has 1 to 64 charges");
        return -1;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *pair = PyTuple_GET_ITEM(wt->charges, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !PyObject_TypeCheck(PyTuple_GET_ITEM(pair, 0), &rldpy_limit_type)) {
            PyErr_SetString(PyExc_TypeError, "a charge is a (Limit, cost) tuple");
            return -1;
        }
        ch[i].limit = ((rldpy_limit *)PyTuple_GET_ITEM(pair, 0))->lim;
        if (rldpy_parse_u64(PyTuple_GET_ITEM(pair, 1), "cost", &ch[i].cost) < 0)
            return -1;
    }
    *n = (size_t)k;
    return 0;
}

/* start(waiter, timeout_ns, priority, barge) -> ticket */
static PyObject *waits_start(PyObject *op, PyObject *args)
{
    rldpy_waits *w = (rldpy_waits *)op;
    rldpy_waiter *wt;
    long long timeout_ns;
    int priority, barge;
    if (!PyArg_ParseTuple(args, "O!Lip:start", &waiter_type, &wt, &timeout_ns, &priority, &barge))
        return NULL;
    if (wt->state != W_NEW)
        return PyErr_Format(PyExc_RuntimeError, "_Waiter already started");
    rld_charge ch[RLD_MULTI_MAX];
    size_t n;
    if (waiter_charges(wt, ch, &n) < 0)
        return NULL;
    rld_charge *copy = malloc(n * sizeof(*copy));
    if (!copy)
        return PyErr_NoMemory();
    memcpy(copy, ch, n * sizeof(*copy));
    rld_wait_opts opts = { priority, barge ? RLD_WAIT_BARGE : 0 };
    uint64_t ticket;
    int r = rld_wait_start(w->h->c, ch, n, (int64_t)timeout_ns, &opts, &ticket);
    if (r < 0) {
        free(copy);
        if (r == -ENOSPC)
            return waits_raise(r, "this client's waits (16,384 charges queued at the daemon)");
        return waits_raise(r, "rld_wait_start");
    }
    PyObject *key = PyLong_FromUnsignedLongLong(ticket);
    if (!key || PyDict_SetItem(w->pending, key, (PyObject *)wt) < 0) {
        Py_XDECREF(key);
        rld_wait_cancel(w->h->c, ticket);   /* nothing taken; its completion is dropped */
        free(copy);
        return NULL;
    }
    free(wt->ch);
    wt->ch = copy;
    wt->n = n;
    wt->ticket = ticket;
    wt->state = W_PENDING;
    return key;
}

/* Give back what a DONE waiter was granted (it was given up afterwards). */
static void waiter_give_back(rldpy_waits *w, rldpy_waiter *wt)
{
    if (wt->code != 0 || !wt->ch)
        return;
    for (size_t i = 0; i < wt->n; i++) {
        uint32_t window = i == wt->res.index ? wt->res.window : 0;
        rld_refund_ex(w->h->c, wt->ch[i].limit, wt->ch[i].cost, window);
    }
}

/* collect() -> [async waiters whose completion came], each also appended to its inbox (in
 * the order librld completed them: the order a loop must resolve its Futures in, whichever
 * thread collected them). Sync waiters are told here. */
static PyObject *waits_collect(PyObject *op, PyObject *unused)
{
    rldpy_waits *w = (rldpy_waits *)op;
    PyObject *out = PyList_New(0);
    if (!out)
        return NULL;
    bool woke = false;
    for (;;) {
        rld_completion done[64];
        int k = rld_wait_collect(w->h->c, done, 64);
        if (k < 0) {
            Py_DECREF(out);
            return waits_raise(k, "rld_wait_collect");
        }
        for (int i = 0; i < k; i++) {
            if (done[i].kind != RLD_COMPLETION_DONE)
                continue;
            /* Every completion collected here must reach its waiter: errors (only memory)
             * are reported as unraisable and the others go on. */
            PyObject *key = PyLong_FromUnsignedLongLong(done[i].ticket);
            PyObject *v = key ? PyDict_GetItemWithError(w->pending, key) : NULL;   /* borrowed */
            if (!v) {
                Py_XDECREF(key);
                if (PyErr_Occurred())
                    PyErr_WriteUnraisable(op);
                continue;   /* a cancelled wait's completion, or a parent's before fork */
            }
            Py_INCREF(v);
            int e = PyDict_DelItem(w->pending, key);
            Py_DECREF(key);
            rldpy_waiter *wt = (rldpy_waiter *)v;
            wt->state = W_DONE;
            wt->code = done[i].code;
            wt->res = done[i].res;
            if (wt->fut != Py_None) {
                PyObject *r = e < 0 ? NULL : PyObject_CallMethod(wt->inbox, "append", "O", v);
                Py_XDECREF(r);
                if (!r) {
                    /* out of memory: nobody will hear of it; it keeps nothing (its task
                     * waits until cancelled). The other completions are handed out. */
                    PyErr_WriteUnraisable(v);
                    waiter_give_back(w, wt);
                    wt->state = W_GONE;
                } else if (PyList_Append(out, v) < 0) {
                    PyErr_WriteUnraisable(v);   /* in the inbox: its loop's next flush */
                }
            } else {
                if (e < 0)
                    PyErr_WriteUnraisable(v);
                woke = true;
            }
            Py_DECREF(v);
        }
        if (k < 64)
            break;
    }
    if (woke) {
        uint64_t one = 1;
        while (write(w->wake, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
    }
    return out;
}

/* cancel(waiter) -> True when its completion was never collected (it was not started, or
 * was queued and is now cancelled at librld): no inbox will ever hold it. Afterwards it
 * holds nothing. */
static PyObject *waits_cancel(PyObject *op, PyObject *arg)
{
    rldpy_waits *w = (rldpy_waits *)op;
    if (!PyObject_TypeCheck(arg, &waiter_type))
        return PyErr_Format(PyExc_TypeError, "cancel() takes a _Waiter");
    rldpy_waiter *wt = (rldpy_waiter *)arg;
    int state = wt->state;
    wt->state = W_GONE;
    if (state == W_NEW)
        Py_RETURN_TRUE;
    if (state == W_PENDING) {
        PyObject *key = PyLong_FromUnsignedLongLong(wt->ticket);
        PyObject *v = key ? PyDict_GetItemWithError(w->pending, key) : NULL;
        if (v == arg) {
            /* never fails here: the key is there */
            (void)PyDict_DelItem(w->pending, key);
            Py_DECREF(key);
            rld_wait_cancel(w->h->c, wt->ticket);
            Py_RETURN_TRUE;
        }
        Py_XDECREF(key);
        PyErr_Clear();
    } else if (state == W_DONE) {
        waiter_give_back(w, wt);
    }
    Py_RETURN_FALSE;
}

/* forget(): in a child of fork(), the parent's waits do not exist (librld forgets them);
 * the wake descriptor is the parent's too: a new one. */
static PyObject *waits_forget(PyObject *op, PyObject *unused)
{
    rldpy_waits *w = (rldpy_waits *)op;
    PyObject *key, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(w->pending, &pos, &key, &v))
        ((rldpy_waiter *)v)->state = W_GONE;
    PyDict_Clear(w->pending);
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    if (w->wake >= 0)
        close(w->wake);
    w->wake = fd;
    Py_RETURN_NONE;
}

static Py_ssize_t waits_len(PyObject *op)
{
    return PyDict_GET_SIZE(((rldpy_waits *)op)->pending);
}

static PySequenceMethods waits_as_seq = {
    .sq_length = waits_len,
};

static PyMethodDef waits_methods[] = {
    { "fd", waits_fd, METH_NOARGS, "fd(): the client's wait descriptor (rld_wait_fd)." },
    { "wake_fd", waits_wake_fd, METH_NOARGS,
      "wake_fd(): readable when a sync waiter's completion was collected." },
    { "unwake", waits_unwake, METH_NOARGS, "unwake(): clear wake_fd." },
    { "start", waits_start, METH_VARARGS,
      "start(waiter, timeout_ns, priority, barge) -> ticket: rld_wait_start, entered in the\n"
      "table of outstanding waits." },
    { "collect", waits_collect, METH_NOARGS,
      "collect() -> [async waiters]: rld_wait_collect until nothing is left; every waiter\n"
      "completed leaves the table, its code and result set." },
    { "cancel", waits_cancel, METH_O,
      "cancel(waiter) -> bool: give the wait up; nothing stays taken. True when it was never\n"
      "collected (not started, or queued until now): collect() will never hand it out." },
    { "forget", waits_forget, METH_NOARGS, "forget(): after fork(), in the child." },
    { NULL },
};

static PyTypeObject waits_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rld._rld._Waits",
    .tp_basicsize = sizeof(rldpy_waits),
    .tp_dealloc = waits_dealloc,
    .tp_as_sequence = &waits_as_seq,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The non-blocking wait engine of one librld client (internal: rld/_waits.py).",
    .tp_traverse = waits_traverse,
    .tp_clear = waits_clear,
    .tp_methods = waits_methods,
};

/* ------------------------------------------------------------------------------------ */

/* _set_hooks(sync_wait, async_wait) */
static PyObject *mod_set_hooks(PyObject *m, PyObject *args)
{
    PyObject *s, *a;
    if (!PyArg_ParseTuple(args, "OO:_set_hooks", &s, &a))
        return NULL;
    Py_XSETREF(rldpy_hook_sync, s == Py_None ? NULL : Py_NewRef(s));
    Py_XSETREF(rldpy_hook_async, a == Py_None ? NULL : Py_NewRef(a));
    Py_RETURN_NONE;
}

static PyMethodDef async_funcs[] = {
    { "_set_hooks", mod_set_hooks, METH_VARARGS,
      "_set_hooks(sync_wait, async_wait, /)\n--\n\nInstalled by rld/_waits.py (internal)." },
    { NULL },
};

int rldpy_async_init(PyObject *m)
{
    if (PyType_Ready(&acquire_type) < 0 || PyType_Ready(&waiter_type) < 0 ||
        PyType_Ready(&waits_type) < 0 || PyModule_AddFunctions(m, async_funcs) < 0 ||
        PyModule_AddObjectRef(m, "_Acquire", (PyObject *)&acquire_type) < 0 ||
        PyModule_AddObjectRef(m, "_Waiter", (PyObject *)&waiter_type) < 0 ||
        PyModule_AddObjectRef(m, "_Waits", (PyObject *)&waits_type) < 0)
        return -1;
    return 0;
}
