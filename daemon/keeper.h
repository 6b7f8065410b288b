/*
 * keeper.h - the segment keeper: a small process, started by the daemon, that holds the
 * instance's sealed memfd and hands it out on the segment socket (common/handout.h). It is
 * what lets the state outlive the daemon: a daemon killed with SIGKILL, stopped or upgraded
 * gets the same segment back from the keeper when it starts again, and clients can attach
 * while no daemon runs. The keeper does nothing else: accept, send, close; it parses no
 * request but the two commands of its own user (replace the memfd, quit).
 *
 * It exits when told to, on SIGTERM, or when its socket file is removed or replaced (the
 * instance's runtime directory cleaned up): within KEEPER_CHECK_MS.
 */
#ifndef RLD_DAEMON_KEEPER_H
#define RLD_DAEMON_KEEPER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KEEPER_CHECK_MS 1000

/*
 * The memfd held by the keeper listening at PATH. 0 with *fd and *pid; -ENOENT or
 * -ECONNREFUSED when no keeper runs there; -EPERM when the socket is served by another user
 * (never adopted: ERR says so); another code with ERR for anything else.
 */
int keeper_fetch(const char *path, int *fd, pid_t *pid, uint32_t *slots, uint16_t *abi,
                 char *err, size_t errlen);

/* Tell the keeper at PATH to hand out FD (SLOTS slots) from now on: a new segment. */
int keeper_replace(const char *path, int fd, uint32_t slots);

/*
 * Start a keeper for memfd FD (a segment of SLOTS slots) on a new socket at PATH (mode MODE,
 * group GID or (gid_t)-1), replacing a stale socket file there. Returns its pid, or -errno
 * with ERR set.
 */
pid_t keeper_spawn(const char *path, int fd, uint32_t slots, mode_t mode, gid_t gid, char *err,
                   size_t errlen);

#endif
