# packaging/: what make install and make install-agent copy besides the
# programs (systemd units, man pages, bash completion), and which programs
# make up the agent's part (install-agent, the Debian package tpmlicd).
AGENT_SBIN := tpmlicd
AGENT_BIN := tpmlicctl
AGENT_SHLIBS := tpmlic
AGENT_UNITS := packaging/systemd/tpmlicd.service.in packaging/systemd/tpmlicd.socket
SERVER_UNITS := packaging/systemd/tpmlic-server.service.in

# Bash completion for every program (tpmlicctl's is listed in client/).
INSTALL_BASHCOMP += packaging/bash-completion/tpmlicd packaging/bash-completion/tpmlic-vendor \
                    packaging/bash-completion/tpmlic-server
AGENT_BASHCOMP := packaging/bash-completion/tpmlicd packaging/bash-completion/tpmlicctl

# Man pages from scdoc sources docs/man/NAME.SECTION.scd, built when scdoc
# is installed (it is in packaging/debian-packages.txt).
SCDOC ?= $(shell command -v scdoc 2>/dev/null)
MAN_PAGES := $(patsubst docs/man/%.scd,%,$(wildcard docs/man/*.scd))
AGENT_MAN := tpmlicd.8 tpmlicctl.1 tpmlicd.conf.5
ifneq ($(SCDOC),)
build-all: $(addprefix $(B)/man/,$(MAN_PAGES))
endif
$(B)/man/%: docs/man/%.scd
	@mkdir -p $(@D)
	$(SCDOC) <$< >$@.tmp && mv $@.tmp $@
