/*
 * test_security.c - the red-team findings of issue 10, each attack run again against a root
 * daemon with [rld] group and admin_group set, by users the test creates (one outside every
 * group, one in group, one in admin_group) and removes afterwards. Every attack must get a
 * refusal, never a crash. Needs root: exits 77 (skipped) otherwise.
 *
 *   1 truncating or punching the segment kills nobody; the daemon rebuilds what was lost
 *   2 credentials are the kernel's at connect time (no /proc lookup a pid reuse can fool)
 *   3 a segment socket served by another user is never adopted
 *   5 a client in another time namespace is refused at rld_open (RLD_ECLOCK)
 *   6 a configuration that reads as a device (a symlink to /dev/zero) changes nothing
 *   7 connections capped per uid, the admin's reload still served, no spinning on EMFILE
 *   9 a group member finds a root daemon's instance in /run/rld; queued waits per uid
 * (4, planted lock files and runtime directories, are test_faults'; 8, scale, test_scale's.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handout.h"
#include "harness.h"
#include "rld.h"
#include "segment.h"
#include "wire.h"

static char g_members[32], g_admins[32], u_out[32], u_mem[32], u_adm[32];
static uid_t uid_out, uid_mem, uid_adm;
static gid_t gid_members, gid_admins;
static t_daemon d;
static char sock[400], segsock[400];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static void remove_accounts(void)
{
    if (!u_out[0])
        return;
    sh("userdel %s 2>/dev/null; userdel %s 2>/dev/null; userdel %s 2>/dev/null", u_out, u_mem,
       u_adm);
    sh("groupdel %s 2>/dev/null; groupdel %s 2>/dev/null", g_members, g_admins);
}

static void make_accounts(void)
{
    int id = (int)getpid() % 100000;
    snprintf(g_members, sizeof(g_members), "rldtm%d", id);
    snprintf(g_admins, sizeof(g_admins), "rldta%d", id);
    snprintf(u_out, sizeof(u_out), "rldto%d", id);
    snprintf(u_mem, sizeof(u_mem), "rldtu%d", id);
    snprintf(u_adm, sizeof(u_adm), "rldtd%d", id);
    atexit(remove_accounts);
    T_CHECK(sh("groupadd %s && groupadd %s", g_members, g_admins) == 0, "groupadd");
    T_CHECK(sh("useradd -M -N -s /usr/sbin/nologin %s && useradd -M -N -G %s -s /usr/sbin/nologin "
               "%s && useradd -M -N -G %s,%s -s /usr/sbin/nologin %s",
               u_out, g_members, u_mem, g_members, g_admins, u_adm) == 0, "useradd");
    uid_out = getpwnam(u_out)->pw_uid;
    uid_mem = getpwnam(u_mem)->pw_uid;
    uid_adm = getpwnam(u_adm)->pw_uid;
    gid_members = getgrnam(g_members)->gr_gid;
    gid_admins = getgrnam(g_admins)->gr_gid;
}

/* Become UID with primary group GID and supplementary groups G (N of them), for good. */
static void become(uid_t uid, gid_t gid, const gid_t *g, int n)
{
    if (setgroups((size_t)n, g) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
        _exit(90);
}

static void become_member(void)
{
    become(uid_mem, gid_members, &gid_members, 1);
}

/* Run FN in a child; its exit code. */
static int in_child(int (*fn)(void *), void *arg)
{
    pid_t p = fork();
    if (p == 0)
        _exit(fn(arg));
    int st;
    waitpid(p, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static bool daemon_answers(void)
{
    rldi_conn k;
    if (rldi_conn_open(sock, "test", 2000, &k, NULL, 0) < 0)
        return false;
    Rld__V1__Stats st = RLD__V1__STATS__INIT;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_STATS;
    req.stats = &st;
    Rld__V1__Reply *rep;
    bool ok = rldi_conn_call(&k, &req, 2000, &rep) == 0 && rep->code == 0;
    if (ok)
        rld__v1__reply__free_unpacked(rep, NULL);
    rldi_conn_close(&k);
    return ok;
}

/* ---- 1: the segment cannot be shrunk; a hole punched in it kills nobody ---------------- */

static int attack_segment(void *arg)
{
    (void)arg;
    become_member();
    rld_client *c;
    rld_limit l;
    if (rld_open(NULL, 0, &c) < 0 || rld_find(c, "a", &l) < 0)
        return 10;
    int fd;
    rldi_handout h;
    if (rldi_handout_fetch(segsock, &fd, &h, NULL, NULL) < 0)
        return 11;
    if (ftruncate(fd, 0) == 0 || errno != EPERM)         /* truncate -s 0: sealed */
        return 12;
    if (ftruncate(fd, (off_t)h.size * 2) == 0 || errno != EPERM)
        return 13;
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) == 0) /* nor can it be sealed further */
        return 14;
    /* what a writer can do: zero it all (accepted by the trust model: quota, not crashes) */
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)h.size) < 0)
        return 15;
    rld_result r;
    int rc = rld_try(c, l, 1, &r);            /* this process lives on: no SIGBUS */
    if (rc != 0 && rc != -EAGAIN && rc != -ESTALE)
        return 16;
    rld_close(c);
    close(fd);
    return 0;
}

