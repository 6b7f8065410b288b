/*
 * test_keys_defects.c - regression tests of defects once found in common/keys.c (issue 13),
 * on key tables in memory (keys_mem.h), and of the refusal figure docs/DESIGN.md gives.
 * Each case prints what it sees; the program exits 1 if any defect is back.
 *     build/tests/unit/test_keys_defects [half-evict|enospc-race|refusal-rate|busy-holder|
 *                                          stalled-claim]
 *
 * half-evict    evict() is two steps: a CAS of the state word to "free" (ver g+2), then a
 *               CAS of gen g+1 -> g+2. A process stopped (or killed) between them must not
 *               make the key untakeable or lose its place: lookups finish the eviction
 *               (evict_finish). Reproduced by doing the first step by hand, as evict() does.
 * enospc-race   rldi_key_get must not say -ENOSPC when it loses a race for a place in a
 *               table of idle keys: threads insert new keys of a fixed-window template,
 *               every key idle, a thread sweeping as the daemon does: no -ENOSPC is right.
 * refusal-rate  the documented figure (DESIGN.md, "Where a key lives"): a table filled to
 *               max_keys keys with state refuses almost none below 85% of its places, and
 *               near the end (87-88%) about one new key in 400; checked: none below 80%,
 *               no worse than 1 in 100 at 87%.
 * busy-holder   the insertion lock of a key's first bucket held by another process: a
 *               stopped holder (SIGSTOP) makes the insertion say -EBUSY; a live one that is
 *               merely not running (a loaded host) is waited for, not refused after 50 ms
 *               (test_mp_keys once met -EBUSY from a preempted holder under a -j2 load).
 * stalled-claim a claimer stopped between the steps of a claim (its ticket and fresh word
 *               taken, its identity not yet written) across the daemon's sweeps keeps its
 *               place while it lives: a new key meanwhile finds the table full (-ENOSPC),
 *               and when the claimer goes on every key is found. The sweeps used to free
 *               any claim left two sweeps: the new key took that place and the claimer then
 *               wrote its identity over it (the new key lost). A claimer that dies there
 *               has its place freed, and the next key takes it.
 *
 * A fourth defect, a new key's state made at a caller's stale clock read, is fixed by
 * reading the clock under the insertion lock (keys.c); its reproducer passed explicit times,
 * which that fix does not see by construction, so the bound it guards is checked with real
 * clocks by test_mp_keys (rendezvous and churn keys) instead.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keys_mem.h"

#define MS 1000000ull

static const char *code(int r)
{
    return r == 0 ? "0 (taken)" : r == -ESTALE ? "-ESTALE" : r == -EAGAIN ? "-EAGAIN" :
           r == -ENOSPC ? "-ENOSPC" : r == -EBUSY ? "-EBUSY" : "another code";
}

static const uint64_t secret[2] = { 0x0123456789abcdefull, 0xfedcba9876543210ull };

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- half-evict ---------------------------------------------------------------------- */

static int half_evict(void)
{
    keys_mem m;
    if (keys_mem_make(&m, 70, RLDI_ALGO_GCRA, 10, 1000 * MS, 0, secret) < 0)
        return -1;
    /* ahead of the clock: a new key's state is made at max(caller's time, the clock's) */
    uint64_t now = mono_ns() + 1000000 * MS;
    bool created;
    int r = keys_mem_try(&m, "k", 1, 0, now, &created);     /* created, full: idle */
    uint32_t idx, gen;
    uint64_t h = rldi_siphash13(secret, "k", 1);
    if (r != 0 || rldi_key_find(&m.t, h, "k", 1, 1, &idx, &gen) != 0)
        return -1;
    /* an evictor's first step (keys.c evict(): CAS the idle word to free, ver g+2) */
    rldi_key_entry *e = &m.t.entries[idx];
    rldi_u128 w = rldi_load16_split(&e->tat);
    uint32_t g2 = (gen & ~RLDI_KEY_SEQ_MASK) | ((gen + 1) & RLDI_KEY_SEQ_MASK);
    if (!rldi_cas16(&e->tat, &w, (rldi_u128)g2 << 96))
        return -1;
    /* ... and it stops there. rld_try_key on the key, then much later, after sweeps: */
    int r1 = keys_mem_try(&m, "k", 1, 1, now += MS, &created);
    for (int i = 0; i < 3; i++)
        rldi_key_sweep(&m.seg, &m.t, 0, m.t.nbuckets, rldi_fp_from_ns(now += 10000 * MS));
    rldi_u128 cw;
    bool claimed = rldi_key_claimed(&m.t, idx, &cw);
    int r2 = keys_mem_try(&m, "k", 1, 1, now += MS, &created);
    printf("half-evict: rld_try_key says %s while the evictor is stopped between its two steps; "
           "after three sweeps an hour later: place seen as claimed %s, rld_try_key says %s%s\n",
           code(r1), claimed ? "yes" : "no", code(r2),
           r2 == -ESTALE ? ": the key is stuck for good" : "");
    keys_mem_free(&m);
    return r1 != 0 || r2 != 0;          /* a full key of burst 10: both are taken */
}

