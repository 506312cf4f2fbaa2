/* tpm/tpm.c: opening the TPM through the TCTI loader with an explicit TCTI
 * string, counting the commands sent, mapping TSS2_RC to -errno with a
 * decoded reason, capabilities, stale-handle flushing and ReadClock. */
#include "tpm/tpm-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_sys.h>
#include <tss2/tss2_tctildr.h>

#define COUNT_TCTI_MAGIC 0x74706d6c69636e74ull /* "tpmlicnt" */

static struct count_tcti *count_tcti_of(TSS2_TCTI_CONTEXT *t) {
    return (struct count_tcti *)t;
}

static TSS2_RC count_transmit(TSS2_TCTI_CONTEXT *t, size_t size, const uint8_t *cmd) {
    struct count_tcti *c = count_tcti_of(t);
    (*c->count)++;
    return Tss2_Tcti_Transmit(c->inner, size, cmd);
}

static TSS2_RC count_receive(TSS2_TCTI_CONTEXT *t, size_t *size, uint8_t *resp, int32_t timeout) {
    return Tss2_Tcti_Receive(count_tcti_of(t)->inner, size, resp, timeout);
}

static void count_finalize(TSS2_TCTI_CONTEXT *t) {
    /* The inner context is finalized by tpm_close(). */
}

static TSS2_RC count_cancel(TSS2_TCTI_CONTEXT *t) {
    return Tss2_Tcti_Cancel(count_tcti_of(t)->inner);
}

static TSS2_RC count_get_poll_handles(TSS2_TCTI_CONTEXT *t, TSS2_TCTI_POLL_HANDLE *h, size_t *n) {
    return Tss2_Tcti_GetPollHandles(count_tcti_of(t)->inner, h, n);
}

static TSS2_RC count_set_locality(TSS2_TCTI_CONTEXT *t, uint8_t locality) {
    return Tss2_Tcti_SetLocality(count_tcti_of(t)->inner, locality);
}

static TSS2_RC count_make_sticky(TSS2_TCTI_CONTEXT *t, TPM2_HANDLE *h, uint8_t sticky) {
    TSS2_TCTI_CONTEXT *inner = count_tcti_of(t)->inner;
    if (TSS2_TCTI_VERSION(inner) < 2)
        return TSS2_TCTI_RC_NOT_IMPLEMENTED;
    return Tss2_Tcti_MakeSticky(inner, h, sticky);
}

static void count_tcti_init(struct count_tcti *c, TSS2_TCTI_CONTEXT *inner, unsigned long *count) {
    memset(c, 0, sizeof(*c));
    c->v2.v1.magic = COUNT_TCTI_MAGIC;
    c->v2.v1.version = 2;
    c->v2.v1.transmit = count_transmit;
    c->v2.v1.receive = count_receive;
    c->v2.v1.finalize = count_finalize;
    c->v2.v1.cancel = count_cancel;
    c->v2.v1.getPollHandles = count_get_poll_handles;
    c->v2.v1.setLocality = count_set_locality;
    c->v2.makeSticky = count_make_sticky;
    c->inner = inner;
    c->count = count;
}

/* TPM response codes: format-one codes carry a handle/parameter/session
 * number in bits 6..11 that we strip; format-zero codes keep bits 0..6, VER1
 * and WARN. */
static TSS2_RC tpm_base_rc(TSS2_RC rc) {
    if (rc & TPM2_RC_FMT1)
        return rc & (TPM2_RC_FMT1 | 0x3f);
    return rc & (TPM2_RC_WARN | TPM2_RC_VER1 | 0x7f);
}