static void test_segment(void)
{
    int rc = in_child(attack_segment, NULL);
    T_CHECK(rc == 0, "the member's attack on the segment: step %d (0: all refused/survived)", rc);
    T_CHECK(daemon_answers(), "the daemon survives a zeroed segment");
    /* within a heartbeat the daemon rebuilds the header, the index and the file's limits */
    rld_client *c = NULL;
    rld_limit l;
    int r = -1;
    for (int i = 0; i < 40 && r != 0; i++) {
        t_sleep_ns(100000000);
        if ((r = rld_open(NULL, 0, &c)) == 0 && (r = rld_find(c, "a", &l)) != 0) {
            rld_close(c);
            c = NULL;
        }
    }
    T_CHECK(r == 0, "new clients attach and find the limits again: %s", rld_strerror(r));
    T_CODE(rld_try(c, l, 1, NULL), 0);
    rld_close(c);
    T_CHECK(t_log_has(&d, "header was damaged"), "the repair is logged");
    printf("1: truncation refused (sealed), a zeroed segment rebuilt by the running daemon\n");
}

/* ---- 2: credentials at connect time ---------------------------------------------------- */

/* Connect as a member without admin rights, then gain them (keeping the saved uid 0), then
 * Hello: what counts is who connected. Reading /proc/<pid> at Hello (as before) said admin. */
static int attack_creds(void *arg)
{
    (void)arg;
    if (setgroups(1, &gid_members) < 0 || setresgid(gid_members, gid_members, 0) < 0 ||
        setresuid(uid_mem, uid_mem, 0) < 0)
        return 90;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, sock);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return 10;
    /* now the same pid is root and in the admin group */
    if (setresuid(0, 0, 0) < 0 || setgroups(1, &gid_admins) < 0)
        return 91;
    rldi_conn k = { .fd = fd, .next_id = 1, .max_message = RLDI_MAX_MESSAGE };
    Rld__V1__Hello hello = RLD__V1__HELLO__INIT;
    hello.protocol_version = RLDI_PROTOCOL_VERSION;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_HELLO;
    req.hello = &hello;
    Rld__V1__Reply *rep;
    if (rldi_conn_call(&k, &req, 2000, &rep) < 0 || rep->body_case != RLD__V1__REPLY__BODY_HELLO)
        return 11;
    if (rep->hello->admin)
        return 12;
    Rld__V1__Reset rs = RLD__V1__RESET__INIT;
    rs.limit = "a";
    Rld__V1__Request r2 = RLD__V1__REQUEST__INIT;
    r2.body_case = RLD__V1__REQUEST__BODY_RESET;
    r2.reset = &rs;
    if (rldi_conn_call(&k, &r2, 2000, &rep) < 0 || rep->code != -EPERM)
        return 13;
    return 0;
}

