/*
 * client.h - librld internals shared by its source files (client.c, wait.c, counters.c):
 * the client object and the per-thread counters of admitted and denied calls. Nothing
 * outside libclient/ includes it.
 */
#ifndef RLD_LIBCLIENT_CLIENT_H
#define RLD_LIBCLIENT_CLIENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bucket.h"
#include "gcra.h"
#include "instance.h"
#include "rld.h"
#include "segment.h"
#include "rld.pb-c.h"

#define RLDC_POOL 16                    /* idle daemon connections kept for waits */

struct rldc_conn;
struct rldc_async;
struct rldc_name;

/*
 * Handles that name a limit not (yet) found: RLD_OPEN_FAIL_OPEN before the instance exists,
 * RLD_OPEN_MISSING_ADMIT for a name the instance lacks. Their slot is RLDC_PENDING_BIT | an
 * index into the client's table of names: no segment has such a slot (at most 2^24), so
 * the fast path refuses them with -EINVAL on its bounds check, at no cost to other handles,
 * and the refusal path (detached.c) resolves them.
 */
#define RLDC_PENDING_BIT  0x80000000u
#define RLDC_PENDING_GEN  0x0fa11u
#define RLDC_MAX_PENDING  4096u

/* A segment this client mapped: the current one, or one replaced since (kept mapped until
 * rld_close: a thread may still be reading it). */
typedef struct rldc_segment {
    rldi_seg              seg;
    struct rldc_segment  *older;
} rldc_segment;

struct rld_client {
    rldc_segment *segp;    /* the segment now (acquire): seg0 while detached (slot_count 0,
                              RLD_OPEN_FAIL_OPEN), else one attached; replaced when the
                              daemon grows the instance's segment (rldc_follow) */
    rldc_segment  seg0;
    rldi_paths paths;
    uint64_t   serial;     /* unique per rld_open in this process: tells reused addresses apart */
    unsigned   flags;      /* RLD_OPEN_* */
    /* waits: connections to the daemon, one per waiting thread, reused (wait.c) */
    pthread_mutex_t   pool_lock;
    struct rldc_conn *pool[RLDC_POOL];  /* idle */
    int               npool;
    struct rldc_conn *lent;             /* lent to waiting threads */
    unsigned          pool_forks;         /* rldc_forks when the pool was filled */
    uint64_t          daemon_down_until;  /* ns: skip connecting until then */
    /* non-blocking waits (async.c), created on first use; the pointer is set once */
    struct rldc_async *async;
    /* fail-open and pending names (detached.c), under names_lock */
    pthread_mutex_t   names_lock;
    uint64_t          next_attach_ns;
    struct rldc_name **names;             /* RLDC_MAX_PENDING slots, allocated on first use */
    uint32_t          nnames;
    /* the fast path (client.c rld_try) */
    uint64_t          coarse_margin_ns;   /* the coarse path's margin, 4 ticks; 0: off */
    uint64_t          fast_full_ns;       /* rldi_bucket_take_fast's FULL_MAX_NS when this
                                             thread's pending counts can take the call: the
                                             margin, at most RLDI_POOL_T_NS */
};

/* client.c: give AMOUNT of LIM back (to WINDOW), counting nothing, following a grown
 * segment: 0 with *SLOT the limit's slot (a pending handle resolved), 1 when LIM admits
 * without a limit (nothing was taken), or rld_refund_ex's codes. */
int rldc_give_back(rld_client *c, rld_limit lim, uint64_t amount, uint32_t window, rldi_u128 now,
                   uint32_t *slot);
/* client.c: copy a bucket verdict into RES (may be NULL). */
void rldc_result(rld_result *res, const rldi_verdict *vd);
/* client.c: rld_try_multi with rldi_bucket_take FLAGS (RLDI_TAKE_BARGE). */
/* WINDOWS (may be NULL): on success, the window each charge's tokens were taken in (0 for
 * GCRA limits), for giving them back exactly (rldc_refund_all). */
int rldc_try_multi(rld_client *c, const rld_charge *ch, size_t n, unsigned flags,
                   rld_result *res, uint32_t *windows);
/* wait.c: a pooled daemon connection for a request of one's own (upstream.c: leases,
 * Retime), NULL when the daemon cannot be reached; given back with rldc_pool_return (DROP:
 * it failed). */
