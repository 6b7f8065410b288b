/*
 * main.c - rld, the host service of one rate-limit instance.
 *
 *   rld [--config FILE] [--instance NAME] [--foreground] [--check-config] [--fresh]
 *
 * Start-up order: configuration, instance paths and the lock that makes us the only daemon
 * of the instance, then the segment (re-attached with its state, or created), then the
 * limits. Without --foreground the parent waits until the daemon is ready and exits with
 * its error if it is not, so `rld && next-step` is safe.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "atomics.h"
#include "clock.h"
#include "codes.h"
#include "config.h"
#include "dseg.h"
#include "global.h"
#include "handlers.h"
#include "httpd.h"
#include "instance.h"
#include "keeper.h"
#include "log.h"
#include "rld.h"      /* RLD_VERSION_* */
#include "server.h"
#include "waitq.h"

/* SYSCONFDIR/rld/rld.conf of the configured prefix, set by CMakeLists.txt. */
#ifndef RLD_DEFAULT_CONFIG
#define RLD_DEFAULT_CONFIG "/etc/rld/rld.conf"
#endif
#define DEFAULT_CONFIG RLD_DEFAULT_CONFIG

typedef struct opts {
    const char *config;
    const char *instance;
    bool foreground, check, fresh;
} opts;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: rld [--config FILE] [--instance NAME] [--foreground] [--check-config] [--fresh]\n"
        "\n"
        "  -c, --config FILE     configuration file (default " DEFAULT_CONFIG ")\n"
        "  -i, --instance NAME   instance name (default $RLD_INSTANCE, else \"default\")\n"
        "  -f, --foreground      stay in the foreground (under a supervisor)\n"
        "  -t, --check-config    validate the configuration and exit 0 (valid) or 1\n"
        "      --fresh           discard an existing segment of the instance (resets all limits)\n"
        "  -h, --help            this text\n"
        "  -V, --version         print the version\n");
}

static int parse_args(int argc, char **argv, opts *o)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "instance", required_argument, NULL, 'i' },
        { "foreground", no_argument, NULL, 'f' },
        { "check-config", no_argument, NULL, 't' },
        { "fresh", no_argument, NULL, 'F' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    memset(o, 0, sizeof(*o));
    o->config = DEFAULT_CONFIG;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:i:fthV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'i': o->instance = optarg; break;
        case 'f': o->foreground = true; break;
        case 't': o->check = true; break;
        case 'F': o->fresh = true; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("rld %d.%d.%d\n", RLD_VERSION_MAJOR, RLD_VERSION_MINOR, RLD_VERSION_PATCH); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rld: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    return 0;
}

/* ---- start-up reporting to the waiting parent ------------------------------------------ */

static int ready_fd = -1;

/* Tell the parent (if any) how start-up ended: an empty message is success. */
static void report(const char *msg)
{
    if (ready_fd < 0)
        return;
    size_t n = strlen(msg);
    ssize_t w = write(ready_fd, msg, n ? n : 1);
    (void)w;
    close(ready_fd);
    ready_fd = -1;
    if (n == 0) {
        /* Started in the background: let go of the caller's terminal or pipe. */
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            rlog_to_syslog();
            dup2(fd, 0);
            dup2(fd, 1);
            dup2(fd, 2);
            if (fd > 2)
                close(fd);
        }
    }
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    LOG_ERROR("%s", msg);
    report(msg);
    exit(1);
}

/* Fork; the parent waits for the child's report and exits with it. */
static void daemonize(void)
{
    int p[2];
    if (pipe(p) < 0) {
        perror("rld: pipe");
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("rld: fork");
        exit(1);
    }
    if (pid > 0) {
        close(p[1]);
        char buf[1024];
        ssize_t n = read(p[0], buf, sizeof(buf) - 1);
        if (n == 1 && buf[0] == '\0')
            exit(0);
        /* The child already logged its error to the shared stderr. */
        exit(1);
    }
    close(p[0]);
    ready_fd = p[1];
    setsid();
}

/* ---- the instance lock --------------------------------------------------------------- */

/*
 * The runtime directory holds what clients trust (the sockets) and the lock: it must be a
 * real directory of ours that nobody else can write, or anyone could plant a symlink or a
 * socket there (as OpenSSH checks its files, refuse with the reason rather than adopt).
 */