int tpm_rc_to_errno(TSS2_RC rc) {
    TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;

    if (rc == TSS2_RC_SUCCESS)
        return 0;
    if (layer == TSS2_TPM_RC_LAYER) {
        switch (tpm_base_rc(rc)) {
        case TPM2_RC_INITIALIZE:
            return -ENOTCONN;
        case TPM2_RC_FAILURE:
            return -EIO;
        case TPM2_RC_NV_SPACE:
            return -ENOSPC;
        case TPM2_RC_HANDLE:
            return -ENOENT;
        case TPM2_RC_NV_DEFINED:
            return -EEXIST;
        case TPM2_RC_NV_UNINITIALIZED:
            return -ENODATA;
        case TPM2_RC_LOCKOUT:
            return -ENOLCK;
        case TPM2_RC_NV_RATE:
            return -EBUSY;
        case TPM2_RC_RETRY:
        case TPM2_RC_YIELDED:
        case TPM2_RC_TESTING:
        case TPM2_RC_NV_UNAVAILABLE:
            return -EAGAIN;
        case TPM2_RC_AUTH_FAIL:
        case TPM2_RC_BAD_AUTH:
        case TPM2_RC_NV_AUTHORIZATION:
        case TPM2_RC_AUTH_UNAVAILABLE:
            return -EACCES;
        case TPM2_RC_NV_LOCKED:
            return -EROFS;
        case TPM2_RC_NV_RANGE:
        case TPM2_RC_NV_SIZE:
        case TPM2_RC_SIZE:
            return -EFBIG;
        case TPM2_RC_TYPE:
        case TPM2_RC_ATTRIBUTES:
            return -EMEDIUMTYPE;
        default:
            return -EIO;
        }
    }
    switch (rc & ~TSS2_RC_LAYER_MASK) {
    case TSS2_BASE_RC_IO_ERROR:
    case TSS2_BASE_RC_NO_CONNECTION:
    /* our calls are synchronous: ESAPI is out of sequence only after a
     * command whose answer never came, so the context is as good as lost */
    case TSS2_BASE_RC_BAD_SEQUENCE:
        return -ENODEV;
    case TSS2_BASE_RC_TRY_AGAIN:
        return -EAGAIN;
    case TSS2_BASE_RC_RSP_AUTH_FAILED:
        return -EBADE;
    case TSS2_BASE_RC_INSUFFICIENT_RESPONSE:
    case TSS2_BASE_RC_MALFORMED_RESPONSE:
    case TSS2_BASE_RC_INSUFFICIENT_BUFFER:
        return -EPROTO;
    case TSS2_BASE_RC_MEMORY:
        return -ENOMEM;
    case TSS2_BASE_RC_BAD_VALUE:
    case TSS2_BASE_RC_BAD_REFERENCE:
    case TSS2_BASE_RC_BAD_SIZE:
        return -EINVAL;
    default:
        return -EIO;
    }
}

/* A plain-words prefix for the codes operators meet; the decoded TSS text
 * follows it. */
static const char *rc_hint(int err) {
    switch (err) {
    case -ENODEV:
        return "no TPM answering (connection failed or lost)";
    case -ENOTCONN:
        return "TPM not started (TPM2_Startup has not been sent)";
    case -EIO:
        return "TPM error";
    case -ENOSPC:
        return "TPM NV space exhausted";
    case -ENOENT:
        return "not defined in the TPM";
    case -EEXIST:
        return "already defined in the TPM";
    case -ENODATA:
        return "NV index never written";
    case -ENOLCK:
        return "TPM is in dictionary-attack lockout";
    case -EBUSY:
        return "TPM is rate-limiting NV writes (retry later)";
    case -EAGAIN:
        return "TPM busy (retry later)";
    case -EACCES:
        return "TPM authorization failed";
    case -EROFS:
        return "NV index is write-locked";
    case -EFBIG:
        return "size out of range";
    case -EMEDIUMTYPE:
        return "wrong type or attributes";
    case -EPROTO:
        return "malformed answer from the TPM";
    case -EBADE:
        return "the TPM's answer failed its HMAC check (changed on the way, or another TPM)";
    default:
        return "TPM call failed";
    }
}

int tpm_fail_rc(struct tpm_ctx *ctx, TSS2_RC rc, const char *what, ...) {
    int err = tpm_rc_to_errno(rc);
    char buf[128];
    va_list ap;

    va_start(ap, what);
    vsnprintf(buf, sizeof(buf), what, ap);
    va_end(ap);
    if (rc == TPM2_RC_FAILURE)
        snprintf(ctx->error, sizeof(ctx->error), "%s: TPM is in failure mode (0x%x: %s)", buf, rc,
                 Tss2_RC_Decode(rc));
    else
        snprintf(ctx->error, sizeof(ctx->error), "%s: %s (0x%x: %s)", buf, rc_hint(err), rc,
                 Tss2_RC_Decode(rc));
    return err;
}

int tpm_fail(struct tpm_ctx *ctx, int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof(ctx->error), fmt, ap);
    va_end(ap);
    return err;
}

const char *tpm_last_error(const struct tpm_ctx *ctx) {
    return ctx ? ctx->error : "no TPM context";
}

unsigned long tpm_command_count(const struct tpm_ctx *ctx) {
    return ctx->commands;
}

void tpm_get_info(const struct tpm_ctx *ctx, struct tpm_info *ret) {
    *ret = ctx->info;
}

