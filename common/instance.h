/*
 * instance.h - where an rld instance lives: its shared-memory name, runtime directory,
 * socket and lock file. One rule for the daemon, the library and the tools.
 *
 *   instance   NAME argument, else $RLD_INSTANCE, else "default"
 *   segment    shm_open("/rld.<instance>")  ->  /dev/shm/rld.<instance>
 *   runtime    $RLD_RUNTIME_DIR, else /run/rld for root, else $XDG_RUNTIME_DIR/rld
 *   socket     <runtime>/<instance>.sock      lock  <runtime>/<instance>.lock
 */
#ifndef RLD_COMMON_INSTANCE_H
#define RLD_COMMON_INSTANCE_H

#include <stddef.h>

#define RLDI_INSTANCE_MAX 64

typedef struct rldi_paths {
    char instance[RLDI_INSTANCE_MAX + 1];
    char shm_name[RLDI_INSTANCE_MAX + 8];   /* "/rld.<instance>" */
    char runtime_dir[4096];
    char socket_path[108];                  /* sizeof(sockaddr_un.sun_path) */
    char lock_path[4096];
} rldi_paths;

/* Instance names: 1..64 bytes of [A-Za-z0-9._-], not starting with '.'. 0 or -EINVAL. */
int rldi_instance_check(const char *name);

/* Resolve INSTANCE (NULL: $RLD_INSTANCE if set and not empty, else "default"; "" is invalid) into every path.
 * -EINVAL bad name; -ENAMETOOLONG a path does not fit; -ENOENT no runtime directory
 * can be derived (not root, no $XDG_RUNTIME_DIR, no $RLD_RUNTIME_DIR). The shm name is
 * always filled when the instance name is valid, even when -ENOENT is returned. */
int rldi_paths_resolve(const char *instance, rldi_paths *p);

#endif
