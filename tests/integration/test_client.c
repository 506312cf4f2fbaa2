/* Integration tests of libtpmlic (the shared library, linked as a service
 * would) against a real tpmlicd on swtpm, and against small fake servers in
 * this process for what a real agent does not do on demand: never answer,
 * answer chunked or garbage, drop a connection after reading a request.
 *
 * Driven by tests/integration/client_lib.sh, which starts and licenses the
 * agent (features "standard", consumption seconds) and passes:
 *   TPMLIC_TEST_SOCKET    the agent's socket
 *   TPMLIC_TEST_PIDFILE   its pid file (the restart test restarts it)
 *   TPMLIC_TEST_LOG       its log
 *   TPMLIC_TEST_DIR       a scratch directory (fake servers' sockets) */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tpmlic/client.h"

static const char *env(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v)
        fail_msg("%s is not set: run this test through tests/integration/client_lib.sh", name);
    return v;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct tpmlic *open_agent(void) {
    struct tpmlic *h = NULL;
    struct tpmlic_error e = {0};
    int r = tpmlic_connect(env("TPMLIC_TEST_SOCKET"), &h, &e);
    if (r < 0)
        fail_msg("connect: %s", e.message);
    return h;
}

/* ---- a fake agent -------------------------------------------------------------------- */

enum fake_mode {
    FAKE_SILENT,       /* reads requests, never answers */
    FAKE_CHUNKED,      /* answers with Transfer-Encoding: chunked */
    FAKE_GARBAGE,      /* answers something that is not HTTP */
    FAKE_ONE_PER_CONN, /* answers one request, then closes the connection */
    FAKE_DROP_SECOND,  /* answers the first request of a connection; reads the
                          second and closes without answering */
};

struct fake {
    enum fake_mode mode;
    char path[108];
    int lfd;
    pthread_t thread;
    atomic_int connections;
    atomic_int requests;
    atomic_int stop;
};

#define FAKE_BODY "{\"allowed\":true,\"lease\":\"fake-lease\",\"seconds\":1,\"expires_in\":61}"

/* Reads one whole request (headers and Content-Length body); false on EOF. */
static bool read_request(int fd) {
    char buf[8192];
    size_t len = 0;
    char *end;
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            return false;
        len += (size_t)r;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end) {
            char *cl = strcasestr(buf, "\r\nContent-Length:");
            size_t want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
            while (len < want) {
                r = read(fd, buf + len, sizeof(buf) - 1 - len);
                if (r <= 0)
                    return false;
                len += (size_t)r;
            }
            return true;
        }
    }
}

static void send_str(int fd, const char *s) {
    size_t n = strlen(s);
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void *fake_main(void *arg) {
    struct fake *f = arg;
    char ok[256];
    snprintf(ok, sizeof(ok),
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(FAKE_BODY), FAKE_BODY);
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = f->lfd, .events = POLLIN};
        int fd, n = 0;
        if (poll(&p, 1, 50) <= 0)
            continue;
        fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        atomic_fetch_add(&f->connections, 1);
        /* one connection at a time is enough for these tests */
        while (!atomic_load(&f->stop)) {
            struct pollfd q = {.fd = fd, .events = POLLIN};
            if (poll(&q, 1, 50) <= 0)
                continue;
            if (!read_request(fd))
                break;
            atomic_fetch_add(&f->requests, 1);
            n++;
            if (f->mode == FAKE_SILENT)
                continue;
            if (f->mode == FAKE_CHUNKED) {
                send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "2\r\n{}\r\n0\r\n\r\n");
                continue;
            }
            if (f->mode == FAKE_GARBAGE) {
                send_str(fd, "HELLO THERE\r\n\r\n");
                continue;
            }
            if (f->mode == FAKE_DROP_SECOND && n == 2)
                break;
            send_str(fd, ok);
            if (f->mode == FAKE_ONE_PER_CONN)
                break;
        }
        close(fd);
    }
    return NULL;
}

static struct fake *fake_start(enum fake_mode mode, const char *name) {
    struct fake *f = calloc(1, sizeof(*f));
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    assert_non_null(f);
    f->mode = mode;
    snprintf(f->path, sizeof(f->path), "%s/%s.sock", env("TPMLIC_TEST_DIR"), name);
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", f->path);
    unlink(f->path);
    f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->lfd >= 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->lfd, 16), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
    return f;
}

