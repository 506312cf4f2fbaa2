# common/: helpers shared by every module (cleanup macros, program logging).
LIBS_ALL += common
common_SRCS := common/log.c common/text.c
common_PKGS :=
common_DEPS :=
