/*
 * test_keys.c - keyed limits (issue 13) through a real rld: templates found by name and not
 * as limits, keys created by the client on first use and independent of each other, key
 * handles with every call that takes one, a full table (-ENOSPC, or admitted with
 * RLD_F_OVERFLOW under overflow = allow), idle keys reclaimed for new ones without changing
 * a decision, handles of reclaimed keys -ESTALE, fixed-window templates, reloads that keep
 * keys (a rate change), start them full (a change of algorithm) or delete them, and a
 * restart that keeps them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "rld.h"

#define SEC 1000000000ull
#define MS  1000000ull

static const char *conf_text =
    "[template api.ip]\nrate = 120/min\nmax_keys = 1000\n\n"
    "[template tiny]\nrate = 10/s\nburst = 2\nmax_keys = 7\n\n"
    "[template held]\nrate = 1/s\nburst = 2\nmax_keys = 7\n\n"
    "[template hourly]\nrate = 10/h\nalgorithm = fixed\nmax_keys = 100\noverflow = allow\n\n"
    "[template slide]\nrate = 10/s\nalgorithm = sliding\nmax_keys = 100\n\n"
    "[template tenant]\nrate = caller\nmax_keys = 100\n\n"
    "[template tenant.hourly]\nrate = caller\nalgorithm = fixed\nmax_keys = 100\n\n"
    "[limit plain]\nrate = 10/s\n";

static void key_name(char *buf, size_t len, const char *prefix, int i)
{
    snprintf(buf, len, "%s%d", prefix, i);
}

/* 1. Names: templates are not limits, and the reverse. */
static void test_names(rld_client *c)
{
    rld_template t;
    rld_limit l;
    T_CODE(rld_find_template(c, "api.ip", &t), 0);
    T_CODE(rld_find(c, "api.ip", &l), -ENOENT);
    T_CODE(rld_find_template(c, "plain", &t), -ENOENT);
    T_CODE(rld_find_template(c, "nope", &t), -ENOENT);
    T_CODE(rld_find_template(c, "bad name!", &t), -EINVAL);
    T_CODE(rld_find(c, "plain", &l), 0);
    /* a template's handle is no limit */
    rld_limit as_limit = { t.slot, t.gen };
    T_CHECK(rld_try(c, as_limit, 1, NULL) < 0, "a template's handle takes nothing");
    rld_limit_info info;
    T_CODE(rld_info(c, as_limit, &info), 0);
    T_CHECK(info.kind == RLD_KIND_TEMPLATE && strcmp(info.name, "api.ip") == 0 &&
                info.max_keys == 1000 && info.rate_count == 120,
            "template info: kind %u max_keys %u", info.kind, info.max_keys);
    /* bad keys */
    T_CODE(rld_try_key(c, t, "", 0, 1, NULL), -EINVAL);
    char big[257];
    memset(big, 'k', sizeof(big));
    T_CODE(rld_try_key(c, t, big, 257, 1, NULL), -EINVAL);
    T_CODE(rld_try_key(c, t, big, 256, 1, NULL), 0);       /* 256 bytes: the longest */
    T_CODE(rld_try_key(c, t, NULL, 3, 1, NULL), -EINVAL);
}