static void fake_stop(struct fake *f) {
    atomic_store(&f->stop, 1);
    pthread_join(f->thread, NULL);
    close(f->lfd);
    unlink(f->path);
    free(f);
}

/* ---- against the real agent ------------------------------------------------------ */

static void test_check_status_and_errors(void **state) {
    struct tpmlic *h = open_agent();
    struct tpmlic_error e = {0};
    struct tpmlic_status st;

    assert_int_equal(tpmlic_check(h, NULL, &e), 0);
    assert_int_equal(tpmlic_check(h, "standard", &e), 0);
    /* the license lacks the feature: -EPERM and the agent's words */
    assert_int_equal(tpmlic_check(h, "enhanced", &e), -EPERM);
    assert_int_equal(e.status, 403);
    assert_non_null(strstr(e.message, "does not include feature 'enhanced'"));

    assert_int_equal(tpmlic_status(h, &st, &e), 0);
    assert_true(st.licensed);
    assert_true(st.valid);
    assert_string_equal(st.license_type, "consumption");
    assert_string_equal(st.features, "standard");
    assert_true(st.subscription_expiry > time(NULL));
    assert_int_equal(st.grace_period_end, 0);
    assert_true(st.secs_remaining > 0);
    assert_int_equal(strlen(st.computer_id), 36);
    assert_string_equal(st.reason, "License is valid");
    tpmlic_close(h);
}

static void test_reserve_commit(void **state) {
    struct tpmlic *h = open_agent();
    struct tpmlic_error e = {0};
    struct tpmlic_lease l;
    struct tpmlic_status before, after;
    uint64_t charged = 0, returned = 0;

    assert_int_equal(tpmlic_status(h, &before, &e), 0);
    assert_int_equal(tpmlic_reserve(h, 30, "standard", &l, &e), 0);
    assert_int_equal(l.seconds, 30);
    assert_int_equal(l.expires_in, 90);
    assert_int_equal(strlen(l.id), 32);
    assert_int_equal(tpmlic_commit(h, l.id, 12, &charged, &returned, &e), 0);
    assert_int_equal(charged, 12);
    assert_int_equal(returned, 18);
    assert_int_equal(tpmlic_status(h, &after, &e), 0);
    assert_int_equal(before.secs_remaining - after.secs_remaining, 12);
    /* a lease commits once */
    assert_int_equal(tpmlic_commit(h, l.id, 1, NULL, NULL, &e), -ENOENT);
    assert_int_equal(e.status, 404);
    assert_non_null(strstr(e.message, "no open lease"));
    /* a feature the license lacks, a bad amount */
    assert_int_equal(tpmlic_reserve(h, 10, "enhanced", &l, &e), -EPERM);
    assert_int_equal(tpmlic_reserve(h, 0, NULL, &l, &e), -EINVAL);
    assert_int_equal(e.status, 400);
    assert_int_equal(tpmlic_reserve(h, 10, NULL, &l, &e), 0);
    assert_int_equal(tpmlic_commit(h, l.id, 11, NULL, NULL, &e), -EINVAL);
    assert_non_null(strstr(e.message, "more than the lease holds"));
    assert_int_equal(tpmlic_commit(h, l.id, 10, NULL, NULL, &e), 0);
    tpmlic_close(h);
}

