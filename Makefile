# tpmlic — top-level Makefile. Each folder describes its own pieces in a
# FOLDER/*.mk fragment (libraries, programs, tests, benchmarks); this file
# holds the flags and the generic rules.
#
#   make                  build everything
#   make check            install missing Debian packages, build, run all tests
#   make SANITIZE=1 check the same under ASan+UBSan (separate build directory)
#   make demo             install missing packages, build, run the demo
#   make bench            build and run the benchmarks
#   make install          honours PREFIX and DESTDIR
#   make install-agent    only what an appliance needs (docs/packaging.md)
#   make fuzz             libFuzzer harnesses (clang)
#   make deb              the Debian packages, into $(B)/deb
#   make vm-test          boots an appliance image with the packages (tests/vm)

VERSION := 0.1.0
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
# On Debian (the compiler knows a multiarch triplet) libraries installed
# under /usr or /usr/local go to lib/<triplet>; LIBDIR=... overrides.
LIBDIR ?= $(PREFIX)/lib$(if $(and $(MULTIARCH),$(filter /usr /usr/local,$(PREFIX))),/$(MULTIARCH))
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
SYSCONFDIR ?= /etc
DESTDIR ?=

CC ?= cc
PKG_CONFIG ?= pkg-config
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)

ifeq ($(SANITIZE),1)
B ?= build/san
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT := -O1 -g
FORTIFY :=
else ifeq ($(FUZZ),1)
B ?= build/fuzz
CC := clang
SAN_FLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
OPT := -O1 -g
FORTIFY :=
else
B ?= build/rel
SAN_FLAGS :=
OPT := -O2 -g
FORTIFY := -D_FORTIFY_SOURCE=2
endif

# -Werror in CI (CI=true) or on request (WERROR=1).
WERROR ?= $(if $(filter true 1,$(CI)),1,0)
WARN := -Wall -Wextra -Wformat=2 -Wformat-security -Wstrict-prototypes -Wmissing-prototypes \
        -Wshadow -Wpointer-arith -Wundef -Wvla -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN += -Werror
endif

BASE_CFLAGS := -std=gnu11 $(OPT) $(WARN) -fstack-protector-strong $(FORTIFY) -fPIE \
               -D_GNU_SOURCE -DTPMLIC_VERSION='"$(VERSION)"' -I. -Iinclude $(SAN_FLAGS)
BASE_LDFLAGS := -pie -Wl,-z,relro,-z,now -Wl,--as-needed $(SAN_FLAGS)
# User CPPFLAGS/CFLAGS/LDFLAGS (dpkg-buildflags' among them) are appended,
# never replace ours.
ALL_CFLAGS = $(BASE_CFLAGS) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(BASE_LDFLAGS) $(LDFLAGS)

pc_cflags = $(if $(1),$(shell $(PKG_CONFIG) --cflags $(1)))
pc_libs = $(if $(1),$(shell $(PKG_CONFIG) --libs $(1)))

LIBS_ALL :=
SHLIBS :=
PROGS :=
TEST_PROGS :=
TESTS :=
TEST_SCRIPTS :=
BENCHES :=
BENCH_SCRIPTS :=
FUZZERS :=
INSTALL_BIN :=
INSTALL_SBIN :=
INSTALL_SHLIBS :=
INSTALL_HEADERS :=
INSTALL_PC :=
INSTALL_BASHCOMP :=

all: build-all

