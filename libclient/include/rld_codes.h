/*
 * rld_codes.h - the result codes of librld that are not errno values, shared by the library,
 * the daemon and the tools (rld.h includes it; code inside rld includes only this).
 *
 * Every rld function returns 0 or a negative errno; codes that are not errno values sit
 * below -1000 (errno values are all above), as libuv does. rld_strerror() names them all.
 */
#ifndef RLD_CODES_H
#define RLD_CODES_H

#define RLD_EABI      (-1001) /* the segment was made by an rld of another ABI version */
#define RLD_ECORRUPT  (-1002) /* the segment is not an rld segment, or is damaged      */
#define RLD_ECLOCK    (-1003) /* this process's CLOCK_MONOTONIC is not the daemon's:
                                 it runs in another time namespace                      */

#endif
