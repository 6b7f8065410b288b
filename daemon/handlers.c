/*
 * handlers.c - the daemon layer (see handlers.h): what rld does with each request
 * (proto/rld.proto), its reloads and its periodic work.
 *
 * Everything received is untrusted: it is decoded by protobuf-c (bounded by the packet
 * size), then every field is validated here before use; names are checked with the same
 * rules as the configuration file and escaped before they are logged. Put, Delete, Reset,
 * Revert and Reload need an admin peer: root, the daemon's own user, or a member of
 * [rld] admin_group (from the peer's /proc/PID/status: its real supplementary groups).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atomics.h"
#include "breaker.h"
#include "bucket.h"
#include "clock.h"
#include "codes.h"
#include "dseg.h"
#include "handlers.h"
#include "httpd.h"
#include "keeper.h"
#include "limitstat.h"
#include "metrics.h"
#include "keys.h"
#include "log.h"
#include "rate.h"
#include "rld.h"   /* RLD_VERSION_* */
#include <systemd/sd-daemon.h>

#define HEARTBEAT_NS      1000000000ull
#define HELLO_TIMEOUT_NS  5000000000ull

/* Root, rld's own user, or a member of [rld] admin_group: from the credentials the kernel
 * gave at connect time (SO_PEERCRED, SO_PEERGROUPS). /proc/<pid> is not asked: the pid may
 * belong to another process by the time we look. */
static bool is_admin(const rld_daemon *s, const conn *c)
{
    if (c->uid == 0 || c->uid == geteuid())
        return true;
    if (s->admin_gid == (gid_t)-1)
        return false;
    if (c->gid == s->admin_gid)
        return true;
    for (uint32_t i = 0; i < c->ngroups; i++)
        if (c->groups[i] == s->admin_gid)
            return true;
    return false;
}

static void escape(const char *in, char *out, size_t len)
{
    rlog_escape(in, strnlen(in, 256), out, len);
}

/* ---- configuration changes --------------------------------------------------------------- */

static bool keep_runtime(uint32_t slot, void *ctx)
{
    const rld_daemon *s = ctx;
    return rldi_load_relaxed(&s->seg->meta[slot].origin) == RLDI_ORIGIN_RUNTIME;
}

/* A limit the reload deletes: its waiters learn it first; its leases are forgotten. */
static void deleting(uint32_t slot, void *ctx)
{
    rld_daemon *s = ctx;
    waitq_limit_deleted(s->wq, slot);
    if (s->leases)
        leases_drop_slot(s->leases, slot);
}

static void keeper_watch(rld_daemon *d);

int daemon_grow(rld_daemon *d, const rldi_config *conf, char *err, size_t errlen)
{
    uint32_t before = d->seg->slot_count;
    size_t size_before = d->seg->size;
    dseg_grown gw;
    /* the lease thread and the wait queues look at the segment: paused, then told */
    global_pause(d->global);
    int r = dseg_grow(d->seg, &d->seg_fd, &d->paths, conf, &gw, err, errlen);
    global_resume(d->global);
    if (r < 0) {
        LOG_ERROR("the segment could not grow: %s", err);
        return r;
    }
    if (waitq_grown(d->wq, before) < 0)
        LOG_ERROR("out of memory for the wait queues of the grown segment");
    if (gw.keeper_failed) {
        /* the old keeper would hand out the old segment: another keeper, with the new one */
        if (d->keeper_pid > 0)
            kill(d->keeper_pid, SIGTERM);
        d->keeper_pid = 0;
        keeper_watch(d);
    }
    rldi_store_relaxed(&d->seg->hdr->keeper_pid, (uint32_t)d->keeper_pid);
    sd_pid_notify_with_fds(0, 0, "FDSTOREREMOVE=1\nFDNAME=segment", NULL, 0);
    sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=segment", &d->seg_fd, 1);
    LOG_INFO("the segment grew to %u slots (from %u) and %zu bytes (from %zu): %u limits and "
             "%llu keys carried in %.3f s%s; its clients follow by themselves",
             d->seg->slot_count, before, d->seg->size, size_before, gw.limits,
             (unsigned long long)gw.keys, gw.seconds,
             gw.keys_dropped ? " (keys that did not fit a smaller table: dropped)" : "");
    return 0;
}

int daemon_reload(rld_daemon *s, Rld__V1__ReloadReply *counts, char *err, size_t errlen)
{
    uint64_t t0 = rldi_mono_ns();
    rldi_config next;
    int r = rldi_config_load(s->config_path, &next, err, errlen);
    if (r < 0)
        return r;
    if ((r = global_check(&next, err, errlen)) < 0) {
        rldi_config_free(&next);
        return r;
    }
    dseg_changes ch;
    r = dseg_needs_growth(s->seg, &next) ? -ENOSPC : dseg_sync(s->seg, &next, &ch, keep_runtime,
                                                               deleting, s);
    if ((r == -ENOSPC || r == -EXFULL) && daemon_grow(s, &next, err, errlen) == 0)
        r = dseg_sync(s->seg, &next, &ch, keep_runtime, deleting, s);
    if (r < 0) {
        if (r == -EXFULL)
            snprintf(err, errlen, "the templates' key tables do not fit in the segment (a new "
                     "template, or another max_keys, needs room made when the segment was: "
                     "restart with --fresh, which resets every limit)");
        else if (r == -EINVAL)
            snprintf(err, errlen, "a name changes between [limit] and [template]: delete it "
                     "first (a reload without it), then add it back");
        else
            snprintf(err, errlen, "%zu limits do not fit in the segment's %u slots",
                     next.nlimits, s->seg->slot_count);
        rldi_config_free(&next);
        return r;
    }
    if (strcmp(next.metrics_listen, s->conf->metrics_listen) != 0)
        LOG_WARN("[rld] metrics_listen changed from '%s' to '%s': that takes effect when rld "
                 "restarts", s->conf->metrics_listen, next.metrics_listen);
    rldi_config_free(s->conf);
    *s->conf = next;
    waitq_set_max_waiters(s->wq, s->conf->max_waiters, s->conf->max_waits_per_uid);
    global_sync(s->global, s->conf);
    uint32_t cursor = 0, slot, gen;
    while (rldi_seg_next(s->seg, &cursor, &slot, &gen) == 0)
        waitq_limit_changed(s->wq, slot);
    if (counts) {
        counts->kept = ch.kept;
        counts->created = ch.created;
        counts->changed = ch.changed;
        counts->deleted = ch.deleted;
        counts->overridden = ch.overridden;
        counts->dropped = ch.dropped;
    }
    LOG_INFO("reloaded %s: %u kept (%u with a run-time setting), %u created, %u changed "
             "(%u run-time settings replaced by the file's), %u deleted in %.3f s",
             s->config_path, ch.kept, ch.overridden, ch.created, ch.changed, ch.dropped,
             ch.deleted, (double)(rldi_mono_ns() - t0) / 1e9);
    return 0;
}

