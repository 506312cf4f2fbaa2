# agent/: tpmlicd.
LIBS_ALL += agent
agent_SRCS := agent/tpminfo.c agent/config.c agent/store.c agent/privs.c agent/license.c agent/identity.c
agent_PKGS := openssl inih jansson
agent_DEPS := hwid tpm common

PROGS += tpmlicd
INSTALL_SBIN += tpmlicd
tpmlicd_SRCS := agent/main.c
tpmlicd_LIBS := agent hwid hwidid tpm common
