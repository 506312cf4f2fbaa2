/* The agent's records in TPM NV (docs/agent.md, "What the TPM holds"):
 *   license index (base+0): the license certificate, framed with a length
 *     and a SHA-256 so that an interrupted multi-chunk write is detected;
 *   counter (base+1): consumed usage ticks (tpm/ counter);
 *   state index (base+2): rarely-changing state, one NV_Write (atomic).
 * Encoding and decoding are pure (unit-tested); agent_store_* do the TPM
 * I/O through tpm/. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tpmio;

#define STORE_LICENSE_MAX        1536 /* SPEC section 5 */
#define STORE_LICENSE_HEADER     40   /* magic 4, version 1, pad 1, len 2, sha256 32 */
#define STORE_LICENSE_INDEX_SIZE (STORE_LICENSE_HEADER + STORE_LICENSE_MAX) /* 1576 */
#define STORE_STATE_INDEX_SIZE   128
#define STORE_EPOCH_LEN          16

enum store_state_flags {
    STORE_OFFLINE_MODE = 1u << 0,
    STORE_REFUSED = 1u << 1, /* the license server refused the license (refusal says why) */
};

/* Online bookkeeping (docs/online.md, docs/grace.md). Everything a restart
 * or a clock set back must not reset lives here, in the TPM. */
struct store_state {
    uint32_t flags;
    uint64_t granted_secs;    /* cache of the signed ceiling; never trusted over the certificate */
    uint64_t last_success;    /* wall clock (epoch seconds) of the last successful exchange */
    uint64_t grace_start;     /* wall clock when the running grace period began; 0 = none */
    uint32_t grace_secs;      /* its length */
    uint64_t grace_seen_ms;   /* the longest time into it observed so far */
    uint64_t clock_anchor_ms; /* TPM clock that counts as grace_start */
    uint8_t refusal;          /* enum online_reason, with STORE_REFUSED */
    uint8_t epoch[STORE_EPOCH_LEN];      /* the activation's current epoch; zero = none */
    uint8_t next_epoch[STORE_EPOCH_LEN]; /* sent, not yet confirmed; zero = none */
    uint64_t grace_ended;                /* wall clock when the grace period ran out; 0 = not yet */
};

/* Pure encoding. license: len 0 means "no license". Decoding returns
 * -EBADMSG for a damaged record (bad magic, length or digest), -EPROTONOSUPPORT
 * for an unknown version. *ret_data points into buf. */
int store_license_encode(const void *data, size_t len, uint8_t out[STORE_LICENSE_INDEX_SIZE]);
int store_license_decode(const uint8_t *buf, size_t buflen, const uint8_t **ret_data,
                         size_t *ret_len);
void store_state_encode(const struct store_state *s, uint8_t out[STORE_STATE_INDEX_SIZE]);
int store_state_decode(const uint8_t *buf, size_t buflen, struct store_state *ret);

/* Makes sure the three indices exist with the right type, size and
 * attributes, defining the missing ones (a new counter starts above any
 * value this TPM's counters ever had). ret_created: bitmask of slots created.
 * -EMEDIUMTYPE when an index exists but is not ours to use. On failure
 * *why (TPMIO_WHY_LEN) says why. */
int agent_store_ensure(struct tpmio *tpm, uint32_t base, unsigned *ret_created, char *why);
/* Reads the license certificate: 0 with *ret_len 0 when none is stored;
 * -EBADMSG when the record is damaged. *ret_data is malloc'ed. */
int agent_store_read_license(struct tpmio *tpm, uint32_t base, char **ret_data, size_t *ret_len,
                             char *why);
int agent_store_write_license(struct tpmio *tpm, uint32_t base, const char *data, size_t len,
                              char *why);
int agent_store_read_state(struct tpmio *tpm, uint32_t base, struct store_state *ret, char *why);
int agent_store_write_state(struct tpmio *tpm, uint32_t base, const struct store_state *s,
                            char *why);
