/* codes.c - English for every code rld functions return (librld's rld_strerror, the daemon's
 * replies and logs, the tools). */
#include <errno.h>
#include <string.h>

#include "codes.h"

const char *rldi_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case -EAGAIN: return "denied: not enough tokens now (see retry_after)";
    case -ENOENT: return "not found: no such instance (rld_open), no such limit (rld_find), "
                         "template (rld_find_template) or wait (rld_wait_cancel, "
                         "rld_wait_position)";
    case -ESTALE: return "the limit was deleted or replaced since it was found (a key: "
                         "reclaimed once idle; look it up again)";
    case -ENOSPC: return "no room: a template's key table is full of keys with state (raise "
                         "its max_keys), or, for a wait, too many waits queued at the daemon "
                         "for this user or instance (raise [rld] max_waits_per_uid or "
                         "max_waiters)";
    case -EBUSY: return "the key's insertion is blocked by a stopped process (try again)";
    case -E2BIG: return "the cost exceeds the limit's burst and can never be admitted";
    case -EINVAL: return "invalid argument";
    case -ERANGE: return "out of range: a debit beyond the limit's maximum debt (rld_debit), a "
                         "penalty or reset beyond 52 days (rld_penalize, rld_sync), or a "
                         "caller's rate outside what a key can hold (rld_try_key_rate); "
                         "nothing was changed";
    case -ENAMETOOLONG: return "name too long";
    case -EACCES: return "permission denied";
    case -ENOMEM: return "out of memory";
    case -ETIMEDOUT: return "the wait would exceed the timeout";
    case RLD_EABI: return "the instance's segment was made by an incompatible rld version";
    case RLD_ECORRUPT: return "the instance's segment is damaged or not an rld segment";
    case RLD_ECLOCK: return "this process's monotonic clock is not the daemon's (another time "
                            "namespace?): its times would corrupt every limit";
    default: return err < 0 && err > -4096 ? strerror(-err) : "unknown error";
    }
}