static void test_request_generic(void **state) {
    struct tpmlic *h = open_agent();
    struct tpmlic_error e = {0};
    char *body = NULL;
    int status = 0;

    assert_int_equal(tpmlic_request(h, "GET", "/metrics", NULL, &status, &body, &e), 0);
    assert_int_equal(status, 200);
    assert_non_null(strstr(body, "tpmlic_license_valid 1"));
    free(body);
    assert_int_equal(tpmlic_request(h, "GET", "/v1/nope", NULL, &status, &body, &e), 0);
    assert_int_equal(status, 404);
    assert_int_equal(tpmlic_errno_from_status(status, body), -ENOENT);
    free(body);
    assert_int_equal(tpmlic_request(h, "DELETE", "/v1/status", NULL, &status, NULL, &e), 0);
    assert_int_equal(status, 405);
    assert_int_equal(tpmlic_request(h, "POST", "/v1/check", "{\"feature\": ", &status, NULL, &e),
                     0);
    assert_int_equal(status, 400);
    assert_int_equal(tpmlic_request(h, "GET", "/v1/management/license", NULL, &status, &body, &e),
                     0);
    assert_int_equal(status, 200);
    assert_non_null(strstr(body, "\"license_code\":\"L-1\""));
    free(body);
    /* no header injection through method or path */
    assert_int_equal(
        tpmlic_request(h, "GET", "/v1/status HTTP/1.1\r\nX: y", NULL, &status, NULL, &e), -EINVAL);
    assert_int_equal(tpmlic_request(h, "G ET", "/v1/status", NULL, &status, NULL, &e), -EINVAL);
    assert_int_equal(tpmlic_request(h, "GET", "v1/status", NULL, &status, NULL, &e), -EINVAL);
    /* the handle still works */
    assert_int_equal(tpmlic_check(h, NULL, &e), 0);
    tpmlic_close(h);
}

static void test_socket_from_environment(void **state) {
    struct tpmlic *h = NULL;
    struct tpmlic_error e = {0};
    char *old = getenv(TPMLIC_SOCKET_ENV) ? strdup(getenv(TPMLIC_SOCKET_ENV)) : NULL;

    setenv(TPMLIC_SOCKET_ENV, env("TPMLIC_TEST_SOCKET"), 1);
    assert_int_equal(tpmlic_connect(NULL, &h, &e), 0);
    assert_string_equal(tpmlic_socket_path(h), env("TPMLIC_TEST_SOCKET"));
    assert_int_equal(tpmlic_check(h, NULL, &e), 0);
    tpmlic_close(h);
    /* an explicit path wins over the environment */
    setenv(TPMLIC_SOCKET_ENV, "/nonexistent/tpmlicd.sock", 1);
    assert_int_equal(tpmlic_connect(env("TPMLIC_TEST_SOCKET"), &h, &e), 0);
    tpmlic_close(h);
    assert_int_equal(tpmlic_connect(NULL, &h, &e), -ENOENT);
    assert_int_equal(e.status, 0);
    assert_non_null(strstr(e.message, "/nonexistent/tpmlicd.sock"));
    /* neither: the default */
    unsetenv(TPMLIC_SOCKET_ENV);
    if (access(TPMLIC_DEFAULT_SOCKET, F_OK) != 0) {
        assert_int_equal(tpmlic_connect(NULL, &h, &e), -ENOENT);
        assert_non_null(strstr(e.message, TPMLIC_DEFAULT_SOCKET));
    }
    if (old)
        setenv(TPMLIC_SOCKET_ENV, old, 1);
    free(old);
}

struct worker {
    struct tpmlic *h;
    int calls;
    int failures;
    bool usage;
    char msg[512];
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    struct tpmlic_error e;
    for (int i = 0; i < w->calls; i++) {
        int r;
        if (w->usage) {
            struct tpmlic_lease l;
            r = tpmlic_reserve(w->h, 2, "standard", &l, &e);
            if (r == 0)
                r = tpmlic_commit(w->h, l.id, 1, NULL, NULL, &e);
        } else
            r = tpmlic_check(w->h, i % 2 ? "standard" : NULL, &e);
        if (r < 0) {
            w->failures++;
            snprintf(w->msg, sizeof(w->msg), "%s", e.message);
        }
    }
    return NULL;
}

/* Threads share one handle: every call succeeds, the handle opens no more
 * connections than calls run at once. */
static void test_threads_share_a_handle(void **state) {
    struct tpmlic *h = open_agent();
    struct worker w[12];
    pthread_t t[12];
    struct tpmlic_status a, b;
    struct tpmlic_error e;

    assert_int_equal(tpmlic_status(h, &a, &e), 0);
    for (int i = 0; i < 12; i++) {
        w[i] = (struct worker){.h = h, .calls = i < 8 ? 2000 : 50, .usage = i >= 8};
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 12; i++) {
        pthread_join(t[i], NULL);
        if (w[i].failures)
            fail_msg("thread %d: %d failed calls, last: %s", i, w[i].failures, w[i].msg);
    }
    assert_int_equal(tpmlic_status(h, &b, &e), 0);
    /* 4 threads x 50 leases of 2 s, 1 s of each used */
    assert_int_equal(a.secs_remaining - b.secs_remaining, 200);
    tpmlic_close(h);
}

