#!/bin/bash
# tpmlicctl against a real tpmlicd on swtpm: every command of SPEC section 9,
# text and --json output, exit codes (0 success, 1 refused, 2 usage, 3
# unreachable), an agent that is not running or never answers, permission
# denied for a second uid, help for every command, the proxy password
# prompt, wait (through the agent's start, a license applied later, its
# timeout, a missing feature, refusals), and the bash completion.
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/agentlib.sh"

CTL=$B/tpmlicctl

# ctl ARGS...: runs tpmlicctl on agent a; stdout in $T/out, stderr in
# $T/err, exit status in $T/rc; prints stdout
ctl() {
    local rc=0
    "$CTL" --socket "$T/a.sock" "$@" >"$T/out" 2>"$T/err" || rc=$?
    echo $rc >"$T/rc"
    cat "$T/out"
}
rc() { cat "$T/rc"; }
err() { cat "$T/err"; }

# expect_rc CODE ARGS...: tpmlicctl exits with CODE
expect_rc() {
    local want=$1
    shift
    ctl "$@" >/dev/null
    [ "$(rc)" = "$want" ] || fail "tpmlicctl $*: exit $(rc), expected $want; stderr: $(err)"
}

in30days() { date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ; }

# value KEY: the value of an aligned "key   value" line of $T/out; keys
# are padded to 20 columns
value() {
    awk -v k="$1" 'substr($0, 1, 20) ~ "^" k " *$" { print substr($0, 21) }' "$T/out"
}

COMMANDS=("status" "computer-id" "check" "wait" "activate" "deactivate" "offline request"
    "offline apply" "offline-mode" "proxy set" "proxy clear" "usage reserve" "usage commit")

test_help_and_version() {
    out=$("$CTL" --help) || fail "--help exit $?"
    for c in "${COMMANDS[@]}"; do
        assert_contains "$out" "  $c" "--help"
        # shellcheck disable=SC2086
        h1=$("$CTL" help $c) || fail "help $c: exit $?"
        # shellcheck disable=SC2086
        h2=$("$CTL" $c --help) || fail "$c --help: exit $?"
        assert_eq "$h1" "$h2" "help $c and $c --help"
        assert_contains "$h1" "Usage: tpmlicctl [--socket PATH] [--json] $c" "help $c"
        assert_contains "$h1" "Exit status: 0 success, 1 the agent refused" "help $c"
    done
    assert_contains "$("$CTL" help)" "Commands:"
    assert_contains "$("$CTL" offline --help)" "offline request LICENSE [--out FILE]"
    assert_contains "$("$CTL" help proxy)" "proxy clear"
    assert_contains "$("$CTL" -h)" "--socket PATH"
    # help never needs the agent
    "$CTL" --socket "$T/none.sock" status --help >/dev/null || fail "status --help needs the agent"
    out=$("$CTL" --version)
    [[ $out =~ ^tpmlicctl\ [0-9]+\.[0-9]+\.[0-9]+\ \(libtpmlic\ [0-9.]+\)$ ]] || fail "--version: $out"
}

