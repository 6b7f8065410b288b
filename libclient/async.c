/*
 * async.c - non-blocking waits for event loops (rld_wait_start, rld_wait_fd,
 * rld_wait_collect, rld_wait_cancel, rld_wait_position).
 *
 * Shape (after liburing's completion queue and c-ares's "process this fd"): a wait gets a
 * ticket; every ticket ends in one DONE completion, queued in the client, which the caller
 * collects when the client's one descriptor is readable. That descriptor is an epoll
 * instance holding
 *   - the client's one async connection to the daemon (all its waits multiplexed, so the
 *     daemon queues them in the order they were started), for input, and for output while
 *     requests wait to be sent (the socket's buffer holds a few hundred; 10,000 waits
 *     started in a burst are sent as the daemon reads);
 *   - an eventfd, set while completions are queued (decided at once, degraded, cancelled);
 *   - a timerfd, for the due times of degraded waits and the daemon's pulse while waits
 *     are queued there.
 * An epoll descriptor is readable when any of them is, so one poll(fd, POLLIN) or
 * asyncio loop.add_reader(fd) covers everything; rld_wait_collect does the work.
 *
 * Completions are handed over in the order they became ready, of any kind: a DONE held by
 * its wait's record (the done list) or one that is not (a cancellation at the daemon, a
 * POSITION: the xq ring), each stamped from one sequence, collect merging the two. A
 * POSITION is promised by rld_wait_position with room held in the ring, and always handed
 * over before its wait's DONE.
 *
 * The connection is made without blocking (a SOCK_SEQPACKET connect completes at once) and
 * Hello is pipelined ahead of the first Wait; requests that need FEATURE_MULTI_WAIT (a set,
 * Position) wait until the HelloReply says the daemon has it. When it fails, or the daemon
 * says it stops, or its heartbeat goes stale, every wait queued there degrades as rld_wait
 * does: its tokens reserved in shared memory, its completion (RLD_F_DEGRADED) due when they
 * are. rld_close shuts it for reading first, so that no grant is lost in between.
 *
 * Request ids on the connection: a Wait's id is its ticket; Cancel and Position requests
 * use the ticket with a high bit set, so every reply finds its wait in O(1).
 *
 * fork(): the fork's child handler closes the child's copies of the connection, eventfd
 * and timerfd (rldc_async_forget); the child's first call finds the engine built by another
 * process image (rldc_forks moved) and rebuilds it: the parent's waits forgotten, and a new
 * epoll instance put on the same descriptor number with dup3, so rld_wait_fd stays the same.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "bucket.h"
#include "client.h"
#include "clock.h"
#include "heap.h"
#include "wire.h"

#define MAX_QUEUED      16384u          /* charges queued at the daemon per client (its cap) */
#define CHUNK_BITS      10
#define CHUNK           (1u << CHUNK_BITS)
#define ID_CANCEL       (1ull << 63)
#define ID_POSITION     (1ull << 62)
#define ID_HELLO        (1ull << 61)
#define CHECK_NS        1000000000ull   /* the daemon's pulse, while waits are queued there */
#define DOWN_BACKOFF_NS 1000000000ull   /* after a failed connection, degrade without trying */

enum { R_FREE, R_DAEMON, R_LOCAL, R_DONE, R_ZOMBIE };

/* One wait. Records live in chunks (stable addresses: the due heap points into them). */
typedef struct arec {
    uint32_t       gen;                 /* ticket = gen << 32 | (index + 1) */
    uint8_t        state;
    uint8_t        prio;
    bool           cancelled;           /* R_DONE: by rld_wait_cancel (a second one: -ENOENT) */
    uint32_t       pos_owed;            /* R_DAEMON: POSITION completions promised, room held */
    uint16_t       n;                   /* charges: resolved (queued) or as given (decided) */
    uint32_t       next;                /* free list / done list: index + 1, 0 = end */
    uint32_t       idx;                 /* its own index */
    uint64_t       seq;                 /* R_DONE: when it became ready (see rldc_async.seq) */
    uint64_t       deadline_ns;         /* absolute, 0 none */
    heap_node      due;                 /* R_LOCAL: when its reserved tokens are due */
    bool           retry;               /* R_LOCAL: nothing reserved (a window): reserve then */
    rld_charge    *ch;                  /* N charges, owned (one block with WIN and MAP) */
    uint32_t      *win;                 /* WIN[j]: the window charge j's tokens were taken in,
                                         * once taken (0: GCRA), to give them back exactly */
    uint8_t       *map;                 /* MAP[j]: the caller's index of charge j */
    rld_completion done;                /* R_DONE: what will be collected; R_LOCAL: its result */
} arec;

/* A completion not held by its wait's record (cancelled at the daemon; positions). */
typedef struct xent {
    uint64_t       seq;
    rld_completion x;
} xent;

typedef struct pkt {
    struct pkt *next;
    uint64_t    id;                     /* the request's */
    bool        multi;                  /* needs FEATURE_MULTI_WAIT: a set's Wait, a Position */
    uint32_t    len;
    uint8_t     data[];
} pkt;

#define PEND_SLOTS 1024u
static inline uint32_t pend_of(uint32_t slot)
{
    return (slot * 0x9E3779B1u) >> 22;           /* 10 bits */
}

