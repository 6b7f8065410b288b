/* harness.c - private instances and a real daemon for tests (see harness.h). */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "handout.h"
#include "layout.h"
#include "rld.h"
#include "segment.h"
#include "wire.h"

/* The instance t_cleanup removes. A copy: the test's t_daemon usually lives in main's frame,
 * which is gone by the time exit handlers run. Kept in step by t_daemon_start/stop. */
static t_daemon *registered, shadow;
static pid_t owner;

uint64_t t_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void t_sleep_ns(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

const char *t_rld_bin(void)
{
    const char *b = getenv("RLD_BIN");
    return b && *b ? b : "./daemon/rld";
}

void t_fail(void)
{
    if (registered && getpid() == owner && shadow.log[0]) {
        /* Show the daemon's log: the first thing one wants when a test fails. */
        FILE *f = fopen(shadow.log, "r");
        if (f) {
            char line[512];
            fprintf(stderr, "---- rld log (%s) ----\n", shadow.log);
            while (fgets(line, sizeof(line), f))
                fputs(line, stderr);
            fclose(f);
        }
    }
    exit(1);
}

void t_cleanup(void)
{
    t_daemon *d = &shadow;
    if (!registered || getpid() != owner)
        return;
    if (d->pid > 0)
        t_daemon_stop(d, SIGKILL);
    t_keeper_stop(d);
    if (!getenv("RLD_TEST_KEEP")) {
        char cmd[sizeof(d->dir) + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf '%.255s'", d->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", d->dir);
    }
    registered = NULL;
}

void t_write_conf(t_daemon *d, const char *conf_text)
{
    FILE *f = fopen(d->conf, "w");
    if (!f || fputs(conf_text, f) < 0 || fclose(f) != 0) {
        perror(d->conf);
        exit(1);
    }
}

void t_instance(t_daemon *d, const char *tag, const char *conf_text)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->dir, sizeof(d->dir), "/tmp/rldtest.%s.XXXXXX", tag);
    if (!mkdtemp(d->dir)) {
        perror("mkdtemp");
        exit(1);
    }
    chmod(d->dir, 0755);   /* tests that drop privileges must reach the socket */
    snprintf(d->instance, sizeof(d->instance), "t-%s-%d-%s", tag, (int)getpid(),
             strrchr(d->dir, '.') + 1);
    snprintf(d->conf, sizeof(d->conf), "%s/rld.conf", d->dir);
    snprintf(d->log, sizeof(d->log), "%s/rld.log", d->dir);
    setenv("RLD_INSTANCE", d->instance, 1);
    setenv("RLD_RUNTIME_DIR", d->dir, 1);
    t_write_conf(d, conf_text);
    registered = d;
    shadow = *d;
    owner = getpid();
    atexit(t_cleanup);
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

int t_daemon_start(t_daemon *d, const char *extra)
{
    d->log_mark = file_size(d->log);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        if (getenv("RLD_VALGRIND"))   /* memcheck the daemon: errors make it exit 99 */
            execlp("valgrind", "valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                   "--child-silent-after-fork=yes",
                   "--errors-for-leak-kinds=definite", t_rld_bin(), "--foreground", "--config",
                   d->conf, "--instance", d->instance, extra, (char *)NULL);
        else
            execl(t_rld_bin(), "rld", "--foreground", "--config", d->conf, "--instance",
                  d->instance, extra, (char *)NULL);
        perror("exec rld");
        _exit(127);
    }
    d->pid = pid;
    if (d == registered)
        shadow.pid = pid;
    /* Ready when the daemon says so in its log (a re-attached segment is readable before). */
    uint64_t deadline = t_now_ns() + (getenv("RLD_VALGRIND") ? 60000000000ull : 10000000000ull);
    while (t_now_ns() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            d->pid = 0;
            if (d == registered)
                shadow.pid = 0;
            return -1;
        }
        rld_client *c;
        if (t_log_has_since_start(d, " ready: ") && rld_open(d->instance, 0, &c) == 0) {
            rld_close(c);
            return 0;
        }
        t_sleep_ns(5000000);
    }
    fprintf(stderr, "rld did not become ready in 10 s\n");
    return -1;
}