test_usage_errors() {
    # exit 2, before and without talking to the agent (there is none)
    expect_rc 2
    assert_contains "$(err)" "Usage: tpmlicctl"
    expect_rc 2 frobnicate
    assert_contains "$(err)" "unknown command 'frobnicate'"
    expect_rc 2 --bogus status
    assert_contains "$(err)" "unknown option '--bogus'"
    expect_rc 2 status --bogus
    expect_rc 2 status extra
    assert_contains "$(err)" "too many arguments"
    expect_rc 2 activate
    assert_contains "$(err)" "missing arguments"
    expect_rc 2 check --feature
    assert_contains "$(err)" "tpmlicctl check: option '--feature' needs a value (see 'tpmlicctl check --help')"
    expect_rc 2 offline
    assert_contains "$(err)" "tpmlicctl offline: a command is needed (see 'tpmlicctl offline --help')"
    expect_rc 2 offline nope
    expect_rc 2 offline apply L-1
    expect_rc 2 offline-mode maybe
    assert_contains "$(err)" "'on' or 'off'"
    expect_rc 2 proxy set host notaport
    assert_contains "$(err)" "port must be a number"
    expect_rc 2 proxy set host 70000
    expect_rc 2 proxy set host 3128 --password-file /dev/null
    assert_contains "$(err)" "--password-file needs --user"
    # a password on the command line is not an option
    expect_rc 2 proxy set host 3128 --user u --password secret
    assert_contains "$(err)" "unknown option '--password'"
    expect_rc 2 usage reserve abc
    expect_rc 2 usage reserve 0
    expect_rc 2 usage reserve -5
    expect_rc 2 usage commit LEASE x
    expect_rc 2 usage
    expect_rc 2 --timeout 0 status
    expect_rc 2 --socket
    expect_rc 2 help nope
    echo -n >"$T/empty"
    expect_rc 2 offline apply L-1 "$T/empty"
    assert_contains "$(err)" "is empty"
    expect_rc 2 offline apply L-1 "$T/missing"
    assert_contains "$(err)" "cannot read the license certificate"
}

test_agent_not_running() {
    expect_rc 3 status
    assert_contains "$(err)" "tpmlicd is not running: there is no socket $T/a.sock"
    # TPMLIC_SOCKET names the socket when --socket does not
    rc=0
    TPMLIC_SOCKET=$T/env.sock "$CTL" status 2>"$T/err" || rc=$?
    assert_eq 3 "$rc" "exit status"
    assert_contains "$(err)" "$T/env.sock"
    # a socket file nobody listens on (an agent that was killed)
    python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$T/a.sock"
    expect_rc 3 check
    assert_contains "$(err)" "nothing listens on $T/a.sock"
    expect_rc 3 --json usage reserve 10
}

test_no_answer_times_out() {
    socat UNIX-LISTEN:"$T/a.sock",fork SYSTEM:'cat >/dev/null' &
    echo $! >"$T/socat.pid"
    for _ in $(seq 1 50); do [ -S "$T/a.sock" ] && break; sleep 0.02; done
    start=$(date +%s%N)
    expect_rc 3 --timeout 1 status
    ms=$((($(date +%s%N) - start) / 1000000))
    assert_contains "$(err)" "did not answer within 1 s"
    [ "$ms" -lt 3000 ] || fail "took $ms ms with --timeout 1"
}

test_unlicensed_agent() {
    vendor_keys
    start_agent a "$(new_tpm a.tpm)"
    ctl status >/dev/null
    assert_eq 0 "$(rc)"
    assert_eq no "$(value licensed)" "licensed"
    assert_eq no "$(value valid)"
    assert_eq "License is invalid" "$(value reason)"
    assert_eq ok "$(value TPM)"
    id=$(api a GET /v1/status | jq -r .computer_id)
    assert_eq "$id" "$(value 'computer ID')"
    assert_eq "$id" "$(ctl computer-id)" "computer-id"
    assert_eq "$id" "$(ctl --json computer-id | jq -r .computer_id)" "computer-id --json"
    assert_eq false "$(ctl --json status | jq .licensed)" "status --json"
    # refusals: exit 1, the agent's message on stderr
    expect_rc 1 check
    assert_contains "$(err)" "tpmlicctl: You are not authorised to perform this action: License is invalid"
    assert_eq false "$(ctl --json check | jq .allowed)" "check --json prints the agent's JSON"
    # online activation and removal: no license server yet (503)
    expect_rc 1 activate L-1 --username "Amy Liu" --email a@example.com --company "Example Pty"
    assert_contains "$(err)" "no license server is configured"
    assert_eq 503 "$(ctl --json activate L-1 | jq .code)" "activate --json"
    expect_rc 1 deactivate
    assert_contains "$(err)" "No license is applied"
    expect_rc 1 offline-mode on
    assert_contains "$(err)" "No license is applied"
    expect_rc 1 usage reserve 10
    # the agent refuses what tpmlicctl cannot know is wrong
    expect_rc 1 usage reserve 100000
    assert_contains "$(err)" "'seconds' must be a whole number from 1 to 86400"
}

