# agent/: tpmlicd. docs/agent.md says which file owns what and which way
# calls go (routes, validator -> ledger -> leases, grace, license, store ->
# tpmio -> tpm/).
LIBS_ALL += agent
agent_SRCS := agent/clock.c agent/grace.c agent/leases.c agent/license.c agent/snapshot.c \
              agent/store.c agent/tpmio.c agent/activation.c agent/ledger.c agent/online.c \
              agent/validator.c agent/render.c agent/routes.c agent/netconf.c agent/config.c \
              agent/privs.c agent/paths.c agent/identity.c agent/tpminfo.c agent/run.c
agent_PKGS := openssl inih jansson libsystemd libcurl
agent_DEPS := agenthttp cert hwid hwidid tpm common

PROGS += tpmlicd
INSTALL_SBIN += tpmlicd
tpmlicd_SRCS := agent/main.c
tpmlicd_LIBS := agent agenthttp cert hwid hwidid tpm common
tpmlicd_LDLIBS := -lpthread