typedef struct rldc_async {
    pthread_mutex_t lock;
    unsigned        forks;              /* rldc_forks when built */
    int             epfd, evfd, tfd, sock;
    bool            out_armed, ev_set;
    bool            hello_done;         /* the daemon's HelloReply read: FEATURES known */
    uint32_t        features;
    uint64_t        timer_at;           /* armed, absolute ns; 0 none */
    uint64_t        down_until, next_check;
    pkt            *out_head, *out_tail;
    arec          **chunks;
    uint32_t        nchunks, free_head, done_head, done_tail;
    xent           *xq;                 /* ring: cancellations and positions */
    size_t          xq_head, xq_n, xq_cap;
    size_t          xq_held;            /* room held in it for the positions owed */
    uint64_t        seq;                /* completions made ready so far: xq and the done list
                                           are each in this order, collect merges them */
    heap            dues;
    uint32_t        at_daemon;          /* waits at the daemon, cancelled ones too */
    uint32_t        queued;             /* their charges, cancelled ones not */
    /* the waits at the daemon counted by limit (a hash of the slot: a collision only costs a
     * fast path), read without the lock by rld_wait_start: a wait started after another on
     * the same limit does not pass it on the fast path before the daemon has read it */
    uint32_t        pend[PEND_SLOTS];
} rldc_async;

static arec *rec_at(rldc_async *a, uint32_t i)
{
    return &a->chunks[i >> CHUNK_BITS][i & (CHUNK - 1)];
}

static uint64_t ticket_of(rldc_async *a, arec *r, uint32_t i)
{
    (void)a;
    (void)r;
    return (uint64_t)r->gen << 32 | (i + 1);
}

/* The record of TICKET, or NULL (free, or reused since). */
static arec *rec_find(rldc_async *a, uint64_t ticket, uint32_t *idx)
{
    uint32_t i = (uint32_t)ticket - 1;
    if ((uint32_t)ticket == 0 || (i >> CHUNK_BITS) >= a->nchunks)
        return NULL;
    arec *r = rec_at(a, i);
    if (r->state == R_FREE || r->gen != (uint32_t)(ticket >> 32))
        return NULL;
    *idx = i;
    return r;
}

static arec *rec_alloc(rldc_async *a, uint32_t *idx)
{
    if (!a->free_head) {
        if (a->nchunks >= (1u << 21))
            return NULL;
        arec **cs = realloc(a->chunks, (a->nchunks + 1) * sizeof(*cs));
        if (!cs)
            return NULL;
        a->chunks = cs;
        arec *c = calloc(CHUNK, sizeof(*c));
        if (!c)
            return NULL;
        cs[a->nchunks] = c;
        uint32_t base = a->nchunks++ << CHUNK_BITS;
        for (uint32_t j = CHUNK; j-- > 0;) {
            c[j].next = a->free_head;
            c[j].idx = base + j;
            c[j].due.idx = HEAP_NONE;
            a->free_head = base + j + 1;
        }
    }
    uint32_t i = a->free_head - 1;
    arec *r = rec_at(a, i);
    a->free_head = r->next;
    r->next = 0;
    r->gen = (r->gen + 1) & 0x7fffffffu;    /* tickets stay clear of the request-id bits */
    if (r->gen == 0)
        r->gen = 1;
    r->n = 0;
    r->cancelled = false;
    r->pos_owed = 0;
    r->ch = NULL;
    r->win = NULL;
    r->map = NULL;
    r->deadline_ns = 0;
    memset(&r->done, 0, sizeof(r->done));
    *idx = i;
    return r;
}

static void rec_free(rldc_async *a, arec *r, uint32_t i)
{
    free(r->ch);
    r->ch = NULL;
    r->win = NULL;
    r->map = NULL;
    r->state = R_FREE;
    r->next = a->free_head;
    a->free_head = i + 1;
}

/* Leaving or entering the daemon's queue: the counts that bound what we send. A cancelled
 * wait (R_ZOMBIE) still waits for the daemon's answer, but holds no place there for a later
 * Wait: its Cancel goes first on the connection. */
static void set_state(rldc_async *a, arec *r, int state)
{
    bool was = r->state == R_DAEMON || r->state == R_ZOMBIE;
    bool is = state == R_DAEMON || state == R_ZOMBIE;
    if (was && !is)
        a->at_daemon--;
    else if (!was && is)
        a->at_daemon++;
    if (r->state == R_DAEMON && state != R_DAEMON) {
        a->queued -= r->n;
        for (uint32_t j = 0; j < r->n; j++)
            __atomic_fetch_sub(&a->pend[pend_of(r->ch[j].limit.slot)], 1, __ATOMIC_RELAXED);
    } else if (r->state != R_DAEMON && state == R_DAEMON) {
        a->queued += r->n;
        for (uint32_t j = 0; j < r->n; j++)
            __atomic_fetch_add(&a->pend[pend_of(r->ch[j].limit.slot)], 1, __ATOMIC_RELAXED);
    }
    r->state = (uint8_t)state;
}

/* Room in the ring for K completions beyond those it holds and the room held: 0, -ENOMEM. */
static int xq_room(rldc_async *a, size_t k)
{
    size_t need = a->xq_n + a->xq_held + k;
    if (need <= a->xq_cap)
        return 0;
    size_t cap = a->xq_cap ? a->xq_cap : 64;
    while (cap < need)
        cap *= 2;
    xent *q = malloc(cap * sizeof(*q));
    if (!q)
        return -ENOMEM;
    for (size_t j = 0; j < a->xq_n; j++)
        q[j] = a->xq[(a->xq_head + j) % a->xq_cap];
    free(a->xq);
    a->xq = q;
    a->xq_cap = cap;
    a->xq_head = 0;
    return 0;
}

/* Queue X, ready now, in room made by xq_room. */
static void xq_put(rldc_async *a, const rld_completion *x)
{
    a->xq[(a->xq_head + a->xq_n++) % a->xq_cap] = (xent){ a->seq++, *x };
}