/* ---- enospc-race ----------------------------------------------------------------------- */

static keys_mem race_m;
static atomic_int race_stop;
static atomic_ullong race_inserts, race_refused;

static void *inserter(void *arg)
{
    int id = (int)(intptr_t)arg;
    char key[32];
    for (uint64_t n = 0; !atomic_load(&race_stop); n++) {
        int len = snprintf(key, sizeof(key), "t%d.%" PRIu64, id, n);
        uint32_t idx, gen;
        bool created;
        int r = rldi_key_get(&race_m.seg, &race_m.t, key, (size_t)len, 0, false,
                             rldi_fp_from_ns(mono_ns()), &idx, &gen, &created);
        atomic_fetch_add(&race_inserts, 1);
        if (r == -ENOSPC) {
            atomic_fetch_add(&race_refused, 1);
            atomic_store(&race_stop, 1);
        }
    }
    return NULL;
}

static void *sweeper(void *arg)
{
    (void)arg;
    while (!atomic_load(&race_stop))
        rldi_key_sweep(&race_m.seg, &race_m.t, 0, race_m.t.nbuckets, rldi_fp_from_ns(mono_ns()));
    return NULL;
}

static int enospc_race(void)
{
    /* a fixed window of an hour: a key that took nothing is idle whatever the time, so every
     * place holds a key that may be reclaimed; 16 places, every key may live in all of them */
    if (keys_mem_make(&race_m, 14, RLDI_ALGO_FIXED, 1000, 3600000 * MS, 0, secret) < 0)
        return -1;
    pthread_t th[4];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, inserter, (void *)(intptr_t)i);
    pthread_create(&th[3], NULL, sweeper, NULL);
    uint64_t start = mono_ns();
    while (!atomic_load(&race_stop) && mono_ns() - start < 2000 * MS) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    atomic_store(&race_stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    printf("enospc-race: %llu new keys inserted by 3 threads (a 4th sweeping) into a table whose "
           "keys are all idle: %llu refused with -ENOSPC (none should be), after %.3f s\n",
           (unsigned long long)atomic_load(&race_inserts),
           (unsigned long long)atomic_load(&race_refused), (double)(mono_ns() - start) / 1e9);
    keys_mem_free(&race_m);
    return atomic_load(&race_refused) > 0;
}

/* ---- refusal-rate ---------------------------------------------------------------------- */

static int refusal_rate(void)
{
    keys_mem m;
    const uint32_t n = 1000000;
    if (keys_mem_make(&m, n, RLDI_ALGO_GCRA, 1000000, 1000 * MS, 1000000000ull, secret) < 0)
        return -1;
    uint32_t places = m.t.nbuckets * RLDI_KEY_BUCKET;
    uint64_t now = mono_ns(), tries[101] = { 0 }, refused[101] = { 0 }, fill_refused = 0;
    char key[32];
    /* keys that hold state (100 s of a 1,000,000/s template): never idle, never evicted */
    for (uint32_t i = 0; m.t.rec->live < places * 0.90 && i < 2 * n; i++) {
        int len = snprintf(key, sizeof(key), "u%u", i);
        uint64_t live = m.t.rec->live;
        int pct = (int)(100 * live / places);
        int r = keys_mem_try(&m, key, (size_t)len, 100000000, now += 1000, NULL);
        tries[pct]++;
        refused[pct] += r == -ENOSPC;
        fill_refused += r == -ENOSPC && live < n;
    }
    printf("refusal-rate: max_keys %u, %u places; new keys refused per 1%% of load:", n, places);
    for (int p = 83; p <= 89; p++)
        printf(" %d%%: %" PRIu64 "/%" PRIu64, p, refused[p], tries[p]);
    printf("; %" PRIu64 " refused while filling to max_keys\n", fill_refused);
    /* 87% of the places: max_keys is 87.5% */
    double rate = tries[87] ? (double)refused[87] / (double)tries[87] : 0;
    printf("refusal-rate: at 87-88%% of the places, 1 new key in %.0f refused (documented: about "
           "1 in 400)\n", rate > 0 ? 1 / rate : 0.0);
    uint64_t early = 0;
    for (int p = 0; p < 80; p++)
        early += refused[p];
    keys_mem_free(&m);
    if (tries[87] == 0)
        printf("refusal-rate: no insertion at 87%% of the places: nothing measured\n");
    return tries[87] == 0 || rate > 1.0 / 100 || early > 0;
}

