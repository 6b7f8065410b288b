/*
 * test_hostile.c - a local process with write access to the segment scribbles over it while
 * the daemon runs: the index full of out-of-range values, names without terminators, garbage
 * config banks and state words. The daemon must neither crash, hang, nor touch memory
 * outside the segment (run under ASan in the sanitizer build, valgrind in the other); it
 * keeps answering; the reload replaces the limits whose names were destroyed, and a
 * restart finds every limit again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "harness.h"
#include "layout.h"
#include "rld.h"
#include "segment.h"
#include "wire.h"

static char sock[400];

static int request(Rld__V1__Request *req, int *code)
{
    rldi_conn k;
    int r = rldi_conn_open(sock, "hostile-test", 3000, &k, NULL, 0);
    if (r < 0)
        return r;
    Rld__V1__Reply *rep;
    r = rldi_conn_call(&k, req, 3000, &rep);
    if (r == 0) {
        *code = rep->code;
        rld__v1__reply__free_unpacked(rep, NULL);
    }
    rldi_conn_close(&k);
    return r;
}

static void put(const char *name, int *code)
{
    Rld__V1__LimitConfig lc = RLD__V1__LIMIT_CONFIG__INIT;
    lc.name = (char *)name;
    lc.rate = "10/s";
    Rld__V1__Put p = RLD__V1__PUT__INIT;
    p.limit = &lc;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_PUT;
    req.put = &p;
    T_CODE(request(&req, code), 0);
}

static void stats_ok(const char *when)
{
    Rld__V1__Stats st = RLD__V1__STATS__INIT;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_STATS;
    req.stats = &st;
    int code = -1;
    T_CODE(request(&req, &code), 0);
    T_CHECK(code == 0, "%s: the daemon answers", when);
}

int main(void)
{
    t_daemon d;
    t_instance(&d, "hostile", "[rld]\nmax_limits = 64\n\n[limit a]\nrate = 10/s\n\n"
                              "[limit b]\nrate = 5/min\n");
    snprintf(sock, sizeof(sock), "%s/%s.sock", d.dir, d.instance);
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld started");
    char segpath[400];
    snprintf(segpath, sizeof(segpath), "%s/%s.seg", d.dir, d.instance);
    rldi_seg seg;
    T_CODE(rldi_seg_open(segpath, &seg), 0);

    /* the index: every bucket taken by some slot, nothing free to insert into */
    for (uint32_t i = 0; i <= seg.index_mask; i++)
        seg.index[i] = i % seg.slot_count + 1;
    /* names without terminators, and config and state garbage; out-of-range index values
     * are tried by test_api's damaged copies and the fuzzer */
    for (uint32_t i = 0; i < seg.slot_count; i++) {
        memset(seg.meta[i].name, 'A', sizeof(seg.meta[i].name) + sizeof(seg.meta[i].concurrency));
        memset(&seg.slots[i].bank, 0xA5, sizeof(seg.slots[i].bank));
        seg.slots[i].tat = ~0ull;
        seg.slots[i].waiters = 0xffffffffu;
        seg.slots[i].queued = ~0ull;
    }
    int code = 0;
    put("fresh.limit", &code);            /* must insert into a garbage index: no hang */
    printf("hostile: Put into a garbage index answered %d (%s)\n", code, rld_strerror(code));
    stats_ok("after scribbling");
    kill(d.pid, SIGHUP);                   /* a reload walks every slot's name */
    t_sleep_ns(200000000);
    stats_ok("after a reload over garbage names");

    /* clients meet the garbage with error codes, not crashes */
    rld_client *c;
    T_CODE(rld_open(NULL, 0, &c), 0);
    rld_limit l = { 0, seg.slots[0].gen };
    rld_result r;
    int rc = rld_try(c, l, 1, &r);
    T_CHECK(rc == 0 || rc == -EAGAIN || rc == -E2BIG || rc == -ESTALE, "try on garbage: %d", rc);
    rc = rld_wait(c, l, 1, 100000000, &r);
    T_CHECK(rc == 0 || rc == -ETIMEDOUT || rc == -E2BIG || rc == -ESTALE || rc == -EAGAIN,
            "wait on garbage: %d", rc);
    rld_close(c);
    stats_ok("after clients used garbage");

    /* a restart rebuilds the index from the slots and drops unusable names */
    T_CHECK(t_daemon_stop_clean(&d), "stops cleanly despite the garbage");
    T_CHECK(t_daemon_start(&d, NULL) == 0, "restarts");
    T_CHECK(t_log_has(&d, "name index was full of garbage"), "the garbage index was rebuilt");
    stats_ok("after the restart");
    T_CODE(rld_open(NULL, 0, &c), 0);
    T_CODE(rld_find(c, "a", &l), 0);      /* the configuration's limits are back */
    T_CODE(rld_find(c, "fresh.limit", &l), 0);
    rld_close(c);
    rldi_seg_close(&seg);
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    printf("test_hostile: ok\n");
    return 0;
}
