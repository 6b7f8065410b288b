/*
 * keeper.c - the segment keeper (see keeper.h).
 *
 * The keeper is forked by the daemon and never execs: it closes every descriptor but the
 * memfd, its listening socket and stdio, leaves the daemon's session (a Ctrl-C or the
 * daemon's death must not take the segment with it) and loops on poll(). Connections of
 * other users get the handout and are closed at once; connections of its own user are kept
 * for up to a second for a command. A flood can only make it busy: it never blocks on a
 * peer (non-blocking sockets), and when it runs out of descriptors it backs off instead of
 * spinning.
 */
#define _GNU_SOURCE
#include "keeper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "codes.h"
#include "handout.h"
#include "layout.h"
#include "log.h"

#define MAX_PENDING   32           /* own-user connections waiting for a command */
#define COMMAND_MS    1000

int keeper_fetch(const char *path, int *fd, pid_t *pid, uint32_t *slots, uint16_t *abi,
                 char *err, size_t errlen)
{
    rldi_handout h;
    uid_t uid;
    int r = rldi_handout_fetch(path, fd, &h, NULL, &uid);
    if (r < 0) {
        if (r != -ENOENT && r != -ECONNREFUSED)
            snprintf(err, errlen, "segment socket %s: %s", path, rldi_strerror(r));
        return r;
    }
    if (uid != geteuid()) {
        close(*fd);
        *fd = -1;
        snprintf(err, errlen, "segment socket %s is served by uid %u, not by rld's user (uid %u): "
                 "refusing to adopt a segment someone else made (remove the socket, and check "
                 "who can write its directory)", path, (unsigned)uid, (unsigned)geteuid());
        return -EPERM;
    }
    *pid = (pid_t)h.keeper_pid;
    *slots = h.slot_count;
    *abi = h.abi_major;
    return 0;
}

int keeper_replace(const char *path, int fd, uint32_t slots)
{
    int old, conn;
    rldi_handout h;
    uid_t uid;
    int r = rldi_handout_fetch(path, &old, &h, &conn, &uid);
    if (r < 0)
        return r;
    close(old);
    char cmd[32];
    snprintf(cmd, sizeof(cmd), "%s %u %u", RLDI_KEEPER_SET, slots, RLDI_ABI_MAJOR);
    if (uid != geteuid())
        r = -EPERM;
    else
        r = rldi_handout_command(conn, cmd, fd);
    close(conn);
    return r;
}

/* ---- the keeper process ----------------------------------------------------------------- */

typedef struct pending {
    int      fd;
    uint64_t until_ns;
} pending;

