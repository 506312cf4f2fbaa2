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
#define RECORD_V1      1 /* the one-slot layout: no sequence number */
#define RECORD_VERSION 2
#define SEQ_OFFSET     8
#define DIGEST_OFFSET  16 /* version 2; version 1 has it at 8 */

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

/* Version 2: the digest covers the header before it (magic, version,
 * length, sequence number) and the certificate, so that neither the
 * length nor the sequence number can change unnoticed. */
static void record_digest(const uint8_t *rec, const uint8_t *data, size_t len,
                          uint8_t out[SHA256_DIGEST_LENGTH]) {
    uint8_t in[DIGEST_OFFSET + STORE_LICENSE_MAX];

    memcpy(in, rec, DIGEST_OFFSET);
    if (len)
        memcpy(in + DIGEST_OFFSET, data, len);
    SHA256(in, DIGEST_OFFSET + len, out);
}

int store_license_encode(uint64_t seq, const void *data, size_t len,
                         uint8_t out[STORE_LICENSE_INDEX_SIZE]) {
    if (len > STORE_LICENSE_MAX)
        return -EFBIG;
    memset(out, 0, STORE_LICENSE_INDEX_SIZE);
    memcpy(out, license_magic, 4);
    out[4] = RECORD_VERSION;
    out[6] = (uint8_t)(len >> 8);
    out[7] = (uint8_t)len;
    put_be64(out + SEQ_OFFSET, seq);
    if (len)
        memcpy(out + STORE_LICENSE_HEADER, data, len);
    record_digest(out, out + STORE_LICENSE_HEADER, len, out + DIGEST_OFFSET);
    return (int)(STORE_LICENSE_HEADER + len);
}

int store_license_decode(const uint8_t *buf, size_t buflen, uint64_t *ret_seq,
                         const uint8_t **ret_data, size_t *ret_len) {
    uint8_t digest[SHA256_DIGEST_LENGTH];
    size_t head, len;

    if (buflen < 8 || memcmp(buf, license_magic, 4) != 0)
        return -EBADMSG;
    if (buf[4] == RECORD_VERSION)
        head = STORE_LICENSE_HEADER;
    else if (buf[4] == RECORD_V1)
        head = STORE_LICENSE_V1_HEADER;
    else
        return -EPROTONOSUPPORT;
    len = ((size_t)buf[6] << 8) | buf[7];
    if (buflen < head || len > STORE_LICENSE_MAX || head + len > buflen)
        return -EBADMSG;
    if (buf[4] == RECORD_V1)
        SHA256(buf + head, len, digest);
    else
        record_digest(buf, buf + head, len, digest);
    if (memcmp(digest, buf + (buf[4] == RECORD_V1 ? 8 : DIGEST_OFFSET), sizeof(digest)) != 0)
        return -EBADMSG;
    *ret_seq = buf[4] == RECORD_V1 ? 0 : get_be64(buf + SEQ_OFFSET);
    *ret_data = buf + head;
    *ret_len = len;
    return 0;
}

int store_license_pick(const uint8_t *const buf[2], const size_t buflen[2],
                       struct store_license_pick *ret) {
    struct store_license_pick best = {.slot = -1};
    bool damaged = false;

    for (int i = 0; i < 2; i++) {
        const uint8_t *data;
        uint64_t seq;
        size_t len;
        int r;

        if (!buf[i])
            continue;
        r = store_license_decode(buf[i], buflen[i], &seq, &data, &len);
        if (r == -EPROTONOSUPPORT)
            return r;
        if (r < 0) {
            damaged = true;
            continue;
        }
        if (best.slot < 0 || seq > best.seq)
            best = (struct store_license_pick){.slot = i, .seq = seq, .data = data, .len = len};
    }
    if (best.slot < 0 && damaged)
        return -EBADMSG;
    *ret = best;
    return 0;
}

