/* Canonical, versioned encodings of the three hardware components and their
 * SHA-256 digests (docs/computer-id.md). Part of libhwidid (OpenSSL only),
 * so the vendor tool can recompute a digest from the EK public key carried
 * in an activation certificate. All functions return 0 or a negative errno
 * and write their output only on success. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "hwid/id.h"

/* Domain-separation strings; each enters the hash with its terminating NUL. */
#define HWID_DOMAIN_EK          "tpmlic/hwid/ek/v1"
#define HWID_DOMAIN_DMI         "tpmlic/hwid/dmi/v1"
#define HWID_DOMAIN_NIC         "tpmlic/hwid/nic/v1"
#define HWID_DOMAIN_COMPUTER_ID "tpmlic/computer-id/v1"

#define HWID_MAC_LEN 6
#define HWID_NIC_MAX 256 /* more physical NICs than this: -E2BIG */

/* The DMI fields in their canonical order. */
enum hwid_dmi_field {
    HWID_DMI_PRODUCT_UUID = 0,
    HWID_DMI_SYS_VENDOR = 1,
    HWID_DMI_PRODUCT_NAME = 2,
    HWID_DMI_BOARD_SERIAL = 3,
    HWID_DMI_FIELD_MAX,
};
#define HWID_DMI_VALUE_MAX 256 /* longer normalised values: -EINVAL */

/* "product_uuid", "sys_vendor", "product_name", "board_serial" (the sysfs names). */
const char *hwid_dmi_field_name(enum hwid_dmi_field f);

/* SHA-256 of buf. */
int hwid_sha256(const void *buf, size_t len, uint8_t ret[HWID_DIGEST_LEN]);

/* EK digest from a DER SubjectPublicKeyInfo holding an RSA key (>= 2048
 * bits). -EINVAL for bad DER, -EOPNOTSUPP for a key that is not RSA. The
 * digest covers the modulus and exponent, not the DER bytes, so two DER
 * spellings of one key give one digest. */
int hwid_digest_ek(const uint8_t *spki_der, size_t len, uint8_t ret[HWID_DIGEST_LEN]);
/* The same, and the key size in bits into *ret_bits (may be NULL). */
int hwid_digest_ek_bits(const uint8_t *spki_der, size_t len, uint8_t ret[HWID_DIGEST_LEN],
                        int *ret_bits);

/* DMI digest over the normalised field values (NULL = absent or placeholder).
 * -ENODATA when neither product_uuid nor board_serial is given: vendor and
 * product name alone are the same on every machine of a model and are not
 * an identity. */
int hwid_digest_dmi(const char *const values[HWID_DMI_FIELD_MAX], uint8_t ret[HWID_DIGEST_LEN]);

/* NIC digest over a set of MAC addresses (any order, duplicates allowed:
 * they are sorted and de-duplicated). -ENODATA when n is 0. */
int hwid_digest_nic(const uint8_t (*macs)[HWID_MAC_LEN], size_t n, uint8_t ret[HWID_DIGEST_LEN]);