/* 2. "120 per minute per client IP": each key its own bucket. */
static void test_per_key(rld_client *c)
{
    rld_template t;
    T_CODE(rld_find_template(c, "api.ip", &t), 0);
    rld_result r;
    const char *ip = "203.0.113.7";
    for (int i = 0; i < 120; i++) {
        T_CODE(rld_try_key(c, t, ip, strlen(ip), 1, &r), 0);
        T_CHECK(r.limit == 120 && r.remaining <= (uint64_t)(119 - i) + 1, "call %d: %llu left", i,
                (unsigned long long)r.remaining);
    }
    T_CODE(rld_try_key(c, t, ip, strlen(ip), 1, &r), -EAGAIN);
    T_CHECK(r.retry_after_ns > 400 * MS && r.retry_after_ns <= 500 * MS,
            "retry_after one token of 120/min: %.3f s", r.retry_after_ns / 1e9);
    /* another key is full; keys that share a prefix or differ in length are different */
    T_CODE(rld_try_key(c, t, "203.0.113.8", 11, 120, &r), 0);
    T_CODE(rld_try_key(c, t, "203.0.113.7x", 12, 1, &r), 0);
    T_CODE(rld_try_key(c, t, "203.0.113.", 10, 1, &r), 0);
    T_CODE(rld_try_key(c, t, "203.0.113.7", 11, 1, &r), -EAGAIN);     /* still the same key */
    /* binary keys: bytes, not strings */
    uint8_t k1[4] = { 0, 1, 2, 3 }, k2[4] = { 0, 1, 2, 4 };
    T_CODE(rld_try_key(c, t, k1, 4, 120, &r), 0);
    T_CODE(rld_try_key(c, t, k1, 4, 1, &r), -EAGAIN);
    T_CODE(rld_try_key(c, t, k2, 4, 1, &r), 0);
    /* more than the burst never fits */
    T_CODE(rld_try_key(c, t, "x", 1, 121, &r), -E2BIG);
    /* the template's counters sum its keys' */
    rld_limit_info info;
    T_CODE(rld_info(c, (rld_limit){ t.slot, t.gen }, &info), 0);
    T_CHECK(info.keys >= 7, "live keys %llu", (unsigned long long)info.keys);
}

/* 3. A key's handle works with every call taking a limit. */
static void test_handles(rld_client *c)
{
    rld_template t;
    T_CODE(rld_find_template(c, "api.ip", &t), 0);
    rld_limit k, k_again;
    T_CODE(rld_key(c, t, "user:42", 7, &k), 0);
    T_CODE(rld_key(c, t, "user:42", 7, &k_again), 0);
    T_CHECK(k.slot == k_again.slot && k.gen == k_again.gen, "one key, one handle");
    rld_result r;
    T_CODE(rld_try(c, k, 100, &r), 0);
    T_CHECK(r.remaining == 20, "try on the handle: %llu", (unsigned long long)r.remaining);
    T_CODE(rld_try_key(c, t, "user:42", 7, 20, &r), 0);      /* the same bucket */
    T_CODE(rld_try(c, k, 1, &r), -EAGAIN);
    T_CODE(rld_refund(c, k, 5), 0);
    T_CODE(rld_peek(c, k, &r), 0);
    T_CHECK(r.remaining >= 5 && r.remaining <= 6, "refunded: %llu", (unsigned long long)r.remaining);
    T_CODE(rld_debit(c, k, 50), 0);
    T_CODE(rld_peek(c, k, &r), 0);
    T_CHECK(r.remaining == 0 && r.retry_after_ns > 20 * SEC, "in debt: %.1f s",
            r.retry_after_ns / 1e9);
    rld_limit_info info;
    T_CODE(rld_info(c, k, &info), 0);
    T_CHECK(info.kind == RLD_KIND_KEY && strcmp(info.name, "api.ip") == 0 && info.burst == 120,
            "key info: kind %u name %s", info.kind, info.name);
    rld_charge ch[2];
    rld_limit plain, other;
    T_CODE(rld_find(c, "plain", &plain), 0);
    T_CODE(rld_key(c, t, "user:43", 7, &other), 0);
    ch[0] = (rld_charge){ plain, 1 };
    ch[1] = (rld_charge){ other, 1 };
    T_CODE(rld_try_multi(c, ch, 2, &r), 0);
    ch[1] = (rld_charge){ k, 1 };                     /* in debt: the set is refused */
    T_CODE(rld_try_multi(c, ch, 2, &r), -EAGAIN);
    T_CHECK(r.index == 1, "the key decided");
}