static int xq_push(rldc_async *a, const rld_completion *x)
{
    if (xq_room(a, 1) < 0)
        return -ENOMEM;
    xq_put(a, x);
    return 0;
}

/* A degraded wait's position: nobody ahead that we know of; due when its reservation is. */
static void pos_local(rld_completion *x, const arec *r)
{
    uint64_t now = rldi_mono_ns();
    x->res.retry_after_ns = r->due.key > now ? r->due.key - now : 0;
    x->res.flags = RLD_F_DEGRADED;
}

/*
 * Every POSITION completion promised for R is handed over, before its DONE completion, in
 * room held since rld_wait_position: the daemon's answer when it comes while R is queued
 * there, else at the moment R leaves the daemon's queue: CODE (-ECANCELED, -ENOENT: decided)
 * or, for a wait that goes on degraded (R_LOCAL), its local position.
 */
static void pos_settle(rldc_async *a, arec *r, uint32_t i, int code)
{
    for (; r->pos_owed; r->pos_owed--) {
        rld_completion x = { ticket_of(a, r, i), code, RLD_COMPLETION_POSITION, { 0 } };
        if (r->state == R_LOCAL) {
            x.code = 0;
            pos_local(&x, r);
        }
        a->xq_held--;
        xq_put(a, &x);
    }
}

static void done_push(rldc_async *a, arec *r, uint32_t i, int code, const rld_result *res)
{
    pos_settle(a, r, i, -ENOENT);       /* decided before the daemon said where it stood */
    set_state(a, r, R_DONE);
    r->seq = a->seq++;
    r->done.ticket = ticket_of(a, r, i);
    r->done.code = code;
    r->done.kind = RLD_COMPLETION_DONE;
    if (res)
        r->done.res = *res;
    else
        memset(&r->done.res, 0, sizeof(r->done.res));
    r->next = 0;
    if (a->done_tail)
        rec_at(a, a->done_tail - 1)->next = i + 1;
    else
        a->done_head = i + 1;
    a->done_tail = i + 1;
}

/* ---- descriptors ------------------------------------------------------------------------ */

/* The eventfd is set exactly while completions wait to be collected. */
static void sync_ev(rldc_async *a)
{
    bool ready = a->done_head || a->xq_n;
    uint64_t v = 1;
    if (ready && !a->ev_set) {
        if (write(a->evfd, &v, sizeof(v)) == sizeof(v))
            a->ev_set = true;
    } else if (!ready && a->ev_set) {
        if (read(a->evfd, &v, sizeof(v)) == sizeof(v) || errno == EAGAIN)
            a->ev_set = false;
    }
}

