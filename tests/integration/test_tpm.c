/* Integration tests for tpm/ against a real swtpm per test: EK identity from
 * every source and across restarts, NV round trips, counters that never go
 * down, ReadClock, and every error the module promises, provoked for real. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include "tpm/tpm.h"
#include "tests/lib/swtpm.h"

#define IDX 0x01a0c000u

struct fixture {
    struct swtpm tpm;
    struct tpm_ctx *ctx;
};

static int setup_opts(void **state, const char *opts) {
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];
    if (!f || swtpm_new(&f->tpm, opts) < 0)
        return -1;
    if (tpm_open(f->tpm.tcti, 0, &f->ctx, err, sizeof(err)) < 0) {
        fprintf(stderr, "tpm_open: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int setup(void **state) {
    return setup_opts(state, NULL);
}
static int setup_no_persistent(void **state) {
    return setup_opts(state, "--no-persistent-ek");
}
static int setup_no_certs(void **state) {
    return setup_opts(state, "--no-certs");
}
static int setup_bare(void **state) {
    return setup_opts(state, "--no-certs --no-persistent-ek");
}

static int teardown(void **state) {
    struct fixture *f = *state;
    int left;
    if (!f)
        return 0;
    tpm_close(f->ctx);
    f->ctx = NULL;
    left = f->tpm.dir[0] && swtpm_ctl(&f->tpm, "running", NULL) == 0
               ? swtpm_transient_count(&f->tpm)
               : 0;
    swtpm_destroy(&f->tpm);
    free(f);
    /* Every test must leave no transient object behind. */
    if (left != 0)
        fprintf(stderr, "%d transient handle(s) left behind\n", left);
    return left == 0 ? 0 : -1;
}

static void reopen(struct fixture *f) {
    char err[256];
    tpm_close(f->ctx);
    f->ctx = NULL;
    assert_int_equal(tpm_open(f->tpm.tcti, 0, &f->ctx, err, sizeof(err)), 0);
}

static void get_ek(struct fixture *f, unsigned flags, struct tpm_ek *ek) {
    int r = tpm_ek_rsa(f->ctx, flags, ek);
    if (r < 0)
        fprintf(stderr, "tpm_ek_rsa: %s\n", tpm_last_error(f->ctx));
    assert_int_equal(r, 0);
    assert_int_equal(ek->exponent, 65537);
    assert_non_null(ek->spki_der);
    assert_true(ek->spki_len > 256);
}

static void assert_same_key(const struct tpm_ek *a, const struct tpm_ek *b) {
    assert_memory_equal(a->modulus, b->modulus, sizeof(a->modulus));
    assert_int_equal(a->spki_len, b->spki_len);
    assert_memory_equal(a->spki_der, b->spki_der, a->spki_len);
}

/* ---- EK ------------------------------------------------------------------ */

static void ek_stable_across_restarts_and_clear(void **state) {
    struct fixture *f = *state;
    struct tpm_ek first = {0}, ek = {0}, created = {0};

    get_ek(f, 0, &first);
    assert_int_equal(first.source, TPM_EK_FROM_CERT);
    assert_non_null(first.cert_der);
    assert_string_equal(first.origin, "EK certificate at NV 0x01c00002");

    get_ek(f, TPM_EK_SKIP_CERT | TPM_EK_SKIP_PERSISTENT, &created);
    assert_int_equal(created.source, TPM_EK_CREATED);
    assert_null(created.cert_der);
    assert_same_key(&first, &created);

    tpm_close(f->ctx);
    f->ctx = NULL;
    assert_int_equal(swtpm_ctl(&f->tpm, "reboot", NULL), 0);
    reopen(f);
    get_ek(f, 0, &ek);
    assert_same_key(&first, &ek);
    tpm_ek_clear(&ek);

    tpm_close(f->ctx);
    f->ctx = NULL;
    assert_int_equal(swtpm_ctl(&f->tpm, "poweroff", NULL), 0);
    assert_int_equal(swtpm_ctl(&f->tpm, "start", NULL), 0);
    reopen(f);
    get_ek(f, 0, &ek);
    assert_same_key(&first, &ek);
    tpm_ek_clear(&ek);

    /* TPM2_Clear changes the owner seed, not the endorsement seed. */
    assert_int_equal(swtpm_sh(&f->tpm, NULL, 0, "tpm2_clear -c p"), 0);
    get_ek(f, TPM_EK_SKIP_CERT | TPM_EK_SKIP_PERSISTENT, &ek);
    assert_same_key(&first, &ek);
    tpm_ek_clear(&ek);

    tpm_ek_clear(&first);
    tpm_ek_clear(&created);
}

