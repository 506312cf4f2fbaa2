/* Unit tests for libhwidid: the canonical encodings (known-answer vectors
 * computed independently from docs/computer-id.md), the UUIDv8 layout, hex
 * round trips and the match policy table. No udev, no TPM. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/macro.h"
#include "hwid/encode.h"
#include "hwid/id.h"

/* The vectors of docs/computer-id.md. */
#define KAT_EK         "7f11c5e6ba3ac2ee648620b66ae1c915f564bb3975ed5b3e6eadbfe3378108a2"
#define KAT_DMI        "34dedd2e6905fadcc10862f21ec575f638688b784f5c6342cdb0799569311ade"
#define KAT_NIC        "5885ad4a2eeca641fe25ec6e42605535083b166bb6377afa2dd8b2975a4ab8ce"
#define KAT_ID         "5cd55427-e5bd-87e8-bc83-01c01037dcd5"
#define KAT_ID_NO_DMI  "d5bea3a0-af68-86ef-a38d-dc57fb38dcce"
#define KAT_ID_EK_ONLY "7c4a36eb-af1b-81dd-a20a-6917eaf856c8"
#define KAT_ID_NO_TPM  "f1e8190f-5695-83cd-b46f-da069ec0244d"
#define KAT_ID_010203  "14bde815-88cb-8e16-85ee-98a643f28d78"

/* DER SubjectPublicKeyInfo of an RSA-2048 key with the KAT modulus
 * (c0, then (i*7+3) mod 256 for i = 1..254, then 01) and exponent 65537. */
static size_t kat_spki(uint8_t out[294]) {
    static const uint8_t head[] = {0x30, 0x82, 0x01, 0x22, 0x30, 0x0d, 0x06, 0x09, 0x2a,
                                   0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
                                   0x00, 0x03, 0x82, 0x01, 0x0f, 0x00, 0x30, 0x82, 0x01,
                                   0x0a, 0x02, 0x82, 0x01, 0x01, 0x00};
    static const uint8_t tail[] = {0x02, 0x03, 0x01, 0x00, 0x01};
    size_t n = 0;
    memcpy(out, head, sizeof(head));
    n = sizeof(head);
    out[n++] = 0xc0;
    for (int i = 1; i < 255; i++)
        out[n++] = (uint8_t)((i * 7 + 3) & 0xff);
    out[n++] = 0x01;
    memcpy(out + n, tail, sizeof(tail));
    return n + sizeof(tail);
}

static void assert_hex(const uint8_t d[HWID_DIGEST_LEN], const char *want) {
    char hex[HWID_DIGEST_HEXLEN];
    hwid_digest_to_hex(d, hex);
    assert_string_equal(hex, want);
}

static void kat_components(void **state) {
    uint8_t spki[294], d[HWID_DIGEST_LEN];
    const char *dmi[HWID_DMI_FIELD_MAX] = {"4c4c4544-0042-3510-8051-b7c04f4e3132", "Dell Inc.",
                                           "PowerEdge R640", "CNFCP0089B00XY"};
    const uint8_t macs[][HWID_MAC_LEN] = {{0x3c, 0xfd, 0xfe, 0xa1, 0xb2, 0xc4},
                                          {0x3c, 0xfd, 0xfe, 0xa1, 0xb2, 0xc3},
                                          {0x3c, 0xfd, 0xfe, 0xa1, 0xb2, 0xc4}};

    assert_int_equal(kat_spki(spki), sizeof(spki));
    assert_int_equal(hwid_digest_ek(spki, sizeof(spki), d), 0);
    assert_hex(d, KAT_EK);
    assert_int_equal(hwid_digest_dmi(dmi, d), 0);
    assert_hex(d, KAT_DMI);
    /* duplicates and order do not matter */
    assert_int_equal(hwid_digest_nic(macs, 3, d), 0);
    assert_hex(d, KAT_NIC);
    assert_int_equal(hwid_digest_nic(macs + 1, 2, d), 0);
    assert_hex(d, KAT_NIC);
}

static void fill(struct hwid_digests *d, const char *ek, const char *dmi, const char *nic) {
    const char *h[] = {ek, dmi, nic};
    memset(d, 0, sizeof(*d));
    for (int c = 0; c < HWID_COMPONENT_MAX; c++)
        if (h[c]) {
            assert_int_equal(hwid_digest_from_hex(h[c], d->digest[c]), 0);
            d->present[c] = true;
        }
}

