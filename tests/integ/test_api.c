/*
 * test_api.c - every public call of librld against a real rld on a private instance:
 * results on the happy path, and each bad input with its exact error code and no effect.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "layout.h"
#include "rld.h"
#include "segment.h"

static const char *conf_text =
    "[limit a]\nrate = 10/s\nburst = 10\n\n"
    "[limit b]\nrate = 100/s\nburst = 5\n\n"
    "[limit slow]\nrate = 1/day\nburst = 2\n\n"
    "[limit free]\nrate = unlimited\n\n"
    "[limit gone]\nrate = 1/s\n\n"
    "[limit huge]\nrate = 1/day\nburst = 53000\n";

static const char *conf_after =   /* 'gone' deleted, 'a' changed, the rest as before */
    "[limit a]\nrate = 20/s\nburst = 10\n\n"
    "[limit b]\nrate = 100/s\nburst = 5\n\n"
    "[limit slow]\nrate = 1/day\nburst = 2\n\n"
    "[limit free]\nrate = unlimited\n\n"
    "[limit huge]\nrate = 1/day\nburst = 53000\n";

/*
 * Degraded waits (no daemon) reserve into debt: the debt is capped like rld_debit's, or
 * TAT would wrap past 2^64 ns and the limit look full again. Four processes each reserve a
 * full burst of a 1/day limit (~146 years each, the cap is 2 bursts' worth of it): at least
 * one is refused, and the limit still denies afterwards.
 */
static void test_degraded_debt_cap(rld_client *c)
{
    rld_limit h;
    T_CODE(rld_find(c, "huge", &h), 0);
    T_CODE(rld_try(c, h, 53000, NULL), 0);
    pid_t kids[4];
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            rld_client *cc;
            rld_limit hh;
            rld_result r;
            if (rld_open(NULL, 0, &cc) < 0 || rld_find(cc, "huge", &hh) < 0)
                _exit(2);
            int rc = rld_wait(cc, hh, 53000, -1, &r);   /* granted ones sleep for years */
            _exit(rc == -ETIMEDOUT && (r.flags & RLD_F_DEGRADED) ? 0 : 3);
        }
    }
    int refused = 0;
    uint64_t deadline = t_now_ns() + 5000000000ull;
    while (!refused && t_now_ns() < deadline) {
        for (int i = 0; i < 4; i++) {
            int st;
            if (kids[i] > 0 && waitpid(kids[i], &st, WNOHANG) == kids[i]) {
                T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a refused reservation: %d", st);
                refused++;
                kids[i] = 0;
            }
        }
        t_sleep_ns(10000000);
    }
    for (int i = 0; i < 4; i++)
        if (kids[i] > 0) {
            kill(kids[i], SIGKILL);
            waitpid(kids[i], NULL, 0);
        }
    T_CHECK(refused >= 1, "the debt cap refused a reservation");
    T_CODE(rld_try(c, h, 1, NULL), -EAGAIN);         /* in debt, not wrapped to full */
    printf("degraded debt cap: %d of 4 whole-burst reservations refused, the limit still denies\n",
           refused);
}

static uint64_t remaining(rld_client *c, rld_limit l)
{
    rld_result r;
    T_CODE(rld_peek(c, l, &r), 0);
    return r.remaining;
}

static void test_open(const t_daemon *d)
{
    rld_client *c = (rld_client *)1;
    T_CODE(rld_open(d->instance, 0, NULL), -EINVAL);
    T_CODE(rld_open(d->instance, 0x80, &c), -EINVAL);          /* an unknown flag */
    T_CHECK(c == NULL, "*out cleared on failure");
    T_CODE(rld_open("", 0, &c), -EINVAL);
    T_CODE(rld_open(".hidden", 0, &c), -EINVAL);
    T_CODE(rld_open("a/b", 0, &c), -EINVAL);
    char longname[80];
    memset(longname, 'x', 65);
    longname[65] = '\0';
    T_CODE(rld_open(longname, 0, &c), -EINVAL);
    T_CODE(rld_open("no-such-instance-for-rld-tests", 0, &c), -ENOENT);
    /* NULL means $RLD_INSTANCE, which the harness set to our instance */
    T_CODE(rld_open(NULL, 0, &c), 0);
    rld_close(c);
    rld_close(NULL);
}

