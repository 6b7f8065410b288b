/*
 * output.c - rlctl's output forms: human durations, aligned text tables, and a small JSON
 * writer (no library: the documents are flat and small, and the escaping rules are few).
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "limitdef.h"
#include "rate.h"
#include "rlctl.h"

const char *rlctl_dur(uint64_t ns)
{
    static char bufs[4][32];
    static unsigned next;
    char *b = bufs[next++ % 4];
    rldi_format_duration(b, sizeof(bufs[0]), ns);
    return b;
}

/* ---- tables --------------------------------------------------------------------------- */

void rlctl_table_init(rlctl_table *t, size_t ncols, const char *const *head, const bool *right)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols < RLCTL_TABLE_COLS ? ncols : RLCTL_TABLE_COLS;
    for (size_t i = 0; i < t->ncols; i++) {
        t->head[i] = head[i];
        t->right[i] = right ? right[i] : false;
    }
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) {
        fputs("rlctl: out of memory\n", stderr);
        exit(RLCTL_EXIT_UNREACHABLE);
    }
    return d;
}

void rlctl_table_row(rlctl_table *t, ...)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **cells = realloc(t->cells, cap * t->ncols * sizeof(char *));
        if (!cells) {
            fputs("rlctl: out of memory\n", stderr);
            exit(RLCTL_EXIT_UNREACHABLE);
        }
        t->cells = cells;
        t->cap = cap;
    }
    va_list ap;
    va_start(ap, t);
    for (size_t i = 0; i < t->ncols; i++)
        t->cells[t->nrows * t->ncols + i] = xstrdup(va_arg(ap, const char *));
    va_end(ap);
    t->nrows++;
}

/* One line: cells padded to WIDTHS, two blanks apart, cut at MAXW columns (cells are ASCII). */
static void print_line(const rlctl_table *t, FILE *f, const char *const *cells,
                       const size_t *widths, size_t maxw, const char *eol)
{
    char line[1024];
    size_t n = 0;
    for (size_t i = 0; i < t->ncols && n < sizeof(line) - 1; i++) {
        size_t len = strlen(cells[i]), pad = widths[i] > len ? widths[i] - len : 0;
        bool last = i + 1 == t->ncols;
        int w = snprintf(line + n, sizeof(line) - n, "%s%*s%s%*s", i ? "  " : "",
                         t->right[i] ? (int)pad : 0, "", cells[i],
                         t->right[i] || last ? 0 : (int)pad, "");
        if (w < 0)
            break;
        n += (size_t)w < sizeof(line) - n ? (size_t)w : sizeof(line) - n - 1;
    }
    if (maxw && n > maxw)
        n = maxw;
    fprintf(f, "%.*s%s", (int)n, line, eol);
}

void rlctl_table_print(const rlctl_table *t, FILE *f, size_t max_rows, size_t width,
                       const char *eol)
{
    size_t widths[RLCTL_TABLE_COLS] = { 0 };     /* (GCC -O3 cannot tell ncols is in range) */
    for (size_t i = 0; i < t->ncols; i++)
        widths[i] = strlen(t->head[i]);
    size_t rows = max_rows && max_rows < t->nrows ? max_rows : t->nrows;
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < t->ncols; i++) {
            size_t len = strlen(t->cells[r * t->ncols + i]);
            if (len > widths[i])
                widths[i] = len;
        }
    print_line(t, f, t->head, widths, width, eol);
    for (size_t r = 0; r < rows; r++)
        print_line(t, f, (const char *const *)&t->cells[r * t->ncols], widths, width, eol);
    if (rows < t->nrows)
        fprintf(f, "... %zu more%s", t->nrows - rows, eol);
}

void rlctl_table_free(rlctl_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

/* ---- JSON ----------------------------------------------------------------------------- */

void rlctl_json_init(rlctl_json *j, FILE *f)
{
    memset(j, 0, sizeof(*j));
    j->f = f;
    j->first[0] = true;
}

/* Length of the valid UTF-8 sequence at S (1..4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, min = 0x10000;
    else
        return 0;
    unsigned cp = c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;   /* overlong, out of range, or a surrogate */
    return n;
}

