/*
 * httpd.h - the metrics endpoint's transport ([rld] metrics_listen): a TCP listener on the
 * daemon's one io_uring ring (server.c), answering GET /metrics with a body the layer above
 * writes as it goes (httpd_body), and everything else with a short error. Like server.c it
 * knows nothing of limits.
 *
 * It shares the loop with the waits, so nothing it does may hold the loop or grow without
 * bound: at most HTTPD_MAX_CONNS connections (HTTPD_MAX_PER_ADDR from one address), a
 * request of at most HTTPD_REQUEST_MAX bytes that must be complete within
 * HTTPD_REQUEST_NS of the accept (slowloris), a response that must be taken within
 * HTTPD_RESPONSE_NS, one body chunk of HTTPD_CHUNK bytes made at a time, only when the
 * previous one was sent. One request per connection (Connection: close). Nothing blocks.
 */
#ifndef RLD_DAEMON_HTTPD_H
#define RLD_DAEMON_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define HTTPD_MAX_CONNS     16u
#define HTTPD_MAX_PER_ADDR  4u
#define HTTPD_REQUEST_MAX   8192u
#define HTTPD_CHUNK         65536u
#define HTTPD_REQUEST_NS    5000000000ull
#define HTTPD_RESPONSE_NS   60000000000ull

/* The body of a 200 reply, from the layer above: BEGIN makes a scrape's state (NULL: out of
 * memory, a 503 is sent), NEXT writes its next bytes (at most CAP, CAP >= 1024; 0 at the
 * end), END frees it. */
typedef struct httpd_body {
    void  *ctx;
    void  *(*begin)(void *ctx);
    size_t (*next)(void *ctx, void *state, char *buf, size_t cap);
    void   (*end)(void *ctx, void *state);
} httpd_body;

typedef struct httpd httpd;

/* Listen on SA (NAME for messages, "127.0.0.1:9731"), serving BODY at /metrics. NULL with
 * ERR set (a one-line reason) on failure. */
httpd *httpd_listen(const struct sockaddr *sa, socklen_t salen, const char *name,
                    const httpd_body *body, char *err, size_t errlen);

/* The server's loop drives it (server.c): arm the first accept; hand over a completion of
 * one of its kinds (httpd_owns); close what is due at NOW and say when next (0: nothing);
 * free what the ring no longer refers to; close everything at the end. */
void httpd_start(httpd *h);
bool httpd_owns(uint64_t user_data);
void httpd_complete(httpd *h, uint64_t user_data, int res, uint32_t flags);
uint64_t httpd_tick(httpd *h, uint64_t now);
void httpd_reap(httpd *h);
void httpd_close(httpd *h);

/* What it did, for Stats and the log. */
typedef struct httpd_stats {
    uint64_t served;        /* 200 replies sent whole */
    uint64_t refused;       /* connections closed at once: too many */
    uint64_t bad;           /* requests answered with an error, or timed out */
} httpd_stats;
void httpd_get_stats(const httpd *h, httpd_stats *st);

#endif