static void u32_text(uint32_t v, char *out) {
    for (int i = 0; i < 4; i++) {
        char c = (char)((v >> (24 - 8 * i)) & 0xff);
        out[i] = (c >= 0x20 && c < 0x7f) ? c : '\0';
    }
}

/* Trims trailing NULs and spaces of a 4n-character vendor text. */
static void trim_text(char *s, size_t n) {
    size_t len = strnlen(s, n);
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\0')
            s[i] = ' ';
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\0'))
        len--;
    s[len] = '\0';
}

/* Manufacturer IDs of software and virtual TPMs. */
static bool manufacturer_is_software(const char *m, const char *vendor) {
    static const char *const soft[] = {"MSFT", "GOOG", "AMZN", "VMW", "QEMU", "SIM"};
    if (strcmp(m, "IBM") == 0)
        return strncmp(vendor, "SW", 2) == 0; /* libtpms / swtpm */
    for (size_t i = 0; i < ARRAY_SIZE(soft); i++)
        if (strcmp(m, soft[i]) == 0)
            return true;
    return false;
}

static int read_fixed_properties(struct tpm_ctx *ctx) {
    _cleanup_esys_ TPMS_CAPABILITY_DATA *cap = NULL;
    TPMI_YES_NO more = TPM2_NO;
    char vendor[17] = {0};
    TSS2_RC rc;

    rc = Esys_GetCapability(ctx->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                            TPM2_CAP_TPM_PROPERTIES, TPM2_PT_FIXED, TPM2_MAX_TPM_PROPERTIES, &more,
                            &cap);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail_rc(ctx, rc, "TPM2_GetCapability(fixed properties)");
    if (cap->capability != TPM2_CAP_TPM_PROPERTIES)
        return tpm_fail(ctx, -EPROTO, "TPM2_GetCapability answered capability 0x%x",
                        cap->capability);

    ctx->info.nv_buffer_max = 512; /* the minimum if the TPM does not say */
    ctx->info.nv_index_max = 2048;
    for (uint32_t i = 0; i < cap->data.tpmProperties.count; i++) {
        TPMS_TAGGED_PROPERTY *p = &cap->data.tpmProperties.tpmProperty[i];
        switch (p->property) {
        case TPM2_PT_MANUFACTURER:
            u32_text(p->value, ctx->info.manufacturer);
            break;
        case TPM2_PT_VENDOR_STRING_1:
        case TPM2_PT_VENDOR_STRING_2:
        case TPM2_PT_VENDOR_STRING_3:
        case TPM2_PT_VENDOR_STRING_4:
            u32_text(p->value, vendor + 4 * (p->property - TPM2_PT_VENDOR_STRING_1));
            break;
        case TPM2_PT_FIRMWARE_VERSION_1:
            ctx->info.firmware_version |= (uint64_t)p->value << 32;
            break;
        case TPM2_PT_FIRMWARE_VERSION_2:
            ctx->info.firmware_version |= p->value;
            break;
        case TPM2_PT_NV_BUFFER_MAX:
            ctx->info.nv_buffer_max = p->value;
            break;
        case TPM2_PT_NV_INDEX_MAX:
            ctx->info.nv_index_max = p->value;
            break;
        case TPM2_PT_NV_COUNTERS_MAX:
            ctx->info.nv_counters_max = p->value;
            break;
        default:
            break;
        }
    }
    ctx->info.manufacturer[4] = '\0';
    trim_text(ctx->info.manufacturer, 4);
    trim_text(vendor, 16);
    memcpy(ctx->info.vendor, vendor, sizeof(vendor));
    ctx->info.is_software = manufacturer_is_software(ctx->info.manufacturer, ctx->info.vendor);
    if (ctx->info.nv_buffer_max == 0 || ctx->info.nv_buffer_max > TPM2_MAX_NV_BUFFER_SIZE)
        ctx->info.nv_buffer_max = TPM2_MAX_NV_BUFFER_SIZE;
    return 0;
}

/* The TSS macro for this shifts a promoted int into the sign bit (UB). */
#define TRANSIENT_FIRST 0x80000000u

/* A raw TPM (swtpm, /dev/tpm0) keeps the transient objects and the
 * sessions that a crashed predecessor left behind (an EK from CreatePrimary,
 * the salted session); they use up the few slots. Flush them. */
