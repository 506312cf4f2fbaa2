/* This machine's computer ID at start-up: DMI and NICs (read as root,
 * before privileges are dropped), the TPM opened and its RSA EK read, then
 * the ID derived (hwid/). Shared by the daemon and --print-computer-id. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct hwid_info;
struct tpm_ctx;
struct tpm_ek;

/* Opens the TPM at tcti into *ret_tpm (NULL when there is none and
 * allow_no_tpm is set) and fills *ret_info. Without allow_no_tpm a missing
 * TPM is an error. ret_ek (may be NULL) receives the EK (zeroed without a
 * TPM; free with tpm_ek_clear). Returns 0 or a negative errno with a one-line reason. */
int agent_identity(const char *tcti, bool allow_no_tpm, struct tpm_ctx **ret_tpm,
                   struct hwid_info **ret_info, struct tpm_ek *ret_ek, char *err, size_t errlen);

/* --print-computer-id [--explain] [--json]: prints to stdout. */
int agent_print_computer_id(const char *tcti, bool allow_no_tpm, bool explain, bool json, char *err,
                            size_t errlen);
