/* The agent's NV records on a real swtpm: indices created once and checked
 * afterwards, license and state round trips across power loss, a torn
 * license write that leaves the record in force, the move from the
 * one-slot layout, damaged and foreign records refused; plus the pure
 * record encoding and the choice between the two license slots. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "agent/nvlayout.h"
#include "agent/store.h"
#include "agent/tpmio.h"
#include "common/macro.h"
#include "tests/lib/swtpm.h"
#include "tpm/tpm.h"

#define BASE AGENT_NV_BASE_DEFAULT

/* A version 1 record, as the one-slot layout wrote it. */
static size_t v1_record(const void *data, size_t len, uint8_t out[STORE_LICENSE_V1_INDEX_SIZE]) {
    memset(out, 0, STORE_LICENSE_V1_INDEX_SIZE);
    memcpy(out, "TLIC", 4);
    out[4] = 1;
    out[6] = (uint8_t)(len >> 8);
    out[7] = (uint8_t)len;
    SHA256(data, len, out + 8);
    memcpy(out + STORE_LICENSE_V1_HEADER, data, len);
    return STORE_LICENSE_V1_HEADER + len;
}

static void record_encoding(void **state) {
    uint8_t rec[STORE_LICENSE_INDEX_SIZE], v1[STORE_LICENSE_V1_INDEX_SIZE];
    const uint8_t *data;
    uint64_t seq;
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

    (void)state;
    assert_int_equal(store_license_encode(0x0102030405060708ull, "abc.def.ghi", 11, rec),
                     STORE_LICENSE_HEADER + 11);
    assert_int_equal(store_license_decode(rec, sizeof(rec), &seq, &data, &len), 0);
    assert_int_equal(seq, 0x0102030405060708ull);
    assert_int_equal(len, 11);
    assert_memory_equal(data, "abc.def.ghi", 11);
    /* only the bytes in use are written: they decode alone */
    assert_int_equal(store_license_decode(rec, STORE_LICENSE_HEADER + 11, &seq, &data, &len), 0);
    assert_int_equal(store_license_decode(rec, STORE_LICENSE_HEADER + 10, &seq, &data, &len),
                     -EBADMSG);
    rec[STORE_LICENSE_HEADER + 3] ^= 1; /* one bit of the certificate */
    assert_int_equal(store_license_decode(rec, sizeof(rec), &seq, &data, &len), -EBADMSG);
    rec[STORE_LICENSE_HEADER + 3] ^= 1;
    rec[15] ^= 1; /* one bit of the sequence number */
    assert_int_equal(store_license_decode(rec, sizeof(rec), &seq, &data, &len), -EBADMSG);
    rec[15] ^= 1;
    rec[7] = 200; /* length beyond what was written: digest fails */
    assert_int_equal(store_license_decode(rec, sizeof(rec), &seq, &data, &len), -EBADMSG);
    rec[6] = 0xff; /* length beyond the maximum */
    assert_int_equal(store_license_decode(rec, sizeof(rec), &seq, &data, &len), -EBADMSG);
    assert_int_equal(store_license_encode(1, "abc", 3, rec), STORE_LICENSE_HEADER + 3);
    rec[4] = 9;
    assert_int_equal(store_license_decode(rec, sizeof(rec), &seq, &data, &len), -EPROTONOSUPPORT);
    rec[0] = 'X';
    assert_int_equal(store_license_decode(rec, sizeof(rec), &seq, &data, &len), -EBADMSG);
    assert_int_equal(store_license_decode(rec, 10, &seq, &data, &len), -EBADMSG);
    memset(big, 'a', sizeof(big));
    assert_int_equal(store_license_encode(1, big, sizeof(big), rec), -EFBIG);
    assert_int_equal(store_license_encode(5, big, STORE_LICENSE_MAX, rec),
                     STORE_LICENSE_INDEX_SIZE);
    assert_int_equal(store_license_decode(rec, sizeof(rec), &seq, &data, &len), 0);
    assert_int_equal(len, STORE_LICENSE_MAX);
    assert_int_equal(store_license_encode(2, NULL, 0, rec), STORE_LICENSE_HEADER);
    assert_int_equal(store_license_decode(rec, sizeof(rec), &seq, &data, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(seq, 2);

    /* the one-slot layout's record: sequence number 0 */
    v1_record("abc", 3, v1);
    seq = 9;
    assert_int_equal(store_license_decode(v1, sizeof(v1), &seq, &data, &len), 0);
    assert_int_equal(seq, 0);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "abc", 3);
    v1[STORE_LICENSE_V1_HEADER] ^= 1;
    assert_int_equal(store_license_decode(v1, sizeof(v1), &seq, &data, &len), -EBADMSG);

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

/* pick over two slot buffers (NULL: never written); returns its result */
static int pick2(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                 struct store_license_pick *ret) {
    const uint8_t *buf[2] = {a, b};
    size_t len[2] = {alen, blen};
    return store_license_pick(buf, len, ret);
}

static void slot_choice(void **state) {
    uint8_t a[STORE_LICENSE_INDEX_SIZE], b[STORE_LICENSE_INDEX_SIZE];
    struct store_license_pick p;
    uint64_t seq;
    int slot;

    (void)state;
    /* nothing written yet: the first record goes to slot 0 */
    assert_int_equal(pick2(NULL, 0, NULL, 0, &p), 0);
    assert_int_equal(p.slot, -1);
    assert_int_equal(p.len, 0);
    assert_int_equal(store_license_next(0, &p, &slot, &seq), 0);
    assert_int_equal(slot, 0);
    assert_int_equal(seq, 1);

    /* one record: the next one goes to the other slot */
    store_license_encode(1, "one", 3, a);
    assert_int_equal(pick2(a, sizeof(a), NULL, 0, &p), 0);
    assert_int_equal(p.slot, 0);
    assert_int_equal(p.seq, 1);
    assert_memory_equal(p.data, "one", 3);
    assert_int_equal(store_license_next(0, &p, &slot, &seq), 0);
    assert_int_equal(slot, 1);
    assert_int_equal(seq, 2);

    /* the highest sequence number wins, in either slot */
    store_license_encode(2, "two", 3, b);
    assert_int_equal(pick2(a, sizeof(a), b, sizeof(b), &p), 0);
    assert_int_equal(p.slot, 1);
    assert_memory_equal(p.data, "two", 3);
    assert_int_equal(store_license_next(0, &p, &slot, &seq), 0);
    assert_int_equal(slot, 0);
    assert_int_equal(seq, 3);
    store_license_encode(3, "three", 5, a);
    assert_int_equal(pick2(a, sizeof(a), b, sizeof(b), &p), 0);
    assert_int_equal(p.slot, 0);
    assert_memory_equal(p.data, "three", 5);

    /* a removal is a record like any other, and wins as well */
    store_license_encode(4, NULL, 0, b);
    assert_int_equal(pick2(a, sizeof(a), b, sizeof(b), &p), 0);
    assert_int_equal(p.slot, 1);
    assert_int_equal(p.len, 0);

    /* a damaged slot is ignored while the other is valid */
    b[STORE_LICENSE_HEADER - 1] ^= 1;
    assert_int_equal(pick2(a, sizeof(a), b, sizeof(b), &p), 0);
    assert_int_equal(p.slot, 0);
    assert_int_equal(p.seq, 3);
    assert_int_equal(pick2(NULL, 0, b, sizeof(b), &p), -EBADMSG);
    /* both damaged: the error, and the next record goes to slot 0 */
    a[STORE_LICENSE_HEADER] ^= 1;
    assert_int_equal(pick2(a, sizeof(a), b, sizeof(b), &p), -EBADMSG);
    assert_int_equal(store_license_next(-EBADMSG, &p, &slot, &seq), 0);
    assert_int_equal(slot, 0);
    assert_int_equal(seq, 1);

    /* a tie (only an edit makes one): slot 0 */
    store_license_encode(7, "a", 1, a);
    store_license_encode(7, "b", 1, b);
    assert_int_equal(pick2(a, sizeof(a), b, sizeof(b), &p), 0);
    assert_int_equal(p.slot, 0);

    /* the one-slot layout's record is older than any of this layout */
    v1_record("old", 3, a);
    assert_int_equal(pick2(a, sizeof(a), NULL, 0, &p), 0);
    assert_int_equal(p.seq, 0);
    assert_int_equal(store_license_next(0, &p, &slot, &seq), 0);
    assert_int_equal(slot, 1);
    assert_int_equal(seq, 1);
    store_license_encode(1, "new", 3, b);
    assert_int_equal(pick2(a, sizeof(a), b, sizeof(b), &p), 0);
    assert_memory_equal(p.data, "new", 3);

    /* a version this agent does not know: nothing is taken over it */
    store_license_encode(1, "x", 1, b);
    b[4] = 3;
    assert_int_equal(pick2(a, sizeof(a), b, sizeof(b), &p), -EPROTONOSUPPORT);
    assert_int_equal(store_license_next(-EPROTONOSUPPORT, &p, &slot, &seq), -EPROTONOSUPPORT);

    /* a sequence number at its maximum: no record could follow it */
    store_license_encode(UINT64_MAX, "x", 1, a);
    assert_int_equal(pick2(a, sizeof(a), NULL, 0, &p), 0);
    assert_int_equal(store_license_next(0, &p, &slot, &seq), -EOVERFLOW);
}

/* Every way a write can be torn, without a TPM: the new record's first k
 * chunks over what the target slot held before (never written, an older
 * record, or a damaged one), for every k and both chunk sizes chips use.
 * What is in force afterwards is the old record or the new one. */
static void torn_writes_leave_old_or_new(void **state) {
    static const size_t chunks[] = {768, 1024};
    static const size_t sizes[] = {0, 3, 700, 976, 977, 1300, STORE_LICENSE_MAX};
    uint8_t cur[STORE_LICENSE_INDEX_SIZE], before[STORE_LICENSE_INDEX_SIZE],
        rec[STORE_LICENSE_INDEX_SIZE], slot_buf[STORE_LICENSE_INDEX_SIZE];
    char olddata[STORE_LICENSE_MAX], newdata[STORE_LICENSE_MAX];
    unsigned cases = 0;

    (void)state;
    memset(olddata, 'o', sizeof(olddata));
    memset(newdata, 'n', sizeof(newdata));
    for (size_t c = 0; c < ARRAY_SIZE(chunks); c++)
        for (size_t os = 0; os < ARRAY_SIZE(sizes); os++)
            for (size_t ns = 0; ns < ARRAY_SIZE(sizes); ns++)
                for (int prior = 0; prior < 4; prior++)
                    for (int cur_slot = 0; cur_slot < 2; cur_slot++) {
                        struct store_license_pick p;
                        uint64_t seq;
                        int slot, n;
                        const uint8_t *buf[2];
                        size_t len[2];

                        store_license_encode(41, olddata, sizes[os], cur);
                        /* what the target slot held: never written, an older
                         * record, a damaged one, or an older record with the
                         * new certificate (applied again: a torn write may
                         * then leave a whole new record early) */
                        store_license_encode(40, prior == 3 ? newdata : olddata, sizes[ns], before);
                        if (prior == 2)
                            before[20] ^= 1;
                        buf[cur_slot] = cur;
                        len[cur_slot] = sizeof(cur);
                        buf[!cur_slot] = prior == 0 ? NULL : before;
                        len[!cur_slot] = sizeof(before);
                        assert_int_equal(store_license_pick(buf, len, &p), 0);
                        assert_int_equal(p.slot, cur_slot);
                        assert_int_equal(store_license_next(0, &p, &slot, &seq), 0);
                        assert_int_equal(slot, !cur_slot);
                        assert_int_equal(seq, 42);
                        n = store_license_encode(seq, newdata, sizes[ns], rec);
                        for (size_t k = 0; k * chunks[c] <= (size_t)n + chunks[c] - 1; k++) {
                            size_t w = k * chunks[c] < (size_t)n ? k * chunks[c] : (size_t)n;
                            if (prior == 0)
                                memset(slot_buf, 0xff, sizeof(slot_buf));
                            else
                                memcpy(slot_buf, before, sizeof(slot_buf));
                            memcpy(slot_buf, rec, w);
                            buf[!cur_slot] = prior == 0 && k == 0 ? NULL : slot_buf;
                            assert_int_equal(store_license_pick(buf, len, &p), 0);
                            /* all written: the new one; nothing: the old one;
                             * in between: one of them, whole */
                            if (w == (size_t)n || (p.seq == 42 && k > 0)) {
                                assert_int_equal(p.seq, 42);
                                assert_int_equal(p.len, sizes[ns]);
                                assert_memory_equal(p.data, newdata, sizes[ns]);
                            } else {
                                assert_int_equal(p.seq, 41);
                                assert_int_equal(p.len, sizes[os]);
                                assert_memory_equal(p.data, olddata, sizes[os]);
                            }
                            cases++;
                        }
                    }
    assert_true(cases > 500);
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

/* The sequence number of the record in one slot as the TPM holds it, read
 * with the agent's auth value (as root can); -1 when not a valid record. */
static int64_t slot_seq(struct fixture *f, enum agent_nv_slot slot) {
    uint8_t *buf = NULL;
    const uint8_t *data;
    uint64_t seq;
    size_t len, dlen;
    int r;

    assert_int_equal(tpm_set_nv_auth(f->ctx, auth, sizeof(auth)), 0);
    if (tpm_nv_read(f->ctx, agent_nv_index(BASE, slot), &buf, &len) < 0)
        return -1;
    r = store_license_decode(buf, len, &seq, &data, &dlen);
    free(buf);
    return r < 0 ? -1 : (int64_t)seq;
}

static void ensure_then_roundtrip(void **state) {
    struct fixture *f = *state;
    unsigned created = 0;
    char *lic = NULL, cert[STORE_LICENSE_MAX];
    size_t len = 99;
    struct store_state s = {.flags = STORE_OFFLINE_MODE, .granted_secs = 1800000}, back;
    uint64_t counter;
    struct tpm_nv_public pub;

    assert_int_equal(agent_store_ensure(f->io, BASE, &created, f->why), 0);
    assert_int_equal(created, 31);
    assert_int_equal(agent_store_ensure(f->io, BASE, &created, f->why), 0);
    assert_int_equal(created, 0);
    assert_int_equal(tpmio_counter_read(f->io, BASE + AGENT_NV_COUNTER, &counter, f->why), 0);
    /* both license slots: the same size and attributes */
    for (int i = 0; i < 2; i++) {
        uint32_t index = BASE + (i ? AGENT_NV_LICENSE_B : AGENT_NV_LICENSE);
        assert_int_equal(tpm_nv_public(f->ctx, index, &pub), 0);
        assert_int_equal(pub.size, STORE_LICENSE_INDEX_SIZE);
        assert_int_equal(tpm_nv_check(f->ctx, &pub, TPM_NV_ORDINARY, STORE_LICENSE_INDEX_SIZE), 0);
    }

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

    /* each write goes to the other slot, with the next sequence number */
    assert_int_equal(slot_seq(f, AGENT_NV_LICENSE), 1);
    assert_int_equal(slot_seq(f, AGENT_NV_LICENSE_B), -1);
    memset(cert, 'y', sizeof(cert));
    assert_int_equal(agent_store_write_license(f->io, BASE, cert, 1000, f->why), 0);
    assert_int_equal(slot_seq(f, AGENT_NV_LICENSE), 1);
    assert_int_equal(slot_seq(f, AGENT_NV_LICENSE_B), 2);
    assert_int_equal(agent_store_read_license(f->io, BASE, &lic, &len, f->why), 0);
    assert_int_equal(len, 1000);
    assert_memory_equal(lic, cert, 1000);
    free(lic);

    /* removing the license: an empty record, in the other slot again */
    assert_int_equal(agent_store_write_license(f->io, BASE, NULL, 0, f->why), 0);
    assert_int_equal(slot_seq(f, AGENT_NV_LICENSE), 3);
    assert_int_equal(agent_store_read_license(f->io, BASE, &lic, &len, f->why), 0);
    assert_null(lic);
    assert_int_equal(len, 0);
    power_cycle(f);
    assert_int_equal(agent_store_read_license(f->io, BASE, &lic, &len, f->why), 0);
    assert_null(lic);
    assert_int_equal(agent_store_write_license(f->io, BASE, "abc", 3, f->why), 0);
    assert_int_equal(slot_seq(f, AGENT_NV_LICENSE_B), 4);
}

/* A power loss between the chunks of a license write: the new record is
 * damaged, and the one in force before stays in force; written again, the
 * new one takes its place. Only when both slots are damaged (the TPM's
 * contents edited, or a torn write over a damaged record) is the record
 * reported as damaged. */
static void interrupted_write_keeps_old(void **state) {
    struct fixture *f = *state;
    uint8_t rec[STORE_LICENSE_INDEX_SIZE];
    char cert[1400], *lic = NULL;
    size_t len;
    struct tpm_info info;

    tpm_get_info(f->ctx, &info);
    assert_true(STORE_LICENSE_HEADER + sizeof(cert) > info.nv_buffer_max);
    assert_int_equal(agent_store_ensure(f->io, BASE, NULL, f->why), 0);
    memset(cert, 'a', sizeof(cert));
    assert_int_equal(agent_store_write_license(f->io, BASE, cert, sizeof(cert), f->why), 0);
    memset(cert, 'b', sizeof(cert));
    assert_int_equal(store_license_encode(2, cert, sizeof(cert), rec),
                     STORE_LICENSE_HEADER + sizeof(cert));
    /* only the first chunk reaches the TPM, in the slot the agent writes */
    assert_int_equal(tpm_set_nv_auth(f->ctx, auth, sizeof(auth)), 0);
    assert_int_equal(tpm_nv_write(f->ctx, BASE + AGENT_NV_LICENSE_B, rec, info.nv_buffer_max), 0);
    power_cycle(f);
    assert_int_equal(agent_store_read_license(f->io, BASE, &lic, &len, f->why), 0);
    assert_int_equal(len, sizeof(cert));
    assert_memory_equal(lic, (char[sizeof(cert)]){[0 ... sizeof(cert) - 1] = 'a'}, sizeof(cert));
    free(lic);
    /* the next write goes over the damaged slot and wins */
    assert_int_equal(agent_store_write_license(f->io, BASE, cert, sizeof(cert), f->why), 0);
    assert_int_equal(slot_seq(f, AGENT_NV_LICENSE_B), 2);
    assert_int_equal(agent_store_read_license(f->io, BASE, &lic, &len, f->why), 0);
    assert_memory_equal(lic, cert, sizeof(cert));
    free(lic);
    /* both slots torn */
    assert_int_equal(store_license_encode(3, "zzzz", 4, rec), STORE_LICENSE_HEADER + 4);
    rec[STORE_LICENSE_HEADER] ^= 1;
    assert_int_equal(tpm_set_nv_auth(f->ctx, auth, sizeof(auth)), 0);
    assert_int_equal(tpm_nv_write(f->ctx, BASE + AGENT_NV_LICENSE, rec, STORE_LICENSE_HEADER + 4),
                     0);
    assert_int_equal(tpm_nv_write(f->ctx, BASE + AGENT_NV_LICENSE_B, rec, STORE_LICENSE_HEADER + 4),
                     0);
    assert_int_equal(agent_store_read_license(f->io, BASE, &lic, &len, f->why), -EBADMSG);
    assert_non_null(strstr(f->why, "neither license slot holds an intact record"));
    /* a license applied then: it is the only valid record */
    assert_int_equal(agent_store_write_license(f->io, BASE, "new", 3, f->why), 0);
    assert_int_equal(agent_store_read_license(f->io, BASE, &lic, &len, f->why), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(lic, "new", 3);
    free(lic);
}

/* Root with the auth value puts the largest sequence number in a slot:
 * no write could follow it, so none is made, and what is in force stays. */
static void sequence_at_its_end(void **state) {
    struct fixture *f = *state;
    uint8_t rec[STORE_LICENSE_INDEX_SIZE];
    char *lic = NULL;
    size_t len;
    int n;

    assert_int_equal(agent_store_ensure(f->io, BASE, NULL, f->why), 0);
    n = store_license_encode(UINT64_MAX, "last", 4, rec);
    assert_int_equal(tpm_set_nv_auth(f->ctx, auth, sizeof(auth)), 0);
    assert_int_equal(tpm_nv_write(f->ctx, BASE + AGENT_NV_LICENSE, rec, (size_t)n), 0);
    assert_int_equal(agent_store_write_license(f->io, BASE, "next", 4, f->why), -EOVERFLOW);
    assert_non_null(strstr(f->why, "largest sequence number"));
    assert_int_equal(slot_seq(f, AGENT_NV_LICENSE_B), -1);
    assert_int_equal(agent_store_read_license(f->io, BASE, &lic, &len, f->why), 0);
    assert_memory_equal(lic, "last", 4);
    free(lic);
}

/* The one-slot layout (tpmlic before the second slot): base+0 at 1576
 * bytes holding a version 1 record. ensure moves it and the license is
 * kept; the first write after it goes to base+0, defined anew. */
static void upgrade_from_one_slot(void **state) {
    struct fixture *f = *state;
    uint8_t v1[STORE_LICENSE_V1_INDEX_SIZE];
    char cert[STORE_LICENSE_MAX], *lic = NULL;
    struct tpm_nv_public pub;
    unsigned created;
    size_t len, n;

    memset(cert, 'o', sizeof(cert));
    n = v1_record(cert, sizeof(cert), v1);
    assert_int_equal(tpm_set_nv_auth(f->ctx, auth, sizeof(auth)), 0);
    assert_int_equal(tpm_nv_define(f->ctx, BASE + AGENT_NV_LICENSE, STORE_LICENSE_V1_INDEX_SIZE),
                     0);
    assert_int_equal(tpm_nv_write(f->ctx, BASE + AGENT_NV_LICENSE, v1, n), 0);
    assert_int_equal(tpm_counter_define(f->ctx, BASE + AGENT_NV_COUNTER), 0);
    assert_int_equal(tpm_nv_define(f->ctx, BASE + AGENT_NV_STATE, STORE_STATE_INDEX_SIZE), 0);
    assert_int_equal(tpm_counter_define(f->ctx, BASE + AGENT_NV_FLOOR), 0);

    assert_int_equal(agent_store_ensure(f->io, BASE, &created, f->why), 0);
    assert_int_equal(created, (1u << AGENT_NV_LICENSE) | (1u << AGENT_NV_LICENSE_B));
    assert_int_equal(tpm_nv_public(f->ctx, BASE + AGENT_NV_LICENSE, &pub), 0);
    assert_int_equal(pub.size, STORE_LICENSE_INDEX_SIZE);
    assert_false(pub.written);
    assert_int_equal(slot_seq(f, AGENT_NV_LICENSE_B), 0);
    assert_int_equal(agent_store_read_license(f->io, BASE, &lic, &len, f->why), 0);
    assert_int_equal(len, sizeof(cert));
    assert_memory_equal(lic, cert, sizeof(cert));
    free(lic);
    power_cycle(f);
    assert_int_equal(agent_store_ensure(f->io, BASE, &created, f->why), 0);
    assert_int_equal(created, 0);
    assert_int_equal(agent_store_write_license(f->io, BASE, "new", 3, f->why), 0);
    assert_int_equal(slot_seq(f, AGENT_NV_LICENSE), 1);
    assert_int_equal(agent_store_read_license(f->io, BASE, &lic, &len, f->why), 0);
    assert_int_equal(len, 3);
    free(lic);
}

/* A move interrupted after the copy (base+0 still at the old size, the
 * second slot holding a copy, or half of one): done again, license kept. */
static void upgrade_interrupted(void **state) {
    struct fixture *f = *state;
    uint8_t v1[STORE_LICENSE_V1_INDEX_SIZE];
    char cert[1200], *lic = NULL;
    struct tpm_info info;
    size_t len, n;

    tpm_get_info(f->ctx, &info);
    memset(cert, 'p', sizeof(cert));
    n = v1_record(cert, sizeof(cert), v1);
    assert_int_equal(tpm_set_nv_auth(f->ctx, auth, sizeof(auth)), 0);
    assert_int_equal(tpm_nv_define(f->ctx, BASE + AGENT_NV_LICENSE, STORE_LICENSE_V1_INDEX_SIZE),
                     0);
    assert_int_equal(tpm_nv_write(f->ctx, BASE + AGENT_NV_LICENSE, v1, n), 0);
    assert_int_equal(tpm_nv_define(f->ctx, BASE + AGENT_NV_LICENSE_B, STORE_LICENSE_INDEX_SIZE), 0);
    assert_int_equal(tpm_nv_write(f->ctx, BASE + AGENT_NV_LICENSE_B, v1, info.nv_buffer_max), 0);
    assert_int_equal(agent_store_ensure(f->io, BASE, NULL, f->why), 0);
    assert_int_equal(agent_store_read_license(f->io, BASE, &lic, &len, f->why), 0);
    assert_int_equal(len, sizeof(cert));
    assert_memory_equal(lic, cert, sizeof(cert));
    free(lic);

    /* a damaged record of the old layout stays damaged: not a license, and
     * not "no license" either */
    assert_int_equal(tpm_nv_undefine(f->ctx, BASE + AGENT_NV_LICENSE), 0);
    assert_int_equal(tpm_nv_undefine(f->ctx, BASE + AGENT_NV_LICENSE_B), 0);
    assert_int_equal(tpm_nv_define(f->ctx, BASE + AGENT_NV_LICENSE, STORE_LICENSE_V1_INDEX_SIZE),
                     0);
    v1[STORE_LICENSE_V1_HEADER + 5] ^= 1;
    assert_int_equal(tpm_nv_write(f->ctx, BASE + AGENT_NV_LICENSE, v1, n), 0);
    assert_int_equal(agent_store_ensure(f->io, BASE, NULL, f->why), 0);
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
    assert_int_equal(tpm_nv_write(f->ctx, BASE + AGENT_NV_LICENSE, junk, sizeof(junk)), -EACCES);
    assert_int_equal(tpm_nv_write(f->ctx, BASE + AGENT_NV_LICENSE_B, junk, sizeof(junk)), -EACCES);
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
    assert_int_equal(tpm_nv_undefine(f->ctx, BASE + AGENT_NV_STATE), 0);
    /* and where the second license slot belongs */
    assert_int_equal(tpm_nv_define(f->ctx, BASE + AGENT_NV_LICENSE_B, 64), 0);
    assert_int_equal(agent_store_ensure(f->io, BASE, NULL, f->why), -EMEDIUMTYPE);
    assert_non_null(strstr(f->why, "holds 64 bytes, expected 1584"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(record_encoding),
        cmocka_unit_test(slot_choice),
        cmocka_unit_test(torn_writes_leave_old_or_new),
        cmocka_unit_test_setup_teardown(ensure_then_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(interrupted_write_keeps_old, setup, teardown),
        cmocka_unit_test_setup_teardown(sequence_at_its_end, setup, teardown),
        cmocka_unit_test_setup_teardown(upgrade_from_one_slot, setup, teardown),
        cmocka_unit_test_setup_teardown(upgrade_interrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(others_cannot_write, setup, teardown),
        cmocka_unit_test_setup_teardown(foreign_indices_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
