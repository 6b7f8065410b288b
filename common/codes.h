/* codes.h - the result codes (rld_codes.h) and their English, for every part of rld. */
#ifndef RLD_COMMON_CODES_H
#define RLD_COMMON_CODES_H

#include "rld_codes.h"

/* A static English sentence for any code an rld function returns; never NULL. */
const char *rldi_strerror(int err);

#endif
