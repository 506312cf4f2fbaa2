/* tpm/nv.c: NV indices the agent owns (ordinary and counter), all noDA,
 * read and written only with their own auth value (ctx->nv_auth: no owner or
 * platform read or write), defined and undefined with the owner hierarchy's
 * authorization. Once the EK is proven, every command runs in the salted
 * session, so the TPM's answers are authenticated. Reads and writes are
 * chunked by the TPM's NV_BUFFER_MAX. */
#include "tpm/tpm-internal.h"

#include <string.h>

/* Who may read and write an index, and how: the agent's indices allow their
 * own auth value only, so that no other TPM user (who has the owner's
 * authorization, often empty) can write or increment them. */
#define ACCESS_MASK                                                                                \
    (TPMA_NV_PPWRITE | TPMA_NV_OWNERWRITE | TPMA_NV_AUTHWRITE | TPMA_NV_POLICYWRITE |              \
     TPMA_NV_POLICY_DELETE | TPMA_NV_WRITEALL | TPMA_NV_WRITEDEFINE | TPMA_NV_WRITE_STCLEAR |      \
     TPMA_NV_GLOBALLOCK | TPMA_NV_PPREAD | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD |                  \
     TPMA_NV_POLICYREAD | TPMA_NV_NO_DA | TPMA_NV_ORDERLY | TPMA_NV_CLEAR_STCLEAR |                \
     TPMA_NV_READ_STCLEAR)
#define ACCESS_OURS (TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA)

static void fill_public(uint32_t index, const TPM2B_NV_PUBLIC *pub, const TPM2B_NAME *name,
                        struct tpm_nv_public *ret) {
    TPMA_NV a = pub->nvPublic.attributes;

    memset(ret, 0, sizeof(*ret));
    ret->index = index;
    ret->attributes = a;
    ret->raw_type = (int)((a & TPMA_NV_TPM2_NT_MASK) >> TPMA_NV_TPM2_NT_SHIFT);
    ret->type = ret->raw_type == TPM2_NT_COUNTER ? TPM_NV_COUNTER : TPM_NV_ORDINARY;
    ret->size = pub->nvPublic.dataSize;
    ret->written = a & TPMA_NV_WRITTEN;
    ret->no_da = a & TPMA_NV_NO_DA;
    ret->name_len = name->size <= sizeof(ret->name) ? name->size : sizeof(ret->name);
    memcpy(ret->name, name->name, ret->name_len);
}

int tpm_nv_open(struct tpm_ctx *ctx, uint32_t index, ESYS_TR *ret_tr, struct tpm_nv_public *ret) {
    ESYS_TR tr = ESYS_TR_NONE;
    TPM2B_NV_PUBLIC pub;
    TPM2B_NAME name;
    TSS2_RC rc;
    int r;

    if (index < TPM2_NV_INDEX_FIRST || index > TPM2_NV_INDEX_LAST)
        return tpm_fail(ctx, -EINVAL, "0x%08x is not an NV index handle", index);
    rc = Esys_TR_FromTPMPublic(ctx->esys, index, tpm_audit_begin(ctx), ESYS_TR_NONE, ESYS_TR_NONE,
                               &tr);
    tpm_audit_end(ctx);
    if (rc != TSS2_RC_SUCCESS) {
        r = tpm_fail_rc(ctx, rc, "NV index 0x%08x", index);
        if (r == -ENOENT)
            tpm_fail(ctx, r, "NV index 0x%08x is not defined", index);
        return r;
    }
    r = tpm_tr_public(ctx, tr, &name, &pub, NULL);
    if (r == -EPROTO) {
        /* Serialization layout not as expected: ask the TPM again. */
        _cleanup_esys_ TPM2B_NV_PUBLIC *p = NULL;
        _cleanup_esys_ TPM2B_NAME *n = NULL;
        rc = Esys_NV_ReadPublic(ctx->esys, tr, tpm_audit_begin(ctx), ESYS_TR_NONE, ESYS_TR_NONE, &p,
                                &n);
        tpm_audit_end(ctx);
        if (rc != TSS2_RC_SUCCESS) {
            Esys_TR_Close(ctx->esys, &tr);
            return tpm_fail_rc(ctx, rc, "TPM2_NV_ReadPublic(0x%08x)", index);
        }
        pub = *p;
        name = *n;
        r = 0;
    }
    if (r < 0) {
        Esys_TR_Close(ctx->esys, &tr);
        return r;
    }
    if (ret)
        fill_public(index, &pub, &name, ret);
    /* the agent's indices are used with their own auth value */
    if (tpm_nv_index_is_owner(index) &&
        Esys_TR_SetAuth(ctx->esys, tr, &ctx->nv_auth) != TSS2_RC_SUCCESS) {
        Esys_TR_Close(ctx->esys, &tr);
        return tpm_fail(ctx, -EINVAL, "NV index 0x%08x: setting its auth value failed", index);
    }
    *ret_tr = tr;
    return 0;
}