static void arm_timer(rldc_async *a, uint64_t now)
{
    heap_node *h = heap_min(&a->dues);
    uint64_t next = h ? h->key : 0;
    if (a->at_daemon) {
        if (!a->next_check)
            a->next_check = now + CHECK_NS;
        if (!next || a->next_check < next)
            next = a->next_check;
    } else {
        a->next_check = 0;
    }
    if (next == a->timer_at)
        return;
    struct itimerspec its = { { 0, 0 }, { 0, 0 } };
    if (next) {
        if (next <= now)
            next = now + 1;
        its.it_value.tv_sec = (time_t)(next / 1000000000u);
        its.it_value.tv_nsec = (long)(next % 1000000000u);
    }
    if (timerfd_settime(a->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
        a->timer_at = next;
}

static int epoll_set(rldc_async *a, int op, int fd, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.fd = fd };
    return epoll_ctl(a->epfd, op, fd, &ev);
}

/* The eventfd, timerfd and epoll instance; after fork() the epoll instance takes the old
 * descriptor number (dup3), the parent's being left alone. */
static int build_fds(rldc_async *a)
{
    a->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    a->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int err = -errno;
    if (a->evfd < 0 || a->tfd < 0 || ep < 0) {
        if (a->evfd >= 0)
            close(a->evfd);
        if (a->tfd >= 0)
            close(a->tfd);
        if (ep >= 0)
            close(ep);
        a->evfd = a->tfd = -1;
        return err ? err : -EMFILE;
    }
    if (a->epfd >= 0) {
        if (dup3(ep, a->epfd, O_CLOEXEC) < 0) {
            close(a->epfd);
            a->epfd = ep;
        } else {
            close(ep);
        }
    } else {
        a->epfd = ep;
    }
    epoll_set(a, EPOLL_CTL_ADD, a->evfd, EPOLLIN);
    epoll_set(a, EPOLL_CTL_ADD, a->tfd, EPOLLIN);
    a->ev_set = false;
    a->timer_at = 0;
    return 0;
}

static void out_clear(rldc_async *a)
{
    while (a->out_head) {
        pkt *p = a->out_head;
        a->out_head = p->next;
        free(p);
    }
    a->out_tail = NULL;
    a->out_armed = false;
}

/* Forget every wait (without a word: after fork, the parent's; at close, after refunds). */
static void recs_clear(rldc_async *a)
{
    for (uint32_t k = 0; k < a->nchunks; k++) {
        for (uint32_t j = 0; j < CHUNK; j++)
            free(a->chunks[k][j].ch);
        free(a->chunks[k]);
    }
    free(a->chunks);
    a->chunks = NULL;
    a->nchunks = a->free_head = a->done_head = a->done_tail = 0;
    free(a->dues.v);
    memset(&a->dues, 0, sizeof(a->dues));
    free(a->xq);
    a->xq = NULL;
    a->xq_head = a->xq_n = a->xq_cap = a->xq_held = 0;
    a->at_daemon = a->queued = 0;
    for (uint32_t j = 0; j < PEND_SLOTS; j++)
        __atomic_store_n(&a->pend[j], 0, __ATOMIC_RELAXED);
}

/* Close this process's copies of the connection, event and timer descriptors (close(2) only:
 * also the fork's child handler's work). The epoll descriptor keeps its number. */
static void forget_fds(rldc_async *a)
{
    if (a->sock >= 0)
        close(a->sock);
    if (a->evfd >= 0)
        close(a->evfd);
    if (a->tfd >= 0)
        close(a->tfd);
    a->sock = a->evfd = a->tfd = -1;
}

/* In a forked child: forget the parent's waits and make descriptors of the child's own (the
 * fork's child handler closed its copies of the parent's, rldc_async_forget). The engine
 * counts as this process's only once that worked: after a failure (no descriptor left) the
 * epoll descriptor is still the parent's instance and there is no event or timer
 * descriptor, so nothing may use it, and the next call tries again. */
static int after_fork(rldc_async *a)
{
    forget_fds(a);
    out_clear(a);
    recs_clear(a);
    a->down_until = a->next_check = 0;
    int err = build_fds(a);
    if (err == 0)
        a->forks = __atomic_load_n(&rldc_forks, __ATOMIC_ACQUIRE);
    return err;
}

/* ---- the connection ---------------------------------------------------------------------- */

static void degrade(rld_client *c, rldc_async *a, arec *r, uint32_t i);

/* Queue a request; 0 or -ENOMEM. */
static int send_req(rldc_async *a, Rld__V1__Request *req)
{
    size_t n = rld__v1__request__get_packed_size(req);
    if (n > RLDI_MAX_MESSAGE)
        return -EMSGSIZE;
    pkt *p = malloc(sizeof(*p) + n);
    if (!p)
        return -ENOMEM;
    p->next = NULL;
    p->id = req->id;
    p->multi = (req->body_case == RLD__V1__REQUEST__BODY_WAIT && req->wait->n_charges > 0) ||
               req->body_case == RLD__V1__REQUEST__BODY_POSITION;
    p->len = (uint32_t)rld__v1__request__pack(req, p->data);
    if (a->out_tail)
        a->out_tail->next = p;
    else
        a->out_head = p;
    a->out_tail = p;
    return 0;
}

/* The connection failed or the daemon stopped answering: every queued wait degrades. */
static void conn_fail(rld_client *c, rldc_async *a)
{
    if (a->sock >= 0)
        close(a->sock);                 /* the daemon drops its waits; undelivered grants refunded */
    a->sock = -1;
    out_clear(a);
    a->down_until = rldi_mono_ns() + DOWN_BACKOFF_NS;
    for (uint32_t k = 0; k < a->nchunks; k++)
        for (uint32_t j = 0; j < CHUNK; j++) {
            arec *r = &a->chunks[k][j];
            uint32_t i = k << CHUNK_BITS | j;
            if (r->state == R_ZOMBIE) {
                set_state(a, r, R_FREE);
                rec_free(a, r, i);
            } else if (r->state == R_DAEMON) {
                degrade(c, a, r, i);
            }
        }
}

/* Send what is queued, without blocking. 0, or -1 when the connection failed. */
static int flush(rldc_async *a)
{
    while (a->out_head) {
        pkt *p = a->out_head;
        if (p->multi && !a->hello_done)
            break;                      /* until the daemon says it knows sets (on_hello) */
        ssize_t w = send(a->sock, p->data, p->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!a->out_armed && epoll_set(a, EPOLL_CTL_MOD, a->sock, EPOLLIN | EPOLLOUT) == 0)
                a->out_armed = true;
            return 0;
        }
        if (w < 0)
            return -1;
        a->out_head = p->next;
        if (!a->out_head)
            a->out_tail = NULL;
        free(p);
    }
    if (a->out_armed && epoll_set(a, EPOLL_CTL_MOD, a->sock, EPOLLIN) == 0)
        a->out_armed = false;
    return 0;
}

/* Connect (without blocking) and pipeline Hello. 0, or -1: degrade. */
static int conn_up(rld_client *c, rldc_async *a)
{
    if (a->sock >= 0)
        return 0;
    uint64_t now = rldi_mono_ns();
    if (a->down_until && now < a->down_until)
        return -1;
    if (!c->paths.socket_path[0] || !rldc_attached(c))
        return -1;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(c->paths.socket_path) >= sizeof(sa.sun_path))
        return -1;
    strcpy(sa.sun_path, c->paths.socket_path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (fd >= 0)
            close(fd);
        a->down_until = now + DOWN_BACKOFF_NS;
        return -1;
    }
    a->sock = fd;
    a->out_armed = false;
    a->hello_done = false;
    a->features = 0;
    if (epoll_set(a, EPOLL_CTL_ADD, fd, EPOLLIN) < 0) {
        close(fd);
        a->sock = -1;
        return -1;
    }
    Rld__V1__Hello hello = RLD__V1__HELLO__INIT;
    hello.protocol_version = RLDI_PROTOCOL_VERSION;
    hello.client_name = "librld-async";
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.id = ID_HELLO;
    req.body_case = RLD__V1__REQUEST__BODY_HELLO;
    req.hello = &hello;
    if (send_req(a, &req) < 0) {
        close(fd);
        a->sock = -1;
        return -1;
    }
    return 0;
}