static void close_others(int keep1, int keep2)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        for (int i = 3; i < 1024; i++)
            if (i != keep1 && i != keep2)
                close(i);
        return;
    }
    int dfd = dirfd(d), fds[1024], n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 1024) {
        int i = atoi(e->d_name);
        if (e->d_name[0] != '.' && i > 2 && i != keep1 && i != keep2 && i != dfd)
            fds[n++] = i;
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

/* A command from a peer of our own user on C: 1 handled (close C), 0 nothing yet, -1 gone. */
static int command(int c, int *memfd, uint64_t *size, uint32_t *slots, uint16_t *abi)
{
    char buf[32];
    union {
        struct cmsghdr align;
        char b[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = { buf, sizeof(buf) - 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                         .msg_controllen = sizeof(ctl.b) };
    ssize_t n = recvmsg(c, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    int got = -1;
    for (struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len == CMSG_LEN(sizeof(int)) && got < 0)
            memcpy(&got, CMSG_DATA(cm), sizeof(int));
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char ok = 'n';
    uint64_t nsize;
    unsigned nslots, nabi;
    char tail;
    if (sscanf(buf, RLDI_KEEPER_SET " %u %u%c", &nslots, &nabi, &tail) == 2 && got >= 0 &&
        nabi <= UINT16_MAX && rldi_handout_check_fd(got, &nsize) == 0) {
        close(*memfd);
        *memfd = got;
        *size = nsize;
        *slots = nslots;
        *abi = (uint16_t)nabi;
        got = -1;
        ok = 'k';
    } else if (strcmp(buf, RLDI_KEEPER_QUIT) == 0) {
        ok = 'k';
        (void)send(c, &ok, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        _exit(0);
    }
    if (got >= 0)
        close(got);
    (void)send(c, &ok, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    return 1;
}

static __attribute__((noreturn)) void keeper_main(int lfd, int memfd, uint32_t slots,
                                                  const char *path)
{
    uint16_t abi = RLDI_ABI_MAJOR;
    uint64_t size;
    if (rldi_handout_check_fd(memfd, &size) < 0)
        _exit(1);
    struct stat st;
    ino_t ino = stat(path, &st) == 0 ? st.st_ino : 0;
    pending pend[MAX_PENDING];
    int npend = 0;
    uint64_t next_check = rldi_mono_ns() + KEEPER_CHECK_MS * 1000000ull;
    for (;;) {
        struct pollfd p[MAX_PENDING + 1];
        p[0] = (struct pollfd){ lfd, POLLIN, 0 };
        for (int i = 0; i < npend; i++)
            p[i + 1] = (struct pollfd){ pend[i].fd, POLLIN, 0 };
        int pr = poll(p, (nfds_t)npend + 1, npend ? 100 : KEEPER_CHECK_MS);
        uint64_t now = rldi_mono_ns();
        if (now >= next_check) {
            /* our socket file removed or replaced: the instance is gone, so are we */
            if (stat(path, &st) < 0 || st.st_ino != ino)
                _exit(0);
            next_check = now + KEEPER_CHECK_MS * 1000000ull;
        }
        if (pr < 0)
            continue;
        for (int i = npend - 1; i >= 0; i--) {
            int r = (p[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) ? command(pend[i].fd, &memfd, &size, &slots, &abi) : 0;
            if (r != 0 || now >= pend[i].until_ns) {
                close(pend[i].fd);
                pend[i] = pend[--npend];
            }
        }
        if (!(p[0].revents & POLLIN))
            continue;
        for (int k = 0; k < 64; k++) {
            int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (c < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                    struct timespec ts = { 0, 50000000 };   /* back off, do not spin */
                    nanosleep(&ts, NULL);
                }
                break;
            }
            struct ucred cred;
            socklen_t len = sizeof(cred);
            bool own = getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
                       cred.uid == geteuid();
            if (rldi_handout_send(c, memfd, size, slots, abi) < 0 || !own) {
                close(c);
                continue;
            }
            if (npend == MAX_PENDING) {      /* the oldest waited long enough */
                close(pend[0].fd);
                pend[0] = pend[--npend];
            }
            pend[npend++] = (pending){ c, now + COMMAND_MS * 1000000ull };
        }
    }
}

pid_t keeper_spawn(const char *path, int fd, uint32_t slots, mode_t mode, gid_t gid, char *err,
                   size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "segment socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    int l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (l < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -errno;
    }
    /* we hold the instance lock and no keeper answered: a socket file there is stale */
    unlink(path);
    mode_t old = umask(0777 & ~mode);
    int r = bind(l, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0 || (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0) || listen(l, 128) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(e));
        close(l);
        return -e;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot start the segment keeper: %s", strerror(e));
        close(l);
        unlink(path);
        return -e;
    }
    if (pid == 0) {
        setsid();
        prctl(PR_SET_NAME, "rld-keeper", 0, 0, 0);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGINT, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);
        signal(SIGTERM, SIG_DFL);
        /* nothing of the daemon's: its stdio may be a terminal or a pipe someone waits on */
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
            if (null > 2)
                close(null);
        }
        close_others(l, fd);
        keeper_main(l, fd, slots, path);
    }
    close(l);
    return pid;
}