struct rldi_conn;
struct rldc_conn *rldc_pool_borrow(rld_client *c, unsigned *forks, struct rldi_conn **k);
void rldc_pool_return(rld_client *c, struct rldc_conn *x, unsigned forks, bool drop);
/* wait.c: close the pooled daemon connections. */
void rldc_pool_close(rld_client *c);
/* In a fork's child handler (pool_lock held; close(2) only, async-signal-safe): close the
 * child's copies of every daemon connection of C, idle or lent, and of the non-blocking
 * waits' connection, event and timer descriptors (async.c; not the epoll instance, whose
 * number the child keeps). */
void rldc_pool_forget(rld_client *c);
void rldc_async_forget(rld_client *c);

/*
 * fork safety: rldc_forks counts the fork()s this process came out of (a pthread_atfork
 * child handler bumps it), so a slow path tells an inherited connection from its own with
 * one load, no getpid() (not cached by glibc). The prepare handler holds the registry lock
 * and every open client's locks across fork(), so the child inherits them in a known state.
 */
extern volatile unsigned rldc_forks;
void rldc_atfork_once(void);

/* The segment now (see rld_client.segp). */
static inline rldi_seg *rldc_seg(const rld_client *c)
{
    return &__atomic_load_n(&c->segp, __ATOMIC_ACQUIRE)->seg;
}

/* detached.c: fail-open. True once the segment is mapped (acquire). */
static inline bool rldc_attached(const rld_client *c)
{
    return rldc_seg(c)->slot_count != 0;
}

/* detached.c: when the segment was replaced (the daemon grew it; RETIRING while it copies,
 * then RETIRED), map the new one and make it current (waiting up to 5 s for it): 1 when the
 * segment changed (retry the call), 0 when it is current, or a code. Calls that meet
 * -ESTALE, -EINVAL or -ENOENT ask. */
int rldc_follow(rld_client *c);
/* rld_open's part: 0 attached, or the flags allow a detached client; else the error. */
int rldc_open_segment(rld_client *c, int open_error);
/* Attach now if detached and a second passed since the last try. */
void rldc_maybe_attach(rld_client *c);
/* rld_find for a name the instance lacks (or a detached client): a pending handle, or -ENOENT. */
int rldc_find_pending(rld_client *c, const char *name, uint32_t kind, rld_limit *out);
/* rld_find and rld_breaker_find: NAME's handle if it is a slot of KIND (RLDI_KIND_*), a
 * pending one when detached or missing (RLD_OPEN_MISSING_ADMIT), else a code. */
int rldc_find_kind(rld_client *c, const char *name, uint32_t kind, rld_limit *out);
/*
 * What handle LIM stands for: 0 with *OUT the real handle (LIM itself when it is not
 * pending); 1 when it admits (pending and unresolved: RLD_F_DEGRADED); -ENOENT (a pending
 * name that is known to be missing, without RLD_OPEN_MISSING_ADMIT), -EINVAL. A pending
 * handle whose limit was deleted is looked up again at once, by any call that resolves it.
 */
int rldc_resolve(rld_client *c, rld_limit lim, rld_limit *out);
/* A pending handle's real limit was deleted: look it up again. */
void rldc_unresolve(rld_client *c, rld_limit lim);
/* The result of an admission without an instance or a limit. */
void rldc_result_open(rld_result *res);
void rldc_names_free(rld_client *c);

/* async.c: the non-blocking waits' state, freed at rld_close (grants not collected are
 * given back). */
void rldc_async_free(rld_client *c);
void rldc_async_lock(rld_client *c);      /* atfork prepare */
void rldc_async_unlock(rld_client *c);

/* wait.c, shared by the blocking and the non-blocking waits. */
#define RLDC_WAIT_MAX_CHARGES RLD_MULTI_MAX
/* The charges CH[0..N) a wait must queue for: pending ones resolved, admitting ones left
 * out. *M charges into OUT, MAP[j] the index in CH of OUT[j]. 0, or a code of rldc_resolve. */
int rldc_wait_charges(rld_client *c, const rld_charge *ch, size_t n, rld_charge *out,
                      size_t *m, uint8_t *map);
/* The degraded wait without the sleep: reserve every charge now (into debt if need be) when
 * due by DEADLINE_NS (0: none), all or nothing. 0 with *WAIT_NS until they are due, -ETIMEDOUT
 * (nothing taken; res says when it would fit), or a take's code. Counts at once. */
int rldc_reserve_multi(rld_client *c, const rld_charge *ch, size_t n, uint64_t deadline_ns,
                       rld_result *res, uint64_t *wait_ns, uint32_t *windows);