/* rld_open's answer about what a fake keeper hands out. */
static int open_fake(const t_daemon *d, const char *inst, const void *data, size_t len,
                     t_fake f)
{
    pid_t k = t_fake_keeper(d, inst, data, len, f);
    rld_client *c;
    int r = rld_open(inst, 0, &c);
    if (r == 0)
        rld_close(c);
    t_fake_keeper_stop(k);
    return r;
}

static void test_bad_segments(const t_daemon *d)
{
    /* Copy the real segment, then hand out damaged copies: each must be refused by name. */
    rldi_seg seg;
    char path[400];
    snprintf(path, sizeof(path), "%s/%s.seg", d->dir, d->instance);
    T_CODE(rldi_seg_open(path, &seg), 0);
    size_t len = seg.size;
    uint32_t slots = seg.slot_count;
    char *copy = malloc(len);
    memcpy(copy, seg.base, len);
    rldi_seg_close(&seg);
    char inst[96];
    snprintf(inst, sizeof(inst), "%s-fake", d->instance);
    t_fake ok = { slots, RLDI_ABI_MAJOR, true, 0 };

    T_CODE(open_fake(d, inst, copy, len, ok), 0);          /* the copy itself is fine */

    t_fake f = ok;
    f.abi = RLDI_ABI_MAJOR + 1;                             /* the keeper of another rld */
    T_CODE(open_fake(d, inst, copy, len, f), RLD_EABI);
    f = ok;
    f.sealed = false;                                       /* shrinkable: SIGBUS for all */
    T_CODE(open_fake(d, inst, copy, len, f), RLD_ECORRUPT);
    f = ok;
    f.skew_ns = 10000000000;                                /* another time namespace */
    T_CODE(open_fake(d, inst, copy, len, f), RLD_ECLOCK);
    f.skew_ns = -10000000000;
    T_CODE(open_fake(d, inst, copy, len, f), RLD_ECLOCK);
    f = ok;
    f.slots = slots + 64;                                   /* size and slots disagree */
    T_CODE(open_fake(d, inst, copy, len, f), RLD_ECORRUPT);

    rldi_shm_header *h = (rldi_shm_header *)copy;
    h->abi_major = RLDI_ABI_MAJOR + 1;
    T_CODE(open_fake(d, inst, copy, len, ok), RLD_EABI);
    h->abi_major = RLDI_ABI_MAJOR;

    h->magic[0] = 'X';
    T_CODE(open_fake(d, inst, copy, len, ok), RLD_ECORRUPT);
    h->magic[0] = 'R';

    h->slot_count += 1;                          /* geometry no longer adds up */
    T_CODE(open_fake(d, inst, copy, len, ok), RLD_ECORRUPT);
    h->slot_count -= 1;

    h->index_off += 64;                          /* an offset pointing elsewhere */
    T_CODE(open_fake(d, inst, copy, len, ok), RLD_ECORRUPT);
    h->index_off -= 64;

    h->state = RLDI_STATE_INIT;                  /* still being built */
    T_CODE(open_fake(d, inst, copy, len, ok), -EAGAIN);
    h->state = RLDI_STATE_RETIRED;               /* replaced by rld --fresh */
    T_CODE(open_fake(d, inst, copy, len, ok), -EAGAIN);
    h->state = RLDI_STATE_READY;

    T_CODE(open_fake(d, inst, copy, len / 2, ok), RLD_ECORRUPT);   /* truncated */
    T_CODE(open_fake(d, inst, copy, 100, ok), RLD_ECORRUPT);       /* shorter than a header */

    memset(copy, 0, len);                        /* zeroed */
    T_CODE(open_fake(d, inst, copy, len, ok), RLD_ECORRUPT);

    for (size_t i = 0; i < len; i++)             /* garbage */
        copy[i] = (char)(i * 2654435761u >> 13);
    T_CODE(open_fake(d, inst, copy, len, ok), RLD_ECORRUPT);

    snprintf(path, sizeof(path), "%s/%s.seg", d->dir, inst);
    unlink(path);
    T_CODE(rld_open(inst, 0, &(rld_client *){ NULL }), -ENOENT);   /* no keeper: no instance */
    free(copy);
}

