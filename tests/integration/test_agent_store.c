/* The agent's NV records on a real swtpm: indices created once and checked
 * afterwards, license and state round trips across power loss, damaged and
 * foreign records refused; plus the pure record encoding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/nvlayout.h"
#include "agent/store.h"
#include "agent/tpmio.h"
#include "tests/lib/swtpm.h"
#include "tpm/tpm.h"

#define BASE AGENT_NV_BASE_DEFAULT

static void record_encoding(void **state) {
    uint8_t rec[STORE_LICENSE_INDEX_SIZE];
    const uint8_t *data;
    size_t len;
    struct store_state s = {.flags = STORE_OFFLINE_MODE,
                            .granted_secs = 3600,
                            .grace_start = 7,
                            .grace_secs = 7200,
                            .grace_seen_ms = 9,
                            .clock_anchor_ms = 11,
                            .refusal = 3,
                            .epoch = {1, 2},
                            .next_epoch = {[15] = 5}},
                       back;
    uint8_t srec[STORE_STATE_INDEX_SIZE];
    char big[STORE_LICENSE_MAX + 1];

    assert_int_equal(store_license_encode("abc.def.ghi", 11, rec), 0);
    assert_int_equal(store_license_decode(rec, sizeof(rec), &data, &len), 0);
    assert_int_equal(len, 11);
    assert_memory_equal(data, "abc.def.ghi", 11);
    rec[STORE_LICENSE_HEADER + 3] ^= 1; /* one bit of the certificate */
    assert_int_equal(store_license_decode(rec, sizeof(rec), &data, &len), -EBADMSG);
    rec[STORE_LICENSE_HEADER + 3] ^= 1;
    rec[7] = 200; /* length beyond what was written: digest fails */
    assert_int_equal(store_license_decode(rec, sizeof(rec), &data, &len), -EBADMSG);
    rec[6] = 0xff; /* length beyond the maximum */
    assert_int_equal(store_license_decode(rec, sizeof(rec), &data, &len), -EBADMSG);
    assert_int_equal(store_license_encode("abc", 3, rec), 0);
    rec[4] = 9;
    assert_int_equal(store_license_decode(rec, sizeof(rec), &data, &len), -EPROTONOSUPPORT);
    rec[0] = 'X';
    assert_int_equal(store_license_decode(rec, sizeof(rec), &data, &len), -EBADMSG);
    assert_int_equal(store_license_decode(rec, 10, &data, &len), -EBADMSG);
    memset(big, 'a', sizeof(big));
    assert_int_equal(store_license_encode(big, sizeof(big), rec), -EFBIG);
    assert_int_equal(store_license_encode(NULL, 0, rec), 0);
    assert_int_equal(store_license_decode(rec, sizeof(rec), &data, &len), 0);
    assert_int_equal(len, 0);

    store_state_encode(&s, srec);
    assert_int_equal(store_state_decode(srec, sizeof(srec), &back), 0);
    assert_int_equal(back.flags, STORE_OFFLINE_MODE);
    assert_int_equal(back.granted_secs, 3600);
    assert_int_equal(back.grace_start, 7);
    assert_int_equal(back.grace_secs, 7200);
    assert_int_equal(back.grace_seen_ms, 9);
    assert_int_equal(back.clock_anchor_ms, 11);
    assert_int_equal(back.refusal, 3);
    assert_memory_equal(back.epoch, s.epoch, STORE_EPOCH_LEN);
    assert_memory_equal(back.next_epoch, s.next_epoch, STORE_EPOCH_LEN);
    srec[1] = 'X';
    assert_int_equal(store_state_decode(srec, sizeof(srec), &back), -EBADMSG);
}

/* The store talks to the TPM through the daemon's TPM access (io); the
 * tests also use a context of their own (ctx) to do what another TPM user
 * would. */
struct fixture {
    struct swtpm tpm;
    struct tpmio *io;
    struct tpm_ctx *ctx;
    struct tpm_ek ek;
    char why[TPMIO_WHY_LEN];
};

static const uint8_t auth[32] = {7};

static int open_io(struct fixture *f) {
    char err[256];
    tpm_ek_clear(&f->ek);
    if (tpmio_open(f->tpm.tcti, &f->io, &f->ek, err, sizeof(err)) < 0)
        return -1;
    return tpmio_set_nv_auth(f->io, auth, sizeof(auth));
}

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];
    if (!f || swtpm_new(&f->tpm, NULL) < 0 ||
        tpm_open(f->tpm.tcti, 0, &f->ctx, err, sizeof(err)) < 0 || open_io(f) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    tpm_close(f->ctx);
    tpmio_free(f->io);
    tpm_ek_clear(&f->ek);
    swtpm_destroy(&f->tpm);
    free(f);
    return 0;
}

static void power_cycle(struct fixture *f) {
    char err[256];
    tpm_close(f->ctx);
    tpmio_free(f->io);
    f->ctx = NULL;
    f->io = NULL;
    assert_int_equal(swtpm_ctl(&f->tpm, "poweroff", NULL), 0);
    assert_int_equal(swtpm_ctl(&f->tpm, "start", NULL), 0);
    assert_int_equal(tpm_open(f->tpm.tcti, 0, &f->ctx, err, sizeof(err)), 0);
    assert_int_equal(open_io(f), 0);
}