static void tr_closep(struct tpm_ctx *ctx, ESYS_TR *tr) {
    if (*tr != ESYS_TR_NONE)
        Esys_TR_Close(ctx->esys, tr);
}

bool tpm_nv_index_is_owner(uint32_t index) {
    return index >= TPM_NV_OWNER_FIRST && index <= TPM_NV_OWNER_LAST;
}

int tpm_nv_public(struct tpm_ctx *ctx, uint32_t index, struct tpm_nv_public *ret) {
    ESYS_TR tr = ESYS_TR_NONE;
    int r = tpm_nv_open(ctx, index, &tr, ret);
    if (r < 0)
        return r;
    tr_closep(ctx, &tr);
    return 0;
}

int tpm_nv_check(struct tpm_ctx *ctx, const struct tpm_nv_public *pub, enum tpm_nv_type type,
                 size_t size) {
    static const char *const names[] = {
        [TPM_NV_ORDINARY] = "an ordinary index", [TPM_NV_COUNTER] = "a counter"};

    if (pub->raw_type != TPM2_NT_ORDINARY && pub->raw_type != TPM2_NT_COUNTER)
        return tpm_fail(ctx, -EMEDIUMTYPE, "NV index 0x%08x has type %d, expected %s", pub->index,
                        pub->raw_type, names[type]);
    if (pub->type != type)
        return tpm_fail(ctx, -EMEDIUMTYPE, "NV index 0x%08x is %s, expected %s", pub->index,
                        names[pub->type], names[type]);
    if (type == TPM_NV_ORDINARY && size && pub->size != size)
        return tpm_fail(ctx, -EMEDIUMTYPE, "NV index 0x%08x holds %u bytes, expected %zu",
                        pub->index, pub->size, size);
    if ((pub->attributes & ACCESS_MASK) != ACCESS_OURS)
        return tpm_fail(ctx, -EPERM,
                        "NV index 0x%08x has the attributes 0x%08x: it must be read and written "
                        "with its own auth value only (0x%08x), no other authorization",
                        pub->index, pub->attributes & ACCESS_MASK, ACCESS_OURS);
    return 0;
}

static int define(struct tpm_ctx *ctx, uint32_t index, size_t size, TPM2_NT type) {
    TPM2B_NV_PUBLIC pub = {
        .nvPublic =
            {
                .nvIndex = index,
                .nameAlg = TPM2_ALG_SHA256,
                .attributes = ACCESS_OURS | ((TPMA_NV)type << TPMA_NV_TPM2_NT_SHIFT),
                .authPolicy = {.size = 0},
                .dataSize = (UINT16)size,
            },
    };
    ESYS_TR tr = ESYS_TR_NONE;
    TSS2_RC rc;

    if (index < TPM2_NV_INDEX_FIRST || index > TPM2_NV_INDEX_LAST)
        return tpm_fail(ctx, -EINVAL, "0x%08x is not an NV index handle", index);
    /* the new index's auth value goes to the TPM encrypted (the session's
     * parameter encryption), not in the clear */
    if (ctx->session != ESYS_TR_NONE)
        Esys_TRSess_SetAttributes(ctx->esys, ctx->session, TPMA_SESSION_DECRYPT,
                                  TPMA_SESSION_DECRYPT);
    rc = Esys_NV_DefineSpace(ctx->esys, ESYS_TR_RH_OWNER, tpm_auth_session(ctx), ESYS_TR_NONE,
                             ESYS_TR_NONE, &ctx->nv_auth, &pub, &tr);
    if (ctx->session != ESYS_TR_NONE)
        Esys_TRSess_SetAttributes(ctx->esys, ctx->session, 0, TPMA_SESSION_DECRYPT);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail_rc(ctx, rc, "TPM2_NV_DefineSpace(0x%08x, %zu bytes)", index, size);
    tr_closep(ctx, &tr);
    return 0;
}

