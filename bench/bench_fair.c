/* Benchmark for the fair limits of agent/http.c (issue 15): a hostile
 * caller, uid 65534 in the service group, opens BENCH_HOSTILE connections
 * (default 300) to the API socket and holds them, sending nothing (those
 * the header timeout closes it opens anew); in the "hammers" rows it also
 * opens a new one at once for every one refused. Meanwhile legitimate
 * callers ask POST /v1/check: root, and another uid of the service group
 * (65533), each over one keep-alive connection and on a new connection per
 * request (what tpmlicctl does). Each figure is set against the baseline
 * measured in the same run with no hostile caller. The server is
 * agent/http.c with the agent's defaults (256 connections, 32 per uid, 8
 * reserved, 4 threads) and a trivial check handler; the last setup turns
 * the per-uid limit off, to show what the reserve alone keeps. Needs root
 * (it switches uids). BENCH_SECS sets the seconds per case (default 1.5).
 * Benchmarks report; they do not assert. */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/http.h"
#include "bench/lib/loadgen.h"
#include "common/macro.h"

#define SERVICE_GID 4242u
#define ADMIN_GID   4343u
#define HOSTILE_UID 65534u
#define OTHER_UID   65533u
#define ANSWER_MS   2000 /* a request not answered within this counts as failed */

static const char request[] = "POST /v1/check HTTP/1.1\r\nHost: localhost\r\n"
                              "Content-Type: application/json\r\nContent-Length: 22\r\n\r\n"
                              "{\"feature\":\"enhanced\"}";
static char sock_path[128];

/* ---- the server ------------------------------------------------------------- */

static void h_check(void *u, const struct http_request *req, struct http_response *resp) {
    json_t *b;
    if (http_parse_json_object(req, true, &b, resp) < 0)
        return;
    json_decref(b);
    http_respond_json(resp, 200, json_pack("{s:b}", "allowed", 1));
}

static const struct http_route routes[] = {
    {"POST", "/v1/check", HTTP_PERM_SERVICE, h_check, 0},
};

static struct http_server *start(int fd, unsigned per_uid) {
    struct http_server *s = NULL;
    struct http_server_config c = {
        .listen_fd = fd,
        .routes = routes,
        .nroutes = ARRAY_SIZE(routes),
        .service_gid = SERVICE_GID,
        .admin_gid = ADMIN_GID,
        .have_service_gid = true,
        .have_admin_gid = true,
        .threads = 4, /* the agent's default */
        .max_per_uid = per_uid,
    };
    int r = http_server_start(&c, &s);
    if (r < 0) {
        fprintf(stderr, "http_server_start: %s\n", strerror(-r));
        exit(1);
    }
    return s;
}

/* ---- a legitimate caller ------------------------------------------------------ */

struct measure {
    double rate, p50, p99, max; /* requests/s; microseconds */
    unsigned ok, failed;
    int first_status; /* of the first failure, 0: none; -1: no answer */
};

/* One request and its whole answer; the status, -1 when none came. */
static int exchange(int fd) {
    const char *p = request;
    size_t n = sizeof(request) - 1;

    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* a refused connection may be shut already: read its answer */
        p += w;
        n -= (size_t)w;
    }
    return lg_read_answer(fd, ANSWER_MS);
}

/* For lg_bench_secs: requests over one keep-alive connection, or each on a
 * new connection (connect included in its time). */
static struct measure run_caller(bool fresh) {
    struct hist *h = calloc(1, sizeof(*h));
    struct measure m = {0};
    uint64_t t0 = lg_now_ns(), end = t0 + (uint64_t)(lg_bench_secs * 1e9), mx = 0;
    int fd = -1;

    if (!h)
        exit(1);
    while (lg_now_ns() < end) {
        uint64_t a = lg_now_ns(), d;
        int st = -1;
        if (fd < 0)
            fd = lg_unix_connect(sock_path);
        if (fd >= 0)
            st = exchange(fd);
        d = lg_now_ns() - a;
        if (st == 200) {
            m.ok++;
            hist_add(h, d);
            if (d > mx)
                mx = d;
        } else {
            m.failed++;
            if (!m.first_status)
                m.first_status = st;
        }
        if (fresh || st != 200) {
            if (fd >= 0)
                close(fd);
            fd = -1;
        }
        if (st != 200 && m.failed >= 20)
            break; /* refused: the figure is the refusal */
    }
    if (fd >= 0)
        close(fd);
    m.rate = (double)m.ok / ((double)(lg_now_ns() - t0) / 1e9);
    m.p50 = hist_q(h, 0.50);
    m.p99 = hist_q(h, 0.99);
    m.max = (double)mx / 1e3;
    free(h);
    return m;
}