static void test_find(rld_client *c)
{
    rld_limit l;
    T_CODE(rld_find(NULL, "a", &l), -EINVAL);
    T_CODE(rld_find(c, NULL, &l), -EINVAL);
    T_CODE(rld_find(c, "a", NULL), -EINVAL);
    T_CODE(rld_find(c, "", &l), -EINVAL);
    T_CODE(rld_find(c, "bad name", &l), -EINVAL);
    T_CODE(rld_find(c, "bad#name", &l), -EINVAL);
    char longname[80];
    memset(longname, 'a', 65);
    longname[65] = '\0';
    T_CODE(rld_find(c, longname, &l), -EINVAL);
    T_CODE(rld_find(c, "nope", &l), -ENOENT);
    T_CODE(rld_find(c, "a", &l), 0);
    rld_limit_info info;
    T_CODE(rld_info(c, l, NULL), -EINVAL);
    T_CODE(rld_info(NULL, l, &info), -EINVAL);
    T_CODE(rld_info(c, l, &info), 0);
    T_CHECK(strcmp(info.name, "a") == 0 && info.rate_count == 10 &&
                info.rate_period_ns == 1000000000ull && info.burst == 10 && info.waiters == 0,
            "info of a: %s %llu/%llu burst %llu", info.name, (unsigned long long)info.rate_count,
            (unsigned long long)info.rate_period_ns, (unsigned long long)info.burst);
    rld_limit forged = l;
    forged.gen++;
    T_CODE(rld_info(c, forged, &info), -ESTALE);
}