static void kat_computer_id(void **state) {
    struct hwid_digests d;
    char id[HWID_ID_STRLEN];

    fill(&d, KAT_EK, KAT_DMI, KAT_NIC);
    assert_int_equal(hwid_computer_id(&d, id), 0);
    assert_string_equal(id, KAT_ID);
    fill(&d, KAT_EK, NULL, KAT_NIC);
    assert_int_equal(hwid_computer_id(&d, id), 0);
    assert_string_equal(id, KAT_ID_NO_DMI);
    fill(&d, KAT_EK, NULL, NULL);
    assert_int_equal(hwid_computer_id(&d, id), 0);
    assert_string_equal(id, KAT_ID_EK_ONLY);
    fill(&d, NULL, KAT_DMI, KAT_NIC);
    assert_int_equal(hwid_computer_id(&d, id), 0);
    assert_string_equal(id, KAT_ID_NO_TPM);
    memset(&d, 0, sizeof(d));
    for (int c = 0; c < HWID_COMPONENT_MAX; c++) {
        memset(d.digest[c], c + 1, HWID_DIGEST_LEN);
        d.present[c] = true;
    }
    assert_int_equal(hwid_computer_id(&d, id), 0);
    assert_string_equal(id, KAT_ID_010203);
    /* a digest left behind in an absent slot does not enter the ID */
    fill(&d, KAT_EK, NULL, KAT_NIC);
    memset(d.digest[HWID_DMI], 0x55, HWID_DIGEST_LEN);
    assert_int_equal(hwid_computer_id(&d, id), 0);
    assert_string_equal(id, KAT_ID_NO_DMI);
    /* nothing present: no ID */
    memset(&d, 0, sizeof(d));
    assert_int_equal(hwid_computer_id(&d, id), -EINVAL);
    assert_int_equal(hwid_computer_id(NULL, id), -EINVAL);
}

static void uuid_layout(void **state) {
    struct hwid_digests d = {0};
    char id[HWID_ID_STRLEN];

    d.present[HWID_NIC] = true;
    for (int round = 0; round < 200; round++) {
        memset(d.digest[HWID_NIC], 0, HWID_DIGEST_LEN);
        d.digest[HWID_NIC][0] = (uint8_t)round;
        assert_int_equal(hwid_computer_id(&d, id), 0);
        assert_int_equal(strlen(id), 36);
        for (int i = 0; i < 36; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23)
                assert_int_equal(id[i], '-');
            else
                assert_true(isxdigit((unsigned char)id[i]) && !isupper((unsigned char)id[i]));
        }
        assert_int_equal(id[14], '8');           /* version 8 */
        assert_non_null(strchr("89ab", id[19])); /* variant 10xx */
    }
}

static void hex_round_trip(void **state) {
    uint8_t d[HWID_DIGEST_LEN], back[HWID_DIGEST_LEN];
    char hex[HWID_DIGEST_HEXLEN];

    for (int i = 0; i < HWID_DIGEST_LEN; i++)
        d[i] = (uint8_t)(i * 37 + 1);
    hwid_digest_to_hex(d, hex);
    assert_int_equal(hwid_digest_from_hex(hex, back), 0);
    assert_memory_equal(d, back, sizeof(d));
    assert_int_equal(hwid_digest_from_hex(KAT_EK "0", back), -EINVAL);
    assert_int_equal(hwid_digest_from_hex("7f11", back), -EINVAL);
    assert_int_equal(hwid_digest_from_hex("", back), -EINVAL);
    assert_int_equal(hwid_digest_from_hex(NULL, back), -EINVAL);
    char bad[] = KAT_EK;
    bad[10] = 'g';
    assert_int_equal(hwid_digest_from_hex(bad, back), -EINVAL);
    /* one spelling only (common/hex.h): upper case is refused, and
     * nothing is written on a refusal */
    char upper[] = "7F11C5E6BA3AC2EE648620B66AE1C915F564BB3975ED5B3E6EADBFE3378108A2";
    memset(back, 0xaa, sizeof(back));
    assert_int_equal(hwid_digest_from_hex(upper, back), -EINVAL);
    for (size_t i = 0; i < sizeof(back); i++)
        assert_int_equal(back[i], 0xaa);
    assert_int_equal(hwid_digest_from_hex(KAT_EK, back), 0);
    assert_hex(back, KAT_EK);
}

