/*
 * httpd.c - the metrics endpoint's transport (see httpd.h).
 *
 * A connection lives through four states: READ (the request, into a fixed buffer, until
 * the blank line ends its head), WRITE (the reply: its head, then the body a chunk at a
 * time, with chunked transfer coding for HTTP/1.1 so that a cut-off scrape is seen as one,
 * close-delimited for HTTP/1.0), LINGER (our side shut, what the peer still sends read and
 * dropped for at most LINGER_NS and LINGER_MAX bytes, as nginx's lingering close: closing
 * with unread input would reset the connection, and the peer could lose the reply), and
 * closing (shut down, freed once the ring holds nothing of it). Completions carry kind | index | 24-bit generation, as server.c's do, so one for
 * a connection closed and reused meanwhile is recognised.
 */
#define _GNU_SOURCE
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "server.h"

enum { K_HACCEPT = 16, K_HRECV, K_HSEND };
enum { H_READ, H_WRITE, H_LINGER };

#define PAUSE_NS   100000000ull      /* out of descriptors: accept again then */
#define LINGER_NS  2000000000ull
#define LINGER_MAX 65536u
#define CHUNK_HEAD 10                /* "ffffffff\r\n" before a chunk's data */

typedef struct hconn {
    int      fd;
    uint32_t idx, gen;
    int      state;
    bool     recv_armed, send_armed, closing;
    bool     chunked, head_only, body_done;
    uint64_t deadline;
    struct sockaddr_storage peer;
    char     peer_s[INET6_ADDRSTRLEN + 8];
    void    *body;                   /* the scrape's state while its body is being written */
    size_t   rlen, lingered;
    char     rbuf[HTTPD_REQUEST_MAX];
    size_t   slen, soff;
    char     sbuf[CHUNK_HEAD + HTTPD_CHUNK + 8];
} hconn;

struct httpd {
    int          fd;
    char         name[80];
    httpd_body   body;
    hconn       *conns[HTTPD_MAX_CONNS];
    uint32_t     count, next_gen;
    bool         accept_armed, multishot;
    uint64_t     accept_resume_ns;
    httpd_stats  st;
    rlog_once    log_refused, log_bad, log_fds;
};

static uint64_t ud(int kind, const hconn *c)
{
    return (uint64_t)kind << 56 | (c ? (uint64_t)c->idx << 24 | (c->gen & 0xffffff) : 0);
}

bool httpd_owns(uint64_t data)
{
    int k = (int)(data >> 56);
    return k == K_HACCEPT || k == K_HRECV || k == K_HSEND;
}

/* ---- the listener ------------------------------------------------------------------------ */

httpd *httpd_listen(const struct sockaddr *sa, socklen_t salen, const char *name,
                    const httpd_body *body, char *err, size_t errlen)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot listen on %s for metrics: socket: %s%s", name, strerror(e),
                 e == EAFNOSUPPORT || e == EPERM || e == EACCES
                     ? " (under systemd: RestrictAddressFamilies= needs AF_INET/AF_INET6, "
                       "see rld.conf(5), METRICS)" : "");
        return NULL;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (sa->sa_family == AF_INET6) {
        /* "[::]" means IPv6 only: an operator who wants IPv4 too says 0.0.0.0 as well */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, sa, salen) < 0 || listen(fd, 64) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot listen on %s for metrics: %s", name, strerror(e));
        close(fd);
        return NULL;
    }
    httpd *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "out of memory for the metrics endpoint");
        close(fd);
        return NULL;
    }
    h->fd = fd;
    snprintf(h->name, sizeof(h->name), "%s", name);
    h->body = *body;
    h->multishot = true;
    return h;
}

static void arm_accept(httpd *h)
{
    struct io_uring_sqe *sqe = srv_sqe();
    if (h->multishot)
        io_uring_prep_multishot_accept(sqe, h->fd, NULL, NULL, SOCK_CLOEXEC);
    else
        io_uring_prep_accept(sqe, h->fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ud(K_HACCEPT, NULL));
    h->accept_armed = true;
}

void httpd_start(httpd *h)
{
    arm_accept(h);
    LOG_INFO("metrics served on http://%s/metrics", h->name);
}

/* ---- connections --------------------------------------------------------------------------- */