/* ---- busy-holder --------------------------------------------------------------------- */

static keys_mem *bh_m;

static void bh_lock_all(pid_t holder)
{
    for (uint32_t b = 0; b < bh_m->t.nbuckets; b++)
        __atomic_store_n(&bh_m->t.buckets[b].lock, (uint64_t)(uint32_t)holder | (UINT64_C(1) << 32),
                         __ATOMIC_RELEASE);
}

static void *bh_release(void *arg)
{
    (void)arg;
    struct timespec ts = { 0, 200 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    for (uint32_t b = 0; b < bh_m->t.nbuckets; b++)
        __atomic_store_n(&bh_m->t.buckets[b].lock, 0, __ATOMIC_RELEASE);
    return NULL;
}

static int busy_holder(void)
{
    keys_mem m;
    if (keys_mem_make(&m, 100, RLDI_ALGO_GCRA, 10, 1000 * MS, 0, secret) < 0)
        return -1;
    bh_m = &m;
    pid_t child = fork();
    if (child < 0)
        return -1;
    if (child == 0) {
        for (;;)
            pause();
    }
    uint64_t now = mono_ns() + 1000000 * MS;
    /* stopped holder: refused */
    kill(child, SIGSTOP);
    int st;
    waitpid(child, &st, WUNTRACED);
    bh_lock_all(child);
    uint64_t t0 = mono_ns();
    int r1 = keys_mem_try(&m, "new1", 4, 1, now, NULL);
    uint64_t t1 = mono_ns();
    /* live holder (sleeping in pause, state S), the lock given back after 200 ms: waited */
    kill(child, SIGCONT);
    bh_lock_all(child);
    pthread_t th;
    if (pthread_create(&th, NULL, bh_release, NULL) != 0)
        return -1;
    uint64_t t2 = mono_ns();
    int r2 = keys_mem_try(&m, "new2", 4, 1, now, NULL);
    uint64_t t3 = mono_ns();
    pthread_join(th, NULL);
    kill(child, SIGKILL);
    waitpid(child, &st, 0);
    printf("busy-holder: stopped holder: %s after %.0f ms; live holder (lock given back after "
           "200 ms): %s after %.0f ms\n", code(r1), (double)(t1 - t0) / 1e6, code(r2),
           (double)(t3 - t2) / 1e6);
    keys_mem_free(&m);
    return r1 != -EBUSY || r2 != 0;
}

/* ---- stalled-claim ----------------------------------------------------------------------- */

static atomic_int sc_state;          /* 0 running, 1 paused in the claim, 2 go on, 3 die */

static void sc_hook(uint32_t idx)
{
    (void)idx;
    int expect = 0;
    if (!atomic_compare_exchange_strong(&sc_state, &expect, 1))
        return;                             /* only the first claim pauses */
    while (atomic_load(&sc_state) == 1) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&sc_state) == 3)
        pthread_exit(NULL);                 /* a claimer that dies between its steps */
}

static keys_mem *sc_m;
static int sc_code;

static void *sc_claimer(void *arg)
{
    (void)arg;
    bool created;
    sc_code = keys_mem_try(sc_m, "stalled", 7, 1, mono_ns(), &created);
    return NULL;
}

/* The daemon's sweep of claims (dseg.c dseg_keys_sweep): claims seen, then freed if the
 * same one after the next sweep (rldi_key_unclaim decides). Returns places freed. */
static int sc_sweeps(keys_mem *m, int rounds)
{
    uint32_t places = m->t.nbuckets * RLDI_KEY_BUCKET, freed = 0;
    rldi_u128 seen[64];
    bool was[64];
    for (uint32_t j = 0; j < places && j < 64; j++)
        was[j] = rldi_key_claimed(&m->t, j, &seen[j]);
    for (int r = 0; r < rounds; r++)
        for (uint32_t j = 0; j < places && j < 64; j++) {
            rldi_u128 w;
            if (was[j] && rldi_key_claimed(&m->t, j, &w) && w == seen[j])
                freed += (uint32_t)rldi_key_unclaim(&m->t, j, w);
            was[j] = rldi_key_claimed(&m->t, j, &seen[j]);
        }
    return (int)freed;
}

static bool sc_found(keys_mem *m, const char *key)
{
    uint32_t idx, gen;
    size_t len = strlen(key);
    return rldi_key_find(&m->t, rldi_siphash13(secret, key, len), key, len, 1, &idx, &gen) == 0;
}

