/* This machine's computer ID at start-up: DMI and NICs (read as root,
 * before privileges are dropped), the TPM opened and its RSA EK read, then
 * the ID derived (hwid/). Shared by the daemon and --print-computer-id. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "tpm/tpm.h"

struct hwid_info;
struct tpmio;

/* Opens the TPM at tcti into *ret_tpm (a tpmio without a TPM when there is
 * none and allow_no_tpm is set) and fills *ret_info and *ret_ek (zeroed
 * without a TPM; free with tpm_ek_clear). Without allow_no_tpm a missing
 * TPM is an error. Returns 0 or a negative errno with a one-line reason. */
int agent_identity(const char *tcti, bool allow_no_tpm, struct tpmio **ret_tpm,
                   struct hwid_info **ret_info, struct tpm_ek *ret_ek, char *err, size_t errlen);

/* --print-computer-id [--explain] [--json]: prints to stdout. */
int agent_print_computer_id(const char *tcti, bool allow_no_tpm, bool explain, bool json, char *err,
                            size_t errlen);
