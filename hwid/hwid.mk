# hwid/: the computer ID. libhwidid is the pure part (encodings, digests,
# computer ID, match; OpenSSL and common/'s hex) that the vendor tool and
# cert/ link;
# libhwid collects DMI and the physical NICs (libudev) and renders --explain.
LIBS_ALL += hwidid hwid
hwidid_SRCS := hwid/id.c hwid/encode.c
hwidid_PKGS := openssl
hwidid_DEPS := common

hwid_SRCS := hwid/hwid.c hwid/report.c hwid/dmi.c hwid/nic.c hwid/explain.c
hwid_PKGS := libudev openssl jansson
hwid_DEPS := hwidid common
