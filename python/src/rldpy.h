/*
 * rldpy.h - the CPython extension rld._rld over librld: what its files share.
 *
 * One file per type: client.c (Client, and the reference-counted librld client behind it),
 * limit.c (Limit: try/acquire/refund/debit/peek/info), result.c (Result, Info), wait.c (the
 * waits of acquire, acquire_async and the multi calls: fast path, local refusal, then a
 * blocking wait without the GIL or a hand-over to rld/_waits.py), async.c (the
 * non-blocking wait engine's objects: _Waits, _Waiter, and _Ready, the awaitable of a wait
 * decided at once), multi.c (Client.try_acquire_multi, acquire_multi, acquire_multi_async),
 * errors.c (rld.Error and its subclasses), template.c (Template, and Key: a Limit on one key
 * of a template), module.c (the module).
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
    PyObject     *router;     /* rld/_waits.py's _Router for this handle, or NULL; dropped
                                 at close (the router keeps its own reference to H) */
} rldpy_client;

struct rldpy_template;

/* rld.Limit, and rld.Key (a subtype: one key of a template, template.c), which sets the
 * key fields; they are NULL and 0 on a Limit. */
typedef struct {
    PyObject_HEAD
    rldpy_client *client;     /* strong reference: keeps the client open */
    PyObject     *name;       /* str: the limit's name; a key: its template's */
    rld_limit     lim;
    struct rldpy_template *tpl;   /* a key: its Template (strong reference); else NULL */
    PyObject     *key;        /* a key: the key as given (str or bytes); else NULL */
    uint64_t      rate_count; /* a key of a rate = caller template: its rate; else 0 */
    uint64_t      rate_period_ns;
} rldpy_limit;

/* rld.Template: a [template] of the instance, named (template.c). */
typedef struct rldpy_template {
    PyObject_HEAD
    rldpy_client *client;     /* strong reference */
    PyObject     *name;       /* str */
    rld_template  t;
} rldpy_template;

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
extern PyTypeObject rldpy_template_type;
extern PyTypeObject rldpy_key_type;
extern PyTypeObject *rldpy_info_type;

/* errors.c */
extern PyObject *rldpy_Error, *rldpy_NotFound, *rldpy_Deleted, *rldpy_Timeout,
    *rldpy_Denied, *rldpy_CostTooHigh, *rldpy_InvalidArgument, *rldpy_DebtOverflow,
    *rldpy_PermissionDenied, *rldpy_NotReady, *rldpy_ABIMismatch, *rldpy_Corrupt,
    *rldpy_ClockMismatch, *rldpy_OutOfMemory, *rldpy_NoSpace;
int rldpy_errors_init(PyObject *m);
/* The exception instance for librld code ERR (negative) with message "strerror: DETAIL"
 * (DETAIL may be NULL). Its errno is -ERR (RLD_EABI -> 1001). */
PyObject *rldpy_error_new(int err, const char *detail);
PyObject *rldpy_error_new_as(PyObject *cls, int err, const char *detail);
/* Raise it; returns NULL. RES, when given, becomes the exception's .result and
 * .retry_after (Timeout, Denied). */
PyObject *rldpy_raise(int err, const char *detail, const rld_result *res);
/* Raise CLS (rld.Error or a subclass) with errno ERRNUM (positive) and the message FMT
 * (PyUnicode_FromFormat's), for errors the binding finds itself; returns NULL. */
PyObject *rldpy_raise_msg(PyObject *cls, int errnum, const char *fmt, ...);

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

/* tp_new of Limit and Template: ARGS as (client, name) for TYPE ("Limit"); the Client in
 * *CL (borrowed), its open librld client in *C, NAME (borrowed) in *NAME and its UTF-8 in
 * *N (rld.InvalidArgument for a NUL inside; WHAT, "limit" or "template", names it). 0, or
 * -1 with an exception. */
int rldpy_parse_named(const char *type, const char *what, PyObject *args, PyObject *kw,
                      rldpy_client **cl, rld_client **c, PyObject **name, const char **n);
/* rld.Error for librld code ERR finding WHAT N through CL (a malformed name: what a name
 * is); returns NULL. */
PyObject *rldpy_named_raise(rldpy_client *cl, const char *what, const char *n, int err);

/* The handle went stale: find the name again (a key: rld_key again, its template found
 * again if need be). 0: found (retry), -1: exception set (Deleted when the name is gone). */
int rldpy_limit_refind(rldpy_limit *self, rld_client *c);
/* rld.Error for librld code ERR about limit SELF ("limit 'NAME': ...", "key 'K' of template
 * 'NAME': ..."), RES attached for Timeout and Denied; returns NULL. */
PyObject *rldpy_limit_raise(rldpy_limit *self, int err, const rld_result *res);
/* "limit 'NAME'" or "key 'K' of template 'NAME'" into BUF. */
void rldpy_limit_describe(rldpy_limit *self, char *buf, size_t size);