test_offline_activation_and_status() {
    vendor_keys
    start_agent a "$(new_tpm a.tpm)"
    ctl offline request L-1 --out "$T/act.txt" --username "Amy Liu" --company "Example Pty" >/dev/null
    assert_eq 0 "$(rc)" "offline request: $(err)"
    assert_contains "$(cat "$T/out")" "written to $T/act.txt"
    assert_contains "$(cat "$T/out")" "tpmlicctl offline apply L-1 FILE"
    # ready to e-mail: lines of at most 76 characters
    longest=$(awk '{ if (length($0) > m) m = length($0) } END { print m }' "$T/act.txt")
    assert_eq 76 "$longest" "longest line of the activation certificate"
    # on stdout without --out; the agent's JSON with --json
    ctl offline request L-1 >"$T/act2.txt"
    assert_eq 0 "$(rc)"
    [ "$(wc -l <"$T/act2.txt")" -gt 10 ] || fail "certificate on stdout: $(cat "$T/act2.txt")"
    cert=$(ctl --json offline request L-1 | jq -r .activation_certificate)
    [ ${#cert} -gt 1000 ] || fail "offline request --json: $(cat "$T/out")"
    # the vendor signs the file as it came (line ends and all)
    "$VENDOR" sign-activation --key "$T/vendor.key" --in "$T/act.txt" --product speech \
        --customer-id 4949 --type consumption --expiry "$(in30days)" --features standard,enhanced \
        --secs-allocated 1800000 --secs-granted 3600 --tick-secs 10 --offline-allowed >"$T/lic.jws"
    # a certificate that is not one: refused by the agent
    echo "not.a.certificate" >"$T/bad.jws"
    expect_rc 1 offline apply L-1 "$T/bad.jws"
    # wrapped by a mail client: still applies
    fold -w 60 "$T/lic.jws" >"$T/lic-wrapped.jws"
    ctl offline apply L-1 "$T/lic-wrapped.jws" >/dev/null
    assert_eq 0 "$(rc)" "offline apply: $(err)"
    assert_contains "$(cat "$T/out")" "license L-1 applied"
    assert_eq speech "$(value product)"
    # from standard input too
    rc=0
    "$CTL" --socket "$T/a.sock" --json offline apply L-1 - <"$T/lic.jws" >"$T/out" || rc=$?
    assert_eq 0 "$rc"
    assert_eq true "$(jq .licensed "$T/out")" "offline apply --json"

    ctl status >/dev/null
    assert_eq 0 "$(rc)"
    assert_eq yes "$(value licensed)"
    assert_eq yes "$(value valid)"
    assert_eq speech "$(value product)"
    assert_eq L-1 "$(value 'license code')"
    assert_eq 4949 "$(value 'customer ID')"
    assert_eq consumption "$(value 'license type')"
    assert_eq offline "$(value activation)"
    assert_eq "standard, enhanced" "$(value features)"
    assert_eq "1 h 0 min (3600 s)" "$(value 'seconds left')"
    assert_eq "500 h 0 min (1800000 s)" "$(value 'seconds allocated')"
    assert_eq "none (not in grace)" "$(value 'grace period ends')"
    assert_eq on "$(value 'offline mode')"
    # the expiry in local time, and how far away
    exp=$(value expires)
    assert_contains "$exp" "$(date -d "$(in30days)" +%Y-%m-%d)" "expires (local date)"
    [[ $exp == *"(in 29 days)" || $exp == *"(in 30 days)" ]] || fail "expires: $exp"
    TZ=Asia/Tokyo ctl status >/dev/null
    assert_contains "$(value expires)" "JST" "expires in local time"
    # --json: the agent's own answer
    api a GET /v1/status | jq -S 'del(.tpm)' >"$T/api.json"
    ctl --json status | jq -S 'del(.tpm)' >"$T/ctl.json"
    assert_eq "$(cat "$T/api.json")" "$(cat "$T/ctl.json")" "status --json"

    ctl check >/dev/null
    assert_eq 0 "$(rc)"
    assert_contains "$(cat "$T/out")" "allowed"
    ctl check --feature enhanced >/dev/null
    assert_eq 0 "$(rc)"
    assert_eq true "$(ctl --json check --feature=standard | jq .allowed)"
    expect_rc 1 check --feature premium
    assert_contains "$(err)" "License does not include feature 'premium'"

    # offline mode: on is fine, off is refused for an offline activation
    ctl offline-mode on >/dev/null
    assert_eq 0 "$(rc)"
    assert_eq "offline mode is on" "$(cat "$T/out")"
    expect_rc 1 offline-mode off
    assert_contains "$(err)" "activated offline and stays in offline mode"
    # online commands are refused in offline mode
    expect_rc 1 deactivate
    assert_contains "$(err)" "Cannot remove license in offline mode"
    expect_rc 1 activate L-2
    assert_contains "$(err)" "offline mode is on"
}

test_usage_reserve_and_commit() {
    licensed_agent a --type consumption --features standard --secs-allocated 100000 \
        --secs-granted 3600 --tick-secs 10 --offline-allowed --expiry "$(in30days)"
    ctl usage reserve 300 --feature standard >/dev/null
    assert_eq 0 "$(rc)" "reserve: $(err)"
    lease=$(value lease)
    assert_eq 32 "${#lease}" "lease id"
    assert_eq "5 min (300 s)" "$(value granted)"
    assert_contains "$(value expires)" "in 6 minutes"
    ctl usage commit "$lease" 212 >/dev/null
    assert_eq 0 "$(rc)" "commit: $(err)"
    assert_eq "3 min 32 s (212 s)" "$(value charged)"
    assert_eq "1 min 28 s (88 s)" "$(value returned)"
    expect_rc 1 usage commit "$lease" 1
    assert_contains "$(err)" "no open lease"
    # JSON for scripts
    out=$(ctl --json usage reserve 20)
    lease=$(jq -r .lease <<<"$out")
    assert_eq 20 "$(jq .seconds <<<"$out")"
    out=$(ctl --json usage commit "$lease" 5)
    assert_eq 5 "$(jq .charged <<<"$out")"
    assert_eq 15 "$(jq .returned <<<"$out")"
    assert_eq $((3600 - 217)) "$(ctl --json status | jq .secs_remaining)"
    expect_rc 1 usage reserve 10 --feature enhanced
    assert_contains "$(err)" "does not include feature 'enhanced'"
    # what is left, when less than asked
    ctl --json usage reserve 5000 >/dev/null
    assert_eq $((3600 - 217)) "$(jq .seconds "$T/out")" "partial grant"
    expect_rc 1 usage reserve 1
    assert_contains "$(err)" "no usage seconds left"
}

test_proxy() {
    vendor_keys
    start_agent a "$(new_tpm a.tpm)"
    printf 's3cr3t-pw\n' >"$T/pw"
    ctl proxy set proxy.example.com 3128 --user amy --password-file "$T/pw" >/dev/null
    assert_eq 0 "$(rc)" "proxy set: $(err)"
    assert_contains "$(cat "$T/out")" "proxy.example.com:3128 as user amy (password set)"
    assert_eq s3cr3t-pw "$(jq -r .password "$T/a.state/network.json")" "stored password"
    out=$(ctl --json proxy set proxy.example.com 8080 --user amy --password-file "$T/pw")
    assert_eq true "$(jq .http_configuration.password_set <<<"$out")"
    assert_eq 8080 "$(jq .http_configuration.port <<<"$out")"
    grep -q s3cr3t "$T/out" "$T/err" "$T/a.log" && fail "the password was shown or logged"
    # without a user: no password asked
    ctl proxy set 10.0.0.1 3128 </dev/null >/dev/null
    assert_eq 0 "$(rc)"
    assert_eq null "$(jq .user "$T/a.state/network.json")"
    # typed at a prompt without echo when standard input is a terminal
    python3 - "$CTL" --socket "$T/a.sock" proxy set proxy.example.com 3128 --user bob \
        >"$T/tty.out" 2>&1 <<'PY' || fail "proxy set at a terminal: $(cat "$T/tty.out")"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
seen = b""
while b"Password" not in seen:  # answer the prompt, as a person would
    seen += os.read(fd, 1024)
os.write(fd, b"typed-pw\n")
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
PY
    assert_contains "$(cat "$T/tty.out")" "Password for proxy user bob"
    grep -q typed-pw "$T/tty.out" && fail "the typed password was echoed: $(cat "$T/tty.out")"
    assert_eq typed-pw "$(jq -r .password "$T/a.state/network.json")" "password typed at the prompt"
    # refused by the agent
    expect_rc 1 proxy set 'bad host!' 3128
    assert_contains "$(err)" "is not a host name or address"
    # clear: no proxy
    ctl proxy clear >/dev/null
    assert_eq 0 "$(rc)"
    assert_contains "$(cat "$T/out")" "proxy cleared"
    assert_eq '{"ip":""}' "$(cat "$T/a.state/network.json")"
    assert_eq '""' "$(ctl --json proxy clear | jq .http_configuration.ip)"
}

# as_nobody GROUPS ARGS...: tpmlicctl as uid 65534 with these groups
as_nobody() {
    local groups=$1 g=(--clear-groups) rc=0
    shift
    [ -n "$groups" ] && g=(--groups "$groups")
    setpriv --reuid 65534 --regid 65534 "${g[@]}" "$CTL" --socket "$T/a.sock" "$@" \
        >"$T/out" 2>"$T/err" || rc=$?
    echo $rc >"$T/rc"
}

test_permission_denied() {
    [ "$(id -u)" = 0 ] || fail "this test switches users and must run as root (CI does)"
    licensed_agent a --type perpetual --features standard --offline-allowed
    chmod 755 "$T"
    # no group: the agent refuses (403) — exit 3 with a message naming permission
    as_nobody "" status
    assert_eq 3 "$(rc)" "status without group"
    assert_contains "$(err)" "permission denied: GET /v1/status needs"
    assert_contains "$(err)" "run as root, or as a member of group"
    # the service group: status and check, but no management
    as_nobody 4242 status
    assert_eq 0 "$(rc)" "status as service group: $(err)"
    assert_contains "$(cat "$T/out")" "valid               yes"
    grep -q "license code" "$T/out" && fail "status showed management fields to a service caller"
    as_nobody 4242 check
    assert_eq 0 "$(rc)"
    as_nobody 4242 offline request L-1
    assert_eq 3 "$(rc)" "offline request as service group"
    assert_contains "$(err)" "needs root or membership of group 4343"
    # the admin group: management too
    as_nobody 4343 status
    assert_eq 0 "$(rc)"
    assert_contains "$(cat "$T/out")" "license code"
    # a socket the kernel keeps them out of
    chmod 0600 "$T/a.sock"
    as_nobody 4343 status
    assert_eq 3 "$(rc)" "status on a 0600 socket"
    assert_contains "$(err)" "permission denied on the socket $T/a.sock"
}

# --- wait ------------------------------------------------------------------------

# wait_bg ARGS...: tpmlicctl wait in the background on agent a; its
# stdout, stderr and exit status in $T/wait.out, $T/wait.err, $T/wait.rc
wait_bg() {
    rm -f "$T/wait.rc"
    ( rc=0; "$CTL" --socket "$T/a.sock" wait "$@" >"$T/wait.out" 2>"$T/wait.err" || rc=$?
      echo $rc >"$T/wait.rc" ) &
    echo $! >"$T/waiter.pid"
}
# wait_done SECS: the background wait ends within SECS seconds; its status
wait_done() {
    local i
    for i in $(seq 1 $(($1 * 20))); do
        [ -s "$T/wait.rc" ] && { cat "$T/wait.rc"; return 0; }
        sleep 0.05
    done
    fail "tpmlicctl wait did not end within $1 s: $(cat "$T/wait.err")"
}
wait_running() { [ ! -s "$T/wait.rc" ] || fail "wait ended early: $(cat "$T/wait.rc") $(cat "$T/wait.err")"; }

test_wait_through_agent_start_and_license() {
    vendor_keys
    # no agent yet, no socket: wait keeps asking, with --progress for a log
    wait_bg --progress --feature enhanced
    sleep 0.5
    wait_running
    assert_contains "$(cat "$T/wait.err")" "waiting: tpmlicd is not running: there is no socket $T/a.sock"
    # the agent comes up without a license: still waiting, now for the license
    tcti=$(new_tpm a.tpm)
    start_agent a "$tcti"
    sleep 1.5
    wait_running
    assert_contains "$(cat "$T/wait.err")" "waiting: You are not authorised to perform this action: License is invalid"
    # the license comes (the offline round trip): wait ends, 0
    offline_request a L-1
    vendor_sign a --product p --customer-id 1 --type perpetual --features standard,enhanced
    apply_license a L-1 >/dev/null
    assert_eq 200 "$(status)" "apply"
    assert_eq 0 "$(wait_done 5)" "wait's exit status: $(cat "$T/wait.err")"
    assert_contains "$(cat "$T/wait.err")" "the license is valid and includes feature 'enhanced'"
    assert_eq "" "$(cat "$T/wait.out")" "stdout without --json"
    # a licensed agent answers at once; quiet when stderr is not a terminal
    ctl wait --feature standard >/dev/null
    assert_eq 0 "$(rc)" "wait on a licensed agent: $(err)"
    assert_eq "" "$(err)" "wait without --progress and no terminal"
    assert_eq true "$(ctl --json wait | jq .allowed)" "wait --json"
    # the agent restarts (a license in the TPM): a wait that began while it
    # was gone ends once it is back
    stop_agent a
    wait_bg --timeout 30
    sleep 0.5
    wait_running
    start_agent a "$tcti"
    assert_eq 0 "$(wait_done 5)" "wait through a restart: $(cat "$T/wait.err")"
}

test_wait_timeout_and_missing_feature() {
    licensed_agent a --type perpetual --features standard --offline-allowed
    # a feature the license lacks: waits, then exit 1 with the agent's reason
    start=$(date +%s%N)
    expect_rc 1 wait --feature premium --timeout 2
    ms=$((($(date +%s%N) - start) / 1000000))
    [ "$ms" -ge 1900 ] && [ "$ms" -lt 4000 ] || fail "--timeout 2 took $ms ms"
    assert_contains "$(err)" "tpmlicctl: gave up after 2 s: You are not authorised to perform this action: License does not include feature 'premium'"
    # --json: the agent's last answer
    assert_eq false "$(ctl --json wait --feature premium --timeout 1 | jq .allowed)"
    # the global --timeout before the command means the same for wait
    expect_rc 1 --timeout 1 wait --feature premium
    # not a busy loop: 100 ms growing to 1 s is about 7 checks in 3 s
    before=$(api a GET /metrics | sed -n 's/^tpmlic_checks_total{result="denied"} //p')
    expect_rc 1 wait --feature premium --timeout 3
    after=$(api a GET /metrics | sed -n 's/^tpmlic_checks_total{result="denied"} //p')
    n=$((after - before))
    [ "$n" -ge 4 ] && [ "$n" -le 10 ] || fail "wait made $n checks in 3 s"
    ctl wait --feature standard --timeout 1 >/dev/null
    assert_eq 0 "$(rc)" "wait for a feature the license has"
}

test_wait_gives_up_on_no_agent_and_refusals() {
    # never an agent: exit 3 with why
    expect_rc 3 wait --timeout 1
    assert_contains "$(err)" "tpmlicctl: gave up after 1 s: tpmlicd is not running: there is no socket $T/a.sock"
    # a socket nobody listens on
    python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$T/a.sock"
    expect_rc 3 wait --timeout 1
    assert_contains "$(err)" "nothing listens on $T/a.sock"
    rm -f "$T/a.sock"
    # an answer that no waiting changes (what a real agent sends for an
    # endpoint it lacks): exit 1 at once
    python3 - "$T/a.sock" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
body = b'{"error":"no such path","code":404}'
while True:
    c, _ = s.accept()
    c.recv(65536)
    c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    c.close()
PY
    echo $! >"$T/fake.pid"
    for _ in $(seq 1 50); do [ -S "$T/a.sock" ] && break; sleep 0.02; done
    start=$(date +%s%N)
    expect_rc 1 wait --timeout 20
    ms=$((($(date +%s%N) - start) / 1000000))
    [ "$ms" -lt 2000 ] || fail "a 404 was waited on for $ms ms"
    assert_contains "$(err)" "tpmlicctl: no such path"
    expect_rc 2 wait extra
    expect_rc 2 wait --timeout 0
    expect_rc 2 wait --timeout
}

test_wait_permission_denied() {
    [ "$(id -u)" = 0 ] || fail "this test switches users and must run as root (CI does)"
    licensed_agent a --type perpetual --features standard --offline-allowed
    chmod 755 "$T"
    # the agent's own 403: final at once, exit 3
    start=$(date +%s%N)
    as_nobody "" wait
    ms=$((($(date +%s%N) - start) / 1000000))
    assert_eq 3 "$(rc)" "wait without the group"
    assert_contains "$(err)" "permission denied: POST /v1/check needs"
    [ "$ms" -lt 2000 ] || fail "the agent's 403 was waited on for $ms ms"
    as_nobody 4242 wait --feature standard
    assert_eq 0 "$(rc)" "wait as the service group: $(err)"
    # a socket file the caller may not open: given a few seconds (the agent
    # sets its mode right after creating it), then exit 3
    chmod 0600 "$T/a.sock"
    start=$(date +%s%N)
    as_nobody 4343 wait
    ms=$((($(date +%s%N) - start) / 1000000))
    assert_eq 3 "$(rc)" "wait on a 0600 socket"
    assert_contains "$(err)" "permission denied on the socket $T/a.sock"
    [ "$ms" -ge 4500 ] && [ "$ms" -lt 8000 ] || fail "a refused socket was waited on for $ms ms"
}

test_bash_completion() {
    # shellcheck disable=SC1091
    . "$TPMLIC_SRCDIR/packaging/bash-completion/tpmlicctl"
    complete_words() { # the words offered for the command line "$@" (last word: the prefix)
        COMP_WORDS=(tpmlicctl "$@")
        COMP_CWORD=$#
        COMPREPLY=()
        _tpmlicctl
        echo "${COMPREPLY[*]}"
    }
    assert_contains "$(complete_words "")" "status"
    assert_contains "$(complete_words "")" "offline-mode"
    assert_eq "offline offline-mode" "$(complete_words off)"
    assert_eq "request apply" "$(complete_words offline "")"
    assert_eq "set clear" "$(complete_words proxy "")"
    assert_eq "reserve commit" "$(complete_words usage "")"
    assert_eq "on off" "$(complete_words offline-mode "")"
    assert_eq "--feature" "$(complete_words check --f)"
    assert_contains "$(complete_words proxy set h 1 --)" "--password-file"
    assert_contains "$(complete_words --json "")" "status"
    assert_contains "$(complete_words --socket /x "")" "computer-id"
    assert_contains "$(complete_words help "")" "usage"
    assert_contains "$(complete_words "")" "wait"
    assert_eq "--progress" "$(complete_words wait --p)" "wait's options"
    assert_eq "--timeout" "$(complete_words wait --t)"
    assert_eq "--feature" "$(complete_words wait --timeout 5 --f)"
}

run_tests