static int flush_stale(struct tpm_ctx *ctx, TPM2_HANDLE first, uint8_t type) {
    _cleanup_esys_ TPMS_CAPABILITY_DATA *cap = NULL;
    TSS2_SYS_CONTEXT *sys = NULL;
    TPMI_YES_NO more = TPM2_NO;
    TSS2_RC rc;

    rc = Esys_GetCapability(ctx->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES,
                            first, TPM2_MAX_CAP_HANDLES, &more, &cap);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail_rc(ctx, rc, "TPM2_GetCapability(handles from 0x%08x)", first);
    if (cap->data.handles.count == 0)
        return 0;
    rc = Esys_GetSysContext(ctx->esys, &sys);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail_rc(ctx, rc, "Esys_GetSysContext");
    for (uint32_t i = 0; i < cap->data.handles.count; i++) {
        TPM2_HANDLE h = cap->data.handles.handle[i];
        if ((h >> 24) != type)
            break;
        rc = Tss2_Sys_FlushContext(sys, h);
        if (rc != TSS2_RC_SUCCESS)
            return tpm_fail_rc(ctx, rc, "TPM2_FlushContext(0x%08x)", h);
    }
    return 0;
}

static int flush_stale_transients(struct tpm_ctx *ctx) {
    return flush_stale(ctx, TRANSIENT_FIRST, 0x80);
}

/* Sessions are flushed only when the TPM has no room for another: on a raw
 * TPM they may be another process's, alive. */
int tpm_flush_stale_sessions(struct tpm_ctx *ctx) {
    int r = flush_stale(ctx, 0x02000000u, 0x02); /* loaded HMAC sessions */
    if (r == 0)
        r = flush_stale(ctx, 0x03000000u, 0x03); /* loaded policy sessions */
    return r;
}

static bool tcti_is_resource_manager(const char *tcti) {
    return strncmp(tcti, "device:/dev/tpmrm", 17) == 0 || strncmp(tcti, "tabrmd", 6) == 0;
}

/* "crw-rw----" for a mode, as ls shows it. */
static void mode_text(mode_t m, char out[11]) {
    static const char rwx[] = "rwxrwxrwx";
    out[0] = S_ISCHR(m) ? 'c' : S_ISBLK(m) ? 'b' : S_ISDIR(m) ? 'd' : S_ISREG(m) ? '-' : '?';
    for (int i = 0; i < 9; i++)
        out[1 + i] = (m & (0400u >> i)) ? rwx[i] : '-';
    out[10] = '\0';
}

static void user_text(uid_t uid, char *out, size_t len) {
    struct passwd pw, *res = NULL;
    char buf[1024];
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res)
        snprintf(out, len, "%s", pw.pw_name);
    else
        snprintf(out, len, "%u", (unsigned)uid);
}

static void group_text(gid_t gid, char *out, size_t len) {
    struct group gr, *res = NULL;
    char buf[1024];
    if (getgrgid_r(gid, &gr, buf, sizeof(buf), &res) == 0 && res)
        snprintf(out, len, "%s", gr.gr_name);
    else
        snprintf(out, len, "%u", (unsigned)gid);
}

/* The device TCTI reports a node it may not open as a bare I/O failure
 * (0xa000a). When the TCTI is "device:PATH" and PATH exists but this process
 * may not open it read-write, write the reason instead: the node's owner,
 * group and mode, our ids, and what to add, into ctx->error. Returns -EACCES
 * then, 0 when permissions are not the problem. */
static int explain_device_denied(struct tpm_ctx *ctx, const char *tcti) {
    const char *path = strncmp(tcti, "device:", 7) == 0 ? tcti + 7 : NULL;
    char mode[11], owner[64], group[64];
    struct stat st;
    int fd, err;

    if (!path || !*path)
        return 0;
    if (stat(path, &st) < 0) {
        if (errno != EACCES)
            return 0;
        return tpm_fail(ctx, -EACCES,
                        "cannot reach the TPM device %s: permission denied on a directory above "
                        "it (uid %u, gid %u)",
                        path, (unsigned)geteuid(), (unsigned)getegid());
    }
    fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    err = errno;
    if (err != EACCES && err != EPERM)
        return 0;
    mode_text(st.st_mode, mode);
    user_text(st.st_uid, owner, sizeof(owner));
    group_text(st.st_gid, group, sizeof(group));
    if (err == EPERM)
        /* the node's permissions allow us: a device cgroup refuses it */
        return tpm_fail(ctx, -EACCES,
                        "cannot open the TPM device %s (%s %s:%s): refused by the device policy "
                        "(uid %u, gid %u); allow it (systemd: DeviceAllow=%s rw)",
                        path, mode, owner, group, (unsigned)geteuid(), (unsigned)getegid(), path);
    if ((st.st_mode & 0060) == 0060)
        return tpm_fail(
            ctx, -EACCES,
            "cannot open the TPM device %s (%s %s:%s): permission denied for uid %u, "
            "gid %u; add group %s (systemd: SupplementaryGroups=%s, or membership of group "
            "%s)",
            path, mode, owner, group, (unsigned)geteuid(), (unsigned)getegid(), group, group,
            group);
    return tpm_fail(ctx, -EACCES,
                    "cannot open the TPM device %s (%s %s:%s): permission denied for uid %u, "
                    "gid %u; only its owner may open it: give it a group (a udev rule; Debian's "
                    "tpm-udev: tss:tss 0660)",
                    path, mode, owner, group, (unsigned)geteuid(), (unsigned)getegid());
}

