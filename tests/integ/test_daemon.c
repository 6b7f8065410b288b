/*
 * test_daemon.c - the daemon's command line and life cycle on a private instance:
 * --check-config, a bad file starts nothing, one daemon per instance, restart (SIGTERM and
 * kill -9) keeps every limit's state, reload keeps / carries / deletes, a bad reload changes
 * nothing, a foreign segment is refused until --fresh, and the forking start-up mode.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "layout.h"
#include "rld.h"
#include "segment.h"

static const char *good =
    "[limit keep]\nrate = 60/min\nburst = 100\n\n"
    "[limit carry]\nrate = 10/s\nburst = 100\n\n"
    "[limit drop]\nrate = 5/min\n";

static uint64_t remaining(const char *name)
{
    rld_client *c;
    rld_limit l;
    rld_result r;
    T_CODE(rld_open(NULL, 0, &c), 0);
    T_CODE(rld_find(c, name, &l), 0);
    T_CODE(rld_peek(c, l, &r), 0);
    rld_close(c);
    return r.remaining;
}

static void take(const char *name, uint64_t n)
{
    rld_client *c;
    rld_limit l;
    T_CODE(rld_open(NULL, 0, &c), 0);
    T_CODE(rld_find(c, name, &l), 0);
    T_CODE(rld_try(c, l, n, NULL), 0);
    rld_close(c);
}

/* Is there an instance to attach (a keeper handing out its segment)? */
static bool segment_exists(const t_daemon *d)
{
    rld_client *c;
    if (rld_open(d->instance, 0, &c) < 0)
        return false;
    rld_close(c);
    return true;
}

static void test_check_config(t_daemon *d)
{
    char out[2048];
    const char *ok[] = { "--check-config", "--config", d->conf, NULL };
    T_CHECK(t_run_rld(out, sizeof(out), ok) == 0, "valid config: %s", out);
    T_CHECK(strstr(out, "valid") && strstr(out, "3 limits"), "says valid: %s", out);

    char bad_path[400];
    snprintf(bad_path, sizeof(bad_path), "%s/bad.conf", d->dir);
    FILE *f = fopen(bad_path, "w");
    fputs("[limit x]\nrate = 10/fortnight\n", f);
    fclose(f);
    const char *bad[] = { "--check-config", "--config", bad_path, NULL };
    T_CHECK(t_run_rld(out, sizeof(out), bad) == 1, "invalid config exits 1: %s", out);
    T_CHECK(strstr(out, "bad.conf:2:") && strstr(out, "fortnight"), "names file, line, token: %s", out);

    /* a bad file starts nothing: no daemon, no segment */
    const char *start_bad[] = { "--foreground", "--config", bad_path, "--instance", d->instance, NULL };
    T_CHECK(t_run_rld(out, sizeof(out), start_bad) == 1, "bad config: exit 1: %s", out);
    T_CHECK(!segment_exists(d), "no segment was created");

    const char *missing[] = { "--check-config", "--config", "/nonexistent/rld.conf", NULL };
    T_CHECK(t_run_rld(out, sizeof(out), missing) == 1, "missing file exits 1");
    T_CHECK(strstr(out, "/nonexistent/rld.conf") != NULL, "names the missing file: %s", out);

    const char *usage[] = { "--no-such-option", NULL };
    T_CHECK(t_run_rld(out, sizeof(out), usage) == 2, "unknown option exits 2");
    T_CHECK(strstr(out, "usage:") != NULL, "prints usage");
    const char *extra[] = { "stray", NULL };
    T_CHECK(t_run_rld(out, sizeof(out), extra) == 2, "stray argument exits 2");
    const char *badinst[] = { "--foreground", "--config", d->conf, "--instance", "bad/name", NULL };
    T_CHECK(t_run_rld(out, sizeof(out), badinst) == 1, "bad instance exits 1");
    T_CHECK(strstr(out, "invalid instance name") != NULL, "says why: %s", out);
    const char *ver[] = { "--version", NULL };
    T_CHECK(t_run_rld(out, sizeof(out), ver) == 0 && strstr(out, "rld "), "version");
}

