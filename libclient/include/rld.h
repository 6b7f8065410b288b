/*
 * rld.h - librld, the client library of rld, the host-local rate limiter.
 *
 * A process opens an rld instance (the daemon `rld` must have created it), finds limits by
 * name and takes tokens from them. Taking tokens is a compare-and-swap on shared memory: no
 * system call, no lock, no allocation.
 *
 * Conventions: every int-returning function returns 0 on success or a negative errno value
 * (or one of the RLD_E* codes below); rld_strerror() names them. Pointers to results may be
 * NULL when the caller does not want them. An rld_client may be used by many threads at once.
 *
 * fork(): a client opened before fork() may be used in the child (and in the parent) as if
 * each had opened its own: the child never uses a daemon connection of the parent's (a fork
 * handler closes the child's copies of all of them at the fork, those lent to threads of the
 * parent's too, without a word on them; the child connects anew), waits the parent had
 * started do not exist in the child, and counts the parent had not yet published are not
 * counted twice. Nothing needs to be called around fork(); handles stay valid in both.
 */
#ifndef RLD_H
#define RLD_H

#include <stddef.h>
#include <stdint.h>

#include "rld_codes.h"   /* RLD_EABI, RLD_ECORRUPT: the codes that are not errno values */

#ifdef __cplusplus
extern "C" {
#endif

#define RLD_VERSION_MAJOR 0
#define RLD_VERSION_MINOR 1
#define RLD_VERSION_PATCH 0

/* rld_result.flags */
#define RLD_F_DEGRADED  0x1u  /* answered without the daemon (waits: client-side sleep) */
#define RLD_F_UNLIMITED 0x2u  /* the limit admits everything (rate = unlimited)        */
#define RLD_F_OVERFLOW  0x4u  /* rld_try_key: admitted without a bucket: the template's key
                                 table was full of keys with state (overflow = allow)    */
#define RLD_F_SHADOW    0x8u  /* mode = shadow: admitted, but the limit would have denied
                                 (counted in rld_limit_info.shadowed; nothing was taken)  */
#define RLD_F_PROBE     0x10u /* rld_breaker_enter: this call is a half-open probe; report
                                 its outcome with rld_breaker_report from this thread     */

typedef struct rld_client rld_client;   /* opaque; one per process, thread-safe */

/* A found limit. A value: copy it freely; it stays valid until the limit is deleted
 * (then calls return -ESTALE). Changes of rate or burst keep it valid. */
typedef struct rld_limit {
    uint32_t slot;
    uint32_t gen;
} rld_limit;

typedef struct rld_result {
    uint64_t limit;           /* burst capacity, tokens              (X-RateLimit-Limit)     */
    uint64_t remaining;       /* tokens left after this call         (X-RateLimit-Remaining) */
    uint64_t retry_after_ns;  /* 0 if allowed, else until it fits, rounded up (Retry-After)  */
    uint64_t reset_after_ns;  /* until the bucket is full again      (X-RateLimit-Reset)     */
    uint32_t queue_position;  /* waits: callers ahead of this one; else 0                    */
    uint32_t flags;           /* RLD_F_DEGRADED, ...                                         */
    uint32_t index;           /* rld_try_multi: which charge decided                         */
    uint32_t window;          /* window limits: the (sub-)window the tokens were taken in, for
                                 rld_refund_ex; 0 for GCRA limits                            */
} rld_result;

typedef struct rld_charge {
    rld_limit limit;
    uint64_t  cost;
} rld_charge;

/*
 * Attach instance INSTANCE (NULL: $RLD_INSTANCE, else "default"); FLAGS 0 or RLD_OPEN_*.
 * On success *out owns the mapping until rld_close(). Returns -ENOENT when no daemon ever
 * created the instance, -EAGAIN while it is being created, -EACCES without permission,
 * RLD_EABI / RLD_ECORRUPT for a segment this library cannot use, -EINVAL for a bad name or
 * an unknown flag.
 *
 * RLD_OPEN_FAIL_OPEN: when the instance does not exist or is unusable (any of the codes
 * above but -EINVAL), rld_open still succeeds with a client that admits everything: every
 * call that takes tokens succeeds with RLD_F_DEGRADED in res->flags (limit and remaining
 * UINT64_MAX), rld_find gives handles for any well-formed name. At most once a second, a
 * call on it tries to attach the instance (no thread of its own); once attached, it behaves
 * as a client opened normally and the handles it gave resolve to the limits of those names.
 *
 * RLD_OPEN_MISSING_ADMIT: rld_find of a name the instance does not have succeeds with a
 * handle that admits with RLD_F_DEGRADED until a limit of that name exists (looked up at
 * most once a second), then is that limit; should it be deleted, every call given the
 * handle looks the name up again and admits until it exists again (a fail-open client's
 * handle, without this flag, says -ENOENT meanwhile). Without it (the default), rld_find
 * says -ENOENT.
 */
#define RLD_OPEN_FAIL_OPEN     0x1u
#define RLD_OPEN_MISSING_ADMIT 0x2u
int rld_open(const char *instance, unsigned flags, rld_client **out);

/* Detach. Handles found through C become meaningless. NULL is accepted. Non-blocking waits
 * end without a completion and nothing stays taken for them: grants not collected, even one
 * the daemon sends during the call, and degraded reservations are given back. */
void rld_close(rld_client *c);

/* Look up limit NAME. -ENOENT when there is none, -EINVAL for a malformed name. */
int rld_find(rld_client *c, const char *name, rld_limit *out);

/*
 * Take COST tokens if they fit now. 0: taken. -EAGAIN: denied, res->retry_after_ns says
 * when it would fit (never too early). -E2BIG: COST exceeds the burst and can never fit.
 * -ESTALE: the limit was deleted since rld_find. COST 0 always succeeds and takes nothing.
 */
int rld_try(rld_client *c, rld_limit lim, uint64_t cost, rld_result *res);

/* rld_try with FLAGS: RLD_TRY_BARGE takes the tokens if they are there even while callers
 * are queued at the daemon (by default a try stays behind the queue). */
#define RLD_TRY_BARGE 0x1u
int rld_try_ex(rld_client *c, rld_limit lim, uint64_t cost, unsigned flags, rld_result *res);

/*
 * Wait until COST tokens fit, at most TIMEOUT_NS (< 0: no limit), then take them.
 * The fast path first; when denied, the caller queues at the daemon, fairly: FIFO across
 * processes within a priority, higher priorities first. 0: taken (res->queue_position and
 * the wait are filled). -ETIMEDOUT: the wait would exceed the timeout, refused at once
 * with res->retry_after_ns the time it would have needed. When the daemon cannot be
 * reached, the wait degrades to a client-side reservation and sleep, and res->flags has
 * RLD_F_DEGRADED. Other codes as rld_try. Blocks the calling thread; thread-safe.
 */
int rld_wait(rld_client *c, rld_limit lim, uint64_t cost, int64_t timeout_ns, rld_result *res);

typedef struct rld_wait_opts {
    int      priority;        /* 0 (default) .. 7 (served first) */
    unsigned flags;           /* RLD_WAIT_BARGE */
} rld_wait_opts;
#define RLD_WAIT_BARGE 0x1u   /* try the fast path even while others are queued */
#define RLD_PRIORITY_MAX 7

/* rld_wait with options (NULL: the defaults). -EINVAL for a priority out of range. */
int rld_wait_ex(rld_client *c, rld_limit lim, uint64_t cost, int64_t timeout_ns,
                const rld_wait_opts *opts, rld_result *res);

/*
 * Wait until every charge of CH[0..N) fits (1 <= N <= RLD_MULTI_MAX), then take them all at
 * once; OPTS may be NULL. The set queues fairly at the daemon (FIFO within a priority,
 * across processes, as rld_wait) with a place in the queue of each of its limits, and is
 * served when it is first in all of them and all fit: no retry loop, one request. Refused
 * at once (-ETIMEDOUT) when it cannot fit the timeout. Result as rld_try_multi: res->index
 * names the charge that decided (granted: the one left with the least remaining relative to
 * its burst; refused: the one with the longest wait). Degrades as rld_wait. Blocks.
 */
int rld_wait_multi(rld_client *c, const rld_charge *ch, size_t n, int64_t timeout_ns,
                   const rld_wait_opts *opts, rld_result *res);

/*
 * Non-blocking waits, for event loops (asyncio, libuv, epoll servers). A wait is started
 * and gets a ticket; the client has ONE file descriptor for all its waits, readable when
 * completions may be collected (poll it for input: loop.add_reader(fd, ...) in asyncio);
 * rld_wait_collect then hands them over. Nothing blocks, and no thread is started.
 *
 *   uint64_t t;
 *   rld_wait_start(c, ch, 2, 30000000000, NULL, &t);       // queued (or already done)
 *   ... poll(rld_wait_fd(c), POLLIN) says readable ...
 *   rld_completion done[64];
 *   int k = rld_wait_collect(c, done, 64);                 // done[i].ticket, .code, .res
 *
 * Every successful rld_wait_start produces exactly one completion of kind RLD_COMPLETION_DONE
 * for its ticket: code 0 (every charge taken), -ETIMEDOUT, -ECANCELED, or an error the
 * daemon gave or that arose while the wait was queued (-ESTALE: a limit deleted meanwhile,
 * -ENOSPC: the daemon's queue full...); res as rld_wait_multi's. That includes waits decided
 * at once (the fast path admitted them, or they could never fit the timeout): their
 * completion is ready before rld_wait_start returns, so callers have one path. A charge
 * that can never be served is rld_wait_start's own error instead. Waits of one client are queued
 * at the daemon in the order they were started. When the daemon cannot be reached, a wait
 * reserves its tokens in shared memory and completes (RLD_F_DEGRADED) when they are due;
 * the descriptor also wakes for that. So does a set (more than one charge) when the daemon
 * is too old for sets (no FEATURE_MULTI_WAIT), as rld_wait_multi: a set waits in the client
 * until the daemon's greeting says which. Thread-safe: each call locks the client's wait state
 * briefly; completions go to whichever thread collects them.
 */
typedef struct rld_completion {
    uint64_t   ticket;
    int32_t    code;          /* DONE: the wait's outcome; POSITION: 0, or why no figures    */
    uint32_t   kind;          /* RLD_COMPLETION_DONE or RLD_COMPLETION_POSITION              */
    rld_result res;           /* DONE: as rld_wait_multi's; POSITION: queue_position (callers
                                 ahead now) and retry_after_ns (the wait foreseen from now)  */
} rld_completion;
#define RLD_COMPLETION_DONE     0u
#define RLD_COMPLETION_POSITION 1u

/*
 * Start a wait for every charge of CH (as rld_wait_multi; CH is copied). 0 and *TICKET
 * (never 0) on success; then exactly one DONE completion follows. Errors, with no ticket,
 * nothing taken and no completion: -EINVAL (arguments, or an invalid handle), -E2BIG (a
 * cost above its limit's burst, or a limit named twice above it), -ESTALE (a limit deleted),
 * -ENOENT (a fail-open handle whose name the instance lacks), -ENOMEM, -ENOSPC (this wait's
 * charges would bring the client's charges queued at the daemon above 16,384; a cancelled
 * wait stops counting at once), -EMFILE (no descriptor left). rld_try_multi with the same
 * set names the charge in res.index.
 */
int rld_wait_start(rld_client *c, const rld_charge *ch, size_t n, int64_t timeout_ns,
                   const rld_wait_opts *opts, uint64_t *ticket);

/* The client's wait descriptor (>= 0), owned by the client (do not close or read it; it
 * stays the same for the client's life, in a forked child too), or -errno. Level-triggered:
 * readable while a completion may be collected or the client has input to process. */
int rld_wait_fd(rld_client *c);

/* Process what arrived and copy up to MAX completions into OUT, oldest first: in the order
 * they became ready, of any kind (a wait decided at once or cancelled: at that call; a
 * daemon's reply or a due degraded wait: when a collect processes it), so DONE completions of
 * waits the daemon grants come in its grant order. Returns how many (0: none now), or
 * -EINVAL. Call it whenever the descriptor is readable; it also sends requests that could
 * not be sent at once. Collected tickets are forgotten. */
int rld_wait_collect(rld_client *c, rld_completion *out, size_t max);

/* Give up TICKET's wait. One rule: a ticket whose DONE completion is not collected yet, and
 * that was not cancelled before, is cancelled (0): that completion then says -ECANCELED with
 * res all 0, whatever the outcome was (a grant, even one decided and not collected, is given
 * back; an error is replaced), and nothing stays taken. Any other ticket (collected,
 * cancelled already, never issued): -ENOENT, nothing changes. */
int rld_wait_cancel(rld_client *c, uint64_t ticket);

/* Ask where TICKET stands. 0: exactly one POSITION completion for it follows, always before
 * its DONE completion: code 0 with the figures (degraded waits: RLD_F_DEGRADED, the time to
 * their due reservation), or, when the wait left the daemon's queue before the answer was
 * read, -ECANCELED (cancelled) or -ENOENT (decided; its DONE completion follows). -ENOENT
 * from the call when it is not waiting any more (decided, collected, unknown), -ENOMEM. */
int rld_wait_position(rld_client *c, uint64_t ticket);

/*
 * All or nothing over N charges (N >= 1, at most RLD_MULTI_MAX): either every limit takes
 * its cost, or none does. A denial rolls back what was taken, exactly. res->index names the
 * charge that decided: the one denying with the longest retry_after, or when allowed, the
 * one with the least remaining relative to its burst. -E2BIG (and -ESTALE) name the charge
 * concerned; -E2BIG also for a limit named more than once whose summed cost exceeds its
 * burst (its first charge): every call taking a set says so, the waits too.
 */
#define RLD_MULTI_MAX 64
int rld_try_multi(rld_client *c, const rld_charge *ch, size_t n, rld_result *res);

/* Give back AMOUNT tokens taken earlier; the bucket never exceeds its burst. On a window
 * limit (algorithm sliding or fixed) the tokens go back to the window (for sliding: the
 * sub-window, PERIOD/16) they were taken in while it is current, and not after: rld_refund
 * knows that window when the calling thread's last take on this limit took them, and says
 * -EOPNOTSUPP (nothing given back) when it cannot know; rld_refund_ex is told. */
int rld_refund(rld_client *c, rld_limit lim, uint64_t amount);
/* rld_refund of tokens taken in WINDOW (the taking call's rld_result.window). */
int rld_refund_ex(rld_client *c, rld_limit lim, uint64_t amount, uint32_t window);

/* Take AMOUNT tokens without asking: may go into debt, which later callers wait out.
 * -ERANGE when the debt would exceed 2^62 ns of the limit's rate (nothing is taken). */
int rld_debit(rld_client *c, rld_limit lim, uint64_t amount);

/* The limit's state now; takes nothing. retry_after_ns > 0 only while in debt. */
int rld_peek(rld_client *c, rld_limit lim, rld_result *res);

/*
 * Keyed limits: a [template] in rld.conf(5) defines a limit per key (a client IP, a user, a
 * tenant), and clients create the keys' buckets themselves, in shared memory, without the
 * daemon or any right beyond the instance's. Keys are 1..256 arbitrary bytes. A key whose
 * bucket is full again is indistinguishable from a new one, so idle keys are reclaimed
 * without changing any decision.
 */
typedef struct rld_template {
    uint32_t slot;
    uint32_t gen;
} rld_template;

/* Look up template NAME. -ENOENT when there is none (a [limit] of that name is not one). */
int rld_find_template(rld_client *c, const char *name, rld_template *out);

/*
 * Find or create KEY's bucket (KEYLEN bytes, 1..256) and take COST: the one call a request
 * handler needs. Returns as rld_try, and -ENOSPC when the key is new and the table is full
 * of keys with state (the template's overflow = deny; with overflow = allow it admits, with
 * RLD_F_OVERFLOW in res->flags and limit and remaining UINT64_MAX), -ESTALE when the
 * template was deleted (find it again), -EBUSY when the key's insertion was blocked by a
 * stopped process for 50 ms.
 */
int rld_try_key(rld_client *c, rld_template t, const void *key, size_t keylen, uint64_t cost,
                rld_result *res);

/*
 * A handle on KEY's bucket (created if need be), usable with every call taking an rld_limit
 * (waits, rld_try_multi, refund, debit, peek, info). Once the key is reclaimed (full again
 * and idle) the handle says -ESTALE: call rld_key again. -ENOSPC as rld_try_key (whatever
 * the overflow policy: there is no bucket to hand out).
 */
int rld_key(rld_client *c, rld_template t, const void *key, size_t keylen, rld_limit *out);

/*
 * For a template of rate = caller (per-tenant plans): the key's rate is COUNT per PERIOD_NS
 * (its burst COUNT; COUNT up to 2^32-1, PERIOD whole milliseconds up to 49 days: else
 * -ERANGE), set when the key is created and changed when it differs (a plan change: the
 * key keeps its state in time). On such a template rld_try_key and rld_key work for keys
 * that exist, and say -EINVAL for a new one (it needs a rate); on another template these
 * say -EINVAL.
 */
int rld_try_key_rate(rld_client *c, rld_template t, const void *key, size_t keylen,
                     uint64_t count, uint64_t period_ns, uint64_t cost, rld_result *res);
int rld_key_rate(rld_client *c, rld_template t, const void *key, size_t keylen, uint64_t count,
                 uint64_t period_ns, rld_limit *out);

/*
 * A limit's configuration and counters, for status displays and headers. The counters run
 * since the limit was created; each thread publishes its counts in batches (librld(3)).
 * Tokens in use by callers: admitted + debited - refunded.
 */
typedef struct rld_limit_info {
    char     name[65];
    uint64_t rate_count;      /* tokens per period as configured; 0 when unlimited */
    uint64_t rate_period_ns;
    uint64_t burst;           /* GCRA: tokens at once; a window: its COUNT (the cap) */
    uint64_t admitted;        /* tokens admitted and kept: tries, waits, all-or-nothing sets
                                 counted once every charge of the set was taken */
    uint64_t denied;          /* calls denied */
    uint32_t waiters;         /* callers queued at the daemon now */
    uint32_t algorithm;       /* RLD_ALGO_GCRA, RLD_ALGO_SLIDING or RLD_ALGO_FIXED */
    uint64_t align_ns;        /* fixed windows: start this long after each multiple of the
                                 period since the Unix epoch */
    uint32_t kind;            /* RLD_KIND_LIMIT, RLD_KIND_TEMPLATE or RLD_KIND_KEY */
    uint32_t max_keys;        /* a template's (or a key's template's) key table capacity */
    uint64_t keys;            /* a template: keys live now (approximate while they change) */
    uint64_t refunded;        /* tokens given back after admission (rld_refund; a granted
                                 wait cancelled or never collected) */
    uint64_t rolled_back;     /* tokens taken and put back by an all-or-nothing call that
                                 failed (rld_try_multi denied, a grant never delivered) */
    uint64_t debited;         /* tokens taken without asking (rld_debit) */
    uint32_t mode;            /* RLD_MODE_ENFORCE or RLD_MODE_SHADOW (a key: its template's) */
    uint32_t concurrency;     /* concurrency = N: leases at most; 0 when it has none */
    uint64_t shadowed;        /* mode = shadow: calls admitted that it would have denied
                                 (counted exactly, but wraps at 2^32) */
} rld_limit_info;

/* rld_limit_info.mode (rld.conf(5): mode = enforce | shadow) */
#define RLD_MODE_ENFORCE 0u
#define RLD_MODE_SHADOW  1u

/* rld_limit_info.kind */
#define RLD_KIND_LIMIT    0u  /* a [limit]: rld_find */
#define RLD_KIND_TEMPLATE 1u  /* a [template] (rld_find_template); name and rate are its
                                 keys', counters the sum over its keys */
#define RLD_KIND_KEY      2u  /* one key of a template (rld_key): name is the template's */
#define RLD_KIND_BREAKER  3u  /* a [breaker] (rld_breaker_find): rld_breaker_info has it */

/* rld_limit_info.align_ns of a fixed window anchored at its first take (align = first) or
 * pushed a period on by every attempt (align = elastic), rather than on the wall clock */
#define RLD_ALIGN_FIRST   (UINT64_MAX - 1)
#define RLD_ALIGN_ELASTIC (UINT64_MAX - 2)

/* rld_limit_info.algorithm (rld.conf(5): algorithm = gcra | sliding | fixed) */
#define RLD_ALGO_GCRA    0u   /* a steady rate with a burst */
#define RLD_ALGO_SLIDING 1u   /* at most COUNT in any PERIOD (sub-windows of PERIOD/16) */
#define RLD_ALGO_FIXED   2u   /* at most COUNT per wall-clock window of PERIOD */

/* Fill *out for LIM. -ESTALE when the limit was deleted. */
int rld_info(rld_client *c, rld_limit lim, rld_limit_info *out);

/*
 * Listening to the upstream: what an API's answers say about its quota, applied to a limit
 * in one atomic change of its state, for every algorithm and for keys (rld_key's handles).
 * Neither ever loosens the limit: a state that already admits no more stays as it is.
 * Callers queued at the daemon are re-timed (those who can no longer meet their timeout
 * are told at once). -ERANGE beyond 52 days; -EOPNOTSUPP for a global limit (scope =
 * global: its pool is refilled from Redis) and for a key of a sliding template.
 */
/* A 429 said "retry after RETRY_AFTER_NS": no process takes from LIM before now + that, to
 * the ns (a sliding window: to its sub-window, PERIOD/16, as it decides per sub-window);
 * then one token at that time and the rate after it (GCRA), or what the window has left. */
int rld_penalize(rld_client *c, rld_limit lim, uint64_t retry_after_ns);
/* The server said REMAINING calls are left until its reset in RESET_AFTER_NS
 * (X-RateLimit-Remaining / -Reset, RateLimit-Remaining / -Reset): from now on at most
 * REMAINING are admitted before then. */
int rld_sync(rld_client *c, rld_limit lim, uint64_t remaining, uint64_t reset_after_ns);

/*
 * In-flight (concurrency) limits: a limit with concurrency = N in rld.conf(5) (alone, or
 * beside a rate: then a lease also takes a token) has at most N leases held at once across
 * the host's processes. Waiting for one queues fairly at the daemon (FIFO within a
 * priority, with the limit's waits); the leases of a process that dies come back within a
 * second. A lease belongs to the process that acquired it.
 */
typedef struct rld_lease {
    uint64_t opaque[2];
} rld_lease;
/* Acquire one of LIM's leases within TIMEOUT_NS (< 0: no limit; 0: only if one is free
 * now). 0 with *OUT; -EAGAIN (timeout 0, none free), -ETIMEDOUT, -EINVAL (LIM has no
 * concurrency), -ESTALE, -ENOTCONN (the daemon is not answering; a client opened with
 * RLD_OPEN_FAIL_OPEN gets a lease that holds nothing instead), -ENOSPC (too many waiters),
 * -EOPNOTSUPP (the daemon running is too old for leases). */
int rld_acquire_lease(rld_client *c, rld_limit lim, int64_t timeout_ns, rld_lease *out);
/* Give LEASE back (then zeroed). -ENOENT when it is not held (given back already, or its
 * daemon restarted meanwhile), -ENOTCONN, -EOPNOTSUPP. */
int rld_release_lease(rld_client *c, rld_lease *lease);

/*
 * Circuit breakers shared by every process of the host: [breaker NAME] in rld.conf(5).
 * Closed, every call passes and `failures` consecutive failures open it; open, every call
 * is refused for `open_for`; then half-open: exactly `probes` calls pass, host-wide, and
 * `successes` probe successes close it, a failure opens it again; a probe that does not
 * report within `probe_timeout` (its process died) counts as failed. The handle is an
 * rld_limit; no daemon is involved.
 */
int rld_breaker_find(rld_client *c, const char *name, rld_limit *out);
/* 0: the call may go (RLD_F_PROBE in res->flags: it is a probe); -EAGAIN: refused,
 * res->retry_after_ns until it may be tried (the breaker half-opens, or its probes time
 * out). RES may be NULL. */
int rld_breaker_enter(rld_client *c, rld_limit b, rld_result *res);
/* The outcome of a call that entered (OK nonzero: it succeeded). A probe's report is
 * recognised in the thread that entered; a late report (the breaker moved on) decides
 * nothing. */
int rld_breaker_report(rld_client *c, rld_limit b, int ok);

typedef struct rld_breaker_status {
    char     name[65];
    uint32_t state;           /* RLD_BREAKER_CLOSED, _OPEN or _HALF_OPEN, as a call now finds it */
    uint32_t failures;        /* closed: consecutive failures so far */
    uint32_t probes_out;      /* half-open: probes not reported yet */
    uint32_t successes;       /* half-open: probe successes so far */
    uint64_t retry_after_ns;  /* open: until it half-opens; half-open: until probes time out */
    uint64_t opens, closes;   /* transitions since it was created */
    uint64_t admitted, denied;   /* calls let through and refused */
    uint32_t cfg_failures, cfg_probes, cfg_successes;
    uint64_t cfg_open_for_ns, cfg_probe_timeout_ns;
} rld_breaker_status;
#define RLD_BREAKER_CLOSED    0u
#define RLD_BREAKER_OPEN      1u
#define RLD_BREAKER_HALF_OPEN 2u
int rld_breaker_info(rld_client *c, rld_limit b, rld_breaker_status *out);

/*
 * Retry with capped exponential backoff and full jitter (the delay is uniform in
 * [0, min(cap, base x 2^attempt)]) that honours a server's Retry-After: the delay is never
 * shorter than it. Not thread-safe per object; no allocation, no daemon.
 */
typedef struct rld_backoff {
    uint64_t base_ns, cap_ns;
    uint32_t attempt, max_attempts;
    uint64_t rng;
} rld_backoff;
/* BASE_NS 0: 100 ms; CAP_NS 0: 30 s; MAX_ATTEMPTS 0: no limit. */
void rld_backoff_init(rld_backoff *b, uint64_t base_ns, uint64_t cap_ns, uint32_t max_attempts);
/* The delay before the next attempt, given RETRY_AFTER_NS (0: none said): 0 with *DELAY_NS,
 * or -ETIMEDOUT once MAX_ATTEMPTS retries were given. */
int rld_backoff_next(rld_backoff *b, uint64_t retry_after_ns, uint64_t *delay_ns);
/* After a success: the next failure starts from BASE again. */
void rld_backoff_reset(rld_backoff *b);

/*
 * Enumerate the live limits: set *cursor to 0, then each call fills *out with the next
 * limit and advances *cursor, until it returns -ENOENT. A limit created or deleted during
 * the enumeration may or may not be seen; every other one is seen exactly once.
 */
int rld_next(rld_client *c, uint32_t *cursor, rld_limit *out);

/* The instance as its segment shows it, for status displays. */
typedef struct rld_instance {
    char     name[65];
    uint32_t max_limits;         /* capacity of the segment ([rld] max_limits) */
    uint32_t limits;             /* live limits */
    uint64_t segment_bytes;
    uint32_t daemon_pid;         /* the daemon attached now; 0 if none */
    uint32_t keeper_pid;         /* the process holding the segment between daemons */
    int      daemon_alive;       /* its heartbeat is fresh (else waits degrade) */
    uint64_t heartbeat_age_ns;   /* since the daemon's last heartbeat */
    uint64_t config_gen;         /* bumped on every configuration change */
} rld_instance;

int rld_instance_info(rld_client *c, rld_instance *out);

/* A static English message for any code these functions return. Never NULL. */
const char *rld_strerror(int err);

/* The library's version as MAJOR * 10000 + MINOR * 100 + PATCH. */
int rld_version(void);

#ifdef __cplusplus
}
#endif
#endif