void t_daemon_stats(const t_daemon *d, t_stats *out)
{
    char sock[400];
    snprintf(sock, sizeof(sock), "%s/%s.sock", d->dir, d->instance);
    rldi_conn k;
    T_CODE(rldi_conn_open(sock, "test", 2000, &k, NULL, 0), 0);
    Rld__V1__Stats st = RLD__V1__STATS__INIT;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_STATS;
    req.stats = &st;
    Rld__V1__Reply *rep;
    T_CODE(rldi_conn_call(&k, &req, 2000, &rep), 0);
    T_CHECK(rep->code == 0 && rep->body_case == RLD__V1__REPLY__BODY_STATS, "Stats: %d", rep->code);
    out->requests = rep->stats->requests;
    out->connections = rep->stats->connections;
    out->waiters = rep->stats->waiters;
    out->lease_calls = rep->stats->lease_calls;
    out->fallback_ns = rep->stats->fallback_ns;
    rld__v1__reply__free_unpacked(rep, NULL);
    rldi_conn_close(&k);
}

void t_keeper_stop(t_daemon *d)
{
    rld_client *c;
    rld_instance in;
    if (rld_open(d->instance, 0, &c) < 0)
        return;
    if (rld_instance_info(c, &in) == 0 && in.keeper_pid > 0)
        kill((pid_t)in.keeper_pid, SIGTERM);
    rld_close(c);
}

int t_daemon_stop(t_daemon *d, int sig)
{
    int status = -1;
    if (d->pid <= 0)
        return -1;
    kill(d->pid, sig);
    while (waitpid(d->pid, &status, 0) < 0 && errno == EINTR)
        ;
    d->pid = 0;
    if (d == registered || d == &shadow)
        shadow.pid = 0;
    return status;
}

static bool log_has_from(const t_daemon *d, const char *needle, long from)
{
    FILE *f = fopen(d->log, "r");
    if (!f)
        return false;
    fseek(f, from, SEEK_SET);
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

int t_run_rld(char *out, size_t outlen, const char *const *args)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        const char *argv[32] = { "rld" };
        int n = 1;
        for (; args[n - 1] && n < 31; n++)
            argv[n] = args[n - 1];
        argv[n] = NULL;
        execv(t_rld_bin(), (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    ssize_t r;
    while (len + 1 < outlen && (r = read(p[0], out + len, outlen - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = '\0';
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool t_log_has(const t_daemon *d, const char *needle)
{
    return log_has_from(d, needle, 0);
}

bool t_daemon_stop_clean(t_daemon *d)
{
    int st = t_daemon_stop(d, SIGTERM);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "rld did not stop cleanly: status %d%s\n", st,
                WIFEXITED(st) && WEXITSTATUS(st) == 99 ? " (valgrind found errors)" : "");
        return false;
    }
    return true;
}

bool t_log_has_since_start(const t_daemon *d, const char *needle)
{
    return log_has_from(d, needle, d->log_mark);
}

/*
 * A keeper of our own making, to see what rld_open says about what it hands out: a memfd
 * holding DATA (LEN bytes), sealed or not, announced with SLOTS slots, ABI and a clock
 * SKEW_NS off ours. It answers connections until killed.
 */
pid_t t_fake_keeper(const t_daemon *d, const char *inst, const void *data, size_t len,
                    t_fake f)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s.seg", d->dir, inst);
    unlink(path);
    int fd = memfd_create("fake", MFD_ALLOW_SEALING);
    T_CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
    T_CHECK(ftruncate(fd, (off_t)len) == 0, "ftruncate");
    if (len && data)
        T_CHECK(pwrite(fd, data, len, 0) == (ssize_t)len, "pwrite");
    if (f.sealed)
        T_CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0, "seal");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, path);
    int l = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    T_CHECK(l >= 0 && bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(l, 8) == 0,
            "fake keeper socket: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        for (;;) {
            int c = accept(l, NULL, NULL);
            if (c < 0)
                continue;
            rldi_handout h;
            memset(&h, 0, sizeof(h));
            memcpy(h.magic, RLDI_HANDOUT_MAGIC, sizeof(h.magic));
            h.version = RLDI_HANDOUT_VERSION;
            h.keeper_pid = (uint32_t)getpid();
            h.size = len;
            h.slot_count = f.slots;
            h.abi_major = f.abi;
            h.mono_ns = t_now_ns() + (uint64_t)f.skew_ns;
            union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
            } ctl;
            memset(&ctl, 0, sizeof(ctl));
            struct iovec iov = { &h, sizeof(h) };
            struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                                 .msg_controllen = sizeof(ctl.buf) };
            struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(cm), &fd, sizeof(int));
            (void)sendmsg(c, &mh, MSG_NOSIGNAL);
            close(c);
        }
    }
    close(l);
    close(fd);
    return pid;
}