/* The live limit NAME for request ID, else reply why not and return false. ESC receives
 * the name escaped for logs. */
static bool find_live(rld_daemon *s, conn *c, uint64_t id, const char *name, uint32_t *slot,
                      char *esc, size_t esclen)
{
    const char *why;
    escape(name, esc, esclen);
    uint32_t gen;
    int r = rldi_name_check(name, &why) < 0 ? -EINVAL : rldi_seg_lookup(s->seg, name, slot, &gen);
    if (r < 0)
        srv_reply_code(s->srv, c, id, r, "limit '%s': %s", esc, rldi_strerror(r));
    return r == 0;
}

/* "burst 7", "sliding window", "fixed window aligned +15m": for the log. */
static const char *shape(const rldi_limitdef *l, char *buf, size_t len)
{
    char al[32] = "";
    if (l->algo == RLDI_ALGO_GCRA) {
        snprintf(buf, len, "burst %llu", (unsigned long long)l->burst);
    } else {
        if (l->algo == RLDI_ALGO_FIXED && l->align_ns)
            rldi_format_duration(al, sizeof(al), l->align_ns);
        snprintf(buf, len, "%s window%s%s", rldi_algo_name(l->algo), *al ? " aligned +" : "", al);
    }
    return buf;
}

static void do_put(rld_daemon *s, conn *c, uint64_t id, const Rld__V1__Put *p)
{
    if (!p->limit) {
        srv_reply_code(s->srv, c, id, -EINVAL, "Put without a limit");
        return;
    }
    const char *why;
    char esc[96];
    escape(p->limit->name, esc, sizeof(esc));
    rldi_limitdef l;
    memset(&l, 0, sizeof(l));
    if (strlen(p->limit->name) > RLDI_NAME_MAX) {
        srv_reply_code(s->srv, c, id, -EINVAL, "bad limit name '%s': longer than %u bytes", esc,
                       RLDI_NAME_MAX);
        return;
    }
    strcpy(l.name, p->limit->name);
    /* rate = caller (a template's): each key's rate comes from the client */
    bool caller = p->limit->template_ && p->limit->rate && strcmp(p->limit->rate, "caller") == 0;
    if (!caller && rldi_parse_rate(p->limit->rate, &l.count, &l.period_ns, &why) < 0) {
        char rate[96];
        escape(p->limit->rate, rate, sizeof(rate));
        srv_reply_code(s->srv, c, id, -EINVAL, "bad rate '%s': %s", rate, why);
        return;
    }
    l.burst = p->limit->burst;
    if (p->limit->algorithm && *p->limit->algorithm &&
        rldi_algo_parse(p->limit->algorithm, &l.algo) < 0) {
        char alg[64];
        escape(p->limit->algorithm, alg, sizeof(alg));
        srv_reply_code(s->srv, c, id, -EINVAL, "bad algorithm '%s': gcra, sliding or fixed", alg);
        return;
    }
    l.align_ns = p->limit->align_ns;
    l.align_set = p->limit->align_ns != 0;
    /* a template (keyed limits): its table's size and overflow policy */
    const char *ov = p->limit->overflow ? p->limit->overflow : "";
    const char *what = p->limit->template_ ? "template" : "limit";
    if (p->limit->template_) {
        l.kind = RLDI_KIND_TEMPLATE;
        l.max_keys = p->limit->max_keys ? p->limit->max_keys : RLDI_MAX_KEYS_DEFAULT;
        if (*ov && strcmp(ov, "deny") != 0 && strcmp(ov, "allow") != 0) {
            char o[64];
            escape(ov, o, sizeof(o));
            srv_reply_code(s->srv, c, id, -EINVAL, "template '%s': bad overflow '%s': deny or "
                           "allow", esc, o);
            return;
        }
        l.overflow_allow = strcmp(ov, "allow") == 0;
        l.caller_rate = caller;
    } else if (p->limit->max_keys || *ov) {
        srv_reply_code(s->srv, c, id, -EINVAL, "limit '%s': max_keys and overflow are for "
                       "templates", esc);
        return;
    }
    /* mode and concurrency: given, or the limit's own (a new one: enforce, none) */
    uint32_t slot, gen;
    int r = rldi_seg_lookup(s->seg, l.name, &slot, &gen);
    bool have = r == 0;
    if (have && s->seg->meta[slot].kind == RLDI_KIND_BREAKER) {
        srv_reply_code(s->srv, c, id, -EINVAL, "'%s' is a breaker, not a %s: change it in %s and "
                       "reload", esc, what, s->config_path);
        return;
    }
    if (p->limit->mode && *p->limit->mode) {
        if (strcmp(p->limit->mode, "shadow") != 0 && strcmp(p->limit->mode, "enforce") != 0) {
            char md[64];
            escape(p->limit->mode, md, sizeof(md));
            srv_reply_code(s->srv, c, id, -EINVAL, "bad mode '%s': enforce or shadow", md);
            return;
        }
        l.shadow = p->limit->mode[0] == 's';
    } else if (have) {
        l.shadow = (rldi_load_relaxed(&s->seg->slots[slot].flags) & RLDI_SLOT_SHADOW) != 0;
    }
    l.concurrency = p->limit->concurrency ? p->limit->concurrency
                    : have ? rldi_load_relaxed(&s->seg->meta[slot].concurrency) : 0;
    enum rldi_limitdef_field field;
    int bad = rldi_limitdef_check(&l, &why, &field);
    if (bad < 0) {
        if (field == RLDI_LD_NAME)
            srv_reply_code(s->srv, c, id, bad, "bad %s name '%s': %s", what, esc, why);
        else if (field == RLDI_LD_BURST && l.algo == RLDI_ALGO_GCRA)
            srv_reply_code(s->srv, c, id, bad, "%s '%s': burst %llu: %s", what, esc,
                           (unsigned long long)rldi_limitdef_burst(&l), why);
        else
            srv_reply_code(s->srv, c, id, bad, "%s '%s': %s", what, esc, why);
        return;
    }
    if (l.algo == RLDI_ALGO_GCRA)
        l.burst = rldi_limitdef_burst(&l);
    char shp[64];
    if (r == 0 && global_has(s->global, slot)) {
        srv_reply_code(s->srv, c, id, -EPERM, "limit '%s' is global (scope in %s): change it "
                       "there and reload", esc, s->config_path);
        return;
    }
    const char *note = "ok";
    char msg[512];
    if (r == 0) {
        bool is_tmpl = s->seg->meta[slot].kind == RLDI_KIND_TEMPLATE;
        if (p->create_only) {
            srv_reply_code(s->srv, c, id, -EEXIST, "%s '%s' exists", is_tmpl ? "template"
                                                                             : "limit", esc);
            return;
        }
        if (is_tmpl != (l.kind == RLDI_KIND_TEMPLATE)) {
            /* a name is a limit or a template for its whole life */
            srv_reply_code(s->srv, c, id, -EINVAL, "'%s' is a %s, not a %s: delete it first to "
                           "make it one", esc, is_tmpl ? "template" : "limit", what);
            return;
        }
        /* A limit of the file: this setting overrides the file's line until that line
         * changes (or a Revert); the file's own setting given back ends the override. */
        const rldi_limitdef *fl = s->seg->meta[slot].origin != RLDI_ORIGIN_RUNTIME
                                      ? rldi_config_find(s->conf, l.name) : NULL;
        if (fl && fl->kind != RLDI_KIND_LIMIT) {
            srv_reply_code(s->srv, c, id, -EPERM, "'%s' is a template (in %s): change it there "
                           "and reload", esc, s->config_path);
            return;
        }
        if (is_tmpl) {
            /* a change: what the Put leaves out (0, "") is kept */
            uint32_t ti = s->seg->meta[slot].tmpl;
            const rldi_tmpl *rec = ti < RLDI_MAX_TEMPLATES ? &s->seg->hdr->tmpl[ti] : NULL;
            if (!p->limit->max_keys && rec)
                l.max_keys = rec->max_keys;
            if (!*ov && rec)
                l.overflow_allow = (rec->flags & RLDI_TMPL_OVERFLOW_ALLOW) != 0;
        }
        uint32_t origin = RLDI_ORIGIN_RUNTIME;
        uint64_t file_hash = 0;
        if (fl) {
            file_hash = dseg_def_hash(fl);
            origin = dseg_def_hash(&l) == file_hash ? RLDI_ORIGIN_FILE : RLDI_ORIGIN_OVERRIDE;
        } else if (s->seg->meta[slot].origin != RLDI_ORIGIN_RUNTIME) {
            origin = RLDI_ORIGIN_FILE;     /* the file's, yet not in the file: keep it so */
        }
        bool changed;
        r = dseg_limit_change(s->seg, slot, &l, &changed);
        if (r == -EXFULL) {
            srv_reply_code(s->srv, c, id, r, "template '%s': max_keys %u needs a key table of "
                           "another size, which a Put does not make: declare it so in %s and "
                           "reload (the segment grows, its keys carried), or delete the "
                           "template and create it again (its keys start full)", esc,
                           l.max_keys, s->config_path);
            return;
        }
        if (r < 0) {
            srv_reply_code(s->srv, c, id, r, "%s '%s': %s", what, esc, strerror(-r));
            return;
        }
        dseg_limit_origin(s->seg, slot, origin, file_hash);
        waitq_limit_changed(s->wq, slot);
        if (origin == RLDI_ORIGIN_OVERRIDE) {
            char file_rate[48], fshp[64];
            rldi_format_rate(file_rate, sizeof(file_rate), fl->count, fl->period_ns);
            snprintf(msg, sizeof(msg), "set at run time; the file says %s, %s: this setting "
                     "stays across reloads and restarts until the file's line for '%s' changes "
                     "(rlctl revert %s returns to the file's)", file_rate,
                     shape(fl, fshp, sizeof(fshp)), esc, esc);
            note = msg;
        } else if (fl) {
            note = "the file's own setting";
        }
        LOG_INFO("%s %s: set to %s, %s by pid %d (uid %d)%s%s", what, esc, p->limit->rate,
                 shape(&l, shp, sizeof(shp)), (int)c->pid, (int)c->uid,
                 !changed ? ", unchanged"
                 : l.algo == RLDI_ALGO_GCRA && !is_tmpl ? ", state carried" : "",
                 origin == RLDI_ORIGIN_OVERRIDE ? ", overriding the file's setting until its "
                                                  "line changes"
                 : fl ? ", the file's own setting" : "");
    } else {
        if (p->update_only) {
            srv_reply_code(s->srv, c, id, -ENOENT, "no %s '%s'", what, esc);
            return;
        }
        if ((r = dseg_limit_create(s->seg, &l, &slot)) < 0) {
            /* the segment grows for a template of the file (reload), not for a Put */
            if (r == -EXFULL)
                srv_reply_code(s->srv, c, id, r, "cannot create template '%s': the segment has "
                               "no room for its key table (max_keys %u: %llu bytes; %llu free, "
                               "and no table of that size left by a deleted template): declare "
                               "it in %s and reload, the segment grows for it (every limit and "
                               "key carried)", esc, l.max_keys,
                               (unsigned long long)rldi_keys_table_bytes(l.max_keys),
                               (unsigned long long)dseg_keys_free(s->seg), s->config_path);
            else
                srv_reply_code(s->srv, c, id, r, "cannot create '%s': %s", esc,
                               r == -ENOSPC ? "the segment is full (raise [rld] max_limits, "
                                              "restart with --fresh)"
                                            : strerror(-r));
            return;
        }
        dseg_limit_origin(s->seg, slot, RLDI_ORIGIN_RUNTIME, 0);
        if (l.kind == RLDI_KIND_TEMPLATE)
            LOG_INFO("template %s: created (%s, %s, max_keys %u, overflow %s) by pid %d (uid %d)",
                     esc, p->limit->rate, shape(&l, shp, sizeof(shp)), l.max_keys,
                     l.overflow_allow ? "allow" : "deny", (int)c->pid, (int)c->uid);
        else
            LOG_INFO("limit %s: created (%s, %s) by pid %d (uid %d)", esc, p->limit->rate,
                     shape(&l, shp, sizeof(shp)), (int)c->pid, (int)c->uid);
    }
    srv_reply_code(s->srv, c, id, 0, "%s", note);
}