static int admin_hello(void *arg)
{
    (void)arg;
    gid_t g[2] = { gid_members, gid_admins };
    become(uid_adm, gid_members, g, 2);
    rldi_conn k;
    if (rldi_conn_open(sock, "test", 2000, &k, NULL, 0) < 0)
        return 10;
    return k.admin ? 0 : 11;
}

static void test_creds(void)
{
    int rc = in_child(attack_creds, NULL);
    T_CHECK(rc == 0, "rights gained after connecting are not the connection's: step %d", rc);
    rc = in_child(admin_hello, NULL);
    T_CHECK(rc == 0, "a member of admin_group (a supplementary group) is admin: step %d", rc);
    printf("2: credentials from SO_PEERCRED/SO_PEERGROUPS at connect: gained rights ignored\n");
}

/* ---- 3: a segment socket of another user is not adopted --------------------------------- */

static int foreign_keeper(void *arg)
{
    (void)arg;
    /* bound as root (the directory is root's), listening as the member: that is who a
     * connecting daemon sees (SO_PEERCRED of a listener is its listen() caller's) */
    int l = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, segsock);
    unlink(segsock);
    if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return 10;
    become_member();
    if (listen(l, 4) < 0)
        return 11;
    int fd = memfd_create("foreign", MFD_ALLOW_SEALING);
    rldi_shm_header geo;
    memset(&geo, 0, sizeof(geo));
    uint64_t size = rldi_seg_geometry(16, &geo);
    if (ftruncate(fd, (off_t)size) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        return 12;
    for (int i = 0; i < 20; i++) {
        int c = accept(l, NULL, NULL);
        if (c >= 0) {
            rldi_handout_send(c, fd, size, 16, RLDI_ABI_MAJOR);
            close(c);
        }
    }
    return 0;
}

static void test_foreign_keeper(void)
{
    T_CHECK(t_daemon_stop_clean(&d), "stop");
    t_keeper_stop(&d);
    t_sleep_ns(100000000);
    pid_t k = fork();
    if (k == 0)
        _exit(foreign_keeper(NULL));
    t_sleep_ns(200000000);
    char out[2048];
    const char *args[] = { "--foreground", "--config", d.conf, "--instance", d.instance, NULL };
    int rc = t_run_rld(out, sizeof(out), args);
    T_CHECK(rc == 1 && strstr(out, "served by uid") && strstr(out, "refusing to adopt"),
            "a member's segment socket is refused: exit %d: %s", rc, out);
    kill(k, SIGKILL);
    waitpid(k, NULL, 0);
    unlink(segsock);
    T_CHECK(t_daemon_start(&d, NULL) == 0, "starts again once it is gone");
    printf("3: a segment socket served by uid %u refused: %s", (unsigned)uid_mem,
           strstr(out, "refusing"));
}

/* ---- 5: another time namespace ----------------------------------------------------------- */

static void test_timens(const char *self)
{
    char cmd[800], out[256] = "";
    snprintf(cmd, sizeof(cmd), "unshare --time --monotonic 315360000 -- %s probe-open 2>&1", self);
    FILE *f = popen(cmd, "r");
    T_CHECK(f != NULL, "popen");
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    if (strstr(out, "unshare:")) {
        printf("5: skipped: no time namespaces here (%s)", out);
        return;
    }
    T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "-1003"),
            "a client 10 years ahead is refused with RLD_ECLOCK: %s", out);
    printf("5: a client in a time namespace 10 years ahead: %s", out);
}

/* ---- 6: a configuration that reads as a device ------------------------------------------- */

