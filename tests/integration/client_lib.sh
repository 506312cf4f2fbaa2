#!/bin/bash
# libtpmlic against a real tpmlicd on swtpm: the cmocka program
# tests/integration/test_client.c (linked against the shared library as a
# service would be) on a licensed agent, and what the shared and static
# libraries export (only tpmlic_*, soname libtpmlic.so.0).
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/agentlib.sh"

test_library_against_agent() {
    [ "$(id -u)" = 0 ] || fail "the permission test switches users and must run as root (CI does)"
    licensed_agent a --type consumption --features standard --secs-allocated 1000000 \
        --secs-granted 100000 --tick-secs 10 --offline-allowed \
        --expiry "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)"
    chmod 755 "$T" # the permission test connects as uid 65534
    mkdir -p "$T/scratch" && chmod 777 "$T/scratch"
    rc=0
    TPMLIC_TEST_SOCKET=$T/a.sock TPMLIC_TEST_PIDFILE=$T/a.pid TPMLIC_TEST_LOG=$T/a.log \
        TPMLIC_TEST_DIR=$T/scratch "$B/test-client" || rc=$?
    # the test kills the agent at its end (and restarted it before: the
    # agent running now is not this shell's child)
    rm -f "$T/a.pid"
    [ $rc = 0 ] || { tail -n 30 "$T/a.log" >&2; fail "test-client failed"; }
}

test_shared_library_exports_only_the_api() {
    lib=$B/libtpmlic.so
    [ -e "$lib" ] || fail "$lib not built"
    soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
    assert_eq libtpmlic.so.0 "$soname" "soname"
    # (names without their version, and without the symbol of the version
    # node itself, TPMLIC_0: client/libtpmlic.map)
    others=$(nm -D --defined-only --without-symbol-versions "$lib" | awk '!($2 == "A" && $3 ~ /^TPMLIC_[0-9.]*$/) {print $3}' | grep -v '^tpmlic_' || true)
    assert_eq "" "$others" "exported symbols without the tpmlic_ prefix"
    for f in tpmlic_connect tpmlic_close tpmlic_check tpmlic_reserve tpmlic_commit tpmlic_status \
        tpmlic_request tpmlic_set_timeout; do
        nm -D --defined-only --without-symbol-versions "$lib" | grep -q " T $f\$" || fail "$f not exported"
    done
    # every exported function is declared in the public header, and back
    for f in $(nm -D --defined-only --without-symbol-versions "$lib" | awk '!($2 == "A" && $3 ~ /^TPMLIC_[0-9.]*$/) {print $3}'); do
        grep -q "\b$f(" "$TPMLIC_SRCDIR/include/tpmlic/client.h" || fail "$f is not in client.h"
    done
    # the static twin holds the same API and nothing else: the common/
    # helpers compiled into the library are local to it
    nm "$B/libtpmlic.a" | grep -q ' T tpmlic_check$' || fail "libtpmlic.a lacks tpmlic_check"
    others=$(nm -g --defined-only "$B/libtpmlic.a" | awk 'NF == 3 {print $3}' | grep -v '^tpmlic_' || true)
    assert_eq "" "$others" "global symbols of libtpmlic.a without the tpmlic_ prefix"
    nm "$B/libtpmlic.a" | grep -q ' t cj_load_object$' || fail "libtpmlic.a lacks its JSON reader"
}

run_tests
