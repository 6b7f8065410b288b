/*
 * upstream.c - librld's calls for listening to the upstream (issue 15): rld_penalize and
 * rld_sync (admission in common/bucket.c, one CAS), the leases of concurrency limits (the
 * daemon's: a request on a pooled connection), circuit breakers (common/breaker.c, shared
 * memory only) and the backoff helper.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "breaker.h"
#include "bucket.h"
#include "client.h"
#include "clock.h"
#include "rate.h"
#include "wire.h"

#define CALL_SLICE_MS 1000              /* how often a lease wait checks the daemon's pulse */
#define RETIME_MS     1000
#define LEASE_NONE    UINT64_C(0x0fa11)  /* opaque[1] of a lease that holds nothing (fail-open) */

static inline rldi_handle handle(rld_limit lim)
{
    return (rldi_handle){ lim.slot, lim.gen };
}

/* R was said of a handle in a segment the daemon has since grown out of (the old one's
 * limits are sealed with a new gen): the client now maps the new one, where the same
 * handle is valid; try again there. As client.c's calls do. */
static bool grown(rld_client *c, int r)
{
    return (r == -ESTALE || r == -EINVAL) && rldc_follow(c) == 1;
}

/* ---- the daemon, for one request ------------------------------------------------------- */

/*
 * Send REQ on a pooled connection and wait for its reply, at most TIMEOUT_NS (< 0: as long
 * as the daemon beats) plus slack. 0 with *REP; -ENOTCONN when the daemon cannot be reached
 * or stops answering; -EOPNOTSUPP when it does not know leases.
 */
static int call(rld_client *c, Rld__V1__Request *req, int64_t timeout_ns, Rld__V1__Reply **rep)
{
    unsigned forks;
    rldi_conn *k;
    struct rldc_conn *x = rldc_pool_borrow(c, &forks, &k);
    if (!x)
        return -ENOTCONN;
    if (!(k->features & RLD__V1__FEATURE__FEATURE_LEASES)) {
        rldc_pool_return(c, x, forks, false);
        return -EOPNOTSUPP;
    }
    uint64_t id;
    if (rldi_conn_send(k, req, &id) < 0) {
        rldc_pool_return(c, x, forks, true);
        return -ENOTCONN;
    }
    uint64_t give_up = timeout_ns >= 0 ? rldi_mono_ns() + (uint64_t)timeout_ns + 2000000000ull : 0;
    for (;;) {
        int r = rldi_conn_recv(k, CALL_SLICE_MS, rep);
        if (r == -ETIMEDOUT) {
            uint64_t now = rldi_mono_ns();
            if (rldi_seg_daemon_stale(rldc_seg(c), now) || (give_up && now > give_up)) {
                rldc_pool_return(c, x, forks, true);
                return -ENOTCONN;
            }
            continue;
        }
        if (r < 0) {
            rldc_pool_return(c, x, forks, true);
            return -ENOTCONN;
        }
        if ((*rep)->id != id) {
            rld__v1__reply__free_unpacked(*rep, NULL);
            continue;
        }
        rldc_pool_return(c, x, forks, false);
        return 0;
    }
}

/* ---- penalize, sync ------------------------------------------------------------------------ */

/* The daemon re-times LIM's waiters (best effort: without a daemon there are none). */
static void retime(rld_client *c, rld_limit lim)
{
    if (rldi_seg_daemon_stale(rldc_seg(c), rldi_mono_ns()))
        return;
    Rld__V1__Retime rt = RLD__V1__RETIME__INIT;
    rt.slot = lim.slot;
    rt.gen = lim.gen;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_RETIME;
    req.retime = &rt;
    Rld__V1__Reply *rep;
    if (call(c, &req, (int64_t)RETIME_MS * 1000000, &rep) == 0)
        rld__v1__reply__free_unpacked(rep, NULL);
}

int rld_sync(rld_client *c, rld_limit lim, uint64_t remaining, uint64_t reset_after_ns)
{
    if (!c)
        return -EINVAL;
    rld_limit real;
    int r = rldc_resolve(c, lim, &real);
    if (r != 0)
        return r > 0 ? 0 : r;           /* a handle that admits: nothing to hold back */
    rldi_sync_out out;
    rldi_u128 now = rldi_now_fp();
    r = rldi_bucket_sync(rldc_seg(c), handle(real), remaining, reset_after_ns, now, &out);
    if (grown(c, r))
        r = rldi_bucket_sync(rldc_seg(c), handle(real), remaining, reset_after_ns, now, &out);
    if (r == 0 && out.changed && out.waiters)
        retime(c, real);
    return r;
}

