/*
 * log.h - the daemon's log: one line per event on stderr, which journald collects.
 * Under systemd (JOURNAL_STREAM set) lines carry a "<N>" priority prefix instead of a level word.
 */
#ifndef RLD_DAEMON_LOG_H
#define RLD_DAEMON_LOG_H

#include <stddef.h>
#include <stdint.h>

enum { RLOG_ERROR = 3, RLOG_WARN = 4, RLOG_INFO = 6, RLOG_DEBUG = 7 };

void rlog_init(int level);
/* From now on log to syslog (daemon facility): for the background mode, stdio detached. */
void rlog_to_syslog(void);
/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int rlog_level_parse(const char *s);
void rlog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copy N bytes of untrusted LEN-bounded input into OUT as printable ASCII (\xNN escapes),
 * always NUL-terminated, truncated with "..." if OUTLEN is short. Returns OUT. */
char *rlog_escape(const char *in, size_t n, char *out, size_t outlen);

/* A failure that can repeat (a flood, a misbehaving peer): logged at most once a minute,
 * with the count of the ones suppressed meanwhile (nginx's way), counted always. */
typedef struct rlog_once {
    uint64_t suppressed, last_ns;
} rlog_once;
void rlog_once_at(rlog_once *l, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_ERROR(...) rlog(RLOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...)  rlog(RLOG_WARN, __VA_ARGS__)
#define LOG_INFO(...)  rlog(RLOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) rlog(RLOG_DEBUG, __VA_ARGS__)

#endif
