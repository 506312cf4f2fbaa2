#!/bin/bash
# Usage seconds on a real swtpm: leases, the write-ahead counter, commits
# returning seconds, running out, and no seconds coming back from a crash, a
# restored disk or a re-created counter.
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/agentlib.sh"

COUNTER=0x01a0c001

counter_value() { # TCTI [AGENT]: the usage counter as a number (read as root can)
    TPM2TOOLS_TCTI=$1 tpm2_nvread $COUNTER -P "$(nv_auth "${2:-a}")" 2>/dev/null |
        od -An -tx1 | tr -d ' \n' |
        (read -r hex; echo $((16#$hex)))
}

# licensed NAME GRANTED TICK [features]
licensed() {
    vendor_keys
    tcti=$(new_tpm "$1.tpm")
    start_agent "$1" "$tcti"
    offline_request "$1" L-1
    vendor_sign "$1" --product p --customer-id 1 --type consumption \
        --expiry "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)" --features "${4:-standard}" \
        --secs-allocated 1000000 --secs-granted "$2" --tick-secs "$3" --offline-allowed
    apply_license "$1" L-1 >/dev/null
    assert_eq 200 "$(status)" "license: $(cat "$T/resp")"
}

remaining() { api "$1" GET /v1/status | jq .secs_remaining; }

test_reserve_commit_write_ahead() {
    licensed a 600 10
    c0=$(counter_value "$tcti")
    out=$(api a POST /v1/usage/reserve '{"seconds": 25}')
    assert_eq 200 "$(status)" "reserve: $out"
    assert_eq 25 "$(jq .seconds <<<"$out")"
    lease=$(jq -r .lease <<<"$out")
    # the counter covers the lease before the answer: 3 ticks of 10 s
    assert_eq $((c0 + 3)) "$(counter_value "$tcti")" "counter after reserve"
    out=$(api a POST /v1/usage/commit "{\"lease\": \"$lease\", \"used\": 5}")
    assert_eq 200 "$(status)" "commit: $out"
    assert_eq 5 "$(jq .charged <<<"$out")"
    assert_eq 20 "$(jq .returned <<<"$out")"
    assert_eq 595 "$(remaining a)" "remaining after 5 s used"
    m=$(api a GET /metrics)
    assert_contains "$m" 'tpmlic_usage_seconds_total{kind="charged"} 5'
    assert_contains "$m" 'tpmlic_usage_seconds_total{kind="returned"} 20'
    assert_contains "$m" 'tpmlic_usage_pool_seconds 25'
    assert_contains "$m" 'tpmlic_usage_tpm_increments_total 3'
    # what Prometheus' own checker says of the agent's exposition
    promtool check metrics <<<"$m" || fail "promtool: $(promtool check metrics <<<"$m" 2>&1)"
    assert_contains "$m" 'tpmlic_build_info{version="'
    # the returned seconds are used again without a TPM write
    out=$(api a POST /v1/usage/reserve '{"seconds": 20}')
    assert_eq $((c0 + 3)) "$(counter_value "$tcti")" "counter after reserving covered seconds"
    api a POST /v1/usage/commit "{\"lease\": \"$lease\", \"used\": 1}" >/dev/null
    assert_eq 404 "$(status)" "second commit of one lease"
    api a POST /v1/usage/commit '{"lease": "nope", "used": 1}' >/dev/null
    assert_eq 404 "$(status)"
    api a POST /v1/usage/reserve '{"seconds": 0}' >/dev/null
    assert_eq 400 "$(status)"
    api a POST /v1/usage/reserve '{"seconds": "10"}' >/dev/null
    assert_eq 400 "$(status)"
    out=$(api a POST /v1/usage/reserve '{"seconds": 10, "feature": "enhanced"}')
    assert_eq 403 "$(status)" "reserve for a feature the license lacks"
    assert_contains "$out" "does not include feature 'enhanced'"
}

test_running_out() {
    licensed a 60 10
    out=$(api a POST /v1/usage/reserve '{"seconds": 100}')
    assert_eq 60 "$(jq .seconds <<<"$out")" "partial grant up to the ceiling"
    out=$(api a POST /v1/usage/reserve '{"seconds": 1}')
    assert_eq 403 "$(status)"
    assert_contains "$out" "no usage seconds left"
    api a POST /v1/check >/dev/null
    assert_eq 200 "$(status)" "checks go on when the seconds are used up"
    assert_eq 0 "$(api a GET /v1/management/license | jq .transcription_secs_allowed)"
}

# clients N ROUNDS: N concurrent clients, each reserving and committing half
# of what it got ROUNDS times; each line of $T/client.* is "reserved charged"
clients() {
    local n=$1 rounds=$2 pids=()
    for i in $(seq 1 "$n"); do
        (
            for j in $(seq 1 "$rounds"); do
                out=$(curl -s --max-time 5 --unix-socket "$T/a.sock" http://localhost/v1/usage/reserve \
                    -d "{\"seconds\": $((i + j))}") || break
                l=$(jq -r .lease <<<"$out" 2>/dev/null) || break
                s=$(jq .seconds <<<"$out" 2>/dev/null) || break
                [ "$l" != null ] || break
                c=$(curl -s --max-time 5 --unix-socket "$T/a.sock" http://localhost/v1/usage/commit \
                    -d "{\"lease\": \"$l\", \"used\": $((s / 2))}" | jq .charged 2>/dev/null)
                echo "$s ${c:-0}"
            done
        ) >"$T/client.$i" 2>/dev/null &
        pids+=($!)
    done
    wait "${pids[@]}"
}
sum_col() { cat "$T"/client.* | awk -v c="$1" '{s += $c} END {print s + 0}'; }

# counter ticks x tick_secs >= seconds charged, and <= seconds reserved plus
# one tick per client (each may hold a lease whose last tick is unused)
check_invariant() { # C0 TICK CLIENTS
    local covered=$((($(counter_value "$tcti") - $1) * $2)) charged reserved
    charged=$(sum_col 2)
    reserved=$(sum_col 1)
    [ "$covered" -ge "$charged" ] || fail "counter covers $covered s, $charged s were charged"
    [ "$covered" -le $((reserved + $2 * $3)) ] ||
        fail "counter covers $covered s, more than $reserved s reserved + one tick per client"
}

test_many_clients_invariant() {
    licensed a 100000 10
    c0=$(counter_value "$tcti")
    clients 16 10
    assert_eq 160 "$(cat "$T"/client.* | wc -l)" "commits answered"
    check_invariant "$c0" 10 16
    assert_eq $((100000 - $(sum_col 2))) "$(remaining a)" "remaining = granted - charged"
}

test_kill_and_power_loss_mid_load() {
    licensed a 100000 10
    c0=$(counter_value "$tcti")
    clients 8 40 &
    cpid=$!
    sleep 1
    stop_agent a KILL
    wait $cpid
    start_agent a "$tcti"
    check_invariant "$c0" 10 8
    r1=$(remaining a)
    [ "$r1" -le $((100000 - $(sum_col 2))) ] || fail "seconds came back after kill -9: $r1"
    c1=$(counter_value "$tcti")
    clients 8 40 &
    cpid=$!
    sleep 1
    "$SWTPM_CTL" poweroff "$T/a.tpm"
    wait $cpid
    stop_agent a KILL
    "$SWTPM_CTL" start "$T/a.tpm" >/dev/null
    start_agent a "$tcti"
    [ "$(counter_value "$tcti")" -ge "$c1" ] || fail "counter went back after a power loss"
    [ "$(remaining a)" -le "$r1" ] || fail "seconds came back after a power loss"
}

test_crash_and_restored_disk_give_nothing_back() {
    licensed a 3600 60
    cp -a "$T/a.state" "$T/state.copy"
    out=$(api a POST /v1/usage/reserve '{"seconds": 100}')
    assert_eq 200 "$(status)"
    before=$(remaining a)
    # kill -9 with the lease open: the lease's seconds stay consumed
    stop_agent a KILL
    rm -rf "$T/a.state"
    cp -a "$T/state.copy" "$T/a.state"
    start_agent a "$tcti"
    after=$(remaining a)
    [ "$after" -le "$before" ] || fail "seconds came back after a crash and a restored disk: $before -> $after"
    # power loss of the TPM
    stop_agent a
    "$SWTPM_CTL" poweroff "$T/a.tpm"
    "$SWTPM_CTL" start "$T/a.tpm" >/dev/null
    start_agent a "$tcti"
    [ "$(remaining a)" -le "$after" ] || fail "seconds came back after a power loss"
}

test_recreated_counter_gives_nothing_back() {
    licensed a 3600 60
    TPM2TOOLS_TCTI=$tcti tpm2_nvread 0x01a0c002 -P "$(nv_auth a)" -o "$T/state.old" 2>/dev/null
    api a POST /v1/usage/reserve '{"seconds": 120}' >/dev/null
    before=$(remaining a)
    stop_agent a
    # a hostile root deletes the counter; the agent defines it anew at start
    TPM2TOOLS_TCTI=$tcti tpm2_nvundefine $COUNTER -C o >/dev/null
    # and writes an old copy of the state index back (it holds nothing trusted)
    TPM2TOOLS_TCTI=$tcti tpm2_nvwrite 0x01a0c002 -P "$(nv_auth a)" -i "$T/state.old" >/dev/null
    start_agent a "$tcti"
    out=$(api a GET /v1/status)
    assert_eq true "$(jq .valid <<<"$out")" "license after the counter was re-created: $out"
    after=$(jq .secs_remaining <<<"$out")
    [ "$after" -le "$before" ] || fail "seconds came back after the counter was re-created: $before -> $after"
}

test_lease_limits() {
    licensed a 100000 1
    for i in $(seq 1 256); do
        api a POST /v1/usage/reserve '{"seconds": 1}' >/dev/null
        assert_eq 200 "$(status)" "lease $i"
    done
    out=$(api a POST /v1/usage/reserve '{"seconds": 1}')
    assert_eq 429 "$(status)" "257th open lease of one caller"
    assert_contains "$out" "too many open leases"
}

run_tests
