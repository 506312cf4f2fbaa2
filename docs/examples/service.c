/* A service that bills by time, in C with libtpmlic (docs/integration.md).
 *
 *   service MAX_SECONDS USED_SECONDS [FEATURE]
 *
 * Checks the license for FEATURE (default "standard") before it works,
 * reserves MAX_SECONDS usage seconds, "works", and commits what the work
 * used (USED_SECONDS stands for what a real service would measure). The
 * socket comes from TPMLIC_SOCKET, else /run/tpmlic/tpmlicd.sock.
 *
 *   cc -o service service.c $(pkg-config --cflags --libs tpmlic) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <tpmlic/client.h>

int main(int argc, char **argv) {
    const char *feature = argc > 3 ? argv[3] : "standard";
    struct tpmlic *h = NULL;
    struct tpmlic_error err;
    struct tpmlic_lease lease;
    uint64_t charged, returned, used;
    int r;

    if (argc < 3) {
        fprintf(stderr, "usage: service MAX_SECONDS USED_SECONDS [FEATURE]\n");
        return 2;
    }
    used = strtoull(argv[2], NULL, 10);

    /* One handle for the life of the service: the connection is kept
     * alive, re-opened if the agent restarts, and may be shared by threads. */
    r = tpmlic_connect(NULL, &h, &err);
    if (r < 0) {
        fprintf(stderr, "cannot reach tpmlicd: %s\n", err.message);
        return 1;
    }

    /* 1. May this work be done at all? */
    r = tpmlic_check(h, feature, &err);
    if (r == -EPERM) {
        fprintf(stderr, "not licensed: %s\n", err.message);
        tpmlic_close(h);
        return 1;
    }
    if (r < 0) {
        fprintf(stderr, "license check failed: %s\n", err.message);
        tpmlic_close(h);
        return 1;
    }
    printf("allowed: feature %s\n", feature);

    /* 2. Take the seconds the work may need. The agent may grant fewer. */
    r = tpmlic_reserve(h, (uint32_t)strtoul(argv[1], NULL, 10), feature, &lease, &err);
    if (r < 0) {
        fprintf(stderr, "no usage seconds: %s\n", err.message);
        tpmlic_close(h);
        return 1;
    }
    printf("reserved %u s (lease %s)\n", lease.seconds, lease.id);

    /* 3. The work itself, within what was granted. */
    if (used > lease.seconds)
        used = lease.seconds;

    /* 4. Charge what was used; the rest goes back. Commit before the lease
     * expires (lease.expires_in seconds), or it is charged in full. */
    r = tpmlic_commit(h, lease.id, used, &charged, &returned, &err);
    if (r < 0) {
        fprintf(stderr, "commit failed: %s\n", err.message);
        tpmlic_close(h);
        return 1;
    }
    printf("charged %llu s, returned %llu s\n", (unsigned long long)charged,
           (unsigned long long)returned);
    tpmlic_close(h);
    return 0;
}
