/* The agent's records in TPM NV (store.h). */
#include "agent/store.h"

#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "agent/nvlayout.h"
#include "common/log.h"
#include "common/macro.h"
#include "agent/tpmio.h"

static const uint8_t license_magic[4] = {'T', 'L', 'I', 'C'};
static const uint8_t state_magic[4] = {'T', 'L', 'S', 'T'};
#define RECORD_VERSION 1

static void put_be64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

int store_license_encode(const void *data, size_t len, uint8_t out[STORE_LICENSE_INDEX_SIZE]) {
    if (len > STORE_LICENSE_MAX)
        return -EFBIG;
    memset(out, 0, STORE_LICENSE_INDEX_SIZE);
    memcpy(out, license_magic, 4);
    out[4] = RECORD_VERSION;
    out[6] = (uint8_t)(len >> 8);
    out[7] = (uint8_t)len;
    SHA256(data ? data : (const void *)"", len, out + 8);
    if (len)
        memcpy(out + STORE_LICENSE_HEADER, data, len);
    return 0;
}

int store_license_decode(const uint8_t *buf, size_t buflen, const uint8_t **ret_data,
                         size_t *ret_len) {
    uint8_t digest[SHA256_DIGEST_LENGTH];
    size_t len;

    if (buflen < STORE_LICENSE_HEADER || memcmp(buf, license_magic, 4) != 0)
        return -EBADMSG;
    if (buf[4] != RECORD_VERSION)
        return -EPROTONOSUPPORT;
    len = ((size_t)buf[6] << 8) | buf[7];
    if (len > STORE_LICENSE_MAX || STORE_LICENSE_HEADER + len > buflen)
        return -EBADMSG;
    SHA256(buf + STORE_LICENSE_HEADER, len, digest);
    if (memcmp(digest, buf + 8, sizeof(digest)) != 0)
        return -EBADMSG;
    *ret_data = buf + STORE_LICENSE_HEADER;
    *ret_len = len;
    return 0;
}

/* State record: magic, version, then the fields big-endian at fixed
 * offsets (store.h). Version 2 added the online bookkeeping. */
#define STATE_VERSION 2

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void store_state_encode(const struct store_state *s, uint8_t out[STORE_STATE_INDEX_SIZE]) {
    memset(out, 0, STORE_STATE_INDEX_SIZE);
    memcpy(out, state_magic, 4);
    out[4] = STATE_VERSION;
    put_be32(out + 8, s->flags);
    put_be64(out + 12, s->granted_secs);
    put_be64(out + 20, s->last_success);
    put_be64(out + 28, s->grace_start);
    put_be32(out + 36, s->grace_secs);
    put_be64(out + 40, s->grace_seen_ms);
    put_be64(out + 48, s->clock_anchor_ms);
    out[56] = s->refusal;
    memcpy(out + 64, s->epoch, STORE_EPOCH_LEN);
    memcpy(out + 80, s->next_epoch, STORE_EPOCH_LEN);
    put_be64(out + 96, s->grace_ended);
}

int store_state_decode(const uint8_t *buf, size_t buflen, struct store_state *ret) {
    if (buflen < STORE_STATE_INDEX_SIZE || memcmp(buf, state_magic, 4) != 0)
        return -EBADMSG;
    if (buf[4] != STATE_VERSION)
        return -EPROTONOSUPPORT;
    memset(ret, 0, sizeof(*ret));
    ret->flags = get_be32(buf + 8);
    ret->granted_secs = get_be64(buf + 12);
    ret->last_success = get_be64(buf + 20);
    ret->grace_start = get_be64(buf + 28);
    ret->grace_secs = get_be32(buf + 36);
    ret->grace_seen_ms = get_be64(buf + 40);
    ret->clock_anchor_ms = get_be64(buf + 48);
    ret->refusal = buf[56];
    memcpy(ret->epoch, buf + 64, STORE_EPOCH_LEN);
    memcpy(ret->next_epoch, buf + 80, STORE_EPOCH_LEN);
    ret->grace_ended = get_be64(buf + 96);
    return 0;
}

static int define_one(struct tpmio *tpm, uint32_t index, enum tpm_nv_type type, size_t size,
                      char *why) {
    int r = type == TPM_NV_COUNTER ? tpmio_counter_define(tpm, index, why)
                                   : tpmio_nv_define(tpm, index, size, why);
    if (r == -EACCES)
        snprintf(why, TPMIO_WHY_LEN,
                 "defining NV index 0x%08x needs the TPM owner's authorization, and it is not the "
                 "one this agent has (set owner_auth_file, see docs/tpm.md)",
                 index);
    return r;
}

/* Defines an index that is missing; one whose type or size is not ours is
 * refused; one of ours whose attributes would let others write it (an older
 * tpmlic's, or one planted before the agent's first start) is defined anew:
 * what it held is lost, and a counter defined anew starts above every value
 * it had. */
