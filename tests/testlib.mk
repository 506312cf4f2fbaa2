# tests/lib: the swtpm harness that integration tests link.
LIBS_ALL += testlib
testlib_SRCS := tests/lib/swtpm.c
testlib_PKGS :=
testlib_DEPS :=