/* A pid that was a process and is gone (a child, reaped). */
static pid_t dead_pid(void)
{
    pid_t p = fork();
    if (p == 0)
        _exit(0);
    waitpid(p, NULL, 0);
    return p;
}

static int stalled_claim_case(bool dies)
{
    keys_mem m;
    /* 16 places in 2 buckets: every key may live in each; 10 per 1000 s, so a key that took
     * 5 holds state for 500 s (never idle here) */
    if (keys_mem_make(&m, 14, RLDI_ALGO_GCRA, 10, 1000000 * MS, 0, secret) < 0)
        return -1;
    uint32_t places = m.t.nbuckets * RLDI_KEY_BUCKET;
    char key[16];
    int n = 0;
    for (int i = 0; m.t.rec->live < places - 1 && i < 1000; i++) {
        snprintf(key, sizeof(key), "f%d", i);
        if (keys_mem_try(&m, key, strlen(key), 5, mono_ns(), NULL) == 0)
            n = i + 1;
    }
    if (m.t.rec->live != places - 1)
        return -1;
    /* a claimer takes the last place and stops between its steps */
    sc_m = &m;
    atomic_store(&sc_state, 0);
    rldi_key_claim_hook = sc_hook;
    pthread_t th;
    pthread_create(&th, NULL, sc_claimer, NULL);
    while (atomic_load(&sc_state) != 1) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    pid_t gone = 0;
    if (dies) {
        /* it dies there: its ticket and any insertion lock it held now name a dead pid */
        atomic_store(&sc_state, 3);
        pthread_join(th, NULL);
        gone = dead_pid();
        for (uint32_t j = 0; j < places; j++) {
            uint32_t *wt = &m.t.entries[j].waiters;
            if (__atomic_load_n(wt, __ATOMIC_RELAXED) & RLDI_KEY_TICKET)
                __atomic_store_n(wt, RLDI_KEY_TICKET | (uint32_t)gone, __ATOMIC_RELAXED);
        }
        for (uint32_t b = 0; b < m.t.nbuckets; b++)
            if (m.t.buckets[b].lock)
                m.t.buckets[b].lock = (uint64_t)(uint32_t)gone | (UINT64_C(1) << 32);
    }
    int freed = sc_sweeps(&m, 3);               /* seconds of the daemon's sweeps */
    int other = keys_mem_try(&m, "other", 5, 1, mono_ns(), NULL);
    if (!dies) {
        atomic_store(&sc_state, 2);             /* it goes on */
        pthread_join(th, NULL);
    }
    rldi_key_claim_hook = NULL;
    int lost = 0;
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "f%d", i);
        lost += !sc_found(&m, key);
    }
    bool st = sc_found(&m, "stalled"), ot = sc_found(&m, "other");
    int bad;
    if (dies) {
        printf("stalled-claim: a claimer dead between its steps: %d place freed by the sweeps, "
               "a new key then %s, found %s; %d of the %d keys with state lost\n", freed,
               code(other), ot ? "yes" : "no", lost, n);
        bad = freed != 1 || other != 0 || !ot || lost;
    } else {
        printf("stalled-claim: a claimer stopped between its steps across sweeps: %d place "
               "freed; a new key meanwhile %s%s; the claimer then %s, its key found %s; %d of "
               "the %d keys with state lost\n", freed, code(other),
               other == 0 ? (ot ? " (found)" : " (NOT found: its identity overwritten)") : "",
               code(sc_code), st ? "yes" : "no", lost, n);
        bad = freed != 0 || other != -ENOSPC || sc_code != 0 || !st || lost;
    }
    keys_mem_free(&m);
    return bad;
}

static int stalled_claim(void)
{
    int a = stalled_claim_case(false);
    int b = a < 0 ? a : stalled_claim_case(true);
    return a < 0 || b < 0 ? -1 : a || b;
}

int main(int argc, char **argv)
{
    static const struct { const char *name; int (*fn)(void); } cases[] = {
        { "half-evict", half_evict }, { "enospc-race", enospc_race },
        { "refusal-rate", refusal_rate }, { "busy-holder", busy_holder },
        { "stalled-claim", stalled_claim },
    };
    int found = 0, ran = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        ran++;
        int r = cases[i].fn();
        if (r < 0) {
            printf("%s: could not set up\n", cases[i].name);
            return 2;
        }
        printf("%s: %s\n", cases[i].name, r ? "DEFECT IS BACK" : "ok");
        found += r;
    }
    if (!ran) {
        fprintf(stderr, "usage: %s [half-evict|enospc-race|refusal-rate|busy-holder|stalled-claim]\n", argv[0]);
        return 2;
    }
    return found ? 1 : 0;
}