int tpm_nv_define(struct tpm_ctx *ctx, uint32_t index, size_t size) {
    if (size == 0 || size > ctx->info.nv_index_max || size > UINT16_MAX)
        return tpm_fail(ctx, -EFBIG,
                        "NV index 0x%08x: %zu bytes requested, this TPM allows 1 to %u", index,
                        size, ctx->info.nv_index_max);
    return define(ctx, index, size, TPM2_NT_ORDINARY);
}

int tpm_nv_write(struct tpm_ctx *ctx, uint32_t index, const void *data, size_t len) {
    ESYS_TR tr = ESYS_TR_NONE;
    struct tpm_nv_public pub;
    const uint8_t *p = data;
    TSS2_RC rc;
    int r;

    r = tpm_nv_open(ctx, index, &tr, &pub);
    if (r < 0)
        return r;
    r = tpm_nv_check(ctx, &pub, TPM_NV_ORDINARY, 0);
    if (r == 0 && len > pub.size)
        r = tpm_fail(ctx, -EFBIG, "NV index 0x%08x holds %u bytes, %zu given", index, pub.size,
                     len);
    for (size_t off = 0; r == 0 && off < len;) {
        TPM2B_MAX_NV_BUFFER chunk;
        size_t n = len - off;
        if (n > ctx->info.nv_buffer_max)
            n = ctx->info.nv_buffer_max;
        chunk.size = (UINT16)n;
        memcpy(chunk.buffer, p + off, n);
        rc = Esys_NV_Write(ctx->esys, tr, tr, tpm_auth_session(ctx), ESYS_TR_NONE, ESYS_TR_NONE,
                           &chunk, (UINT16)off);
        if (rc != TSS2_RC_SUCCESS)
            r = tpm_fail_rc(ctx, rc, "TPM2_NV_Write(0x%08x, offset %zu)", index, off);
        off += n;
    }
    tr_closep(ctx, &tr);
    return r;
}

int tpm_nv_read_tr(struct tpm_ctx *ctx, ESYS_TR tr, uint32_t index, size_t size, uint8_t *buf) {
    for (size_t off = 0; off < size;) {
        _cleanup_esys_ TPM2B_MAX_NV_BUFFER *chunk = NULL;
        size_t n = size - off;
        TSS2_RC rc;

        if (n > ctx->info.nv_buffer_max)
            n = ctx->info.nv_buffer_max;
        rc = Esys_NV_Read(ctx->esys, tr, tr, tpm_auth_session(ctx), ESYS_TR_NONE, ESYS_TR_NONE,
                          (UINT16)n, (UINT16)off, &chunk);
        if (rc != TSS2_RC_SUCCESS)
            return tpm_fail_rc(ctx, rc, "TPM2_NV_Read(0x%08x, offset %zu)", index, off);
        if (chunk->size != n)
            return tpm_fail(ctx, -EPROTO, "TPM2_NV_Read(0x%08x) returned %u bytes, asked %zu",
                            index, chunk->size, n);
        memcpy(buf + off, chunk->buffer, n);
        off += n;
    }
    return 0;
}