static void ek_from_cert_without_persistent(void **state) {
    struct fixture *f = *state;
    struct tpm_ek ek = {0}, created = {0};

    get_ek(f, 0, &ek);
    assert_int_equal(ek.source, TPM_EK_FROM_CERT);
    get_ek(f, TPM_EK_SKIP_CERT, &created);
    assert_int_equal(created.source, TPM_EK_CREATED);
    assert_same_key(&ek, &created);
    tpm_ek_clear(&ek);
    tpm_ek_clear(&created);
}

static void ek_from_persistent_without_certs(void **state) {
    struct fixture *f = *state;
    struct tpm_ek ek = {0}, created = {0};
    unsigned long before;

    before = tpm_command_count(f->ctx);
    get_ek(f, 0, &ek);
    assert_int_equal(ek.source, TPM_EK_FROM_PERSISTENT);
    assert_null(ek.cert_der);
    assert_true(tpm_command_count(f->ctx) - before <= 3);
    get_ek(f, TPM_EK_SKIP_PERSISTENT, &created);
    assert_int_equal(created.source, TPM_EK_CREATED);
    assert_same_key(&ek, &created);
    tpm_ek_clear(&ek);
    tpm_ek_clear(&created);
}

static void ek_created_and_persisted_when_nothing_exists(void **state) {
    struct fixture *f = *state;
    struct tpm_ek ek = {0}, again = {0};
    char out[4096];

    get_ek(f, TPM_EK_PERSIST, &ek);
    assert_int_equal(ek.source, TPM_EK_CREATED);
    assert_int_equal(swtpm_sh(&f->tpm, out, sizeof(out), "tpm2_getcap handles-persistent"), 0);
    assert_non_null(strstr(out, "0x81010001"));
    get_ek(f, 0, &again);
    assert_int_equal(again.source, TPM_EK_FROM_PERSISTENT);
    assert_same_key(&ek, &again);
    tpm_ek_clear(&ek);
    tpm_ek_clear(&again);
}

/* A key at 0x81010001 that is not the default EK must not be taken for it. */
static void ek_persistent_other_key_not_substituted(void **state) {
    struct fixture *f = *state;
    struct tpm_ek ek = {0}, created = {0};

    assert_int_equal(swtpm_sh(&f->tpm, NULL, 0,
                              "tpm2_evictcontrol -C o -c 0x81010001 >/dev/null && "
                              "tpm2_createprimary -C o -G rsa2048 -c prim.ctx >/dev/null && "
                              "tpm2_evictcontrol -C o -c prim.ctx 0x81010001 >/dev/null && "
                              "rm -f prim.ctx && tpm2_flushcontext -t"),
                     0);
    get_ek(f, 0, &ek);
    assert_int_equal(ek.source, TPM_EK_CREATED);
    get_ek(f, TPM_EK_SKIP_PERSISTENT, &created);
    assert_same_key(&ek, &created);
    tpm_ek_clear(&ek);
    tpm_ek_clear(&created);
}

static void ek_others_reported(void **state) {
    struct fixture *f = *state;
    struct tpm_ek_other o[8];
    int n = tpm_ek_list_others(f->ctx, o, 8);
    bool p256 = false, p384 = false;

    assert_true(n >= 2);
    for (int i = 0; i < n; i++) {
        assert_int_not_equal(o[i].index, TPM_EK_RSA_CERT_INDEX);
        if (o[i].index == 0x01c0000a) {
            p256 = true;
            assert_non_null(strstr(o[i].what, "P-256"));
        }
        if (o[i].index == 0x01c00016)
            p384 = true;
    }
    assert_true(p256 && p384);
}