static void test_try(rld_client *c)
{
    rld_limit a, slow, freel, forged;
    rld_result r;
    T_CODE(rld_find(c, "a", &a), 0);
    T_CODE(rld_find(c, "slow", &slow), 0);
    T_CODE(rld_find(c, "free", &freel), 0);

    T_CODE(rld_try(NULL, a, 1, &r), -EINVAL);
    /* a slot that never held a limit (the configuration has 6 of 4096): whatever its
     * generation, it names nothing; it was admitted as unlimited before generations were
     * made odd while live */
    for (uint32_t g = 0; g < 4; g++) {
        forged = (rld_limit){ 40, g };
        T_CODE(rld_try(c, forged, 1, &r), -ESTALE);
        T_CODE(rld_peek(c, forged, &r), -ESTALE);
        T_CODE(rld_wait(c, forged, 1000000000, 1000000, &r), -ESTALE);
    }
    forged = a;
    forged.slot = 1u << 30;
    T_CODE(rld_try(c, forged, 1, &r), -EINVAL);
    T_CODE(rld_peek(c, forged, &r), -EINVAL);
    T_CODE(rld_refund(c, forged, 1), -EINVAL);
    T_CODE(rld_debit(c, forged, 1), -EINVAL);
    forged = a;
    forged.gen += 1;
    T_CODE(rld_try(c, forged, 1, &r), -ESTALE);
    rld_limit zero = { 0, 0 };
    T_CODE(rld_try(c, zero, 1, &r), -ESTALE);   /* a zeroed handle names nothing */

    /* unknown flags are refused, and take nothing */
    T_CODE(rld_try_ex(c, a, 1, 0x80, &r), -EINVAL);
    T_CODE(rld_try_ex(NULL, a, 1, 0, &r), -EINVAL);
    rld_wait_opts badflags = { 0, 0x80 };
    T_CODE(rld_wait_ex(c, a, 1, 0, &badflags, &r), -EINVAL);
    T_CODE(rld_wait(NULL, a, 1, 0, &r), -EINVAL);
    T_CHECK(remaining(c, a) == 10, "refused calls took nothing");

    /* cost > burst can never fit, and changes nothing */
    T_CODE(rld_try(c, a, 11, &r), -E2BIG);
    T_CHECK(remaining(c, a) == 10, "E2BIG took nothing");
    /* cost 0 succeeds, takes nothing */
    T_CODE(rld_try(c, a, 0, &r), 0);
    T_CHECK(r.remaining == 10 && r.limit == 10 && r.retry_after_ns == 0, "cost 0: %llu",
            (unsigned long long)r.remaining);
    /* cost == burst from full */
    T_CODE(rld_try(c, a, 10, &r), 0);
    T_CHECK(r.remaining == 0, "remaining after cost=burst: %llu", (unsigned long long)r.remaining);
    T_CHECK(r.reset_after_ns > 900000000ull && r.reset_after_ns <= 1000000000ull,
            "reset_after %llu", (unsigned long long)r.reset_after_ns);
    T_CODE(rld_try(c, a, 1, NULL), -EAGAIN);     /* res may be NULL */
    T_CODE(rld_try(c, a, 1, &r), -EAGAIN);
    T_CHECK(r.retry_after_ns > 0 && r.retry_after_ns <= 100000000ull, "retry_after %llu",
            (unsigned long long)r.retry_after_ns);
    /* wait what it said: then it fits */
    t_sleep_ns(r.retry_after_ns);
    T_CODE(rld_try(c, a, 1, &r), 0);

    /* refund: capped at the burst */
    T_CODE(rld_refund(c, a, 1000), 0);
    T_CHECK(remaining(c, a) == 10, "refund capped at burst");
    T_CODE(rld_refund(c, a, UINT64_MAX), 0);
    T_CHECK(remaining(c, a) == 10, "huge refund capped");

    /* debit: into debt, peek shows the debt as retry_after */
    T_CODE(rld_debit(c, a, 15), 0);
    T_CODE(rld_peek(c, a, &r), 0);
    T_CHECK(r.remaining == 0 && r.retry_after_ns > 400000000ull, "debt of 5: retry %llu",
            (unsigned long long)r.retry_after_ns);
    T_CODE(rld_try(c, a, 1, &r), -EAGAIN);
    T_CHECK(r.retry_after_ns > 500000000ull, "debt and cost wait: %llu",
            (unsigned long long)r.retry_after_ns);
    T_CODE(rld_debit(c, a, UINT64_MAX), -ERANGE);
    uint64_t before = r.retry_after_ns;
    T_CODE(rld_try(c, a, 1, &r), -EAGAIN);
    T_CHECK(r.retry_after_ns <= before, "a refused debit took nothing");
    T_CODE(rld_refund(c, a, 15), 0);
    T_CHECK(remaining(c, a) == 10, "debt refunded");

    /* 1/day: a second token after the burst is a day away */
    T_CODE(rld_try(c, slow, 2, &r), 0);
    T_CODE(rld_try(c, slow, 1, &r), -EAGAIN);
    T_CHECK(r.retry_after_ns > 86000ull * 1000000000ull, "1/day retry %llu",
            (unsigned long long)r.retry_after_ns);

    /* unlimited: everything fits, flagged */
    T_CODE(rld_try(c, freel, UINT64_MAX, &r), 0);
    T_CHECK(r.flags & RLD_F_UNLIMITED, "unlimited flag");
    T_CODE(rld_debit(c, freel, UINT64_MAX), 0);
    T_CODE(rld_peek(c, freel, &r), 0);
    T_CHECK(r.remaining == UINT64_MAX, "unlimited remaining");
}

