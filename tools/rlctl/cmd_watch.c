/*
 * cmd_watch.c - `rlctl watch [--interval DUR] [--count N]`: a live table of the limits,
 * refreshed in place like top: admits/s and denies/s (counter deltas between refreshes),
 * tokens remaining and waiters per limit.
 *
 * On a terminal it draws on the alternate screen with the cursor hidden and keys read
 * unbuffered (q quits, any other key refreshes now), and restores all of that on every
 * way out: q, --count reached, Ctrl-C, SIGTERM, SIGHUP (then dies of that signal, as
 * callers expect), and around Ctrl-Z. Plain ANSI/xterm escapes, no curses. When stdout is
 * not a terminal it prints successive plain tables; with --json one document per refresh.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "layout.h"
#include "rlctl.h"

#define ALT_ON  "\033[?1049h\033[?25l\033[H\033[2J"   /* alternate screen, hide cursor, clear */
#define ALT_OFF "\033[?25h\033[?1049l"                 /* show cursor, main screen back */

static volatile sig_atomic_t got_quit, got_winch, got_tstp, got_cont;

static void on_signal(int sig)
{
    if (sig == SIGWINCH)
        got_winch = 1;
    else if (sig == SIGTSTP)
        got_tstp = 1;
    else if (sig == SIGCONT)
        got_cont = 1;
    else
        got_quit = sig;
}

typedef struct term {
    bool screen;                /* drawing in place on a terminal */
    bool keys;                  /* stdin is that terminal: raw keys */
    bool raw;                   /* our termios is in force */
    struct termios saved;
} term;

/* Also used again after SIGCONT (the shell may have reset the modes meanwhile): the
 * settings to restore are saved only once. */
static void term_enter(term *t)
{
    if (t->keys && (t->raw || tcgetattr(STDIN_FILENO, &t->saved) == 0)) {
        struct termios raw = t->saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);   /* keep ISIG: Ctrl-C stays a signal */
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        t->raw = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0 || t->raw;
    }
    fputs(ALT_ON, stdout);
    fflush(stdout);
}

static void term_leave(term *t)
{
    fputs(ALT_OFF, stdout);
    fflush(stdout);
    if (t->raw)
        tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
    t->raw = false;
}

/* The counters of the previous refresh, to turn totals into rates. */
typedef struct prev {
    char     name[RLDI_NAME_MAX + 1];
    rld_limit handle;
    uint64_t admitted, denied;
} prev;

typedef struct watch {
    term     t;
    uint64_t interval_ns, count;
    prev    *prev;
    size_t   nprev;
    uint64_t prev_ns, start_ns;
    unsigned refresh;
} watch;

static const prev *prev_find(const watch *w, const rlctl_limit *l)
{
    for (size_t i = 0; i < w->nprev; i++)
        if (w->prev[i].handle.slot == l->handle.slot && w->prev[i].handle.gen == l->handle.gen &&
            strcmp(w->prev[i].name, l->info.name) == 0)
            return &w->prev[i];
    return NULL;
}

/* Per-second rate of a counter since the last refresh; NAN when there is no baseline
 * (first refresh, new limit, counter went back: limit recreated). */
static double per_s(uint64_t now, uint64_t before, bool have, uint64_t dt_ns)
{
    if (!have || now < before || dt_ns == 0)
        return __builtin_nan("");
    return (double)(now - before) * 1e9 / (double)dt_ns;
}

static const char *rate_cell(char *buf, size_t len, double v)
{
    if (v != v)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, v < 100 ? "%.1f" : "%.0f", v);
    return buf;
}

/*
 * watch --json, one line per refresh: {"refresh" (1, 2, ...), "elapsed_ns", "instance",
 * "daemon_pid" (0: none attached), "error" (null, or why the instance cannot be read),
 * "limits": [LIMIT + "admits_per_s", "denies_per_s" (null on the first refresh)]}.
 */
