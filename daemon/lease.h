/*
 * lease.h - in-flight (concurrency) limits: the leases the daemon holds for clients
 * (issue 15; rld_acquire_lease, rld_release_lease). A limit with concurrency = N in
 * rld.conf(5) (meta.concurrency in the segment) has at most N leases held at once, across
 * processes. A lease belongs to the process that asked for it (its pid from SO_PEERCRED
 * when it connected); the daemon opens a pidfd for each holding process and polls them
 * while leases are held, so the leases of a process that dies (kill -9 included) come back
 * within a poll (LEASE_POLL_NS) of its death. Waiting for a lease is the wait queue's
 * (waitq.c): this module only counts, grants, releases and reaps.
 *
 * The state lives in the daemon's memory only: a daemon restart forgets the leases held
 * (their holders keep running, so up to N more may be granted until they release theirs);
 * releases of forgotten leases say -ENOENT.
 */
#ifndef RLD_DAEMON_LEASE_H
#define RLD_DAEMON_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rld.pb-c.h"
#include "segment.h"

#define LEASE_POLL_NS 100000000ull      /* how often dead holders are looked for */

typedef struct leases leases;

leases *leases_new(rldi_seg *seg);
void leases_free(leases *l);

/* The concurrency of SLOT (meta.concurrency): 0 when it has none. */
uint32_t leases_capacity(const leases *l, uint32_t slot);
/* Is one of SLOT's (gen GEN) leases free now? */
bool leases_available(const leases *l, uint32_t slot, uint32_t gen);

/* Grant one of SLOT's leases to PID (of UID) at NOW: 0 with *ID; -ENOSPC none free, -ESRCH
 * the process is gone (no pidfd), -ENOMEM, -EMFILE. */
int leases_grant(leases *l, uint32_t slot, uint32_t gen, pid_t pid, uid_t uid, uint64_t now,
                 uint64_t *id);

/* Give lease ID back, for a peer of UID (ADMIN: any): 0 with *SLOT (whose waiters may be
 * served now); -ENOENT (not held), -EPERM (another user's). */
int leases_release(leases *l, uint64_t id, uid_t uid, bool admin, uint32_t *slot);

/* The leases of processes that died come back: FN(SLOT, CTX) once per limit that got some
 * back. Returns how many. Cheap when none are held (call it every LEASE_POLL_NS). */
uint32_t leases_reap(leases *l, void (*fn)(uint32_t slot, void *ctx), void *ctx);

/* SLOT's limit is gone (deleted; or another limit in the slot): its leases are forgotten. */
void leases_drop_slot(leases *l, uint32_t slot);

/* Any lease held (the daemon polls while there are)? */
bool leases_any(const leases *l);

/* Status of SLOT: held now, granted and reclaimed since the daemon started, and up to MAX
 * holders (most leases first) into OUT (pid, leases, held_ns at NOW). Returns holders. */
typedef struct lease_stats {
    uint32_t held;
    uint64_t granted, reclaimed;
} lease_stats;
size_t leases_status(const leases *l, uint32_t slot, uint64_t now, lease_stats *st,
                     Rld__V1__LeaseHolder *out, size_t max);
/* Totals: leases held, processes holding, leases reclaimed. */
void leases_totals(const leases *l, uint32_t *held, uint32_t *holders, uint64_t *reclaimed);

#endif
