/* libFuzzer harness for the agent's records as read back from TPM NV
 * (agent/store.h): the license record (store_license_decode) and the state
 * record (store_state_decode), which whoever can write the TPM's NV
 * (another program with the owner's authorization, a TPM swapped under the
 * agent) controls. Only the public decoders are called, so the harness does
 * not depend on the records' layout. A state record that decodes then goes
 * where the ledger sends it: grace_from_record and the grace period's
 * arithmetic at a few clock readings. Also the EK certificate that NV
 * 0x01c00002 holds (tpm_ek_key_from_cert, tpm/ek.c: whoever has platform
 * authorization writes it). The first byte picks the decoder (modulo 3: 0
 * license, 1 state, 2 EK certificate). Checked besides the sanitizers: a
 * license that decodes lies within the buffer; a state record that decodes
 * encodes back to a record that decodes to the same state; a grace period
 * read from NV has the length of one of its two classes and is never
 * longer than that; an EK certificate's key is a 2048-bit modulus and a
 * 32-bit exponent. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/grace.h"
#include "agent/store.h"
#include "tpm/tpm-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void license(const uint8_t *p, size_t n) {
    const uint8_t *d = NULL;
    size_t len = 0;
    uint64_t seq;
    volatile uint8_t sum = 0;

    /* one slot alone; fuzz_agent_slots reads the two together */
    if (store_license_decode(p, n, &seq, &d, &len) < 0)
        return;
    if (len && (!d || d < p || d + len > p + n))
        abort();
    for (size_t i = 0; i < len; i++) /* every byte of it is readable */
        sum ^= d[i];
    (void)sum;
}

static bool same_state(const struct store_state *a, const struct store_state *b) {
    return a->flags == b->flags && a->granted_secs == b->granted_secs &&
           a->last_success == b->last_success && a->grace_start == b->grace_start &&
           a->grace_secs == b->grace_secs && a->grace_seen_ms == b->grace_seen_ms &&
           a->clock_anchor_ms == b->clock_anchor_ms && a->refusal == b->refusal &&
           !memcmp(a->epoch, b->epoch, sizeof(a->epoch)) &&
           !memcmp(a->next_epoch, b->next_epoch, sizeof(a->next_epoch)) &&
           a->grace_ended == b->grace_ended;
}

static void state(const uint8_t *p, size_t n, uint8_t clocks) {
    static const time_t nows[] = {0, 1, 1767225600, 4102444800, (time_t)INT32_MAX * 4};
    static const uint64_t tpms[] = {0, 1, 86400000, UINT64_MAX / 2, UINT64_MAX};
    uint8_t rec[STORE_STATE_INDEX_SIZE];
    struct store_state s, again;
    time_t now = nows[clocks % 5];
    uint64_t tpm_ms = tpms[(clocks / 5) % 5];

    if (store_state_decode(p, n, &s) < 0)
        return;
    store_state_encode(&s, rec);
    if (store_state_decode(rec, sizeof(rec), &again) < 0 || !same_state(&s, &again))
        abort();
    grace_from_record(&s);
    if (s.grace_start && s.grace_secs != GRACE_SHORT_SECS && s.grace_secs != GRACE_LONG_SECS)
        abort();
    (void)grace_observe(&s, now, tpm_ms, clocks & 0x80);
    if (grace_left_ms(&s) > (uint64_t)GRACE_LONG_SECS * 1000)
        abort();
    if (grace_over(&s) && grace_left_ms(&s))
        abort();
    (void)grace_end(&s, now);
    (void)grace_observe(&s, now + 60, tpm_ms + 60000, true);
    (void)grace_end(&s, now + 60);
}

static void ek_cert(const uint8_t *p, size_t n) {
    struct tpm_ctx ctx = {0};
    struct tpm_ek ek = {0};
    int r = tpm_ek_key_from_cert(&ctx, p, n, &ek);

    if (r == 0 && (!(ek.modulus[0] & 0x80) || ek.spki_der || ek.cert_der))
        abort();
    if (r < 0 && (r != -EPROTO && r != -EMEDIUMTYPE))
        abort();
    if (r < 0 && strnlen(ctx.error, sizeof(ctx.error)) >= sizeof(ctx.error))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2 || size > 4096)
        return 0;
    /* exact-size copies: a decoder that reads past what the TPM gave shows */
    uint8_t *p = malloc(size - 2 ? size - 2 : 1);
    if (!p)
        return 0;
    memcpy(p, data + 2, size - 2);
    switch (data[0] % 3) {
    case 0:
        license(p, size - 2);
        break;
    case 1:
        state(p, size - 2, data[1]);
        break;
    default:
        ek_cert(p, size - 2);
    }
    free(p);
    return 0;
}
