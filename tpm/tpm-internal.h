/* Shared by the files of tpm/ only: the context and the error mapping. */
#pragma once

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tcti.h>

#include "common/macro.h"
#include "tpm/tpm.h"

struct count_tcti {
    TSS2_TCTI_CONTEXT_COMMON_V2 v2; /* must be first: ESAPI sees this as the TCTI */
    TSS2_TCTI_CONTEXT *inner;
    unsigned long *count;
};

struct tpm_ctx {
    ESYS_CONTEXT *esys;
    TSS2_TCTI_CONTEXT *tcti; /* from the loader */
    struct count_tcti counting;
    unsigned long commands;
    struct tpm_info info;
    /* The HMAC session salted to the proven EK (tpm_prove_ek); ESYS_TR_NONE
     * before. Every NV command and ReadClock runs in it once it exists. */
    ESYS_TR session;
    TPM2B_AUTH nv_auth;    /* auth value of the indices in the owner range */
    TPM2B_AUTH owner_auth; /* the owner hierarchy's (empty unless set) */
    char error[256];
};

/* The session slot for a command: the salted session, or a password
 * session before one exists. */
static inline ESYS_TR tpm_auth_session(const struct tpm_ctx *ctx) {
    return ctx->session != ESYS_TR_NONE ? ctx->session : ESYS_TR_PASSWORD;
}
/* The session as an audit session for a command without authorization
 * (its answer then carries an HMAC too); ESYS_TR_NONE before one exists.
 * tpm_audit_end() after the command. */
ESYS_TR tpm_audit_begin(struct tpm_ctx *ctx);
/* Flushes the loaded sessions a crashed predecessor left (raw TPM only). */
int tpm_flush_stale_sessions(struct tpm_ctx *ctx);
void tpm_audit_end(struct tpm_ctx *ctx);

/* Records "what: decoded rc" in ctx->error and returns the mapped -errno. */
int tpm_fail_rc(struct tpm_ctx *ctx, TSS2_RC rc, const char *what, ...)
    __attribute__((format(printf, 3, 4)));
/* Records a reason that is not a TSS2_RC and returns err. */
int tpm_fail(struct tpm_ctx *ctx, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The RSA-2048 key of an EK certificate (DER X.509, as NV 0x01c00002 holds
 * it) into ek->modulus and ek->exponent (nothing else of *ek). -EPROTO when
 * it is not DER X.509, -EMEDIUMTYPE when its key is not RSA-2048; the
 * reason goes to ctx->error. Pure but for that; fuzzed. */
int tpm_ek_key_from_cert(struct tpm_ctx *ctx, const uint8_t *der, size_t len, struct tpm_ek *ek);
/* The -errno for a TSS2_RC (pure; unit-tested). */
int tpm_rc_to_errno(TSS2_RC rc);

/* The public area and name ESAPI recorded for tr: pass ret_nv for an NV
 * index, ret_key for a key (the other NULL). No TPM command. */
int tpm_tr_public(struct tpm_ctx *ctx, ESYS_TR tr, TPM2B_NAME *ret_name, TPM2B_NV_PUBLIC *ret_nv,
                  TPM2B_PUBLIC *ret_key);

/* An ESYS_TR for an NV index plus its public area, with one TPM command
 * (NV_ReadPublic). Close the TR with Esys_TR_Close. */
int tpm_nv_open(struct tpm_ctx *ctx, uint32_t index, ESYS_TR *ret_tr, struct tpm_nv_public *ret);
/* Reads size bytes of an index opened with tpm_nv_open, chunked. */
int tpm_nv_read_tr(struct tpm_ctx *ctx, ESYS_TR tr, uint32_t index, size_t size, uint8_t *buf);

static inline void esys_freep(void *p) {
    Esys_Free(*(void **)p);
}
#define _cleanup_esys_ _cleanup_(esys_freep)
