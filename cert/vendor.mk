# cert/: tpmlic-vendor, the vendor's CLI (keygen, sign-activation, inspect).
PROGS += tpmlic-vendor
INSTALL_BIN += tpmlic-vendor
tpmlic-vendor_SRCS := cert/vendor.c
tpmlic-vendor_LIBS := cert hwidid common
tpmlic-vendor_PKGS := openssl jansson
