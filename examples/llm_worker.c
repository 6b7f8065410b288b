/*
 * llm_worker.c - a worker that calls an LLM API within "3,500 requests and 90,000 tokens per
 * minute", shared with every other worker on the host. Copy it.
 *
 *   llm_worker [CALLS] [MODEL_TOKENS_PER_CALL] [--try]     (default: 5 1500)
 *
 * Each call needs one request token and N model tokens, both at once: rld_wait_multi queues
 * the pair fairly at the daemon (FIFO across every worker of the host) and takes both when
 * both fit; one request, no retry loop. With --try it acts as a proxy would instead: one
 * rld_try_multi, and a 429 with Retry-After when denied. Either way it prints the
 * X-RateLimit-* / Retry-After headers for the charge that decided (res.index). When the call
 * used fewer model tokens than reserved, the rest goes back (rld_refund).
 *
 * Header mapping (librld(3), HEADERS), the same for every call that fills an rld_result:
 *   X-RateLimit-Limit      limit
 *   X-RateLimit-Remaining  remaining (after this call; when denied, what could be taken now,
 *                          always less than the cost asked)
 *   X-RateLimit-Reset      reset_after_ns in seconds, rounded up (never before Retry-After)
 *   Retry-After            retry_after_ns in seconds, rounded up, only when denied
 * and none of them when remaining is UINT64_MAX (an unlimited limit, or no instance).
 *
 * Limits (examples/rld.conf):   [limit llm.requests] rate = 3500/min
 *                               [limit llm.tokens]   rate = 90000/min
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rld.h>

static unsigned long long secs_up(uint64_t ns)
{
    return (unsigned long long)((ns + 999999999u) / 1000000000u);
}

static void headers(const rld_result *r, int denied)
{
    if (r->remaining == UINT64_MAX)
        return;                         /* unlimited, or admitted without an instance */
    uint64_t reset = r->reset_after_ns > r->retry_after_ns ? r->reset_after_ns : r->retry_after_ns;
    printf("  X-RateLimit-Limit: %llu\n", (unsigned long long)r->limit);
    printf("  X-RateLimit-Remaining: %llu\n", (unsigned long long)r->remaining);
    printf("  X-RateLimit-Reset: %llu\n", secs_up(reset));
    if (denied)
        printf("  Retry-After: %llu\n", secs_up(r->retry_after_ns));
}

int main(int argc, char **argv)
{
    int calls = argc > 1 ? atoi(argv[1]) : 5;
    uint64_t want = argc > 2 ? strtoull(argv[2], NULL, 10) : 1500;
    int try_only = argc > 3 && strcmp(argv[3], "--try") == 0;
    const char *names[2] = { "llm.requests", "llm.tokens" };
    rld_client *c;
    rld_limit req, tok;
    int r = rld_open(NULL, 0, &c);
    if (r < 0) {
        fprintf(stderr, "llm_worker: %s (is rld running?)\n", rld_strerror(r));
        return 1;
    }
    if ((r = rld_find(c, names[0], &req)) < 0 || (r = rld_find(c, names[1], &tok)) < 0) {
        fprintf(stderr, "llm_worker: %s: declare llm.requests and llm.tokens in rld.conf\n",
                rld_strerror(r));
        return 1;
    }
    for (int i = 0; i < calls; i++) {
        rld_charge ch[2] = { { req, 1 }, { tok, want } };
        rld_result res;
        if (try_only)
            r = rld_try_multi(c, ch, 2, &res);
        else
            r = rld_wait_multi(c, ch, 2, 30000000000LL, NULL, &res);   /* at most 30 s */
        if (r == -EAGAIN || r == -ETIMEDOUT) {
            printf("call %d: 429, %s says no\n", i, names[res.index]);
            headers(&res, 1);
            continue;
        }
        if (r < 0) {
            fprintf(stderr, "call %d: %s (%s)\n", i, rld_strerror(r), names[res.index]);
            return 1;
        }
        printf("call %d: admitted (%s is the tighter limit)%s\n", i, names[res.index],
               (res.flags & RLD_F_DEGRADED) ? ", degraded" : "");
        headers(&res, 0);
        /* ... call the API here; say it used 80% of the tokens reserved ... */
        uint64_t used = want * 8 / 10;
        rld_refund(c, tok, want - used);
    }
    rld_close(c);
    return 0;
}