/* Nothing listens on path any more. */
static bool refused(const char *path) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    r = connect(fd, (struct sockaddr *)&a, sizeof(a));
    close(fd);
    return r < 0 && (errno == ECONNREFUSED || errno == ENOENT);
}

/* Waits until the agent pid (not necessarily our child) has exited and its
 * socket is closed. A zombie leader is not enough: its other threads may
 * still be tearing down a large address space (ASan), holding the sockets. */
static void wait_gone(int pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    for (int i = 0; i < 1200; i++) {
        char st[512] = "";
        size_t n;
        FILE *f = fopen(path, "r");
        if (f) {
            n = fread(st, 1, sizeof(st) - 1, f);
            fclose(f);
            st[n] = '\0';
        }
        if ((!f || strstr(st, ") Z ") || strstr(st, ") X ")) && refused(env("TPMLIC_TEST_SOCKET")))
            return;
        usleep(25000);
    }
    fail_msg("the agent (pid %d) did not exit within 30 s", pid);
}

/* The agent stops and starts again (as systemd would restart it) between
 * two calls on one handle: the second call succeeds on a new connection. */
static void restart_agent(void) {
    char path[64], cmdline[8192], *argv[64];
    const char *pidfile = env("TPMLIC_TEST_PIDFILE");
    FILE *f = fopen(pidfile, "r");
    size_t n;
    int pid = 0, argc = 0, fd;
    pid_t child;

    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(cmdline, 1, sizeof(cmdline) - 1, f);
    fclose(f);
    cmdline[n] = '\0';
    for (size_t i = 0; i < n && argc < 63; i += strlen(cmdline + i) + 1)
        argv[argc++] = cmdline + i;
    argv[argc] = NULL;
    assert_int_equal(kill(pid, SIGTERM), 0);
    wait_gone(pid);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        fd = open(env("TPMLIC_TEST_LOG"), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        setsid();
        execv(argv[0], argv);
        _exit(127);
    }
    f = fopen(pidfile, "w");
    assert_non_null(f);
    fprintf(f, "%d\n", (int)child);
    fclose(f);
    for (int i = 0; i < 400; i++) {
        struct tpmlic *probe = NULL;
        struct tpmlic_error e;
        if (tpmlic_connect(env("TPMLIC_TEST_SOCKET"), &probe, &e) == 0 &&
            tpmlic_check(probe, NULL, &e) == 0) {
            tpmlic_close(probe);
            return;
        }
        tpmlic_close(probe);
        usleep(25000);
    }
    fail_msg("the agent did not come back after the restart");
}

static void test_agent_restart_between_calls(void **state) {
    struct tpmlic *h = open_agent();
    struct tpmlic_error e = {0};
    struct tpmlic_status st;
    struct tpmlic_lease l;

    assert_int_equal(tpmlic_check(h, NULL, &e), 0);
    assert_int_equal(tpmlic_status(h, &st, &e), 0);
    restart_agent();
    /* the kept-alive connection is dead; the call goes through a new one */
    assert_int_equal(tpmlic_check(h, "standard", &e), 0);
    assert_int_equal(tpmlic_status(h, &st, &e), 0);
    assert_true(st.valid);
    restart_agent();
    /* a reservation is not repeatable, but on a connection found closed
     * before sending it is simply sent on a new one */
    assert_int_equal(tpmlic_reserve(h, 5, NULL, &l, &e), 0);
    assert_int_equal(tpmlic_commit(h, l.id, 5, NULL, NULL, &e), 0);
    tpmlic_close(h);
}

/* ---- against fake agents ---------------------------------------------------------- */