void t_fake_keeper_stop(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

pid_t t_foreign_keeper(const t_daemon *d, uint16_t abi)
{
    static char zero[1 << 20];
    rldi_shm_header geo;
    memset(&geo, 0, sizeof(geo));
    uint64_t size = rldi_seg_geometry(16, &geo);
    t_fake f = { 16, abi, true, 0 };
    return t_fake_keeper(d, d->instance, zero, size <= sizeof(zero) ? size : sizeof(zero), f);
}

int t_log_count(const t_daemon *d, const char *needle)
{
    FILE *f = fopen(d->log, "r");
    if (!f)
        return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

void t_reload(t_daemon *d, const char *conf_text, const char *needle)
{
    int before = t_log_count(d, needle);
    t_write_conf(d, conf_text);
    kill(d->pid, SIGHUP);
    uint64_t deadline = t_now_ns() + 10000000000ull;
    while (t_log_count(d, needle) == before && t_now_ns() < deadline)
        t_sleep_ns(5000000);
    T_CHECK(t_log_count(d, needle) > before, "log says '%s' within 10 s of SIGHUP", needle);
}

rld_limit t_find(rld_client *c, const char *name)
{
    rld_limit l;
    T_CODE(rld_find(c, name, &l), 0);
    return l;
}

uint32_t t_waiters(rld_client *c, rld_limit l)
{
    rld_limit_info info;
    T_CODE(rld_info(c, l, &info), 0);
    return info.waiters;
}

void t_await_waiters(rld_client *c, rld_limit l, uint32_t n)
{
    uint64_t deadline = t_now_ns() + 5000000000ull;
    while (t_waiters(c, l) != n && t_now_ns() < deadline)
        t_sleep_ns(1000000);
    T_CHECK(t_waiters(c, l) == n, "expected %u waiters, see %u", n, t_waiters(c, l));
}

int t_reap_all(const pid_t *pids, int n, const char *what)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int st = 0;
        pid_t r;
        while ((r = waitpid(pids[i], &st, 0)) < 0 && errno == EINTR)
            ;
        if (r != pids[i]) {
            fprintf(stderr, "%s %d (pid %d): waitpid: %s\n", what, i, (int)pids[i],
                    strerror(errno));
            bad++;
        } else if (WIFSIGNALED(st)) {
            fprintf(stderr, "%s %d (pid %d): killed by signal %d\n", what, i, (int)pids[i],
                    WTERMSIG(st));
            bad++;
        } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "%s %d (pid %d): exit %d\n", what, i, (int)pids[i],
                    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
            bad++;
        }
    }
    return bad;
}

bool t_have(const char *prog)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "command -v '%.250s' >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

int t_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    int port = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

pid_t t_redis_start(const char *dir, int port, const char *password, char *sock, size_t socklen)
{
    T_CHECK((size_t)snprintf(sock, socklen, "%s/redis.sock", dir) < socklen,
            "redis socket path too long for %zu bytes: %s", socklen, dir);
    unlink(sock);   /* a socket left by a killed server would look like this one up */
    char portarg[16];
    snprintf(portarg, sizeof(portarg), "%d", port > 0 ? port : 0);
    pid_t pid = fork();
    T_CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0)
            dup2(fd, 1);
        const char *argv[20] = { "redis-server", "--port", portarg, "--unixsocket", sock,
                                 "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                                 "--dir", dir };
        int n = 13;
        if (port > 0) {
            argv[n++] = "--bind";
            argv[n++] = "127.0.0.1";
        }
        if (password) {
            argv[n++] = "--requirepass";
            argv[n++] = password;
        }
        argv[n] = NULL;
        execvp("redis-server", (char *const *)argv);
        perror("exec redis-server");
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {          /* up when its socket is there */
        if (access(sock, F_OK) == 0)
            return pid;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            break;
        t_sleep_ns(10000000);
    }
    fprintf(stderr, "redis-server did not start in 2 s (its output is above)\n");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    t_fail();
}

void t_redis_stop(pid_t pid, const char *sock)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    unlink(sock);
}
