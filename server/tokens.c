/* Bearer tokens (tokens.h). */
#include "server/tokens.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "common/hex.h"
#include "common/macro.h"
#include "common/timefmt.h"

#define PREFIX "tpmlic_"

static const char *const scope_names[] = {"", "read", "write", "admin"};

const char *srv_scope_name(enum srv_scope s) {
    return s >= SRV_SCOPE_NONE && s <= SRV_SCOPE_ADMIN ? scope_names[s] : "?";
}

int srv_scope_from_name(const char *s, enum srv_scope *ret) {
    for (int i = SRV_SCOPE_READ; i <= SRV_SCOPE_ADMIN; i++)
        if (s && !strcmp(s, scope_names[i])) {
            *ret = (enum srv_scope)i;
            return 0;
        }
    return -EINVAL;
}

static int hash_token(const char *token, char out[2 * SHA256_DIGEST_LENGTH + 1]) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    if (!EVP_Digest(token, strlen(token), md, NULL, EVP_sha256(), NULL))
        return -EIO;
    hex_encode(md, sizeof(md), out);
    OPENSSL_cleanse(md, sizeof(md));
    return 0;
}

int srv_token_insert(struct srv_db *db, enum srv_scope scope, const char *name, time_t now,
                     const char *by, char *token, char id[SRV_TOKEN_ID_HEX + 1]) {
    _cleanup_stmt_ struct srv_stmt *st = NULL;
    char secret[65], hash[2 * SHA256_DIGEST_LENGTH + 1];
    int r = hex_random(id, SRV_TOKEN_ID_HEX / 2);

    if (r == 0)
        r = hex_random(secret, 32);
    if (r < 0)
        return r;
    snprintf(token, SRV_TOKEN_LEN + 1, PREFIX "%s_%s", id, secret);
    secure_wipe(secret, sizeof(secret));
    r = hash_token(token, hash);
    if (r == 0)
        r = srv_sql_prepare(db,
                            "INSERT INTO tokens (id, name, scope, hash, created, created_by) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            &st);
    if (r == 0)
        r = srv_sql_bind_text(st, 1, id);
    if (r == 0)
        r = srv_sql_bind_text(st, 2, name);
    if (r == 0)
        r = srv_sql_bind_text(st, 3, srv_scope_name(scope));
    if (r == 0)
        r = srv_sql_bind_text(st, 4, hash);
    if (r == 0)
        r = srv_sql_bind_int(st, 5, (int64_t)now);
    if (r == 0)
        r = srv_sql_bind_text(st, 6, by);
    if (r == 0)
        r = srv_sql_run(st);
    if (r < 0)
        secure_wipe(token, SRV_TOKEN_LEN + 1);
    return r;
}

int srv_token_check(struct srv_db *db, const char *presented, struct srv_token_info *ret) {
    /* compared against when the ID is unknown, so that the time taken does
     * not tell a wrong ID from a wrong secret */
    static const char dummy[2 * SHA256_DIGEST_LENGTH + 1] =
        "0000000000000000000000000000000000000000000000000000000000000000";
    _cleanup_stmt_ struct srv_stmt *st = NULL;
    char id[SRV_TOKEN_ID_HEX + 1], hash[2 * SHA256_DIGEST_LENGTH + 1],
        stored[2 * SHA256_DIGEST_LENGTH + 1];
    uint8_t bytes[32];
    bool live = false;
    int r;

    memset(ret, 0, sizeof(*ret));
    if (!presented || strlen(presented) != SRV_TOKEN_LEN ||
        strncmp(presented, PREFIX, strlen(PREFIX)) != 0 ||
        presented[strlen(PREFIX) + SRV_TOKEN_ID_HEX] != '_')
        return -EACCES;
    memcpy(id, presented + strlen(PREFIX), SRV_TOKEN_ID_HEX);
    id[SRV_TOKEN_ID_HEX] = '\0';
    if (hex_decode_exact(id, bytes, SRV_TOKEN_ID_HEX / 2) < 0 ||
        hex_decode_exact(presented + strlen(PREFIX) + SRV_TOKEN_ID_HEX + 1, bytes, 32) < 0)
        return -EACCES;
    secure_wipe(bytes, sizeof(bytes));
    r = hash_token(presented, hash);
    if (r < 0)
        return r;
    r = srv_sql_prepare(db, "SELECT hash, scope, name, revoked FROM tokens WHERE id = ?", &st);
    if (r == 0)
        r = srv_sql_bind_text(st, 1, id);
    if (r == 0)
        r = srv_sql_step(st);
    if (r < 0)
        return r;
    snprintf(stored, sizeof(stored), "%s",
             r == 1 && srv_sql_text(st, 0) ? srv_sql_text(st, 0) : dummy);
    live = r == 1 && srv_sql_int(st, 3) == 0 && strlen(stored) == 2 * SHA256_DIGEST_LENGTH;
    if (CRYPTO_memcmp(stored, hash, 2 * SHA256_DIGEST_LENGTH) != 0 || !live)
        return -EACCES;
    if (srv_scope_from_name(srv_sql_text(st, 1), &ret->scope) < 0)
        return -EACCES;
    snprintf(ret->id, sizeof(ret->id), "%s", id);
    snprintf(ret->name, sizeof(ret->name), "%s", srv_sql_text(st, 2) ?: "");
    return 0;
}

static json_t *token_row(struct srv_stmt *st, void *arg, int *err) {
    return json_pack("{s:s, s:s, s:s, s:o, s:s, s:o}", "id", srv_sql_text(st, 0) ?: "", "name",
                     srv_sql_text(st, 1) ?: "", "scope", srv_sql_text(st, 2) ?: "", "created",
                     srv_time_json(srv_sql_int(st, 3)), "created_by", srv_sql_text(st, 4) ?: "",
                     "revoked", srv_time_json(srv_sql_int(st, 5)));
}

static int tokens_json(struct srv_db *db, const char *only, json_t **ret) {
    _cleanup_stmt_ struct srv_stmt *st = NULL;
    int r = srv_sql_prepare(db,
                            only ? "SELECT id, name, scope, created, created_by, revoked FROM "
                                   "tokens WHERE id = ?"
                                 : "SELECT id, name, scope, created, created_by, revoked FROM "
                                   "tokens ORDER BY created, id",
                            &st);
    if (r < 0 || (only && (r = srv_sql_bind_text(st, 1, only)) < 0))
        return r;
    return srv_sql_json_rows(st, token_row, NULL, ret);
}

int srv_token_list(struct srv_db *db, json_t **ret) {
    return tokens_json(db, NULL, ret);
}

int srv_token_get(struct srv_db *db, const char *id, json_t **ret) {
    json_t *a = NULL;
    int r = tokens_json(db, id, &a);
    return r < 0 ? r : srv_json_single(a, ret);
}

int srv_token_revoke(struct srv_db *db, const char *id, time_t now) {
    _cleanup_stmt_ struct srv_stmt *st = NULL;
    int r = srv_sql_prepare(db, "UPDATE tokens SET revoked = ? WHERE id = ? AND revoked = 0", &st);
    if (r == 0)
        r = srv_sql_bind_int(st, 1, (int64_t)now);
    if (r == 0)
        r = srv_sql_bind_text(st, 2, id);
    if (r == 0)
        r = srv_sql_run(st);
    if (r < 0)
        return r;
    return srv_sql_changes(st) ? 0 : -ENOENT;
}