/* 3b. Waits on a key, through the daemon's fair queue, alone and in a set. */
static void test_waits(rld_client *c)
{
    rld_template t;
    T_CODE(rld_find_template(c, "api.ip", &t), 0);
    rld_limit k, plain;
    T_CODE(rld_key(c, t, "waiter", 6, &k), 0);
    T_CODE(rld_find(c, "plain", &plain), 0);
    rld_result r;
    T_CODE(rld_try(c, k, 120, &r), 0);                     /* empty: 120/min, a token a 0.5 s */
    uint64_t t0 = t_now_ns();
    T_CODE(rld_wait(c, k, 1, 3 * SEC, &r), 0);
    uint64_t waited = t_now_ns() - t0;
    T_CHECK(waited >= 450 * MS && waited < 2000 * MS, "waited %.3f s", waited / 1e9);
    rld_charge ch[2] = { { plain, 1 }, { k, 1 } };
    t0 = t_now_ns();
    T_CODE(rld_wait_multi(c, ch, 2, 3 * SEC, NULL, &r), 0);
    waited = t_now_ns() - t0;
    T_CHECK(waited >= 400 * MS && waited < 2000 * MS, "set waited %.3f s", waited / 1e9);
    /* a wait that cannot fit its timeout is refused at once */
    T_CODE(rld_wait(c, k, 2, 10 * MS, &r), -ETIMEDOUT);
    rld_limit_info info;
    T_CODE(rld_info(c, k, &info), 0);
    T_CHECK(info.waiters == 0, "no waiter left on the key");
}

/* 4. A full table: new keys refused, old ones unaffected; once idle, old keys make room
 * (their handles then say -ESTALE), and nothing a new key is told differs from a fresh one. */
static void test_full_and_reclaim(rld_client *c)
{
    rld_template t;
    T_CODE(rld_find_template(c, "tiny", &t), 0);
    /* 7 keys of capacity: a table of 2 buckets, 16 places; fill it with keys holding state */
    char k[32];
    int placed = 0;
    rld_limit first;
    for (int i = 0; i < 64; i++) {
        key_name(k, sizeof(k), "k", i);
        int r = rld_try_key(c, t, k, strlen(k), 1, NULL);
        T_CHECK(r == 0 || r == -ENOSPC, "key %d: %d", i, r);
        if (r == 0 && placed++ == 0)
            T_CODE(rld_key(c, t, k, strlen(k), &first), 0);
    }
    T_CHECK(placed == 16, "16 places: %d keys placed", placed);
    T_CODE(rld_try_key(c, t, "late", 4, 1, NULL), -ENOSPC);
    T_CODE(rld_key(c, t, "late", 4, &first), -ENOSPC);
    /* an existing key still works */
    key_name(k, sizeof(k), "k", 0);
    rld_result r;
    T_CODE(rld_try_key(c, t, k, strlen(k), 1, &r), 0);
    T_CHECK(r.remaining == 0, "k0's second token");
    /* 10/s, burst 2: all full again after 200 ms; then every new key finds room */
    T_CODE(rld_key(c, t, "k1", 2, &first), 0);
    t_sleep_ns(250 * MS);
    for (int i = 0; i < 16; i++) {
        key_name(k, sizeof(k), "n", i);
        T_CODE(rld_try_key(c, t, k, strlen(k), 2, &r), 0);
        T_CHECK(r.remaining == 0 && r.limit == 2, "a new key is a full bucket");
    }
    T_CODE(rld_try(c, first, 1, NULL), -ESTALE);      /* k1 was reclaimed */
    T_CODE(rld_peek(c, first, &r), -ESTALE);
    /* and coming back it is a full bucket again */
    T_CODE(rld_try_key(c, t, "k1", 2, 1, &r), -ENOSPC);  /* the n keys hold state now */
    t_sleep_ns(250 * MS);
    T_CODE(rld_try_key(c, t, "k1", 2, 2, &r), 0);
    /* the daemon's sweep reclaims idle keys by itself (about once a second) */
    rld_limit_info info;
    uint64_t deadline = t_now_ns() + 5 * SEC;
    do {
        t_sleep_ns(100 * MS);
        T_CODE(rld_info(c, (rld_limit){ t.slot, t.gen }, &info), 0);
    } while (info.keys > 0 && t_now_ns() < deadline);
    T_CHECK(info.keys == 0, "idle keys reclaimed by the daemon: %llu left",
            (unsigned long long)info.keys);
}

/* 3b. The thread's last key (client.c: a hot key skips the hash and the lookup) after its
 * place went to another key, taken by another thread: the take fails on the place's gen,
 * the key is looked up again, and every key keeps its own state. */
static rld_client *lk_c;
static rld_template lk_t;
static int lk_placed;

