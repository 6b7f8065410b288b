/*
 * util.c - rlctl's helpers: exit codes and error messages that say what to do, opening the
 * instance's segment, connecting to the daemon, finding limits and reading their state,
 * and parsing command-line values with the same parsers as rld.conf (common/rate.c).
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "rate.h"
#include "rlctl.h"
#include "rldc_tools.h"

/* What rld reads without --config: SYSCONFDIR/rld/rld.conf, set by CMakeLists.txt. */
#ifndef RLD_DEFAULT_CONFIG
#define RLD_DEFAULT_CONFIG "/etc/rld/rld.conf"
#endif
#define DEFAULT_CONFIG RLD_DEFAULT_CONFIG

static char *capture_buf;
static size_t capture_len;

void rlctl_capture_errors(char *buf, size_t len)
{
    capture_buf = buf;
    capture_len = len;
    if (buf && len)
        buf[0] = '\0';
}

int rlctl_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (capture_buf) {
        vsnprintf(capture_buf, capture_len, fmt, ap);
        va_end(ap);
        return code;
    }
    fputs("rlctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

int rlctl_usage_error(const rlctl_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rlctl: %s%s", ctx->cmd ? ctx->cmd->name : "", ctx->cmd ? ": " : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (ctx->cmd)
        rlctl_print_usage(stderr, ctx->cmd);
    return RLCTL_EXIT_USAGE;
}

int rlctl_exit_for(int code)
{
    switch (code) {
    case 0:
        return RLCTL_EXIT_OK;
    case -EPERM: case -EACCES:
        return RLCTL_EXIT_PERM;
    case -ENOENT: case -ESTALE:
        return RLCTL_EXIT_NOTFOUND;
    case -EINVAL: case -E2BIG: case -ENAMETOOLONG: case -ERANGE:
        return RLCTL_EXIT_USAGE;
    case -ECONNRESET: case -ECONNREFUSED: case -EPROTO: case -EPROTONOSUPPORT:
    case -EPIPE: case -ENOTCONN: case -EMSGSIZE: case RLD_EABI: case RLD_ECORRUPT:
        return RLCTL_EXIT_UNREACHABLE;
    default:   /* -EAGAIN, -ETIMEDOUT, -ECANCELED, -EEXIST, -ENOSPC, -EBUSY ... */
        return RLCTL_EXIT_DENIED;
    }
}

const char *rlctl_start_hint(const rlctl_ctx *ctx)
{
    static char buf[160];
    snprintf(buf, sizeof(buf), "rld --instance %s --config " DEFAULT_CONFIG,
             ctx->paths.instance[0] ? ctx->paths.instance : "default");
    return buf;
}

int rlctl_open_segment(rlctl_ctx *ctx)
{
    if (ctx->client)
        return 0;
    const char *inst = ctx->paths.instance;
    int r = rld_open(inst, 0, &ctx->client);
    switch (r) {
    case 0:
        return 0;
    case -ENOENT:
        return rlctl_fail(RLCTL_EXIT_UNREACHABLE,
                          "instance '%s' not found (nothing answers on %s): is rld running? "
                          "start it with: %s", inst, ctx->paths.seg_path, rlctl_start_hint(ctx));
    case -EACCES:
        return rlctl_fail(RLCTL_EXIT_PERM,
                          "permission denied on %s: run rlctl as rld's user, or as a member of "
                          "the group set by [rld] group in rld.conf", ctx->paths.seg_path);
    case -EAGAIN:
        return rlctl_fail(RLCTL_EXIT_UNREACHABLE,
                          "instance '%s' is still being created: try again in a moment", inst);
    case RLD_EABI:
        return rlctl_fail(RLCTL_EXIT_UNREACHABLE,
                          "instance '%s' was made by an incompatible rld version: use the "
                          "rlctl installed with that rld", inst);
    case RLD_ECORRUPT:
        return rlctl_fail(RLCTL_EXIT_UNREACHABLE,
                          "instance '%s': its segment is damaged or not an rld segment: a "
                          "running rld repairs its header within a second, so try again; if "
                          "this persists (or rld is not running), restart rld, and only if "
                          "that fails too, with --fresh (all limits restart full)", inst);
    case RLD_ECLOCK:
        return rlctl_fail(RLCTL_EXIT_UNREACHABLE,
                          "instance '%s': %s", inst, rld_strerror(r));
    default:
        return rlctl_fail(rlctl_exit_for(r), "cannot open instance '%s': %s", inst,
                          rld_strerror(r));
    }
}

int rlctl_connect(rlctl_ctx *ctx, int timeout_ms, bool quiet)
{
    if (ctx->conn.fd >= 0)
        return 0;
    const char *inst = ctx->paths.instance;
    if (ctx->paths_err == -ENOENT) {
        if (!quiet)
            rlctl_fail(RLCTL_EXIT_UNREACHABLE,
                       "cannot tell where rld's socket is: set RLD_RUNTIME_DIR (or "
                       "XDG_RUNTIME_DIR) as rld has it, or run as root for /run/rld");
        return RLCTL_EXIT_UNREACHABLE;
    }
    char err[256];
    int r = rldi_conn_open(ctx->paths.socket_path, "rlctl", timeout_ms, &ctx->conn, err,
                           sizeof(err));
    if (r == 0)
        return 0;
    ctx->conn.fd = -1;
    int code = r == -EACCES || r == -EPERM ? RLCTL_EXIT_PERM : RLCTL_EXIT_UNREACHABLE;
    if (quiet)
        return code;
    switch (r) {
    case -ENOENT: case -ECONNREFUSED:
        return rlctl_fail(code, "rld is not running for instance '%s' (nothing listens on %s): "
                          "start it with: %s", inst, ctx->paths.socket_path,
                          rlctl_start_hint(ctx));
    case -EACCES: case -EPERM:
        return rlctl_fail(code, "permission denied on %s: run rlctl as rld's user or a member "
                          "of its group", ctx->paths.socket_path);
    case -ETIMEDOUT:
        return rlctl_fail(code, "rld for instance '%s' did not answer within %d ms (%s): is it "
                          "overloaded or stopped?", inst, timeout_ms, ctx->paths.socket_path);
    case -EPROTONOSUPPORT:
        return rlctl_fail(code, "%s: use the rlctl installed with the running rld", err);
    default:
        return rlctl_fail(code, "%s", err);
    }
}

int rlctl_call(rlctl_ctx *ctx, Rld__V1__Request *req, int timeout_ms, Rld__V1__Reply **out)
{
    int r = rldi_conn_call(&ctx->conn, req, timeout_ms, out);
    if (r == 0)
        return 0;
    if (r == -ETIMEDOUT)
        return rlctl_fail(RLCTL_EXIT_UNREACHABLE, "rld did not answer within %d ms",
                          timeout_ms);
    return rlctl_fail(RLCTL_EXIT_UNREACHABLE, "lost rld for instance '%s': %s",
                      ctx->paths.instance, strerror(-r));
}

int rlctl_reply_error(const rlctl_ctx *ctx, const char *what, const Rld__V1__Reply *rep)
{
    int code = rep->code;
    const char *msg = rep->message && *rep->message ? rep->message : rld_strerror(code);
    /* A hint only where the daemon's message does not already give one. */
    bool said = rep->message && *rep->message;
    const char *hint = "";
    if ((code == -EPERM || code == -EACCES) && !said)
        hint = ": changing limits needs root, rld's user or a member of the group set by [rld] "
               "admin_group in rld.conf";
    else if (code == -ENOENT || code == -ESTALE)
        hint = " (rlctl list shows the limits)";
    else if (code == -EEXIST)
        hint = " (rlctl set changes an existing limit)";
    else if (code == -ENOSPC && !said)
        hint = ": the segment is full; raise [rld] max_limits (takes effect with rld --fresh)";
    return rlctl_fail(rlctl_exit_for(code), "%s: %s%s", what, msg, hint);
}

int rlctl_check_name(const rlctl_ctx *ctx, const char *name)
{
    const char *why = NULL;
    int r = rldi_name_check(name, &why);
    if (r < 0)
        return rlctl_usage_error(ctx, "bad limit name '%s': %s", name,
                                 why ? why : "1-64 bytes of A-Z a-z 0-9 . _ - / :");
    return 0;
}

int rlctl_find(rlctl_ctx *ctx, const char *name, rld_limit *out)
{
    int r = rlctl_check_name(ctx, name);
    if (r != 0 || (r = rlctl_open_segment(ctx)) != 0)
        return r;
    r = rld_find(ctx->client, name, out);
    if (r == -ENOENT) {
        /* the name may be another kind's: say which, and the command for it */
        rld_template t;
        rld_limit b;
        if (rld_find_template(ctx->client, name, &t) == 0)
            return rlctl_fail(RLCTL_EXIT_NOTFOUND, "'%s' is a template (keyed limits), not a "
                              "limit: give a key (rlctl try %s --key KEY, rlctl status %s KEY) "
                              "or see its keys (rlctl keys %s)", name, name, name, name);
        if (rld_breaker_find(ctx->client, name, &b) == 0)
            return rlctl_fail(RLCTL_EXIT_NOTFOUND, "'%s' is a circuit breaker, not a limit: "
                              "rlctl breaker %s", name, name);
        return rlctl_fail(RLCTL_EXIT_NOTFOUND, "no limit '%s' in instance '%s' (rlctl list "
                          "shows them)", name, ctx->paths.instance);
    }
    if (r < 0)
        return rlctl_fail(rlctl_exit_for(r), "limit '%s': %s", name, rld_strerror(r));
    return 0;
}

double rlctl_rate_per_s(const rld_limit_info *info)
{
    if (info->rate_count == 0 || info->rate_period_ns == 0)
        return 0;
    return (double)info->rate_count * 1e9 / (double)info->rate_period_ns;
}

int rlctl_limit_read(rld_client *c, rld_limit h, rlctl_limit *out)
{
    memset(out, 0, sizeof(*out));
    out->handle = h;
    rldi_limit_stat *st = &out->st;
    int r = rldi_limit_stat_read(rldc_client_seg(c), h.slot, h.gen, rldi_mono_ns(), st);
    if (r < 0)
        return r;
    if (st->conf.kind != RLDI_KIND_LIMIT)
        return -EINVAL;                   /* a template (rlctl_template_read) or a breaker */
    rld_limit_info *info = &out->info;
    memcpy(info->name, st->conf.name, sizeof(info->name));
    info->rate_count = st->conf.rate_count;
    info->rate_period_ns = st->conf.rate_period_ns;
    info->burst = st->conf.burst;
    info->algorithm = st->conf.algo;
    info->align_ns = st->conf.align_ns;
    info->admitted = st->counts.admitted;
    info->denied = st->counts.denied;
    info->refunded = st->counts.refunded;
    info->rolled_back = st->counts.rolled_back;
    info->debited = st->counts.debited;
    info->waiters = st->waiters;
    info->kind = RLD_KIND_LIMIT;
    info->mode = st->conf.shadow ? RLD_MODE_SHADOW : RLD_MODE_ENFORCE;
    info->concurrency = st->conf.concurrency;
    info->shadowed = st->counts.shadowed;
    out->unlimited = st->unlimited || info->rate_count == 0;
    if (out->unlimited)
        snprintf(out->rate, sizeof(out->rate), "unlimited");
    else
        rldi_format_rate(out->rate, sizeof(out->rate), out->info.rate_count,
                         out->info.rate_period_ns);
    return 0;
}

bool rlctl_selected(const rlctl_ctx *ctx, const char *name)
{
    if (ctx->nglobs == 0)
        return true;
    for (int i = 0; i < ctx->nglobs; i++)
        if (fnmatch(ctx->globs[i], name, 0) == 0)
            return true;
    return false;
}

int rlctl_select(rlctl_ctx *ctx, const char *const *globs, int n)
{
    for (int i = 0; i < n; i++) {
        size_t len = strlen(globs[i]);
        if (len == 0 || len > RLCTL_GLOB_MAX)
            return rlctl_usage_error(ctx, "bad pattern '%s': 1-%d bytes, a glob such as "
                                     "'llm.*' (quote it from the shell)", globs[i],
                                     RLCTL_GLOB_MAX);
    }
    ctx->globs = globs;
    ctx->nglobs = n;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const rlctl_limit *)a)->info.name, ((const rlctl_limit *)b)->info.name);
}