/* Give back every charge of a wait that was admitted and is not wanted any more (granted
 * then cancelled, never collected): counted as refunded, at once (may run under the
 * client's wait lock). WINDOWS (may be NULL: this thread's last take, see rld_refund) the
 * window each was taken in, for window limits. */
void rldc_refund_all(rld_client *c, const rld_charge *ch, size_t n, const uint32_t *windows);
/* Build the Wait request for CH (legacy single fields when N == 1). CHARGES/PTRS: N each. */
void rldc_wait_request(Rld__V1__Wait *w, Rld__V1__Charge *charges, Rld__V1__Charge **ptrs,
                       const rld_charge *ch, size_t n, int64_t timeout_ns, int priority);
/* Fill RES from a WaitReply (W may be NULL), its index mapped through MAP; res->window is
 * the deciding charge's. WINDOWS (may be NULL): each charge's window, 0s when not said. */
void rldc_wait_result(rld_result *res, const Rld__V1__WaitReply *w, const uint8_t *map, size_t m,
                      uint32_t *windows);

/*
 * Counters. A locked add per call on the limit's line would cost as much as the rest of the
 * fast path's arithmetic, so each thread accumulates its counts for the last (client, limit)
 * it used and publishes them with one atomic add every RLDC_FLUSH_CALLS calls, whenever
 * RLDC_FLUSH_NS passed since its last publication, when it moves to another limit, at
 * rld_close (calling thread), at thread exit and at process exit. Readers of the counters
 * therefore lag by at most that much per thread; a process killed by a signal loses its
 * unpublished counts. Counters are statistics: admission never depends on them.
 *
 * What each counts (layout.h): ADMITTED tokens admitted and kept (an all-or-nothing call
 * counts its charges only once all of them are taken), DENIED calls, REFUNDED tokens given
 * back after admission, ROLLED_BACK tokens taken and put back by an all-or-nothing call
 * that failed, DEBITED tokens taken without asking. Tokens in use: admitted + debited -
 * refunded.
 */
#define RLDC_FLUSH_CALLS 64u
#define RLDC_FLUSH_NS    50000000ull

enum rldc_counter { RLDC_ADMITTED, RLDC_DENIED, RLDC_REFUNDED, RLDC_ROLLED_BACK, RLDC_DEBITED,
                    RLDC_NCOUNTERS };

/* Per thread: the pending counts, and the coarse path's state (client.c rld_try), in one
 * thread-local block so that rld_try computes one address (in a shared library an
 * initial-exec TLS access loads the block's offset from the GOT). */
typedef struct rldc_pending {
    const rld_client *c;
    uint64_t serial;
    uint32_t slot;
    uint32_t calls;
    uint64_t n[RLDC_NCOUNTERS];
    uint64_t flushed_ns;
    rldi_coarse coarse;         /* not counts: pending_clear leaves it */
} rldc_pending;

extern __thread rldc_pending rldc_tls __attribute__((tls_model("initial-exec")));

void rldc_count_slow(rld_client *c, uint32_t slot, enum rldc_counter k, uint64_t amount,
                     uint64_t now_ns);
void rldc_register(rld_client *c);
void rldc_unregister(rld_client *c);

/* Count AMOUNT on counter K of SLOT, batched. Never under a client's lock: publishing may
 * take the registry's (lock order: registry first). */
/* Can P's pending counts take one more count of C's limit SLOT at NOW_NS, no publication
 * due (rldc_count's common case)? */
static inline bool rldc_batchable(const rldc_pending *p, const rld_client *c, uint32_t slot,
                                  uint64_t now_ns)
{
    return p->c == c && p->slot == slot && p->serial == c->serial &&
           p->calls + 1 < RLDC_FLUSH_CALLS && now_ns - p->flushed_ns < RLDC_FLUSH_NS;
}

static inline void rldc_count(rld_client *c, uint32_t slot, enum rldc_counter k, uint64_t amount,
                              uint64_t now_ns)
{
    rldc_pending *p = &rldc_tls;
    if (__builtin_expect(rldc_batchable(p, c, slot, now_ns), 1)) {
        p->calls++;
        p->n[k] += amount;
        return;
    }
    rldc_count_slow(c, slot, k, amount, now_ns);
}

/* Count AMOUNT on counter K of SLOT at once, unbatched: for the paths that may hold a
 * client's lock (the waits' give-backs) and cannot take the registry's. */
void rldc_count_now(rld_client *c, uint32_t slot, enum rldc_counter k, uint64_t amount);

#endif
