#!/bin/bash
# The examples of docs/integration.md are real programs: each runs here
# against a real tpmlicd on swtpm (check, reserve, commit), so the guide
# cannot rot. C is compiled against libtpmlic in the build directory, Python
# and shell run as they are, Go is compiled and run when `go` is installed
# (it is not required: the test says when it skipped it).
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/agentlib.sh"

EX=$TPMLIC_SRCDIR/docs/examples

licensed() {
    licensed_agent a --type consumption --features standard --secs-allocated 100000 \
        --secs-granted 3600 --tick-secs 10 --offline-allowed \
        --expiry "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)"
    export TPMLIC_SOCKET=$T/a.sock
}

remaining() { api a GET /v1/status | jq .secs_remaining; }

# run_example NAME COMMAND...: runs it as `COMMAND 300 212` and `COMMAND 300
# 1 premium` and checks what it printed, what the agent charged, and that a
# feature the license lacks is refused with exit 1 and the agent's words
run_example() {
    local name=$1 before out rc=0
    shift
    before=$(remaining)
    out=$("$@" 300 212 2>&1) || fail "$name: exit $?: $out"
    assert_contains "$out" "allowed: feature standard" "$name"
    assert_contains "$out" "reserved 300 s (lease " "$name"
    assert_contains "$out" "charged 212 s, returned 88 s" "$name"
    assert_eq $((before - 212)) "$(remaining)" "$name: seconds left after it"
    out=$("$@" 300 1 premium 2>&1) || rc=$?
    assert_eq 1 "$rc" "$name with a feature the license lacks"
    assert_contains "$out" "does not include feature 'premium'" "$name"
    assert_eq $((before - 212)) "$(remaining)" "$name: nothing charged when refused"
    echo "    $name: ok"
}

test_c_example() {
    licensed
    # a library built with SANITIZE=1 needs its runtime in the program too
    san=()
    nm -D "$B/libtpmlic.so" | grep -q __asan_init && san=(-fsanitize=address,undefined)
    cc "${san[@]}" -std=c11 -Wall -Wextra -Werror -I"$TPMLIC_SRCDIR/include" -o "$T/service" "$EX/service.c" \
        -L"$B" -ltpmlic -Wl,-rpath,"$B" || fail "the C example does not compile"
    run_example C "$T/service"
}

test_python_example() {
    licensed
    run_example Python python3 "$EX/service.py"
}

test_python_example_survives_agent_restart() {
    # the kept-alive connection of a long-running service: the agent
    # restarts between two jobs, the next job goes through a new connection
    licensed
    out=$(python3 - "$EX" <<'PY'
import importlib.util, os, subprocess, sys
spec = importlib.util.spec_from_file_location("service", sys.argv[1] + "/service.py")
service = importlib.util.module_from_spec(spec)
spec.loader.exec_module(service)
conn = service.TpmlicConnection(os.environ["TPMLIC_SOCKET"])
service.call(conn, "POST", "/v1/check", {"feature": "standard"})
subprocess.run(["bash", "-c", os.environ["RESTART"]], check=True)
lease = service.call(conn, "POST", "/v1/usage/reserve", {"seconds": 5})
print(service.call(conn, "POST", "/v1/usage/commit", {"lease": lease["lease"], "used": 5}))
PY
    ) || fail "python example across a restart: $out"
    assert_contains "$out" "'charged': 5"
}

test_shell_example() {
    licensed
    run_example shell sh "$EX/service.sh"
}

test_go_example() {
    if ! command -v go >/dev/null 2>&1; then
        echo "    SKIPPED: go is not installed; docs/examples/service.go was not compiled (Go is not required)"
        return 0
    fi
    licensed
    (cd "$T" && cp "$EX/service.go" . && GOFLAGS=-mod=mod GO111MODULE=off go build -o "$T/service-go" service.go) ||
        fail "the Go example does not compile"
    run_example Go "$T/service-go"
}

# restart of agent a for the Python test, from a child process (where
# stop_agent cannot wait for it): stopped when its socket refuses
# connections (curl exit 7); a dying process may hold it open for a while
export RESTART='kill "$(cat "$T/a.pid")"
rc=0; n=0; until [ $rc = 7 ] || [ $((n += 1)) -gt 300 ]; do rc=0; curl -s --max-time 0.2 --unix-socket "$T/a.sock" http://localhost/ >/dev/null || rc=$?; done
. "$TPMLIC_SRCDIR/tests/lib/testlib.sh"; . "$TPMLIC_SRCDIR/tests/lib/agentlib.sh"; start_agent a "$(cat "$T/a.tcti")"'
export T TPMLIC_SRCDIR B

run_tests
