/*
 * wire.h - the client side of the rld socket protocol (proto/rld.proto): connect, Hello,
 * send a request, receive replies. Shared by librld (waits) and rlctl. Blocking calls with
 * timeouts; one rldi_conn is not thread-safe (librld guards it).
 */
#ifndef RLD_COMMON_WIRE_H
#define RLD_COMMON_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rld.pb-c.h"

#define RLDI_PROTOCOL_VERSION 1u
#define RLDI_MAX_MESSAGE      4096u    /* bytes per packet, both ways */

typedef struct rldi_conn {
    int      fd;
    uint64_t next_id;
    uint32_t max_message;
    bool     admin;           /* the daemon says we may change configuration */
    uint32_t features;        /* HelloReply.features: RLD__V1__FEATURE__* bits */
    char     server[64];      /* "rld 0.1.0" */
} rldi_conn;

/*
 * Connect to SOCKET_PATH and exchange Hello. 0; -ENOENT / -ECONNREFUSED (no daemon
 * listening), -EACCES, -ETIMEDOUT, -EPROTONOSUPPORT (the daemon speaks another version),
 * -EPROTO (garbage). ERR (may be NULL) gets a sentence for humans.
 */
int rldi_conn_open(const char *socket_path, const char *client_name, int timeout_ms,
                   rldi_conn *c, char *err, size_t errlen);
/* rldi_conn_open on FD, a SOCK_SEQPACKET socket the caller made (and closes: C->fd is -1 on
 * failure, FD left open), so that the caller knows the descriptor from its creation on. */
int rldi_conn_open_fd(int fd, const char *socket_path, const char *client_name, int timeout_ms,
                      rldi_conn *c, char *err, size_t errlen);
void rldi_conn_close(rldi_conn *c);

/* Send REQ (its id is assigned from next_id when 0 and returned in *id). 0 or -errno. */
int rldi_conn_send(rldi_conn *c, Rld__V1__Request *req, uint64_t *id);

/* Receive one reply within TIMEOUT_MS (-1: forever). *out is freed with
 * rld__v1__reply__free_unpacked(*out, NULL). 0, -ETIMEDOUT, -ECONNRESET (daemon gone),
 * -EPROTO (undecodable). */
int rldi_conn_recv(rldi_conn *c, int timeout_ms, Rld__V1__Reply **out);

/* Send REQ and wait for the reply with its id (replies to other ids are dropped). */
int rldi_conn_call(rldi_conn *c, Rld__V1__Request *req, int timeout_ms, Rld__V1__Reply **out);

#endif
