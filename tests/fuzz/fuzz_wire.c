/*
 * fuzz_wire.c - the client side of the protocol (common/wire.c): whatever a daemon (or an
 * impostor bound to the socket path) sends back, librld and rlctl decode it without
 * crashing or leaking. The input is sent as one SOCK_SEQPACKET packet on a socketpair and
 * received by rldi_conn_recv; a decoded reply's fields are then read as the callers do.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire.h"

static int sv[2] = { -1, -1 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sv[0] < 0 && socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
        abort();
    if (size > RLDI_MAX_MESSAGE + 64)
        size = RLDI_MAX_MESSAGE + 64;
    if (send(sv[1], data, size, 0) != (ssize_t)size)
        abort();
    rldi_conn c = { .fd = sv[0], .max_message = RLDI_MAX_MESSAGE };
    Rld__V1__Reply *rep = NULL;
    int r = rldi_conn_recv(&c, 0, &rep);
    if (size == 0) {
        /* an empty packet reads as 0 bytes: the peer closed, for a SEQPACKET reader */
        if (r != -ECONNRESET && r != 0)
            abort();
    } else if (size > RLDI_MAX_MESSAGE) {
        if (r != -EPROTO)
            abort();                       /* oversized replies are refused, not truncated */
    }
    if (r == 0 && rep) {
        /* read what callers read */
        volatile size_t sink = strlen(rep->message);
        if (rep->body_case == RLD__V1__REPLY__BODY_STATUS)
            for (size_t i = 0; i < rep->status->n_limits; i++)
                sink += strlen(rep->status->limits[i]->name) + strlen(rep->status->limits[i]->rate);
        if (rep->body_case == RLD__V1__REPLY__BODY_HELLO)
            sink += strlen(rep->hello->server_version) + strlen(rep->hello->instance);
        (void)sink;
        rld__v1__reply__free_unpacked(rep, NULL);
    }
    return 0;
}
