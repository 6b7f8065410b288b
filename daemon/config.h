/*
 * config.h - the daemon's configuration file (default /etc/rld/rld.conf), loaded and fully
 * validated in one go so that a bad file can be refused before anything running changes.
 *
 *   [rld]                      optional, at most once
 *   max_limits  = 4096         1..2^24, capacity of the shared segment
 *   max_waiters = 65536        1..2^24, queued waits per limit
 *   max_connections_per_uid = 256    1..4096, connections of one user (admins: no cap)
 *   max_waits_per_uid = 16384  1..2^24, queued waits of one user, across limits
 *   group       = rld          group owning the socket and segment ("" = daemon's own)
 *   admin_group = rldadmin     group allowed to change configuration (besides root)
 *   log_level   = info         error | warn | info | debug
 *
 *   [limit NAME]               one per limit, NAME as rldi_name_check()
 *   rate  = 3500/min           required: COUNT/PERIOD or "unlimited" (see rate.h)
 *   burst = 3500               optional, positive; defaults to the count
 *
 * Comments start with ';' or '#', at the start of a line or after white space.
 * Errors read "FILE:LINE: message 'token'", and only the first one is reported.
 */
#ifndef RLD_DAEMON_CONFIG_H
#define RLD_DAEMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "limitdef.h"

#define RLDI_CONF_DEFAULT_MAX_LIMITS   4096u
#define RLDI_CONF_DEFAULT_MAX_WAITERS  65536u
#define RLDI_CONF_MAX_WAITERS_MAX      (1u << 24)
#define RLDI_CONF_DEFAULT_CONNS_PER_UID 256u
#define RLDI_CONF_DEFAULT_WAITS_PER_UID 16384u
#define RLDI_CONF_LINE_MAX             1024   /* bytes per line, without the newline */
#define RLDI_CONF_SIZE_MAX             (64 << 20)   /* bytes per file */

typedef struct rldi_config {
    char            path[4096];
    uint32_t        max_limits;       /* [rld] max_limits, default 4096, 1..(1<<24) */
    char            group[64];        /* [rld] group (socket/segment group), "" if unset */
    char            admin_group[64];  /* [rld] admin_group, "" if unset */
    uint32_t        max_waiters;      /* [rld] max_waiters per limit, default 65536 */
    uint32_t        max_conns_per_uid;   /* [rld] max_connections_per_uid, default 256 */
    uint32_t        max_waits_per_uid;   /* [rld] max_waits_per_uid, default 16384 */
    char            log_level[16];    /* [rld] log_level: error|warn|info|debug, default "info" */
    rldi_limitdef   *limits;          /* in file order; burst resolved (count, or 0 for unlimited) */
    size_t          nlimits;
    uint32_t        *index;           /* names -> limits index + 1 (open addressing) */
    size_t          index_size;
} rldi_config;

/*
 * Load and fully validate PATH. On error returns a negative errno (-ENOENT/-EACCES... for an
 * unreadable file, -EINVAL for bad content, -ENOMEM) and writes one line into err (when err
 * is non-NULL and errlen > 0): "FILE:LINE: message 'token'", or "FILE: <strerror>" for file
 * errors. On error *out is left zeroed (nothing allocated).
 *
 * Not thread-safe: libinih's options are process globals, set for the duration of the call
 * (and restored afterwards).
 */
int rldi_config_load(const char *path, rldi_config *out, char *err, size_t errlen);

/* Same, from a string; NAME stands for the file name in messages and in out->path. */
int rldi_config_parse(const char *text, const char *name, rldi_config *out, char *err,
                      size_t errlen);

/* Frees what a successful load allocated and zeroes *c. Safe on a zeroed config. */
void rldi_config_free(rldi_config *c);

/* Limit NAME, or NULL if absent (a hash lookup). */
const rldi_limitdef *rldi_config_find(const rldi_config *c, const char *name);

#endif