# Fragments: one per folder and job, e.g. tpm/tpm.mk, tests/tpm.mk.
include $(sort $(wildcard */*.mk))

# --- generic rules -----------------------------------------------------------
# A library NAME: NAME_SRCS, NAME_PKGS (pkg-config modules), NAME_DEPS (other
# libraries it uses), NAME_CFLAGS (extra flags for its objects). Built as
# $(B)/libNAME.a.
# A shared library NAME (SHLIBS += NAME, and a library NAME as above, its
# static twin): NAME_SOVERSION, NAME_LDLIBS. Built from -fPIC objects in
# $(B)/pic as $(B)/libNAME.so.$(VERSION) with soname libNAME.so.SOVERSION and
# the links libNAME.so.SOVERSION and libNAME.so beside it. It may not depend
# on our static libraries (NAME_DEPS empty): it stands alone once installed.
# A program, test, test helper program (TEST_PROGS: built for the tests,
# never installed) or benchmark NAME: NAME_SRCS, NAME_LIBS (our libraries, in
# link order), NAME_SHLIBS (our shared libraries, linked with an rpath into
# $(B): for tests), NAME_PKGS, NAME_WRAPS (symbols for -Wl,--wrap in unit
# tests).

objs = $(patsubst %.c,$(B)/obj/%.o,$(1))
lib_pkgs = $(foreach l,$(1),$($(l)_PKGS) $(call lib_pkgs,$($(l)_DEPS)))
lib_closure = $(foreach l,$(1),$(l) $(call lib_closure,$($(l)_DEPS)))
uniq_last = $(if $(1),$(call uniq_last,$(filter-out $(lastword $(1)),$(1))) $(lastword $(1)))
link_libs = $(call uniq_last,$(call lib_closure,$(1)))

define LIB_template
$(B)/lib$(1).a: $(call objs,$($(1)_SRCS)) $(wildcard */*.mk)
	@mkdir -p $$(@D)
	@rm -f $$@ # ar keeps members it is not given: an object moved away would stay
	$$(AR) rcs $$@ $$(filter %.o,$$^)
$(call objs,$($(1)_SRCS)): EXTRA_CFLAGS = $$(call pc_cflags,$$(sort $$(call lib_pkgs,$(1)))) $($(1)_CFLAGS)
endef

pic_objs = $(patsubst %.c,$(B)/pic/%.o,$(1))
define SHLIB_template
$(B)/lib$(1).so.$(VERSION): $(call pic_objs,$($(1)_SRCS))
	@mkdir -p $$(@D)
	$$(CC) -shared -o $$@ $$^ -Wl,-soname,lib$(1).so.$($(1)_SOVERSION) \
		$$(filter-out -pie,$$(ALL_LDFLAGS)) $$(call pc_libs,$($(1)_PKGS)) $($(1)_LDLIBS)
$(B)/lib$(1).so: $(B)/lib$(1).so.$(VERSION)
	ln -sf lib$(1).so.$(VERSION) $(B)/lib$(1).so.$($(1)_SOVERSION)
	ln -sf lib$(1).so.$(VERSION) $$@
$(call pic_objs,$($(1)_SRCS)): EXTRA_CFLAGS = $$(call pc_cflags,$($(1)_PKGS)) $($(1)_CFLAGS)
endef

define PROG_template
$(1)_ALL_LIBS = $$(call link_libs,$($(1)_LIBS))
$(1)_ALL_PKGS = $$(sort $($(1)_PKGS) $$(call lib_pkgs,$($(1)_LIBS)))
$(B)/$(1): $(call objs,$($(1)_SRCS)) $$(foreach l,$$($(1)_ALL_LIBS),$(B)/lib$$(l).a) \
		$(foreach l,$($(1)_SHLIBS),$(B)/lib$(l).so)
	@mkdir -p $$(@D)
	$$(CC) -o $$@ $(call objs,$($(1)_SRCS)) $$(foreach l,$$($(1)_ALL_LIBS),$(B)/lib$$(l).a) \
		$(foreach l,$($(1)_SHLIBS),-L$(B) -l$(l) -Wl,-rpath,$(abspath $(B))) \
		$$(ALL_LDFLAGS) $$(foreach w,$($(1)_WRAPS),-Wl,--wrap=$$(w)) \
		$$(call pc_libs,$$($(1)_ALL_PKGS)) $($(1)_LDLIBS)
$(call objs,$($(1)_SRCS)): EXTRA_CFLAGS = $$(call pc_cflags,$$($(1)_ALL_PKGS))
endef

$(foreach l,$(LIBS_ALL),$(eval $(call LIB_template,$(l))))
$(foreach l,$(SHLIBS),$(eval $(call SHLIB_template,$(l))))
$(foreach p,$(PROGS) $(TEST_PROGS) $(TESTS) $(BENCHES),$(eval $(call PROG_template,$(p))))
# A fuzzer NAME (libFuzzer, only with FUZZ=1): NAME_SRCS, NAME_LIBS, NAME_PKGS and
# NAME_CORPUS, a folder of seed inputs.
$(foreach p,$(FUZZERS),$(eval $(p)_LDLIBS += -fsanitize=fuzzer))
ifeq ($(FUZZ),1)
$(foreach p,$(FUZZERS),$(eval $(call PROG_template,$(p))))
endif

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(EXTRA_CFLAGS) -MMD -MP -c -o $@ $<

# Objects of shared libraries: position-independent code, not executables.
$(B)/pic/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(filter-out -fPIE,$(ALL_CFLAGS)) -fPIC $(EXTRA_CFLAGS) -MMD -MP -c -o $@ $<

-include $(shell find $(B)/obj $(B)/pic -name '*.d' 2>/dev/null)

# --- targets -------------------------------------------------------------------
build-all: $(addprefix $(B)/,$(PROGS)) $(foreach l,$(SHLIBS),$(B)/lib$(l).so $(B)/lib$(l).a)
build-tests: build-all $(addprefix $(B)/,$(TEST_PROGS) $(TESTS))
build-bench: build-all $(addprefix $(B)/,$(BENCHES))

deps:
	@packaging/install-deps

# check: dependencies first, then a fresh make (pkg-config must see them).
check: deps
	@$(MAKE) --no-print-directory build-tests
	@B=$(B) tests/run-tests $(addprefix $(B)/,$(TESTS)) $(TEST_SCRIPTS)

demo: deps
	@$(MAKE) --no-print-directory build-all
	@B=$(B) packaging/demo

bench: deps
	@$(MAKE) --no-print-directory build-bench
	@B=$(B) bench/run-bench $(addprefix $(B)/,$(BENCHES)) $(BENCH_SCRIPTS)

# fuzz: build every libFuzzer harness with clang and run each for FUZZ_SECS
# seconds on a copy of its seed corpus.
FUZZ_SECS ?= 30
fuzz: deps
	@$(MAKE) --no-print-directory FUZZ=1 run-fuzz

run-fuzz: $(addprefix $(B)/,$(FUZZERS))
	@$(foreach f,$(FUZZERS),mkdir -p $(B)/corpus/$(f) && cp -rn $($(f)_CORPUS)/. $(B)/corpus/$(f)/ && \
		echo "=== fuzz $(f) for $(FUZZ_SECS)s" && \
		$(B)/$(f) -max_total_time=$(FUZZ_SECS) -print_final_stats=1 $(B)/corpus/$(f) &&) true

# chaos: the agent, its TPM and the license server killed at random under
# load for CHAOS_SECS seconds, invariants checked after every restart
# (tests/chaos, docs/testing.md); CHAOS_SEED=N replays a run.
CHAOS_SECS ?= 600
chaos: deps
	@$(MAKE) --no-print-directory build-tests
	@B=$(B) CHAOS_SECS=$(CHAOS_SECS) CHAOS_SEED=$(CHAOS_SEED) tests/chaos/chaos.sh
.PHONY: chaos

SYSTEMDUNITDIR ?= /lib/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
TMPFILESDIR ?= /usr/lib/tmpfiles.d
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/tpmlic
SERVER_DOCDIR ?= $(DOCDIR)
# the paths the units and the pkg-config file name
subst_paths = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SBINDIR@|$(SBINDIR)|g' \
	-e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	-e 's|@DOCDIR@|$(DOCDIR)|g' -e 's|@SERVER_DOCDIR@|$(SERVER_DOCDIR)|g'
# install_man PAGES: the built pages among PAGES (name.section) into MANDIR
install_man = $(if $(SCDOC),$(foreach m,$(1),install -D -m 0644 $(B)/man/$(m) \
	$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(m);),@echo "scdoc not found: man pages not installed";)

# install-agent: what an appliance needs (packaging/packaging.mk lists it):
# tpmlicd, tpmlicctl, libtpmlic's run-time library, the units, sysusers and
# tmpfiles files, the config, man pages, bash completion, docs. Everything
# root:root, files 0644 (programs 0755), directories 0755: the agent refuses
# trust files that anyone but root may write.
install-agent: build-all
	install -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBDIR) \
		$(DESTDIR)$(SYSCONFDIR)/tpmlic $(DESTDIR)$(SYSCONFDIR)/tpmlic/ek-ca.d \
		$(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
		$(DESTDIR)$(DOCDIR) $(DESTDIR)$(BASHCOMPDIR)
	$(foreach p,$(AGENT_SBIN),install -m 0755 $(B)/$(p) $(DESTDIR)$(SBINDIR)/$(p);)
	$(foreach p,$(AGENT_BIN),install -m 0755 $(B)/$(p) $(DESTDIR)$(BINDIR)/$(p);)
	$(foreach l,$(AGENT_SHLIBS),install -m 0644 $(B)/lib$(l).so.$(VERSION) $(DESTDIR)$(LIBDIR)/ && \
		ln -sf lib$(l).so.$(VERSION) $(DESTDIR)$(LIBDIR)/lib$(l).so.$($(l)_SOVERSION);)
	$(foreach u,$(AGENT_UNITS),$(subst_paths) $(u) >$(DESTDIR)$(SYSTEMDUNITDIR)/$(patsubst %.in,%,$(notdir $(u))) && \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$(patsubst %.in,%,$(notdir $(u)));)
	install -m 0644 packaging/systemd/tpmlic.sysusers $(DESTDIR)$(SYSUSERSDIR)/tpmlic.conf
	install -m 0644 packaging/systemd/tpmlic.tmpfiles $(DESTDIR)$(TMPFILESDIR)/tpmlic.conf
	test -e $(DESTDIR)$(SYSCONFDIR)/tpmlic/tpmlicd.conf || \
		install -m 0644 packaging/tpmlicd.conf $(DESTDIR)$(SYSCONFDIR)/tpmlic/tpmlicd.conf
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	$(call install_man,$(AGENT_MAN))
	$(foreach f,$(AGENT_BASHCOMP),install -m 0644 $(f) $(DESTDIR)$(BASHCOMPDIR)/$(notdir $(f));)

# install: everything: the agent's part, then tpmlic-vendor, tpmlic-server
# with its unit, and the development files of libtpmlic.
install: install-agent
	$(foreach p,$(filter-out $(AGENT_BIN),$(INSTALL_BIN)),install -m 0755 $(B)/$(p) $(DESTDIR)$(BINDIR)/$(p);)
	$(foreach p,$(filter-out $(AGENT_SBIN),$(INSTALL_SBIN)),install -m 0755 $(B)/$(p) $(DESTDIR)$(SBINDIR)/$(p);)
	$(foreach l,$(filter-out $(AGENT_SHLIBS),$(INSTALL_SHLIBS)),install -m 0644 $(B)/lib$(l).so.$(VERSION) \
		$(DESTDIR)$(LIBDIR)/ && ln -sf lib$(l).so.$(VERSION) $(DESTDIR)$(LIBDIR)/lib$(l).so.$($(l)_SOVERSION);)
	$(foreach l,$(INSTALL_SHLIBS),ln -sf lib$(l).so.$($(l)_SOVERSION) $(DESTDIR)$(LIBDIR)/lib$(l).so && \
		install -m 0644 $(B)/lib$(l).a $(DESTDIR)$(LIBDIR)/;)
	$(foreach h,$(INSTALL_HEADERS),install -D -m 0644 $(h) $(DESTDIR)$(INCLUDEDIR)/$(patsubst include/%,%,$(h));)
	$(if $(INSTALL_PC),install -d $(DESTDIR)$(PKGCONFIGDIR))
	$(foreach p,$(INSTALL_PC),$(subst_paths) $(p) >$(DESTDIR)$(PKGCONFIGDIR)/$(patsubst %.in,%,$(notdir $(p)));)
	$(foreach u,$(SERVER_UNITS),$(subst_paths) $(u) >$(DESTDIR)$(SYSTEMDUNITDIR)/$(patsubst %.in,%,$(notdir $(u))) && \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$(patsubst %.in,%,$(notdir $(u)));)
	install -m 0644 packaging/systemd/tpmlic-server.sysusers $(DESTDIR)$(SYSUSERSDIR)/tpmlic-server.conf
	test -e $(DESTDIR)$(SYSCONFDIR)/tpmlic/tpmlic-server.conf || \
		install -m 0644 packaging/tpmlic-server.conf $(DESTDIR)$(SYSCONFDIR)/tpmlic/tpmlic-server.conf
	$(call install_man,$(filter-out $(AGENT_MAN),$(MAN_PAGES)))
	$(foreach f,$(filter-out $(AGENT_BASHCOMP),$(INSTALL_BASHCOMP)),install -m 0644 $(f) $(DESTDIR)$(BASHCOMPDIR)/$(notdir $(f));)

# deb: the Debian packages, built with dpkg-buildpackage from a copy of the
# tree (so nothing is written beside it); vm-test: the appliance boot test.
DEB_DIR ?= $(B)/deb
deb:
	@packaging/build-debs $(DEB_DIR)

vm-test:
	@packaging/install-deps packaging/debian-packages.txt tests/vm/host-packages.txt
	@tests/vm/run

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

.PHONY: all build-all build-tests build-bench deps check demo bench fuzz run-fuzz install install-agent deb vm-test \
	format format-check clean