/* The file's setting back for a limit set at run time (a no-op for one that has it). */
static void do_revert(rld_daemon *s, conn *c, uint64_t id, const char *name)
{
    char esc[96];
    uint32_t slot;
    if (!find_live(s, c, id, name, &slot, esc, sizeof(esc)))
        return;
    const rldi_limitdef *fl = rldi_config_find(s->conf, name);
    if (s->seg->meta[slot].origin == RLDI_ORIGIN_RUNTIME || !fl) {
        srv_reply_code(s->srv, c, id, -EINVAL, "limit '%s' was created at run time: the file "
                       "has no setting for it to return to (rlctl delete removes it)", esc);
        return;
    }
    if (s->seg->meta[slot].origin == RLDI_ORIGIN_FILE) {
        srv_reply_code(s->srv, c, id, 0, "limit '%s' has the file's setting already", esc);
        return;
    }
    bool changed;
    int r = dseg_limit_change(s->seg, slot, fl, &changed);
    if (r < 0) {
        /* the override stays (and says so in status) rather than be marked the file's */
        srv_reply_code(s->srv, c, id, r, "limit '%s': the file's setting cannot be applied "
                       "(%s): reload, which applies the file", esc, rldi_strerror(r));
        return;
    }
    dseg_limit_origin(s->seg, slot, RLDI_ORIGIN_FILE, 0);
    waitq_limit_changed(s->wq, slot);
    LOG_INFO("limit %s: back to the file's setting by pid %d (uid %d)%s", esc, (int)c->pid,
             (int)c->uid, changed ? ", state carried" : "");
    srv_reply_code(s->srv, c, id, 0, "back to the file's setting");
}