static void *lk_fill(void *arg)
{
    (void)arg;
    char k[32];
    for (int i = 0; i < 16; i++) {
        key_name(k, sizeof(k), "o", i);
        lk_placed += rld_try_key(lk_c, lk_t, k, strlen(k), 1, NULL) == 0;
    }
    return NULL;
}

static void test_last_key_moved(rld_client *c)
{
    lk_c = c;
    /* 16 places, as tiny's; a token comes back after a second: a key that took one holds
     * state for the few ms of the test (and T = 1 s is below 2^64 units: librld's lean
     * path takes it, which is where the remembered place is used) */
    T_CODE(rld_find_template(c, "held", &lk_t), 0);
    rld_result r;
    /* made idle (cost 0): this thread's last key, its place free for the taking */
    T_CODE(rld_try_key(c, lk_t, "hot", 3, 0, &r), 0);
    pthread_t th;
    T_CHECK(pthread_create(&th, NULL, lk_fill, NULL) == 0, "thread");
    pthread_join(th, NULL);
    /* 15 free places and hot's, reclaimed (idle) for the 16th key; each o key took 1 of its
     * 2 tokens */
    T_CHECK(lk_placed == 16, "16 keys with state placed: %d", lk_placed);
    /* hot's remembered place is an o key's now, with a token left: taken from there, hot
     * would be admitted (and that key robbed); it must be looked up again: no room */
    T_CODE(rld_try_key(c, lk_t, "hot", 3, 1, &r), -ENOSPC);
    char k[32];
    for (int i = 0; i < 16; i++) {
        key_name(k, sizeof(k), "o", i);
        T_CODE(rld_try_key(c, lk_t, k, strlen(k), 1, &r), 0);        /* its own second */
        T_CODE(rld_try_key(c, lk_t, k, strlen(k), 1, &r), -EAGAIN);
    }
}

/* 4a. Sliding windows per key: never more than 10 in any second, from records. */
static void test_sliding_keys(rld_client *c)
{
    rld_template t;
    T_CODE(rld_find_template(c, "slide", &t), 0);
    rld_result r;
    for (int i = 0; i < 10; i++)
        T_CODE(rld_try_key(c, t, "ip1", 3, 1, &r), 0);
    T_CODE(rld_try_key(c, t, "ip1", 3, 1, &r), -EAGAIN);
    /* 10 per s: b = 4 bits, 15 sub-windows of 66.7 ms: the oldest leaves within one of 1 s */
    T_CHECK(r.retry_after_ns > 900 * MS && r.retry_after_ns <= SEC + 67 * MS,
            "retry_after %.3f s", r.retry_after_ns / 1e9);
    T_CHECK(r.reset_after_ns >= r.retry_after_ns, "reset after the retry");
    T_CODE(rld_try_key(c, t, "ip2", 3, 10, &r), 0);          /* another key: its own */
    /* a greedy client for 2.5 s: recorded, then every second of records checked */
    enum { N = 200 };
    uint64_t at[N];
    int n = 0;
    uint64_t end = t_now_ns() + 2500 * MS;
    while (t_now_ns() < end && n < N) {
        uint64_t a = t_now_ns();
        if (rld_try_key(c, t, "greedy", 6, 1, &r) == 0)
            at[n++] = a;
        else
            t_sleep_ns(r.retry_after_ns < 5 * MS ? r.retry_after_ns : 5 * MS);
    }
    int lo = 0;
    for (int i = 0; i < n; i++) {
        while (at[lo] + SEC <= at[i])
            lo++;
        T_CHECK(i - lo + 1 <= 10, "%d admitted within one second", i - lo + 1);
    }
    T_CHECK(n >= 20, "it admitted: %d in 2.5 s", n);
    /* refund to its sub-window, debit into debt */
    rld_limit k;
    T_CODE(rld_key(c, t, "ip3", 3, &k), 0);
    T_CODE(rld_try(c, k, 4, &r), 0);
    T_CODE(rld_refund_ex(c, k, 3, r.window), 0);
    T_CODE(rld_peek(c, k, &r), 0);
    T_CHECK(r.remaining == 9 || r.remaining == 6, "refunded: %llu", (unsigned long long)r.remaining);
    T_CODE(rld_debit(c, k, 12), 0);
    T_CODE(rld_peek(c, k, &r), 0);
    T_CHECK(r.remaining == 0 && r.retry_after_ns > 0, "in debt");
}