/* A stale transient object left by a crashed predecessor is flushed. */
static void stale_transients_flushed_at_open(void **state) {
    struct fixture *f = *state;
    TSS2_TCTI_CONTEXT *tcti = NULL;
    ESYS_CONTEXT *esys = NULL;
    TPM2B_SENSITIVE_CREATE sens = {.size = 0};
    TPM2B_PUBLIC tmpl = {.publicArea = {
                             .type = TPM2_ALG_ECC,
                             .nameAlg = TPM2_ALG_SHA256,
                             .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                                 TPMA_OBJECT_SENSITIVEDATAORIGIN |
                                                 TPMA_OBJECT_USERWITHAUTH |
                                                 TPMA_OBJECT_SIGN_ENCRYPT,
                             .parameters.eccDetail = {.symmetric.algorithm = TPM2_ALG_NULL,
                                                      .scheme.scheme = TPM2_ALG_NULL,
                                                      .curveID = TPM2_ECC_NIST_P256,
                                                      .kdf.scheme = TPM2_ALG_NULL},
                         }};
    TPM2B_DATA outside = {.size = 0};
    TPML_PCR_SELECTION pcrs = {.count = 0};
    ESYS_TR key;

    tpm_close(f->ctx);
    f->ctx = NULL;
    assert_int_equal(Tss2_TctiLdr_Initialize(f->tpm.tcti, &tcti), TSS2_RC_SUCCESS);
    assert_int_equal(Esys_Initialize(&esys, tcti, NULL), TSS2_RC_SUCCESS);
    for (int i = 0; i < 2; i++)
        assert_int_equal(Esys_CreatePrimary(esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                            ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs, &key, NULL,
                                            NULL, NULL, NULL),
                         TSS2_RC_SUCCESS);
    Esys_Finalize(&esys); /* a crash: the objects stay loaded */
    Tss2_TctiLdr_Finalize(&tcti);
    assert_int_equal(swtpm_transient_count(&f->tpm), 2);
    reopen(f);
    assert_int_equal(swtpm_transient_count(&f->tpm), 0);
}

/* ---- NV ------------------------------------------------------------------ */

static void nv_roundtrip_sizes(void **state) {
    struct fixture *f = *state;
    static const size_t sizes[] = {1, 768, 1024, 2048};
    struct tpm_info info;

    tpm_get_info(f->ctx, &info);
    assert_true(info.nv_buffer_max >= 512);
    assert_true(info.nv_index_max >= 2048);
    assert_true(info.is_software);
    assert_string_equal(info.manufacturer, "IBM");

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t data[2048], *back = NULL;
        size_t len = 0;
        struct tpm_nv_public pub;
        unsigned long before;

        for (size_t j = 0; j < sizes[i]; j++)
            data[j] = (uint8_t)(j * 7 + i);
        assert_int_equal(tpm_nv_define(f->ctx, IDX, sizes[i]), 0);
        assert_int_equal(tpm_nv_public(f->ctx, IDX, &pub), 0);
        assert_int_equal(pub.size, sizes[i]);
        assert_false(pub.written);
        assert_true(pub.no_da);
        assert_int_equal(pub.name_len, 34);
        assert_int_equal(tpm_nv_check(f->ctx, &pub, TPM_NV_ORDINARY, sizes[i]), 0);
        assert_int_equal(tpm_nv_read(f->ctx, IDX, &back, &len), -ENODATA);
        assert_int_equal(tpm_nv_write(f->ctx, IDX, data, sizes[i]), 0);
        before = tpm_command_count(f->ctx);
        assert_int_equal(tpm_nv_read(f->ctx, IDX, &back, &len), 0);
        /* one NV_ReadPublic plus one NV_Read per NV_BUFFER_MAX chunk */
        assert_int_equal(tpm_command_count(f->ctx) - before,
                         1 + (sizes[i] + info.nv_buffer_max - 1) / info.nv_buffer_max);
        assert_int_equal(len, sizes[i]);
        assert_memory_equal(back, data, sizes[i]);
        free(back);
        assert_int_equal(tpm_nv_undefine(f->ctx, IDX), 0);
        assert_int_equal(tpm_nv_public(f->ctx, IDX, &pub), -ENOENT);
    }
}

