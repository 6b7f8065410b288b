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
 *   metrics_listen = 127.0.0.1:9731   the Prometheus endpoint (HOST:PORT; off when absent)
 *
 *   [redis]                    optional, at most once; needed by global limits
 *   url = redis://HOST[:PORT][/DB] | unix:///PATH[?db=DB]    (no password in it)
 *   password_file = /etc/rld/redis.pass    AUTH password (first line), 0600/0640 file
 *   username = NAME            AUTH user (Redis ACL); default: none
 *   connect_timeout = 1s, timeout = 500ms, lease_period = 100ms
 *   key_prefix = rld:          keys are PREFIX{NAME}
 *   host_id = NAME             this rld among the others; default HOSTNAME/INSTANCE
 *
 *   [limit NAME]               one per limit, NAME as rldi_name_check()
 *   rate  = 3500/min           required: COUNT/PERIOD or "unlimited" (see rate.h)
 *   burst = 3500               optional, positive; defaults to the count
 *   scope = host | global      optional: global = shared through Redis (daemon/global.c)
 *   fallback = deny | share F  global only: while Redis is unreachable (F: 1/3, 0.25, 25%)
 *
 *   [template NAME]            keyed limits: one bucket per key, made by the clients (keys.h)
 *   rate, burst, algorithm, align, max_debt    as for [limit], for each key
 *   max_keys = 100000          capacity of the key table (64 bytes a key)
 *   overflow = deny | allow    what a NEW key gets while the table is full of keys with state
 *
 * Comments start with ';' or '#', at the start of a line or after white space.
 * Errors read "FILE:LINE: message 'token'", and only the first one is reported.
 */
#ifndef RLD_DAEMON_CONFIG_H
#define RLD_DAEMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "limitdef.h"

#define RLDI_CONF_DEFAULT_MAX_LIMITS   4096u
#define RLDI_CONF_DEFAULT_MAX_WAITERS  65536u
#define RLDI_CONF_MAX_WAITERS_MAX      (1u << 24)
#define RLDI_CONF_DEFAULT_CONNS_PER_UID 256u
#define RLDI_CONF_DEFAULT_WAITS_PER_UID 16384u
#define RLDI_CONF_LINE_MAX             1024   /* bytes per line, without the newline */
#define RLDI_CONF_SIZE_MAX             (64 << 20)   /* bytes per file */

/* [redis]: where global limits are kept (daemon/global.c). */
typedef struct rldi_redisconf {
    bool     set;                 /* the section was given */
    int      line;                /* of its header */
    char     url[512];            /* as written */
    char     host[256];           /* redis://: host name or address ("" for unix://) */
    uint16_t port;
    char     path[108];           /* unix://: the socket */
    uint32_t db;
    char     password_file[1024]; /* "" = no AUTH */
    char     username[128];       /* "" = the default user */
    uint64_t connect_timeout_ns, timeout_ns, lease_period_ns;
    char     key_prefix[64];
    char     host_id[128];        /* "" = HOSTNAME/INSTANCE, filled by the daemon */
} rldi_redisconf;

#define RLDI_REDIS_DEFAULT_CONNECT_TIMEOUT_NS 1000000000ull
#define RLDI_REDIS_DEFAULT_TIMEOUT_NS          500000000ull
#define RLDI_REDIS_DEFAULT_LEASE_PERIOD_NS     100000000ull

/* Parse a [redis] url into R (host, port, path, db). 0, or -EINVAL with *why. */
int rldi_redis_url_parse(const char *url, rldi_redisconf *r, const char **why);

typedef struct rldi_config {
    char            path[4096];
    uint32_t        max_limits;       /* [rld] max_limits, default 4096, 1..(1<<24) */
    char            group[64];        /* [rld] group (socket/segment group), "" if unset */
    char            admin_group[64];  /* [rld] admin_group, "" if unset */
    uint32_t        max_waiters;      /* [rld] max_waiters per limit, default 65536 */
    uint32_t        max_conns_per_uid;   /* [rld] max_connections_per_uid, default 256 */
    uint32_t        max_waits_per_uid;   /* [rld] max_waits_per_uid, default 16384 */
    char            log_level[16];    /* [rld] log_level: error|warn|info|debug, default "info" */
    rldi_redisconf  redis;            /* [redis] */
    size_t          nglobal;          /* limits with scope = global */
    size_t          ntemplates;       /* [template NAME] sections (kind TEMPLATE in limits) */
    char            metrics_listen[80];   /* [rld] metrics_listen as written, "" when off */
    struct sockaddr_storage metrics_addr; /* ... as an address (port included) */
    socklen_t       metrics_addrlen;
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

/* "HOST:PORT" as metrics_listen takes it: an IPv4 address, an IPv6 address in brackets, or
 * localhost (127.0.0.1); a port 1..65535. 0, or -EINVAL with *why a short reason. */
int rldi_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len,
                      const char **why);

/* Limit NAME, or NULL if absent (a hash lookup). */
const rldi_limitdef *rldi_config_find(const rldi_config *c, const char *name);

#endif
