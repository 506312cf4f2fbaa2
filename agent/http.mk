# agent/: the HTTP/1.1 server on the UNIX socket (libmicrohttpd), with its
# route table, peer-credential permissions and body limits. tpmlicd links it.
LIBS_ALL += agenthttp
agenthttp_SRCS := agent/http.c
agenthttp_PKGS := libmicrohttpd jansson libsystemd
agenthttp_DEPS := common
