/*
 * instance.h - where an rld instance lives: its runtime directory and the files in it. One
 * rule for the daemon, the library and the tools.
 *
 *   instance   NAME argument, else $RLD_INSTANCE, else "default"
 *   runtime    $RLD_RUNTIME_DIR, else /run/rld for root, else $XDG_RUNTIME_DIR/rld
 *              (clients of another user also look in /run/rld: a system instance)
 *   socket     <runtime>/<instance>.sock    the daemon: waits, status, changes
 *   segment    <runtime>/<instance>.seg     the keeper: hands out the segment (a memfd)
 *   lock       <runtime>/<instance>.lock    one daemon per instance
 */
#ifndef RLD_COMMON_INSTANCE_H
#define RLD_COMMON_INSTANCE_H

#include <stddef.h>

#define RLDI_INSTANCE_MAX 64

typedef struct rldi_paths {
    char instance[RLDI_INSTANCE_MAX + 1];
    char runtime_dir[4096];
    char socket_path[108];                  /* sizeof(sockaddr_un.sun_path) */
    char seg_path[108];
    char lock_path[4096];
} rldi_paths;

/* Instance names: 1..64 bytes of [A-Za-z0-9._-], not starting with '.'. 0 or -EINVAL. */
int rldi_instance_check(const char *name);

/* Resolve INSTANCE (NULL: $RLD_INSTANCE if set and not empty, else "default"; "" is invalid)
 * into every path, as the daemon of the instance places them. -EINVAL bad name;
 * -ENAMETOOLONG a path does not fit; -ENOENT no runtime directory can be derived (not
 * root, no $XDG_RUNTIME_DIR, no $RLD_RUNTIME_DIR). p->instance is always filled when the
 * name is valid. */
int rldi_paths_resolve(const char *instance, rldi_paths *p);

/* The same, for a client: without $RLD_RUNTIME_DIR a non-root process uses its own runtime
 * directory if the instance is there, else /run/rld if it is there (a system daemon whose
 * [rld] group it belongs to), else its own. Same codes; -ENOENT only when neither exists. */
int rldi_paths_find(const char *instance, rldi_paths *p);

#endif
