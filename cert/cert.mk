# cert/: license and activation certificates (OpenSSL + jansson, no TPM).
LIBS_ALL += cert
cert_SRCS := cert/b64.c cert/common.c cert/jws.c cert/license.c cert/activation.c \
             cert/issue.c cert/ekchain.c
cert_PKGS := openssl jansson
cert_DEPS := hwidid common