static void arm_recv(hconn *c)
{
    struct io_uring_sqe *sqe = srv_sqe();
    io_uring_prep_recv(sqe, c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, 0);
    io_uring_sqe_set_data64(sqe, ud(K_HRECV, c));
    c->recv_armed = true;
}

static void arm_send(hconn *c)
{
    struct io_uring_sqe *sqe = srv_sqe();
    io_uring_prep_send(sqe, c->fd, c->sbuf + c->soff, c->slen - c->soff, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, ud(K_HSEND, c));
    c->send_armed = true;
}

/* Stop serving C: whatever the ring still does on it completes (shutdown), then it is freed
 * by httpd_reap. */
static void conn_close(httpd *h, hconn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->body) {
        h->body.end(h->body.ctx, c->body);
        c->body = NULL;
    }
    shutdown(c->fd, SHUT_RDWR);
}

void httpd_reap(httpd *h)
{
    for (uint32_t i = 0; i < HTTPD_MAX_CONNS; i++) {
        hconn *c = h->conns[i];
        if (c && c->closing && !c->recv_armed && !c->send_armed) {
            close(c->fd);
            h->conns[i] = NULL;
            h->count--;
            free(c);
        }
    }
}

static hconn *conn_of(httpd *h, uint64_t data)
{
    uint32_t idx = (uint32_t)(data >> 24) & 0xffffffffu;
    if (idx >= HTTPD_MAX_CONNS)
        return NULL;
    hconn *c = h->conns[idx];
    return c && (c->gen & 0xffffff) == (data & 0xffffff) ? c : NULL;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return false;
}

static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, a, sizeof(a));
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, a, sizeof(a));
    snprintf(buf, len, "%s", a);
}

/* A short answer sent at once, without waiting: one non-blocking send into a socket buffer
 * that holds nothing else of ours. If it does not fit, the close that follows says it. */
static void send_now(int fd, const char *reply)
{
    ssize_t n = send(fd, reply, strlen(reply), MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n;
}

static const char busy_reply[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 28\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    "too many metrics connections";   /* 28 bytes */

static void on_accept(httpd *h, int fd)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    memset(&peer, 0, sizeof(peer));
    getpeername(fd, (struct sockaddr *)&peer, &len);
    uint32_t same = 0, free_idx = HTTPD_MAX_CONNS;
    for (uint32_t i = 0; i < HTTPD_MAX_CONNS; i++) {
        if (!h->conns[i]) {
            if (free_idx == HTTPD_MAX_CONNS)
                free_idx = i;
        } else if (!h->conns[i]->closing && same_addr(&h->conns[i]->peer, &peer)) {
            same++;
        }
    }
    hconn *c = free_idx < HTTPD_MAX_CONNS && same < HTTPD_MAX_PER_ADDR ? calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        char a[INET6_ADDRSTRLEN];
        addr_text(&peer, a, sizeof(a));
        h->st.refused++;
        rlog_once_at(&h->log_refused, RLOG_WARN, "metrics: refused a connection from %s (%u open, "
                     "%u from there; at most %u, %u from one address)", a, h->count, same,
                     HTTPD_MAX_CONNS, HTTPD_MAX_PER_ADDR);
        send_now(fd, busy_reply);
        close(fd);
        return;
    }
    c->fd = fd;
    c->idx = free_idx;
    c->gen = ++h->next_gen & 0xffffff;
    c->peer = peer;
    addr_text(&peer, c->peer_s, sizeof(c->peer_s));
    c->state = H_READ;
    c->deadline = rldi_mono_ns() + HTTPD_REQUEST_NS;
    h->conns[free_idx] = c;
    h->count++;
    arm_recv(c);
}

/* ---- replies --------------------------------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default:  return "Error";
    }
}

/* An error reply with a one-line text body; the connection closes once it is sent. */
static void reply_error(httpd *h, hconn *c, int status, const char *text)
{
    h->st.bad++;
    rlog_once_at(&h->log_bad, RLOG_INFO, "metrics: %d %s to %s (%s)", status, reason(status),
                 c->peer_s, text);
    int n = snprintf(c->sbuf, sizeof(c->sbuf),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n%sConnection: close\r\n\r\n%s\n", status,
                     reason(status), strlen(text) + 1,
                     status == 405 ? "Allow: GET, HEAD\r\n" : "", text);
    c->slen = n > 0 && (size_t)n < sizeof(c->sbuf) ? (size_t)n : 0;
    c->soff = 0;
    c->state = H_WRITE;
    c->body_done = true;
    c->head_only = false;
    c->deadline = rldi_mono_ns() + HTTPD_REQUEST_NS;
    if (c->slen)
        arm_send(c);
    else
        conn_close(h, c);
}

