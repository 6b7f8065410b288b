/*
 * handout.h - how a process gets an instance's segment: a sealed memfd handed out over the
 * segment socket <runtime>/<instance>.seg with SCM_RIGHTS.
 *
 * The segment is not a file anyone can open: it is a memfd sealed against shrinking and
 * growing (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), so no process that can write it can
 * truncate it and kill the others with SIGBUS. The keeper (daemon/keeper.c), a small
 * process the daemon starts, holds the memfd across daemon restarts and answers every
 * connection on the segment socket with one message:
 *
 *   rldi_handout { magic "RLDSEG01", version, its CLOCK_MONOTONIC, size, keeper pid }
 *   + the memfd in SCM_RIGHTS
 *
 * then closes it. The socket's mode (0600, or 0660 and [rld] group) says who may have it.
 * The monotonic time lets a client tell that its clock is not the daemon's (another time
 * namespace) before it ever touches a limit. A peer of the keeper's own user may then send
 * a command on the same connection: replace the memfd (a new segment) or quit.
 */
#ifndef RLD_COMMON_HANDOUT_H
#define RLD_COMMON_HANDOUT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define RLDI_HANDOUT_MAGIC   "RLDSEG01"
#define RLDI_HANDOUT_VERSION 1u
#define RLDI_SEALS_REQUIRED  0x7   /* F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW */

typedef struct rldi_handout {
    char     magic[8];
    uint32_t version;
    uint32_t keeper_pid;
    uint64_t mono_ns;         /* the keeper's CLOCK_MONOTONIC when it sent this */
    uint64_t size;            /* of the memfd */
    uint32_t slot_count;      /* as the daemon made it: a damaged header can be rebuilt */
    uint16_t abi_major;       /* of the daemon that made it: a header may lie, this does not */
    uint16_t reserved;
} rldi_handout;

/* Commands a peer of the keeper's own user may send after the handout. */
#define RLDI_KEEPER_SET   "SET"    /* "SET <slots> <abi>" with a memfd in SCM_RIGHTS: hand it
                                      out from now on */
#define RLDI_KEEPER_QUIT  "QUIT"   /* exit: the segment goes when its last mapping does */

/*
 * Connect to the segment socket PATH and receive the memfd. On success *fd (O_CLOEXEC)
 * and *h; *conn the connection when CONN is not NULL (to send a command), else closed;
 * *peer_uid the keeper's uid. Checks: the message's shape, the seals, the size (the ABI and
 * the geometry are the caller's to check: the daemon may replace another ABI's). -ENOENT /
 * -ECONNREFUSED no keeper; -EACCES; RLD_ECORRUPT a peer that is not a keeper or a memfd
 * without the seals; RLD_ECLOCK the keeper's CLOCK_MONOTONIC is not ours (more than 1 ms
 * outside the exchange).
 */
int rldi_handout_fetch(const char *path, int *fd, rldi_handout *h, int *conn, uid_t *peer_uid);

/* Send CMD on a connection from rldi_handout_fetch, with FD (or -1) in SCM_RIGHTS. */
int rldi_handout_command(int conn, const char *cmd, int fd);

/* The keeper's side: send the handout for memfd FD of SIZE bytes and SLOTS slots, made by
 * a daemon of ABI major ABI, on C. */
int rldi_handout_send(int c, int fd, uint64_t size, uint32_t slots, uint16_t abi);

/* Check that FD is a memfd with the seals rld relies on; its size in *size. 0 or
 * RLD_ECORRUPT / -errno. */
int rldi_handout_check_fd(int fd, uint64_t *size);

#endif