static void draw(watch *w, rlctl_ctx *ctx, const rlctl_limit *v, size_t n,
                 const rlctl_seg_info *si, const char *error, uint64_t now)
{
    uint64_t dt = now - w->prev_ns;
    double *ad = calloc(n ? n : 1, 2 * sizeof(double));
    if (!ad)
        return;
    for (size_t i = 0; i < n; i++) {
        const prev *p = prev_find(w, &v[i]);
        ad[2 * i] = per_s(v[i].info.admitted, p ? p->admitted : 0, p != NULL, dt);
        ad[2 * i + 1] = per_s(v[i].info.denied, p ? p->denied : 0, p != NULL, dt);
    }
    if (ctx->json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_obj(&j, NULL);
        rlctl_json_u64(&j, "refresh", w->refresh);
        rlctl_json_u64(&j, "elapsed_ns", now - w->start_ns);
        rlctl_json_str(&j, "instance", ctx->paths.instance);
        rlctl_json_u64(&j, "daemon_pid", si->daemon_pid);
        rlctl_json_str(&j, "error", error);
        rlctl_json_arr(&j, "limits");
        for (size_t i = 0; i < n; i++) {
            rlctl_json_obj(&j, NULL);
            rlctl_json_limit_fields(&j, &v[i]);
            rlctl_json_num(&j, "admits_per_s", ad[2 * i]);
            rlctl_json_num(&j, "denies_per_s", ad[2 * i + 1]);
            rlctl_json_end(&j, '}');
        }
        rlctl_json_end(&j, ']');
        rlctl_json_end(&j, '}');
        fflush(stdout);
        free(ad);
        return;
    }
    struct winsize ws = { 0 };
    size_t rows = 0, cols = 0;
    if (w->t.screen && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) {
        rows = ws.ws_row;
        cols = ws.ws_col;
    }
    const char *eol = w->t.screen ? "\033[K\n" : "\n";
    char clock[16], daemon[64], hdr[512];
    time_t wall = time(NULL);
    struct tm tm;
    strftime(clock, sizeof(clock), "%H:%M:%S", localtime_r(&wall, &tm));
    if (si->daemon_pid)
        snprintf(daemon, sizeof(daemon), "daemon pid %u", si->daemon_pid);
    else
        snprintf(daemon, sizeof(daemon), "no daemon attached");
    if (error)
        snprintf(hdr, sizeof(hdr), "rld %s: %s (retrying every %s), %s", ctx->paths.instance,
                 error, rlctl_dur(w->interval_ns), clock);
    else
        snprintf(hdr, sizeof(hdr), "rld %s: %s, %zu limits, every %s, %s%s",
                 ctx->paths.instance, daemon, n, rlctl_dur(w->interval_ns), clock,
                 w->t.keys ? "  (q: quit)" : "");
    if (cols && cols < sizeof(hdr))
        hdr[cols] = '\0';
    if (w->t.screen)
        fputs("\033[H", stdout);
    fprintf(stdout, "%s%s%s", hdr, eol, eol);
    static const char *const head[] = { "NAME", "RATE", "REMAINING", "WAITERS", "ADMITS/S",
                                        "DENIES/S", "ADMITTED", "DENIED" };
    static const bool right[] = { false, false, true, true, true, true, true, true };
    rlctl_table t;
    rlctl_table_init(&t, 8, head, right);
    for (size_t i = 0; i < n; i++) {
        char rem[24], wt[24], a[24], d[24], at[24], dt_[24];
        snprintf(rem, sizeof(rem), "%llu", (unsigned long long)v[i].st.remaining);
        snprintf(wt, sizeof(wt), "%u", v[i].info.waiters);
        snprintf(at, sizeof(at), "%llu", (unsigned long long)v[i].info.admitted);
        snprintf(dt_, sizeof(dt_), "%llu", (unsigned long long)v[i].info.denied);
        rlctl_table_row(&t, v[i].info.name, v[i].rate, v[i].unlimited ? "-" : rem, wt,
                        rate_cell(a, sizeof(a), ad[2 * i]), rate_cell(d, sizeof(d), ad[2 * i + 1]),
                        at, dt_);
    }
    /* Room: the header, a blank line, the column names, "... N more"; never the last row,
     * whose newline would scroll the screen. */
    size_t max_rows = rows > 5 ? rows - 5 : rows ? 1 : 0;
    rlctl_table_print(&t, stdout, max_rows, cols, eol);
    rlctl_table_free(&t);
    fputs(w->t.screen ? "\033[J" : "\n", stdout);
    fflush(stdout);
    free(ad);
}

