/*
 * fuzz_dispatch.c - the daemon's message decoding and dispatch (daemon/handlers.c) and the
 * wait queues behind it (daemon/waitq.c), on a real segment, with the event loop replaced
 * by stubs that pack every reply (so packing is exercised too) and drop it.
 *
 * The configuration has templates (keyed limits), and the segment room for as many tables
 * again, so that Put, Reset, Status and Delete of templates and keys are reached.
 * Input: a flag byte, then packets as [u16 little-endian length][bytes], at most 32.
 *   flag bit 0: send a valid Hello first      bit 1: the peer is an admin (uid 0)
 *   flag bit 2: run the timers 10 s ahead at the end (grants, deadlines)
 * Invariants (abort on violation): the slot's published waiters equal the queue's after
 * every message; a closed connection holds no waiter; no limit holds more leases than its
 * concurrency (the leases of an input are forgotten at its end: they are the fuzzer's
 * own process's, which never dies).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "clock.h"
#include "dseg.h"
#include "handlers.h"
#include "httpd.h"
#include "keeper.h"
#include "log.h"
#include "server.h"
#include "waitq.h"

static server srv;
static rld_daemon d;
static rldi_seg seg;
static rldi_config conf;

/* ---- stubs of server.c (the transport) ------------------------------------------------ */

void srv_reply(server *s, conn *c, const Rld__V1__Reply *rep, const srv_undo *undo)
{
    (void)s;
    uint8_t buf[RLDI_MAX_MESSAGE * 2];
    size_t n = rld__v1__reply__get_packed_size(rep);
    if (n > sizeof(buf))
        abort();                       /* a reply that could never be sent */
    rld__v1__reply__pack(rep, buf);
    /* as the transport does: every undo runs exactly once */
    if (undo && undo->fn)
        undo->fn(undo, !c->closing && c->out_count < SRV_MAX_OUTQ);
}

uint32_t srv_max_conns(void)
{
    return SRV_MAX_CONNS;
}

void srv_each_conn(server *s, void (*fn)(void *ctx, conn *c), void *ctx)
{
    (void)s, (void)fn, (void)ctx;      /* one connection per input, never timed out */
}

/* systemd's file descriptor store (a grown segment is handed to it): none here. */
int sd_pid_notify_with_fds(pid_t pid, int unset_environment, const char *state, const int *fds,
                           unsigned n_fds)
{
    (void)pid, (void)unset_environment, (void)state, (void)fds, (void)n_fds;
    return 0;
}

/* The metrics endpoint is off here (srv.http is NULL): handlers.c only asks its figures. */
void httpd_get_stats(const httpd *h, httpd_stats *st)
{
    (void)h;
    *st = (httpd_stats){ 0, 0, 0 };
}

void srv_close_conn(server *s, conn *c, const char *why)
{
    (void)why;
    if (c->closing)
        return;
    c->closing = true;
    s->ops.closing(s->ops.ctx, c);
}

/* ---- stubs of keeper.c: no keeper in a fuzzer (a Reload that grows the segment would
 * fork one per input) ------------------------------------------------------------------ */

int keeper_fetch(const char *path, int *fd, pid_t *pid, uint32_t *slots, uint16_t *abi,
                 char *err, size_t errlen)
{
    (void)path, (void)fd, (void)pid, (void)slots, (void)abi, (void)err, (void)errlen;
    return -ENOENT;                    /* none runs: a new segment */
}

int keeper_replace(const char *path, int fd, uint32_t slots)
{
    (void)path, (void)fd, (void)slots;
    return -ECONNREFUSED;
}

pid_t keeper_spawn(const char *path, int fd, uint32_t slots, mode_t mode, gid_t gid, char *err,
                   size_t errlen)
{
    (void)path, (void)fd, (void)slots, (void)mode, (void)gid;
    snprintf(err, errlen, "no keeper in the fuzzer");
    return -ENOSYS;
}

/* ---- set-up ------------------------------------------------------------------------- */