static void ensure_then_roundtrip(void **state) {
    struct fixture *f = *state;
    unsigned created = 0;
    char *lic = NULL, cert[STORE_LICENSE_MAX];
    size_t len = 99;
    struct store_state s = {.flags = STORE_OFFLINE_MODE, .granted_secs = 1800000}, back;
    uint64_t counter;

    assert_int_equal(agent_store_ensure(f->io, BASE, &created, f->why), 0);
    assert_int_equal(created, 15);
    assert_int_equal(agent_store_ensure(f->io, BASE, &created, f->why), 0);
    assert_int_equal(created, 0);
    assert_int_equal(tpmio_counter_read(f->io, BASE + AGENT_NV_COUNTER, &counter, f->why), 0);

    assert_int_equal(agent_store_read_license(f->io, BASE, &lic, &len, f->why), 0);
    assert_null(lic);
    assert_int_equal(len, 0);
    assert_int_equal(agent_store_read_state(f->io, BASE, &back, f->why), 0);
    assert_int_equal(back.flags, 0);

    memset(cert, 'x', sizeof(cert)); /* the largest certificate: two NV chunks */
    assert_int_equal(agent_store_write_license(f->io, BASE, cert, sizeof(cert), f->why), 0);
    assert_int_equal(agent_store_write_state(f->io, BASE, &s, f->why), 0);
    power_cycle(f);
    assert_int_equal(agent_store_read_license(f->io, BASE, &lic, &len, f->why), 0);
    assert_int_equal(len, sizeof(cert));
    assert_memory_equal(lic, cert, sizeof(cert));
    free(lic);
    assert_int_equal(agent_store_read_state(f->io, BASE, &back, f->why), 0);
    assert_int_equal(back.granted_secs, 1800000);
    assert_int_equal(back.flags, STORE_OFFLINE_MODE);

    /* removing the license: an empty record */
    assert_int_equal(agent_store_write_license(f->io, BASE, NULL, 0, f->why), 0);
    assert_int_equal(agent_store_read_license(f->io, BASE, &lic, &len, f->why), 0);
    assert_null(lic);
}

/* A power loss between the chunks of a license write leaves a record whose
 * digest does not match: reported as damaged, never taken as a license. */
static void interrupted_write_detected(void **state) {
    struct fixture *f = *state;
    uint8_t rec[STORE_LICENSE_INDEX_SIZE];
    char cert[1400], *lic = NULL;
    size_t len;
    struct tpm_info info;

    tpm_get_info(f->ctx, &info);
    assert_int_equal(agent_store_ensure(f->io, BASE, NULL, f->why), 0);
    memset(cert, 'a', sizeof(cert));
    assert_int_equal(agent_store_write_license(f->io, BASE, cert, sizeof(cert), f->why), 0);
    memset(cert, 'b', sizeof(cert));
    assert_int_equal(store_license_encode(cert, sizeof(cert), rec), 0);
    /* only the first chunk reaches the TPM (written as the agent would) */
    assert_int_equal(tpm_set_nv_auth(f->ctx, auth, sizeof(auth)), 0);
    assert_int_equal(tpm_nv_write(f->ctx, BASE, rec, info.nv_buffer_max), 0);
    power_cycle(f);
    assert_int_equal(agent_store_read_license(f->io, BASE, &lic, &len, f->why), -EBADMSG);
}

/* Another TPM user, without the agent's auth value (a member of group tss),
 * can neither write nor increment the agent's indices, with its own empty
 * auth or the owner's (empty) authorization. */
static void others_cannot_write(void **state) {
    struct fixture *f = *state;
    uint64_t before, after;
    uint8_t junk[8] = {0};

    assert_int_equal(agent_store_ensure(f->io, BASE, NULL, f->why), 0);
    assert_int_equal(tpmio_counter_read(f->io, BASE + AGENT_NV_COUNTER, &before, f->why), 0);
    assert_int_equal(tpm_counter_increment(f->ctx, BASE + AGENT_NV_COUNTER), -EACCES);
    assert_int_equal(tpm_nv_write(f->ctx, BASE + AGENT_NV_STATE, junk, sizeof(junk)), -EACCES);
    assert_int_equal(tpm_counter_read(f->ctx, BASE + AGENT_NV_COUNTER, &after), -EACCES);
    assert_int_equal(tpmio_counter_read(f->io, BASE + AGENT_NV_COUNTER, &after, f->why), 0);
    assert_int_equal(after, before);
}

static void foreign_indices_refused(void **state) {
    struct fixture *f = *state;

    /* someone else's counter where our license index belongs */
    assert_int_equal(tpm_counter_define(f->ctx, BASE + AGENT_NV_LICENSE), 0);
    assert_int_equal(agent_store_ensure(f->io, BASE, NULL, f->why), -EMEDIUMTYPE);
    assert_non_null(strstr(f->why, "is a counter, expected an ordinary index"));
    assert_int_equal(tpm_nv_undefine(f->ctx, BASE + AGENT_NV_LICENSE), 0);
    /* an ordinary index of the wrong size */
    assert_int_equal(tpm_nv_define(f->ctx, BASE + AGENT_NV_STATE, 32), 0);
    assert_int_equal(agent_store_ensure(f->io, BASE, NULL, f->why), -EMEDIUMTYPE);
    assert_non_null(strstr(f->why, "holds 32 bytes, expected 128"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(record_encoding),
        cmocka_unit_test_setup_teardown(ensure_then_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(interrupted_write_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(others_cannot_write, setup, teardown),
        cmocka_unit_test_setup_teardown(foreign_indices_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
