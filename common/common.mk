# common/: helpers shared by every module (cleanup macros, program logging,
# hex, RFC 3339 times, the license-code grammar, strict JSON fields, CLI verbs).
LIBS_ALL += common
common_SRCS := common/log.c common/text.c common/hex.c common/random.c common/timefmt.c \
               common/licensecode.c common/verbs.c common/json.c
common_PKGS := openssl jansson
common_DEPS :=