/* Remember this refresh's counters. */
static void remember(watch *w, const rlctl_limit *v, size_t n, uint64_t now)
{
    prev *p = realloc(w->prev, (n ? n : 1) * sizeof(*p));
    if (!p)
        return;
    for (size_t i = 0; i < n; i++) {
        memcpy(p[i].name, v[i].info.name, sizeof(p[i].name));
        p[i].handle = v[i].handle;
        p[i].admitted = v[i].info.admitted;
        p[i].denied = v[i].info.denied;
    }
    w->prev = p;
    w->nprev = n;
    w->prev_ns = now;
}

/* One refresh. The segment is opened anew each time, so a daemon restarted with --fresh
 * (a new segment) is followed. The first read must succeed (else its exit code is
 * returned, the reason printed on the normal screen); later failures are shown in the
 * table's header and retried. The screen is entered only once there is a table for it. */
static int refresh(watch *w, rlctl_ctx *ctx)
{
    char error[256];
    rld_close(ctx->client);
    ctx->client = NULL;
    if (w->refresh > 0)
        rlctl_capture_errors(error, sizeof(error));
    rlctl_limit *v = NULL;
    size_t n = 0;
    rlctl_seg_info si = { 0 };
    int r = rlctl_snapshot(ctx, &v, &n, &si);
    rlctl_capture_errors(NULL, 0);
    if (r != 0 && w->refresh == 0)
        return r;
    if (w->refresh == 0 && w->t.screen)
        term_enter(&w->t);
    w->refresh++;
    uint64_t now = rldi_mono_ns();
    draw(w, ctx, v, n, &si, r != 0 ? error : NULL, now);
    if (r == 0)
        remember(w, v, n, now);
    free(v);
    return 0;
}

/* Wait until the next refresh is due, a key, or a signal. Signals are blocked outside
 * ppoll, so none slips between the flag checks and the sleep. Returns false to stop. */
static bool pause_until(watch *w, uint64_t due, const sigset_t *orig_mask)
{
    for (;;) {
        if (got_quit)
            return false;
        if (got_tstp) {
            got_tstp = 0;
            if (w->t.screen)
                term_leave(&w->t);
            sigset_t s;
            sigemptyset(&s);
            sigaddset(&s, SIGTSTP);
            signal(SIGTSTP, SIG_DFL);
            sigprocmask(SIG_UNBLOCK, &s, NULL);
            raise(SIGTSTP);                      /* stopped here until SIGCONT */
            sigprocmask(SIG_BLOCK, &s, NULL);
            struct sigaction sa = { .sa_handler = on_signal };
            sigaction(SIGTSTP, &sa, NULL);
            got_cont = 1;
        }
        if (got_cont) {
            got_cont = 0;
            if (w->t.screen)
                term_enter(&w->t);
            return true;
        }
        if (got_winch) {
            got_winch = 0;
            if (w->t.screen)
                return true;                     /* redraw at the new size */
        }
        uint64_t now = rldi_mono_ns();
        if (now >= due)
            return true;
        struct timespec ts = { (time_t)((due - now) / 1000000000u),
                               (long)((due - now) % 1000000000u) };
        struct pollfd p = { STDIN_FILENO, POLLIN, 0 };
        int r = ppoll(&p, w->t.keys ? 1 : 0, &ts, orig_mask);
        if (r > 0 && (p.revents & POLLIN)) {
            char c[16];
            ssize_t k = read(STDIN_FILENO, c, sizeof(c));
            if (k <= 0)
                w->t.keys = false;               /* end of input: stop reading keys */
            else if (memchr(c, 'q', (size_t)k) || memchr(c, 'Q', (size_t)k))
                return false;
            else
                return true;                     /* any other key: refresh now */
        } else if (r > 0) {
            w->t.keys = false;                   /* hang-up or error on stdin */
        }
    }
}

