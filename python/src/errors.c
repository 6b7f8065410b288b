/*
 * errors.c - librld's codes as Python exceptions.
 *
 * rld.Error is an OSError whose errno is the positive code (ENOENT, ..., and 1001-1003 for
 * RLD_EABI, RLD_ECORRUPT and RLD_ECLOCK, which are not errno values). Each code
 * rld_strerror() names has a subclass that also derives from the built-in exception a
 * Python user would catch for it: NotFound is a LookupError, Timeout a TimeoutError,
 * CostTooHigh a ValueError, and so on.
 */
#include "rldpy.h"

#include <errno.h>
#include <stdarg.h>

PyObject *rldpy_Error, *rldpy_NotFound, *rldpy_Deleted, *rldpy_Timeout, *rldpy_Denied,
    *rldpy_CostTooHigh, *rldpy_InvalidArgument, *rldpy_DebtOverflow, *rldpy_PermissionDenied,
    *rldpy_NotReady, *rldpy_ABIMismatch, *rldpy_Corrupt, *rldpy_ClockMismatch,
    *rldpy_OutOfMemory, *rldpy_NoSpace;

typedef struct {
    PyObject  **slot;
    const char *name;         /* attribute of the module; the class is rld.NAME */
    PyObject  **base1;        /* NULL: rld.Error itself, whose base is OSError */
    PyObject  **base2;        /* a built-in, or NULL */
    const char *doc;
} exc_def;

static PyObject *py_LookupError, *py_TimeoutError, *py_ValueError, *py_OverflowError,
    *py_PermissionError, *py_MemoryError;

static const exc_def defs[] = {
    { &rldpy_Error, "Error", NULL, NULL,
      "Base of every rld exception: an OSError whose errno is librld's code made positive\n"
      "(errno.ENOENT, ..., rld.EABI = 1001, rld.ECORRUPT = 1002, rld.ECLOCK = 1003).\n"
      ".result and .retry_after are set on Timeout and Denied, None otherwise." },
    { &rldpy_NotFound, "NotFound", &rldpy_Error, &py_LookupError,
      "No such instance (is rld running?) or no such limit (ENOENT)." },
    { &rldpy_Deleted, "Deleted", &rldpy_NotFound, NULL,
      "The limit was deleted while in use and no limit of that name exists now (ESTALE)." },
    { &rldpy_Timeout, "Timeout", &rldpy_Error, &py_TimeoutError,
      "The wait cannot be served within its timeout (ETIMEDOUT). Refused at once, without\n"
      "waiting: .retry_after is the wait it would have needed, in seconds." },
    { &rldpy_Denied, "Denied", &rldpy_Error, NULL,
      "Not enough tokens now (EAGAIN), from helpers asked not to wait. .retry_after says\n"
      "when they would be there, .result is the full rld.Result." },
    { &rldpy_CostTooHigh, "CostTooHigh", &rldpy_Error, &py_ValueError,
      "The cost exceeds the limit's burst and can never be admitted (E2BIG)." },
    { &rldpy_InvalidArgument, "InvalidArgument", &rldpy_Error, &py_ValueError,
      "A malformed name, priority or flag (EINVAL, ENAMETOOLONG)." },
    { &rldpy_DebtOverflow, "DebtOverflow", &rldpy_Error, &py_OverflowError,
      "Out of range (ERANGE), nothing changed: a debit would take the debt beyond the\n"
      "limit's maximum, a penalty or sync reaches beyond 52 days, or a caller's rate is\n"
      "outside what a key can hold." },
    { &rldpy_PermissionDenied, "PermissionDenied", &rldpy_Error, &py_PermissionError,
      "No permission for the instance's segment or socket (EACCES): see group in rld.conf(5)." },
    { &rldpy_NotReady, "NotReady", &rldpy_Error, NULL,
      "The instance's segment is still being created by the daemon (EAGAIN at open): retry." },
    { &rldpy_ABIMismatch, "ABIMismatch", &rldpy_Error, NULL,
      "The segment was made by an rld of another ABI version (RLD_EABI, errno 1001)." },
    { &rldpy_Corrupt, "Corrupt", &rldpy_Error, NULL,
      "The segment is damaged or not an rld segment (RLD_ECORRUPT, errno 1002)." },
    { &rldpy_ClockMismatch, "ClockMismatch", &rldpy_Error, NULL,
      "This process's CLOCK_MONOTONIC is not the daemon's: it runs in another time namespace,\n"
      "and its times would corrupt every limit (RLD_ECLOCK, errno 1003)." },
    { &rldpy_OutOfMemory, "OutOfMemory", &rldpy_Error, &py_MemoryError,
      "librld could not allocate memory (ENOMEM)." },
    { &rldpy_NoSpace, "NoSpace", &rldpy_Error, NULL,
      "No room (ENOSPC): a template's key table is full of keys with state, so a new key\n"
      "gets no bucket (overflow = deny in rld.conf(5), and always for Template.key); or a\n"
      "queue of waits is full (max_waiters, max_waits_per_uid)." },
};