static int ensure_one(struct tpmio *tpm, uint32_t index, enum tpm_nv_type type, size_t size,
                      bool *ret_created, char *why) {
    struct tpm_nv_public pub;
    int r = tpmio_nv_public(tpm, index, &pub, why);

    *ret_created = false;
    if (r == -ENOENT) {
        r = define_one(tpm, index, type, size, why);
        *ret_created = r == 0;
        return r;
    }
    if (r < 0)
        return r;
    r = tpmio_nv_check(tpm, &pub, type, type == TPM_NV_COUNTER ? 0 : size, why);
    if (r != -EPERM)
        return r;
    log_warn("%s: defining it anew", why);
    r = tpmio_nv_undefine(tpm, index, why);
    if (r == 0)
        r = define_one(tpm, index, type, size, why);
    *ret_created = r == 0;
    return r;
}

/* The counters are always written: reading one tells whether the indices
 * take this agent's auth value. When they do not (the auth file was lost or
 * replaced), they are all defined anew. */
static int auth_matches(struct tpmio *tpm, uint32_t base, char *why) {
    uint64_t v;
    int r = tpmio_counter_read(tpm, agent_nv_index(base, AGENT_NV_COUNTER), &v, why);
    return r == -EACCES ? 0 : r < 0 ? r : 1;
}

int agent_store_ensure(struct tpmio *tpm, uint32_t base, unsigned *ret_created, char *why) {
    static const struct {
        enum agent_nv_slot slot;
        enum tpm_nv_type type;
        size_t size;
    } slots[] = {
        {AGENT_NV_LICENSE, TPM_NV_ORDINARY, STORE_LICENSE_INDEX_SIZE},
        {AGENT_NV_COUNTER, TPM_NV_COUNTER, 8},
        {AGENT_NV_STATE, TPM_NV_ORDINARY, STORE_STATE_INDEX_SIZE},
        {AGENT_NV_FLOOR, TPM_NV_COUNTER, 8},
    };
    unsigned created = 0;
    int r;

    r = tpmio_nv_public(tpm, agent_nv_index(base, AGENT_NV_COUNTER), &(struct tpm_nv_public){0},
                        why);
    if (r == 0 && (r = auth_matches(tpm, base, why)) == 0) {
        log_warn("the agent's NV indices at 0x%08x do not take this agent's auth value (was "
                 "nv.auth in the state directory lost or replaced?): defining them anew; the "
                 "license must be applied again",
                 base);
        for (size_t i = 0; i < ARRAY_SIZE(slots); i++) {
            r = tpmio_nv_undefine(tpm, agent_nv_index(base, slots[i].slot), why);
            if (r < 0 && r != -ENOENT)
                return r;
        }
    } else if (r < 0 && r != -ENOENT)
        return r;
    for (size_t i = 0; i < ARRAY_SIZE(slots); i++) {
        bool c;
        r = ensure_one(tpm, agent_nv_index(base, slots[i].slot), slots[i].type, slots[i].size, &c,
                       why);
        if (r < 0)
            return r;
        if (c)
            created |= 1u << slots[i].slot;
    }
    if (ret_created)
        *ret_created = created;
    return 0;
}

int agent_store_read_license(struct tpmio *tpm, uint32_t base, char **ret_data, size_t *ret_len,
                             char *why) {
    _cleanup_free_ uint8_t *buf = NULL;
    const uint8_t *data;
    size_t buflen, len;
    char *out;
    int r;

    r = tpmio_nv_read(tpm, agent_nv_index(base, AGENT_NV_LICENSE), &buf, &buflen, why);
    if (r == -ENODATA) { /* defined, never written: no license */
        *ret_data = NULL;
        *ret_len = 0;
        return 0;
    }
    if (r < 0)
        return r;
    r = store_license_decode(buf, buflen, &data, &len);
    if (r < 0)
        return r;
    if (!len) {
        *ret_data = NULL;
        *ret_len = 0;
        return 0;
    }
    out = malloc(len + 1);
    if (!out)
        return -ENOMEM;
    memcpy(out, data, len);
    out[len] = '\0';
    *ret_data = out;
    *ret_len = len;
    return 0;
}

int agent_store_write_license(struct tpmio *tpm, uint32_t base, const char *data, size_t len,
                              char *why) {
    uint8_t rec[STORE_LICENSE_INDEX_SIZE];
    int r = store_license_encode(data, len, rec);
    if (r < 0)
        return r;
    /* Only the bytes in use: header plus certificate. */
    return tpmio_nv_write(tpm, agent_nv_index(base, AGENT_NV_LICENSE), rec,
                          STORE_LICENSE_HEADER + len, "storing the license certificate", why);
}

int agent_store_read_state(struct tpmio *tpm, uint32_t base, struct store_state *ret, char *why) {
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len;
    int r;

    r = tpmio_nv_read(tpm, agent_nv_index(base, AGENT_NV_STATE), &buf, &len, why);
    if (r == -ENODATA) {
        memset(ret, 0, sizeof(*ret));
        return 0;
    }
    if (r < 0)
        return r;
    return store_state_decode(buf, len, ret);
}

int agent_store_write_state(struct tpmio *tpm, uint32_t base, const struct store_state *s,
                            char *why) {
    uint8_t rec[STORE_STATE_INDEX_SIZE];
    store_state_encode(s, rec);
    return tpmio_nv_write(tpm, agent_nv_index(base, AGENT_NV_STATE), rec, sizeof(rec),
                          "writing the agent state", why);
}
