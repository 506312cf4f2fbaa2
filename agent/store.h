/* The agent's records in TPM NV (docs/agent.md, "What the TPM holds"):
 *   license slots (base+0, base+4): the license certificate, framed with a
 *     sequence number, a length and a SHA-256. A write goes to the slot
 *     that does not hold the record in force, with the next sequence
 *     number, so a write torn between its NV_Write chunks leaves the old
 *     record or the new one, never neither;
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
#define STORE_LICENSE_HEADER     48   /* magic 4, version 1, pad 1, len 2, seq 8, sha256 32 */
#define STORE_LICENSE_INDEX_SIZE (STORE_LICENSE_HEADER + STORE_LICENSE_MAX) /* 1584 */
/* The one-slot layout's license index (record version 1: no sequence
 * number, 40 bytes of header), moved to the two-slot layout by ensure. */
#define STORE_LICENSE_V1_HEADER     40
#define STORE_LICENSE_V1_INDEX_SIZE (STORE_LICENSE_V1_HEADER + STORE_LICENSE_MAX) /* 1576 */
#define STORE_STATE_INDEX_SIZE      128
#define STORE_EPOCH_LEN             16

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

/* Pure encoding. license: len 0 means "no license". Encoding returns the
 * number of bytes of out in use (header and certificate: what is written).
 * Decoding returns -EBADMSG for a damaged record (bad magic, length or
 * digest), -EPROTONOSUPPORT for an unknown version; a version 1 record
 * (the one-slot layout) decodes with sequence number 0. *ret_data points
 * into buf. */
int store_license_encode(uint64_t seq, const void *data, size_t len,
                         uint8_t out[STORE_LICENSE_INDEX_SIZE]);
int store_license_decode(const uint8_t *buf, size_t buflen, uint64_t *ret_seq,
                         const uint8_t **ret_data, size_t *ret_len);

/* The record in force, picked from the two license slots. */
struct store_license_pick {
    int slot;            /* 0 (base+0) or 1 (the second slot); -1: neither holds a record */
    uint64_t seq;        /* its sequence number; 0 when none */
    const uint8_t *data; /* points into that slot's buffer */
    size_t len;          /* 0: no license */
};

/* Pure. Each slot's content (NULL: the index was never written). The valid
 * record with the highest sequence number is in force (slot 0 on a tie); a
 * damaged slot is ignored when the other is valid. 0 with ->slot -1 when
 * neither was ever written; -EBADMSG when no slot holds a valid record and
 * at least one is damaged; -EPROTONOSUPPORT when a slot holds a version
 * this agent does not know (a newer agent's: nothing is taken over it). */
int store_license_pick(const uint8_t *const buf[2], const size_t buflen[2],
                       struct store_license_pick *ret);
/* Pure. Where the next record goes and its sequence number, given the
 * result of store_license_pick: the slot that does not hold the record in
 * force, with its sequence number plus one (slot 0, sequence 1, when no
 * slot holds a valid record). -EOVERFLOW when the sequence number in force
 * is the largest there is (only an edit of the index makes it so): the
 * next record could not win. */
int store_license_next(int pick_result, const struct store_license_pick *cur, int *ret_slot,
                       uint64_t *ret_seq);
void store_state_encode(const struct store_state *s, uint8_t out[STORE_STATE_INDEX_SIZE]);
int store_state_decode(const uint8_t *buf, size_t buflen, struct store_state *ret);

/* Makes sure the indices exist with the right type, size and attributes,
 * defining the missing ones (a new counter starts above any value this
 * TPM's counters ever had). A license index of the one-slot layout
 * (STORE_LICENSE_V1_INDEX_SIZE) is moved: its bytes are copied into the
 * second slot, then it is defined anew at the new size, so the license it
 * holds is kept (an interrupted move is done again at the next start).
 * ret_created: bitmask of slots created. -EMEDIUMTYPE when an index exists
 * but is not ours to use. On failure *why (TPMIO_WHY_LEN) says why. */
int agent_store_ensure(struct tpmio *tpm, uint32_t base, unsigned *ret_created, char *why);
/* Reads the license certificate in force (store_license_pick): 0 with
 * *ret_len 0 when none is stored; -EBADMSG when neither slot holds a valid
 * record. *ret_data is malloc'ed. */
int agent_store_read_license(struct tpmio *tpm, uint32_t base, char **ret_data, size_t *ret_len,
                             char *why);
/* Stores a new record (len 0: no license) in the slot that does not hold
 * the one in force (store_license_next), after reading both. A write torn
 * at any point leaves the record in force as it was. */
int agent_store_write_license(struct tpmio *tpm, uint32_t base, const char *data, size_t len,
                              char *why);
int agent_store_read_state(struct tpmio *tpm, uint32_t base, struct store_state *ret, char *why);
int agent_store_write_state(struct tpmio *tpm, uint32_t base, const struct store_state *s,
                            char *why);
