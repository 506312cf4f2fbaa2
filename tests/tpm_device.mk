# tpm/: a TPM device node the agent may not open is reported as a permission
# problem (shell test; runs the agent as an unprivileged user).
TEST_SCRIPTS += tests/integration/tpm_device_access.sh
