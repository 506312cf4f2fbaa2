/* libFuzzer harness for the agent's two license slots and state index
 * (agent/store.h): what the TPM's license slots and state index hold is whatever root wrote there
 * with tpm2-tools. The first two bytes split the rest into the two license
 * slots (an empty part: a slot never written); the whole input is also
 * decoded as a state record. Checked besides the sanitizers: the record
 * picked decodes alone with the sequence number and certificate reported,
 * no intact slot has a higher number, a record encoded where the next one
 * goes wins over both slots, and an encoded record decodes back. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_pick(const uint8_t *const buf[2], const size_t len[2]) {
    static uint8_t rec[STORE_LICENSE_INDEX_SIZE];
    struct store_license_pick p, again;
    const uint8_t *d, *nbuf[2];
    size_t dl, nlen[2];
    uint64_t seq, next_seq;
    int r, slot, n;

    r = store_license_pick(buf, len, &p);
    if (r != 0 && r != -EBADMSG && r != -EPROTONOSUPPORT)
        abort();
    if (r == 0 && p.slot >= 0) {
        if (store_license_decode(buf[p.slot], len[p.slot], &seq, &d, &dl) != 0 || seq != p.seq ||
            d != p.data || dl != p.len)
            abort();
        if (buf[!p.slot] && store_license_decode(buf[!p.slot], len[!p.slot], &seq, &d, &dl) == 0 &&
            seq > p.seq)
            abort();
    }
    r = store_license_next(r, &p, &slot, &next_seq);
    if (r < 0)
        return;
    /* the next record, written whole, is the one in force */
    n = store_license_encode(next_seq, "next", 4, rec);
    if (n != STORE_LICENSE_HEADER + 4)
        abort();
    nbuf[slot] = rec;
    nlen[slot] = (size_t)n;
    nbuf[!slot] = buf[!slot];
    nlen[!slot] = len[!slot];
    if (store_license_pick(nbuf, nlen, &again) != 0 || again.slot != slot ||
        again.seq != next_seq || again.len != 4 || memcmp(again.data, "next", 4) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *buf[2];
    size_t len[2], split;
    struct store_state st;
    uint8_t srec[STORE_STATE_INDEX_SIZE];

    if (store_state_decode(data, size, &st) == 0) {
        store_state_encode(&st, srec);
        if (store_state_decode(srec, sizeof(srec), &st) != 0)
            abort();
    }
    if (size < 2)
        return 0;
    split = ((size_t)data[0] << 8 | data[1]) % (size - 1);
    data += 2;
    size -= 2;
    buf[0] = split ? data : NULL;
    len[0] = split;
    buf[1] = size > split ? data + split : NULL;
    len[1] = size - split;
    check_pick(buf, len);
    return 0;
}
