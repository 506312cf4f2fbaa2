/* tpm/: the only module that talks to tpm2-tss. Everything returns 0 (or a
 * count) on success and a negative errno on failure; the TSS2_RC behind a
 * failure is decoded into tpm_last_error() for the caller to log. SPEC
 * section 3. Error mapping (docs/tpm.md):
 *   -ENODEV     no TPM at the TCTI, or the connection to it was lost
 *   -ENOTCONN   the TPM has not been started (TPM2_Startup never sent)
 *   -EIO        TPM in failure mode, or another TPM error
 *   -ENOSPC     NV space (or NV counters) exhausted
 *   -ENOENT     NV index / persistent handle not defined
 *   -EEXIST     NV index already defined
 *   -EMEDIUMTYPE NV index of the wrong type, size or attributes
 *   -ENODATA    NV index defined but never written
 *   -ENOLCK     dictionary-attack lockout
 *   -EBUSY      NV write rate limit (TPM_RC_NV_RATE): retry later
 *   -EAGAIN     TPM busy/testing/yielded after our retries
 *   -EACCES     authorization failed, or the TPM device may not be opened
 *   -EROFS      NV index write-locked
 *   -EFBIG      data larger than the index or than NV_INDEX_MAX
 *   -EPROTO     malformed response from the TPM
 *   -EBADE      the answer failed its HMAC check (changed on the way, or another TPM)
 *   -EKEYREJECTED the TPM could not prove it holds its endorsement key
 *   -EINVAL     bad argument (caller error)
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tpm_ctx;

/* TCG owner NV range (SPEC section 3). */
#define TPM_NV_OWNER_FIRST 0x01800000u
#define TPM_NV_OWNER_LAST  0x01BFFFFFu

#define TPM_EK_RSA_CERT_INDEX 0x01c00002u
#define TPM_EK_RSA_PERSISTENT 0x81010001u

enum tpm_open_flags {
    TPM_OPEN_NO_STARTUP = 1u << 0, /* do not send TPM2_Startup(CLEAR) */
    TPM_OPEN_NO_FLUSH = 1u << 1,   /* do not flush stale transient objects */
};

/* Opens the TPM at tcti (never NULL or empty: SPEC section 3), sends
 * Startup(CLEAR) (a TPM that is already started is fine), flushes stale
 * transient objects and sessions unless the TCTI is a resource manager, and
 * reads the fixed capabilities. On failure writes a one-line reason into
 * errbuf (may be NULL); a "device:PATH" TCTI whose node exists but may not be
 * opened gives -EACCES with the node's owner, group and mode in the reason. */
int tpm_open(const char *tcti, unsigned flags, struct tpm_ctx **ret_ctx, char *errbuf,
             size_t errlen);
/* Closes the context; accepts NULL. */
void tpm_close(struct tpm_ctx *ctx);
static inline void tpm_closep(struct tpm_ctx **p) {
    tpm_close(*p);
}

/* The reason for the last failure on ctx ("" when none). Never contains
 * secrets: TPM return codes, handles and sizes only. */
const char *tpm_last_error(const struct tpm_ctx *ctx);

/* Number of TPM commands sent through ctx so far (counted at the TCTI). */
unsigned long tpm_command_count(const struct tpm_ctx *ctx);

struct tpm_info {
    char manufacturer[5]; /* TPM2_PT_MANUFACTURER as text, e.g. "IBM", "INTC" */
    char vendor[17];      /* TPM2_PT_VENDOR_STRING_1..4 */
    uint64_t firmware_version;
    uint32_t nv_buffer_max; /* largest NV read/write in one command */
    uint32_t nv_index_max;  /* largest NV index data area */
    uint32_t nv_counters_max;
    bool is_software;      /* a software or virtual TPM (swtpm/libtpms, Microsoft, Google, ...) */
    bool resource_manager; /* the TCTI is a resource manager (tpmrm, tabrmd) */
};
/* Fixed capabilities read at open: no TPM command. */
void tpm_get_info(const struct tpm_ctx *ctx, struct tpm_info *ret);

/* ---- Endorsement key ---------------------------------------------------- */

enum tpm_ek_source {
    TPM_EK_FROM_CERT,       /* the EK certificate in NV 0x01c00002 */
    TPM_EK_FROM_PERSISTENT, /* persistent 0x81010001, public area checked against the template */
    TPM_EK_CREATED,         /* CreatePrimary with template L-1 */
};

enum tpm_ek_flags {
    TPM_EK_SKIP_CERT = 1u << 0,       /* ignore the certificate */
    TPM_EK_SKIP_PERSISTENT = 1u << 1, /* ignore the persistent handle */
    TPM_EK_PERSIST = 1u << 2,         /* after CreatePrimary, EvictControl to 0x81010001 */
};

/* The public key of the TCG default RSA-2048 EK. */
struct tpm_ek {
    enum tpm_ek_source source;
    uint8_t modulus[256];
    uint32_t exponent; /* 65537 */
    uint8_t *spki_der; /* DER SubjectPublicKeyInfo; owned */
    size_t spki_len;
    uint8_t *cert_der; /* the EK certificate when present, else NULL; owned */
    size_t cert_len;
    char origin[96]; /* where it came from, for --explain */
};

/* Gets the RSA EK the cheap way first (certificate, persistent handle), and
 * CreatePrimary only when neither exists. Fills *ret; free with
 * tpm_ek_clear(). */
int tpm_ek_rsa(struct tpm_ctx *ctx, unsigned flags, struct tpm_ek *ret);
void tpm_ek_clear(struct tpm_ek *ek);

