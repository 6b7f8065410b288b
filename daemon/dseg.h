/*
 * dseg.h - the daemon's side of the segment: create or re-attach it, and create, change and
 * delete limits in it while clients keep taking tokens. The daemon is the only writer of
 * everything but the state words and counters (one daemon per instance: a lock file).
 */
#ifndef RLD_DAEMON_DSEG_H
#define RLD_DAEMON_DSEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "instance.h"
#include "segment.h"

typedef struct dseg_opts {
    uint32_t max_limits;   /* capacity of a new segment */
    uint64_t keys_size;    /* bytes of key tables in a new segment (dseg_keys_size) */
    bool     fresh;        /* discard an existing segment instead of re-attaching it */
    int      inherited_fd; /* a segment memfd from systemd's fd store, or -1 */
} dseg_opts;

/* What a sync changed, for the log and for replies. OVERRIDDEN: limits that keep their
 * run-time setting (counted in kept too); DROPPED: run-time settings the file's changed
 * line replaced (counted in changed or kept). */
typedef struct dseg_changes {
    unsigned kept, created, changed, deleted, overridden, dropped;
} dseg_changes;

/*
 * The instance's segment: re-attached from its keeper (or systemd's fd store) if it is one of
 * ours, else a new sealed memfd (or, with fresh, a new one in any case). *fd is the memfd
 * (the daemon keeps it), *keeper the pid of a keeper that holds it already (0: none runs),
 * *created tells which. On failure writes a one-line reason that says what to do into ERR
 * and returns a negative errno / RLD_E* code; a keeper of another user is refused (-EPERM).
 */
int dseg_open(const rldi_paths *p, const dseg_opts *o, rldi_seg *s, int *fd, pid_t *keeper,
              bool *created, char *err, size_t errlen);

/* Rebuild the name index from the live slots (repairs an index left locked by a daemon
 * that died mid-update) and drop slots whose name is unusable. Returns live limits. */
uint32_t dseg_repair(rldi_seg *s);

/* Make the segment's limits equal to CONF: unchanged ones keep their state exactly,
 * changed ones carry it (rldi_gcra_carry), missing ones are created full, others deleted,
 * except those KEEP (may be NULL) says to keep (limits created at run time). DELETING
 * (may be NULL) is told of each slot before it is deleted. A limit named in CONF becomes
 * the file's, but for a run-time override of it (RLDI_ORIGIN_OVERRIDE) made while the
 * file's line was the one CONF has now: that keeps its setting. Returns 0 or -ENOSPC (more
 * limits than slots: nothing changed). */
typedef bool (*dseg_keep_fn)(uint32_t slot, void *ctx);
typedef void (*dseg_delete_fn)(uint32_t slot, void *ctx);
int dseg_sync(rldi_seg *s, const rldi_config *conf, dseg_changes *ch, dseg_keep_fn keep,
              dseg_delete_fn deleting, void *ctx);

/* Mark the segment ready (after the first sync) and record the daemon's pid. */
void dseg_publish(rldi_seg *s, pid_t pid);

/* Refresh the daemon heartbeat; on shutdown, clear the pid. */
/* Refresh the daemon's heartbeat, after checking the header: one someone wrote over is
 * rebuilt (with KEEPER's pid) and the index with it. 1 when it was, else 0. */
int dseg_heartbeat(rldi_seg *s, pid_t keeper);
void dseg_detach(rldi_seg *s);

/* One limit, by slot: create / change / delete. Exposed for the protocol (Put/Delete). */
int dseg_limit_create(rldi_seg *s, const rldi_limitdef *l, uint32_t *slot);

/* Bytes of key tables CONF's templates need (a new segment's dseg_opts.keys_size). */
uint64_t dseg_keys_size(const rldi_config *conf);
/* Bytes of the segment's key region no table has yet (0 when no record is left either): a
 * new template's table needs this much, unless a deleted template left one of its size. */
uint64_t dseg_keys_free(const rldi_seg *s);
/* Live templates (each holds a slot, as a limit does). */
uint32_t dseg_template_count(const rldi_seg *s);
int dseg_limit_change(rldi_seg *s, uint32_t slot, const rldi_limitdef *l, bool *changed);
void dseg_limit_delete(rldi_seg *s, uint32_t slot);
/* Empty the bucket: full again, debt forgiven. */
void dseg_limit_reset(rldi_seg *s, uint32_t slot);
/* Does CONF ask for more than S has (max_limits)? Templates and max_keys that do not fit
 * are dseg_sync's -EXFULL. */
bool dseg_needs_growth(const rldi_seg *s, const rldi_config *conf);

/* What a growth did. */
typedef struct dseg_grown {
    uint32_t limits;            /* limits and templates carried */
    uint64_t keys;              /* keys with state carried */
    uint64_t keys_dropped;      /* keys that did not fit a smaller table (max_keys lowered) */
    bool     keeper_failed;     /* the keeper did not take it: the caller starts another */
    double   seconds;
} dseg_grown;

/*
 * Replace S (memfd *FD) by a larger segment for CONF: its max_limits slots (never fewer),
 * every template's table at CONF's max_keys. Every limit keeps its slot, gen and state,
 * every key with state its state (in a new place: key handles say -ESTALE); idle keys are
 * not moved. The old segment is RETIRING while its limits are sealed and copied, then
 * RETIRED once the keeper hands out the new one: clients follow by themselves (librld).
 * 0, or a negative code with ERR (nothing changed).
 */
int dseg_grow(rldi_seg *s, int *fd, const rldi_paths *p, const rldi_config *conf,
              dseg_grown *out, char *err, size_t errlen);

/* Reclaim the idle keys of a slice of every key table (the whole of a table of 1M keys in
 * about 9 calls), and free places whose insertion was left half done by a process that
 * died. Returns the keys reclaimed. Call about once a second. */
uint64_t dseg_keys_sweep(rldi_seg *s);

/* Make template SLOT's KEY full again: 0, or -ENOENT (no such key: full already). */
int dseg_key_reset(rldi_seg *s, uint32_t slot, const void *key, size_t len);

/*
 * Run-time overrides of limits declared in the file. dseg_def_hash identifies a file's
 * definition (rate, burst, debt cap, algorithm, scope as they resolve); dseg_limit_origin records who set
 * SLOT's limit: RLDI_ORIGIN_OVERRIDE with FILE_HASH the hash of the file's definition it
 * overrides, else FILE_HASH 0.
 */
uint64_t dseg_def_hash(const rldi_limitdef *l);
void dseg_limit_origin(rldi_seg *s, uint32_t slot, uint32_t origin, uint64_t file_hash);

#endif
