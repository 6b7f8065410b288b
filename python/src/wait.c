/*
 * wait.c - the blocking wait behind Limit.acquire: librld's rld_wait_ex with the GIL
 * released, and signals (Ctrl-C) handled while it waits.
 *
 * rld_wait_ex retries its system calls on EINTR, so a thread blocked in it does not return
 * to Python when a signal arrives, and CPython runs signal handlers only in the main
 * thread. Therefore:
 *
 *  - in any other thread the wait is a plain rld_wait_ex call without the GIL (signals are
 *    not handled there anyway);
 *  - in the main thread the wait runs in a short-lived helper thread (all signals blocked)
 *    while the caller sleeps in poll() on an eventfd the helper signals at the end, and runs
 *    the signal handlers whenever poll is interrupted (or every 100 ms, in case the signal
 *    went to another thread). When a handler raises (KeyboardInterrupt), the caller returns
 *    at once with the exception and the wait is abandoned: the helper stays queued until
 *    the daemon answers, and if the tokens were granted it gives them back (rld_refund).
 *
 * The contract an interrupted acquire keeps: it takes nothing (the grant is refunded), and
 * no token is lost or created. What it cannot do is give up its place in the daemon's queue
 * at once: callers behind it are served as if it were still there until its grant (at most
 * COST tokens' worth of time later than they would have been). librld's non-blocking
 * waits (rld_wait_start, rld_wait_fd, rld_wait_cancel) will remove the helper thread and
 * that delay: the caller will poll the client's wait descriptor and cancel on a signal.
 *
 * The fast path is tried first with the GIL held, exactly as rld_wait_ex would, so an
 * acquire that is admitted at once or refused at once costs no thread and no GIL switch.
 */
#include "rldpy.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define SIGNAL_SLICE_MS 100     /* the caller looks for pending signals at least this often */

typedef struct wait_job {
    atomic_int      refs;       /* the helper thread and the caller */
    rldpy_handle   *h;          /* a reference of its own */
    rld_limit       lim;
    uint64_t        cost;
    int64_t         timeout_ns;
    rld_wait_opts   opts;
    int             efd;        /* eventfd, written once by the helper when done */
    pthread_mutex_t mu;         /* guards what follows */
    bool            done;
    bool            abandoned;  /* the caller left (a signal handler raised) */
    int             rc;
    rld_result      res;
} wait_job;

static void job_unref(wait_job *j)
{
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
        return;
    close(j->efd);
    pthread_mutex_destroy(&j->mu);
    rldpy_handle_unref(j->h);
    free(j);
}

static void *job_run(void *arg)
{
    wait_job *j = arg;
    rld_result res;
    memset(&res, 0, sizeof(res));
    int rc = rld_wait_ex(j->h->c, j->lim, j->cost, j->timeout_ns, &j->opts, &res);
    pthread_mutex_lock(&j->mu);
    j->rc = rc;
    j->res = res;
    j->done = true;
    bool give_back = j->abandoned && rc == 0;
    pthread_mutex_unlock(&j->mu);
    if (give_back)
        rld_refund(j->h->c, j->lim, j->cost);
    uint64_t one = 1;
    ssize_t w;
    do
        w = write(j->efd, &one, sizeof(one));
    while (w < 0 && errno == EINTR);
    job_unref(j);
    return NULL;
}

static int wait_plain(rldpy_handle *h, rld_limit lim, uint64_t cost, int64_t timeout_ns,
                      const rld_wait_opts *opts, rld_result *res)
{
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = rld_wait_ex(h->c, lim, cost, timeout_ns, opts, res);
    Py_END_ALLOW_THREADS
    return r;
}

/* Start the helper; NULL when a thread or eventfd cannot be had (then wait plainly). */
static wait_job *job_start(rldpy_handle *h, rld_limit lim, uint64_t cost, int64_t timeout_ns,
                           const rld_wait_opts *opts)
{
    wait_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    if ((j->efd = eventfd(0, EFD_CLOEXEC)) < 0) {
        free(j);
        return NULL;
    }
    atomic_init(&j->refs, 2);
    rldpy_handle_ref(h);
    j->h = h;
    j->lim = lim;
    j->cost = cost;
    j->timeout_ns = timeout_ns;
    j->opts = *opts;
    pthread_mutex_init(&j->mu, NULL);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* the helper inherits: signals stay ours */
    pthread_t t;
    int e = pthread_create(&t, &attr, job_run, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        atomic_store(&j->refs, 1);
        job_unref(j);
        return NULL;
    }
    return j;
}

static int wait_interruptible(rldpy_handle *h, rld_limit lim, uint64_t cost,
                              int64_t timeout_ns, const rld_wait_opts *opts, rld_result *res)
{
    wait_job *j = job_start(h, lim, cost, timeout_ns, opts);
    if (!j)
        return wait_plain(h, lim, cost, timeout_ns, opts, res);
    for (;;) {
        int pr;
        Py_BEGIN_ALLOW_THREADS
        struct pollfd p = { .fd = j->efd, .events = POLLIN };
        pr = poll(&p, 1, SIGNAL_SLICE_MS);
        Py_END_ALLOW_THREADS
        if (pr > 0)
            break;
        if (PyErr_CheckSignals() < 0) {
            pthread_mutex_lock(&j->mu);
            bool done = j->done;
            int rc = j->rc;
            if (!done)
                j->abandoned = true;
            pthread_mutex_unlock(&j->mu);
            if (done && rc == 0)
                rld_refund(h->c, lim, cost);   /* granted just now: the exception wins */
            job_unref(j);
            return RLDPY_EXC;
        }
    }
    pthread_mutex_lock(&j->mu);
    int rc = j->rc;
    *res = j->res;
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
    return rc;
}

int rldpy_wait(rldpy_handle *h, rld_limit lim, uint64_t cost, int64_t timeout_ns,
               const rld_wait_opts *opts, rld_result *res)
{
    int r = rld_try_ex(h->c, lim, cost, (opts->flags & RLD_WAIT_BARGE) ? RLD_TRY_BARGE : 0, res);
    if (r != -EAGAIN)
        return r;
    if (timeout_ns >= 0 && res->retry_after_ns > (uint64_t)timeout_ns)
        return -ETIMEDOUT;   /* cannot fit in time: refused without asking, as rld_wait does */
    if (!_PyOS_IsMainThread())
        return wait_plain(h, lim, cost, timeout_ns, opts, res);
    return wait_interruptible(h, lim, cost, timeout_ns, opts, res);
}
