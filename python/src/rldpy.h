/*
 * rldpy.h - the CPython extension rld._rld over librld: what its files share.
 *
 * One file per type: client.c (Client, and the reference-counted librld client behind it),
 * limit.c (Limit: try/acquire/refund/debit/peek/info), result.c (Result, Info), wait.c (the
 * blocking wait: GIL released, signals handled), errors.c (rld.Error and its subclasses),
 * module.c (the module). acquire_async, acquire_multi and templates will each be one more
 * file that registers its type or methods the same way.
 */
#ifndef RLD_PYTHON_RLDPY_H
#define RLD_PYTHON_RLDPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rld.h"

/* PyCFunction casts without -Wcast-function-type noise. */
#define RLDPY_METH(f) ((PyCFunction)(void (*)(void))(f))

/*
 * The librld client behind an rld.Client, reference counted in C so that a wait still
 * running without the GIL (or abandoned after Ctrl-C, see wait.c) never sees it closed:
 * Client.close() drops the Python object's reference and rld_close() runs when the last
 * holder lets go. Counted with C11 atomics: waits release it without the GIL.
 */
typedef struct rldpy_handle {
    rld_client *c;
    atomic_int  refs;
} rldpy_handle;

rldpy_handle *rldpy_handle_new(rld_client *c);
void rldpy_handle_ref(rldpy_handle *h);
void rldpy_handle_unref(rldpy_handle *h);

typedef struct {
    PyObject_HEAD
    rldpy_handle *h;          /* NULL once closed */
    PyObject     *instance;   /* str: the instance name as resolved at open */
} rldpy_client;

typedef struct {
    PyObject_HEAD
    rldpy_client *client;     /* strong reference: keeps the client open */
    PyObject     *name;       /* str */
    rld_limit     lim;
} rldpy_limit;

/* Result.__bool__: what the call decided. */
typedef struct {
    PyObject_HEAD
    rld_result r;
    bool       ok;
} rldpy_result;

/* Module state: the types and exceptions (one module per process in practice; kept in
 * globals set once at import, as single-phase init modules do). */
extern PyTypeObject rldpy_client_type;
extern PyTypeObject rldpy_limit_type;
extern PyTypeObject rldpy_result_type;
extern PyTypeObject *rldpy_info_type;

/* errors.c */
extern PyObject *rldpy_Error, *rldpy_NotFound, *rldpy_Deleted, *rldpy_Timeout,
    *rldpy_Denied, *rldpy_CostTooHigh, *rldpy_InvalidArgument, *rldpy_DebtOverflow,
    *rldpy_PermissionDenied, *rldpy_NotReady, *rldpy_ABIMismatch, *rldpy_Corrupt,
    *rldpy_ClockMismatch, *rldpy_OutOfMemory;
int rldpy_errors_init(PyObject *m);
/* The exception instance for librld code ERR (negative) with message "strerror: DETAIL"
 * (DETAIL may be NULL). Its errno is -ERR (RLD_EABI -> 1001). */
PyObject *rldpy_error_new(int err, const char *detail);
PyObject *rldpy_error_new_as(PyObject *cls, int err, const char *detail);
/* Raise it; returns NULL. RES, when given, becomes the exception's .result and
 * .retry_after (Timeout, Denied). */
PyObject *rldpy_raise(int err, const char *detail, const rld_result *res);

/* result.c */
int rldpy_result_init(PyObject *m);
PyObject *rldpy_result_new(const rld_result *r, bool ok);
PyObject *rldpy_info_new(const rld_limit_info *info);

/* client.c */
int rldpy_client_init(PyObject *m);
/* The open librld client of C, or NULL with rld.Error(EBADF) raised when it is closed. */
rld_client *rldpy_client_get(rldpy_client *c);

/* limit.c */
int rldpy_limit_init(PyObject *m);

/* upstream.c (issue 15): penalize, sync, leases, breakers */
int rldpy_upstream_init(PyObject *m);

/* wait.c: rld_wait_ex with the GIL released. Returns the librld code, or RLDPY_EXC when a
 * Python exception (a signal handler's, e.g. KeyboardInterrupt) is set; then nothing was
 * taken. Called with the GIL held. */
#define RLDPY_EXC INT32_MIN
int rldpy_wait(rldpy_handle *h, rld_limit lim, uint64_t cost, int64_t timeout_ns,
               const rld_wait_opts *opts, rld_result *res);

/* Arguments: a cost or amount (int >= 0), a timeout (None or seconds >= 0 -> ns, -1 = none). */
int rldpy_parse_u64(PyObject *o, const char *what, uint64_t *out);
int rldpy_parse_timeout(PyObject *o, int64_t *out);

#endif