/* 4b. rate = caller: each tenant's plan from the client. */
static void test_caller_rate(rld_client *c)
{
    rld_template t, th, ip;
    T_CODE(rld_find_template(c, "tenant", &t), 0);
    T_CODE(rld_find_template(c, "tenant.hourly", &th), 0);
    T_CODE(rld_find_template(c, "api.ip", &ip), 0);
    rld_result r;
    T_CODE(rld_try_key_rate(c, t, "acme", 4, 5, SEC, 5, &r), 0);      /* 5/s: the burst */
    T_CHECK(r.limit == 5 && r.remaining == 0, "acme's plan: %llu of %llu",
            (unsigned long long)r.remaining, (unsigned long long)r.limit);
    T_CODE(rld_try_key_rate(c, t, "acme", 4, 5, SEC, 1, &r), -EAGAIN);
    T_CHECK(r.retry_after_ns > 150 * MS && r.retry_after_ns <= 200 * MS, "a token of 5/s: %.3f",
            r.retry_after_ns / 1e9);
    T_CODE(rld_try_key(c, t, "acme", 4, 1, &r), -EAGAIN);    /* an existing key: its own rate */
    T_CODE(rld_try_key(c, t, "globex", 6, 1, &r), -EINVAL);  /* a new key needs its rate */
    rld_limit h;
    T_CODE(rld_key(c, t, "globex", 6, &h), -EINVAL);
    T_CODE(rld_key_rate(c, t, "globex", 6, 1000, 60 * SEC, &h), 0);
    T_CODE(rld_try(c, h, 1000, &r), 0);
    T_CHECK(r.limit == 1000, "globex's plan: 1000/min");
    T_CODE(rld_try(c, h, 1, &r), -EAGAIN);
    T_CHECK(r.retry_after_ns > 50 * MS && r.retry_after_ns <= 60 * MS, "a token of 1000/min");
    /* a plan change: the new rate at once, the key's state kept in time */
    T_CODE(rld_try_key_rate(c, t, "acme", 4, 100, SEC, 1, &r), -EAGAIN);
    T_CHECK(r.limit == 100 && r.retry_after_ns <= 210 * MS, "acme upgraded: %.3f s",
            r.retry_after_ns / 1e9);
    /* a fixed window per tenant */
    T_CODE(rld_try_key_rate(c, th, "acme", 4, 3, 3600 * SEC, 3, &r), 0);
    T_CHECK(r.reset_after_ns > 0 && r.reset_after_ns <= 3600 * SEC, "until the hour");
    T_CODE(rld_try_key_rate(c, th, "acme", 4, 3, 3600 * SEC, 1, &r), -EAGAIN);
    /* wrong uses */
    T_CODE(rld_try_key_rate(c, ip, "x", 1, 5, SEC, 1, &r), -EINVAL);   /* not caller */
    T_CODE(rld_try_key_rate(c, t, "x", 1, 0, SEC, 1, &r), -ERANGE);
    T_CODE(rld_try_key_rate(c, t, "x", 1, 5, 1500, 1, &r), -ERANGE);   /* not whole ms */
    T_CODE(rld_try_key_rate(c, t, "x", 1, 1ull << 33, SEC, 1, &r), -ERANGE);
    T_CODE(rld_try_key_rate(c, t, "x", 1, 5, 0, 1, &r), -ERANGE);      /* no period */
    T_CODE(rld_try_key_rate(c, t, "x", 1, 5, 500000, 1, &r), -ERANGE); /* under 1 ms */
    T_CODE(rld_try_key_rate(c, t, "x", 1, 5, (UINT32_MAX + 1ull) * MS, 1, &r), -ERANGE);
    T_CODE(rld_try_key_rate(c, t, "x", 1, UINT32_MAX + 1ull, SEC, 1, &r), -ERANGE);
    T_CODE(rld_try_key_rate(c, t, "x", 1, UINT32_MAX, UINT32_MAX * MS, 1, &r), 0);  /* the edges */
    T_CODE(rld_key_rate(c, t, "y", 1, 0, SEC, &h), -ERANGE);
    T_CODE(rld_key_rate(c, ip, "y", 1, 5, SEC, &h), -EINVAL);         /* not caller */
    T_CODE(rld_key_rate(c, t, NULL, 1, 5, SEC, &h), -EINVAL);
    T_CODE(rld_key_rate(c, t, "y", 1, 5, SEC, NULL), -EINVAL);
}