int rldpy_errors_init(PyObject *m)
{
    PyObject *b = PyEval_GetBuiltins();   /* borrowed */
    struct { PyObject **p; const char *n; } builtins[] = {
        { &py_LookupError, "LookupError" }, { &py_TimeoutError, "TimeoutError" },
        { &py_ValueError, "ValueError" }, { &py_OverflowError, "OverflowError" },
        { &py_PermissionError, "PermissionError" }, { &py_MemoryError, "MemoryError" },
    };
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
        if (!(*builtins[i].p = PyDict_GetItemString(b, builtins[i].n)))
            return -1;
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        const exc_def *d = &defs[i];
        char qual[64];
        PyOS_snprintf(qual, sizeof(qual), "rld.%s", d->name);
        PyObject *bases = !d->base1 ? PyTuple_Pack(1, PyExc_OSError)
                        : d->base2  ? PyTuple_Pack(2, *d->base1, *d->base2)
                                    : PyTuple_Pack(1, *d->base1);
        if (!bases)
            return -1;
        PyObject *dict = NULL;
        if (!d->base1) {
            dict = Py_BuildValue("{sOsO}", "result", Py_None, "retry_after", Py_None);
            if (!dict) {
                Py_DECREF(bases);
                return -1;
            }
        }
        *d->slot = PyErr_NewExceptionWithDoc(qual, d->doc, bases, dict);
        Py_DECREF(bases);
        Py_XDECREF(dict);
        if (!*d->slot || PyModule_AddObjectRef(m, d->name, *d->slot) < 0)
            return -1;
    }
    if (PyModule_AddIntConstant(m, "EABI", -RLD_EABI) < 0 ||
        PyModule_AddIntConstant(m, "ECORRUPT", -RLD_ECORRUPT) < 0 ||
        PyModule_AddIntConstant(m, "ECLOCK", -RLD_ECLOCK) < 0)
        return -1;
    return 0;
}

static PyObject *class_for(int err)
{
    switch (err) {
    case -ENOENT: return rldpy_NotFound;
    case -ESTALE: return rldpy_Deleted;
    case -ETIMEDOUT: return rldpy_Timeout;
    case -EAGAIN: return rldpy_Denied;
    case -E2BIG: return rldpy_CostTooHigh;
    case -EINVAL: case -ENAMETOOLONG: return rldpy_InvalidArgument;
    case -ERANGE: return rldpy_DebtOverflow;
    case -EACCES: case -EPERM: return rldpy_PermissionDenied;
    case -ENOMEM: return rldpy_OutOfMemory;
    case -ENOSPC: return rldpy_NoSpace;
    case RLD_EABI: return rldpy_ABIMismatch;
    case RLD_ECORRUPT: return rldpy_Corrupt;
    case RLD_ECLOCK: return rldpy_ClockMismatch;
    default: return rldpy_Error;
    }
}

PyObject *rldpy_error_new(int err, const char *detail)
{
    return rldpy_error_new_as(class_for(err), err, detail);
}

PyObject *rldpy_error_new_as(PyObject *cls, int err, const char *detail)
{
    PyObject *msg = detail ? PyUnicode_FromFormat("%s: %s", detail, rld_strerror(err))
                           : PyUnicode_FromString(rld_strerror(err));
    if (!msg)
        return NULL;
    PyObject *e = PyObject_CallFunction(cls, "iO", -err, msg);
    Py_DECREF(msg);
    return e;
}

PyObject *rldpy_raise_msg(PyObject *cls, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    if (!msg)
        return NULL;
    PyObject *e = PyObject_CallFunction(cls, "iO", errnum, msg);
    Py_DECREF(msg);
    if (e) {
        PyErr_SetObject(cls, e);
        Py_DECREF(e);
    }
    return NULL;
}

PyObject *rldpy_raise(int err, const char *detail, const rld_result *res)
{
    PyObject *e = rldpy_error_new(err, detail);
    if (!e)
        return NULL;
    if (res) {
        PyObject *r = rldpy_result_new(res, false);
        PyObject *ra = PyFloat_FromDouble((double)res->retry_after_ns / 1e9);
        if (!r || !ra || PyObject_SetAttrString(e, "result", r) < 0 ||
            PyObject_SetAttrString(e, "retry_after", ra) < 0) {
            Py_XDECREF(r);
            Py_XDECREF(ra);
            Py_DECREF(e);
            return NULL;
        }
        Py_DECREF(r);
        Py_DECREF(ra);
    }
    PyErr_SetObject((PyObject *)Py_TYPE(e), e);
    Py_DECREF(e);
    return NULL;
}
