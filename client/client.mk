# client/: libtpmlic (include/tpmlic/client.h), shared and static, and
# tpmlicctl, the operator's command line, built on it. Only the functions
# marked TPMLIC_API are exported: everything is compiled with hidden
# visibility. The library stands alone (jansson and pthreads only): it uses
# common/macro.h, a header, but no library of ours.
LIBS_ALL += tpmlic
SHLIBS += tpmlic
tpmlic_SRCS := client/client.c client/conn.c
tpmlic_PKGS := jansson
tpmlic_DEPS :=
tpmlic_CFLAGS := -fvisibility=hidden
tpmlic_SOVERSION := 0
tpmlic_LDLIBS := -lpthread

INSTALL_SHLIBS += tpmlic
INSTALL_HEADERS += include/tpmlic/client.h
INSTALL_PC += packaging/tpmlic.pc.in
INSTALL_BASHCOMP += packaging/bash-completion/tpmlicctl

PROGS += tpmlicctl
INSTALL_BIN += tpmlicctl
tpmlicctl_SRCS := client/tpmlicctl.c client/ctl_format.c
tpmlicctl_LIBS := tpmlic
tpmlicctl_PKGS := jansson
tpmlicctl_LDLIBS := -lpthread

# Symbol versions of the shared library: client/libtpmlic.map exports
# tpmlic_* at version TPMLIC_0 (debian/libtpmlic0.symbols lists them). The
# objects depend on the map so that a changed map relinks the library.
tpmlic_LDLIBS += -Wl,--version-script=client/libtpmlic.map
$(patsubst %.c,$(B)/pic/%.o,$(tpmlic_SRCS)): client/libtpmlic.map