/* Proof of possession (SPEC section 11): shows that this TPM holds the
 * private key of ek (the EK the computer ID derives from, as tpm_ek_rsa
 * read it: often from its certificate, which anyone can copy) and makes
 * every later command on ctx authenticated. It loads that key (the
 * persistent EK 0x81010001 when its public area is ek's; else
 * CreatePrimary, which a TPM can only do for its own EK; with
 * TPM_EK_PERSIST that one is made persistent once, so later starts skip the
 * slow CreatePrimary), starts an HMAC session salted to it (only the holder
 * of the private key derives the session key) and checks a first answer in
 * it (an audited ReadClock). From then on every NV command and ReadClock
 * runs in that session and ESAPI checks the HMAC of every answer: an answer
 * changed on the way fails with -EBADE. -EKEYREJECTED with the reason when
 * the TPM cannot prove it. */
struct tpm_ek_proof {
    char how[96];           /* which key was used */
    bool persisted;         /* the EK was made persistent now */
    unsigned long commands; /* TPM commands the proof took */
};
int tpm_prove_ek(struct tpm_ctx *ctx, const struct tpm_ek *ek, unsigned flags,
                 struct tpm_ek_proof *ret);
/* Is ctx running in a proven session? */
bool tpm_is_proven(const struct tpm_ctx *ctx);

/* The auth value of the NV indices in the owner range that ctx defines and
 * uses (the agent's; empty by default). */
int tpm_set_nv_auth(struct tpm_ctx *ctx, const uint8_t *auth, size_t len);
/* The owner hierarchy's authorization, when an image set one (defining and
 * undefining indices need it). */
int tpm_set_owner_auth(struct tpm_ctx *ctx, const uint8_t *auth, size_t len);

/* Other EK certificates present (ECC P-256 at 0x01c0000a, the high range
 * 0x01c00012...). Reported, never substituted for the RSA EK. */
struct tpm_ek_other {
    uint32_t index;
    uint16_t size;
    const char *what; /* static text, e.g. "ECC NIST P-256 EK certificate (L-2)" */
};
/* Writes up to max entries; returns the count written or a negative errno. */
int tpm_ek_list_others(struct tpm_ctx *ctx, struct tpm_ek_other *ret, size_t max);

/* ---- NV storage ---------------------------------------------------------- */

enum tpm_nv_type {
    TPM_NV_ORDINARY,
    TPM_NV_COUNTER,
};

struct tpm_nv_public {
    uint32_t index;
    enum tpm_nv_type type;
    int raw_type;        /* TPM2_NT_* as read */
    uint32_t attributes; /* TPMA_NV */
    uint16_t size;
    bool written;
    bool no_da;
    uint8_t name[34]; /* TPM2B_NAME contents: nameAlg (2) + SHA-256 (32) */
    size_t name_len;
};

/* True for an index in the owner range. */
bool tpm_nv_index_is_owner(uint32_t index);

/* Reads the public area (and name) of an index: -ENOENT when undefined. */
int tpm_nv_public(struct tpm_ctx *ctx, uint32_t index, struct tpm_nv_public *ret);

/* Defines an ordinary index of size bytes (1 .. NV_INDEX_MAX) with the
 * owner's authorization: noDA, readable and writable with its own auth value
 * only (tpm_set_nv_auth), not with the owner's. */
int tpm_nv_define(struct tpm_ctx *ctx, uint32_t index, size_t size);
/* Writes len bytes at offset 0 in chunks of NV_BUFFER_MAX. */
int tpm_nv_write(struct tpm_ctx *ctx, uint32_t index, const void *data, size_t len);
/* Reads the whole index into a new buffer (free()). -ENODATA when never
 * written; -EMEDIUMTYPE when not an ordinary index. */
int tpm_nv_read(struct tpm_ctx *ctx, uint32_t index, uint8_t **ret_data, size_t *ret_len);
/* Undefines an index (ordinary or counter) with owner authorization. */
int tpm_nv_undefine(struct tpm_ctx *ctx, uint32_t index);

/* Defines a counter index (TPM_NT_COUNTER, noDA) and increments it once so
 * that it can be read: a new counter starts at the highest value any counter
 * of this TPM ever had. */
int tpm_counter_define(struct tpm_ctx *ctx, uint32_t index);
int tpm_counter_increment(struct tpm_ctx *ctx, uint32_t index);
/* -EMEDIUMTYPE when the index is not a counter. */
int tpm_counter_read(struct tpm_ctx *ctx, uint32_t index, uint64_t *ret_value);

/* Checks that an existing index is what the caller expects: type and size
 * (ordinary only; 0 = any), -EMEDIUMTYPE with a reason otherwise; and the
 * attributes tpm_nv_define gives (its own auth value only, noDA), -EPERM
 * with a reason otherwise (others could write it, or it is locked out with
 * the TPM). */
int tpm_nv_check(struct tpm_ctx *ctx, const struct tpm_nv_public *pub, enum tpm_nv_type type,
                 size_t size);

/* ---- Clock --------------------------------------------------------------- */

struct tpm_clock {
    uint64_t time_ms;  /* since the last TPM Startup/reset, runs while powered */
    uint64_t clock_ms; /* total powered time, persisted (advances in NV steps) */
    uint32_t reset_count;
    uint32_t restart_count;
    bool safe; /* false: clock may have gone back after a power loss */
};
int tpm_read_clock(struct tpm_ctx *ctx, struct tpm_clock *ret);