/* 5. A fixed-window template, overflow = allow. */
static void test_fixed_overflow(rld_client *c)
{
    rld_template t;
    T_CODE(rld_find_template(c, "hourly", &t), 0);
    rld_result r;
    T_CODE(rld_try_key(c, t, "shop-1", 6, 10, &r), 0);
    T_CHECK(r.reset_after_ns > 0 && r.reset_after_ns <= 3600 * SEC, "reset at the hour");
    T_CODE(rld_try_key(c, t, "shop-1", 6, 1, &r), -EAGAIN);
    T_CHECK(r.retry_after_ns == r.reset_after_ns || r.retry_after_ns + MS >= r.reset_after_ns,
            "until the boundary");
    /* fill the table (100 keys of capacity: 15 buckets, 120 places) with keys holding state */
    char k[32];
    int overflowed = 0, placed = 0;
    for (int i = 0; i < 400; i++) {
        key_name(k, sizeof(k), "s", i);
        T_CODE(rld_try_key(c, t, k, strlen(k), 1, &r), 0);     /* allow: always admitted */
        if (r.flags & RLD_F_OVERFLOW) {
            overflowed++;
            T_CHECK(r.limit == UINT64_MAX && r.remaining == UINT64_MAX, "overflow result");
        } else {
            placed++;
        }
    }
    T_CHECK(placed >= 100 && placed <= 120 && overflowed == 400 - placed,
            "placed %d, overflowed %d", placed, overflowed);
    rld_limit l;
    T_CODE(rld_key(c, t, "not-there", 9, &l), -ENOSPC);   /* no bucket to hand out */
}

/* 6. Reloads: a rate change keeps every key's state, an algorithm change starts them all
 * full, a deleted template takes its keys with it. A restart keeps them. */
