/*
 * test_permission.c - who may change a running rld: a peer that is not root, not rld's
 * user and not in [rld] admin_group gets -EPERM for a configuration change (Reset), is told
 * it is not an admin at Hello, and the refusal is logged. Needs root (to become another
 * user): exits 77 (skipped) otherwise, never passing without checking.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "rld.h"
#include "wire.h"

int main(void)
{
    struct passwd *pw = getpwnam("nobody");
    struct group *gr = getgrnam("nogroup");
    if (geteuid() != 0 || !pw || !gr) {
        printf("test_permission: SKIP: needs root and the nobody user and nogroup group\n");
        return T_SKIP;
    }
    t_daemon d;
    t_instance(&d, "perm", "[rld]\ngroup = nogroup\n\n[limit fifo]\nrate = 4/s\nburst = 1\n");
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld started");
    char sock[400];
    snprintf(sock, sizeof(sock), "%s/%s.sock", d.dir, d.instance);

    pid_t p = fork();
    if (p == 0) {
        if (setgroups(0, NULL) < 0 || setgid(gr->gr_gid) < 0 || setuid(pw->pw_uid) < 0)
            _exit(10);
        rldi_conn k;
        if (rldi_conn_open(sock, "test", 2000, &k, NULL, 0) < 0)
            _exit(11);
        if (k.admin)
            _exit(12);
        Rld__V1__Reset rs = RLD__V1__RESET__INIT;
        rs.limit = "fifo";
        Rld__V1__Request req = RLD__V1__REQUEST__INIT;
        req.body_case = RLD__V1__REQUEST__BODY_RESET;
        req.reset = &rs;
        Rld__V1__Reply *rep;
        if (rldi_conn_call(&k, &req, 2000, &rep) < 0)
            _exit(13);
        _exit(rep->code == -EPERM ? 0 : 14);
    }
    int st;
    waitpid(p, &st, 0);
    T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "nobody refused a Reset (status %d)",
            WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    T_CHECK(t_log_has(&d, "refused a configuration change"), "the refusal is logged");
    printf("permission: a Reset from uid nobody refused with -EPERM\n");
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");

    /* [rld] group changed between starts: the keeper (it outlives the daemon) made the
     * segment socket with the old setting; each start gives both sockets the file's */
    char segsock[400];
    snprintf(segsock, sizeof(segsock), "%s/%s.seg", d.dir, d.instance);
    struct stat sb = { 0 };
    t_write_conf(&d, "[limit fifo]\nrate = 4/s\nburst = 1\n");
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld restarted without a group");
    T_CHECK(stat(segsock, &sb) == 0 && (sb.st_mode & 0777) == 0600,
            "group removed: the segment socket is 0600 (mode %o)", (unsigned)(sb.st_mode & 0777));
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    t_write_conf(&d, "[rld]\ngroup = nogroup\n\n[limit fifo]\nrate = 4/s\nburst = 1\n");
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld restarted with the group");
    T_CHECK(stat(segsock, &sb) == 0 && (sb.st_mode & 0777) == 0660 && sb.st_gid == gr->gr_gid,
            "group added: the segment socket is 0660 of nogroup (mode %o, gid %u)",
            (unsigned)(sb.st_mode & 0777), (unsigned)sb.st_gid);
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    printf("permission: the segment socket follows [rld] group across restarts\n");
    printf("test_permission: ok\n");
    return 0;
}
