/* Fault paths of tpm/ that swtpm cannot produce on demand: the TPM's NV
 * write-rate throttle (TPM_RC_NV_RATE) on writes and increments, injected
 * with link-time wraps around the real ESAPI calls of a real swtpm; and the
 * TSS2_RC to -errno table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tpm/tpm-internal.h"
#include "tests/lib/swtpm.h"

#define IDX 0x01a0c000u

static int nv_rate_left; /* how many calls still answer TPM_RC_NV_RATE */

TSS2_RC __real_Esys_NV_Write(ESYS_CONTEXT *e, ESYS_TR a, ESYS_TR n, ESYS_TR s1, ESYS_TR s2,
                             ESYS_TR s3, const TPM2B_MAX_NV_BUFFER *d, UINT16 off);
TSS2_RC __wrap_Esys_NV_Write(ESYS_CONTEXT *e, ESYS_TR a, ESYS_TR n, ESYS_TR s1, ESYS_TR s2,
                             ESYS_TR s3, const TPM2B_MAX_NV_BUFFER *d, UINT16 off);
TSS2_RC __wrap_Esys_NV_Write(ESYS_CONTEXT *e, ESYS_TR a, ESYS_TR n, ESYS_TR s1, ESYS_TR s2,
                             ESYS_TR s3, const TPM2B_MAX_NV_BUFFER *d, UINT16 off) {
    if (nv_rate_left > 0) {
        nv_rate_left--;
        return TPM2_RC_NV_RATE;
    }
    return __real_Esys_NV_Write(e, a, n, s1, s2, s3, d, off);
}

TSS2_RC __real_Esys_NV_Increment(ESYS_CONTEXT *e, ESYS_TR a, ESYS_TR n, ESYS_TR s1, ESYS_TR s2,
                                 ESYS_TR s3);
TSS2_RC __wrap_Esys_NV_Increment(ESYS_CONTEXT *e, ESYS_TR a, ESYS_TR n, ESYS_TR s1, ESYS_TR s2,
                                 ESYS_TR s3);
TSS2_RC __wrap_Esys_NV_Increment(ESYS_CONTEXT *e, ESYS_TR a, ESYS_TR n, ESYS_TR s1, ESYS_TR s2,
                                 ESYS_TR s3) {
    if (nv_rate_left > 0) {
        nv_rate_left--;
        return TPM2_RC_NV_RATE;
    }
    return __real_Esys_NV_Increment(e, a, n, s1, s2, s3);
}

static void nv_rate_is_busy_and_changes_nothing(void **state) {
    struct swtpm t;
    struct tpm_ctx *ctx = NULL;
    char err[256];
    uint8_t *data = NULL;
    size_t len;
    uint64_t before, after;

    assert_int_equal(swtpm_new(&t, NULL), 0);
    assert_int_equal(tpm_open(t.tcti, 0, &ctx, err, sizeof(err)), 0);
    assert_int_equal(tpm_nv_define(ctx, IDX, 8), 0);
    assert_int_equal(tpm_nv_write(ctx, IDX, "original", 8), 0);

    nv_rate_left = 1;
    assert_int_equal(tpm_nv_write(ctx, IDX, "changed!", 8), -EBUSY);
    assert_non_null(strstr(tpm_last_error(ctx), "TPM2_NV_Write(0x01a0c000, offset 0): TPM is "
                                                "rate-limiting NV writes (retry later)"));
    assert_int_equal(tpm_nv_read(ctx, IDX, &data, &len), 0);
    assert_memory_equal(data, "original", 8);
    free(data);

    assert_int_equal(tpm_counter_define(ctx, IDX + 1), 0);
    assert_int_equal(tpm_counter_read(ctx, IDX + 1, &before), 0);
    nv_rate_left = 1;
    assert_int_equal(tpm_counter_increment(ctx, IDX + 1), -EBUSY);
    assert_int_equal(tpm_counter_read(ctx, IDX + 1, &after), 0);
    assert_int_equal(after, before);
    /* the throttle lifts: the next increment counts exactly once */
    assert_int_equal(tpm_counter_increment(ctx, IDX + 1), 0);
    assert_int_equal(tpm_counter_read(ctx, IDX + 1, &after), 0);
    assert_int_equal(after, before + 1);

    tpm_close(ctx);
    swtpm_destroy(&t);
}

static void rc_table(void **state) {
    static const struct {
        TSS2_RC rc;
        int err;
    } cases[] = {
        {TSS2_RC_SUCCESS, 0},
        {TPM2_RC_INITIALIZE, -ENOTCONN},
        {TPM2_RC_FAILURE, -EIO},
        {TPM2_RC_NV_SPACE, -ENOSPC},
        {TPM2_RC_HANDLE | TPM2_RC_P | TPM2_RC_1, -ENOENT}, /* 0x18b, NV_ReadPublic */
        {TPM2_RC_HANDLE | TPM2_RC_H | TPM2_RC_2, -ENOENT},
        {TPM2_RC_NV_DEFINED, -EEXIST},
        {TPM2_RC_NV_UNINITIALIZED, -ENODATA},
        {TPM2_RC_LOCKOUT, -ENOLCK},
        {TPM2_RC_NV_RATE, -EBUSY},
        {TPM2_RC_RETRY, -EAGAIN},
        {TPM2_RC_YIELDED, -EAGAIN},
        {TPM2_RC_TESTING, -EAGAIN},
        {TPM2_RC_AUTH_FAIL | TPM2_RC_S | TPM2_RC_1, -EACCES},
        {TPM2_RC_BAD_AUTH | TPM2_RC_S | TPM2_RC_1, -EACCES},
        {TPM2_RC_NV_LOCKED, -EROFS},
        {TPM2_RC_NV_RANGE, -EFBIG},
        {TPM2_RC_SIZE | TPM2_RC_P | TPM2_RC_2, -EFBIG},
        {TPM2_RC_ATTRIBUTES | TPM2_RC_P | TPM2_RC_2, -EMEDIUMTYPE},
        {TSS2_TCTI_RC_IO_ERROR, -ENODEV},
        {TSS2_TCTI_RC_NO_CONNECTION, -ENODEV},
        {TSS2_ESYS_RC_BAD_SEQUENCE, -ENODEV},
        {TSS2_ESYS_RC_MALFORMED_RESPONSE, -EPROTO},
        {TSS2_ESYS_RC_MEMORY, -ENOMEM},
        {TSS2_ESYS_RC_BAD_REFERENCE, -EINVAL},
        {TPM2_RC_COMMAND_CODE, -EIO},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (tpm_rc_to_errno(cases[i].rc) != cases[i].err)
            fail_msg("rc 0x%x: expected %d, got %d", cases[i].rc, cases[i].err,
                     tpm_rc_to_errno(cases[i].rc));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rc_table),
        cmocka_unit_test(nv_rate_is_busy_and_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