static void do_delete(rld_daemon *s, conn *c, uint64_t id, const char *name)
{
    char esc[96];
    uint32_t slot;
    if (!find_live(s, c, id, name, &slot, esc, sizeof(esc)))
        return;
    bool tmpl = s->seg->meta[slot].kind == RLDI_KIND_TEMPLATE;
    waitq_limit_deleted(s->wq, slot);
    if (s->leases)
        leases_drop_slot(s->leases, slot);
    dseg_limit_delete(s->seg, slot);
    LOG_INFO("%s %s: deleted by pid %d (uid %d)%s", tmpl ? "template" : "limit", esc,
             (int)c->pid, (int)c->uid, tmpl ? ", its keys with it" : "");
    srv_reply_code(s->srv, c, id, 0, "ok");
}

/* Reset KEY of template SLOT (named ESC): that key full again. */
static void reset_key(rld_daemon *s, conn *c, uint64_t id, uint32_t slot, const char *esc,
                      const ProtobufCBinaryData *key)
{
    char kesc[128];           /* escaped, cut with "..." when long */
    rlog_escape((const char *)key->data, key->len, kesc, sizeof(kesc));
    if (s->seg->meta[slot].kind != RLDI_KIND_TEMPLATE) {
        srv_reply_code(s->srv, c, id, -EINVAL, "'%s' is a limit, not a template: only a "
                       "template's keys can be reset one by one", esc);
        return;
    }
    int r = dseg_key_reset(s->seg, slot, key->data, key->len);
    if (r == -ENOENT) {
        srv_reply_code(s->srv, c, id, r, "template '%s' has no key '%s' in its table: it is "
                       "full already", esc, kesc);
        return;
    }
    if (r < 0) {
        srv_reply_code(s->srv, c, id, r, "template '%s': key '%s': %s", esc, kesc,
                       rldi_strerror(r));
        return;
    }
    waitq_limit_changed(s->wq, slot);           /* its waiters may fit now */
    LOG_INFO("template %s: key '%s' reset by pid %d (uid %d)", esc, kesc, (int)c->pid,
             (int)c->uid);
    srv_reply_code(s->srv, c, id, 0, "ok");
}

static void do_reset(rld_daemon *s, conn *c, uint64_t id, const Rld__V1__Reset *rs)
{
    char esc[96];
    uint32_t slot;
    const char *name = rs->limit;
    if (rs->key.len > RLDI_KEY_MAX || (rs->key.len && !rs->key.data)) {
        escape(name, esc, sizeof(esc));
        srv_reply_code(s->srv, c, id, -EINVAL, "template '%s': a key is 1 to %u bytes", esc,
                       RLDI_KEY_MAX);
        return;
    }
    if (!find_live(s, c, id, name, &slot, esc, sizeof(esc)))
        return;
    if (rs->key.len) {
        reset_key(s, c, id, slot, esc, &rs->key);
        return;
    }
    if (global_has(s->global, slot)) {
        /* a full pool would hold tokens nobody leased */
        srv_reply_code(s->srv, c, id, -EPERM, "limit '%s' is global: its pool holds only "
                       "leased tokens and cannot be reset", esc);
        return;
    }
    bool tmpl = s->seg->meta[slot].kind == RLDI_KIND_TEMPLATE;
    dseg_limit_reset(s->seg, slot);
    waitq_limit_changed(s->wq, slot);
    LOG_INFO("%s %s: reset by pid %d (uid %d)%s", tmpl ? "template" : "limit", esc, (int)c->pid,
             (int)c->uid, tmpl ? ": every key full again" : "");
    srv_reply_code(s->srv, c, id, 0, tmpl ? "ok: every key full again" : "ok");
}

/* ---- reads --------------------------------------------------------------------------------- */

#define STATUS_HOLDERS 16