/* R's tokens reserved client-side: done now, due later (R_LOCAL), or refused. */
static void degrade(rld_client *c, rldc_async *a, arec *r, uint32_t i)
{
    uint64_t now = rldi_mono_ns(), wait_ns;
    uint64_t deadline = r->deadline_ns;
    if (deadline && deadline < now)
        deadline = now;
    rld_result res;
    int rc = rldc_reserve_multi(c, r->ch, r->n, deadline, &res, &wait_ns, r->win);
    res.index = res.index < r->n ? r->map[res.index] : 0;
    r->retry = rc == -EINPROGRESS;     /* a window: nothing reserved, try again then */
    if ((rc == 0 && wait_ns) || r->retry) {
        set_state(a, r, R_LOCAL);
        r->done.res = res;
        if (heap_set(&a->dues, &r->due, now + wait_ns) == 0) {
            pos_settle(a, r, i, 0);
            return;
        }
        /* no room to remember it: hand it over now, the caller learns the wait */
        res.retry_after_ns = wait_ns;
    }
    done_push(a, r, i, rc, &res);
}

/*
 * The daemon's HelloReply: its features are known. Requests that need FEATURE_MULTI_WAIT
 * waited in the out queue until now (flush). A daemon without it would read a set's Wait as
 * its first fields alone (-EINVAL) and not know Position: there, sets degrade as blocking
 * ones do, and positions are answered -EOPNOTSUPP. The rest goes out in order.
 */