static void names(void **state) {
    enum hwid_policy p;
    assert_string_equal(hwid_component_name(HWID_EK), "ek");
    assert_string_equal(hwid_component_name(HWID_DMI), "dmi");
    assert_string_equal(hwid_component_name(HWID_NIC), "nic");
    assert_int_equal(hwid_policy_from_name("default", &p), 0);
    assert_int_equal(p, HWID_POLICY_DEFAULT);
    assert_int_equal(hwid_policy_from_name("all", &p), 0);
    assert_int_equal(p, HWID_POLICY_ALL);
    assert_int_equal(hwid_policy_from_name("any", &p), -EINVAL);
    assert_string_equal(hwid_policy_name(HWID_POLICY_ALL), "all");
    assert_string_equal(hwid_dmi_field_name(HWID_DMI_BOARD_SERIAL), "board_serial");
}

/* Component states in the table: M = same digest on both sides, X = present
 * on both sides but different, R = only in the record, C = only current,
 * - = absent on both. */
struct row {
    const char *states; /* ek dmi nic */
    enum hwid_policy policy;
    bool matched;
    const char *reason_has;
};

static const struct row rows[] = {
    {"MMM", HWID_POLICY_DEFAULT, true, "ek matches, dmi matches, nic matches"},
    {"MMX", HWID_POLICY_DEFAULT, true, "nic changed"},
    {"MXM", HWID_POLICY_DEFAULT, true, "dmi changed"},
    {"MXX", HWID_POLICY_DEFAULT, false, "DMI or NIC must match"},
    {"XMM", HWID_POLICY_DEFAULT, false, "EK changed (another TPM)"},
    {"RMM", HWID_POLICY_DEFAULT, false, "this machine has no TPM"},
    {"CMM", HWID_POLICY_DEFAULT, false, "record has no EK"},
    {"-MM", HWID_POLICY_DEFAULT, true, "no TPM on either side"},
    {"-XX", HWID_POLICY_DEFAULT, false, "no TPM on either side"},
    {"M-M", HWID_POLICY_DEFAULT, true, "no DMI recorded: relies on EK and NIC"},
    {"M-X", HWID_POLICY_DEFAULT, false, "no DMI recorded, so the NIC must match"},
    {"MCM", HWID_POLICY_DEFAULT, true, "dmi not recorded"},
    {"MCX", HWID_POLICY_DEFAULT, false, "no DMI recorded, so the NIC must match"},
    {"MM-", HWID_POLICY_DEFAULT, true, "no NIC recorded: relies on EK and DMI"},
    {"MX-", HWID_POLICY_DEFAULT, false, "no NIC recorded, so DMI must match"},
    {"M--", HWID_POLICY_DEFAULT, true, "relies on the EK alone"},
    {"MCC", HWID_POLICY_DEFAULT, true, "relies on the EK alone"},
    {"X--", HWID_POLICY_DEFAULT, false, "EK changed"},
    {"MRM", HWID_POLICY_DEFAULT, true, "dmi absent here"},
    {"MRX", HWID_POLICY_DEFAULT, false, "DMI or NIC must match"},
    {"MRR", HWID_POLICY_DEFAULT, false, "DMI or NIC must match"},
    {"MMM", HWID_POLICY_ALL, true, "policy all"},
    {"MMX", HWID_POLICY_ALL, false, "policy all requires every component"},
    {"MXM", HWID_POLICY_ALL, false, "dmi changed"},
    {"XMM", HWID_POLICY_ALL, false, "EK changed"},
    {"M-M", HWID_POLICY_ALL, true, "dmi absent on both"},
    {"MRM", HWID_POLICY_ALL, false, "dmi absent here"},
    {"MCM", HWID_POLICY_ALL, false, "dmi not recorded"},
    {"M--", HWID_POLICY_ALL, true, "match"},
};