static int fill_status(rld_daemon *s, uint32_t slot, Rld__V1__LimitStatus *ls, char *name,
                       char *rate, size_t ratelen, char *gbuf, size_t gbuflen, char *file_rate,
                       size_t file_ratelen, Rld__V1__LeaseHolder *hbuf,
                       Rld__V1__LeaseHolder **hptr)
{
    const rldi_slot *sl = &s->seg->slots[slot];
    rldi_limit_stat st;
    uint32_t gen = rldi_load_relaxed(&sl->gen);
    if (rldi_limit_stat_read(s->seg, slot, gen, rldi_mono_ns(), &st) < 0)
        return -ENOENT;
    memcpy(name, st.conf.name, RLDI_NAME_MAX + 1);
    rldi_format_rate(rate, ratelen, st.conf.rate_count, st.conf.rate_period_ns);
    if (st.conf.kind == RLDI_KIND_TEMPLATE) {
        /* its keys have the state; the table's figures are in its record */
        rldi_table t;
        if (rldi_table_of(s->seg, slot, gen, &t) < 0)
            return -ENOENT;
        ls->kind = "template";
        ls->max_keys = rldi_load_relaxed(&t.rec->max_keys);
        ls->keys = rldi_load_relaxed(&t.rec->live);
        ls->evictions = rldi_load_relaxed(&t.rec->evictions);
        ls->overflows = rldi_load_relaxed(&t.rec->overflows);
        ls->overflow = t.flags & RLDI_TMPL_OVERFLOW_ALLOW ? "allow" : "deny";
    } else {
        ls->kind = "limit";
    }
    ls->name = name;
    ls->rate = rate;
    ls->rate_count = st.conf.rate_count;
    ls->rate_period_ns = st.conf.rate_period_ns;
    ls->burst = st.conf.burst;
    ls->remaining = st.remaining;
    ls->retry_after_ns = st.retry_after_ns;
    ls->debt_ns = st.debt_ns;
    ls->reset_after_ns = st.reset_after_ns;
    ls->admitted = st.counts.admitted;
    ls->denied = st.counts.denied;
    ls->refunded = st.counts.refunded;
    ls->rolled_back = st.counts.rolled_back;
    ls->debited = st.counts.debited;
    waitq_stats ws;
    waitq_limit_stats(s->wq, slot, &ws);
    ls->waiters = ws.waiters;
    ls->queued_tokens = ws.tokens;
    ls->granted_waits = ws.granted;
    ls->timed_out_waits = ws.timed_out;
    ls->from_file = st.conf.origin != RLDI_ORIGIN_RUNTIME;
    ls->algorithm = (char *)rldi_algo_name(st.conf.algo);
    ls->align_ns = st.conf.align_ns;
    ls->shadow = (rldi_load_relaxed(&sl->flags) & RLDI_SLOT_SHADOW) != 0;
    ls->concurrency = rldi_load_relaxed(&s->seg->meta[slot].concurrency);
    if (s->leases && ls->concurrency) {
        lease_stats lst;
        size_t nh = leases_status(s->leases, slot, rldi_mono_ns(), &lst, hbuf, STATUS_HOLDERS);
        ls->leases_held = lst.held;
        ls->leases_granted = lst.granted;
        ls->leases_reclaimed = lst.reclaimed;
        for (size_t i = 0; i < nh; i++)
            hptr[i] = &hbuf[i];
        ls->n_holders = nh;
        ls->holders = hptr;
    }
    global_limit_status(s->global, slot, ls, gbuf, gbuflen);
    ls->overridden = st.conf.origin == RLDI_ORIGIN_OVERRIDE;
    const rldi_limitdef *fl = ls->overridden ? rldi_config_find(s->conf, name) : NULL;
    if (fl) {
        rldi_format_rate(file_rate, file_ratelen, fl->count, fl->period_ns);
        ls->file_rate = file_rate;
        ls->file_burst = rldi_limitdef_burst(fl);
    }
    return 0;
}

static void do_status(rld_daemon *s, conn *c, uint64_t id, const char *name)
{
    /* One packet per reply: a full list may not fit; it says so (rlctl reads the segment). */
    enum { MAXN = 24 };
    Rld__V1__LimitStatus st[MAXN], *ptrs[MAXN];
    char names[MAXN][RLDI_NAME_MAX + 1], rates[MAXN][48], gbufs[MAXN][40];
    char file_rates[MAXN][48];
    static Rld__V1__LeaseHolder hbuf[MAXN][STATUS_HOLDERS];
    static Rld__V1__LeaseHolder *hptr[MAXN][STATUS_HOLDERS];
    size_t n = 0;
    if (name && *name) {
        char esc[96];
        uint32_t slot;
        if (!find_live(s, c, id, name, &slot, esc, sizeof(esc)))
            return;
        rld__v1__limit_status__init(&st[0]);
        if (fill_status(s, slot, &st[0], names[0], rates[0], sizeof(rates[0]), gbufs[0],
                        sizeof(gbufs[0]), file_rates[0], sizeof(file_rates[0]), hbuf[0],
                        hptr[0]) == 0)
            ptrs[n] = &st[n], n++;
    } else {
        uint32_t cursor = 0, slot, gen;
        while (n < MAXN && rldi_seg_next(s->seg, &cursor, &slot, &gen) == 0) {
            rld__v1__limit_status__init(&st[n]);
            if (fill_status(s, slot, &st[n], names[n], rates[n], sizeof(rates[n]), gbufs[n],
                            sizeof(gbufs[n]), file_rates[n], sizeof(file_rates[n]), hbuf[n],
                            hptr[n]) == 0)
                ptrs[n] = &st[n], n++;
        }
    }
    Rld__V1__StatusReply sr = RLD__V1__STATUS_REPLY__INIT;
    sr.n_limits = n;
    sr.limits = ptrs;
    Rld__V1__Reply rep = RLD__V1__REPLY__INIT;
    rep.id = id;
    rep.body_case = RLD__V1__REPLY__BODY_STATUS;
    rep.status = &sr;
    /* shrink until it fits one packet */
    while (sr.n_limits > 0 && rld__v1__reply__get_packed_size(&rep) > RLDI_MAX_MESSAGE)
        sr.n_limits--;
    if (sr.n_limits < n || (!(name && *name) && s->seg->hdr->limit_count > sr.n_limits))
        rep.message = "truncated: read the segment for every limit";
    srv_reply(s->srv, c, &rep, NULL);
}