static void test_config_device(void)
{
    rld_client *c;
    rld_limit slow;
    T_CODE(rld_open(NULL, 0, &c), 0);
    T_CODE(rld_find(c, "slow", &slow), 0);
    rld_try(c, slow, 1, NULL);
    /* a waiter, which a reload that deleted its limit would answer -ESTALE */
    pid_t w = fork();
    if (w == 0) {
        rld_client *wc;
        rld_limit wl;
        if (rld_open(NULL, 0, &wc) < 0 || rld_find(wc, "slow", &wl) < 0)
            _exit(10);
        int r = rld_wait(wc, wl, 1, 3000000000, NULL);
        _exit(r == 0 ? 0 : r == -ESTALE ? 11 : 12);
    }
    t_sleep_ns(200000000);
    char real[400];
    snprintf(real, sizeof(real), "%s.real", d.conf);
    T_CHECK(rename(d.conf, real) == 0 && symlink("/dev/zero", d.conf) == 0, "config -> /dev/zero");
    kill(d.pid, SIGHUP);
    t_sleep_ns(300000000);
    T_CHECK(t_log_has_since_start(&d, "not a regular file"), "the reload is refused, saying why");
    rld_limit a;
    T_CODE(rld_find(c, "a", &a), 0);
    T_CODE(rld_find(c, "slow", &slow), 0);
    T_CHECK(unlink(d.conf) == 0 && rename(real, d.conf) == 0, "config restored");
    int st;
    waitpid(w, &st, 0);
    T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the waiter was served, not told -ESTALE: %d",
            WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    rld_close(c);
    printf("6: a configuration linked to /dev/zero: reload refused, every limit and waiter kept\n");
}

/* ---- 7: connection caps, the admin's room, EMFILE ---------------------------------------- */

static int many_conns(void *arg)
{
    int want = *(int *)arg;
    become_member();
    int ok = 0;
    rldi_conn k[64];
    for (int i = 0; i < want && i < 64; i++)
        if (rldi_conn_open(sock, "test", 2000, &k[i], NULL, 0) == 0)
            ok++;
    return ok;
}

static int admin_reload(void *arg)
{
    (void)arg;
    rldi_conn k;
    if (rldi_conn_open(sock, "test", 2000, &k, NULL, 0) < 0)
        return 10;
    Rld__V1__Reload rl = RLD__V1__RELOAD__INIT;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_RELOAD;
    req.reload = &rl;
    Rld__V1__Reply *rep;
    if (rldi_conn_call(&k, &req, 3000, &rep) < 0)
        return 11;
    return rep->code == 0 ? 0 : 12;
}