void tpm_close(struct tpm_ctx *ctx) {
    if (!ctx)
        return;
    if (ctx->esys && ctx->session != ESYS_TR_NONE)
        Esys_FlushContext(ctx->esys, ctx->session); /* a TPM that is gone: nothing to do */
    if (ctx->esys)
        Esys_Finalize(&ctx->esys);
    secure_wipe(&ctx->nv_auth, sizeof(ctx->nv_auth));
    secure_wipe(&ctx->owner_auth, sizeof(ctx->owner_auth));
    if (ctx->tcti)
        Tss2_TctiLdr_Finalize(&ctx->tcti);
    free(ctx);
}

int tpm_open(const char *tcti, unsigned flags, struct tpm_ctx **ret_ctx, char *errbuf,
             size_t errlen) {
    _cleanup_(tpm_closep) struct tpm_ctx *ctx = NULL;
    TSS2_RC rc;
    int r;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!tcti || !*tcti) {
        /* Never let the loader pick: its default search reaches any
         * simulator on localhost (SPEC section 3). */
        if (errbuf)
            snprintf(errbuf, errlen, "no TCTI given (an explicit TCTI string is required)");
        return -EINVAL;
    }
    /* The TSS logs to stderr by itself; we decode errors ourselves. */
    setenv("TSS2_LOG", "all+NONE", 0);

    ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return -ENOMEM;
    ctx->session = ESYS_TR_NONE;
    rc = Tss2_TctiLdr_Initialize(tcti, &ctx->tcti);
    if (rc != TSS2_RC_SUCCESS) {
        ctx->tcti = NULL;
        r = tpm_fail_rc(ctx, rc, "opening TPM at '%s'", tcti);
        if (r != -ENOMEM)
            r = -ENODEV;
        snprintf(ctx->error, sizeof(ctx->error), "no TPM at '%s' (0x%x: %s)", tcti, rc,
                 Tss2_RC_Decode(rc));
        if (r == -ENODEV && explain_device_denied(ctx, tcti) < 0)
            r = -EACCES;
        goto fail;
    }
    count_tcti_init(&ctx->counting, ctx->tcti, &ctx->commands);
    rc = Esys_Initialize(&ctx->esys, (TSS2_TCTI_CONTEXT *)&ctx->counting, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        ctx->esys = NULL;
        r = tpm_fail_rc(ctx, rc, "Esys_Initialize");
        goto fail;
    }
    ctx->info.resource_manager = tcti_is_resource_manager(tcti);

    if (!(flags & TPM_OPEN_NO_STARTUP)) {
        rc = Esys_Startup(ctx->esys, TPM2_SU_CLEAR);
        if (rc != TSS2_RC_SUCCESS && tpm_base_rc(rc) != TPM2_RC_INITIALIZE) {
            r = tpm_fail_rc(ctx, rc, "TPM2_Startup");
            goto fail;
        }
    }
    r = read_fixed_properties(ctx);
    if (r < 0)
        goto fail;
    if (!(flags & TPM_OPEN_NO_FLUSH) && !ctx->info.resource_manager) {
        r = flush_stale_transients(ctx);
        if (r < 0)
            goto fail;
    }
    ctx->error[0] = '\0';
    *ret_ctx = TAKE_PTR(ctx);
    return 0;

fail:
    if (errbuf)
        snprintf(errbuf, errlen, "%s", ctx->error);
    return r;
}

ESYS_TR tpm_audit_begin(struct tpm_ctx *ctx) {
    if (ctx->session == ESYS_TR_NONE)
        return ESYS_TR_NONE;
    Esys_TRSess_SetAttributes(ctx->esys, ctx->session, TPMA_SESSION_AUDIT, TPMA_SESSION_AUDIT);
    return ctx->session;
}

