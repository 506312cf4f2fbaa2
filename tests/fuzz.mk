# libFuzzer harnesses (make fuzz, clang): the two certificate decoders, the
# client library's answer parser, the computer ID's encoders and readers,
# tpmlic-server's request readers, tpmlicd's request bodies, its HTTP layer,
# its NV records and license slots, and both programs' config files.
# Certificate seeds: tests/fuzz/corpus/{license,activation}. The license seeds are signed
# with the harness's fixed key (a public seed, see fuzz_cert_license.c),
# written as PEM by the PKCS#8 prefix for Ed25519 and signed with
# tpmlic-vendor; files starting with '{' are bare payloads (activation: bare
# JSON) that the harnesses sign (encode) themselves:
#   seed=$(python3 -c 'print(bytes((0x11*(i%15)+i)&255 for i in range(32)).hex())')
#   echo 302e020100300506032b657004220420$seed | xxd -r -p |
#       openssl pkey -inform DER -out fuzz-key.pem
#   test-make-activation >act; tpmlic-vendor sign-activation --key fuzz-key.pem --in act ...
FUZZERS += fuzz_cert_license fuzz_cert_activation
fuzz_cert_license_SRCS := tests/fuzz/fuzz_cert_license.c
fuzz_cert_license_LIBS := cert hwidid common
fuzz_cert_license_PKGS := openssl jansson
fuzz_cert_license_CORPUS := tests/fuzz/corpus/license

fuzz_cert_activation_SRCS := tests/fuzz/fuzz_cert_activation.c
fuzz_cert_activation_LIBS := cert hwidid common
fuzz_cert_activation_PKGS := openssl jansson
fuzz_cert_activation_CORPUS := tests/fuzz/corpus/activation

# libtpmlic's answers: HTTP over a socketpair and the JSON decoders, from the
# library's sources. Seeds: answers as tpmlicd sends them (libmicrohttpd's
# headers, each endpoint's JSON) and as it does not; the first byte of each
# seed chooses GET (0x00) or HEAD (0x01).
FUZZERS += fuzz_client_answer
fuzz_client_answer_SRCS := tests/fuzz/fuzz_client_answer.c tests/lib/client_feed.c client/conn.c \
                           client/answer.c
fuzz_client_answer_LIBS := common
fuzz_client_answer_PKGS := jansson
fuzz_client_answer_LDLIBS := -lpthread
fuzz_client_answer_CORPUS := tests/fuzz/corpus/client

# hwid/: the EK's DER, digests as hex, the DMI and NIC encoders, and the DMI
# reader on files written from the input, rendered by --explain. The first
# byte of a seed chooses: 0 EK, 1 hex, 2 DMI values, 3 MAC addresses, 4 DMI
# files (values separated by NUL bytes, in the order product_uuid,
# sys_vendor, product_name, board_serial).
FUZZERS += fuzz_hwid
fuzz_hwid_SRCS := tests/fuzz/fuzz_hwid.c
fuzz_hwid_LIBS := hwid hwidid common
fuzz_hwid_PKGS := jansson openssl libudev
fuzz_hwid_CORPUS := tests/fuzz/corpus/hwid

# tpmlic-server's request readers: the appliance protocol's bodies, every
# admin API body, X-Forwarded-For, the trusted-proxy list. The first byte of
# a seed in tests/fuzz/corpus/server_requests picks the reader (see the
# harness).
FUZZERS += fuzz_server_requests
fuzz_server_requests_SRCS := tests/fuzz/fuzz_server_requests.c
fuzz_server_requests_LIBS := srv cert hwidid common
fuzz_server_requests_PKGS := openssl jansson sqlite3 libpq
fuzz_server_requests_LDLIBS := -lpthread
fuzz_server_requests_CORPUS := tests/fuzz/corpus/server_requests

# The agent's NV records (agent/store.h): the two license slots and the
# state index, as root may write them. The first two bytes of a seed in
# tests/fuzz/corpus/store split the rest into the two slots (see the
# harness).
FUZZERS += fuzz_agent_slots
fuzz_agent_slots_SRCS := tests/fuzz/fuzz_agent_slots.c
fuzz_agent_slots_LIBS := agent tpm common
fuzz_agent_slots_PKGS := openssl
fuzz_agent_slots_CORPUS := tests/fuzz/corpus/store

# tpmlicd's request bodies: every route's body reader (agent_routes_read_body),
# the proxy settings (agent_netconf_set into a temporary state directory)
# and network.json as the online part reads it. The first byte of a seed in
# tests/fuzz/corpus/agent_bodies picks the reader (see the harness).
FUZZERS += fuzz_agent_bodies
fuzz_agent_bodies_SRCS := tests/fuzz/fuzz_agent_bodies.c
fuzz_agent_bodies_LIBS := agent agenthttp cert hwid hwidid tpm common
fuzz_agent_bodies_LDLIBS := -lpthread
fuzz_agent_bodies_CORPUS := tests/fuzz/corpus/agent_bodies

# tpmlicd's HTTP layer (agent/http.c on libmicrohttpd), started once per
# process on a UNIX socket with a route table of the harness's; each input
# is one connection's raw bytes. The first byte of a seed chooses the peer
# (0 root, 1 service group, 2 admin group, 3 neither; as root only).
FUZZERS += fuzz_agent_http
fuzz_agent_http_SRCS := tests/fuzz/fuzz_agent_http.c
fuzz_agent_http_LIBS := agenthttp common
fuzz_agent_http_LDLIBS := -lpthread
fuzz_agent_http_CORPUS := tests/fuzz/corpus/agent_http

# tpmlicd's records in TPM NV through store.h's public decoders (the layout
# may change), the state record then through the grace arithmetic, and the
# EK certificate in NV (tpm_ek_key_from_cert). A seed's first byte modulo
# 3: 0 the license record, 1 the state record, 2 the EK certificate (DER,
# seeds made with openssl req -x509 -outform DER); the second byte picks
# the clock readings.
FUZZERS += fuzz_agent_store
fuzz_agent_store_SRCS := tests/fuzz/fuzz_agent_store.c
fuzz_agent_store_LIBS := agent agenthttp cert hwid hwidid tpm common
fuzz_agent_store_LDLIBS := -lpthread
fuzz_agent_store_CORPUS := tests/fuzz/corpus/agent_store

# The config files of tpmlicd (agent/config.c) and of tpmlic-server serve
# (server/config.c, compiled in), written to a temporary file and read as
# --config FILE. A seed's first byte: bit 0 the server, bit 1 with settings
# on the command line too.
FUZZERS += fuzz_config
fuzz_config_SRCS := tests/fuzz/fuzz_config.c server/config.c
fuzz_config_LIBS := agent agenthttp cert hwid hwidid tpm common
fuzz_config_PKGS := inih
fuzz_config_LDLIBS := -lpthread
fuzz_config_CORPUS := tests/fuzz/corpus/config