static void nv_read_survives_power_loss(void **state) {
    struct fixture *f = *state;
    uint8_t *back = NULL;
    size_t len;

    assert_int_equal(tpm_nv_define(f->ctx, IDX, 16), 0);
    assert_int_equal(tpm_nv_write(f->ctx, IDX, "sixteen bytes!!!", 16), 0);
    tpm_close(f->ctx);
    f->ctx = NULL;
    assert_int_equal(swtpm_ctl(&f->tpm, "poweroff", NULL), 0);
    assert_int_equal(swtpm_ctl(&f->tpm, "start", NULL), 0);
    reopen(f);
    assert_int_equal(tpm_nv_read(f->ctx, IDX, &back, &len), 0);
    assert_int_equal(len, 16);
    assert_memory_equal(back, "sixteen bytes!!!", 16);
    free(back);
}

static uint64_t counter(struct fixture *f, uint32_t idx) {
    uint64_t v = 0;
    int r = tpm_counter_read(f->ctx, idx, &v);
    if (r < 0)
        fprintf(stderr, "tpm_counter_read: %s\n", tpm_last_error(f->ctx));
    assert_int_equal(r, 0);
    return v;
}

static void counter_never_goes_down(void **state) {
    struct fixture *f = *state;
    uint64_t v0, v;
    struct tpm_nv_public pub;

    assert_int_equal(tpm_counter_define(f->ctx, IDX + 1), 0);
    assert_int_equal(tpm_nv_public(f->ctx, IDX + 1, &pub), 0);
    assert_int_equal(tpm_nv_check(f->ctx, &pub, TPM_NV_COUNTER, 0), 0);
    v0 = counter(f, IDX + 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tpm_counter_increment(f->ctx, IDX + 1), 0);
    v = counter(f, IDX + 1);
    assert_int_equal(v, v0 + 5);

    tpm_close(f->ctx);
    f->ctx = NULL;
    assert_int_equal(swtpm_ctl(&f->tpm, "reboot", NULL), 0);
    reopen(f);
    assert_int_equal(counter(f, IDX + 1), v);

    assert_int_equal(tpm_counter_increment(f->ctx, IDX + 1), 0);
    tpm_close(f->ctx);
    f->ctx = NULL;
    assert_int_equal(swtpm_ctl(&f->tpm, "poweroff", NULL), 0);
    assert_int_equal(swtpm_ctl(&f->tpm, "start", NULL), 0);
    reopen(f);
    v = counter(f, IDX + 1);
    assert_true(v >= v0 + 6);

    /* Undefine and define again: it starts above anything it ever held. */
    assert_int_equal(tpm_nv_undefine(f->ctx, IDX + 1), 0);
    assert_int_equal(tpm_counter_define(f->ctx, IDX + 1), 0);
    assert_true(counter(f, IDX + 1) > v);
}

static void clock_reads_and_flags_power_loss(void **state) {
    struct fixture *f = *state;
    struct tpm_clock c1, c2;

    assert_int_equal(tpm_read_clock(f->ctx, &c1), 0);
    tpm_close(f->ctx);
    f->ctx = NULL;
    assert_int_equal(swtpm_ctl(&f->tpm, "poweroff", NULL), 0);
    assert_int_equal(swtpm_ctl(&f->tpm, "start", NULL), 0);
    reopen(f);
    assert_int_equal(tpm_read_clock(f->ctx, &c2), 0);
    assert_false(c2.safe);
    assert_true(c2.reset_count > c1.reset_count);
}

/* ---- errors -------------------------------------------------------------- */