/* CPU seconds (user + system) the daemon has used. */
static double daemon_cpu(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof(buf), f)) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, stt = 0;
    /* fields after the comm: state(3) ... utime(14) stime(15) */
    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt);
    return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static void test_conn_caps(void)
{
    int want = 12;   /* max_connections_per_uid = 8 */
    int rc = in_child(many_conns, &want);
    T_CHECK(rc == 8, "a member gets 8 connections of 12 asked: %d", rc);
    T_CHECK(t_log_has(&d, "max_connections_per_uid"), "the refusal is logged");
    printf("7: connections per uid capped at 8\n");

    /* A daemon with few descriptors (RLIMIT_NOFILE 128 when it starts) under a member's
     * flood of idle connections (its per-uid cap raised): the cap follows the descriptors,
     * the daemon refuses quietly without spinning, and root's reload gets one of the
     * connections kept for admins. Then its descriptors cut below what it holds: accept
     * fails with EMFILE, and the daemon pauses instead of spinning on it. */
    char conf[300];
    snprintf(conf, sizeof(conf), "[rld]\ngroup = %s\nadmin_group = %s\n"
             "max_connections_per_uid = 4096\n\n[limit a]\nrate = 10/s\n", g_members, g_admins);
    t_write_conf(&d, conf);
    T_CHECK(t_daemon_stop_clean(&d), "stop");
    struct rlimit rl, low = { 128, 128 };
    getrlimit(RLIMIT_NOFILE, &rl);
    setrlimit(RLIMIT_NOFILE, &low);
    int started = t_daemon_start(&d, NULL);
    setrlimit(RLIMIT_NOFILE, &rl);
    T_CHECK(started == 0, "rld started with 128 descriptors");
    pid_t flood = fork();
    if (flood == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);    /* never outlive a failing test */
        become_member();
        rldi_conn k[400];
        for (int i = 0; i < 400; i++)
            rldi_conn_open(sock, "flood", 300, &k[i], NULL, 0);
        pause();
        _exit(0);
    }
    t_sleep_ns(1500000000);
    double c0 = daemon_cpu(d.pid);
    t_sleep_ns(1000000000);
    double used = daemon_cpu(d.pid) - c0;
    T_CHECK(used >= 0 && used < 0.3, "the flooded daemon idles: %.2f s of CPU in 1 s", used);
    rc = in_child(admin_reload, NULL);
    T_CHECK(rc == 0, "root's reload is served under the flood: step %d", rc);
    printf("7: 400 idle connections at 128 descriptors: %.2f s of CPU in 1 s, root's reload "
           "served\n", used);

    kill(flood, SIGKILL);
    waitpid(flood, NULL, 0);
    /* Descriptors cut below what the daemon holds, under its connection cap (as when the
     * limit is lowered from outside): accept fails with EMFILE, and the daemon pauses
     * accepting instead of re-arming at once (it spun at 90% CPU). */
    T_CHECK(t_daemon_stop_clean(&d), "stop");
    T_CHECK(t_daemon_start(&d, NULL) == 0, "restart with the default descriptors");
    pid_t more = fork();
    if (more == 0) {       /* root: no per-uid cap */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        rldi_conn k[120];
        for (int i = 0; i < 120; i++) {
            rldi_conn_open(sock, "more", 300, &k[i], NULL, 0);
            if (i == 40)
                usleep(500000);      /* the parent lowers the limit here */
        }
        pause();
        _exit(0);
    }
    t_sleep_ns(250000000);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "prlimit --pid %d --nofile=40:40", (int)d.pid);
    T_CHECK(sh("%s", cmd) == 0, "%s", cmd);
    t_sleep_ns(1500000000);
    c0 = daemon_cpu(d.pid);
    t_sleep_ns(1000000000);
    used = daemon_cpu(d.pid) - c0;
    T_CHECK(used >= 0 && used < 0.3, "out of descriptors, the daemon idles: %.2f s of CPU in 1 s",
            used);
    /* (whether the kernel reports EMFILE through the ring or leaves the peers in the backlog
     * depends on its version; when it does, the daemon says it pauses) */
    T_CHECK(!t_log_has_since_start(&d, "Too many open files") ||
                t_log_has_since_start(&d, "pausing new connections"), "EMFILE pauses accepting");
    kill(more, SIGKILL);
    waitpid(more, NULL, 0);
    t_sleep_ns(300000000);
    T_CHECK(daemon_answers(), "serves again once the flood is gone");
    printf("7: out of descriptors (EMFILE): %.2f s of CPU in 1 s, serves again after\n", used);
}

/* ---- 9: a group member finds a root daemon in /run/rld; queued waits per uid ------------- */

static int member_opens_system(void *arg)
{
    const char *inst = arg;
    become_member();
    unsetenv("RLD_RUNTIME_DIR");
    setenv("XDG_RUNTIME_DIR", "/nonexistent-rld-test", 1);
    rld_client *c;
    int r = rld_open(inst, 0, &c);
    if (r < 0)
        return 10;
    rld_limit l;
    rld_result res;
    r = rld_find(c, "a", &l) < 0 ? 11 : rld_wait(c, l, 1, 1000000000, &res) < 0 ? 12 : 0;
    rld_close(c);
    return r;
}

