/*
 * llm_worker.c - a worker that calls an LLM API within "3,500 requests and 90,000 tokens per
 * minute", shared with every other worker on the host. Copy it.
 *
 *   llm_worker [CALLS] [MODEL_TOKENS_PER_CALL]        (default: 5 1500)
 *
 * Each call takes one request token and N model tokens in one all-or-nothing step
 * (rld_try_multi), waits when denied (rld_wait on the limit that said no, then tries the
 * pair again), and prints the X-RateLimit-* / Retry-After headers a proxy would send.
 * When the call used fewer model tokens than reserved, the rest goes back (rld_refund).
 *
 * Limits (examples/rld.conf):   [limit llm.requests] rate = 3500/min
 *                               [limit llm.tokens]   rate = 90000/min
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <rld.h>

static void headers(const rld_result *r)
{
    /* Seconds, rounded up: a client that waits this long is admitted. */
    printf("  X-RateLimit-Limit: %llu\n", (unsigned long long)r->limit);
    printf("  X-RateLimit-Remaining: %llu\n", (unsigned long long)r->remaining);
    printf("  X-RateLimit-Reset: %llu\n", (unsigned long long)((r->reset_after_ns + 999999999) / 1000000000));
    if (r->retry_after_ns)
        printf("  Retry-After: %llu\n", (unsigned long long)((r->retry_after_ns + 999999999) / 1000000000));
}

int main(int argc, char **argv)
{
    int calls = argc > 1 ? atoi(argv[1]) : 5;
    uint64_t want = argc > 2 ? strtoull(argv[2], NULL, 10) : 1500;
    rld_client *c;
    rld_limit req, tok;
    int r = rld_open(NULL, 0, &c);
    if (r < 0) {
        fprintf(stderr, "llm_worker: %s (is rld running?)\n", rld_strerror(r));
        return 1;
    }
    if ((r = rld_find(c, "llm.requests", &req)) < 0 || (r = rld_find(c, "llm.tokens", &tok)) < 0) {
        fprintf(stderr, "llm_worker: %s: declare llm.requests and llm.tokens in rld.conf\n",
                rld_strerror(r));
        return 1;
    }
    for (int i = 0; i < calls; i++) {
        rld_charge ch[2] = { { req, 1 }, { tok, want } };
        rld_result res;
        while ((r = rld_try_multi(c, ch, 2, &res)) == -EAGAIN) {
            printf("call %d: denied by %s\n", i, res.index == 0 ? "llm.requests" : "llm.tokens");
            headers(&res);
            /* Queue fairly for the limit that said no (at most 30 s), then give its tokens
             * back and try the pair again: both must be taken together. */
            rld_limit lim = ch[res.index].limit;
            uint64_t cost = ch[res.index].cost;
            if ((r = rld_wait(c, lim, cost, 30000000000LL, &res)) < 0) {
                fprintf(stderr, "call %d: %s (retry in %.1f s)\n", i, rld_strerror(r),
                        res.retry_after_ns / 1e9);
                return 1;
            }
            rld_refund(c, lim, cost);
        }
        if (r < 0) {
            fprintf(stderr, "call %d: %s\n", i, rld_strerror(r));
            return 1;
        }
        printf("call %d: admitted (%s is the tighter limit)\n", i,
               res.index == 0 ? "llm.requests" : "llm.tokens");
        headers(&res);
        /* ... call the API here; say it used 80% of the tokens reserved ... */
        uint64_t used = want * 8 / 10;
        rld_refund(c, tok, want - used);
    }
    rld_close(c);
    return 0;
}
