/* Computer ID and match (hwid/id.h): the version-8 UUID over the three
 * component digests, and the comparison of a recorded set of digests with
 * the current one under a match policy. Pure logic plus OpenSSL SHA-256;
 * the encoding is specified in docs/computer-id.md. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/hex.h"
#include "common/macro.h"
#include "hwid/encode.h"
#include "hwid/id.h"

static const char *const component_names[HWID_COMPONENT_MAX] = {
    [HWID_EK] = "ek",
    [HWID_DMI] = "dmi",
    [HWID_NIC] = "nic",
};

static const char *const policy_names[] = {
    [HWID_POLICY_DEFAULT] = "default",
    [HWID_POLICY_ALL] = "all",
};

const char *hwid_component_name(enum hwid_component c) {
    if ((unsigned)c >= HWID_COMPONENT_MAX)
        return "?";
    return component_names[c];
}

const char *hwid_policy_name(enum hwid_policy p) {
    if ((unsigned)p >= sizeof(policy_names) / sizeof(policy_names[0]))
        return "?";
    return policy_names[p];
}

int hwid_policy_from_name(const char *s, enum hwid_policy *ret) {
    if (!s || !ret)
        return -EINVAL;
    for (unsigned i = 0; i < sizeof(policy_names) / sizeof(policy_names[0]); i++)
        if (strcmp(s, policy_names[i]) == 0) {
            *ret = (enum hwid_policy)i;
            return 0;
        }
    return -EINVAL;
}

void hwid_digest_to_hex(const uint8_t digest[HWID_DIGEST_LEN], char ret_hex[HWID_DIGEST_HEXLEN]) {
    hex_encode(digest, HWID_DIGEST_LEN, ret_hex);
}

int hwid_digest_from_hex(const char *hex, uint8_t ret_digest[HWID_DIGEST_LEN]) {
    uint8_t d[HWID_DIGEST_LEN];

    if (!ret_digest || hex_decode_exact(hex, d, sizeof(d)) < 0)
        return -EINVAL;
    memcpy(ret_digest, d, sizeof(d));
    return 0;
}

int hwid_computer_id(const struct hwid_digests *d, char ret_id[HWID_ID_STRLEN]) {
    /* domain string + NUL, then per component: presence byte and digest */
    uint8_t buf[sizeof(HWID_DOMAIN_COMPUTER_ID) + HWID_COMPONENT_MAX * (1 + HWID_DIGEST_LEN)];
    uint8_t md[HWID_DIGEST_LEN];
    size_t n = 0;
    bool any = false;

    if (!d || !ret_id)
        return -EINVAL;
    memcpy(buf, HWID_DOMAIN_COMPUTER_ID, sizeof(HWID_DOMAIN_COMPUTER_ID));
    n = sizeof(HWID_DOMAIN_COMPUTER_ID);
    for (int c = 0; c < HWID_COMPONENT_MAX; c++) {
        buf[n++] = d->present[c] ? 1 : 0;
        if (d->present[c]) {
            memcpy(buf + n, d->digest[c], HWID_DIGEST_LEN);
            n += HWID_DIGEST_LEN;
            any = true;
        }
    }
    if (!any)
        return -EINVAL;
    if (hwid_sha256(buf, n, md) < 0)
        return -EIO;

    /* RFC 9562 section 5.8: version 8 in the high nibble of octet 6, variant
     * 0b10 in the two high bits of octet 8. */
    md[6] = (uint8_t)((md[6] & 0x0f) | 0x80);
    md[8] = (uint8_t)((md[8] & 0x3f) | 0x80);
    snprintf(ret_id, HWID_ID_STRLEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", md[0], md[1],
             md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11], md[12], md[13],
             md[14], md[15]);
    return 0;
}

/* ---- match ----------------------------------------------------------------- */

enum state {
    ST_MATCH,       /* present on both sides, equal */
    ST_CHANGED,     /* present on both sides, differs */
    ST_GONE,        /* recorded, absent now */
    ST_NEW,         /* absent in the record, present now */
    ST_BOTH_ABSENT, /* absent on both sides: not compared */
};

static enum state component_state(const struct hwid_digests *r, const struct hwid_digests *c,
                                  int i) {
    if (r->present[i] && c->present[i])
        return CRYPTO_memcmp(r->digest[i], c->digest[i], HWID_DIGEST_LEN) == 0 ? ST_MATCH
                                                                               : ST_CHANGED;
    if (r->present[i])
        return ST_GONE;
    if (c->present[i])
        return ST_NEW;
    return ST_BOTH_ABSENT;
}