static void become(uid_t uid) {
    const gid_t groups[] = {SERVICE_GID};
    if (setgroups(1, groups) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0 ||
        geteuid() != uid)
        _exit(2);
}

/* run_caller as uid, in a child process. */
static struct measure run_caller_as(uid_t uid, bool fresh) {
    struct measure m = {0};
    int p[2], st;
    pid_t pid;

    if (uid == 0)
        return run_caller(fresh);
    if (pipe(p) < 0)
        exit(1);
    pid = fork();
    if (pid == 0) {
        close(p[0]);
        become(uid);
        m = run_caller(fresh);
        _exit(write(p[1], &m, sizeof(m)) == (ssize_t)sizeof(m) ? 0 : 3);
    }
    close(p[1]);
    if (read(p[0], &m, sizeof(m)) != (ssize_t)sizeof(m))
        m = (struct measure){.failed = 1, .first_status = -1};
    close(p[0]);
    waitpid(pid, &st, 0);
    return m;
}

/* ---- the hostile caller -------------------------------------------------------- */

struct hostile {
    pid_t pid;
    int release; /* closing it ends the child */
};

/* Opens n connections as HOSTILE_UID and holds them, silent. One that the
 * server closes without an answer (the header timeout) is opened anew; one
 * refused (503) too when hammer, else it is left closed. Writes one byte to
 * ready once all n were opened, then loops until release is closed. */
static void hostile_main(int n, bool hammer, int ready, int release) {
    struct pollfd *pf = calloc((size_t)n + 1, sizeof(*pf));
    bool *refused = calloc((size_t)n, sizeof(*refused));
    char buf[4096], c = 'r';

    if (!pf || !refused)
        _exit(1);
    become(HOSTILE_UID);
    for (int i = 0; i < n; i++)
        pf[i] = (struct pollfd){.fd = lg_unix_connect(sock_path), .events = POLLIN};
    pf[n] = (struct pollfd){.fd = release, .events = POLLIN};
    if (write(ready, &c, 1) != 1)
        _exit(3);
    for (;;) {
        if (poll(pf, (nfds_t)n + 1, 1000) < 0 && errno != EINTR)
            _exit(4);
        if (pf[n].revents)
            _exit(0);
        for (int i = 0; i < n; i++) {
            if (!pf[i].revents)
                continue;
            if (read(pf[i].fd, buf, sizeof(buf)) > 0) {
                refused[i] = true; /* the 503; the close follows */
                continue;
            }
            close(pf[i].fd);
            pf[i].fd = hammer || !refused[i] ? lg_unix_connect(sock_path) : -1;
            refused[i] = false;
        }
    }
}

static struct hostile hostile_start(int n, bool hammer) {
    struct hostile h;
    int ready[2], rel[2];
    char c;

    if (pipe(ready) < 0 || pipe(rel) < 0)
        exit(1);
    h.pid = fork();
    if (h.pid == 0) {
        close(ready[0]);
        close(rel[1]);
        hostile_main(n, hammer, ready[1], rel[0]);
    }
    close(ready[1]);
    close(rel[0]);
    h.release = rel[1];
    if (read(ready[0], &c, 1) != 1)
        fprintf(stderr, "the hostile caller did not start\n");
    close(ready[0]);
    return h;
}

static void hostile_end(struct hostile *h) {
    int st;
    close(h->release);
    waitpid(h->pid, &st, 0);
}

/* ---- the run ------------------------------------------------------------------- */

static struct measure base[2][2]; /* [root, other][keep-alive, fresh] */