int store_license_next(int pick_result, const struct store_license_pick *cur, int *ret_slot,
                       uint64_t *ret_seq) {
    /* no valid record anywhere: whatever is written is the only one */
    if (pick_result == -EBADMSG || (pick_result == 0 && cur->slot < 0)) {
        *ret_slot = 0;
        *ret_seq = 1;
        return 0;
    }
    if (pick_result < 0)
        return pick_result;
    if (cur->seq == UINT64_MAX)
        return -EOVERFLOW;
    *ret_slot = 1 - cur->slot;
    *ret_seq = cur->seq + 1;
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

/* The one-slot layout kept the license in base+0 at the old size. Its bytes
 * go into the second slot as they are (a version 1 record counts as
 * sequence number 0 there, a damaged one stays damaged), then base+0 is
 * undefined for ensure to define it anew at the new size. Interrupted
 * before the undefine, the copy is made again at the next start: until
 * then base+0 is the only record the old layout knew. */
static int move_v1_license(struct tpmio *tpm, uint32_t base, unsigned *created, char *why) {
    uint32_t a = agent_nv_index(base, AGENT_NV_LICENSE),
             b = agent_nv_index(base, AGENT_NV_LICENSE_B);
    _cleanup_free_ uint8_t *buf = NULL;
    struct tpm_nv_public pub;
    size_t len;
    bool c;
    int r;

    r = tpmio_nv_public(tpm, a, &pub, why);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    if (pub.type != TPM_NV_ORDINARY || pub.size != STORE_LICENSE_V1_INDEX_SIZE)
        return 0; /* ensure_one judges it */
    r = tpmio_nv_check(tpm, &pub, TPM_NV_ORDINARY, STORE_LICENSE_V1_INDEX_SIZE, why);
    if (r == -EPERM) {
        log_warn("%s: defining it anew", why);
        return tpmio_nv_undefine(tpm, a, why);
    }
    if (r < 0)
        return r;
    r = ensure_one(tpm, b, TPM_NV_ORDINARY, STORE_LICENSE_INDEX_SIZE, &c, why);
    if (r < 0)
        return r;
    if (c)
        *created |= 1u << AGENT_NV_LICENSE_B;
    r = tpmio_nv_read(tpm, a, &buf, &len, why);
    if (r == 0)
        r = tpmio_nv_write(tpm, b, buf, len, "copying the license record into its second slot",
                           why);
    if (r < 0 && r != -ENODATA)
        return r;
    r = tpmio_nv_undefine(tpm, a, why);
    if (r == 0)
        log_info("the license record at 0x%08x moved to the two-slot layout (second slot 0x%08x)",
                 a, b);
    return r;
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
        {AGENT_NV_LICENSE_B, TPM_NV_ORDINARY, STORE_LICENSE_INDEX_SIZE},
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
    r = move_v1_license(tpm, base, &created, why);
    if (r < 0)
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

/* Both license slots as they are: buf[i] NULL for one never written. */
static int read_slots(struct tpmio *tpm, uint32_t base, uint8_t *buf[2], size_t buflen[2],
                      char *why) {
    static const enum agent_nv_slot slot[2] = {AGENT_NV_LICENSE, AGENT_NV_LICENSE_B};

    for (int i = 0; i < 2; i++) {
        int r = tpmio_nv_read(tpm, agent_nv_index(base, slot[i]), &buf[i], &buflen[i], why);
        if (r == -ENODATA) {
            buf[i] = NULL;
            buflen[i] = 0;
        } else if (r < 0) {
            free(buf[0]);
            buf[0] = NULL;
            return r;
        }
    }
    return 0;
}

static void free_slots(uint8_t *buf[2]) {
    free(buf[0]);
    free(buf[1]);
}

static int pick_failed(int r, char *why) {
    if (r == -EPROTONOSUPPORT)
        snprintf(why, TPMIO_WHY_LEN,
                 "a license slot holds a record of a version this agent does not know (a newer "
                 "tpmlic's): nothing is taken over it, and it is not overwritten");
    else if (r == -EBADMSG)
        snprintf(why, TPMIO_WHY_LEN, "neither license slot holds an intact record");
    else if (r == -EOVERFLOW)
        snprintf(why, TPMIO_WHY_LEN,
                 "the license record in force has the largest sequence number there is (its NV "
                 "index was edited): no new record could take its place");
    return r;
}

int agent_store_read_license(struct tpmio *tpm, uint32_t base, char **ret_data, size_t *ret_len,
                             char *why) {
    uint8_t *buf[2] = {NULL, NULL};
    size_t buflen[2] = {0, 0};
    struct store_license_pick cur;
    char *out = NULL;
    int r;

    r = read_slots(tpm, base, buf, buflen, why);
    if (r < 0)
        return r;
    r = store_license_pick((const uint8_t *const *)buf, buflen, &cur);
    if (r == 0 && cur.len) {
        out = malloc(cur.len + 1);
        if (out) {
            memcpy(out, cur.data, cur.len);
            out[cur.len] = '\0';
        } else
            r = -ENOMEM;
    }
    free_slots(buf);
    if (r < 0)
        return pick_failed(r, why);
    *ret_data = out;
    *ret_len = out ? cur.len : 0;
    return 0;
}

int agent_store_write_license(struct tpmio *tpm, uint32_t base, const char *data, size_t len,
                              char *why) {
    uint8_t rec[STORE_LICENSE_INDEX_SIZE], *buf[2] = {NULL, NULL};
    size_t buflen[2] = {0, 0};
    struct store_license_pick cur = {.slot = -1};
    uint64_t seq;
    int r, n, slot;

    if (len > STORE_LICENSE_MAX)
        return -EFBIG;
    r = read_slots(tpm, base, buf, buflen, why);
    if (r < 0)
        return r;
    r = store_license_next(store_license_pick((const uint8_t *const *)buf, buflen, &cur), &cur,
                           &slot, &seq);
    free_slots(buf);
    if (r < 0)
        return pick_failed(r, why);
    n = store_license_encode(seq, data, len, rec);
    if (n < 0)
        return n;
    /* only the bytes in use: header plus certificate */
    return tpmio_nv_write(tpm,
                          agent_nv_index(base, slot == 0 ? AGENT_NV_LICENSE : AGENT_NV_LICENSE_B),
                          rec, (size_t)n, "storing the license certificate", why);
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