static void do_stats(rld_daemon *s, conn *c, uint64_t id)
{
    Rld__V1__StatsReply st = RLD__V1__STATS_REPLY__INIT;
    st.uptime_ns = rldi_mono_ns() - s->started_ns;
    st.connections = s->srv->conn_count;
    waitq_totals(s->wq, &st.waiters, &st.grants, &st.timeouts);
    st.requests = s->srv->requests;
    st.bad_messages = s->srv->bad_messages;
    st.templates = dseg_template_count(s->seg);
    st.limits = (uint32_t)s->seg->hdr->limit_count;
    st.limits = st.limits > st.templates ? st.limits - st.templates : 0;
    st.max_limits = s->seg->slot_count;
    st.segment_bytes = s->seg->size;
    st.pid = (uint32_t)getpid();
    char gbuf[1024];
    global_stats(s->global, &st, gbuf, sizeof(gbuf));
    if (s->srv->http) {
        httpd_stats hs;
        httpd_get_stats(s->srv->http, &hs);
        st.metrics_listen = s->conf->metrics_listen;   /* as started: a reload does not move it */
        st.metrics_served = hs.served;
        st.metrics_refused = hs.refused;
        st.metrics_bad = hs.bad;
    }
    if (s->leases)
        leases_totals(s->leases, &st.leases_held, &st.lease_holders, &st.leases_reclaimed);
    Rld__V1__Reply rep = RLD__V1__REPLY__INIT;
    rep.id = id;
    rep.body_case = RLD__V1__REPLY__BODY_STATS;
    rep.stats = &st;
    srv_reply(s->srv, c, &rep, NULL);
}

/* ---- issue 15: leases, retiming, breakers ------------------------------------------------ */

static void do_release(rld_daemon *s, conn *c, uint64_t id, uint64_t lease_id)
{
    uint32_t slot;
    int r = s->leases ? leases_release(s->leases, lease_id, c->uid, c->admin, &slot) : -ENOENT;
    if (r == 0)
        waitq_limit_changed(s->wq, slot);       /* the next waiter for one */
    srv_reply_code(s->srv, c, id, r, r == 0 ? "ok"
                                     : r == -EPERM ? "another user's lease: only its holder's "
                                                     "user (or an admin) gives it back"
                                                   : "no such lease held (given back already, "
                                                     "or reclaimed when its holder exited)");
}

/* A client changed a limit's state (rld_penalize, rld_sync) with waiters queued. */
static void do_retime(rld_daemon *s, conn *c, uint64_t id, const Rld__V1__Retime *rt)
{
    if (rt->slot < s->seg->slot_count
            ? rldi_load_relaxed(&s->seg->slots[rt->slot].gen) != rt->gen
            : rt->gen == 0) {
        srv_reply_code(s->srv, c, id, -ESTALE, "no such limit at slot %u generation %u (deleted "
                       "or replaced since it was found: find it again by name)", rt->slot, rt->gen);
        return;
    }
    waitq_limit_retime(s->wq, rt->slot, rt->gen);
    srv_reply_code(s->srv, c, id, 0, "ok");
}

static void do_breaker(rld_daemon *s, conn *c, uint64_t id, const Rld__V1__BreakerSet *b)
{
    char esc[96];
    uint32_t slot, gen;
    if (!find_live(s, c, id, b->breaker, &slot, esc, sizeof(esc)))
        return;
    gen = rldi_load_relaxed(&s->seg->slots[slot].gen);
    if (s->seg->meta[slot].kind != RLDI_KIND_BREAKER) {
        srv_reply_code(s->srv, c, id, -ENOENT, "no breaker '%s' (a limit of that name is not one)", esc);
        return;
    }
    int r = rldi_breaker_force(s->seg, (rldi_handle){ slot, gen }, b->open ? RLDI_BRK_OPEN
                                                                           : RLDI_BRK_CLOSED,
                               rldi_mono_ns());
    if (r == 0)
        LOG_INFO("breaker %s: %s by pid %d (uid %d)", esc, b->open ? "tripped (open)" : "reset (closed)",
                 (int)c->pid, (int)c->uid);
    srv_reply_code(s->srv, c, id, r, r == 0 ? "ok" : "%s", rldi_strerror(r));
}

/* ---- dispatch -------------------------------------------------------------------------------- */

static void do_hello(rld_daemon *s, conn *c, uint64_t id, const Rld__V1__Hello *h)
{
    if (h->protocol_version != RLDI_PROTOCOL_VERSION) {
        srv_reply_code(s->srv, c, id, -EPROTONOSUPPORT,
                       "protocol version %u is not supported: this rld speaks version %u",
                       h->protocol_version, RLDI_PROTOCOL_VERSION);
        srv_close_conn(s->srv, c, "protocol version mismatch");
        return;
    }
    c->hello = true;
    Rld__V1__HelloReply hr = RLD__V1__HELLO_REPLY__INIT;
    char ver[32];
    snprintf(ver, sizeof(ver), "rld %d.%d.%d", RLD_VERSION_MAJOR, RLD_VERSION_MINOR, RLD_VERSION_PATCH);
    hr.protocol_version = RLDI_PROTOCOL_VERSION;
    hr.server_version = ver;
    hr.instance = s->paths.instance;
    hr.max_message = RLDI_MAX_MESSAGE;
    hr.admin = c->admin;
    hr.features = RLD__V1__FEATURE__FEATURE_MULTI_WAIT | RLD__V1__FEATURE__FEATURE_LEASES;
    Rld__V1__Reply rep = RLD__V1__REPLY__INIT;
    rep.id = id;
    rep.body_case = RLD__V1__REPLY__BODY_HELLO;
    rep.hello = &hr;
    srv_reply(s->srv, c, &rep, NULL);
}

