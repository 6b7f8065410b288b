/* log.c - the daemon's stderr log (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "clock.h"

static int log_level = RLOG_INFO;
static int journal;
static int use_syslog;

void rlog_to_syslog(void)
{
    openlog("rld", LOG_PID, LOG_DAEMON);
    use_syslog = 1;
}

void rlog_init(int level)
{
    log_level = level;
    journal = getenv("JOURNAL_STREAM") != NULL;
}

int rlog_level_parse(const char *s)
{
    static const struct { const char *name; int level; } names[] = {
        { "error", RLOG_ERROR }, { "warn", RLOG_WARN }, { "warning", RLOG_WARN },
        { "info", RLOG_INFO }, { "debug", RLOG_DEBUG },
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].level;
    return -1;
}

void rlog(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (use_syslog) {
        syslog(level, "%s", line);
    } else if (journal) {
        fprintf(stderr, "<%d>%s\n", level, line);
    } else {
        const char *word = level <= RLOG_ERROR ? "error" : level == RLOG_WARN ? "warning"
                         : level == RLOG_INFO  ? "info"  : "debug";
        fprintf(stderr, "rld: %s: %s\n", word, line);
    }
}

char *rlog_escape(const char *in, size_t n, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (outlen == 0)
        return out;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)in[i];
        size_t need = (ch >= 0x20 && ch < 0x7f && ch != '\\') ? 1 : 4;
        if (o + need + 4 > outlen) {
            if (outlen >= 4) {
                memcpy(out + (o < outlen - 4 ? o : outlen - 4), "...", 4);
                return out;
            }
            break;
        }
        if (need == 1) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o < outlen ? o : outlen - 1] = '\0';
    return out;
}

void rlog_once_at(rlog_once *l, int level, const char *fmt, ...)
{
    uint64_t now = rldi_mono_ns();
    if (l->last_ns && now - l->last_ns < 60000000000ull) {
        l->suppressed++;
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (l->suppressed)
        rlog(level, "%s (and %llu more like it in the last minute)", msg,
             (unsigned long long)l->suppressed);
    else
        rlog(level, "%s", msg);
    l->suppressed = 0;
    l->last_ns = now;
}
