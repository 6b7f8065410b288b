/*
 * harness.h - what the integration and multi-process tests share: a private rld instance
 * (its own instance name, runtime directory and segment), a real daemon started on it, and
 * checks that print where they failed. Exit codes: 0 pass, 1 fail, 77 skip.
 */
#ifndef RLD_TESTS_HARNESS_H
#define RLD_TESTS_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#define T_SKIP 77

#define T_CHECK(cond, ...)                                                            \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            t_fail();                                                                \
        }                                                                            \
    } while (0)

/* Expect rld call EXPR to return EXPECTED (an int code). */
#define T_CODE(expr, expected)                                                        \
    do {                                                                             \
        int t_r_ = (expr), t_e_ = (expected);                                         \
        T_CHECK(t_r_ == t_e_, "%s returned %d (%s), expected %d (%s)", #expr, t_r_,   \
                rld_strerror(t_r_), t_e_, rld_strerror(t_e_));                        \
    } while (0)

typedef struct t_daemon {
    pid_t pid;
    char  dir[256];         /* private runtime dir, also holds config and log */
    char  instance[64];
    char  conf[320];
    char  log[320];
    long  log_mark;         /* log size when the daemon was last started */
} t_daemon;

/* Mark the test failed, run the cleanups, exit 1. */
void t_fail(void) __attribute__((noreturn));

/* A private instance: fresh name, runtime dir, RLD_INSTANCE and RLD_RUNTIME_DIR exported
 * (children inherit them). CONF_TEXT is written as its configuration. */
void t_instance(t_daemon *d, const char *tag, const char *conf_text);

/* Rewrite the configuration file. */
void t_write_conf(t_daemon *d, const char *conf_text);

/* Start rld --foreground on D's instance (stderr to D->log) and wait until the segment is
 * ready (at most 10 s). EXTRA: one more argument or NULL. Returns 0 or -1 (daemon exited). */
int t_daemon_start(t_daemon *d, const char *extra);

/* Send SIG to the daemon and reap it; returns its wait status. */
int t_daemon_stop(t_daemon *d, int sig);
/* SIGTERM, and true if it exited 0 (under RLD_VALGRIND=1: with no memcheck error). */
bool t_daemon_stop_clean(t_daemon *d);

/* A keeper of a test's own making for instance INST in D's runtime directory: it hands out
 * a memfd holding DATA (LEN bytes), sealed or not, announced with SLOTS slots, ABI and a
 * clock SKEW_NS off ours, until stopped. */
typedef struct t_fake {
    uint32_t slots;
    uint16_t abi;
    bool     sealed;
    int64_t  skew_ns;
} t_fake;
pid_t t_fake_keeper(const t_daemon *d, const char *inst, const void *data, size_t len, t_fake f);
void t_fake_keeper_stop(pid_t pid);
/* A fake keeper of D's own instance: an empty segment of 16 slots made by ABI ABI. */
pid_t t_foreign_keeper(const t_daemon *d, uint16_t abi);

/* The daemon's own counts: a Stats request on a connection of the test's (counted in them:
 * its Hello and Stats in requests, itself in connections). */
typedef struct t_stats {
    uint64_t requests;
    uint32_t connections;
    uint32_t waiters;
    uint64_t lease_calls;   /* global limits: Redis calls (leases and returns) */
    uint64_t fallback_ns;   /* global limits: time on fallback, Redis unreachable */
} t_stats;
void t_daemon_stats(const t_daemon *d, t_stats *out);

/* A private redis-server for global limits (tests and benchmarks): no persistence, its
 * files in DIR, listening on the Unix socket DIR/redis.sock (copied to SOCK) and, when
 * PORT > 0, on 127.0.0.1:PORT; AUTH with PASSWORD unless NULL. It dies with the test
 * (PR_SET_PDEATHSIG). Returns its pid once the socket is there; the test fails if it does
 * not come up in 2 s. The caller checks t_have("redis-server") first and exits T_SKIP. */
pid_t t_redis_start(const char *dir, int port, const char *password, char *sock, size_t socklen);
/* SIGKILL it, reap it, remove its socket. */
void t_redis_stop(pid_t pid, const char *sock);

/* Reap the N processes PIDS, each by its pid (never wait(): the daemon is a child too).
 * Returns how many did not exit 0, each named on stderr with WHAT, its index and how it
 * ended. */
int t_reap_all(const pid_t *pids, int n, const char *what);

/* True if PROG is found on PATH. */
bool t_have(const char *prog);
/* A TCP port on 127.0.0.1 free a moment ago (0 if none): for a server the test starts. */
int t_free_port(void);

/* Stop D's segment keeper: the segment goes with its last mapping. */
void t_keeper_stop(t_daemon *d);

/* Stop a daemon still running and its keeper, remove the runtime dir. Registered with
 * atexit by t_instance. */
void t_cleanup(void);

/* Run rld with ARGS (NULL-terminated) to completion; returns the exit code, stderr in OUT. */
int t_run_rld(char *out, size_t outlen, const char *const *args);

/* True if D's log contains NEEDLE (anywhere / since the last start). */
bool t_log_has(const t_daemon *d, const char *needle);
bool t_log_has_since_start(const t_daemon *d, const char *needle);

uint64_t t_now_ns(void);
void t_sleep_ns(uint64_t ns);
const char *t_rld_bin(void);

/* ---- shared by the integration tests of keys, windows, growth and waits ---------------- */
#include "rld.h"

/* How many lines of D's log contain NEEDLE. */
int t_log_count(const t_daemon *d, const char *needle);
/* Write CONF_TEXT as D's configuration, SIGHUP the daemon, and wait (at most 10 s, else
 * fail) until one more line of its log contains NEEDLE ("reloaded " for a reload's summary). */
void t_reload(t_daemon *d, const char *conf_text, const char *needle);
/* rld_find, failing the test unless it succeeds. */
rld_limit t_find(rld_client *c, const char *name);
/* The callers queued at the daemon on L now (rld_info's waiters). */
uint32_t t_waiters(rld_client *c, rld_limit l);
/* Wait (at most 5 s, else fail) until the daemon shows N waiters on L. */
void t_await_waiters(rld_client *c, rld_limit l, uint32_t n);

#endif
