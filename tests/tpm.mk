# Tests for tpm/: integration against a real swtpm per test, and unit tests
# of the error mapping and of fault paths swtpm cannot produce (NV_RATE).
TESTS += test_tpm
test_tpm_SRCS := tests/integration/test_tpm.c
test_tpm_LIBS := tpm testlib common
test_tpm_PKGS := cmocka tss2-esys tss2-tctildr

TESTS += test_tpm_faults
test_tpm_faults_SRCS := tests/unit/test_tpm_faults.c
test_tpm_faults_LIBS := tpm testlib common
test_tpm_faults_PKGS := cmocka tss2-esys
test_tpm_faults_WRAPS := Esys_NV_Write Esys_NV_Increment