/* The request line of a complete head: "GET /metrics HTTP/1.1". */
static void on_request(httpd *h, hconn *c, size_t head_len)
{
    char line[256];
    size_t n = 0;
    while (n < head_len && c->rbuf[n] != '\r' && c->rbuf[n] != '\n')
        n++;
    if (n >= sizeof(line)) {
        reply_error(h, c, 400, "request line too long");
        return;
    }
    memcpy(line, c->rbuf, n);
    line[n] = '\0';
    char *method = line, *target = strchr(line, ' '), *version = NULL;
    if (target) {
        *target++ = '\0';
        version = strchr(target, ' ');
        if (version)
            *version++ = '\0';
    }
    if (!target || !version || !*method || *target != '/' || strchr(version, ' ')) {
        reply_error(h, c, 400, "expected: GET /metrics HTTP/1.1");
        return;
    }
    if (strncmp(version, "HTTP/", 5) != 0) {
        reply_error(h, c, 400, "expected: GET /metrics HTTP/1.1");
        return;
    }
    if (strcmp(version, "HTTP/1.1") != 0 && strcmp(version, "HTTP/1.0") != 0) {
        reply_error(h, c, 505, "HTTP/1.0 and HTTP/1.1 only");
        return;
    }
    size_t plen = strcspn(target, "?");
    if (plen != strlen("/metrics") || strncmp(target, "/metrics", plen) != 0) {
        reply_error(h, c, 404, "not found: rld serves /metrics only");
        return;
    }
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        reply_error(h, c, 405, "/metrics answers GET and HEAD");
        return;
    }
    c->body = head ? NULL : h->body.begin(h->body.ctx);
    if (!head && !c->body) {
        reply_error(h, c, 503, "out of memory");
        return;
    }
    c->chunked = strcmp(version, "HTTP/1.1") == 0;
    c->head_only = head;
    c->body_done = head;
    int k = snprintf(c->sbuf, sizeof(c->sbuf),
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                     "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
                     c->chunked ? "Transfer-Encoding: chunked\r\n" : "");
    c->slen = (size_t)k;
    c->soff = 0;
    c->state = H_WRITE;
    c->deadline = rldi_mono_ns() + HTTPD_RESPONSE_NS;
    arm_send(c);
}

/* The next part of C's body into its send buffer; false when all was sent. */
static bool refill(httpd *h, hconn *c)
{
    if (c->body_done)
        return false;
    size_t n = h->body.next(h->body.ctx, c->body, c->sbuf + CHUNK_HEAD, HTTPD_CHUNK);
    c->soff = 0;
    if (n == 0) {
        c->body_done = true;
        h->body.end(h->body.ctx, c->body);
        c->body = NULL;
        h->st.served++;
        if (!c->chunked)
            return false;
        memcpy(c->sbuf, "0\r\n\r\n", 5);     /* the last chunk */
        c->slen = 5;
        return true;
    }
    if (!c->chunked) {
        c->soff = CHUNK_HEAD;
        c->slen = CHUNK_HEAD + n;
        return true;
    }
    char size[CHUNK_HEAD + 1];
    int k = snprintf(size, sizeof(size), "%zx\r\n", n);
    c->soff = CHUNK_HEAD - (size_t)k;
    memcpy(c->sbuf + c->soff, size, (size_t)k);
    memcpy(c->sbuf + CHUNK_HEAD + n, "\r\n", 2);
    c->slen = CHUNK_HEAD + n + 2;
    return true;
}

/* The reply is out: shut our side, and read what the peer still sends until it closes. */
static void linger(httpd *h, hconn *c)
{
    if (shutdown(c->fd, SHUT_WR) < 0) {
        conn_close(h, c);
        return;
    }
    c->state = H_LINGER;
    c->deadline = rldi_mono_ns() + LINGER_NS;
    c->rlen = 0;
    arm_recv(c);
}