void tpm_audit_end(struct tpm_ctx *ctx) {
    if (ctx->session != ESYS_TR_NONE)
        Esys_TRSess_SetAttributes(ctx->esys, ctx->session, 0, TPMA_SESSION_AUDIT);
}

int tpm_set_nv_auth(struct tpm_ctx *ctx, const uint8_t *auth, size_t len) {
    if (len > sizeof(ctx->nv_auth.buffer))
        return -EINVAL;
    secure_wipe(&ctx->nv_auth, sizeof(ctx->nv_auth));
    ctx->nv_auth.size = (UINT16)len;
    if (len)
        memcpy(ctx->nv_auth.buffer, auth, len);
    return 0;
}

int tpm_set_owner_auth(struct tpm_ctx *ctx, const uint8_t *auth, size_t len) {
    if (len > sizeof(ctx->owner_auth.buffer))
        return -EINVAL;
    secure_wipe(&ctx->owner_auth, sizeof(ctx->owner_auth));
    ctx->owner_auth.size = (UINT16)len;
    if (len)
        memcpy(ctx->owner_auth.buffer, auth, len);
    return Esys_TR_SetAuth(ctx->esys, ESYS_TR_RH_OWNER, &ctx->owner_auth) == TSS2_RC_SUCCESS
               ? 0
               : -EINVAL;
}

bool tpm_is_proven(const struct tpm_ctx *ctx) {
    return ctx->session != ESYS_TR_NONE;
}

int tpm_read_clock(struct tpm_ctx *ctx, struct tpm_clock *ret) {
    _cleanup_esys_ TPMS_TIME_INFO *t = NULL;
    TSS2_RC rc;

    /* audited: the answer carries the session's HMAC */
    rc = Esys_ReadClock(ctx->esys, tpm_audit_begin(ctx), ESYS_TR_NONE, ESYS_TR_NONE, &t);
    tpm_audit_end(ctx);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail_rc(ctx, rc, "TPM2_ReadClock");
    ret->time_ms = t->time;
    ret->clock_ms = t->clockInfo.clock;
    ret->reset_count = t->clockInfo.resetCount;
    ret->restart_count = t->clockInfo.restartCount;
    ret->safe = t->clockInfo.safe == TPM2_YES;
    return 0;
}

/* ESAPI keeps the public area it read when the ESYS_TR was made (by
 * NV_ReadPublic or ReadPublic); Esys_TR_Serialize hands it out as
 * handle (UINT32) || name (TPM2B_NAME) || resource type (UINT32: 1 key,
 * 2 NV) || TPM2B_PUBLIC or TPM2B_NV_PUBLIC. Reading it there saves asking the
 * TPM a second time. -EPROTO when the layout is not as expected. */
#define IESYS_KEY_RESOURCE 1
#define IESYS_NV_RESOURCE  2

int tpm_tr_public(struct tpm_ctx *ctx, ESYS_TR tr, TPM2B_NAME *ret_name, TPM2B_NV_PUBLIC *ret_nv,
                  TPM2B_PUBLIC *ret_key) {
    _cleanup_esys_ uint8_t *buf = NULL;
    size_t len = 0, off = 0;
    uint32_t handle = 0, type = 0;
    TSS2_RC rc;

    rc = Esys_TR_Serialize(ctx->esys, tr, &buf, &len);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail_rc(ctx, rc, "Esys_TR_Serialize");
    memset(ret_name, 0, sizeof(*ret_name));
    if (Tss2_MU_UINT32_Unmarshal(buf, len, &off, &handle) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_NAME_Unmarshal(buf, len, &off, ret_name) != TSS2_RC_SUCCESS ||
        Tss2_MU_UINT32_Unmarshal(buf, len, &off, &type) != TSS2_RC_SUCCESS)
        return -EPROTO;
    if (ret_nv) {
        memset(ret_nv, 0, sizeof(*ret_nv));
        if (type != IESYS_NV_RESOURCE ||
            Tss2_MU_TPM2B_NV_PUBLIC_Unmarshal(buf, len, &off, ret_nv) != TSS2_RC_SUCCESS)
            return -EPROTO;
    } else {
        memset(ret_key, 0, sizeof(*ret_key));
        if (type != IESYS_KEY_RESOURCE ||
            Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, len, &off, ret_key) != TSS2_RC_SUCCESS)
            return -EPROTO;
    }
    return 0;
}