int rld_penalize(rld_client *c, rld_limit lim, uint64_t retry_after_ns)
{
    return rld_sync(c, lim, 0, retry_after_ns);
}

/* ---- leases ------------------------------------------------------------------------------ */

int rld_acquire_lease(rld_client *c, rld_limit lim, int64_t timeout_ns, rld_lease *out)
{
    if (!c || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    rld_limit real;
    int r = rldc_resolve(c, lim, &real);
    if (r < 0)
        return r;
    if (r > 0) {                        /* a handle that admits (fail-open): holds nothing */
        out->opaque[1] = LEASE_NONE;
        return 0;
    }
    for (int again = 0;; again = 1) {
        r = 0;
        if (real.slot >= rldc_seg(c)->slot_count)
            r = -EINVAL;
        else if (rldi_load_relaxed(&rldc_seg(c)->slots[real.slot].gen) != real.gen ||
                 !(real.gen & 1))
            r = -ESTALE;
        if (r == 0 || again || !grown(c, r))
            break;
    }
    if (r < 0)
        return r;
    if (rldi_load_relaxed(&rldc_seg(c)->meta[real.slot].concurrency) == 0)
        return -EINVAL;
    Rld__V1__Lease l = RLD__V1__LEASE__INIT;
    l.slot = real.slot;
    l.gen = real.gen;
    l.timeout_ns = timeout_ns;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_LEASE;
    req.lease = &l;
    Rld__V1__Reply *rep;
    r = call(c, &req, timeout_ns, &rep);
    if (r == -ENOTCONN && (c->flags & RLD_OPEN_FAIL_OPEN)) {
        out->opaque[1] = LEASE_NONE;
        return 0;
    }
    if (r < 0)
        return r;
    r = rep->code;
    if (r == 0 && (rep->body_case != RLD__V1__REPLY__BODY_WAIT || !rep->wait->lease_id))
        r = -EPROTO;
    if (r == 0) {
        out->opaque[0] = rep->wait->lease_id;
        out->opaque[1] = real.slot | (uint64_t)real.gen << 32;
        /* the daemon took the lease's token as it grants a wait: counted here, as a
         * collected grant is (admitted = kept) */
        rldc_count_now(c, real.slot, RLDC_ADMITTED, 1);
    }
    rld__v1__reply__free_unpacked(rep, NULL);
    return r == -ESHUTDOWN ? -ENOTCONN : r;
}

int rld_release_lease(rld_client *c, rld_lease *lease)
{
    if (!c || !lease)
        return -EINVAL;
    if (lease->opaque[0] == 0) {
        bool none = lease->opaque[1] == LEASE_NONE;
        memset(lease, 0, sizeof(*lease));
        return none ? 0 : -ENOENT;
    }
    Rld__V1__Release rl = RLD__V1__RELEASE__INIT;
    rl.lease_id = lease->opaque[0];
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_RELEASE;
    req.release = &rl;
    Rld__V1__Reply *rep;
    int r = call(c, &req, (int64_t)RETIME_MS * 1000000, &rep);
    if (r < 0)
        return r;
    r = rep->code;
    rld__v1__reply__free_unpacked(rep, NULL);
    if (r == 0 || r == -ENOENT)
        memset(lease, 0, sizeof(*lease));
    return r;
}

/* ---- breakers ---------------------------------------------------------------------------- */

/* The calling thread's probe: which breaker it entered as one, in which half-open period. */
static __thread struct {
    const void *seg;
    uint32_t    slot, gen, epoch;
    bool        set;
} probe_tls;

int rld_breaker_find(rld_client *c, const char *name, rld_limit *out)
{
    return rldc_find_kind(c, name, RLDI_KIND_BREAKER, out);   /* fail-open: lets all through */
}

int rld_breaker_enter(rld_client *c, rld_limit b, rld_result *res)
{
    if (!c)
        return -EINVAL;
    rld_limit real;
    int r = rldc_resolve(c, b, &real);
    if (r != 0) {
        if (r > 0 && res)
            rldc_result_open(res);      /* no breaker (yet): closed */
        return r > 0 ? 0 : r;
    }
    rldi_verdict vd;
    rldi_brk_ticket t;
    r = rldi_breaker_enter(rldc_seg(c), handle(real), rldi_mono_ns(), &vd, &t);
    if (grown(c, r))
        r = rldi_breaker_enter(rldc_seg(c), handle(real), rldi_mono_ns(), &vd, &t);
    if (r == 0 || r == -EAGAIN) {
        if (res) {
            rldc_result(res, &vd);
            if (t.probe)
                res->flags |= RLD_F_PROBE;
        }
        if (r == 0 && t.probe) {
            probe_tls.seg = rldc_seg(c)->base;
            probe_tls.slot = real.slot;
            probe_tls.gen = real.gen;
            probe_tls.epoch = t.epoch;
            probe_tls.set = true;
        }
    }
    return r;
}

int rld_breaker_report(rld_client *c, rld_limit b, int ok)
{
    if (!c)
        return -EINVAL;
    rld_limit real;
    int r = rldc_resolve(c, b, &real);
    if (r != 0)
        return r > 0 ? 0 : r;
    rldi_brk_ticket t = { 0, false };
    if (probe_tls.set && probe_tls.seg == rldc_seg(c)->base && probe_tls.slot == real.slot &&
        probe_tls.gen == real.gen) {
        t.probe = true;
        t.epoch = probe_tls.epoch;
        probe_tls.set = false;
    }
    r = rldi_breaker_report(rldc_seg(c), handle(real), ok != 0, &t, rldi_mono_ns());
    if (grown(c, r))
        r = rldi_breaker_report(rldc_seg(c), handle(real), ok != 0, &t, rldi_mono_ns());
    return r;
}

int rld_breaker_info(rld_client *c, rld_limit b, rld_breaker_status *out)
{
    if (!c || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    rld_limit real;
    int r = rldc_resolve(c, b, &real);
    if (r != 0)
        return r > 0 ? -ENOENT : r;
    rldi_brk_view v;
    r = rldi_breaker_read(rldc_seg(c), handle(real), rldi_mono_ns(), &v);
    if (grown(c, r))
        r = rldi_breaker_read(rldc_seg(c), handle(real), rldi_mono_ns(), &v);
    if (r < 0)
        return r;
    if ((r = rldi_seg_name(rldc_seg(c), real.slot, out->name)) < 0)
        return r == -ENOENT ? -ESTALE : r;
    out->state = v.state;
    out->failures = v.failures;
    out->probes_out = v.probes_out;
    out->successes = v.successes;
    out->retry_after_ns = v.until_ns;
    out->opens = v.opens;
    out->closes = v.closes;
    out->admitted = v.admitted;
    out->denied = v.denied;
    out->cfg_failures = v.conf.failures;
    out->cfg_probes = v.conf.probes;
    out->cfg_successes = v.conf.successes;
    out->cfg_open_for_ns = v.conf.open_for_ns;
    out->cfg_probe_timeout_ns = v.conf.probe_timeout_ns;
    return 0;
}

/* ---- backoff ---------------------------------------------------------------------------- */

#define BACKOFF_BASE_NS 100000000ull
#define BACKOFF_CAP_NS  30000000000ull

void rld_backoff_init(rld_backoff *b, uint64_t base_ns, uint64_t cap_ns, uint32_t max_attempts)
{
    if (!b)
        return;
    b->base_ns = base_ns ? base_ns : BACKOFF_BASE_NS;
    b->cap_ns = cap_ns ? cap_ns : BACKOFF_CAP_NS;
    if (b->cap_ns < b->base_ns)
        b->cap_ns = b->base_ns;
    b->attempt = 0;
    b->max_attempts = max_attempts;
    if (getrandom(&b->rng, sizeof(b->rng), GRND_NONBLOCK) != (ssize_t)sizeof(b->rng))
        b->rng = rldi_mono_ns() ^ (uint64_t)(uintptr_t)b;
    b->rng |= 1;
}

void rld_backoff_reset(rld_backoff *b)
{
    if (b)
        b->attempt = 0;
}

int rld_backoff_next(rld_backoff *b, uint64_t retry_after_ns, uint64_t *delay_ns)
{
    if (!b || !delay_ns)
        return -EINVAL;
    if (b->max_attempts && b->attempt >= b->max_attempts)
        return -ETIMEDOUT;
    /* min(cap, base x 2^attempt), without overflow */
    uint64_t ceiling = b->base_ns;
    for (uint32_t i = 0; i < b->attempt && ceiling < b->cap_ns; i++)
        ceiling = ceiling > b->cap_ns / 2 ? b->cap_ns : ceiling * 2;
    if (ceiling > b->cap_ns)
        ceiling = b->cap_ns;
    b->rng ^= b->rng >> 12;             /* xorshift64* */
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    uint64_t r = b->rng * 0x2545f4914f6cdd1dull;
    uint64_t d = (uint64_t)(((unsigned __int128)r * ((unsigned __int128)ceiling + 1)) >> 64);
    *delay_ns = d > retry_after_ns ? d : retry_after_ns;
    if (b->attempt < UINT32_MAX)
        b->attempt++;
    return 0;
}