static void test_multi(rld_client *c)
{
    rld_limit a, b, slow;
    rld_result r;
    T_CODE(rld_find(c, "a", &a), 0);
    T_CODE(rld_find(c, "b", &b), 0);
    T_CODE(rld_find(c, "slow", &slow), 0);
    rld_charge ch[RLD_MULTI_MAX + 1];
    for (int i = 0; i <= RLD_MULTI_MAX; i++)
        ch[i] = (rld_charge){ a, 0 };
    T_CODE(rld_try_multi(NULL, ch, 1, &r), -EINVAL);
    T_CODE(rld_try_multi(c, NULL, 1, &r), -EINVAL);
    T_CODE(rld_try_multi(c, ch, 0, &r), -EINVAL);
    T_CODE(rld_try_multi(c, ch, RLD_MULTI_MAX + 1, &r), -EINVAL);
    T_CODE(rld_try_multi(c, ch, RLD_MULTI_MAX, &r), 0);

    /* E2BIG on the second: the first is rolled back */
    ch[0] = (rld_charge){ a, 5 };
    ch[1] = (rld_charge){ b, 6 };
    T_CODE(rld_try_multi(c, ch, 2, &r), -E2BIG);
    T_CHECK(r.index == 1, "E2BIG index %u", r.index);
    T_CHECK(remaining(c, a) == 10, "rolled back after E2BIG: %llu",
            (unsigned long long)remaining(c, a));

    /* denied by the second: nothing taken from the first */
    T_CODE(rld_try(c, slow, 0, &r), 0);   /* slow is empty since test_try */
    ch[1] = (rld_charge){ slow, 1 };
    T_CODE(rld_try_multi(c, ch, 2, &r), -EAGAIN);
    T_CHECK(r.index == 1 && r.retry_after_ns > 86000ull * 1000000000ull, "deny index %u", r.index);
    T_CHECK(remaining(c, a) == 10, "rolled back after deny");

    /* allowed: both taken; index names the tighter one */
    ch[0] = (rld_charge){ a, 4 };
    ch[1] = (rld_charge){ b, 4 };
    T_CODE(rld_try_multi(c, ch, 2, &r), 0);
    T_CHECK(r.index == 1 && r.remaining == 1, "tightest: index %u remaining %llu", r.index,
            (unsigned long long)r.remaining);
    T_CHECK(remaining(c, a) == 6, "a charged");
    /* the same limit twice counts twice */
    ch[0] = (rld_charge){ a, 4 };
    ch[1] = (rld_charge){ a, 4 };
    T_CODE(rld_try_multi(c, ch, 2, &r), -EAGAIN);
    T_CHECK(remaining(c, a) == 6, "double charge rolled back");
    T_CODE(rld_refund(c, a, 10), 0);
    T_CODE(rld_refund(c, b, 10), 0);
}

static void test_reload(t_daemon *d, rld_client *c)
{
    rld_limit a, gone;
    rld_result r;
    T_CODE(rld_find(c, "a", &a), 0);
    T_CODE(rld_find(c, "gone", &gone), 0);
    T_CODE(rld_try(c, a, 5, &r), 0);
    t_write_conf(d, conf_after);
    kill(d->pid, SIGHUP);
    /* the reload is complete when the daemon says so (deletes come before changes) */
    uint64_t deadline = t_now_ns() + 30000000000ull;
    while (!t_log_has(d, "reloaded ") && t_now_ns() < deadline)
        t_sleep_ns(2000000);
    T_CODE(rld_try(c, gone, 1, &r), -ESTALE);
    T_CODE(rld_peek(c, gone, &r), -ESTALE);
    T_CODE(rld_refund(c, gone, 1), -ESTALE);
    T_CODE(rld_debit(c, gone, 1), -ESTALE);
    rld_charge ch[2] = { { a, 1 }, { gone, 1 } };
    T_CODE(rld_try_multi(c, ch, 2, &r), -ESTALE);
    T_CHECK(r.index == 1, "ESTALE index");
    T_CODE(rld_find(c, "gone", &gone), -ENOENT);
    rld_limit_info info;
    T_CODE(rld_info(c, gone, &info), -ESTALE);
    T_CODE(rld_info(c, a, &info), 0);
    T_CHECK(info.rate_count == 20 && info.admitted >= 5, "a after reload: %llu/s, admitted %llu",
            (unsigned long long)info.rate_count, (unsigned long long)info.admitted);
    /* a changed rate: the handle still works and half the bucket is still used */
    T_CODE(rld_peek(c, a, &r), 0);
    T_CHECK(r.remaining >= 4 && r.remaining <= 6, "carried state: remaining %llu",
            (unsigned long long)r.remaining);
}

int main(void)
{
    t_daemon d;
    t_instance(&d, "api", conf_text);
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld started");
    test_open(&d);
    test_bad_segments(&d);
    rld_client *c;
    T_CODE(rld_open(d.instance, 0, &c), 0);
    test_find(c);
    test_try(c);
    test_multi(c);
    test_reload(&d, c);
    for (int e = -200; e <= 0; e++)
        T_CHECK(rld_strerror(e) != NULL, "strerror(%d)", e);
    T_CHECK(strcmp(rld_strerror(RLD_EABI), rld_strerror(RLD_ECORRUPT)) != 0, "distinct");
    T_CHECK(rld_strerror(12345) != NULL && rld_strerror(-99999) != NULL, "unknown codes");
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    test_degraded_debt_cap(c);      /* the daemon is down: rld_wait degrades */
    rld_close(c);
    printf("test_api: ok\n");
    return 0;
}
