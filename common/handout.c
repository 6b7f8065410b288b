/* handout.c - the segment socket's one message and its memfd (see handout.h). */
#define _GNU_SOURCE
#include "handout.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "codes.h"
#include "layout.h"

#define HANDOUT_TIMEOUT_MS 2000
#define CLOCK_SLACK_NS     1000000u    /* the same clock read around the exchange */

int rldi_handout_check_fd(int fd, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    int seals = fcntl(fd, F_GET_SEALS);
    /* Without these seals any process holding the fd could shrink it under every mapping
     * (SIGBUS for all): refuse it, whoever sent it. */
    if (!S_ISREG(st.st_mode) || seals < 0 ||
        (seals & RLDI_SEALS_REQUIRED) != RLDI_SEALS_REQUIRED || st.st_size < RLDI_HEADER_SIZE)
        return RLD_ECORRUPT;
    *size = (uint64_t)st.st_size;
    return 0;
}

int rldi_handout_fetch(const char *path, int *fd, rldi_handout *h, int *conn, uid_t *peer_uid)
{
    *fd = -1;
    if (conn)
        *conn = -1;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    uint64_t t0 = rldi_mono_ns();
    int r = 0;
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = -errno;
        close(s);
        return r;
    }
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
        r = -errno;
        close(s);
        return r;
    }
    struct pollfd p = { s, POLLIN, 0 };
    int pr;
    while ((pr = poll(&p, 1, HANDOUT_TIMEOUT_MS)) < 0 && errno == EINTR)
        ;
    if (pr <= 0) {
        close(s);
        return pr == 0 ? -ETIMEDOUT : -errno;
    }
    rldi_handout msg;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = { &msg, sizeof(msg) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf) };
    ssize_t n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
    uint64_t t1 = rldi_mono_ns();
    int got = -1;
    for (struct cmsghdr *cm = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len == CMSG_LEN(sizeof(int)) && got < 0)
            memcpy(&got, CMSG_DATA(cm), sizeof(int));
    if (n < 0)
        r = errno == ECONNRESET ? -ECONNREFUSED : -errno;
    else if ((size_t)n != sizeof(msg) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || got < 0 ||
             memcmp(msg.magic, RLDI_HANDOUT_MAGIC, sizeof(msg.magic)) != 0 ||
             msg.version != RLDI_HANDOUT_VERSION)
        r = RLD_ECORRUPT;
    else if (msg.mono_ns + CLOCK_SLACK_NS < t0 || msg.mono_ns > t1 + CLOCK_SLACK_NS)
        r = RLD_ECLOCK;

    uint64_t size = 0;
    if (r == 0 && (r = rldi_handout_check_fd(got, &size)) == 0 && size != msg.size)
        r = RLD_ECORRUPT;
    if (r < 0) {
        if (got >= 0)
            close(got);
        close(s);
        return r;
    }
    *fd = got;
    *h = msg;
    if (peer_uid)
        *peer_uid = cred.uid;
    if (conn)
        *conn = s;
    else
        close(s);
    return 0;
}

int rldi_handout_command(int conn, const char *cmd, int fd)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = { (void *)cmd, strlen(cmd) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (fd >= 0) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    if (sendmsg(conn, &mh, MSG_NOSIGNAL) < 0)
        return -errno;
    /* the keeper answers with one byte once it has acted, so the caller can rely on it */
    struct pollfd p = { conn, POLLIN, 0 };
    char ok;
    if (poll(&p, 1, HANDOUT_TIMEOUT_MS) <= 0 || recv(conn, &ok, 1, 0) != 1)
        return -ETIMEDOUT;
    return ok == 'k' ? 0 : -EPERM;
}

int rldi_handout_send(int c, int fd, uint64_t size, uint32_t slots, uint16_t abi)
{
    rldi_handout msg;
    memset(&msg, 0, sizeof(msg));
    memcpy(msg.magic, RLDI_HANDOUT_MAGIC, sizeof(msg.magic));
    msg.version = RLDI_HANDOUT_VERSION;
    msg.keeper_pid = (uint32_t)getpid();
    msg.size = size;
    msg.slot_count = slots;
    msg.abi_major = abi;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = { &msg, sizeof(msg) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf) };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    msg.mono_ns = rldi_mono_ns();     /* last, as close to the send as possible */
    return sendmsg(c, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -errno : 0;
}
