/*
 * test_flood.c - a daemon under abuse keeps its memory bounded and serves everyone else:
 * hundreds of idle connections, a peer that floods requests and never reads a reply, more
 * waiters than a limit allows, more waits than a connection allows.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "rld.h"
#include "wire.h"

static const char *sock_path;

/* the daemon's bounds (server.h): waits per connection, replies queued per connection */
enum { PER_CONN = 16384, OUTQ = PER_CONN + 64 };

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static void served_quickly(rld_client *c, const char *what)
{
    rldi_conn k;
    uint64_t t0 = t_now_ns();
    T_CODE(rldi_conn_open(sock_path, "probe", 2000, &k, NULL, 0), 0);
    Rld__V1__Stats st = RLD__V1__STATS__INIT;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_STATS;
    req.stats = &st;
    Rld__V1__Reply *rep;
    T_CODE(rldi_conn_call(&k, &req, 2000, &rep), 0);
    T_CHECK(rep->code == 0, "stats");
    rld__v1__reply__free_unpacked(rep, NULL);
    rldi_conn_close(&k);
    rld_limit l;
    rld_result r;
    T_CODE(rld_find(c, "open", &l), 0);
    T_CODE(rld_wait(c, l, 1, 1000000000, &r), 0);
    T_CHECK(!(r.flags & RLD_F_DEGRADED), "%s: served by the daemon", what);
    uint64_t took = t_now_ns() - t0;
    T_CHECK(took < 500000000ull, "%s: others served in %llu ms", what,
            (unsigned long long)(took / 1000000));
}

static int raw_hello(void)
{
    rldi_conn k;
    if (rldi_conn_open(sock_path, "idle", 2000, &k, NULL, 0) < 0)
        return -1;
    return k.fd;
}

static Rld__V1__Reply *recv_reply(int fd)
{
    uint8_t buf[8192];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    return n > 0 ? rld__v1__reply__unpack(NULL, (size_t)n, buf) : NULL;
}

static void send_wait(int fd, uint64_t id, const char *limit)
{
    Rld__V1__Wait w = RLD__V1__WAIT__INIT;
    w.limit = (char *)limit;
    w.cost = 1;
    w.timeout_ns = -1;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.id = id;
    req.body_case = RLD__V1__REQUEST__BODY_WAIT;
    req.wait = &w;
    uint8_t buf[512];
    size_t n = rld__v1__request__pack(&req, buf);
    T_CHECK(send(fd, buf, n, 0) == (ssize_t)n, "send wait");
}

