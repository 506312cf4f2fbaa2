/* Test harness: a fresh software TPM per test, manufactured and driven by
 * swtpm-scripts/swtpm-ctl, in a private temporary directory. */
#pragma once

#include <stddef.h>

struct swtpm {
    char dir[256];
    char tcti[320];
};

/* Manufactures a TPM with swtpm-ctl options (e.g. "--no-persistent-ek",
 * may be NULL or "") in a new temporary directory and starts it. The local
 * CA is shared across tests (TPMLIC_TEST_CA) so manufacturing stays fast.
 * Returns 0 or -1. */
int swtpm_new(struct swtpm *s, const char *options);
/* Runs "swtpm-ctl CMD DIR [ARGS]": stop, start, poweroff, reboot. */
int swtpm_ctl(struct swtpm *s, const char *cmd, const char *args);
/* Powers off and deletes the TPM. */
void swtpm_destroy(struct swtpm *s);
/* Runs a shell command with TPM2TOOLS_TCTI set to this TPM; stdout and
 * stderr go to out (may be NULL). Returns the exit status. */
int swtpm_sh(struct swtpm *s, char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Number of transient objects left in the TPM, or -1. */
int swtpm_transient_count(struct swtpm *s);
/* The source tree (TPMLIC_SRCDIR, else "."). */
const char *test_srcdir(void);