static void test_one_daemon(t_daemon *d)
{
    char out[2048];
    const char *second[] = { "--foreground", "--config", d->conf, "--instance", d->instance, NULL };
    T_CHECK(t_run_rld(out, sizeof(out), second) == 1, "second daemon refused: %s", out);
    T_CHECK(strstr(out, "already serves instance") != NULL, "says why: %s", out);
    char pid[32];
    snprintf(pid, sizeof(pid), "pid %d", (int)d->pid);
    T_CHECK(strstr(out, pid) != NULL, "names the running pid: %s", out);
}

static void test_restart(t_daemon *d)
{
    take("keep", 40);
    uint64_t before = remaining("keep");
    T_CHECK(before <= 60, "took 40: %llu", (unsigned long long)before);
    T_CHECK(t_daemon_stop_clean(d), "SIGTERM stops cleanly");
    T_CHECK(segment_exists(d), "the segment outlives the daemon");
    /* clients keep working while no daemon runs */
    take("keep", 10);
    T_CHECK(t_daemon_start(d, NULL) == 0, "restart");
    T_CHECK(t_log_has_since_start(d, "re-attached"), "re-attached, not recreated");
    uint64_t after = remaining("keep");
    /* 10 more taken, a little refilled (1/s) during the restart: never back to full */
    T_CHECK(after < before && after <= 60, "state kept across SIGTERM: %llu then %llu",
            (unsigned long long)before, (unsigned long long)after);

    take("keep", 30);
    before = remaining("keep");
    T_CHECK(t_daemon_stop(d, SIGKILL) != 0, "kill -9");
    T_CHECK(t_daemon_start(d, NULL) == 0, "restart after kill -9");
    after = remaining("keep");
    T_CHECK(after <= before + 20, "state kept across kill -9: %llu then %llu",
            (unsigned long long)before, (unsigned long long)after);
}

static void test_reload(t_daemon *d)
{
    rld_client *c;
    rld_limit drop, carry, keep;
    T_CODE(rld_open(NULL, 0, &c), 0);
    T_CODE(rld_find(c, "drop", &drop), 0);
    T_CODE(rld_find(c, "carry", &carry), 0);
    T_CODE(rld_find(c, "keep", &keep), 0);
    T_CODE(rld_refund(c, carry, 1000), 0);
    T_CODE(rld_try(c, carry, 50, NULL), 0);       /* half used */

    /* a bad file on reload changes nothing */
    t_write_conf(d, "[limit keep]\nrate = 10/s\nburst = zero\n");
    kill(d->pid, SIGHUP);
    uint64_t deadline = t_now_ns() + 5000000000ull;
    while (!t_log_has(d, "reload refused") && t_now_ns() < deadline)
        t_sleep_ns(5000000);
    T_CHECK(t_log_has(d, "reload refused"), "bad reload logged");
    T_CODE(rld_try(c, drop, 1, NULL), 0);         /* still there */

    /* burst 100 -> 200 for carry: half used stays half used (~100 of 200 left) */
    t_write_conf(d, "[limit keep]\nrate = 60/min\nburst = 100\n\n"
                    "[limit carry]\nrate = 10/s\nburst = 200\n");
    kill(d->pid, SIGHUP);
    deadline = t_now_ns() + 30000000000ull;
    while (!t_log_has_since_start(d, "reloaded ") && t_now_ns() < deadline)
        t_sleep_ns(5000000);
    T_CODE(rld_try(c, drop, 1, NULL), -ESTALE);
    rld_result r;
    T_CODE(rld_peek(c, carry, &r), 0);
    T_CHECK(r.limit == 200 && r.remaining >= 100 && r.remaining <= 110,
            "carried proportionally: %llu of %llu", (unsigned long long)r.remaining,
            (unsigned long long)r.limit);
    T_CODE(rld_peek(c, keep, &r), 0);
    T_CHECK(r.limit == 100, "unchanged limit kept");
    T_CHECK(t_log_has(d, "1 kept") || t_log_has(d, "kept"), "reload summary logged");
    rld_close(c);
}

