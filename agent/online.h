/* One exchange with the license server (docs/online.md): HTTPS POST of a
 * JSON request through libcurl, with the vendor's CA pinned, the proxy set
 * explicitly (none is "none", so the environment cannot redirect license
 * traffic), timeouts, a size cap on the answer, and the answer accepted only
 * when it is signed by the vendor key, of the right type, and echoes the
 * nonce. Nothing here touches the agent's state. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "agent/grace.h"

#define ONLINE_BODY_MAX  (16 * 1024)
#define ONLINE_NONCE_LEN 32 /* hex characters */

struct online_conf {
    const char *server;  /* https://HOST:PORT */
    const char *ca_file; /* the only trust anchor; NULL: the system's */
    int state_fd;        /* the state directory, where the proxy settings are */
    long connect_timeout_secs;
    long timeout_secs;
    EVP_PKEY *vendor_key;
};

enum online_outcome {
    ONLINE_OK,      /* signed, ours, result "ok": payload holds it */
    ONLINE_REFUSED, /* signed, ours, result "refused": reason and message say why */
    ONLINE_FAILED,  /* no valid answer: failure says which class, message what happened */
};

struct online_result {
    enum online_outcome outcome;
    enum online_failure failure;
    json_t *payload; /* OK and REFUSED: the verified payload (owned) */
    char reason[48];
    char message[400];
};
void online_result_clear(struct online_result *r);

/* 16 random bytes in lower-case hex. */
int online_nonce(char ret[ONLINE_NONCE_LEN + 1]);

/* POSTs request to SERVER/v1/TYPE (type: "activate", "validate",
 * "deactivate") and checks the answer. Always fills *ret; returns 0, or a
 * negative errno only when the request could not even be made (no memory). */
int online_exchange(const struct online_conf *c, const char *type, json_t *request,
                    const char *nonce, struct online_result *ret);

/* Once per process, before threads: curl_global_init. */
int online_global_init(void);
void online_global_cleanup(void);
