/* Activation requests (SPEC section 5, seed 000): the activation
 * certificate an appliance sends to the vendor, offline by mail or online
 * to the license server. It carries this machine's component digests, its
 * EK (certificate when present), the usage counter's index, name and value
 * now (the vendor signs that value back as the base), a nonce and what the
 * operator gave. Pure: no TPM, no HTTP; the ledger supplies the counter. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/outcome.h"
#include "cert/cert.h"
#include "common/licensecode.h"

/* What the operator gives (POST /v1/management/license and
 * .../offlineactivation). */
struct activation_fields {
    char license[LICENSE_CODE_MAX + 1];
    char username[129];
    char email_address[129];
    char company_name[129];
};

/* What the agent knows of this machine and its TPM. Pointers are borrowed. */
struct activation_machine {
    const char *computer_id;
    const struct hwid_digests *digests;
    const uint8_t *ek_spki;
    size_t ek_spki_len;
    const uint8_t *ek_cert; /* NULL when the TPM has none */
    size_t ek_cert_len;
    bool tpm_software;
    uint32_t counter_index;
    const uint8_t *counter_name;
    size_t counter_name_len;
    uint64_t counter_value;
    /* the hour counter, the vendor signs it back as the time floor's base */
    uint32_t floor_index;
    const uint8_t *floor_name;
    size_t floor_name_len;
    uint64_t floor_value;
    /* the certificate in force, which the new one will replace ("": none) */
    const char *supersedes_jti;
    uint64_t supersedes_ceiling;
    const char *ek_issuer; /* NULL when the TPM has no EK certificate */
};

/* Builds the activation certificate: *ret_text is malloc'ed; ret_nonce gets
 * its nonce (32 hex digits). false with *o set on failure. */
bool activation_build(const struct activation_machine *m, const struct activation_fields *f,
                      char **ret_text, char ret_nonce[33], struct outcome *o);
