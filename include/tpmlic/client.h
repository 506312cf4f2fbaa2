/* libtpmlic: the C client of tpmlicd's UNIX-socket API (SPEC section 6).
 *
 * A service gates its work with one call on a kept-alive connection:
 *
 *     struct tpmlic *h;
 *     struct tpmlic_error err;
 *     if (tpmlic_connect(NULL, &h, &err) < 0) ...     // NULL: $TPMLIC_SOCKET, else default
 *     if (tpmlic_check(h, "enhanced", &err) < 0) ...  // -EPERM: the license says no
 *     tpmlic_close(h);
 *
 * Conventions (docs/integration.md has the full guide):
 * - Every function that can fail returns 0 (or a count) on success and a
 *   negative errno on failure. Outputs are ret_* parameters, written only on
 *   success. ret_error (may be NULL) is written on failure only: the HTTP
 *   status of the agent's answer (0 when no answer came) and the agent's
 *   "error" text or a description of the local failure.
 * - Answers of the agent map to errnos: 400 -EINVAL, 403 -EPERM (the license
 *   refuses: not valid, feature missing, no seconds left, another caller's
 *   lease) or -EACCES (the caller may not use the endpoint), 404 -ENOENT,
 *   405 -EOPNOTSUPP, 409 -EBUSY, 413 -E2BIG, 429 -EAGAIN, 503 -EHOSTDOWN,
 *   other 5xx -EIO, anything unexpected -EPROTO. Failures to reach the agent
 *   keep the system's errno (-ENOENT, -ECONNREFUSED, -EACCES on the socket
 *   file, ...) with status 0; -ETIMEDOUT when a call takes longer than the
 *   handle's timeout.
 * - A handle may be shared by any number of threads. It keeps a small pool
 *   of kept-alive connections (one per thread that is inside a call at the
 *   same moment, at most TPMLIC_MAX_CONNECTIONS; beyond that calls wait).
 * - A connection found closed (the agent restarted, or closed it after 30 s
 *   idle) is opened again and the request sent again once. A request that
 *   was already sent when the connection broke is sent again only if it
 *   changes nothing (GET, tpmlic_check): a reservation or a commit is never
 *   repeated, the call fails with -ECONNRESET instead.
 * - The library does not log, installs no signal handlers (writes use
 *   MSG_NOSIGNAL) and has no global state.
 *
 * Memory: strings returned through ret_* pointers are malloc()ed and freed
 * by the caller with free(); the handle is freed with tpmlic_close(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TPMLIC_API __attribute__((visibility("default")))
#else
#define TPMLIC_API
#endif

#define TPMLIC_DEFAULT_SOCKET     "/run/tpmlic/tpmlicd.sock"
#define TPMLIC_SOCKET_ENV         "TPMLIC_SOCKET"
#define TPMLIC_DEFAULT_TIMEOUT_MS 10000
#define TPMLIC_MAX_CONNECTIONS    16

struct tpmlic; /* opaque handle */

struct tpmlic_error {
    int status;        /* HTTP status of the agent's answer; 0 when none came */
    char message[512]; /* the agent's "error" text, or what failed locally */
};

struct tpmlic_lease {
    char id[64];         /* pass to tpmlic_commit() */
    uint32_t seconds;    /* granted; may be fewer than asked */
    uint32_t expires_in; /* seconds until the agent charges it in full */
};

struct tpmlic_status {
    bool licensed;
    bool valid;
    bool offline_mode;
    char reason[256];            /* why the license is (not) valid */
    char license_type[32];       /* perpetual, time-limited, subscription, consumption */
    char features[640];          /* comma-separated */
    int64_t subscription_expiry; /* Unix time; 0 when none */
    int64_t grace_period_end;    /* Unix time; 0 when none */
    uint64_t secs_remaining;
    char computer_id[40];
};

/* The library's version, e.g. "0.1.0". */
TPMLIC_API const char *tpmlic_version(void);

/* Opens a handle and its first connection. socket_path: NULL or "" means
 * $TPMLIC_SOCKET, else TPMLIC_DEFAULT_SOCKET. Fails when the agent cannot be
 * reached now (-ENOENT, -ECONNREFUSED, -EACCES, -ETIMEDOUT). */
TPMLIC_API int tpmlic_connect(const char *socket_path, struct tpmlic **ret_handle,
                              struct tpmlic_error *ret_error);

/* Closes every connection and frees the handle; accepts NULL. No call on
 * the handle may be running. */
TPMLIC_API void tpmlic_close(struct tpmlic *h);

/* The timeout of each later call, in milliseconds (> 0), covering connect,
 * send and answer. Default TPMLIC_DEFAULT_TIMEOUT_MS. */
TPMLIC_API int tpmlic_set_timeout(struct tpmlic *h, int timeout_ms);

/* The socket path the handle uses (owned by the handle). */
TPMLIC_API const char *tpmlic_socket_path(const struct tpmlic *h);

/* POST /v1/check. 0: allowed; -EPERM: the license does not allow it (or not
 * this feature); feature may be NULL (is the license valid at all?). */
TPMLIC_API int tpmlic_check(struct tpmlic *h, const char *feature, struct tpmlic_error *ret_error);

/* POST /v1/usage/reserve: a lease of up to `seconds` (1..86400) seconds,
 * for `feature` (may be NULL). -EPERM when none are left or the feature is
 * not licensed; -EAGAIN with too many open leases. Never sent twice. */
TPMLIC_API int tpmlic_reserve(struct tpmlic *h, uint32_t seconds, const char *feature,
                              struct tpmlic_lease *ret_lease, struct tpmlic_error *ret_error);

/* POST /v1/usage/commit: `used` seconds of the lease are charged, the rest
 * returned. ret_charged, ret_returned may be NULL. -ENOENT: no such open
 * lease. Never sent twice. */
TPMLIC_API int tpmlic_commit(struct tpmlic *h, const char *lease_id, uint64_t used,
                             uint64_t *ret_charged, uint64_t *ret_returned,
                             struct tpmlic_error *ret_error);

/* GET /v1/status, decoded. */
TPMLIC_API int tpmlic_status(struct tpmlic *h, struct tpmlic_status *ret_status,
                             struct tpmlic_error *ret_error);

/* Any request (management endpoints, /metrics, ...). json_body may be NULL
 * (no body). Returns 0 when the agent answered, whatever the status: the
 * status in *ret_http_status, the body (NUL-terminated, malloc()ed, may be
 * "") in *ret_body when ret_body is not NULL. A negative errno when no
 * answer came. Only GET and HEAD are sent again after a broken connection. */
TPMLIC_API int tpmlic_request(struct tpmlic *h, const char *method, const char *path,
                              const char *json_body, int *ret_http_status, char **ret_body,
                              struct tpmlic_error *ret_error);

/* The negative errno tpmlic_* functions return for an answer with this
 * HTTP status and body (see above); 0 for 2xx. body may be NULL. */
TPMLIC_API int tpmlic_errno_from_status(int http_status, const char *body);

#ifdef __cplusplus
}
#endif