/* template.c */
int rldpy_template_init(PyObject *m);
/* A key's handle again (rld_key or rld_key_rate), its template found again when it was
 * deleted: 0, or -1 with an exception. */
int rldpy_key_refind(rldpy_limit *self, rld_client *c);
/* "key 'K' of template 'NAME'" into BUF. */
void rldpy_key_describe(rldpy_limit *self, char *buf, size_t size);

/* The charges of one wait or take: Limits of one Client and their costs. */
typedef struct {
    size_t        n;
    rldpy_limit  *lims[RLD_MULTI_MAX];   /* borrowed: the caller holds them */
    rld_charge    ch[RLD_MULTI_MAX];
    PyObject     *tuple;                 /* ((Limit, cost), ...), made on demand; owned */
} rldpy_charges;

/* multi.c: parse SEQ, a sequence of (Limit, cost) pairs (every Limit of client CL) into CS
 * (its tuple is set). 0, or -1 with an exception. */
int rldpy_charges_parse(rldpy_client *cl, PyObject *seq, rldpy_charges *cs);
/* Client's methods for sets, added to its type by client.c. */
extern PyMethodDef rldpy_multi_methods[];
/* The tuple of CS (borrowed; made on first call), or NULL with an exception. */
PyObject *rldpy_charges_tuple(rldpy_charges *cs);
void rldpy_charges_clear(rldpy_charges *cs);
/* CS: LIM alone at COST (no tuple). */
void rldpy_charges_one(rldpy_limit *lim, uint64_t cost, rldpy_charges *cs);
/* The handles again from the Limits of CS (one of them was found again). */
void rldpy_charges_reload(rldpy_charges *cs);

/* wait.c: the waits. Both take the fast path first (with the GIL), refuse at once what
 * cannot fit TIMEOUT_NS (the same figure as TIMEO, a Python timeout), retry once with the
 * limit found again when a handle went stale, and raise librld's errors naming the limit.
 *   rldpy_wait: blocks. In the main thread through rld/_waits.py (the client's wait
 *     descriptor polled, signal handlers run, a cancel on an exception), else rld_wait_ex /
 *     rld_wait_multi with the GIL released. A new Result, or NULL.
 *   rldpy_wait_async: what an awaited acquire does when first run: 0 and *OUT a new Result
 *     (admitted at once), 1 and *OUT the coroutine of rld/_waits.py to delegate to (a wait
 *     over librld's non-blocking engine), or -1 with an exception. */
PyObject *rldpy_wait(rldpy_client *cl, rldpy_charges *cs, PyObject *timeo, int64_t timeout_ns,
                     int priority, int barge);
int rldpy_wait_async(rldpy_client *cl, rldpy_charges *cs, PyObject *timeo, int64_t timeout_ns,
                     int priority, int barge, PyObject **out);
/* The hooks rld/_waits.py installs (_rld._set_hooks): sync_wait(client, charges, timeout,
 * priority, barge) -> Result and async_wait(...) -> coroutine. NULL until then. */
extern PyObject *rldpy_hook_sync, *rldpy_hook_async;

/* async.c */
int rldpy_async_init(PyObject *m);
/* The awaitable of Limit.acquire_async and Client.acquire_multi_async: nothing happens
 * until it is awaited (as with an async def), then rldpy_wait_async. OWNER keeps the Limits
 * of CS alive (the Limit, or the charges tuple); CS is copied (not its tuple). */
PyObject *rldpy_acquire_new(rldpy_client *cl, PyObject *owner, const rldpy_charges *cs,
                            PyObject *timeo, int64_t timeout_ns, int priority, int barge);
/* Client._waits(): the engine object of the client's handle. */
PyObject *rldpy_waits_new(rldpy_handle *h);

/* upstream.c (issue 15): penalize, sync, leases, breakers */
int rldpy_upstream_init(PyObject *m);

/* Arguments: a cost or amount (int >= 0), a timeout (None or seconds >= 0 -> ns, -1 = none). */
int rldpy_parse_u64(PyObject *o, const char *what, uint64_t *out);
int rldpy_parse_timeout(PyObject *o, int64_t *out);
/* Vectorcall arguments by name: NAMES (NULL-terminated), the first NPOS also positional.
 * OUT[i] is set (borrowed) for each given, left alone otherwise. 0, or -1 (TypeError). */
int rldpy_parse_args(const char *fn, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames, const char *const *names, int npos, PyObject **out);
/* priority: an int 0..RLD_PRIORITY_MAX (rld.InvalidArgument otherwise), barge: truth. */
int rldpy_parse_priority(PyObject *o, int *out);
/* The options of every wait from O[0..2], the objects given for timeout, priority and barge
 * (NULL: not given): *TIMEO (borrowed; None when not given), *TIMEOUT_NS, *PRIORITY, *BARGE.
 * 0, or -1 with an exception. */
int rldpy_parse_wait_opts(PyObject *const *o, PyObject **timeo, int64_t *timeout_ns,
                          int *priority, int *barge);

#endif