static void on_recv(httpd *h, hconn *c, int res)
{
    c->recv_armed = false;
    if (c->closing)
        return;
    if (c->state == H_LINGER) {
        c->lingered += res > 0 ? (size_t)res : 0;
        if (res <= 0 || c->lingered > LINGER_MAX)
            conn_close(h, c);
        else
            arm_recv(c);              /* into the same bytes: dropped */
        return;
    }
    if (c->state != H_READ)
        return;
    if (res <= 0) {
        conn_close(h, c);             /* gone before its request was whole */
        return;
    }
    size_t from = c->rlen > 3 ? c->rlen - 3 : 0;
    c->rlen += (size_t)res;
    /* the head ends at a blank line: CRLF CRLF, or bare LFs from a lenient client */
    for (size_t i = from; i < c->rlen; i++) {
        if (c->rbuf[i] != '\n')
            continue;
        if ((i >= 1 && c->rbuf[i - 1] == '\n') ||
            (i >= 3 && c->rbuf[i - 1] == '\r' && c->rbuf[i - 2] == '\n' && c->rbuf[i - 3] == '\r')) {
            on_request(h, c, i + 1);
            return;
        }
    }
    if (c->rlen == sizeof(c->rbuf)) {
        reply_error(h, c, 431, "request head over 8192 bytes");
        return;
    }
    arm_recv(c);
}

static void on_send(httpd *h, hconn *c, int res)
{
    c->send_armed = false;
    if (c->closing)
        return;
    if (res <= 0) {
        conn_close(h, c);
        return;
    }
    c->soff += (size_t)res;
    if (c->soff < c->slen || refill(h, c)) {
        arm_send(c);
        return;
    }
    linger(h, c);                     /* all sent: Connection: close */
}

void httpd_complete(httpd *h, uint64_t data, int res, uint32_t flags)
{
    hconn *c;
    switch ((int)(data >> 56)) {
    case K_HACCEPT:
        if (!h->multishot || !(flags & IORING_CQE_F_MORE))
            h->accept_armed = false;
        if (res >= 0)
            on_accept(h, res);
        else if (res == -EINVAL && h->multishot)
            h->multishot = false;
        else if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
            rlog_once_at(&h->log_fds, RLOG_WARN, "metrics: accept: %s: pausing", strerror(-res));
            h->accept_resume_ns = rldi_mono_ns() + PAUSE_NS;
        }
        break;
    case K_HRECV:
        if ((c = conn_of(h, data)))
            on_recv(h, c, res);
        break;
    case K_HSEND:
        if ((c = conn_of(h, data)))
            on_send(h, c, res);
        break;
    }
}

uint64_t httpd_tick(httpd *h, uint64_t now)
{
    uint64_t next = 0;
    for (uint32_t i = 0; i < HTTPD_MAX_CONNS; i++) {
        hconn *c = h->conns[i];
        if (!c || c->closing)
            continue;
        if (now >= c->deadline) {
            if (c->state == H_READ) {
                h->st.bad++;
                rlog_once_at(&h->log_bad, RLOG_INFO, "metrics: %s sent no whole request in "
                             "%llu s: closed", c->peer_s,
                             (unsigned long long)(HTTPD_REQUEST_NS / 1000000000u));
                send_now(c->fd, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n"
                                "Connection: close\r\n\r\n");
            } else if (c->state == H_WRITE) {
                h->st.bad++;
                rlog_once_at(&h->log_bad, RLOG_INFO, "metrics: %s did not take its reply in "
                             "%llu s: closed", c->peer_s,
                             (unsigned long long)(HTTPD_RESPONSE_NS / 1000000000u));
            }                                 /* H_LINGER: the peer had its reply */
            conn_close(h, c);
            continue;
        }
        if (!next || c->deadline < next)
            next = c->deadline;
    }
    if (!h->accept_armed) {
        if (now >= h->accept_resume_ns)
            arm_accept(h);
        else if (!next || h->accept_resume_ns < next)
            next = h->accept_resume_ns;
    }
    return next;
}

void httpd_close(httpd *h)
{
    if (!h)
        return;
    for (uint32_t i = 0; i < HTTPD_MAX_CONNS; i++) {
        hconn *c = h->conns[i];
        if (!c)
            continue;
        if (c->body)
            h->body.end(h->body.ctx, c->body);
        close(c->fd);
        free(c);
    }
    close(h->fd);
    free(h);
}

void httpd_get_stats(const httpd *h, httpd_stats *st)
{
    *st = h ? h->st : (httpd_stats){ 0, 0, 0 };
}