static void check_runtime_dir(const rldi_paths *p)
{
    if (mkdir(p->runtime_dir, 0755) < 0 && errno != EEXIST)
        fail("cannot create runtime directory %s: %s", p->runtime_dir, strerror(errno));
    struct stat st;
    if (lstat(p->runtime_dir, &st) < 0)
        fail("runtime directory %s: %s", p->runtime_dir, strerror(errno));
    const char *why = !S_ISDIR(st.st_mode)         ? "not a directory (a symlink?)"
                      : st.st_uid != geteuid()     ? "owned by another user"
                      : (st.st_mode & 022) != 0    ? "writable by others"
                                                   : NULL;
    if (why)
        fail("runtime directory %s is %s: refusing to use it (it must be a directory of uid %u "
             "that no one else can write)", p->runtime_dir, why, (unsigned)geteuid());
}

static int take_lock(const rldi_paths *p)
{
    check_runtime_dir(p);
    /* O_NOFOLLOW and the checks below: never write through a planted symlink or hard link */
    int fd = open(p->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    if (fd < 0)
        fail("cannot open lock file %s: %s%s", p->lock_path, strerror(errno),
             errno == ELOOP ? " (a symlink: refusing to follow it)" : "");
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || st.st_nlink != 1)
        fail("lock file %s is not a regular file of ours with one link: refusing to use it",
             p->lock_path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        fail("another rld (pid %s) already serves instance %s (lock %s)",
             *pid ? pid : "?", p->instance, p->lock_path);
    }
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
        LOG_WARN("cannot write pid to %s: %s", p->lock_path, strerror(errno));
    return fd;
}

/* ---- resources ------------------------------------------------------------------------ */

/* Descriptors for every connection the daemon accepts, and some: the soft limit up to the
 * hard one; when even that is short the caps are what the transport says at accept. */
