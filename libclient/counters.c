/*
 * counters.c - per-thread batching of the limits' counters (see client.h), the
 * registry of open clients, and fork safety (the registry is what the fork handlers walk).
 *
 * A thread's pending counts refer to a client that may have been closed meanwhile; they are
 * published only into a client known to be open (a registry of open clients), else dropped.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "client.h"

__thread rldc_pending rldc_tls __attribute__((tls_model("initial-exec")));

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static const rld_client **reg;          /* open clients */
static size_t reg_n, reg_cap;
static uint64_t next_serial = 1;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static bool registered_locked(const rld_client *c, uint64_t serial)
{
    for (size_t i = 0; i < reg_n; i++)
        if (reg[i] == c && c->serial == serial)
            return true;
    return false;
}

/* The counter K of SLOT in C's segment, or NULL (a slot beyond it: a detached client). */
static uint64_t *counter(const rld_client *c, uint32_t slot, enum rldc_counter k)
{
    rldi_seg *s = rldc_seg(c);
    if (slot >= s->slot_count)
        return NULL;
    switch (k) {
    case RLDC_ADMITTED:    return &s->slots[slot].admitted;
    case RLDC_DENIED:      return &s->slots[slot].denied;
    case RLDC_REFUNDED:    return &s->meta[slot].refunded;
    case RLDC_ROLLED_BACK: return &s->meta[slot].rolled_back;
    case RLDC_DEBITED:     return &s->meta[slot].debited;
    default:               return NULL;
    }
}

static bool pending_any(const rldc_pending *p)
{
    for (int k = 0; k < RLDC_NCOUNTERS; k++)
        if (p->n[k])
            return true;
    return false;
}

static void pending_clear(rldc_pending *p)
{
    memset(p->n, 0, sizeof(p->n));
    p->calls = 0;
}

static void publish(rldc_pending *p)
{
    if (p->c)
        for (int k = 0; k < RLDC_NCOUNTERS; k++) {
            uint64_t *ctr = p->n[k] ? counter(p->c, p->slot, (enum rldc_counter)k) : NULL;
            if (ctr)
                rldi_add_relaxed(ctr, p->n[k]);
        }
    pending_clear(p);
}

/* Publish P if its client is still open, from a thread that holds no proof that it is. */
static void publish_checked(rldc_pending *p)
{
    if (!p->c || !pending_any(p))
        return;
    pthread_mutex_lock(&reg_lock);
    if (registered_locked(p->c, p->serial))
        publish(p);
    pthread_mutex_unlock(&reg_lock);
    pending_clear(p);
}

void rldc_count_now(rld_client *c, uint32_t slot, enum rldc_counter k, uint64_t amount)
{
    uint64_t *ctr = amount ? counter(c, slot, k) : NULL;
    if (ctr)
        rldi_add_relaxed(ctr, amount);
}

static void on_thread_exit(void *arg)
{
    publish_checked(arg);
    ((rldc_pending *)arg)->c = NULL;
}

static void on_process_exit(void)
{
    publish_checked(&rldc_tls);
}

static void make_key(void)
{
    pthread_key_create(&exit_key, on_thread_exit);
    atexit(on_process_exit);
}

void rldc_count_slow(rld_client *c, uint32_t slot, enum rldc_counter k, uint64_t amount,
                     uint64_t now_ns)
{
    rldc_pending *p = &rldc_tls;
    if (p->c == c && p->serial == c->serial) {
        if (p->slot != slot)
            publish(p);              /* C is in use by this call: it is open */
    } else {
        if (!p->c)                   /* this thread's first count: hook its exit */
            pthread_once(&exit_once, make_key), pthread_setspecific(exit_key, p);
        publish_checked(p);
    }
    p->c = c;
    p->serial = c->serial;
    p->slot = slot;
    p->n[k] += amount;
    p->calls++;
    if (p->calls >= RLDC_FLUSH_CALLS || now_ns - p->flushed_ns >= RLDC_FLUSH_NS) {
        publish(p);
        p->flushed_ns = now_ns;
    }
}

void rldc_register(rld_client *c)
{
    pthread_mutex_lock(&reg_lock);
    c->serial = next_serial++;
    if (reg_n == reg_cap) {
        size_t cap = reg_cap ? reg_cap * 2 : 8;
        const rld_client **n = realloc(reg, cap * sizeof(*n));
        if (!n) {
            /* Without a registry entry the counts of other threads are dropped, never
             * written to freed memory: safe, only less exact. */
            pthread_mutex_unlock(&reg_lock);
            return;
        }
        reg = n;
        reg_cap = cap;
    }
    reg[reg_n++] = c;
    pthread_mutex_unlock(&reg_lock);
}

void rldc_unregister(rld_client *c)
{
    rldc_pending *p = &rldc_tls;
    pthread_mutex_lock(&reg_lock);
    if (p->c == c && p->serial == c->serial)
        publish(p);
    for (size_t i = 0; i < reg_n; i++)
        if (reg[i] == c) {
            reg[i] = reg[--reg_n];
            break;
        }
    pthread_mutex_unlock(&reg_lock);
    if (p->c == c)
        p->c = NULL;
}

/* ---- fork ---------------------------------------------------------------------------------- */

volatile unsigned rldc_forks;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/*
 * Across fork(), hold the registry and every open client's locks, so the child inherits
 * them unlocked and the state they guard whole (a thread of the parent that does not exist
 * in the child may have been inside). Lock order everywhere: registry, pool, async wait
 * state; nothing takes the registry while holding a client's lock.
 */
static void fork_prepare(void)
{
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < reg_n; i++) {
        rld_client *c = (rld_client *)reg[i];
        pthread_mutex_lock(&c->pool_lock);
        pthread_mutex_lock(&c->names_lock);
        rldc_async_lock(c);
    }
}

static void fork_release(void)
{
    for (size_t i = reg_n; i-- > 0;) {
        rld_client *c = (rld_client *)reg[i];
        rldc_async_unlock(c);
        pthread_mutex_unlock(&c->names_lock);
        pthread_mutex_unlock(&c->pool_lock);
    }
    pthread_mutex_unlock(&reg_lock);
}

/*
 * In the child, before anything else runs: its copies of the parent's daemon connections
 * are closed at once (close(2) only: async-signal-safe), every client's, idle or lent to a
 * thread of the parent's: a copy left open would keep the parent's connection alive at the
 * daemon after the parent closed it, its waits queued and later granted to nobody. The rest
 * (freeing, a new epoll instance) is done by each client's first slow path in the child.
 */
static void fork_child(void)
{
    for (size_t i = 0; i < reg_n; i++) {
        rld_client *c = (rld_client *)reg[i];
        rldc_pool_forget(c);
        rldc_async_forget(c);
    }
    /* This thread's unpublished counts are the parent's: it publishes them, not us. */
    pending_clear(&rldc_tls);
    __atomic_add_fetch(&rldc_forks, 1, __ATOMIC_RELEASE);
    fork_release();
}

static void atfork_init(void)
{
    pthread_atfork(fork_prepare, fork_release, fork_child);
}

void rldc_atfork_once(void)
{
    pthread_once(&atfork_once, atfork_init);
}