static void test_reload(rld_client *c, t_daemon *d)
{
    rld_template t;
    T_CODE(rld_find_template(c, "api.ip", &t), 0);
    rld_result r;
    T_CODE(rld_try_key(c, t, "r1", 2, 120, &r), 0);
    t_reload(d, "[template api.ip]\nrate = 60/min\nburst = 120\nmax_keys = 1000\n\n"
                "[template tiny]\nrate = 10/s\nburst = 2\nmax_keys = 7\n\n"
                "[template hourly]\nrate = 10/h\nalgorithm = fixed\nmax_keys = 100\noverflow = allow\n\n"
                "[limit plain]\nrate = 10/s\n", "reloaded ");
    /* each key keeps its state in time: 60 s from full (120 at 120/min) is 60 tokens of the
     * new 60/min with the same burst */
    rld_limit r1;
    T_CODE(rld_key(c, t, "r1", 2, &r1), 0);
    T_CODE(rld_peek(c, r1, &r), 0);
    T_CHECK(r.remaining >= 58 && r.remaining <= 61 && r.limit == 120,
            "kept in time: %llu of %llu", (unsigned long long)r.remaining,
            (unsigned long long)r.limit);
    T_CODE(rld_try_key(c, t, "r1", 2, r.remaining, &r), 0);
    T_CODE(rld_try_key(c, t, "r1", 2, 1, &r), -EAGAIN);
    T_CHECK(r.retry_after_ns > 900 * MS && r.retry_after_ns <= SEC, "the new rate: %.3f s",
            r.retry_after_ns / 1e9);
    /* the restart keeps the segment, and the keys in it */
    T_CHECK(t_daemon_stop_clean(d), "stop");
    T_CHECK(t_daemon_start(d, NULL) == 0, "restart");
    T_CODE(rld_try_key(c, t, "r1", 2, 1, &r), -EAGAIN);
    /* algorithm change: every key full again, and the log says so */
    t_reload(d, "[template api.ip]\nrate = 60/min\nalgorithm = fixed\nmax_keys = 1000\n\n"
                "[template tiny]\nrate = 10/s\nburst = 2\nmax_keys = 7\n\n"
                "[template hourly]\nrate = 10/h\nalgorithm = fixed\nmax_keys = 100\noverflow = allow\n\n"
                "[limit plain]\nrate = 10/s\n", "reloaded ");
    T_CHECK(t_log_has(d, "template api.ip: algorithm gcra -> fixed: every key starts full"),
            "logged");
    T_CODE(rld_try_key(c, t, "r1", 2, 60, &r), 0);
    T_CODE(rld_try_key(c, t, "r1", 2, 1, &r), -EAGAIN);
    /* deleted: its handle and its keys are gone */
    rld_limit k;
    T_CODE(rld_key(c, t, "r1", 2, &k), 0);
    t_reload(d, "[template tiny]\nrate = 10/s\nburst = 2\nmax_keys = 7\n\n"
                "[template hourly]\nrate = 10/h\nalgorithm = fixed\nmax_keys = 100\noverflow = allow\n\n"
                "[limit plain]\nrate = 10/s\n", "reloaded ");
    T_CODE(rld_try_key(c, t, "r1", 2, 1, &r), -ESTALE);
    T_CODE(rld_try(c, k, 1, &r), -ESTALE);
    T_CODE(rld_find_template(c, "api.ip", &t), -ENOENT);
    /* back, with a table of the same size: a new template, every key new */
    t_reload(d, conf_text, "reloaded ");
    T_CODE(rld_find_template(c, "api.ip", &t), 0);
    T_CODE(rld_try_key(c, t, "r1", 2, 120, &r), 0);
    T_CODE(rld_try(c, k, 1, &r), -ESTALE);
    /* a name cannot change from [limit] to [template] in one reload */
    t_reload(d, "[template plain]\nrate = 10/s\n", "reload refused");
    rld_limit plain;
    T_CODE(rld_find(c, "plain", &plain), 0);
}

/* 7. Configuration errors. */
static void test_config_errors(t_daemon *d)
{
    static const struct { const char *text, *needle; } bad[] = {
        { "[template a]\nmax_keys = 10\n", "has no rate" },
        { "[template a]\nrate = 1/s\nmax_keys = 0\n", "max_keys" },
        { "[limit a]\nrate = 1/s\nmax_keys = 10\n", "for [template" },
        { "[limit a]\nrate = 1/s\noverflow = allow\n", "for [template" },
        { "[template a]\nrate = 1/s\noverflow = maybe\n", "deny or allow" },
        { "[template a]\nrate = 1/s\nscope = global\n", "host limits" },
        { "[limit a]\nrate = 1/s\n\n[template a]\nrate = 1/s\n", "duplicate name" },
        { "[limit a]\nrate = caller\n", "for [template" },
        { "[template a]\nrate = caller\nburst = 5\n", "no burst" },
    };
    char path[400], out[4096];
    snprintf(path, sizeof(path), "%s/bad.conf", d->dir);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        FILE *f = fopen(path, "w");
        T_CHECK(f, "write %s", path);
        fputs(bad[i].text, f);
        fclose(f);
        const char *args[] = { "--check-config", "--config", path, NULL };
        T_CHECK(t_run_rld(out, sizeof(out), args) == 1, "case %zu refused: %s", i, out);
        T_CHECK(strstr(out, bad[i].needle) && strstr(out, "bad.conf:"),
                "case %zu names '%s' and the file: %s", i, bad[i].needle, out);
    }
}

int main(void)
{
    t_daemon d;
    t_instance(&d, "keys", conf_text);
    test_config_errors(&d);
    T_CHECK(t_daemon_start(&d, NULL) == 0, "start");
    rld_client *c;
    T_CODE(rld_open(NULL, 0, &c), 0);
    test_names(c);
    test_per_key(c);
    test_handles(c);
    test_waits(c);
    test_full_and_reclaim(c);
    test_last_key_moved(c);
    test_sliding_keys(c);
    test_caller_rate(c);
    test_fixed_overflow(c);
    test_reload(c, &d);
    rld_close(c);
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    return 0;
}
