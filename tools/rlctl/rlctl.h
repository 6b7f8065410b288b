/*
 * rlctl.h - what rlctl's source files share: the command table entry (one per command, in
 * its own cmd_*.c file; help text and dispatch both come from the table in main.c), the
 * run context, the documented exit codes, and helpers for the segment, the daemon's socket
 * and output (aligned tables and JSON).
 */
#ifndef RLD_TOOLS_RLCTL_H
#define RLD_TOOLS_RLCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "instance.h"
#include "keys.h"
#include "limitstat.h"
#include "rld.h"
#include "segment.h"
#include "wire.h"

/* Exit codes: part of rlctl's interface (scripts test them), documented in the help text. */
#define RLCTL_EXIT_OK          0
#define RLCTL_EXIT_DENIED      1   /* denied, timed out, or refused by the daemon (exists, full) */
#define RLCTL_EXIT_USAGE       2   /* bad command line: nothing was done */
#define RLCTL_EXIT_UNREACHABLE 3   /* no instance, daemon not answering, unusable segment */
#define RLCTL_EXIT_PERM        4   /* permission refused (-EPERM, -EACCES) */
#define RLCTL_EXIT_NOTFOUND    5   /* no such limit (-ENOENT, -ESTALE) */

#define RLCTL_MAX_OPTS         4   /* value-taking options per command */
#define RLCTL_GLOB_MAX         256 /* bytes of a GLOB (names have 64) */
#define RLCTL_CONNECT_MS       2000
#define RLCTL_CALL_MS          10000

/* A command's option: always "--NAME VALUE" or "--NAME=VALUE". */
typedef struct rlctl_opt {
    const char *name;     /* "timeout" */
    const char *arg;      /* "DUR": for the usage line */
    const char *help;     /* one line */
} rlctl_opt;

struct rlctl_ctx;

typedef struct rlctl_cmd {
    const char *name;
    const char *args;          /* positional arguments for the usage line, "" if none */
    const char *summary;       /* one line, for `rlctl help` */
    const char *help;          /* more text for `rlctl help NAME`, or NULL */
    int min_args, max_args;    /* positional arguments accepted */
    bool needs_segment;        /* main opens the instance's segment into ctx->client */
    bool needs_daemon;         /* main connects to the daemon into ctx->conn */
    const rlctl_opt *opts;     /* {NULL}-terminated, may be NULL */
    /* Validates the arguments before anything is opened, so that a usage error exits 2
     * even with no instance or daemon; NULL if there is nothing to check. */
    int (*check)(struct rlctl_ctx *ctx);
    int (*exec)(struct rlctl_ctx *ctx);   /* returns an RLCTL_EXIT_* code */
} rlctl_cmd;

typedef struct rlctl_ctx {
    const char *instance;       /* --instance, or NULL: $RLD_INSTANCE, else "default" */
    rldi_paths paths;
    int paths_err;              /* rldi_paths_find's result (-ENOENT: no runtime dir) */
    bool json;
    const rlctl_cmd *cmd;
    int argc;                   /* positional arguments after the command name */
    char **argv;
    const char *optv[RLCTL_MAX_OPTS];   /* value of cmd->opts[i], NULL when not given */
    const char *const *globs;   /* rlctl_snapshot keeps the limits matching one of these */
    int nglobs;                 /* (0: every limit); list and watch: GLOB..., metrics --match */
    rld_client *client;         /* when cmd->needs_segment (or rlctl_open_segment) */
    rldi_conn conn;             /* when cmd->needs_daemon (or rlctl_connect); fd -1 if not */
    rldi_seg seg;               /* rlctl's own mapping (rlctl_open_raw): key tables */
} rlctl_ctx;

/* The table (main.c) and the entries, one per command (cmd_*.c). */
extern const rlctl_cmd *const rlctl_commands[];
extern const rlctl_cmd rlctl_cmd_list, rlctl_cmd_status, rlctl_cmd_try, rlctl_cmd_wait,
    rlctl_cmd_create, rlctl_cmd_set, rlctl_cmd_revert, rlctl_cmd_delete, rlctl_cmd_reset,
    rlctl_cmd_reload, rlctl_cmd_stats, rlctl_cmd_watch, rlctl_cmd_metrics, rlctl_cmd_keys,
    rlctl_cmd_help;