void daemon_request(rld_daemon *s, conn *c, const uint8_t *buf, size_t len)
{
    Rld__V1__Request *req = rld__v1__request__unpack(NULL, len, buf);
    if (!req) {
        s->srv->bad_messages++;
        rlog_once_at(&s->srv->log_bad, RLOG_WARN, "pid %d (uid %d) sent an undecodable message: "
                     "disconnected", (int)c->pid, (int)c->uid);
        srv_reply_code(s->srv, c, 0, -EPROTO, "undecodable message");
        srv_close_conn(s->srv, c, "undecodable message");
        return;
    }
    uint64_t id = req->id;
    if (!c->hello && req->body_case != RLD__V1__REQUEST__BODY_HELLO) {
        s->srv->bad_messages++;
        srv_reply_code(s->srv, c, id, -EPROTO, "the first request must be Hello");
        srv_close_conn(s->srv, c, "no Hello");
        goto out;
    }
    bool admin_op = req->body_case == RLD__V1__REQUEST__BODY_PUT ||
                    req->body_case == RLD__V1__REQUEST__BODY_DELETE ||
                    req->body_case == RLD__V1__REQUEST__BODY_RESET ||
                    req->body_case == RLD__V1__REQUEST__BODY_REVERT ||
                    req->body_case == RLD__V1__REQUEST__BODY_RELOAD ||
                    req->body_case == RLD__V1__REQUEST__BODY_BREAKER;
    if (admin_op && !c->admin) {
        rlog_once_at(&s->log_refused, RLOG_WARN, "refused a configuration change from pid %d "
                     "(uid %d): not root, not rld's user, not in admin_group", (int)c->pid,
                     (int)c->uid);
        srv_reply_code(s->srv, c, id, -EPERM, "permission denied: configuration changes need root or "
                       "the admin group ([rld] admin_group in rld.conf)");
        goto out;
    }
    switch (req->body_case) {
    case RLD__V1__REQUEST__BODY_HELLO:
        if (c->hello)
            srv_reply_code(s->srv, c, id, -EPROTO, "Hello twice");
        else
            do_hello(s, c, id, req->hello);
        break;
    case RLD__V1__REQUEST__BODY_WAIT:
        if (id == 0)
            srv_reply_code(s->srv, c, id, -EINVAL, "Wait needs a non-zero request id");
        else
            waitq_add(s->wq, c, id, req->wait);
        break;
    case RLD__V1__REQUEST__BODY_CANCEL: {
        int r = waitq_cancel(s->wq, c, req->cancel->wait_id);
        srv_reply_code(s->srv, c, id, r, r ? "no such wait" : "ok");
        break;
    }
    case RLD__V1__REQUEST__BODY_POSITION: {
        Rld__V1__PositionReply pr = RLD__V1__POSITION_REPLY__INIT;
        int r = waitq_position(s->wq, c, req->position->wait_id, &pr.queue_position,
                               &pr.expected_wait_ns);
        if (r < 0) {
            srv_reply_code(s->srv, c, id, r, "no such wait queued");
            break;
        }
        Rld__V1__Reply rep = RLD__V1__REPLY__INIT;
        rep.id = id;
        rep.body_case = RLD__V1__REPLY__BODY_POSITION;
        rep.position = &pr;
        srv_reply(s->srv, c, &rep, NULL);
        break;
    }
    case RLD__V1__REQUEST__BODY_STATUS:
        do_status(s, c, id, req->status->limit);
        break;
    case RLD__V1__REQUEST__BODY_PUT:
        do_put(s, c, id, req->put);
        break;
    case RLD__V1__REQUEST__BODY_DELETE:
        do_delete(s, c, id, req->delete_->limit);
        break;
    case RLD__V1__REQUEST__BODY_RESET:
        do_reset(s, c, id, req->reset);
        break;
    case RLD__V1__REQUEST__BODY_REVERT:
        do_revert(s, c, id, req->revert->limit);
        break;
    case RLD__V1__REQUEST__BODY_RELOAD: {
        Rld__V1__ReloadReply counts = RLD__V1__RELOAD_REPLY__INIT;
        char err[1024];
        int r = daemon_reload(s, &counts, err, sizeof(err));
        if (r < 0) {
            LOG_ERROR("reload refused, configuration unchanged: %s", err);
            srv_reply_code(s->srv, c, id, r, "reload refused, configuration unchanged: %s", err);
            break;
        }
        Rld__V1__Reply rep = RLD__V1__REPLY__INIT;
        rep.id = id;
        rep.body_case = RLD__V1__REPLY__BODY_RELOAD;
        rep.reload = &counts;
        srv_reply(s->srv, c, &rep, NULL);
        break;
    }
    case RLD__V1__REQUEST__BODY_STATS:
        do_stats(s, c, id);
        break;
    case RLD__V1__REQUEST__BODY_LEASE:
        if (id == 0)
            srv_reply_code(s->srv, c, id, -EINVAL, "Lease needs a non-zero request id");
        else
            waitq_add_lease(s->wq, c, id, req->lease);
        break;
    case RLD__V1__REQUEST__BODY_RELEASE:
        do_release(s, c, id, req->release->lease_id);
        break;
    case RLD__V1__REQUEST__BODY_RETIME:
        do_retime(s, c, id, req->retime);
        break;
    case RLD__V1__REQUEST__BODY_BREAKER:
        do_breaker(s, c, id, req->breaker);
        break;
    default:
        s->srv->bad_messages++;
        rlog_once_at(&s->srv->log_bad, RLOG_WARN, "pid %d sent a request of unknown kind %d",
                     (int)c->pid, (int)req->body_case);
        srv_reply_code(s->srv, c, id, -EOPNOTSUPP, "unknown request");
        break;
    }
out:
    rld__v1__request__free_unpacked(req, NULL);
}

/* ---- the transport's callbacks ------------------------------------------------------------ */

static void on_request(void *ctx, conn *c, const uint8_t *buf, size_t len)
{
    daemon_request(ctx, c, buf, len);
}

/*
 * Who may connect: admins always, up to the last connection there is room for; others up to
 * [rld] max_connections_per_uid each, and not into the SRV_ADMIN_RESERVE connections kept
 * so that root can still reload a daemon a flood has filled.
 */
static bool on_accepted(void *ctx, conn *c)
{
    rld_daemon *d = ctx;
    c->admin = is_admin(d, c);
    if (c->admin)
        return true;
    uint32_t max = srv_max_conns();
    if (d->srv->conn_count > max - SRV_ADMIN_RESERVE) {
        rlog_once_at(&d->log_conns, RLOG_WARN, "%u connections: the last %u are kept for admins; "
                     "refused uid %u (pid %d)", d->srv->conn_count, SRV_ADMIN_RESERVE,
                     (unsigned)c->uid, (int)c->pid);
        srv_reply_code(d->srv, c, 0, -EUSERS, "rld has no room for more connections");
        return false;
    }
    if (!uidcount_take(&d->conns_by_uid, c->uid, 1, d->conf->max_conns_per_uid)) {
        rlog_once_at(&d->log_conns, RLOG_WARN, "uid %u has %u connections: refused one more "
                     "([rld] max_connections_per_uid)", (unsigned)c->uid,
                     uidcount_get(&d->conns_by_uid, c->uid));
        srv_reply_code(d->srv, c, 0, -EUSERS, "too many connections from uid %u (max %u)",
                       (unsigned)c->uid, d->conf->max_conns_per_uid);
        return false;
    }
    c->counted = true;
    return true;
}