static void error_no_tpm(void **state) {
    struct tpm_ctx *ctx = NULL;
    char err[256];
    char tcti[300];

    snprintf(tcti, sizeof(tcti), "swtpm:path=/tmp/tpmlic-no-such-dir-%d/tpm.sock", getpid());
    assert_int_equal(tpm_open(tcti, 0, &ctx, err, sizeof(err)), -ENODEV);
    assert_null(ctx);
    assert_non_null(strstr(err, "no TPM at 'swtpm:path=/tmp/tpmlic-no-such-dir-"));
    assert_int_equal(tpm_open(NULL, 0, &ctx, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "explicit TCTI"));
    assert_int_equal(tpm_open("", 0, &ctx, err, sizeof(err)), -EINVAL);
}

static void error_tpm_lost_while_open(void **state) {
    struct fixture *f = *state;
    struct tpm_clock c;

    assert_int_equal(swtpm_ctl(&f->tpm, "poweroff", NULL), 0);
    assert_int_equal(tpm_read_clock(f->ctx, &c), -ENODEV);
    assert_non_null(strstr(tpm_last_error(f->ctx), "TPM2_ReadClock: no TPM answering"));
}

static void error_not_started(void **state) {
    struct fixture *f = *state;
    struct tpm_ctx *ctx = NULL;
    char err[256];

    tpm_close(f->ctx);
    f->ctx = NULL;
    /* swtpm restarted, no TPM2_Startup sent, and we are told not to send it */
    assert_int_equal(swtpm_ctl(&f->tpm, "stop", NULL), 0);
    assert_int_equal(swtpm_ctl(&f->tpm, "start", "--no-startup"), 0);
    assert_int_equal(tpm_open(f->tpm.tcti, TPM_OPEN_NO_STARTUP, &ctx, err, sizeof(err)), -ENOTCONN);
    assert_non_null(strstr(err, "TPM not started"));
    /* and by default we start it ourselves */
    assert_int_equal(tpm_open(f->tpm.tcti, 0, &f->ctx, err, sizeof(err)), 0);
}

static void error_index_missing_and_wrong_type(void **state) {
    struct fixture *f = *state;
    struct tpm_nv_public pub;
    uint8_t *data = NULL;
    size_t len;
    uint64_t v;

    assert_int_equal(tpm_nv_read(f->ctx, IDX + 9, &data, &len), -ENOENT);
    assert_string_equal(tpm_last_error(f->ctx), "NV index 0x01a0c009 is not defined");
    assert_int_equal(tpm_counter_read(f->ctx, IDX + 9, &v), -ENOENT);

    assert_int_equal(tpm_counter_define(f->ctx, IDX + 1), 0);
    assert_int_equal(tpm_nv_read(f->ctx, IDX + 1, &data, &len), -EMEDIUMTYPE);
    assert_non_null(strstr(tpm_last_error(f->ctx), "not an ordinary index"));
    assert_int_equal(tpm_nv_write(f->ctx, IDX + 1, "x", 1), -EMEDIUMTYPE);
    assert_non_null(strstr(tpm_last_error(f->ctx), "is a counter, expected an ordinary index"));

    assert_int_equal(tpm_nv_define(f->ctx, IDX, 64), 0);
    assert_int_equal(tpm_counter_read(f->ctx, IDX, &v), -EMEDIUMTYPE);
    assert_non_null(strstr(tpm_last_error(f->ctx), "is not a counter"));
    assert_int_equal(tpm_counter_increment(f->ctx, IDX), -EMEDIUMTYPE);
    assert_int_equal(tpm_nv_public(f->ctx, IDX, &pub), 0);
    assert_int_equal(tpm_nv_check(f->ctx, &pub, TPM_NV_ORDINARY, 128), -EMEDIUMTYPE);
    assert_non_null(strstr(tpm_last_error(f->ctx), "holds 64 bytes, expected 128"));
    assert_int_equal(tpm_nv_write(f->ctx, IDX, "0123456789", 65), -EFBIG);
    assert_int_equal(tpm_nv_define(f->ctx, IDX, 64), -EEXIST);
    assert_int_equal(tpm_nv_define(f->ctx, IDX + 2, 1u << 20), -EFBIG);

    /* an index someone else defined without noDA, writable with the owner's
     * authorization: not one the agent may use as it is */
    assert_int_equal(swtpm_sh(&f->tpm, NULL, 0,
                              "tpm2_nvdefine 0x01a0c005 -C o -s 32 "
                              "-a ownerread\\|ownerwrite\\|authread\\|authwrite >/dev/null"),
                     0);
    assert_int_equal(tpm_nv_public(f->ctx, IDX + 5, &pub), 0);
    assert_int_equal(tpm_nv_check(f->ctx, &pub, TPM_NV_ORDINARY, 32), -EPERM);
    assert_non_null(strstr(tpm_last_error(f->ctx), "with its own auth value only"));
}

