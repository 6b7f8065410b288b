/*
 * metrics.h - an instance's limits in the Prometheus text exposition format (version 0.0.4):
 * the one generator behind `rlctl metrics` and the daemon's scrape endpoint
 * ([rld] metrics_listen), so both say exactly the same thing.
 *
 * It writes as it goes, a buffer at a time, whole lines only: the daemon serves a scrape of
 * 100,000 limits (some 100 MB) in chunks between the other work of its loop, with a few
 * hundred bytes of state per scrape. Families come one after the other, each with # HELP
 * and # TYPE and all its samples together (the format requires it), the limits in slot
 * order; a family whose limits are all left out is not written at all. Labels:
 * rld_instance (Prometheus reserves "instance" for the scrape target), and limit, template
 * or breaker. After the limits and the templates: shadow limits' admitted denials,
 * concurrency limits' leases and the breakers' figures. Values are
 * read from the segment (common/limitstat.h) when each sample is written.
 */
#ifndef RLD_COMMON_METRICS_H
#define RLD_COMMON_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segment.h"

/* The longest line the generator writes (a sample with a 64-byte name escaped twice over). */
#define RLDI_METRICS_LINE_MAX 512

/* What the daemon says of Redis when it has global limits (issue 17): its Stats reply for
 * rlctl, its own figures for the endpoint. */
typedef struct rldi_metrics_redis {
    bool     up;
    uint64_t rtt_ns, calls, errors, reconnects, fallback_ns;
    uint32_t global_limits;
} rldi_metrics_redis;

/* A concurrency limit's leases as the daemon counts them: held now, and reclaimed (their
 * holder died) since it started. 0, or < 0 when not known (those samples are left out). */
typedef int (*rldi_metrics_leases_fn)(void *arg, uint32_t slot, uint32_t gen, uint64_t *held,
                                      uint64_t *reclaimed);

typedef struct rldi_metrics {
    const rldi_seg    *seg;       /* NULL: no instance to read (only rld_up is written) */
    char               instance[RLDI_NAME_MAX + 1];
    bool               up;        /* rld_up: the daemon answers */
    bool               have_redis;
    rldi_metrics_redis redis;
    rldi_metrics_leases_fn leases;    /* NULL: no daemon to ask (no held, no reclaimed) */
    void              *leases_arg;
    const char *const *globs;     /* per-limit samples of the limits matching one (fnmatch) */
    int                nglobs;    /* 0: every limit */
    /* where it is */
    int                part;      /* rld_up, Redis, the instance's gauges, per limit, done */
    int                family;    /* per limit: which family */
    uint32_t           cursor;    /* per limit: the next slot */
    bool               opened;    /* per limit: this family's HELP and TYPE are written */
} rldi_metrics;

/* Start a scrape of SEG (may be NULL) for INSTANCE; UP is rld_up; REDIS (may be NULL: no
 * global limits, or no daemon to ask) is copied; GLOBS (N of them, may be 0) select limits
 * and must outlive the scrape. */
void rldi_metrics_init(rldi_metrics *m, const rldi_seg *seg, const char *instance, bool up,
                       const rldi_metrics_redis *redis, const char *const *globs, int nglobs);

/* Where the daemon's lease figures come from (the daemon's own table, or rlctl's Status
 * calls); without it those two families are left out. Before the first rldi_metrics_next. */
void rldi_metrics_set_leases(rldi_metrics *m, rldi_metrics_leases_fn fn, void *arg);

/* The next whole lines, into BUF (CAP >= RLDI_METRICS_LINE_MAX bytes, not terminated):
 * the number of bytes written, 0 once everything was. NOW_NS is CLOCK_MONOTONIC. */
size_t rldi_metrics_next(rldi_metrics *m, char *buf, size_t cap, uint64_t now_ns);

/* The per-limit families, for help texts: "rld_limit_admitted_tokens_total, ...". */
const char *rldi_metrics_family_name(int i);   /* NULL past the last */

#endif