static void test_system_instance(const char *conf)
{
    char inst[64], cmd[1024];
    snprintf(inst, sizeof(inst), "t-sys-%d", (int)getpid());
    snprintf(cmd, sizeof(cmd), "env -u RLD_RUNTIME_DIR %s --config %s --instance %s", t_rld_bin(),
             conf, inst);
    T_CHECK(sh("%s", cmd) == 0, "a root daemon in /run/rld: %s", cmd);
    int rc = in_child(member_opens_system, inst);
    /* stop it: SIGTERM to the pid in its lock file, its keeper by its socket's removal */
    snprintf(cmd, sizeof(cmd), "kill $(cat /run/rld/%s.lock); sleep 0.3; rm -f /run/rld/%s.*",
             inst, inst);
    sh("%s", cmd);
    T_CHECK(rc == 0, "a group member found /run/rld/%s.seg and waited there: step %d", inst, rc);
    printf("9: a member without RLD_RUNTIME_DIR found root's instance in /run/rld and waited\n");
}

static int queue_waits(void *arg)
{
    int *n = arg;
    become_member();
    rld_client *c;
    rld_limit l;
    if (rld_open(NULL, 0, &c) < 0 || rld_find(c, "slow", &l) < 0)
        return 200;
    rld_try(c, l, 1, NULL);
    int started = 0;
    for (int i = 0; i < *n; i++) {
        uint64_t t;
        rld_charge ch = { l, 1 };
        if (rld_wait_start(c, &ch, 1, -1, NULL, &t) == 0)
            started++;
    }
    /* collect what the daemon refused at once */
    t_sleep_ns(500000000);
    rld_completion comp[64];
    int refused = 0, got;
    while ((got = rld_wait_collect(c, comp, 64)) > 0)
        for (int i = 0; i < got; i++)
            refused += comp[i].code == -ENOSPC;
    return refused;
}

static void test_waits_per_uid(void)
{
    int n = 20;   /* max_waits_per_uid = 16 */
    int refused = in_child(queue_waits, &n);
    T_CHECK(refused == 4, "20 waits of one member on a 1/s limit: 4 refused (-ENOSPC): %d",
            refused);
    T_CHECK(t_log_has(&d, "max_waits_per_uid"), "the refusal is logged");
    printf("9: queued waits per uid capped at 16 (4 of 20 refused at once)\n");
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "probe-open") == 0) {
        rld_client *c;
        int r = rld_open(NULL, 0, &c);
        printf("rld_open: %d (%s)\n", r, rld_strerror(r));
        return 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (geteuid() != 0) {
        printf("test_security: SKIP: needs root (it creates users and groups)\n");
        return T_SKIP;
    }
    make_accounts();
    char conf[400];
    snprintf(conf, sizeof(conf),
             "[rld]\ngroup = %s\nadmin_group = %s\nmax_connections_per_uid = 8\n"
             "max_waits_per_uid = 16\n\n[limit a]\nrate = 100/s\n\n[limit slow]\nrate = 1/s\n"
             "burst = 1\n", g_members, g_admins);
    t_instance(&d, "security", conf);
    snprintf(sock, sizeof(sock), "%s/%s.sock", d.dir, d.instance);
    snprintf(segsock, sizeof(segsock), "%s/%s.seg", d.dir, d.instance);
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld started");
    test_creds();
    test_segment();
    test_config_device();
    char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    T_CHECK(n > 0, "readlink /proc/self/exe");
    self[n] = '\0';
    test_timens(self);
    test_waits_per_uid();
    test_system_instance(d.conf);
    test_foreign_keeper();
    test_conn_caps();
    T_CHECK(!t_log_has(&d, "AddressSanitizer") && !t_log_has(&d, "runtime error"),
            "no sanitizer reports in the daemon's log");
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    printf("test_security: ok\n");
    return 0;
}
