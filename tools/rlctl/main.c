/*
 * main.c - rlctl, the operator's tool of rld: the command table, the command line, help.
 *
 *   rlctl [--instance NAME] [--json] COMMAND [ARGS]
 *
 * Each command is one table entry (tmux's model) defined in its cmd_*.c file: name,
 * arguments, one-line summary, argument counts, whether it needs the segment or the
 * daemon, its options, and the function. Usage lines, help and dispatch all come from
 * this table, so a new command is one entry and cannot be half-documented.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rlctl.h"

#ifndef RLCTL_VERSION
#define RLCTL_VERSION "0.0.0"
#endif

const rlctl_cmd *const rlctl_commands[] = {
    &rlctl_cmd_list, &rlctl_cmd_status, &rlctl_cmd_keys, &rlctl_cmd_try, &rlctl_cmd_wait,
    &rlctl_cmd_create, &rlctl_cmd_set, &rlctl_cmd_revert, &rlctl_cmd_delete, &rlctl_cmd_reset,
    &rlctl_cmd_reload, &rlctl_cmd_stats, &rlctl_cmd_watch, &rlctl_cmd_metrics,
    &rlctl_cmd_breaker, &rlctl_cmd_penalize, &rlctl_cmd_sync,
    &rlctl_cmd_help, NULL,
};

static const char global_usage[] = "usage: rlctl [--instance NAME] [--json] COMMAND [ARGS]\n";

static const char global_help[] =
    "\n"
    "Options (anywhere before --):\n"
    "  -i, --instance NAME   the rld instance (default $RLD_INSTANCE, else \"default\")\n"
    "  -j, --json            machine-readable output: one JSON document per line\n"
    "  -h, --help            this text; `rlctl help COMMAND` for one command\n"
    "      --version         rlctl's and librld's versions\n"
    "\n"
    "Rates and durations as in rld.conf: 90000/min, 10/s, 5/500ms, unlimited; 250ms.\n"
    "list, status, try, keys, metrics and watch read the shared-memory segment and\n"
    "work while the daemon is down; the other commands talk to rld on its socket.\n"
    "Templates (keyed limits): list and status show them, keys TEMPLATE their keys,\n"
    "status and reset TEMPLATE KEY one key, try TEMPLATE --key KEY takes from one.\n"
    "\n"
    "Exit codes: 0 ok; 1 denied, timed out or refused (exists, no room, bad file);\n"
    "2 usage error, nothing done; 3 instance or daemon unreachable;\n"
    "4 permission denied; 5 no such limit (or template).\n";

const rlctl_cmd *rlctl_command_find(const char *name)
{
    for (size_t i = 0; rlctl_commands[i]; i++)
        if (strcmp(rlctl_commands[i]->name, name) == 0)
            return rlctl_commands[i];
    return NULL;
}

/* "try NAME [COST]" plus "[--timeout DUR]..." for the options. */
static void synopsis(char *buf, size_t len, const rlctl_cmd *cmd)
{
    int n = snprintf(buf, len, "%s%s%s", cmd->name, cmd->args[0] ? " " : "", cmd->args);
    for (size_t i = 0; cmd->opts && cmd->opts[i].name && n > 0 && (size_t)n < len; i++)
        n += snprintf(buf + n, len - (size_t)n, " [--%s %s]", cmd->opts[i].name,
                      cmd->opts[i].arg);
}

void rlctl_print_usage(FILE *f, const rlctl_cmd *cmd)
{
    char syn[256];
    synopsis(syn, sizeof(syn), cmd);
    fprintf(f, "usage: rlctl [-i NAME] [-j] %s\n", syn);
}

void rlctl_print_help(FILE *f, const rlctl_cmd *cmd)
{
    if (cmd) {
        rlctl_print_usage(f, cmd);
        fprintf(f, "\n%s.\n", cmd->summary);
        if (cmd->help)
            fprintf(f, "\n%s", cmd->help);
        if (cmd->opts && cmd->opts[0].name) {
            fputs("\nOptions:\n", f);
            for (size_t i = 0; cmd->opts[i].name; i++) {
                char o[64];
                snprintf(o, sizeof(o), "--%s %s", cmd->opts[i].name, cmd->opts[i].arg);
                fprintf(f, "  %-22s %s\n", o, cmd->opts[i].help);
            }
        }
        return;
    }
    fputs(global_usage, f);
    fputs("\nCommands:\n", f);
    for (size_t i = 0; rlctl_commands[i]; i++) {
        char syn[256];
        synopsis(syn, sizeof(syn), rlctl_commands[i]);
        if (strlen(syn) > 28)
            fprintf(f, "  %s\n  %-28s %s\n", syn, "", rlctl_commands[i]->summary);
        else
            fprintf(f, "  %-28s %s\n", syn, rlctl_commands[i]->summary);
    }
    fputs(global_help, f);
}

static int cmd_help(rlctl_ctx *ctx)
{
    if (ctx->argc == 0) {
        rlctl_print_help(stdout, NULL);
        return RLCTL_EXIT_OK;
    }
    const rlctl_cmd *cmd = rlctl_command_find(ctx->argv[0]);
    if (!cmd)
        return rlctl_usage_error(ctx, "no command '%s' (rlctl help lists them)", ctx->argv[0]);
    rlctl_print_help(stdout, cmd);
    return RLCTL_EXIT_OK;
}

const rlctl_cmd rlctl_cmd_help = {
    .name = "help", .args = "[COMMAND]",
    .summary = "The commands, or one command's usage",
    .min_args = 0, .max_args = 1, .exec = cmd_help,
};