static void on_hello(rld_client *c, rldc_async *a, const Rld__V1__Reply *rep)
{
    a->hello_done = true;
    a->features = rep->body_case == RLD__V1__REPLY__BODY_HELLO ? rep->hello->features : 0;
    if (a->features & RLD__V1__FEATURE__FEATURE_MULTI_WAIT)
        return;
    pkt **pp = &a->out_head, *last = NULL;
    while (*pp) {
        pkt *p = *pp;
        if (!p->multi) {
            last = p;
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        uint32_t i;
        arec *r = rec_find(a, p->id & ~ID_POSITION, &i);
        if (r && (p->id & ID_POSITION))
            pos_settle(a, r, i, -EOPNOTSUPP);
        else if (r && r->state == R_DAEMON)
            degrade(c, a, r, i);
        else if (r && r->state == R_ZOMBIE) {   /* cancelled before it went out */
            set_state(a, r, R_FREE);
            rec_free(a, r, i);
        }
        free(p);
    }
    a->out_tail = last;
}

/* A set can be sent (or degrades at once): one charge, or a daemon known to take sets. */
static bool sets_ok(const rldc_async *a, size_t m)
{
    return m <= 1 || !a->hello_done || (a->features & RLD__V1__FEATURE__FEATURE_MULTI_WAIT);
}

static void on_reply(rld_client *c, rldc_async *a, Rld__V1__Reply *rep)
{
    uint64_t id = rep->id;
    uint32_t i;
    arec *r;
    if (id == ID_HELLO || id == 0) {
        if (rep->code != 0) {
            conn_fail(c, a);            /* refused (version, ...), or a protocol error */
        } else if (id == ID_HELLO && !a->hello_done) {
            on_hello(c, a, rep);
            if (flush(a) < 0)
                conn_fail(c, a);
        }
        return;
    }
    if (id & ID_CANCEL)
        return;                         /* the Wait's own reply says what happened */
    if (id & ID_POSITION) {
        /* answered already when the wait left the queue first (then this is -ENOENT) */
        r = rec_find(a, id & ~ID_POSITION, &i);
        if (!r || r->state != R_DAEMON || !r->pos_owed)
            return;
        rld_completion x = { ticket_of(a, r, i), rep->code, RLD_COMPLETION_POSITION, { 0 } };
        if (rep->code == 0 && rep->body_case == RLD__V1__REPLY__BODY_POSITION) {
            x.res.queue_position = rep->position->queue_position;
            x.res.retry_after_ns = rep->position->expected_wait_ns;
        } else if (rep->code == 0) {
            x.code = -EPROTO;
        }
        r->pos_owed--;
        a->xq_held--;
        xq_put(a, &x);
        return;
    }
    if (!(r = rec_find(a, id, &i)))
        return;
    if (r->state == R_ZOMBIE) {
        if (rep->code == 0) {              /* granted as it was cancelled: give it back */
            rldc_wait_result(NULL, rep->body_case == RLD__V1__REPLY__BODY_WAIT ? rep->wait : NULL,
                             r->map, r->n, r->win);
            rldc_refund_all(c, r->ch, r->n, r->win);
        }
        set_state(a, r, R_FREE);
        rec_free(a, r, i);
        return;
    }
    if (r->state != R_DAEMON)
        return;
    if (rep->code == -ESHUTDOWN) {
        degrade(c, a, r, i);
        return;
    }
    rld_result res;
    rldc_wait_result(&res, rep->body_case == RLD__V1__REPLY__BODY_WAIT ? rep->wait : NULL,
                     r->map, r->n, r->win);
    done_push(a, r, i, rep->code, &res);
}

/* Read every reply that arrived. */
static void read_all(rld_client *c, rldc_async *a)
{
    uint8_t buf[RLDI_MAX_MESSAGE + 1];
    while (a->sock >= 0) {
        ssize_t n = recv(a->sock, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0 || (size_t)n > RLDI_MAX_MESSAGE) {
            conn_fail(c, a);
            return;
        }
        Rld__V1__Reply *rep = rld__v1__reply__unpack(NULL, (size_t)n, buf);
        if (!rep) {
            conn_fail(c, a);
            return;
        }
        on_reply(c, a, rep);
        rld__v1__reply__free_unpacked(rep, NULL);
    }
}

/* Due degraded waits complete; a daemon that stopped beating fails the connection. */
static void timers(rld_client *c, rldc_async *a, uint64_t now)
{
    uint64_t ticks;
    if (read(a->tfd, &ticks, sizeof(ticks)) == sizeof(ticks))
        a->timer_at = 0;
    heap_node *h;
    while ((h = heap_min(&a->dues)) && h->key <= now) {
        arec *r = (arec *)((char *)h - offsetof(arec, due));
        heap_remove(&a->dues, h);
        if (r->retry) {
            degrade(c, a, r, r->idx);
            continue;
        }
        rld_result res = r->done.res;
        done_push(a, r, r->idx, 0, &res);
    }
    if (a->at_daemon && a->next_check && now >= a->next_check) {
        a->next_check = now + CHECK_NS;
        if (a->sock >= 0 && rldi_seg_daemon_stale(rldc_seg(c), now))
            conn_fail(c, a);
    }
}

/* Everything the descriptor may have woken the caller for. */
static void pump(rld_client *c, rldc_async *a)
{
    if (a->sock >= 0 && flush(a) < 0)
        conn_fail(c, a);
    read_all(c, a);
    uint64_t now = rldi_mono_ns();
    timers(c, a, now);
    arm_timer(a, now);
    sync_ev(a);
}

/* ---- the engine --------------------------------------------------------------------------- */

/* The client's engine, created on first use (its pointer is set once, under pool_lock, so
 * the fork handlers see it whole), locked and valid in this process image; NULL with *ERR. */
static rldc_async *engine(rld_client *c, int *err)
{
    rldc_async *a = __atomic_load_n(&c->async, __ATOMIC_ACQUIRE);
    if (!a) {
        pthread_mutex_lock(&c->pool_lock);
        a = c->async;
        if (!a && (a = calloc(1, sizeof(*a)))) {
            pthread_mutex_init(&a->lock, NULL);
            a->forks = __atomic_load_n(&rldc_forks, __ATOMIC_ACQUIRE);
            a->epfd = a->sock = -1;
            *err = build_fds(a);
            if (*err < 0) {
                pthread_mutex_destroy(&a->lock);
                free(a);
                a = NULL;
            } else {
                __atomic_store_n(&c->async, a, __ATOMIC_RELEASE);
            }
        } else if (!a) {
            *err = -ENOMEM;
        }
        pthread_mutex_unlock(&c->pool_lock);
        if (!a)
            return NULL;
    }
    pthread_mutex_lock(&a->lock);
    if (a->forks != __atomic_load_n(&rldc_forks, __ATOMIC_ACQUIRE) && (*err = after_fork(a)) < 0) {
        pthread_mutex_unlock(&a->lock);
        return NULL;
    }
    return a;
}

void rldc_async_forget(rld_client *c)
{
    if (c->async)
        forget_fds(c->async);
}

void rldc_async_lock(rld_client *c)
{
    if (c->async)
        pthread_mutex_lock(&c->async->lock);
}

void rldc_async_unlock(rld_client *c)
{
    if (c->async)
        pthread_mutex_unlock(&c->async->lock);
}

/*
 * rld_close: take no more from the daemon, and give back every grant it delivered. Reading
 * is shut down first: from then on the daemon's sends fail, and it gives back the grants
 * they carried (a reply's undo); what it had delivered before is still queued here, read
 * now, and each grant in it given back. Nothing degrades (no reservation is made here).
 */
static void close_drain(rld_client *c, rldc_async *a)
{
    uint8_t buf[RLDI_MAX_MESSAGE + 1];
    shutdown(a->sock, SHUT_RD);
    for (;;) {
        ssize_t n = recv(a->sock, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || (size_t)n > RLDI_MAX_MESSAGE)
            return;                     /* all read (0 once shut down), or broken */
        Rld__V1__Reply *rep = rld__v1__reply__unpack(NULL, (size_t)n, buf);
        if (!rep)
            return;
        uint32_t i;
        arec *r;
        if (rep->code == 0 && !(rep->id & (ID_CANCEL | ID_POSITION | ID_HELLO)) &&
            (r = rec_find(a, rep->id, &i)) && (r->state == R_DAEMON || r->state == R_ZOMBIE)) {
            rldc_wait_result(NULL, rep->body_case == RLD__V1__REPLY__BODY_WAIT ? rep->wait : NULL,
                             r->map, r->n, r->win);
            rldc_refund_all(c, r->ch, r->n, r->win);
            set_state(a, r, R_FREE);
            rec_free(a, r, i);
        }
        rld__v1__reply__free_unpacked(rep, NULL);
    }
}

void rldc_async_free(rld_client *c)
{
    rldc_async *a = c->async;
    if (!a)
        return;
    if (a->forks == __atomic_load_n(&rldc_forks, __ATOMIC_ACQUIRE)) {
        /* grants that arrived, and reservations, that nobody will collect: given back (a
         * degraded wait on a window that tries again later holds nothing) */
        if (a->sock >= 0)
            close_drain(c, a);
        for (uint32_t k = 0; k < a->nchunks; k++)
            for (uint32_t j = 0; j < CHUNK; j++) {
                arec *r = &a->chunks[k][j];
                if ((r->state == R_DONE && r->done.code == 0) ||
                    (r->state == R_LOCAL && !r->retry))
                    rldc_refund_all(c, r->ch, r->n, r->win);
            }
    }
    if (a->sock >= 0)
        close(a->sock);
    close(a->evfd);
    close(a->tfd);
    close(a->epfd);
    out_clear(a);
    recs_clear(a);
    pthread_mutex_destroy(&a->lock);
    free(a);
    c->async = NULL;
}

/* ---- the API ------------------------------------------------------------------------------- */

int rld_wait_start(rld_client *c, const rld_charge *ch, size_t n, int64_t timeout_ns,
                   const rld_wait_opts *opts, uint64_t *ticket)
{
    rld_wait_opts def = { 0, 0 };
    if (!opts)
        opts = &def;
    if (ticket)
        *ticket = 0;
    if (!c || !ch || !ticket || n == 0 || n > RLD_MULTI_MAX || opts->priority < 0 ||
        opts->priority > RLD_PRIORITY_MAX || (opts->flags & ~RLD_WAIT_BARGE))
        return -EINVAL;
    int err = 0;
    /* the fast path first, outside the lock (it counts, and counting may take the registry),
     * unless this client has waits at the daemon: they were started first, and the daemon
     * may not have read them yet (its queue would not show them to the fast path) */
    rld_result res;
    uint32_t win[RLDC_WAIT_MAX_CHARGES] = { 0 };
    bool behind = false;
    rldc_async *pa = __atomic_load_n(&c->async, __ATOMIC_ACQUIRE);
    for (size_t j = 0; pa && !(opts->flags & RLD_WAIT_BARGE) && j < n && !behind; j++)
        behind = __atomic_load_n(&pa->pend[pend_of(ch[j].limit.slot)], __ATOMIC_RELAXED) > 0;
    int rc = behind ? -EAGAIN
                    : rldc_try_multi(c, ch, n, (opts->flags & RLD_WAIT_BARGE) ? RLDI_TAKE_BARGE : 0,
                                     &res, win);
    if (behind)
        memset(&res, 0, sizeof(res));   /* the daemon says whether it fits the timeout */
    if (rc != 0 && rc != -EAGAIN)
        return rc;                      /* a charge that can never be served: no ticket */
    bool now_done = rc == 0;
    if (rc == -EAGAIN && timeout_ns >= 0 && res.retry_after_ns > (uint64_t)timeout_ns) {
        rc = -ETIMEDOUT;                /* it cannot fit in time: no need to ask */
        now_done = true;
    }
    rld_charge q[RLDC_WAIT_MAX_CHARGES];
    uint8_t map[RLDC_WAIT_MAX_CHARGES];
    size_t m = n;
    if (now_done) {
        memcpy(q, ch, n * sizeof(*ch));     /* what a cancel gives back if it was taken */
        for (size_t j = 0; j < n; j++)
            map[j] = (uint8_t)j;
    } else if ((rc = rldc_wait_charges(c, ch, n, q, &m, map)) < 0) {
        return rc;                      /* a handle went bad since the fast path */
    } else if (m == 0) {
        rldc_result_open(&res);         /* every charge admits (fail-open) */
        rc = 0;
        now_done = true;
    }
    rldc_async *a = engine(c, &err);
    if (!a) {
        if (now_done && rc == 0)
            rldc_refund_all(c, q, m, win);
        return err;
    }
    uint32_t i;
    arec *r = NULL;
    if (!now_done && a->queued + m > MAX_QUEUED)
        err = -ENOSPC;
    else if (!(r = rec_alloc(a, &i)))
        err = -ENOMEM;
    else if (m && !(r->ch = malloc(m * (sizeof(rld_charge) + sizeof(uint32_t) + 1)))) {
        rec_free(a, r, i);
        err = -ENOMEM;
    }
    if (err) {
        pthread_mutex_unlock(&a->lock);
        if (now_done && rc == 0)
            rldc_refund_all(c, q, m, win);
        return err;
    }
    r->n = (uint16_t)m;
    r->win = (uint32_t *)(r->ch + m);
    r->map = (uint8_t *)(r->win + m);
    memcpy(r->ch, q, m * sizeof(*q));
    memcpy(r->win, win, m * sizeof(*win));     /* the fast path's, when it took them */
    memcpy(r->map, map, m);
    r->prio = (uint8_t)opts->priority;
    uint64_t now = rldi_mono_ns();
    r->deadline_ns = timeout_ns >= 0 ? now + (uint64_t)timeout_ns : 0;
    if (r->deadline_ns == 0 && timeout_ns >= 0)
        r->deadline_ns = 1;
    *ticket = ticket_of(a, r, i);
    if (now_done) {
        done_push(a, r, i, rc, &res);
    } else if (conn_up(c, a) == 0 && sets_ok(a, m)) {
        Rld__V1__Charge charges[RLDC_WAIT_MAX_CHARGES], *ptrs[RLDC_WAIT_MAX_CHARGES];
        Rld__V1__Wait w;
        rldc_wait_request(&w, charges, ptrs, q, m, timeout_ns, opts->priority);
        Rld__V1__Request req = RLD__V1__REQUEST__INIT;
        req.id = *ticket;
        req.body_case = RLD__V1__REQUEST__BODY_WAIT;
        req.wait = &w;
        r->state = R_FREE;              /* not yet counted anywhere */
        set_state(a, r, R_DAEMON);
        if (send_req(a, &req) < 0 || flush(a) < 0)
            conn_fail(c, a);            /* degrades it, with the rest */
    } else {
        degrade(c, a, r, i);
    }
    arm_timer(a, now);
    sync_ev(a);
    pthread_mutex_unlock(&a->lock);
    return 0;
}

int rld_wait_fd(rld_client *c)
{
    if (!c)
        return -EINVAL;
    int err = 0;
    rldc_async *a = engine(c, &err);
    if (!a)
        return err;
    int fd = a->epfd;
    pthread_mutex_unlock(&a->lock);
    return fd;
}

int rld_wait_collect(rld_client *c, rld_completion *out, size_t max)
{
    if (!c || (!out && max))
        return -EINVAL;
    if (!__atomic_load_n(&c->async, __ATOMIC_ACQUIRE))
        return 0;                       /* nothing was ever started */
    int err = 0;
    rldc_async *a = engine(c, &err);
    if (!a)
        return err;
    pump(c, a);
    /* oldest first: the two queues merged by the order they were made ready in */
    size_t k = 0;
    while (k < max && (a->xq_n || a->done_head)) {
        uint32_t i = a->done_head - 1;
        arec *r = a->done_head ? rec_at(a, i) : NULL;
        if (a->xq_n && (!r || a->xq[a->xq_head].seq < r->seq)) {
            out[k++] = a->xq[a->xq_head].x;
            a->xq_head = (a->xq_head + 1) % a->xq_cap;
            a->xq_n--;
            continue;
        }
        a->done_head = r->next;
        if (!a->done_head)
            a->done_tail = 0;
        out[k++] = r->done;
        set_state(a, r, R_FREE);
        rec_free(a, r, i);
    }
    sync_ev(a);
    pthread_mutex_unlock(&a->lock);
    return (int)(k > INT32_MAX ? INT32_MAX : k);
}

int rld_wait_cancel(rld_client *c, uint64_t ticket)
{
    if (!c)
        return -EINVAL;
    if (!__atomic_load_n(&c->async, __ATOMIC_ACQUIRE))
        return -ENOENT;
    int err = 0;
    rldc_async *a = engine(c, &err);
    if (!a)
        return err;
    uint32_t i;
    arec *r = rec_find(a, ticket, &i);
    int rc = 0;
    /* One rule: a ticket whose DONE completion is not collected, and that was not cancelled
     * before, is cancelled: that completion says -ECANCELED (res all 0) whatever the wait's
     * outcome was, and nothing stays taken. Any other ticket: -ENOENT. */
    if (!r || r->state == R_ZOMBIE || r->cancelled) {
        rc = -ENOENT;
    } else if (r->state == R_DONE) {
        /* decided, not collected: cancelled where it stands, what it took goes back */
        if (r->done.code == 0)
            rldc_refund_all(c, r->ch, r->n, r->win);
        r->done.code = -ECANCELED;
        memset(&r->done.res, 0, sizeof(r->done.res));
        r->cancelled = true;
    } else if (r->state == R_LOCAL) {
        heap_remove(&a->dues, &r->due);
        if (!r->retry)                  /* a retry holds nothing yet */
            rldc_refund_all(c, r->ch, r->n, r->win);
        done_push(a, r, i, -ECANCELED, NULL);
        r->cancelled = true;
    } else {                            /* R_DAEMON */
        rld_completion x = { ticket, -ECANCELED, RLD_COMPLETION_DONE, { 0 } };
        if (xq_room(a, 1) < 0) {
            rc = -ENOMEM;
        } else {
            pos_settle(a, r, i, -ECANCELED);
            xq_put(a, &x);
            /* its place is given up at the daemon; a grant that crossed the Cancel comes
             * back to a zombie, which refunds it */
            set_state(a, r, R_ZOMBIE);
            Rld__V1__Cancel cl = RLD__V1__CANCEL__INIT;
            cl.wait_id = ticket;
            Rld__V1__Request req = RLD__V1__REQUEST__INIT;
            req.id = ticket | ID_CANCEL;
            req.body_case = RLD__V1__REQUEST__BODY_CANCEL;
            req.cancel = &cl;
            if (send_req(a, &req) < 0 || flush(a) < 0)
                conn_fail(c, a);
        }
    }
    arm_timer(a, rldi_mono_ns());
    sync_ev(a);
    pthread_mutex_unlock(&a->lock);
    return rc;
}

int rld_wait_position(rld_client *c, uint64_t ticket)
{
    if (!c)
        return -EINVAL;
    if (!__atomic_load_n(&c->async, __ATOMIC_ACQUIRE))
        return -ENOENT;
    int err = 0;
    rldc_async *a = engine(c, &err);
    if (!a)
        return err;
    uint32_t i;
    arec *r = rec_find(a, ticket, &i);
    int rc = 0;
    if (!r || (r->state != R_DAEMON && r->state != R_LOCAL)) {
        rc = -ENOENT;
    } else if (r->state == R_LOCAL) {
        rld_completion x = { ticket, 0, RLD_COMPLETION_POSITION, { 0 } };
        pos_local(&x, r);
        rc = xq_push(a, &x);
    } else if (!sets_ok(a, 2)) {
        rld_completion x = { ticket, -EOPNOTSUPP, RLD_COMPLETION_POSITION, { 0 } };
        rc = xq_push(a, &x);            /* a daemon of before positions */
    } else if ((rc = xq_room(a, 1)) == 0) {
        /* the answer is promised: room for it is held until it is handed over */
        Rld__V1__Position p = RLD__V1__POSITION__INIT;
        p.wait_id = ticket;
        Rld__V1__Request req = RLD__V1__REQUEST__INIT;
        req.id = ticket | ID_POSITION;
        req.body_case = RLD__V1__REQUEST__BODY_POSITION;
        req.position = &p;
        if ((rc = send_req(a, &req)) == 0) {
            a->xq_held++;
            r->pos_owed++;
            if (flush(a) < 0)
                conn_fail(c, a);        /* the wait degrades: answered locally */
        }
    }
    sync_ev(a);
    pthread_mutex_unlock(&a->lock);
    return rc;
}