static void test_timeout(void **state) {
    struct fake *f = fake_start(FAKE_SILENT, "silent");
    struct tpmlic *h = NULL;
    struct tpmlic_error e = {0};
    struct tpmlic_lease l;
    uint64_t t0;

    assert_int_equal(tpmlic_connect(f->path, &h, &e), 0);
    assert_int_equal(tpmlic_set_timeout(h, 300), 0);
    assert_int_equal(tpmlic_set_timeout(h, 0), -EINVAL);
    t0 = now_ms();
    assert_int_equal(tpmlic_check(h, NULL, &e), -ETIMEDOUT);
    assert_true(now_ms() - t0 >= 290);
    assert_true(now_ms() - t0 < 1500);
    assert_int_equal(e.status, 0);
    assert_non_null(strstr(e.message, "did not answer in time"));
    t0 = now_ms();
    assert_int_equal(tpmlic_reserve(h, 1, NULL, &l, &e), -ETIMEDOUT);
    assert_true(now_ms() - t0 < 1500);
    tpmlic_close(h);
    fake_stop(f);
}

static void test_chunked_and_garbage_refused(void **state) {
    struct fake *f = fake_start(FAKE_CHUNKED, "chunked");
    struct fake *g = fake_start(FAKE_GARBAGE, "garbage");
    struct tpmlic *h = NULL;
    struct tpmlic_error e = {0};

    assert_int_equal(tpmlic_connect(f->path, &h, &e), 0);
    assert_int_equal(tpmlic_check(h, NULL, &e), -EPROTO);
    assert_non_null(strstr(e.message, "chunked"));
    tpmlic_close(h);
    assert_int_equal(tpmlic_connect(g->path, &h, &e), 0);
    assert_int_equal(tpmlic_check(h, NULL, &e), -EPROTO);
    assert_non_null(strstr(e.message, "not HTTP"));
    tpmlic_close(h);
    fake_stop(f);
    fake_stop(g);
}

/* A connection the agent closed while idle is replaced before sending. */
static void test_idle_close_reconnects(void **state) {
    struct fake *f = fake_start(FAKE_ONE_PER_CONN, "onepercon");
    struct tpmlic *h = NULL;
    struct tpmlic_error e = {0};
    struct tpmlic_lease l;

    assert_int_equal(tpmlic_connect(f->path, &h, &e), 0);
    for (int i = 0; i < 5; i++) {
        usleep(20000); /* let the close arrive */
        assert_int_equal(tpmlic_reserve(h, 1, NULL, &l, &e), 0);
    }
    assert_int_equal(atomic_load(&f->requests), 5);
    assert_int_equal(atomic_load(&f->connections), 5);
    tpmlic_close(h);
    fake_stop(f);
}

/* The connection breaks after the request was sent: a check is sent again
 * on a new connection, a reservation is not (it may have been granted). */
static void test_no_resend_after_send(void **state) {
    struct fake *f = fake_start(FAKE_DROP_SECOND, "drop");
    struct tpmlic *h = NULL;
    struct tpmlic_error e = {0};
    struct tpmlic_lease l;

    assert_int_equal(tpmlic_connect(f->path, &h, &e), 0);
    assert_int_equal(tpmlic_check(h, NULL, &e), 0);
    assert_int_equal(tpmlic_check(h, NULL, &e), 0); /* dropped once, sent again */
    assert_int_equal(atomic_load(&f->requests), 3);
    assert_int_equal(atomic_load(&f->connections), 2);

    /* the next request is the second on the new connection: dropped too */
    assert_int_equal(tpmlic_reserve(h, 1, NULL, &l, &e), -ECONNRESET);
    assert_non_null(strstr(e.message, "may have processed it"));
    assert_int_equal(atomic_load(&f->requests), 4); /* received once, never again */
    assert_int_equal(atomic_load(&f->connections), 2);
    /* the handle goes on with a new connection */
    assert_int_equal(tpmlic_check(h, NULL, &e), 0);
    assert_int_equal(atomic_load(&f->requests), 5);
    assert_int_equal(atomic_load(&f->connections), 3);
    tpmlic_close(h);
    fake_stop(f);
}

/* ---- permissions: a second uid --------------------------------------------------- */

/* Runs fn as uid/gid 65534 without groups in a child; its exit status. */
static int as_nobody(int (*fn)(const char *), const char *path) {
    pid_t pid = fork();
    int st = 0;
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
            setresuid(65534, 65534, 65534) < 0)
            _exit(100);
        _exit(fn(path));
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 101;
}