/* A global option at ARGV[*I]: consumed (1), not one (0), or an error (exit code < 0 ->
 * returned as -(code)). */
static int global_option(rlctl_ctx *ctx, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (strcmp(a, "-j") == 0 || strcmp(a, "--json") == 0) {
        ctx->json = true;
        return 1;
    }
    if (strcmp(a, "-i") == 0 || strcmp(a, "--instance") == 0) {
        if (*i + 1 >= argc)
            return -rlctl_usage_error(ctx, "%s needs an instance name", a);
        ctx->instance = argv[++*i];
        return 1;
    }
    if (strncmp(a, "--instance=", 11) == 0) {
        ctx->instance = a + 11;
        return 1;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
        rlctl_print_help(stdout, ctx->cmd);
        exit(RLCTL_EXIT_OK);
    }
    if (strcmp(a, "--version") == 0) {
        int v = rld_version();
        printf("rlctl %s (librld %d.%d.%d)\n", RLCTL_VERSION, v / 10000, v / 100 % 100, v % 100);
        exit(RLCTL_EXIT_OK);
    }
    return 0;
}

/* A command option ("--NAME VALUE" or "--NAME=VALUE") at ARGV[*I]. Same returns. */
static int command_option(rlctl_ctx *ctx, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (!ctx->cmd || !ctx->cmd->opts || strncmp(a, "--", 2) != 0)
        return 0;
    for (size_t k = 0; ctx->cmd->opts[k].name && k < RLCTL_MAX_OPTS; k++) {
        const char *name = ctx->cmd->opts[k].name;
        size_t len = strlen(name);
        if (strncmp(a + 2, name, len) != 0)
            continue;
        if (a[2 + len] == '=') {
            ctx->optv[k] = a + 3 + len;
            return 1;
        }
        if (a[2 + len] != '\0')
            continue;
        if (*i + 1 >= argc)
            return -rlctl_usage_error(ctx, "--%s needs a value (%s)", name,
                                      ctx->cmd->opts[k].arg);
        ctx->optv[k] = argv[++*i];
        return 1;
    }
    return 0;
}

static int parse(rlctl_ctx *ctx, int argc, char **argv)
{
    int i = 1, r;
    bool dashdash = false;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        if (strcmp(argv[i], "--") == 0) {
            dashdash = true;
            i++;
            break;
        }
        if ((r = global_option(ctx, argc, argv, &i)) < 0)
            return -r;
        if (r == 0)
            return rlctl_usage_error(ctx, "unknown option '%s' (rlctl help lists them)", argv[i]);
    }
    if (i >= argc) {
        fputs(global_usage, stderr);
        fputs("`rlctl help` lists the commands.\n", stderr);
        return RLCTL_EXIT_USAGE;
    }
    if (!(ctx->cmd = rlctl_command_find(argv[i])))
        return rlctl_usage_error(ctx, "unknown command '%s' (rlctl help lists them)", argv[i]);
    /* Positional arguments are gathered in place, in order. */
    ctx->argv = &argv[i + 1];
    ctx->argc = 0;
    for (i++; i < argc; i++) {
        if (!dashdash && strcmp(argv[i], "--") == 0) {
            dashdash = true;
            continue;
        }
        if (!dashdash && argv[i][0] == '-' && argv[i][1]) {
            if ((r = command_option(ctx, argc, argv, &i)) < 0 ||
                (r == 0 && (r = global_option(ctx, argc, argv, &i)) < 0))
                return -r;
            if (r == 0)
                return rlctl_usage_error(ctx, "unknown option '%s'", argv[i]);
            continue;
        }
        ctx->argv[ctx->argc++] = argv[i];
    }
    if (ctx->argc < ctx->cmd->min_args)
        return rlctl_usage_error(ctx, "missing argument%s",
                                 ctx->cmd->min_args - ctx->argc > 1 ? "s" : "");
    if (ctx->cmd->max_args >= 0 && ctx->argc > ctx->cmd->max_args)
        return rlctl_usage_error(ctx, "too many arguments ('%s')",
                                 ctx->argv[ctx->cmd->max_args]);
    return 0;
}

int main(int argc, char **argv)
{
    rlctl_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.conn.fd = -1;
    int r = parse(&ctx, argc, argv);
    if (r != 0)
        return r;
    ctx.paths_err = rldi_paths_find(ctx.instance, &ctx.paths);
    if (ctx.paths_err == -EINVAL)
        return rlctl_usage_error(&ctx, "bad instance name '%s' (1-64 bytes of A-Z a-z 0-9 . _ -, "
                                 "not starting with '.')", ctx.instance ? ctx.instance : "");
    if (ctx.paths_err == -ENAMETOOLONG)
        return rlctl_fail(RLCTL_EXIT_USAGE, "the runtime directory's path is too long for a "
                          "socket: shorten RLD_RUNTIME_DIR");
    if (ctx.cmd->check && (r = ctx.cmd->check(&ctx)) != 0)
        return r;
    if (ctx.cmd->needs_segment && (r = rlctl_open_segment(&ctx)) != 0)
        return r;
    if (ctx.cmd->needs_daemon && (r = rlctl_connect(&ctx, RLCTL_CONNECT_MS, false)) != 0) {
        rld_close(ctx.client);
        return r;
    }
    r = ctx.cmd->exec(&ctx);
    rldi_conn_close(&ctx.conn);
    rldi_seg_close(&ctx.seg);
    rld_close(ctx.client);   /* also publishes this process's counters (try) */
    if (fflush(stdout) != 0 || ferror(stdout))
        return rlctl_fail(r ? r : RLCTL_EXIT_UNREACHABLE, "cannot write the output");
    return r;
}