/* cmd_upstream.c (issue 15): breakers, penalize, sync; and its parts of status and metrics */
extern const rlctl_cmd rlctl_cmd_breaker, rlctl_cmd_penalize, rlctl_cmd_sync;


const rlctl_cmd *rlctl_command_find(const char *name);
void rlctl_print_usage(FILE *f, const rlctl_cmd *cmd);     /* main.c */
void rlctl_print_help(FILE *f, const rlctl_cmd *cmd);      /* NULL: every command */

/* --- errors (util.c) ---------------------------------------------------------------- */

/* "rlctl: MESSAGE\n" on stderr; returns CODE. */
/* While BUF is set, rlctl_fail writes its message into BUF (LEN bytes) instead: watch
 * shows errors on its screen, where stderr would garble it. NULL: back to stderr. */
void rlctl_capture_errors(char *buf, size_t len);
int rlctl_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A usage error for CTX's command: message, then its usage line; returns RLCTL_EXIT_USAGE. */
int rlctl_usage_error(const rlctl_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The exit code for an rld or protocol code (0 / -errno / RLD_E*). */
int rlctl_exit_for(int code);
/* "rld --instance NAME --config /etc/rld/rld.conf": what starts the instance. */
const char *rlctl_start_hint(const rlctl_ctx *ctx);

/* --- the instance (util.c) ---------------------------------------------------------- */

/* Open the segment into ctx->client; prints what to do and returns an exit code on failure. */
int rlctl_open_segment(rlctl_ctx *ctx);
/* Connect and Hello into ctx->conn within TIMEOUT_MS. QUIET: print nothing on failure
 * (for optional daemon information). Returns 0 or an exit code. */
int rlctl_connect(rlctl_ctx *ctx, int timeout_ms, bool quiet);
/* A limit name as rld.conf accepts it, else a usage error (2). */
int rlctl_check_name(const rlctl_ctx *ctx, const char *name);
/* Find NAME (checked first: exit 2 for a malformed one, 5 for an absent one). */
int rlctl_find(rlctl_ctx *ctx, const char *name, rld_limit *out);
/* Send REQ, wait for its reply; on a transport error prints it and returns an exit code.
 * On success *out holds the reply (any code): free with rld__v1__reply__free_unpacked. */
int rlctl_call(rlctl_ctx *ctx, Rld__V1__Request *req, int timeout_ms, Rld__V1__Reply **out);
/* Print a daemon's refusal (REP->code != 0) for WHAT with a hint; returns the exit code. */
int rlctl_reply_error(const rlctl_ctx *ctx, const char *what, const Rld__V1__Reply *rep);

/* One limit as the segment shows it now, read as the daemon reads it (limitstat.h). */
typedef struct rlctl_limit {
    rld_limit       handle;
    rld_limit_info  info;       /* configuration, counters, waiters: as rld_info says */
    rldi_limit_stat st;         /* the same, and the state now: remaining, retry_after_ns
                                   (until a call of cost 1 fits), debt_ns, reset_after_ns */
    bool            unlimited;
    char            rate[48];   /* human form, rldi_format_rate */
} rlctl_limit;

/* What the segment's header says about the instance. */
typedef struct rlctl_seg_info {
    uint32_t slot_count;        /* capacity: [rld] max_limits */
    uint32_t limits;            /* live limits, whether or not ctx->globs selects them */
    uint32_t daemon_pid;        /* the daemon attached now, 0 if none */
    uint64_t heartbeat_ns;      /* CLOCK_MONOTONIC of the daemon's last heartbeat */
} rlctl_seg_info;

/* Whether NAME matches one of ctx->globs (fnmatch(3) without flags: '*' also matches '.',
 * '/' and ':'), or there are none. */
bool rlctl_selected(const rlctl_ctx *ctx, const char *name);
/* Select with GLOBS (N of them, each checked: a usage error for a bad one, exit 2). */
int rlctl_select(rlctl_ctx *ctx, const char *const *globs, int n);
/* Every live limit that ctx->globs selects, sorted by name, and the header (INFO may be
 * NULL). *out is malloc'd (free it). 0 or an exit code (the reason printed). */
int rlctl_snapshot(rlctl_ctx *ctx, rlctl_limit **out, size_t *n, rlctl_seg_info *info);
/* One limit by handle; -errno as rld_info. */
int rlctl_limit_read(rld_client *c, rld_limit h, rlctl_limit *out);
/* Tokens per second of a limit (0 when unlimited: callers check ->unlimited). */
double rlctl_rate_per_s(const rld_limit_info *info);

/* Parse a command-line value; print a usage error naming WHAT and return 2 when bad. */
int rlctl_arg_u64(const rlctl_ctx *ctx, const char *what, const char *s, uint64_t *out);
int rlctl_arg_duration(const rlctl_ctx *ctx, const char *what, const char *s, uint64_t *ns);

/* --- templates and keys (tmpl.c) ---------------------------------------------------- */

/* One template as the segment shows it now. */
typedef struct rlctl_tmpl {
    rld_limit      handle;      /* its slot and gen */
    rld_limit_info info;        /* name, each key's rate, burst and algorithm, max_keys;
                                 * admitted and denied: all its keys together */
    bool           unlimited;
    char           rate[48];    /* human form, rldi_format_rate */
    uint64_t       places;      /* entries of its table (max_keys and 1/7 more, rounded) */
    uint64_t       keys;        /* live now (a relaxed count: approximate while they change) */
    uint64_t       evictions;   /* idle keys reclaimed */
    uint64_t       overflows;   /* new keys refused, or let through, the table being full */
    bool           overflow_allow;
    bool           caller_rate; /* rate = caller: each key's rate from the client (rate "caller") */
} rlctl_tmpl;

/* One key's bucket now. A key not in the table is full (a new key would be). */
typedef struct rlctl_keystate {
    bool     exists;            /* in the table */
    bool     unlimited;
    uint64_t burst, remaining, retry_after_ns, reset_after_ns;
    uint32_t waiters;
    uint32_t index;             /* its entry, when it exists */
    uint64_t rate_count, rate_period_ns;  /* a rate = caller key's own rate (0 when not) */
} rlctl_keystate;

/* Map the segment into ctx->seg (after librld's, whose errors say what to do); 0 or an exit
 * code (the reason printed). */
int rlctl_open_raw(rlctl_ctx *ctx);
/* The key table of template SLOT (GEN) of S, its bounds checked against the mapping: 0,
 * -ESTALE, -EINVAL (not a template), RLD_ECORRUPT. */
int rlctl_key_table(const rldi_seg *s, uint32_t slot, uint32_t gen, rldi_table *t);
/* Template H (librld handle) into *OUT, its checked table into *T (may be NULL): -errno. */
int rlctl_template_read(rlctl_ctx *ctx, rld_limit h, rlctl_tmpl *out, rldi_table *t);
/* Every live template ctx->globs selects, sorted by name (*out malloc'd; *total: all live
 * templates, selected or not; may be NULL). 0 or an exit code (the reason printed). */
int rlctl_templates(rlctl_ctx *ctx, rlctl_tmpl **out, size_t *n, uint32_t *total);
/* Template NAME (checked: 2 malformed or a limit, 5 absent): 0 or an exit code (printed). */
int rlctl_find_template(rlctl_ctx *ctx, const char *name, rlctl_tmpl *out, rldi_table *t);
/* The state of KEY (LEN bytes) in template TP's table T: 0, or -errno. */
int rlctl_key_state(rlctl_ctx *ctx, const rlctl_tmpl *tp, const rldi_table *t,
                    const uint8_t *key, size_t len, rlctl_keystate *out);
/* The rate = caller key rate of entry E of T into *COUNT, *PERIOD_NS: true, or false when T is
 * not rate = caller or the word holds none. */
bool rlctl_entry_rate(const rldi_table *t, const rldi_key_entry *e, uint64_t *count,
                      uint64_t *period_ns);
/* rldi_bucket_peek of entry IDX (gen GEN) of the checked table T. */
int rlctl_entry_peek(const rldi_seg *s, const rldi_table *t, uint32_t idx, uint32_t gen,
                     rldi_u128 now, rldi_verdict *out);
/* A key's argument: TEXT (its bytes) or HEX (--key-hex, "0x" optional), 1..256 bytes into
 * KEY (RLDI_KEY_MAX bytes); a usage error (2) otherwise. */
int rlctl_arg_key(const rlctl_ctx *ctx, const char *text, const char *hex, uint8_t *key,
                  size_t *len);
/* Are the N bytes at K shown as they are (graphic ASCII, not starting with "0x")? */
bool rlctl_key_printable(const uint8_t *k, size_t n);
/* N bytes as 2N hex digits and a NUL into OUT. */
void rlctl_hex(const uint8_t *k, size_t n, char *out);
/* A key as rlctl shows it: its bytes when printable, else 0x and hex; when only the first
 * N of LEN bytes are known, followed by "... (LEN bytes)". */
void rlctl_key_text(const uint8_t *k, size_t n, size_t len, char *out, size_t outlen);
#define RLCTL_KEY_TEXT (2 * RLDI_KEY_MAX + 32)

/* --- output (output.c) -------------------------------------------------------------- */

/* Human duration ("1.5s"), in a static rotating buffer: up to 4 live at once. */
const char *rlctl_dur(uint64_t ns);

/* Aligned text tables: add cells row by row, then print; numbers right-aligned. */
#define RLCTL_TABLE_COLS 10
typedef struct rlctl_table {
    size_t ncols, nrows, cap;
    const char *head[RLCTL_TABLE_COLS];
    bool right[RLCTL_TABLE_COLS];
    char **cells;               /* nrows * ncols, malloc'd strings */
} rlctl_table;

void rlctl_table_init(rlctl_table *t, size_t ncols, const char *const *head, const bool *right);
void rlctl_table_row(rlctl_table *t, ...);   /* ncols const char * values */
/* Print at most MAX_ROWS data rows (0: all), each cut to WIDTH columns (0: no cut),
 * every line ending with EOL ("\n", or "\033[K\n" to clear a refreshed screen's rest). */
void rlctl_table_print(const rlctl_table *t, FILE *f, size_t max_rows, size_t width,
                       const char *eol);
void rlctl_table_free(rlctl_table *t);

/*
 * JSON, written as it goes: one compact document per line. The writer tracks commas;
 * KEY is NULL inside arrays and at the top. Strings are escaped per RFC 8259 and
 * invalid UTF-8 is replaced by U+FFFD, so the output is always valid JSON.
 */
#define RLCTL_JSON_DEPTH 8
typedef struct rlctl_json {
    FILE *f;
    int depth;
    bool first[RLCTL_JSON_DEPTH];
} rlctl_json;

void rlctl_json_init(rlctl_json *j, FILE *f);
void rlctl_json_obj(rlctl_json *j, const char *key);
void rlctl_json_arr(rlctl_json *j, const char *key);
void rlctl_json_end(rlctl_json *j, char close);      /* '}' or ']'; at depth 0 adds '\n' */
void rlctl_json_str(rlctl_json *j, const char *key, const char *v);   /* NULL: null */
void rlctl_json_u64(rlctl_json *j, const char *key, uint64_t v);
void rlctl_json_i64(rlctl_json *j, const char *key, int64_t v);
void rlctl_json_num(rlctl_json *j, const char *key, double v);        /* non-finite: null */
void rlctl_json_bool(rlctl_json *j, const char *key, bool v);
void rlctl_json_null(rlctl_json *j, const char *key);
/* The fields of one limit as list, status, watch and try report them (see README). */
void rlctl_json_limit_fields(rlctl_json *j, const rlctl_limit *l);
/* The fields of one template (list, status, stats; tmpl.c, README). */
void rlctl_json_template_fields(rlctl_json *j, const rlctl_tmpl *t);
/* The key fields: key (text or null), key_hex, length, truncated (tmpl.c, README). */
void rlctl_json_key_fields(rlctl_json *j, const uint8_t *k, size_t n, size_t len);

/* cmd_upstream.c: a limit's mode, shadow count and leases (LS: the daemon's status, or
 * NULL) in status's text (J NULL) or JSON. */
void rlctl_upstream_status(const rlctl_limit *l, const Rld__V1__LimitStatus *ls, rlctl_json *j);
/* A concurrency limit's leases held and reclaimed, from the daemon (rldi_metrics_leases_fn,
 * ARG the rlctl_ctx): 0, or < 0. */
int rlctl_lease_figures(void *arg, uint32_t slot, uint32_t gen, uint64_t *held,
                        uint64_t *reclaimed);

#endif