static const char *state_text(enum state s) {
    switch (s) {
    case ST_MATCH:
        return "matches";
    case ST_CHANGED:
        return "changed";
    case ST_GONE:
        return "absent here";
    case ST_NEW:
        return "not recorded";
    case ST_BOTH_ABSENT:
    default:
        return "absent on both";
    }
}

struct textbuf {
    char *p;
    size_t size, len;
};

static void _printf_(2, 3) tb_add(struct textbuf *t, const char *fmt, ...) {
    va_list ap;
    int r;

    if (t->len >= t->size)
        return;
    va_start(ap, fmt);
    r = vsnprintf(t->p + t->len, t->size - t->len, fmt, ap);
    va_end(ap);
    if (r < 0)
        return;
    t->len += (size_t)r;
    if (t->len >= t->size)
        t->len = t->size - 1;
}

int hwid_match(const struct hwid_digests *recorded, const struct hwid_digests *current,
               enum hwid_policy policy, struct hwid_match *ret) {
    enum state st[HWID_COMPONENT_MAX];
    struct textbuf t;
    bool ok = false;
    const char *why = "";

    if (!ret)
        return -EINVAL;
    memset(ret, 0, sizeof(*ret));
    t = (struct textbuf){.p = ret->reason, .size = sizeof(ret->reason), .len = 0};
    if (!recorded || !current || (policy != HWID_POLICY_DEFAULT && policy != HWID_POLICY_ALL)) {
        snprintf(ret->reason, sizeof(ret->reason), "no match: bad arguments");
        return -EINVAL;
    }

    for (int i = 0; i < HWID_COMPONENT_MAX; i++) {
        st[i] = component_state(recorded, current, i);
        if (st[i] == ST_CHANGED)
            ret->changed |= 1u << i;
        else if (st[i] == ST_GONE || st[i] == ST_NEW)
            ret->missing |= 1u << i;
    }

    /* The EK: equal on both sides; absent on both sides only in no-TPM
     * development mode (a record made with --allow-no-tpm). A record that
     * holds an EK never matches a machine without one, and a record without
     * an EK never matches a machine with a TPM. */
    if (st[HWID_EK] == ST_CHANGED)
        why = "EK changed (another TPM)";
    else if (st[HWID_EK] == ST_GONE)
        why = "the record binds an EK but this machine has no TPM";
    else if (st[HWID_EK] == ST_NEW)
        why = "the record has no EK (made without a TPM) but this machine has one";
    else if (policy == HWID_POLICY_ALL) {
        /* Every component must be in the same state on both sides: equal, or
         * absent on both. */
        ok = true;
        for (int i = HWID_DMI; i < HWID_COMPONENT_MAX; i++)
            if (st[i] != ST_MATCH && st[i] != ST_BOTH_ABSENT)
                ok = false;
        why = ok ? "" : "policy all requires every component";
    } else {
        /* Default: one of the secondary components the record holds must
         * match. What the record holds decides: no DMI recorded (microVM)
         * -> the NIC must match; neither recorded -> the EK alone. */
        bool dmi_rec = recorded->present[HWID_DMI], nic_rec = recorded->present[HWID_NIC];
        if (!dmi_rec && !nic_rec) {
            ok = true;
            why = "no DMI and no NIC recorded: relies on the EK alone";
        } else if (st[HWID_DMI] == ST_MATCH || st[HWID_NIC] == ST_MATCH) {
            ok = true;
            if (!dmi_rec)
                why = "no DMI recorded: relies on EK and NIC";
            else if (!nic_rec)
                why = "no NIC recorded: relies on EK and DMI";
        } else if (!dmi_rec)
            why = "no DMI recorded, so the NIC must match";
        else if (!nic_rec)
            why = "no NIC recorded, so DMI must match";
        else
            why = "DMI or NIC must match";
    }
    ret->matched = ok;
    tb_add(&t, "%s (policy %s): ", ok ? "match" : "no match", hwid_policy_name(policy));
    for (int i = 0; i < HWID_COMPONENT_MAX; i++)
        tb_add(&t, "%s%s %s", i ? ", " : "", hwid_component_name(i), state_text(st[i]));
    if (why[0])
        tb_add(&t, "; %s", why);
    if (st[HWID_EK] == ST_BOTH_ABSENT)
        tb_add(&t, "; no TPM on either side (development mode)");
    return 0;
}