static const char conf_text[] =
    "[rld]\nmax_limits = 16\nmax_waiters = 64\n\n"
    "[limit a]\nrate = 10/s\nburst = 5\n\n"
    "[limit b]\nrate = 1/day\nburst = 1\n\n"
    "[limit free]\nrate = unlimited\n\n"
    "[template t]\nrate = 5/s\nmax_keys = 20\n\n"
    "[template w]\nrate = 10/min\nalgorithm = fixed\nmax_keys = 8\noverflow = allow\n\n"
    "[limit pool]\nconcurrency = 2\n\n"
    "[limit pool.rated]\nrate = 5/s\nconcurrency = 1\n\n"
    "[breaker br]\nfailures = 2\nopen_for = 50ms\n";

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    rlog_init(RLOG_ERROR - 1);         /* quiet */
    static char dir[] = "/tmp/rldfuzz.XXXXXX", path[64], inst[64];
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof(path), "%s/rld.conf", dir);
    FILE *f = fopen(path, "w");
    fputs(conf_text, f);
    fclose(f);
    char err[512];
    if (rldi_config_load(path, &conf, err, sizeof(err)) < 0)
        abort();
    /* a private runtime directory: no keeper there, so a new sealed memfd (none is spawned) */
    setenv("RLD_RUNTIME_DIR", dir, 1);
    snprintf(inst, sizeof(inst), "fuzz-dispatch-%d", (int)getpid());
    if (rldi_paths_resolve(inst, &d.paths) < 0)
        abort();
    /* key tables: the file's templates', and as much again for those a Put creates */
    dseg_opts o = { .max_limits = conf.max_limits, .keys_size = 2 * dseg_keys_size(&conf),
                    .fresh = true, .inherited_fd = -1 };
    bool created;
    int seg_fd;
    pid_t keeper;
    if (dseg_open(&d.paths, &o, &seg, &seg_fd, &keeper, &created, err, sizeof(err)) < 0)
        abort();
    dseg_changes ch;
    if (dseg_sync(&seg, &conf, &ch, NULL, NULL, NULL) < 0)
        abort();
    dseg_publish(&seg, getpid());
    d.config_path = path;
    d.conf = &conf;
    d.seg = &seg;
    d.admin_gid = (gid_t)-1;
    d.seg_fd = seg_fd;
    d.srv = &srv;
    srv.ops = daemon_ops(&d);
    if (!(d.wq = waitq_new(&srv, &seg, conf.max_waiters, conf.max_waits_per_uid)))
        abort();
    if (!(d.leases = leases_new(&seg)))
        abort();
    waitq_set_leases(d.wq, d.leases);
    unlink(path);
    rmdir(dir);                        /* the mapping lives on; nothing left behind */
    return 0;
}

static void check_published(void)
{
    for (uint32_t i = 0; i < seg.slot_count; i++) {
        if ((seg.slots[i].flags & RLDI_SLOT_LIVE) && seg.meta[i].kind == RLDI_KIND_TEMPLATE)
            continue;                   /* a template's slot publishes "never a limit" */
        if (seg.meta[i].kind == RLDI_KIND_BREAKER)
            continue;                   /* never queued on: waiters ~0, queued its openings */
        waitq_stats st;
        waitq_limit_stats(d.wq, i, &st);
        if (rldi_load_relaxed(&seg.slots[i].waiters) != st.waiters ||
            rldi_load_relaxed(&seg.slots[i].queued) != st.tokens)
            abort();
        lease_stats ls;
        Rld__V1__LeaseHolder h[4];
        leases_status(d.leases, i, rldi_mono_ns(), &ls, h, 4);
        if (ls.held > seg.meta[i].concurrency)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flag = data[0];
    data++, size--;
    conn *c = calloc(1, sizeof(*c));
    c->idx = 7;
    c->uid = (flag & 2) ? 0 : 4242;
    c->gid = 4242;
    c->pid = getpid();
    if (!srv.ops.accepted(srv.ops.ctx, c)) {    /* the per-uid cap: never in one input */
        free(c);
        return 0;
    }
    if (flag & 1) {
        Rld__V1__Hello h = RLD__V1__HELLO__INIT;
        h.protocol_version = RLDI_PROTOCOL_VERSION;
        Rld__V1__Request req = RLD__V1__REQUEST__INIT;
        req.body_case = RLD__V1__REQUEST__BODY_HELLO;
        req.hello = &h;
        uint8_t buf[64];
        size_t n = rld__v1__request__pack(&req, buf);
        daemon_request(&d, c, buf, n);
    }
    for (int k = 0; k < 32 && size >= 2 && !c->closing; k++) {
        size_t len = (size_t)data[0] | (size_t)data[1] << 8;
        data += 2, size -= 2;
        if (len > size)
            len = size;
        if (len > RLDI_MAX_MESSAGE)
            len = RLDI_MAX_MESSAGE;     /* the loop refuses bigger packets before decoding */
        daemon_request(&d, c, data, len);
        data += len, size -= len;
        check_published();
    }
    if (flag & 4) {
        waitq_run(d.wq, rldi_mono_ns() + 10000000000ull);   /* timers 10 s ahead */
        check_published();
    }
    srv_close_conn(&srv, c, "end of input");
    srv.conn_count = 0;
    if (waitq_conn_waits(d.wq, c))
        abort();
    check_published();
    for (uint32_t i = 0; i < seg.slot_count; i++)
        leases_drop_slot(d.leases, i);
    free(c);
    return 0;
}