static void error_nv_space_exhausted(void **state) {
    struct fixture *f = *state;
    int r = 0, i;

    for (i = 0; i < 512; i++) {
        r = tpm_nv_define(f->ctx, IDX + 16 + (uint32_t)i, 2048);
        if (r < 0)
            break;
    }
    assert_true(i > 0);
    assert_int_equal(r, -ENOSPC);
    assert_non_null(strstr(tpm_last_error(f->ctx), "TPM NV space exhausted"));
}

static void error_lockout(void **state) {
    struct fixture *f = *state;
    uint8_t *data = NULL;
    size_t len;
    char out[2048];

    /* A DA-protected index with an empty password, then wrong passwords
     * until the TPM locks out (swtpm: 3 tries). */
    assert_int_equal(swtpm_sh(&f->tpm, out, sizeof(out),
                              "tpm2_nvdefine 0x01a0c007 -C o -s 8 "
                              "-a ownerread\\|ownerwrite\\|authread\\|authwrite >/dev/null && "
                              "printf 12345678 | tpm2_nvwrite 0x01a0c007 -C o -i - && "
                              "for i in 1 2 3 4; do tpm2_nvread 0x01a0c007 -P wrong >/dev/null "
                              "2>&1; done; true"),
                     0);
    assert_int_equal(tpm_nv_read(f->ctx, IDX + 7, &data, &len), -ENOLCK);
    assert_non_null(strstr(tpm_last_error(f->ctx), "dictionary-attack lockout"));
    /* our own noDA indices keep working in lockout */
    assert_int_equal(tpm_nv_define(f->ctx, IDX, 8), 0);
    assert_int_equal(tpm_nv_write(f->ctx, IDX, "abcdefgh", 8), 0);
    assert_int_equal(tpm_nv_read(f->ctx, IDX, &data, &len), 0);
    free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(ek_stable_across_restarts_and_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(ek_from_cert_without_persistent, setup_no_persistent,
                                        teardown),
        cmocka_unit_test_setup_teardown(ek_from_persistent_without_certs, setup_no_certs, teardown),
        cmocka_unit_test_setup_teardown(ek_created_and_persisted_when_nothing_exists, setup_bare,
                                        teardown),
        cmocka_unit_test_setup_teardown(ek_persistent_other_key_not_substituted, setup_no_certs,
                                        teardown),
        cmocka_unit_test_setup_teardown(ek_others_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(stale_transients_flushed_at_open, setup, teardown),
        cmocka_unit_test_setup_teardown(nv_roundtrip_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(nv_read_survives_power_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(counter_never_goes_down, setup, teardown),
        cmocka_unit_test_setup_teardown(clock_reads_and_flags_power_loss, setup, teardown),
        cmocka_unit_test(error_no_tpm),
        cmocka_unit_test_setup_teardown(error_tpm_lost_while_open, setup, teardown),
        cmocka_unit_test_setup_teardown(error_not_started, setup, teardown),
        cmocka_unit_test_setup_teardown(error_index_missing_and_wrong_type, setup, teardown),
        cmocka_unit_test_setup_teardown(error_nv_space_exhausted, setup, teardown),
        cmocka_unit_test_setup_teardown(error_lockout, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