/*
 * Limits come from librld's enumeration (rld_next), their state from the public API, which
 * checks each handle's generation: a limit deleted during the walk is skipped rather than
 * shown half-read.
 */
int rlctl_snapshot(rlctl_ctx *ctx, rlctl_limit **out, size_t *n, rlctl_seg_info *info)
{
    *out = NULL;
    *n = 0;
    int r = rlctl_open_segment(ctx);
    if (r != 0)
        return r;
    rld_instance inst;
    if ((r = rld_instance_info(ctx->client, &inst)) < 0)
        return rlctl_fail(rlctl_exit_for(r), "instance '%s': %s", ctx->paths.instance,
                          rld_strerror(r));
    rlctl_limit *v = calloc(inst.max_limits ? inst.max_limits : 1, sizeof(*v));
    if (!v)
        return rlctl_fail(RLCTL_EXIT_UNREACHABLE, "out of memory");
    if (info) {
        info->slot_count = inst.max_limits;
        info->daemon_pid = inst.daemon_pid;
        info->heartbeat_ns = rldi_mono_ns() - inst.heartbeat_age_ns;
    }
    size_t count = 0;
    uint32_t cursor = 0, live = 0;
    rld_limit h;
    while (count < inst.max_limits && rld_next(ctx->client, &cursor, &h) == 0) {
        if (rlctl_limit_read(ctx->client, h, &v[count]) != 0)
            continue;   /* deleted meanwhile */
        live++;
        if (rlctl_selected(ctx, v[count].info.name))
            count++;
    }
    if (info)
        info->limits = live;
    qsort(v, count, sizeof(*v), by_name);
    *out = v;
    *n = count;
    return 0;
}

int rlctl_arg_u64(const rlctl_ctx *ctx, const char *what, const char *s, uint64_t *out)
{
    const char *why = NULL;
    if (rldi_parse_u64(s, out, &why) < 0)
        return rlctl_usage_error(ctx, "bad %s '%s': %s", what, s, why ? why : "not a number");
    return 0;
}

int rlctl_arg_duration(const rlctl_ctx *ctx, const char *what, const char *s, uint64_t *ns)
{
    const char *why = NULL;
    if (rldi_parse_duration(s, ns, &why) < 0)
        return rlctl_usage_error(ctx, "bad %s '%s': %s (examples: 250ms, 1.5s, 2min)", what, s,
                                 why ? why : "not a duration");
    return 0;
}