/*
 * Someone with the segment's fd wrote over its header (an ABI number, the magic): the keeper
 * knows better, so a restart rebuilds the header and keeps the limits. A segment that really
 * is another rld's (its keeper says so) is refused, naming --fresh, which replaces it.
 */
static void test_foreign_segment(t_daemon *d)
{
    uint64_t before = remaining("keep");
    T_CHECK(before < 90, "keep is in use before: %llu", (unsigned long long)before);
    T_CHECK(t_daemon_stop_clean(d), "stop");
    char path[400];
    snprintf(path, sizeof(path), "%s/%s.seg", d->dir, d->instance);
    rldi_seg seg;
    T_CODE(rldi_seg_open(path, &seg), 0);
    seg.hdr->abi_major = RLDI_ABI_MAJOR + 7;
    memcpy(seg.hdr->magic, "garbage!", 8);
    T_CHECK(t_daemon_start(d, NULL) == 0, "a scribbled header does not stop a restart");
    T_CHECK(t_log_has_since_start(d, "header was damaged"), "the header was rebuilt");
    uint64_t after = remaining("keep");
    T_CHECK(after <= before + 5, "and the state kept (60/min refills 1/s): %llu then %llu",
            (unsigned long long)before, (unsigned long long)after);
    rldi_seg_close(&seg);

    T_CHECK(t_daemon_stop_clean(d), "stop");
    t_keeper_stop(d);                           /* a keeper of another rld takes its place */
    t_sleep_ns(100000000);
    pid_t other = t_foreign_keeper(d, RLDI_ABI_MAJOR + 1);
    char out[2048];
    const char *args[] = { "--foreground", "--config", d->conf, "--instance", d->instance, NULL };
    T_CHECK(t_run_rld(out, sizeof(out), args) == 1, "incompatible segment refused: %s", out);
    T_CHECK(strstr(out, "incompatible") && strstr(out, "--fresh"), "says what to do: %s", out);
    T_CHECK(t_daemon_start(d, "--fresh") == 0, "--fresh replaces it");
    T_CHECK(remaining("keep") == 100, "fresh limits are full");
    kill(other, SIGKILL);
    waitpid(other, NULL, 0);
}

static void test_background(t_daemon *d)
{
    T_CHECK(t_daemon_stop_clean(d), "stop");
    char out[2048];
    const char *args[] = { "--config", d->conf, "--instance", d->instance, NULL };
    /* without --foreground: returns 0 once ready, the daemon keeps running */
    T_CHECK(t_run_rld(out, sizeof(out), args) == 0, "background start: %s", out);
    rld_client *c;
    T_CODE(rld_open(NULL, 0, &c), 0);
    rld_close(c);
    char lock[400], pid[32] = "";
    snprintf(lock, sizeof(lock), "%s/%s.lock", d->dir, d->instance);
    FILE *f = fopen(lock, "r");
    T_CHECK(f && fgets(pid, sizeof(pid), f), "lock file holds the pid");
    fclose(f);
    pid_t p = (pid_t)atoi(pid);
    T_CHECK(p > 0 && kill(p, 0) == 0, "daemon %d alive", (int)p);
    kill(p, SIGTERM);
    for (int i = 0; i < 500 && kill(p, 0) == 0; i++)
        t_sleep_ns(10000000);
    T_CHECK(kill(p, 0) < 0, "daemon stopped on SIGTERM");
    /* a start that fails reports failure to the caller */
    const char *bad[] = { "--config", "/nonexistent.conf", "--instance", d->instance, NULL };
    T_CHECK(t_run_rld(out, sizeof(out), bad) == 1, "failed background start exits 1");
}

int main(void)
{
    t_daemon d;
    t_instance(&d, "daemon", good);
    test_check_config(&d);
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld started");
    test_one_daemon(&d);
    test_restart(&d);
    test_reload(&d);
    test_foreign_segment(&d);
    test_background(&d);
    printf("test_daemon: ok\n");
    return 0;
}
