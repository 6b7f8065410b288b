/*
 * peers_keys.c - the keyed-limit rows of bench_peers (issue 13, "Performance and memory"):
 * rld_try_key beside rld_try on a named limit, measured in the same loop of repetitions, on
 * a template whose table holds NKEYS live keys (1,000,000 by default).
 *
 * The template (bench_peers.c's configuration): rate 1,000,000/s, burst 10^9 (a tolerance of
 * 1,000 s), max_keys NKEYS. Every key is made with rld_key and put 100 s into use with
 * rld_debit (100,000,000 tokens): it is not idle, so neither the daemon's sweep nor an
 * insertion reclaims it during the run, and 900 s of tolerance remain, so every take of 1
 * is admitted, as in the other rows. The reference is rld_try(c, bench.a, 1, &res): the
 * named limit of the rows above (10^9/s), precise clock path. Every row runs in a forked
 * process of its own (a fresh client), after 1,000 warm-up calls; one call per iteration,
 * the clock checked every 256 calls. The memory floor row times a dependent random read over a
 * buffer of the key table's size (floor_child). Each run gives ns per call by the wall clock, as the
 * other rows, and by the process's CPU time (CLOCK_PROCESS_CPUTIME_ID): on a machine others
 * keep busy, the wall clock also counts the time the process waited for a CPU.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "instance.h"
#include "keys.h"
#include "peers.h"
#include "rld.h"
#include "segment.h"

#define KEY_DEBT 100000000u     /* 100 s of 1,000,000/s: in use, far from denied */

typedef struct kshared {
    volatile int failed;
    uint64_t calls, denied, errors, refused, evictions, live_after;
    int first_error;
    double ns, cpu_ns;          /* per call: wall clock, and this process's CPU time */
    char why[160];
} kshared;

static kshared *ks;

/* "user:NNNNNNN": 12 bytes, the key of live key I (I < 10^7), written without snprintf so
 * that making the key costs a few ns (a request handler has its key at hand). */