static void row(const char *setup, const char *who, const char *how, struct measure m,
                const struct measure *b) {
    char vs[32] = "";

    if (b && m.ok && b->p50 > 0)
        snprintf(vs, sizeof(vs), "%7.0f%%", 100.0 * m.p50 / b->p50);
    if (!m.ok) {
        printf("%-24s %-12s %-11s %s %d\n", setup, who, how, "no answer: status", m.first_status);
    } else {
        printf("%-24s %-12s %-11s %9.0f %9.1f %9.1f %9.1f %8s", setup, who, how, m.rate, m.p50,
               m.p99, m.max, vs);
        if (m.failed)
            printf("  (%u failed, first status %d)", m.failed, m.first_status);
        printf("\n");
    }
    fflush(stdout);
}

static void callers(const char *setup, bool is_base) {
    static const char *const who[] = {"root", "uid 65533"};
    static const char *const how[] = {"keep-alive", "new conn"};
    const uid_t uids[] = {0, OTHER_UID};

    for (int w = 0; w < 2; w++)
        for (int k = 0; k < 2; k++) {
            struct measure m = run_caller_as(uids[w], k == 1);
            if (is_base)
                base[w][k] = m;
            row(setup, who[w], how[k], m, is_base ? NULL : &base[w][k]);
        }
}

/* Waits until the server holds what the hostile caller got (its opens are
 * all accepted or refused), and prints it. */
static void settle(struct http_server *s, int n, const char *setup) {
    struct http_stats st, prev = {0};

    for (int i = 0; i < 100; i++) {
        usleep(20000);
        http_server_stats(s, &st);
        if (i > 5 && st.connections_open == prev.connections_open &&
            st.connections_refused == prev.connections_refused)
            break;
        prev = st;
    }
    printf("%-24s hostile uid 65534 asked %d connections: %u open (held, and refusals "
           "closing), %llu refused so far\n",
           setup, n, st.connections_open, (unsigned long long)st.connections_refused);
}

static void hostile_case(int fd, int n, bool hammer, unsigned per_uid, const char *setup) {
    struct http_server *s = start(fd, per_uid);
    struct hostile h = hostile_start(n, hammer);
    struct http_stats a, b;

    settle(s, n, setup);
    http_server_stats(s, &a);
    callers(setup, false);
    http_server_stats(s, &b);
    if (hammer)
        printf("%-24s the hostile caller was refused %.0f times a second meanwhile\n", setup,
               (double)(b.connections_refused - a.connections_refused) / (4 * lg_bench_secs));
    hostile_end(&h);
    http_server_stop(s);
}

int main(void) {
    const char *e = getenv("BENCH_SECS");
    const char *hn = getenv("BENCH_HOSTILE");
    int n = hn && atoi(hn) > 0 ? atoi(hn) : 300;
    char dir[64], cmd[128];
    struct http_server *s;
    int fd;

    if (e && atof(e) > 0)
        lg_bench_secs = atof(e);
    if (geteuid() != 0) {
        fprintf(stderr, "bench_fair must run as root: its callers switch to uids %u and %u\n",
                HOSTILE_UID, OTHER_UID);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof(dir), "/tmp/tpmlic-bench-fair-XXXXXX");
    if (!mkdtemp(dir) || chmod(dir, 0755) < 0) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(sock_path, sizeof(sock_path), "%s/tpmlicd.sock", dir);
    if (http_listen_unix(sock_path, 0666, (gid_t)-1, &fd) < 0) {
        fprintf(stderr, "cannot listen in %s\n", dir);
        return 1;
    }

    printf("POST /v1/check while a hostile caller holds connections, %.1f s per case;\n"
           "latency in us, connect included for \"new conn\"; vs base: p50 against the same "
           "caller with no hostile caller.\n\n",
           lg_bench_secs);
    printf("%-24s %-12s %-11s %9s %9s %9s %9s %8s\n", "setup", "caller", "requests", "req/s", "p50",
           "p99", "max", "vs base");
    s = start(fd, 0);
    callers("no hostile caller", true);
    http_server_stop(s);

    hostile_case(fd, n, false, 0, "hostile holds (32/uid)");
    hostile_case(fd, n, true, 0, "hostile hammers (32/uid)");
    hostile_case(fd, n, false, 100000, "hostile holds (no /uid)");

    close(fd);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return 0;
}
