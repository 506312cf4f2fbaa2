# tpm/: the only module that includes tss2 headers.
LIBS_ALL += tpm
tpm_SRCS := tpm/tpm.c tpm/nv.c tpm/ek.c
tpm_PKGS := tss2-esys tss2-tctildr tss2-rc tss2-mu tss2-sys openssl
tpm_DEPS := common