static int nobody_check(const char *path) {
    struct tpmlic *h = NULL;
    struct tpmlic_error e = {0};
    int r = tpmlic_connect(path, &h, &e);
    if (r < 0)
        return r == -EACCES && e.status == 0 && strstr(e.message, "Permission denied") ? 0 : 1;
    r = tpmlic_check(h, NULL, &e);
    tpmlic_close(h);
    /* the agent's own refusal: 403 "permission denied: ... needs ..." */
    return r == -EACCES && e.status == 403 && strstr(e.message, "permission denied") ? 0 : 2;
}

static void test_permission_denied(void **state) {
    struct fake *f;
    if (getuid() != 0)
        fail_msg("this test switches to uid 65534 and must run as root (CI does)");
    /* the agent's socket is 0666 (the test's start_agent): the agent refuses */
    assert_int_equal(as_nobody(nobody_check, env("TPMLIC_TEST_SOCKET")), 0);
    /* a socket file the caller may not open: the kernel refuses */
    f = fake_start(FAKE_SILENT, "private");
    assert_int_equal(chmod(f->path, 0600), 0);
    assert_int_equal(as_nobody(nobody_check, f->path), 0);
    fake_stop(f);
}

static void test_errno_table_and_args(void **state) {
    struct tpmlic_error e = {0};

    assert_int_equal(tpmlic_errno_from_status(200, NULL), 0);
    assert_int_equal(tpmlic_errno_from_status(400, NULL), -EINVAL);
    assert_int_equal(tpmlic_errno_from_status(403, "{\"allowed\": false, \"error\": \"x\"}"),
                     -EPERM);
    assert_int_equal(tpmlic_errno_from_status(403, "{\"error\": \"permission denied: GET /x\"}"),
                     -EACCES);
    assert_int_equal(tpmlic_errno_from_status(404, NULL), -ENOENT);
    assert_int_equal(tpmlic_errno_from_status(405, NULL), -EOPNOTSUPP);
    assert_int_equal(tpmlic_errno_from_status(409, NULL), -EBUSY);
    assert_int_equal(tpmlic_errno_from_status(413, NULL), -E2BIG);
    assert_int_equal(tpmlic_errno_from_status(429, NULL), -EAGAIN);
    assert_int_equal(tpmlic_errno_from_status(503, NULL), -EHOSTDOWN);
    assert_int_equal(tpmlic_errno_from_status(500, NULL), -EIO);
    assert_int_equal(tpmlic_errno_from_status(302, NULL), -EPROTO);
    assert_int_equal(tpmlic_connect("/x", NULL, &e), -EINVAL);
    tpmlic_close(NULL);
    assert_string_equal(tpmlic_version(), TPMLIC_VERSION);
}

/* The agent is stopped: calls fail with the system's errno, status 0. */
static void test_agent_gone(void **state) {
    struct tpmlic *h = open_agent();
    struct tpmlic_error e = {0};
    const char *pidfile = env("TPMLIC_TEST_PIDFILE");
    FILE *f = fopen(pidfile, "r");
    int pid = 0, r;

    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    assert_int_equal(tpmlic_check(h, NULL, &e), 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    wait_gone(pid);
    r = tpmlic_check(h, NULL, &e);
    tpmlic_close(h);
    if (r != -ECONNREFUSED && r != -ENOENT)
        fail_msg("check with the agent gone: %d (%s), status %d", r, e.message, e.status);
    assert_int_equal(e.status, 0);
    assert_non_null(strstr(e.message, "cannot connect to tpmlicd"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errno_table_and_args),
        cmocka_unit_test(test_check_status_and_errors),
        cmocka_unit_test(test_reserve_commit),
        cmocka_unit_test(test_request_generic),
        cmocka_unit_test(test_socket_from_environment),
        cmocka_unit_test(test_threads_share_a_handle),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_chunked_and_garbage_refused),
        cmocka_unit_test(test_idle_close_reconnects),
        cmocka_unit_test(test_no_resend_after_send),
        cmocka_unit_test(test_permission_denied),
        cmocka_unit_test(test_agent_restart_between_calls),
        /* last: it kills the agent */
        cmocka_unit_test(test_agent_gone),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
