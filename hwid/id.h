/* Computer ID from the three hardware component digests, and the match of a
 * recorded set of digests (from a license certificate) against the current
 * one. Pure logic (OpenSSL SHA-256 only): no udev, no TPM, so the vendor tool
 * and the certificate code can use it too. SPEC section 4; the encoding is
 * specified in docs/computer-id.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HWID_DIGEST_LEN    32
#define HWID_DIGEST_HEXLEN (2 * HWID_DIGEST_LEN + 1) /* with NUL */
#define HWID_ID_STRLEN     37                        /* 36 + NUL */

enum hwid_component {
    HWID_EK = 0,
    HWID_DMI = 1,
    HWID_NIC = 2,
    HWID_COMPONENT_MAX,
};

/* present[c] is false when the component could not be read at all (no TPM
 * with --allow-no-tpm, no DMI on a microVM, no physical NIC); digest[c] is
 * then all zero and must not be used as an identity. */
struct hwid_digests {
    uint8_t digest[HWID_COMPONENT_MAX][HWID_DIGEST_LEN];
    bool present[HWID_COMPONENT_MAX];
};

enum hwid_policy {
    HWID_POLICY_DEFAULT = 0, /* EK must match, and DMI or NIC must match */
    HWID_POLICY_ALL = 1,     /* all three must match */
};

struct hwid_match {
    bool matched;
    unsigned changed; /* bit (1u << component): present on both sides, differs */
    unsigned missing; /* bit: recorded but absent now, or absent in the record */
    char reason[256]; /* one line for a person: which component differs and what counts */
};

/* "ek", "dmi", "nic" */
const char *hwid_component_name(enum hwid_component c);

/* Writes the lower-case RFC 9562 version-8 UUID text into ret_id.
 * Returns 0, or -EINVAL when no component is present. */
int hwid_computer_id(const struct hwid_digests *d, char ret_id[HWID_ID_STRLEN]);

/* Compares recorded against current under policy. Always fills *ret;
 * returns 0, or -EINVAL on bad arguments. */
int hwid_match(const struct hwid_digests *recorded, const struct hwid_digests *current,
               enum hwid_policy policy, struct hwid_match *ret);

/* Policy names "default" and "all". */
const char *hwid_policy_name(enum hwid_policy p);
int hwid_policy_from_name(const char *s, enum hwid_policy *ret);

/* Lower-case hex of one digest / parse it back (exactly 64 lower-case hex
 * digits, common/hex.h). */
void hwid_digest_to_hex(const uint8_t digest[HWID_DIGEST_LEN], char ret_hex[HWID_DIGEST_HEXLEN]);
int hwid_digest_from_hex(const char *hex, uint8_t ret_digest[HWID_DIGEST_LEN]);
