/*
 * test_hostile_keys.c - a member of the instance's group maps the segment read-write and
 * writes over the key tables' records (the header's second half, bytes 512-4096), then over
 * the whole header: every template must come back by itself within a few heartbeats, its
 * keys taken again and a reload accepted, with no restart and no --fresh (found by a user
 * trial: the templates were gone until rld --fresh, which resets every limit).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "harness.h"
#include "layout.h"
#include "rld.h"
#include "segment.h"

/* Up to 5 s for the template T to be found again and its key "k" taken (0) or denied. */
static int back(const char *what)
{
    for (int i = 0; i < 100; i++) {
        rld_client *c;
        if (rld_open(NULL, 0, &c) == 0) {
            rld_template t;
            int r = rld_find_template(c, "t", &t);
            if (r == 0)
                r = rld_try_key(c, t, "k", 1, 1, NULL);
            rld_close(c);
            if (r == 0 || r == -EAGAIN) {
                printf("hostile keys: %s: the template is back after %d ms\n", what, i * 50);
                return 0;
            }
        }
        t_sleep_ns(50000000);
    }
    return -1;
}

static const char conf[] = "[rld]\nmax_limits = 16\n\n[limit a]\nrate = 10/s\n\n"
                           "[template t]\nrate = 100/min\nmax_keys = 100\n\n"
                           "[template u]\nrate = 5/s\nalgorithm = fixed\nmax_keys = 50\n";

int main(void)
{
    t_daemon d;
    t_instance(&d, "hkeys", conf);
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld started");
    char segpath[400];
    snprintf(segpath, sizeof(segpath), "%s/%s.seg", d.dir, d.instance);
    rldi_seg seg;
    T_CODE(rldi_seg_open(segpath, &seg), 0);
    T_CHECK(back("before") == 0, "the template works before");

    /* 1: the records only (the header's first half, which the daemon checks, intact) */
    memset((uint8_t *)seg.hdr + offsetof(rldi_shm_header, tmpl), 0xA5,
           RLDI_HEADER_SIZE - offsetof(rldi_shm_header, tmpl));
    T_CHECK(back("records written over") == 0, "the template came back by itself");
    T_CHECK(t_log_has(&d, "key tables' records"), "the daemon said what it restored");

    /* 2: the whole header zeroed (a hole punched): header and records rebuilt */
    memset(seg.hdr, 0, RLDI_HEADER_SIZE);
    T_CHECK(back("header zeroed") == 0, "the template came back after a header repair");

    /* a reload is accepted: nothing changed, nothing "does not fit" */
    t_reload(&d, conf, "reloaded ");     /* fails the test unless accepted within 10 s */
    T_CHECK(!t_log_has(&d, "do not fit"), "no reload said the tables do not fit");
    rldi_seg_close(&seg);
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    printf("test_hostile_keys: ok\n");
    return 0;
}