static void match_table(void **state) {
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct hwid_digests rec = {0}, cur = {0};
        struct hwid_match m;
        unsigned changed = 0, missing = 0;

        for (int c = 0; c < HWID_COMPONENT_MAX; c++) {
            char s = rows[i].states[c];
            memset(rec.digest[c], 0x10 + c, HWID_DIGEST_LEN);
            memset(cur.digest[c], s == 'X' ? 0x20 + c : 0x10 + c, HWID_DIGEST_LEN);
            rec.present[c] = s == 'M' || s == 'X' || s == 'R';
            cur.present[c] = s == 'M' || s == 'X' || s == 'C';
            if (!rec.present[c])
                memset(rec.digest[c], 0, HWID_DIGEST_LEN);
            if (!cur.present[c])
                memset(cur.digest[c], 0, HWID_DIGEST_LEN);
            if (s == 'X')
                changed |= 1u << c;
            if (s == 'R' || s == 'C')
                missing |= 1u << c;
        }
        assert_int_equal(hwid_match(&rec, &cur, rows[i].policy, &m), 0);
        if (m.matched != rows[i].matched || !strstr(m.reason, rows[i].reason_has))
            fail_msg("row %zu (%s, %s): matched=%d reason '%s'", i, rows[i].states,
                     hwid_policy_name(rows[i].policy), m.matched, m.reason);
        assert_int_equal(m.changed, changed);
        assert_int_equal(m.missing, missing);
        assert_true(strlen(m.reason) < sizeof(m.reason));
    }
}

static void match_bad_args(void **state) {
    struct hwid_digests d = {0};
    struct hwid_match m;
    assert_int_equal(hwid_match(NULL, &d, HWID_POLICY_DEFAULT, &m), -EINVAL);
    assert_false(m.matched);
    assert_int_equal(hwid_match(&d, &d, (enum hwid_policy)7, &m), -EINVAL);
    assert_false(m.matched);
    assert_int_equal(hwid_match(&d, &d, HWID_POLICY_DEFAULT, NULL), -EINVAL);
}

static void ek_digest_inputs(void **state) {
    uint8_t spki[294], d[HWID_DIGEST_LEN], big[300];
    EVP_PKEY *k = NULL;
    unsigned char *der = NULL;
    int len;

    kat_spki(spki);
    assert_int_equal(hwid_digest_ek(spki, sizeof(spki) - 1, d), -EINVAL); /* truncated */
    memcpy(big, spki, sizeof(spki));
    big[sizeof(spki)] = 0;
    assert_int_equal(hwid_digest_ek(big, sizeof(spki) + 1, d), -EINVAL); /* trailing byte */
    assert_int_equal(hwid_digest_ek((const uint8_t *)"garbage", 7, d), -EINVAL);
    assert_int_equal(hwid_digest_ek(NULL, 0, d), -EINVAL);

    k = EVP_EC_gen("P-256");
    assert_non_null(k);
    len = i2d_PUBKEY(k, &der);
    assert_true(len > 0);
    assert_int_equal(hwid_digest_ek(der, (size_t)len, d), -EOPNOTSUPP);
    OPENSSL_free(der);
    EVP_PKEY_free(k);
}

static void dmi_nic_inputs(void **state) {
    uint8_t d[HWID_DIGEST_LEN], d2[HWID_DIGEST_LEN];
    const char *only_model[HWID_DMI_FIELD_MAX] = {NULL, "QEMU", "Standard PC", NULL};
    const char *serial_only[HWID_DMI_FIELD_MAX] = {NULL, NULL, NULL, "ABC"};
    const char *empty[HWID_DMI_FIELD_MAX] = {"", NULL, NULL, NULL};
    const char *moved[HWID_DMI_FIELD_MAX] = {"ABC", NULL, NULL, NULL};

    assert_int_equal(hwid_digest_dmi(only_model, d), -ENODATA);
    assert_int_equal(hwid_digest_dmi(empty, d), -EINVAL);
    assert_int_equal(hwid_digest_dmi(serial_only, d), 0);
    /* the same value in another field is another identity */
    assert_int_equal(hwid_digest_dmi(moved, d2), 0);
    assert_memory_not_equal(d, d2, sizeof(d));
    assert_int_equal(hwid_digest_nic(NULL, 0, d), -ENODATA);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kat_components), cmocka_unit_test(kat_computer_id),
        cmocka_unit_test(uuid_layout),    cmocka_unit_test(hex_round_trip),
        cmocka_unit_test(names),          cmocka_unit_test(match_table),
        cmocka_unit_test(match_bad_args), cmocka_unit_test(ek_digest_inputs),
        cmocka_unit_test(dmi_nic_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