int main(void)
{
    t_daemon d;
    t_instance(&d, "flood", "[rld]\nmax_waiters = 2000\n\n"
                            "[limit open]\nrate = 1000000/s\n\n"
                            "[limit open0]\nrate = 1000000/s\n\n[limit open1]\nrate = 1000000/s\n\n"
                            "[limit open2]\nrate = 1000000/s\n\n[limit open3]\nrate = 1000000/s\n\n"
                            "[limit open4]\nrate = 1000000/s\n\n[limit open5]\nrate = 1000000/s\n\n"
                            "[limit open6]\nrate = 1000000/s\n\n[limit open7]\nrate = 1000000/s\n\n"
                            "[limit open8]\nrate = 1000000/s\n\n"
                            "[limit shut]\nrate = 1/day\nburst = 1\n\n"
                            "[limit trickle]\nrate = 1000/s\nburst = 1\n");
    char sock[400];
    snprintf(sock, sizeof(sock), "%s/%s.sock", d.dir, d.instance);
    sock_path = sock;
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld started");
    rld_client *c;
    T_CODE(rld_open(NULL, 0, &c), 0);
    rld_limit shut;
    T_CODE(rld_find(c, "shut", &shut), 0);
    T_CODE(rld_try(c, shut, 1, NULL), 0);            /* closed for a day */
    long rss0 = rss_kb(d.pid);

    /* 1. 400 idle connections */
    enum { IDLE = 400 };
    int idle[IDLE];
    for (int i = 0; i < IDLE; i++) {
        idle[i] = raw_hello();
        T_CHECK(idle[i] >= 0, "idle connection %d", i);
    }
    served_quickly(c, "400 idle connections");

    /* 2. a peer that floods Stats requests and never reads */
    int flooder = raw_hello();
    T_CHECK(flooder >= 0, "flooder connects");
    fcntl(flooder, F_SETFL, O_NONBLOCK);
    Rld__V1__Stats st = RLD__V1__STATS__INIT;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_STATS;
    req.stats = &st;
    uint8_t buf[256];
    int sent = 0;
    uint64_t deadline = t_now_ns() + 5000000000ull;
    while (t_now_ns() < deadline && sent < 20000) {
        req.id = (uint64_t)sent + 1;
        size_t n = rld__v1__request__pack(&req, buf);
        ssize_t w = send(flooder, buf, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EAGAIN) {
            t_sleep_ns(1000000);
            continue;
        }
        if (w < 0)
            break;                                    /* dropped by the daemon */
        sent++;
    }
    deadline = t_now_ns() + 5000000000ull;
    while (!t_log_has(&d, "does not read its replies") && t_now_ns() < deadline)
        t_sleep_ns(5000000);
    T_CHECK(t_log_has(&d, "does not read its replies"), "the flooder was disconnected (%d sent)", sent);
    close(flooder);
    served_quickly(c, "after a flooding peer");

    /* 3. more waiters than the limit allows (2000): the next is refused, clearly */
    int wfd[3] = { raw_hello(), raw_hello(), raw_hello() };
    for (int i = 0; i < 2000; i++)
        send_wait(wfd[i % 2], (uint64_t)i + 1, "shut");
    rld_limit_info info;
    deadline = t_now_ns() + 5000000000ull;
    while ((rld_info(c, shut, &info), info.waiters) < 2000 && t_now_ns() < deadline)
        t_sleep_ns(2000000);
    send_wait(wfd[2], 5000, "shut");
    Rld__V1__Reply *rep = recv_reply(wfd[2]);
    T_CHECK(rep && rep->id == 5000 && rep->code == -ENOSPC && strstr(rep->message, "max 2000"),
            "waiter 2001 refused: %d %s", rep ? rep->code : 0, rep ? rep->message : "");
    rld__v1__reply__free_unpacked(rep, NULL);
    T_CODE(rld_info(c, shut, &info), 0);
    T_CHECK(info.waiters == 2000, "2000 waiters queued: %u", info.waiters);
    served_quickly(c, "2000 waiters queued");
    /* they hold nothing: closing their connections empties the queue */
    for (int i = 0; i < 3; i++)
        close(wfd[i]);
    deadline = t_now_ns() + 5000000000ull;
    while ((rld_info(c, shut, &info), info.waiters) && t_now_ns() < deadline)
        t_sleep_ns(2000000);
    T_CHECK(info.waiters == 0, "disconnected waiters gone: %u", info.waiters);

    /* 4. more waits than one connection may hold: a multi-wait counts once per limit it
     * queues on, so 1,821 waits on 9 limits are 16,389 places, over the 16,384 allowed
     * (and each limit stays under its 2000 waiters) */
    rld_limit open;
    T_CODE(rld_find(c, "open", &open), 0);
    enum { NL = 9, NW = PER_CONN / NL + 1 };
    rld_limit many[NL];
    char names[NL][16];
    for (int j = 0; j < NL; j++) {
        snprintf(names[j], sizeof(names[j]), "open%d", j);
        T_CODE(rld_find(c, names[j], &many[j]), 0);
        T_CODE(rld_debit(c, many[j], 1000000ull * 3600), 0);   /* an hour of debt: they queue */
    }
    int one = raw_hello();
    for (int i = 0; i < NW; i++) {
        Rld__V1__Charge ch[NL], *chp[NL];
        for (int j = 0; j < NL; j++) {
            rld__v1__charge__init(&ch[j]);
            ch[j].limit = names[j];
            ch[j].cost = 1;
            chp[j] = &ch[j];
        }
        Rld__V1__Wait w = RLD__V1__WAIT__INIT;
        w.timeout_ns = -1;
        w.n_charges = NL;
        w.charges = chp;
        req.id = (uint64_t)i + 1;
        req.body_case = RLD__V1__REQUEST__BODY_WAIT;
        req.wait = &w;
        uint8_t wb[1024];
        size_t n = rld__v1__request__pack(&req, wb);
        T_CHECK(send(one, wb, n, 0) == (ssize_t)n, "send multi-wait");
    }
    rep = recv_reply(one);
    T_CHECK(rep && rep->id == NW && rep->code == -ENOSPC && strstr(rep->message, "this connection"),
            "multi-wait %d on one connection refused: %d %s", NW, rep ? rep->code : 0,
            rep ? rep->message : "");
    rld__v1__reply__free_unpacked(rep, NULL);
    T_CODE(rld_info(c, many[0], &info), 0);
    T_CHECK(info.waiters == NW - 1, "%u waiters on open0", info.waiters);
    close(one);
    for (int j = 0; j < NL; j++)
        T_CODE(rld_refund(c, many[j], UINT64_MAX), 0);

    /* 5. grants trickling to a peer whose reply queue overflows meanwhile: the grant's own
     * reply closes the connection, which drops that very waiter (once a use-after-free) */
    rld_limit trickle;
    T_CODE(rld_find(c, "trickle", &trickle), 0);
    T_CODE(rld_debit(c, trickle, 200), 0);            /* 200 ms of debt: the waits queue */
    int evil = raw_hello();
    fcntl(evil, F_SETFL, O_NONBLOCK);
    /* 1000 waits, then requests whose replies fill the queue to just under its bound */
    for (int i = 0; i < OUTQ - 48; i++) {
        if (i < 1000) {
            Rld__V1__Wait w = RLD__V1__WAIT__INIT;
            w.limit = "trickle";
            w.cost = 1;
            w.timeout_ns = -1;
            req.id = 100 + (uint64_t)i;
            req.body_case = RLD__V1__REQUEST__BODY_WAIT;
            req.wait = &w;
            size_t n = rld__v1__request__pack(&req, buf);
            while (send(evil, buf, n, MSG_NOSIGNAL) < 0 && errno == EAGAIN)
                t_sleep_ns(100000);
        } else {
            req.id = 5000 + (uint64_t)i;
            req.body_case = RLD__V1__REQUEST__BODY_STATS;
            req.stats = &st;
            size_t n = rld__v1__request__pack(&req, buf);
            ssize_t w;
            while ((w = send(evil, buf, n, MSG_NOSIGNAL)) < 0 && errno == EAGAIN)
                t_sleep_ns(100000);
            if (w < 0)
                break;                                /* dropped already */
        }
    }
    t_sleep_ns(1500000000);                           /* grants at 1/ms overflow its queue */
    T_CHECK(kill(d.pid, 0) == 0, "the daemon survived a peer closed by its own grant");
    close(evil);
    served_quickly(c, "after a peer closed by its own grant");

    long rss1 = rss_kb(d.pid);
    printf("flood: %d idle connections, a flooder dropped after %d requests, waiter and "
           "per-connection bounds enforced; daemon RSS %ld kB -> %ld kB\n", IDLE, sent, rss0, rss1);
    T_CHECK(rss1 - rss0 < 64 * 1024, "daemon memory bounded: %ld -> %ld kB", rss0, rss1);
    for (int i = 0; i < IDLE; i++)
        close(idle[i]);
    served_quickly(c, "at the end");
    rld_close(c);
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    printf("test_flood: ok\n");
    return 0;
}