static void raise_nofile(void)
{
    struct rlimit rl;
    rlim_t want = SRV_MAX_CONNS + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
        LOG_WARN("RLIMIT_NOFILE allows %llu descriptors, %llu wanted: fewer connections fit "
                 "(raise LimitNOFILE)", (unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

/* A segment memfd systemd kept for us (FileDescriptorStoreMax, FDNAME=segment), or -1. */
static int systemd_segment_fd(void)
{
    char **names = NULL;
    int n = sd_listen_fds_with_names(1, &names), fd = -1;
    for (int i = 0; i < n; i++) {
        if (fd < 0 && names && names[i] && strcmp(names[i], "segment") == 0)
            fd = SD_LISTEN_FDS_START + i;
        else
            close(SD_LISTEN_FDS_START + i);
    }
    if (names)
        for (int i = 0; i < n; i++)
            free(names[i]);
    free(names);
    return fd;
}

/* ---- main ---------------------------------------------------------------------------- */

/* Limits created at run time (Put) survive the start-up sync like a reload. */
static bool keep_runtime(uint32_t slot, void *ctx)
{
    const rldi_seg *seg = ctx;
    return seg->meta[slot].origin == RLDI_ORIGIN_RUNTIME;
}

/* Under systemd's PrivateNetwork=yes (rld.service's default) a listener binds fine, in a
 * network of its own that nothing outside reaches: say so rather than serve nobody. Asked
 * only of a systemd service (INVOCATION_ID), whose PID 1 is systemd in the host's network;
 * elsewhere PID 1 may be anything (a container's, a sandbox's). */
static void warn_private_network(const char *where)
{
    char self[64], init[64];
    if (!getenv("INVOCATION_ID"))
        return;
    ssize_t a = readlink("/proc/self/ns/net", self, sizeof(self) - 1);
    ssize_t b = readlink("/proc/1/ns/net", init, sizeof(init) - 1);
    if (a <= 0 || b <= 0)
        return;                         /* cannot tell */
    self[a] = init[b] = '\0';
    if (strcmp(self, init) != 0)
        LOG_WARN("metrics on %s: rld runs in a network namespace of its own (systemd's "
                 "PrivateNetwork=yes?), which nothing outside reaches: rld.conf(5), METRICS, "
                 "has the drop-in that lifts it", where);
}

int main(int argc, char **argv)
{
    uint64_t t_start = rldi_mono_ns();
    opts o;
    if (parse_args(argc, argv, &o) < 0)
        return 2;
    rlog_init(RLOG_INFO);

    rldi_config conf;
    char err[1024];
    if (rldi_config_load(o.config, &conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "rld: %s\n", err);
        return 1;
    }
    if (global_check(&conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "rld: %s: %s\n", o.config, err);
        rldi_config_free(&conf);
        return 1;
    }
    if (o.check) {
        printf("rld: configuration %s is valid: %zu limit%s\n", o.config, conf.nlimits,
               conf.nlimits == 1 ? "" : "s");
        rldi_config_free(&conf);
        return 0;
    }
    int lvl = rlog_level_parse(conf.log_level);
    rlog_init(lvl < 0 ? RLOG_INFO : lvl);

    rldi_paths paths;
    int r = rldi_paths_resolve(o.instance, &paths);
    if (r == -EINVAL) {
        fprintf(stderr, "rld: invalid instance name '%s' (1-64 of A-Z a-z 0-9 . _ -)\n",
                o.instance ? o.instance : getenv("RLD_INSTANCE"));
        return 1;
    }
    if (r < 0) {
        fprintf(stderr, "rld: no runtime directory for instance %s: set RLD_RUNTIME_DIR or "
                        "XDG_RUNTIME_DIR (or run as root for /run/rld)\n", paths.instance);
        return 1;
    }
    if (!o.foreground)
        daemonize();

    /* who may use the instance: the sockets' mode and group */
    mode_t mode = 0600;
    gid_t gid = (gid_t)-1;
    if (conf.group[0]) {
        struct group *g = getgrnam(conf.group);
        if (!g)
            fail("%s: [rld] group '%s' does not exist", o.config, conf.group);
        gid = g->gr_gid;
        mode = 0660;
    }

    /* Signals are read through the ring (signalfd): block them before anything else runs. */
    sigset_t sigs;
    srv_block_signals(&sigs);
    raise_nofile();

    int lock_fd = take_lock(&paths);
    dseg_opts so = { .max_limits = conf.max_limits, .keys_size = dseg_keys_size(&conf),
                     .fresh = o.fresh,
                     .inherited_fd = systemd_segment_fd() };
    rldi_seg seg;
    bool created;
    int seg_fd;
    pid_t keeper;
    if ((r = dseg_open(&paths, &so, &seg, &seg_fd, &keeper, &created, err, sizeof(err))) < 0) {
        sd_notifyf(0, "STATUS=%s", err);
        fail("%s", err);
    }
    if (so.inherited_fd >= 0 && so.inherited_fd != seg_fd)
        close(so.inherited_fd);
    /* the previous daemon's last heartbeat: global pools cancel their refill since then */
    uint64_t last_heartbeat = created ? 0 : rldi_load_relaxed(&seg.hdr->heartbeat_ns);
    if (!created) {
        uint32_t live = dseg_repair(&seg);
        LOG_INFO("re-attached the segment held by %s with %u limits (state kept)",
                 keeper ? "its keeper" : "systemd", live);
    }
    rld_daemon d;
    memset(&d, 0, sizeof(d));
    d.config_path = o.config;
    d.conf = &conf;
    d.seg = &seg;
    d.seg_fd = seg_fd;
    d.paths = paths;
    d.sock_mode = mode;
    d.sock_gid = gid;
    d.admin_gid = (gid_t)-1;
    if (conf.admin_group[0]) {
        struct group *g = getgrnam(conf.admin_group);
        if (!g)
            fail("%s: [rld] admin_group '%s' does not exist", o.config, conf.admin_group);
        d.admin_gid = g->gr_gid;
    }
    dseg_changes ch;
    bool (*keep)(uint32_t, void *) = keep_runtime;
    int sr = created ? dseg_sync(&seg, &conf, &ch, keep, NULL, &seg) : -ENOSPC;
    if (!created && dseg_needs_growth(&seg, &conf))
        sr = -ENOSPC;
    else if (!created)
        sr = dseg_sync(&seg, &conf, &ch, keep, NULL, &seg);
    if (!created && (sr == -ENOSPC || sr == -EXFULL)) {
        /* the file asks for more than the segment kept from before has: a larger one, every
         * limit's state carried, its clients following by themselves */
        dseg_grown gw;
        uint32_t before = seg.slot_count;
        if (dseg_grow(&seg, &seg_fd, &paths, &conf, &gw, err, sizeof(err)) < 0)
            fail("%s: growing the segment for it: %s", o.config, err);
        if (gw.keeper_failed)
            keeper = 0;
        LOG_INFO("the segment grew to %u slots (from %u) and %zu bytes: %u limits and %llu "
                 "keys carried in %.3f s%s", seg.slot_count, before, seg.size, gw.limits,
                 (unsigned long long)gw.keys, gw.seconds,
                 gw.keys_dropped ? " (keys that did not fit a smaller table: dropped)" : "");
        sr = dseg_sync(&seg, &conf, &ch, keep, NULL, &seg);
    }
    if (sr == -EXFULL)
        fail("%s: the templates' key tables do not fit in the segment kept from before (a new "
             "template or another max_keys: start with --fresh, which resets every limit)",
             o.config);
    else if (sr == -EINVAL)
        fail("%s: a name is a [limit] in the segment and a [template] in the file, or the "
             "reverse: start with --fresh", o.config);
    else if (sr < 0)
        fail("%s: %zu limits do not fit in the segment's %u slots (raise [rld] max_limits and "
             "start with --fresh)", o.config, conf.nlimits, seg.slot_count);
    server srv;
    memset(&srv, 0, sizeof(srv));
    srv.socket_path = d.paths.socket_path;
    srv.listen_fd = srv.signal_fd = -1;
    srv.ops = daemon_ops(&d);
    d.srv = &srv;
    if (!(d.wq = waitq_new(&srv, &seg, conf.max_waiters, conf.max_waits_per_uid)))
        fail("out of memory for the wait queues of %u slots", seg.slot_count);
    if (!(d.leases = leases_new(&seg)))
        fail("out of memory for the leases");
    waitq_set_leases(d.wq, d.leases);
    if (!(d.global = global_new(&seg, paths.instance, last_heartbeat)))
        fail("out of memory for global limits");
    global_sync(d.global, &conf);
    srv.wake_fd = global_wake_fd(d.global);
    if (srv_listen(&srv, gid, err, sizeof(err)) < 0)
        fail("%s", err);
    if (conf.metrics_listen[0]) {
        httpd_body body;
        daemon_metrics_body(&d, &body);
        if (!(srv.http = httpd_listen((const struct sockaddr *)&conf.metrics_addr,
                                      conf.metrics_addrlen, conf.metrics_listen, &body, err,
                                      sizeof(err))))
            fail("%s", err);
        warn_private_network(conf.metrics_listen);
    }
    /* The keeper: one that holds our segment already, told of a new one, or a new keeper. */
    if (keeper && created && keeper_replace(paths.seg_path, seg_fd, seg.slot_count) < 0)
        keeper = 0;
    if (!keeper && (keeper = keeper_spawn(paths.seg_path, seg_fd, seg.slot_count, mode, gid, err,
                                          sizeof(err))) < 0)
        fail("%s", err);
    /* A keeper from an earlier start made its socket with that start's [rld] group: the
     * file's setting now, as the instance socket's (a group added or removed takes effect
     * at restart for both sockets, as rld.conf(5) says) */
    if ((gid != (gid_t)-1 && chown(paths.seg_path, (uid_t)-1, gid) < 0) ||
        chmod(paths.seg_path, mode) < 0)
        LOG_WARN("%s: cannot give it mode %04o%s%s: %s (clients outside rld's user may be "
                 "refused)", paths.seg_path, (unsigned)mode, gid != (gid_t)-1 ? " and group " : "",
                 gid != (gid_t)-1 ? conf.group : "", strerror(errno));
    d.keeper_pid = keeper;
    rldi_store_relaxed(&seg.hdr->keeper_pid, (uint32_t)keeper);
    /* under systemd, the segment also outlives the keeper: its file descriptor store */
    sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=segment", &seg_fd, 1);
    dseg_publish(&seg, getpid());
    d.started_ns = rldi_mono_ns();
    LOG_INFO("instance %s ready: %zu limits (%u kept, %u created, %u changed, %u deleted; %u "
             "keep a run-time setting), segment of %zu bytes held by keeper pid %d at %s, socket "
             "%s; started in %.3f s",
             paths.instance, conf.nlimits, ch.kept, ch.created, ch.changed, ch.deleted,
             ch.overridden, seg.size,
             (int)keeper, paths.seg_path, paths.socket_path,
             (double)(rldi_mono_ns() - t_start) / 1e9);
    report("");
    /* Under systemd (Type=notify): ready now, and who we are. No-op elsewhere. */
    sd_notifyf(0, "READY=1\nSTATUS=serving instance %s: %zu limits\nMAINPID=%ld",
               paths.instance, conf.nlimits, (long)getpid());

    r = srv_run(&srv);
    sd_notify(0, "STOPPING=1");
    global_free(d.global);
    waitq_free(d.wq);
    leases_free(d.leases);
    uidcount_free(&d.conns_by_uid);
    dseg_detach(&seg);
    close(seg_fd);
    rldi_config_free(&conf);
    close(lock_fd);
    return r < 0 ? 1 : 0;
}
