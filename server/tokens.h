/* Bearer tokens for the admin REST API. A token is
 * "tpmlic_<id>_<secret>": 8 random bytes of ID and 32 of secret, in hex.
 * The database keeps the ID, a name, the scope and the SHA-256 of the whole
 * token, never the token; a presented token is hashed and compared in
 * constant time. Scopes nest: read < write < admin. */
#pragma once

#include <stdbool.h>
#include <time.h>

#include <jansson.h>

#include "server/db.h"

#define SRV_TOKEN_ID_HEX   16
#define SRV_TOKEN_LEN      (7 + SRV_TOKEN_ID_HEX + 1 + 64) /* "tpmlic_" ID "_" secret */
#define SRV_TOKEN_NAME_MAX 64

enum srv_scope {
    SRV_SCOPE_NONE = 0, /* routes open to all: /health, /metrics */
    SRV_SCOPE_READ = 1,
    SRV_SCOPE_WRITE = 2,
    SRV_SCOPE_ADMIN = 3,
};
const char *srv_scope_name(enum srv_scope s);
int srv_scope_from_name(const char *s, enum srv_scope *ret);

/* Makes a token and stores its hash. token (SRV_TOKEN_LEN + 1) gets the
 * token to show once; the caller wipes it. */
int srv_token_insert(struct srv_db *db, enum srv_scope scope, const char *name, time_t now,
                     const char *by, char *token, char id[SRV_TOKEN_ID_HEX + 1]);

/* The token's ID, name and scope when presented is a live token: 0;
 * -EACCES when it is not one (malformed, unknown, revoked: the caller
 * cannot tell which, nor from the time taken). */
struct srv_token_info {
    char id[SRV_TOKEN_ID_HEX + 1];
    char name[SRV_TOKEN_NAME_MAX + 1];
    enum srv_scope scope;
};
int srv_token_check(struct srv_db *db, const char *presented, struct srv_token_info *ret);

/* [{id, name, scope, created, created_by, revoked}] (never a hash). */
int srv_token_list(struct srv_db *db, json_t **ret);
int srv_token_get(struct srv_db *db, const char *id, json_t **ret);
/* -ENOENT for an unknown or already revoked token. */
int srv_token_revoke(struct srv_db *db, const char *id, time_t now);