int tpm_nv_read(struct tpm_ctx *ctx, uint32_t index, uint8_t **ret_data, size_t *ret_len) {
    ESYS_TR tr = ESYS_TR_NONE;
    struct tpm_nv_public pub;
    _cleanup_free_ uint8_t *buf = NULL;
    int r;

    r = tpm_nv_open(ctx, index, &tr, &pub);
    if (r < 0)
        return r;
    if (pub.type != TPM_NV_ORDINARY || pub.raw_type != TPM2_NT_ORDINARY)
        r = tpm_fail(ctx, -EMEDIUMTYPE, "NV index 0x%08x is not an ordinary index (type %d)", index,
                     pub.raw_type);
    else if (!pub.written)
        r = tpm_fail(ctx, -ENODATA, "NV index 0x%08x has never been written", index);
    else if (!(buf = malloc(pub.size ? pub.size : 1)))
        r = -ENOMEM;
    else
        r = tpm_nv_read_tr(ctx, tr, index, pub.size, buf);
    tr_closep(ctx, &tr);
    if (r < 0)
        return r;
    *ret_data = TAKE_PTR(buf);
    *ret_len = pub.size;
    return 0;
}

int tpm_nv_undefine(struct tpm_ctx *ctx, uint32_t index) {
    ESYS_TR tr = ESYS_TR_NONE;
    TSS2_RC rc;
    int r;

    r = tpm_nv_open(ctx, index, &tr, NULL);
    if (r < 0)
        return r;
    rc = Esys_NV_UndefineSpace(ctx->esys, ESYS_TR_RH_OWNER, tr, tpm_auth_session(ctx), ESYS_TR_NONE,
                               ESYS_TR_NONE);
    if (rc != TSS2_RC_SUCCESS) {
        tr_closep(ctx, &tr);
        return tpm_fail_rc(ctx, rc, "TPM2_NV_UndefineSpace(0x%08x)", index);
    }
    /* ESAPI drops the TR itself after a successful undefine. */
    return 0;
}

static int increment(struct tpm_ctx *ctx, uint32_t index, bool check) {
    ESYS_TR tr = ESYS_TR_NONE;
    struct tpm_nv_public pub;
    TSS2_RC rc;
    int r;

    r = tpm_nv_open(ctx, index, &tr, &pub);
    if (r < 0)
        return r;
    r = check ? tpm_nv_check(ctx, &pub, TPM_NV_COUNTER, 0) : 0;
    if (r == 0) {
        rc =
            Esys_NV_Increment(ctx->esys, tr, tr, tpm_auth_session(ctx), ESYS_TR_NONE, ESYS_TR_NONE);
        if (rc != TSS2_RC_SUCCESS)
            r = tpm_fail_rc(ctx, rc, "TPM2_NV_Increment(0x%08x)", index);
    }
    tr_closep(ctx, &tr);
    return r;
}

int tpm_counter_define(struct tpm_ctx *ctx, uint32_t index) {
    int r = define(ctx, index, 8, TPM2_NT_COUNTER);
    if (r < 0)
        return r;
    return increment(ctx, index, false);
}

int tpm_counter_increment(struct tpm_ctx *ctx, uint32_t index) {
    return increment(ctx, index, true);
}

int tpm_counter_read(struct tpm_ctx *ctx, uint32_t index, uint64_t *ret_value) {
    ESYS_TR tr = ESYS_TR_NONE;
    struct tpm_nv_public pub;
    uint8_t b[8];
    int r;

    r = tpm_nv_open(ctx, index, &tr, &pub);
    if (r < 0)
        return r;
    if (pub.raw_type != TPM2_NT_COUNTER)
        r = tpm_fail(ctx, -EMEDIUMTYPE, "NV index 0x%08x is not a counter (type %d)", index,
                     pub.raw_type);
    else if (!pub.written)
        r = tpm_fail(ctx, -ENODATA, "counter 0x%08x has never been incremented", index);
    else
        r = tpm_nv_read_tr(ctx, tr, index, sizeof(b), b);
    tr_closep(ctx, &tr);
    if (r < 0)
        return r;
    *ret_value = 0;
    for (size_t i = 0; i < sizeof(b); i++)
        *ret_value = (*ret_value << 8) | b[i];
    return 0;
}