static int cmd_watch(rlctl_ctx *ctx)
{
    watch w;
    memset(&w, 0, sizeof(w));
    w.interval_ns = 1000000000u;
    int r;
    if (ctx->optv[0] && (r = rlctl_arg_duration(ctx, "interval", ctx->optv[0], &w.interval_ns)))
        return r;
    if (w.interval_ns < 10000000u)
        return rlctl_usage_error(ctx, "interval too short: at least 10ms");
    if (ctx->optv[1] && (r = rlctl_arg_u64(ctx, "count", ctx->optv[1], &w.count)))
        return r;
    if (ctx->optv[1] && w.count == 0)
        return rlctl_usage_error(ctx, "count must be at least 1");
    w.t.screen = !ctx->json && isatty(STDOUT_FILENO);
    w.t.keys = w.t.screen && isatty(STDIN_FILENO);

    /* Handlers first, then the screen: a signal can no longer leave it dirty. */
    static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP, SIGCONT };
    struct sigaction sa = { .sa_handler = on_signal }, old[6];
    sigset_t block, orig_mask;
    sigemptyset(&block);
    for (size_t i = 0; i < 6; i++) {
        sigaction(sigs[i], &sa, &old[i]);
        /* A signal ignored at start stays ignored (e.g. SIGINT of a background job). */
        if (old[i].sa_handler == SIG_IGN && sigs[i] != SIGCONT)
            sigaction(sigs[i], &old[i], NULL);
        sigaddset(&block, sigs[i]);
    }
    sigprocmask(SIG_BLOCK, &block, &orig_mask);
    w.start_ns = w.prev_ns = rldi_mono_ns();
    if ((r = refresh(&w, ctx)) != 0)
        goto out;
    uint64_t due = rldi_mono_ns() + w.interval_ns;
    while (!w.count || w.refresh < w.count) {
        if (!pause_until(&w, due, &orig_mask))
            break;
        if (rldi_mono_ns() >= due)
            due += w.interval_ns * ((rldi_mono_ns() - due) / w.interval_ns + 1);
        refresh(&w, ctx);
    }
    if (w.t.screen)
        term_leave(&w.t);
out:
    for (size_t i = 0; i < 6; i++)
        sigaction(sigs[i], &old[i], NULL);
    free(w.prev);
    if (got_quit) {
        /* Die of the signal, as the caller (a shell loop) expects. */
        fflush(stdout);
        signal(got_quit, SIG_DFL);
        sigprocmask(SIG_SETMASK, &orig_mask, NULL);
        raise(got_quit);
    }
    sigprocmask(SIG_SETMASK, &orig_mask, NULL);
    return r;
}

static int check_watch(rlctl_ctx *ctx)
{
    return rlctl_select(ctx, (const char *const *)ctx->argv, ctx->argc);
}

static const rlctl_opt watch_opts[] = {
    { "interval", "DUR", "time between refreshes (default 1s, at least 10ms)" },
    { "count", "N", "stop after N refreshes" },
    { NULL, NULL, NULL },
};

const rlctl_cmd rlctl_cmd_watch = {
    .name = "watch", .args = "[GLOB...]",
    .summary = "Live table: admits/s, denies/s, waiters",
    .help = "Every limit, or those whose names match a GLOB (as for list).\n"
            "Keys: q quits, any other key refreshes now. On a terminal it uses the alternate\n"
            "screen and leaves the terminal as it found it (q, Ctrl-C, SIGTERM, Ctrl-Z).\n"
            "Rates are counter deltas between refreshes (clients publish counts in batches,\n"
            "so short intervals look bursty). Not a terminal: plain successive tables.\n",
    .min_args = 0, .max_args = -1, .opts = watch_opts, .check = check_watch,
    .exec = cmd_watch,
};