static void put_string(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    while (*p) {
        size_t n = utf8_len(p);
        if (n == 0) {
            fputs("\\ufffd", f);
            p++;
            continue;
        }
        if (n > 1) {
            fwrite(p, 1, n, f);
            p += n;
            continue;
        }
        switch (*p) {
        case '"':  fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
        p++;
    }
    fputc('"', f);
}

/* Comma and key before a value. */
static void lead(rlctl_json *j, const char *key)
{
    if (!j->first[j->depth])
        fputc(',', j->f);
    j->first[j->depth] = false;
    if (key) {
        put_string(j->f, key);
        fputc(':', j->f);
    }
}

static void open_(rlctl_json *j, const char *key, char c)
{
    lead(j, key);
    fputc(c, j->f);
    if (j->depth + 1 < RLCTL_JSON_DEPTH)
        j->depth++;
    j->first[j->depth] = true;
}

void rlctl_json_obj(rlctl_json *j, const char *key) { open_(j, key, '{'); }
void rlctl_json_arr(rlctl_json *j, const char *key) { open_(j, key, '['); }

void rlctl_json_end(rlctl_json *j, char close)
{
    fputc(close, j->f);
    if (j->depth > 0)
        j->depth--;
    if (j->depth == 0) {
        fputc('\n', j->f);
        j->first[0] = true;
    }
}

void rlctl_json_str(rlctl_json *j, const char *key, const char *v)
{
    lead(j, key);
    if (v)
        put_string(j->f, v);
    else
        fputs("null", j->f);
}

void rlctl_json_u64(rlctl_json *j, const char *key, uint64_t v)
{
    lead(j, key);
    fprintf(j->f, "%llu", (unsigned long long)v);
}

void rlctl_json_i64(rlctl_json *j, const char *key, int64_t v)
{
    lead(j, key);
    fprintf(j->f, "%lld", (long long)v);
}

void rlctl_json_num(rlctl_json *j, const char *key, double v)
{
    lead(j, key);
    if (isfinite(v))
        fprintf(j->f, "%.17g", v);
    else
        fputs("null", j->f);
}

void rlctl_json_bool(rlctl_json *j, const char *key, bool v)
{
    lead(j, key);
    fputs(v ? "true" : "false", j->f);
}

void rlctl_json_null(rlctl_json *j, const char *key)
{
    lead(j, key);
    fputs("null", j->f);
}

/*
 * The fields of one limit, shared by list, status and watch (documented in rlctl(8)):
 *   name, rate (human form), rate_count, rate_period_ns (0/0 when unlimited), unlimited,
 *   origin ("file": declared in rld.conf; "runtime": created by rlctl create; "override":
 *   declared in rld.conf and set at run time, kept until the file's line changes),
 *   algorithm ("gcra", "sliding", "fixed"), align_ns (fixed windows; else 0), burst (a window's
 *   count), remaining (null when unlimited), retry_after_ns (until a call of cost 1 fits,
 *   as rlctl try says; 0 when one fits now), debt_ns (until the debt is paid back; 0 when
 *   not in debt), reset_after_ns (until full again), waiters, admitted (tokens admitted and
 *   kept), refunded, rolled_back, debited (tokens), denied (calls).
 */
/* Who set a limit's setting, as the segment records it. */
static const char *origin_name(uint32_t origin)
{
    switch (origin) {
    case RLDI_ORIGIN_FILE:     return "file";
    case RLDI_ORIGIN_RUNTIME:  return "runtime";
    case RLDI_ORIGIN_OVERRIDE: return "override";
    default:                   return "unknown";
    }
}

void rlctl_json_limit_fields(rlctl_json *j, const rlctl_limit *l)
{
    rlctl_json_str(j, "name", l->info.name);
    rlctl_json_str(j, "origin", origin_name(l->st.conf.origin));
    rlctl_json_str(j, "rate", l->rate);
    rlctl_json_u64(j, "rate_count", l->info.rate_count);
    rlctl_json_u64(j, "rate_period_ns", l->info.rate_period_ns);
    rlctl_json_bool(j, "unlimited", l->unlimited);
    rlctl_json_str(j, "algorithm", rldi_algo_name(l->info.algorithm));
    rlctl_json_u64(j, "align_ns", l->info.align_ns);
    rlctl_json_u64(j, "burst", l->info.burst);
    if (l->unlimited)
        rlctl_json_null(j, "remaining");
    else
        rlctl_json_u64(j, "remaining", l->st.remaining);
    rlctl_json_u64(j, "retry_after_ns", l->st.retry_after_ns);
    rlctl_json_u64(j, "debt_ns", l->st.debt_ns);
    rlctl_json_u64(j, "reset_after_ns", l->st.reset_after_ns);
    rlctl_json_u64(j, "waiters", l->info.waiters);
    rlctl_json_u64(j, "admitted", l->info.admitted);
    rlctl_json_u64(j, "refunded", l->info.refunded);
    rlctl_json_u64(j, "rolled_back", l->info.rolled_back);
    rlctl_json_u64(j, "debited", l->info.debited);
    rlctl_json_u64(j, "denied", l->info.denied);
}
