/* lease_holder NAME N: hold N leases of limit NAME until killed (test_rlctl_upstream.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "rld.h"

int main(int argc, char **argv)
{
    rld_client *c;
    rld_limit lim;
    if (argc != 3 || rld_open(NULL, 0, &c) < 0 || rld_find(c, argv[1], &lim) < 0)
        return 2;
    for (int i = 0; i < atoi(argv[2]); i++) {
        rld_lease l;
        int r = rld_acquire_lease(c, lim, 5000000000, &l);
        if (r < 0) {
            fprintf(stderr, "lease: %s\n", rld_strerror(r));
            return 1;
        }
    }
    printf("held\n");
    fflush(stdout);
    for (;;)
        pause();
}
