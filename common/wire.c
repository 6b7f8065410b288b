/* wire.c - client side of the socket protocol (see wire.h). */
#define _GNU_SOURCE
#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

static void say(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, a, b);
}

int rldi_conn_send(rldi_conn *c, Rld__V1__Request *req, uint64_t *id)
{
    if (req->id == 0)
        req->id = ++c->next_id;
    if (id)
        *id = req->id;
    size_t n = rld__v1__request__get_packed_size(req);
    if (n > c->max_message)
        return -EMSGSIZE;
    uint8_t buf[RLDI_MAX_MESSAGE];
    rld__v1__request__pack(req, buf);
    ssize_t w;
    do
        w = send(c->fd, buf, n, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        return errno == EPIPE ? -ECONNRESET : -errno;
    return 0;
}

static int64_t mono_ms(void)
{
    return (int64_t)(rldi_mono_ns() / 1000000u);
}

int rldi_conn_recv(rldi_conn *c, int timeout_ms, Rld__V1__Reply **out)
{
    uint8_t buf[RLDI_MAX_MESSAGE + 1];
    int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
    for (;;) {
        int wait = deadline < 0 ? -1 : (int)(deadline - mono_ms());
        if (deadline >= 0 && wait < 0)
            wait = 0;
        struct pollfd p = { c->fd, POLLIN, 0 };
        int r = poll(&p, 1, wait);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ETIMEDOUT;
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_TRUNC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ECONNRESET;
        if ((size_t)n > RLDI_MAX_MESSAGE)
            return -EPROTO;
        *out = rld__v1__reply__unpack(NULL, (size_t)n, buf);
        return *out ? 0 : -EPROTO;
    }
}

int rldi_conn_call(rldi_conn *c, Rld__V1__Request *req, int timeout_ms, Rld__V1__Reply **out)
{
    uint64_t id;
    int r = rldi_conn_send(c, req, &id);
    if (r < 0)
        return r;
    int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
    for (;;) {
        int left = deadline < 0 ? -1 : (int)(deadline - mono_ms());
        if (deadline >= 0 && left < 0)
            left = 0;
        if ((r = rldi_conn_recv(c, left, out)) < 0)
            return r;
        if ((*out)->id == id || (*out)->id == 0)
            return 0;
        rld__v1__reply__free_unpacked(*out, NULL);
    }
}

int rldi_conn_open(const char *socket_path, const char *client_name, int timeout_ms,
                   rldi_conn *c, char *err, size_t errlen)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        memset(c, 0, sizeof(*c));
        c->fd = -1;
        return -errno;
    }
    int r = rldi_conn_open_fd(fd, socket_path, client_name, timeout_ms, c, err, errlen);
    if (r < 0)
        close(fd);
    return r;
}

int rldi_conn_open_fd(int fd, const char *socket_path, const char *client_name, int timeout_ms,
                      rldi_conn *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->max_message = RLDI_MAX_MESSAGE;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(socket_path) >= sizeof(sa.sun_path)) {
        say(err, errlen, "socket path too long: %s%s", socket_path, "");
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, socket_path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        say(err, errlen, "cannot connect to %s: %s", socket_path, strerror(e));
        return -e;
    }
    c->fd = fd;
    Rld__V1__Hello hello = RLD__V1__HELLO__INIT;
    hello.protocol_version = RLDI_PROTOCOL_VERSION;
    hello.client_name = (char *)client_name;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_HELLO;
    req.hello = &hello;
    Rld__V1__Reply *rep;
    int r = rldi_conn_call(c, &req, timeout_ms, &rep);
    if (r < 0) {
        say(err, errlen, "no answer from rld at %s: %s", socket_path, strerror(-r));
        c->fd = -1;                     /* the caller's to close */
        return r;
    }
    if (rep->code != 0 || rep->body_case != RLD__V1__REPLY__BODY_HELLO) {
        r = rep->code ? rep->code : -EPROTO;
        say(err, errlen, "rld refused the connection: %s%s", rep->message, "");
        rld__v1__reply__free_unpacked(rep, NULL);
        c->fd = -1;
        return r;
    }
    c->admin = rep->hello->admin;
    c->features = rep->hello->features;
    if (rep->hello->max_message && rep->hello->max_message < c->max_message)
        c->max_message = rep->hello->max_message;
    snprintf(c->server, sizeof(c->server), "%s", rep->hello->server_version);
    rld__v1__reply__free_unpacked(rep, NULL);
    return 0;
}

void rldi_conn_close(rldi_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}