static inline size_t key_of(char *buf, const char *prefix, size_t plen, uint32_t i)
{
    memcpy(buf, prefix, plen);
    for (int d = 6; d >= 0; d--) {
        buf[plen + (size_t)d] = (char)('0' + i % 10);
        i /= 10;
    }
    return plen + 7;
}

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t xs(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

const char *pk_name(int kind)
{
    static const char *const n[PK_COUNT] = {
        [PK_REF] = "rld_try, named limit (with result)",
        [PK_HOT] = "rld_try_key, one hot key",
        [PK_RANDOM] = "rld_try_key, random live key",
        [PK_CREATE] = "rld_try_key, new key (free place)",
        [PK_CREATE_FULL] = "rld_try_key, new key (table full)",
        [PK_FLOOR] = "memory floor: one dependent random read",
    };
    return n[kind];
}

int pk_prefill(uint32_t nkeys, double *secs, uint32_t *refused, uint64_t *live)
{
    rld_client *c;
    rld_template t;
    if (rld_open(NULL, 0, &c) < 0 || rld_find_template(c, "bench.keys", &t) < 0)
        return -1;
    char key[16];
    uint64_t t0 = peers_clock_ns();
    *refused = 0;
    for (uint32_t i = 0; i < nkeys && !peers_stop; i++) {
        size_t len = key_of(key, "user:", 5, i);
        rld_limit h;
        int r = rld_key(c, t, key, len, &h);
        if (r == -ENOSPC) {
            (*refused)++;
            continue;
        }
        if (r < 0 || (r = rld_debit(c, h, KEY_DEBT)) < 0) {
            fprintf(stderr, "bench_peers: key %u: %s\n", i, rld_strerror(r));
            rld_close(c);
            return -1;
        }
    }
    *secs = (double)(peers_clock_ns() - t0) / 1e9;
    rld_limit_info info;
    *live = rld_info(c, (rld_limit){ t.slot, t.gen }, &info) == 0 ? info.keys : 0;
    rld_close(c);
    return peers_stop ? -1 : 0;
}

#define LOOP(expr)                                                  \
    do {                                                            \
        for (int i_ = 0; i_ < 256; i_++) {                          \
            int r_ = (expr);                                        \
            den += r_ == -EAGAIN;                                   \
            ref += r_ == -ENOSPC;                                   \
            if (r_ != 0 && r_ != -EAGAIN && r_ != -ENOSPC && !err++) \
                ks->first_error = r_;                               \
        }                                                           \
        n += 256;                                                   \
    } while (peers_clock_ns() < end)

/*
 * The memory floor: a dependent random read over BYTES of shared memory (MAP_SHARED: shmem,
 * so 4 KiB pages when transparent huge pages for shmem are off, as for the segment's memfd).
 * One 8-byte index per 64-byte line, the lines in one random cycle (Sattolo's algorithm), so
 * every read waits for the one before and no prefetcher can guess the next: what a key
 * table's cache miss costs, TLB miss included. ns per read by the wall clock and CPU time.
 */
static void __attribute__((noreturn)) floor_child(uint64_t ms, uint64_t bytes)
{
    uint64_t nl = bytes / 64;
    uint64_t *buf = mmap(NULL, nl * 64, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (nl < 2 || buf == MAP_FAILED) {
        snprintf(ks->why, sizeof(ks->why), "cannot map %llu bytes", (unsigned long long)bytes);
        ks->failed = 1;
        _exit(2);
    }
    uint64_t seed = 0x2545f4914f6cdd1dull ^ peers_clock_ns();
    for (uint64_t i = 0; i < nl; i++)
        buf[i * 8] = i;
    for (uint64_t i = nl - 1; i > 0; i--) {        /* Sattolo: one cycle through every line */
        uint64_t j = xs(&seed) % i, t = buf[i * 8];
        buf[i * 8] = buf[j * 8];
        buf[j * 8] = t;
    }
    uint64_t p = 0, n = 0;
    for (int i = 0; i < 100000; i++)
        p = buf[p * 8];
    uint64_t c0 = cpu_ns(), t0 = peers_clock_ns(), end = t0 + ms * 1000000u, t1;
    do {
        for (int i = 0; i < 256; i++)
            p = buf[p * 8];
        n += 256;
    } while ((t1 = peers_clock_ns()) < end);
    ks->calls = n + (p == UINT64_MAX);  /* (p is used: the chase is not optimised away) */
    ks->ns = (double)(t1 - t0) / (double)n;
    ks->cpu_ns = (double)(cpu_ns() - c0) / (double)n;
    _exit(0);
}

static void __attribute__((noreturn)) child(int kind, uint64_t ms, uint32_t nkeys, uint32_t base,
                                            uint32_t ncreate)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (kind == PK_FLOOR)
        floor_child(ms, rldi_keys_table_bytes(nkeys));
    rld_client *c;
    rld_limit named;
    rld_template t;
    rld_result res;
    rldi_paths p;
    rldi_seg seg;
    rldi_table tb;
    if (rld_open(NULL, 0, &c) < 0 || rld_find(c, "bench.a", &named) < 0 ||
        rld_find_template(c, "bench.keys", &t) < 0 || rldi_paths_resolve(NULL, &p) < 0 ||
        rldi_seg_open(p.seg_path, &seg) < 0 || rldi_table_of(&seg, t.slot, t.gen, &tb) < 0) {
        snprintf(ks->why, sizeof(ks->why), "cannot open the instance or find bench.keys");
        ks->failed = 1;
        _exit(2);
    }
    char key[16];
    size_t len;
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ peers_clock_ns(), n = 0, den = 0, err = 0, ref = 0;
    /* warm up: the library, the clock, the paths of this kind */
    for (int i = 0; i < 1000; i++) {
        rld_try(c, named, 1, &res);
        len = key_of(key, "user:", 5, (uint32_t)(xs(&seed) % nkeys));
        rld_try_key(c, t, key, len, 1, &res);
    }
    uint64_t ev0 = __atomic_load_n(&tb.rec->evictions, __ATOMIC_RELAXED);
    uint64_t c0 = cpu_ns(), t0 = peers_clock_ns(), end = t0 + ms * 1000000u, t1;
    switch (kind) {
    case PK_REF:
        LOOP(rld_try(c, named, 1, &res));
        t1 = peers_clock_ns();
        break;
    case PK_HOT:
        len = key_of(key, "user:", 5, 0);
        LOOP(rld_try_key(c, t, key, len, 1, &res));
        t1 = peers_clock_ns();
        break;
    case PK_RANDOM:
        LOOP((len = key_of(key, "user:", 5, (uint32_t)(xs(&seed) % nkeys)),
              rld_try_key(c, t, key, len, 1, &res)));
        t1 = peers_clock_ns();
        break;
    case PK_CREATE:
    case PK_CREATE_FULL:
        if (kind == PK_CREATE_FULL) {
            /* fill every free place with idle keys first (made, nothing taken), so that each
             * new key below has to reclaim one */
            uint32_t places = tb.nbuckets * RLDI_KEY_BUCKET, j = 0;
            char fill[8];
            snprintf(fill, sizeof(fill), "f%02u:", ncreate ? base / ncreate % 100 : 0);
            for (int miss = 0; miss < 64;) {
                rld_limit h;
                len = key_of(key, fill, 4, j++ % 10000000);
                int r = rld_key(c, t, key, len, &h);
                if (r == -ENOSPC || __atomic_load_n(&tb.rec->live, __ATOMIC_RELAXED) >= places)
                    miss++;
            }
            ev0 = __atomic_load_n(&tb.rec->evictions, __ATOMIC_RELAXED);
        }
        const char *prefix = kind == PK_CREATE ? "new:" : "nfu:";
        c0 = cpu_ns();
        t0 = peers_clock_ns();
        for (uint32_t j = 0; j < ncreate; j++) {
            len = key_of(key, prefix, 4, base + j);
            int r = rld_try_key(c, t, key, len, 1, &res);
            den += r == -EAGAIN;
            ref += r == -ENOSPC;
            if (r != 0 && r != -EAGAIN && r != -ENOSPC && !err++)
                ks->first_error = r;
        }
        t1 = peers_clock_ns();
        n = ncreate;
        break;
    default:
        _exit(2);
    }
    ks->calls = n;
    ks->denied = den;
    ks->errors = err;
    ks->refused = ref;
    ks->ns = (double)(t1 - t0) / (double)n;
    ks->cpu_ns = (double)(cpu_ns() - c0) / (double)n;
    ks->evictions = __atomic_load_n(&tb.rec->evictions, __ATOMIC_RELAXED) - ev0;
    ks->live_after = __atomic_load_n(&tb.rec->live, __ATOMIC_RELAXED);
    rldi_seg_close(&seg);
    rld_close(c);
    _exit(0);
}

double pk_run(int kind, uint64_t ms, uint32_t nkeys, uint32_t base, uint32_t ncreate,
              pk_stats *st, double *cpu)
{
    if (!ks) {
        ks = mmap(NULL, sizeof(*ks), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (ks == MAP_FAILED) {
            ks = NULL;
            return NAN;
        }
    }
    memset(ks, 0, sizeof(*ks));
    pid_t pid = fork();
    if (pid < 0)
        return NAN;
    if (pid == 0)
        child(kind, ms, nkeys, base, ncreate);
    int status;
    waitpid(pid, &status, 0);       /* not wait(): the daemon is our child too */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || ks->failed) {
        fprintf(stderr, "bench_peers: keyed row %s failed%s%s\n", pk_name(kind),
                ks->why[0] ? ": " : "", ks->why);
        return NAN;
    }
    st->calls += ks->calls;
    st->denied += ks->denied;
    st->errors += ks->errors;
    st->refused += ks->refused;
    st->evictions += ks->evictions;
    st->live_after = ks->live_after;
    if (!st->first_error)
        st->first_error = ks->first_error;
    *cpu = ks->cpu_ns;
    return ks->ns;
}
