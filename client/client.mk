# client/: libtpmlic (include/tpmlic/client.h), shared and static, and
# tpmlicctl, the operator's command line, built on it. Only the functions
# marked TPMLIC_API are exported: everything is compiled with hidden
# visibility. The library stands alone (jansson and pthreads only): the few
# common/ helpers it uses (strict JSON fields, RFC 3339 times and what they
# need) are compiled into it, never linked from libcommon.a.
SHLIBS += tpmlic
tpmlic_SRCS := client/client.c client/conn.c client/answer.c \
               common/json.c common/hex.c common/licensecode.c common/timefmt.c
tpmlic_PKGS := jansson
tpmlic_DEPS :=
tpmlic_CFLAGS := -fvisibility=hidden
tpmlic_SOVERSION := 0
tpmlic_LDLIBS := -lpthread

# The static twin (not in LIBS_ALL: it is not made by the generic rule) holds
# the shared library's -fPIC objects linked into one relocatable object
# whose hidden symbols are then made local: a service that links
# libtpmlic.a sees tpmlic_* and nothing else, as with the shared library,
# and its own hex_encode or cj_string cannot clash with ours.
tpmlic_PIC_OBJS := $(patsubst %.c,$(B)/pic/%.o,$(tpmlic_SRCS))
$(B)/libtpmlic.a: $(tpmlic_PIC_OBJS) client/client.mk
	@mkdir -p $(@D)
	$(LD) -r -o $(B)/pic/libtpmlic-static.o $(filter %.o,$^)
	objcopy --localize-hidden $(B)/pic/libtpmlic-static.o
	rm -f $@
	$(AR) rcs $@ $(B)/pic/libtpmlic-static.o

INSTALL_SHLIBS += tpmlic
INSTALL_HEADERS += include/tpmlic/client.h
INSTALL_PC += packaging/tpmlic.pc.in
INSTALL_BASHCOMP += packaging/bash-completion/tpmlicctl

PROGS += tpmlicctl
INSTALL_BIN += tpmlicctl
tpmlicctl_SRCS := client/tpmlicctl.c client/ctl_format.c client/answer.c
tpmlicctl_LIBS := tpmlic common
tpmlicctl_PKGS := jansson
tpmlicctl_LDLIBS := -lpthread

# Symbol versions of the shared library: client/libtpmlic.map exports
# tpmlic_* at version TPMLIC_0 (debian/libtpmlic0.symbols lists them). The
# objects depend on the map so that a changed map relinks the library.
tpmlic_LDLIBS += -Wl,--version-script=client/libtpmlic.map
$(patsubst %.c,$(B)/pic/%.o,$(tpmlic_SRCS)): client/libtpmlic.map
