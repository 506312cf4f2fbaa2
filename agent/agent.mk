# agent/: tpmlicd.
LIBS_ALL += agent
agent_SRCS := agent/clock.c agent/grace.c agent/online.c agent/licensing.c agent/tpminfo.c agent/config.c agent/store.c agent/privs.c agent/license.c agent/identity.c agent/api.c agent/activation.c agent/netconf.c agent/run.c agent/usage.c
agent_PKGS := openssl inih jansson libsystemd libcurl
agent_DEPS := agenthttp cert hwid hwidid tpm common

PROGS += tpmlicd
INSTALL_SBIN += tpmlicd
tpmlicd_SRCS := agent/main.c
tpmlicd_LIBS := agent agenthttp cert hwid hwidid tpm common
tpmlicd_LDLIBS := -lpthread