static void on_closing(void *ctx, conn *c)
{
    rld_daemon *d = ctx;
    waitq_drop_conn(d->wq, c);
    if (c->counted)
        uidcount_give(&d->conns_by_uid, c->uid, 1);
    c->counted = false;
}

/* A peer that has not said Hello within HELLO_TIMEOUT_NS holds a connection for nothing. */
static void hello_due(void *ctx, conn *c)
{
    rld_daemon *d = ctx;
    if (!c->hello && rldi_mono_ns() - c->accepted_ns > HELLO_TIMEOUT_NS) {
        rlog_once_at(&d->log_conns, RLOG_INFO, "pid %d (uid %u) sent no Hello in %llu s: "
                     "disconnected", (int)c->pid, (unsigned)c->uid,
                     (unsigned long long)(HELLO_TIMEOUT_NS / 1000000000u));
        srv_reply_code(d->srv, c, 0, -ETIMEDOUT, "no Hello in time");
        srv_close_conn(d->srv, c, "no Hello in time");
    }
}

/* The keeper is our segment's lifeline across restarts: one that died is started again. */
static void keeper_watch(rld_daemon *d)
{
    if (d->keeper_pid > 0 && (kill(d->keeper_pid, 0) == 0 || errno != ESRCH))
        return;
    int st;
    while (waitpid(-1, &st, WNOHANG) > 0)
        ;                                   /* reap it if it was our child */
    char err[512];
    pid_t pid = keeper_spawn(d->paths.seg_path, d->seg_fd, d->seg->slot_count, d->sock_mode,
                             d->sock_gid, err, sizeof(err));
    if (pid < 0) {
        rlog_once_at(&d->log_keeper, RLOG_ERROR, "the segment keeper is gone and cannot be "
                     "started again: %s", err);
        return;
    }
    LOG_WARN("the segment keeper (pid %d) was gone: started again as pid %d", (int)d->keeper_pid,
             (int)pid);
    d->keeper_pid = pid;
    rldi_store_relaxed(&d->seg->hdr->keeper_pid, (uint32_t)pid);
}

/* Dead lease holders' leases came back: their limit's queue may be served. */
static void reaped(uint32_t slot, void *ctx)
{
    rld_daemon *d = ctx;
    waitq_limit_changed(d->wq, slot);
}

static uint64_t on_tick(void *ctx, uint64_t now)
{
    rld_daemon *d = ctx;
    global_tick(d->global, d->wq, now);
    /* while leases are held, their holders' deaths are looked for every LEASE_POLL_NS */
    bool polling = d->leases && leases_any(d->leases);
    if (polling && now >= d->reap_due) {
        leases_reap(d->leases, reaped, d);
        d->reap_due = now + LEASE_POLL_NS;
    }
    uint64_t next = waitq_run(d->wq, now);
    if (polling && (!next || next > d->reap_due))
        next = d->reap_due;
    if (now >= d->heartbeat_due) {
        if (dseg_heartbeat(d->seg, d->keeper_pid)) {
            /* what the damage took from the file's limits comes back (full) */
            LOG_WARN("the segment's header was damaged (by a process holding the segment?): "
                     "rebuilt; limits checked and the configuration applied again");
            dseg_changes ch;
            if (dseg_sync(d->seg, d->conf, &ch, keep_runtime, deleting, d) == 0 && ch.created)
                LOG_WARN("%u limits of the configuration were lost and are back, full", ch.created);
        }
        keeper_watch(d);
        dseg_keys_sweep(d->seg);
        srv_each_conn(d->srv, hello_due, d);
        d->heartbeat_due = now + HEARTBEAT_NS;
    }
    return next && next < d->heartbeat_due ? next : d->heartbeat_due;
}

static void on_reload(void *ctx)
{
    char err[1024];
    if (daemon_reload(ctx, NULL, err, sizeof(err)) < 0)
        LOG_ERROR("reload refused, configuration unchanged: %s", err);
}

static void on_stopping(void *ctx)
{
    rld_daemon *d = ctx;
    waitq_shutdown(d->wq);
    global_stop(d->global);     /* leased tokens go back to Redis */
}

/* ---- the metrics endpoint's body ------------------------------------------------------------ */

/* The endpoint's lease figures: the daemon's own table (rldi_metrics_leases_fn). */
static int metrics_leases(void *arg, uint32_t slot, uint32_t gen, uint64_t *held,
                          uint64_t *reclaimed)
{
    rld_daemon *d = arg;
    (void)gen;
    if (!d->leases)
        return -ENOENT;
    lease_stats st;
    leases_status(d->leases, slot, rldi_mono_ns(), &st, NULL, 0);
    *held = st.held;
    *reclaimed = st.reclaimed;
    return 0;
}

static void *metrics_begin(void *ctx)
{
    rld_daemon *d = ctx;
    rldi_metrics *m = malloc(sizeof(*m));
    if (!m)
        return NULL;
    /* the Redis figures rlctl metrics gets from the Stats reply, taken the same way */
    Rld__V1__StatsReply st = RLD__V1__STATS_REPLY__INIT;
    char gbuf[512];
    global_stats(d->global, &st, gbuf, sizeof(gbuf));
    rldi_metrics_redis redis = { st.redis && strcmp(st.redis, "up") == 0, st.redis_rtt_ns,
                                 st.lease_calls, st.redis_errors, st.redis_reconnects,
                                 st.fallback_ns, st.global_limits };
    rldi_metrics_init(m, d->seg, d->paths.instance, true,
                      st.redis && st.redis[0] ? &redis : NULL, NULL, 0);
    rldi_metrics_set_leases(m, metrics_leases, d);
    return m;
}

static size_t metrics_next(void *ctx, void *state, char *buf, size_t cap)
{
    (void)ctx;
    return rldi_metrics_next(state, buf, cap, rldi_mono_ns());
}

static void metrics_end(void *ctx, void *state)
{
    (void)ctx;
    free(state);
}

void daemon_metrics_body(rld_daemon *d, httpd_body *out)
{
    *out = (httpd_body){ d, metrics_begin, metrics_next, metrics_end };
}

srv_ops daemon_ops(rld_daemon *d)
{
    return (srv_ops){ d, on_accepted, on_request, on_closing, on_tick, on_reload, on_stopping };
}
