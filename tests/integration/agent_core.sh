#!/bin/bash
# tpmlicd's core on a real swtpm: the hot path answers while the TPM is
# stalled; an operator's change and a validation at the same moment both
# keep their effects (the interleaving is held in place by a TPM proxy and the fault
# proxy, not left to timing); a refused activation or refill leaves what was
# there; SIGTERM stops every thread; a start-up that fails exits non-zero.
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/agentlib.sh"
. "$(dirname "$0")/../lib/serverlib.sh"
. "$(dirname "$0")/../lib/onlinelib.sh"

in30days() { date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ; }

# answers_within SECS METHOD PATH [BODY]: agent a answers at all within SECS
answers_within() {
    local args=(-s -o /dev/null -w '%{http_code}' --max-time "$1" -X "$2" --unix-socket "$T/a.sock")
    [ -n "${4-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$4")
    curl "${args[@]}" "http://localhost$3"
}

test_check_and_status_answer_while_the_tpm_is_stalled() {
    licensed_agent a --type consumption --expiry "$(in30days)" --secs-allocated 1000 \
        --secs-granted 1000 --tick-secs 1
    # swtpm stops mid-reservation: 50 s need 50 increments
    kill -STOP "$(cat "$T/a.tpm/swtpm.pid")"
    api a POST /v1/usage/reserve '{"seconds": 50}' >"$T/reserve.out" &
    local reserve=$!
    sleep 0.5
    kill -0 $reserve 2>/dev/null || { kill -CONT "$(cat "$T/a.tpm/swtpm.pid")"; fail "the reservation did not wait for the TPM"; }
    assert_eq 200 "$(answers_within 1 POST /v1/check '{}')" "/v1/check with the TPM stalled"
    assert_eq 200 "$(answers_within 1 GET /v1/status)" "/v1/status with the TPM stalled"
    assert_eq 200 "$(answers_within 1 GET /licensing)" "/licensing with the TPM stalled"
    assert_eq 200 "$(answers_within 1 GET /metrics)" "/metrics with the TPM stalled"
    assert_eq 200 "$(answers_within 1 GET /v1/management/license)" "license status with the TPM stalled"
    kill -CONT "$(cat "$T/a.tpm/swtpm.pid")"
    wait $reserve
    assert_eq 200 "$(status)" "the reservation once the TPM answers: $(cat "$T/reserve.out")"
    assert_eq 50 "$(jq .seconds "$T/reserve.out")"
    assert_eq 950 "$(api a GET /v1/status | jq .secs_remaining)"
}

# an agent validated online against srv through the fault proxy fp and with
# the TPM proxy tp in front of its swtpm (a license that allows offline mode)
online_behind_proxies() {
    clock_init
    setup_online a --type subscription --expiry "$(in30days)" --features standard --offline-allowed
    start_faultproxy fp srv
    local ptcti
    ptcti=$(tpm_proxy tp "$T/a.tpm")
    online_agent a "$ptcti" "$(cat "$T/fp.url")"
    out=$(activate a)
    assert_eq 200 "$(status)" "activate: $out"
}

offline_mode_in_background() { # on|off
    api a POST /v1/management/license/offlinemode "{\"offline\": $([ "$1" = on ] && echo true || echo false)}" \
        >"$T/om.out"
    status >"$T/om.status"
}

last_check_date() { api a GET /licensing | jq -r .last_check | cut -c1-10; }
offline_mode_is() { [ "$(api a GET /v1/status | jq -r .offline_mode)" = "$1" ]; }

test_an_operator_change_and_a_validation_at_once_keep_both_effects() {
    online_behind_proxies
    # 1. the validation's answer arrives while the operator's change (offline
    # mode on) is being written to the state index
    faultproxy_mode fp hold
    clock_advance 86400
    wait_until 10 grep -q "^hold POST /v1/validate" "$T/fp.requests" || fail "no validation"
    tpm_proxy_mode tp hold-nvwrite 01a0c002
    offline_mode_in_background on &
    local op=$!
    wait_until 10 grep -q "held" "$T/tp.log" || fail "the change did not reach the TPM"
    faultproxy_mode fp pass
    sleep 0.5 # the validator has its answer and waits for the ledger
    assert_eq 0 "$(validations a ok)" "a validation recorded during the change"
    tpm_proxy_mode tp pass
    wait $op
    assert_eq 200 "$(cat "$T/om.status")" "offline mode on: $(cat "$T/om.out")"
    wait_until 10 validations_are a ok 1 || fail "the validation was not recorded"
    offline_mode_is true || fail "offline mode is not on after the first race"

    # back online: that validates at once
    offline_mode_in_background off
    assert_eq 200 "$(cat "$T/om.status")" "offline mode off: $(cat "$T/om.out")"
    wait_until 10 validations_are a ok 2 || fail "no validation after offline mode went off"

    # 2. the operator's change arrives while the validation's result is
    # being written (the epoch is written first, then the certificate, then
    # the result)
    : >"$T/tp.log"
    tpm_proxy_mode tp hold-nvwrite 01a0c002 1
    clock_advance 86400
    wait_until 10 grep -q "held" "$T/tp.log" || fail "the validation's result did not reach the TPM"
    offline_mode_in_background on &
    op=$!
    sleep 0.5
    kill -0 $op 2>/dev/null || fail "the change did not wait for the validation's write"
    tpm_proxy_mode tp pass
    wait $op
    assert_eq 200 "$(cat "$T/om.status")" "offline mode on: $(cat "$T/om.out")"
    wait_until 10 validations_are a ok 3 || fail "the third validation was not recorded"

    # both effects are in the TPM: a restart with the server away finds the
    # license in offline mode and the last validation's time
    stop_agent a
    faultproxy_mode fp refuse
    online_agent a "swtpm:path=$T/tp.sock" "$(cat "$T/fp.url")"
    assert_eq true "$(api a GET /v1/status | jq .licensed)" "licensed after the restart"
    offline_mode_is true || fail "offline mode was lost"
    offline_mode_in_background off
    assert_eq 200 "$(cat "$T/om.status")" "offline mode off: $(cat "$T/om.out")"
    assert_eq "$(date -u -d '+2 days' +%Y-%m-%d)" "$(last_check_date)" "last check after the restart"
}

test_an_activation_answer_with_another_serial_leaves_no_license() {
    clock_init
    setup_online a --type subscription --expiry "$(in30days)"
    start_faultproxy fp srv
    online_agent a "$tcti" "$(cat "$T/fp.url")"
    # well signed by the vendor's key, but the certificate is not this activation's
    faultproxy_mode fp resign jti=0123456789abcdef0123456789abcdef
    out=$(activate a)
    assert_eq 502 "$(status)" "activate: $out"
    assert_contains "$(jq -r .error <<<"$out")" "its serial is not the activation ID"
    assert_eq false "$(api a GET /v1/status | jq .licensed)" "licensed in memory"
    stop_agent a
    online_agent a "$tcti" "$(cat "$T/fp.url")"
    assert_eq false "$(api a GET /v1/status | jq .licensed)" "licensed from the TPM"
    faultproxy_mode fp pass
    out=$(activate a)
    assert_eq 200 "$(status)" "activate with the right answer: $out"
}

test_a_refill_certificate_that_changes_the_terms_is_refused() {
    clock_init
    setup_online a --type consumption --expiry "$(in30days)" --secs-allocated 100000 \
        --cache-secs 1000
    start_faultproxy fp srv
    online_agent a "$tcti" "$(cat "$T/fp.url")"
    activate a >/dev/null
    assert_eq 200 "$(status)"
    granted=$(api a GET /v1/management/license | jq .transcription_secs_allowed)
    # well-signed refills that change what must not change: each is a failed
    # validation, and the license keeps its terms. Using seconds asks for a
    # refill at once; the server raises the grant each time (it grants up
    # to what was consumed plus its cache step). After a failed validation
    # the next one waits for its back-off (1, 2, 4 minutes), so the clock
    # moves past it
    used=0 n=0
    use() { # SECS
        lease=$(api a POST /v1/usage/reserve "{\"seconds\": $1}" | jq -r .lease)
        api a POST /v1/usage/commit "{\"lease\": \"$lease\", \"used\": $1}" >/dev/null
        assert_eq 200 "$(status)" "using $1 s"
        used=$((used + $1))
    }
    for step in "800 secs_granted=1" "150 jti=00000000000000000000000000000000" \
        "40 activation_type=offline"; do
        set -- $step
        faultproxy_mode fp resign "$2"
        use "$1"
        [ "$n" -eq 0 ] || clock_advance $((60 << (n - 1)))
        n=$((n + 1))
        wait_until 10 validations_are a failed $n || fail "no failed validation with $2"
        assert_eq $((granted - used)) "$(api a GET /v1/management/license | jq .transcription_secs_allowed)" \
            "seconds after a certificate with $2"
        [ "$(api a GET /licensing | jq -r .grace_period_end)" != null ] ||
            fail "no grace period after a certificate with $2"
    done
    assert_eq 3 "$(grep -c "attempt [0-9]* failed: the license certificate in the answer is refused" "$T/a.log")"
    # the server's own answer is taken
    faultproxy_mode fp pass
    use 5
    clock_advance 240
    wait_until 10 validations_are a ok 1 || fail "the real refill was not taken"
    [ "$(api a GET /v1/management/license | jq .transcription_secs_allowed)" -gt $((granted - used)) ] ||
        fail "no seconds from the real refill"
    assert_eq null "$(api a GET /licensing | jq -r .grace_period_end)"
}

# The scenario runs under valgrind when the build is not a sanitizer build
# (whose own leak check runs at exit instead): reserve and commit, the TPM
# lost and back, then SIGTERM. It must exit 0 with no error and no leak.
test_sigterm_stops_every_thread_cleanly() {
    vendor_keys
    tcti=$(new_tpm a.tpm)
    local tpmlicd=$B/tpmlicd limit=200
    if ! nm "$tpmlicd" 2>/dev/null | grep -q __asan_init; then
        command -v valgrind >/dev/null || fail "valgrind is not installed"
        printf '#!/bin/sh\nexec valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite "%s" "$@"\n' "$tpmlicd" >"$T/tpmlicd-vg"
        chmod +x "$T/tpmlicd-vg"
        tpmlicd=$T/tpmlicd-vg
        limit=1200
    fi
    "$tpmlicd" --config /dev/null --tcti "$tcti" --socket "$T/a.sock" --state-dir "$T/a.state" \
        --vendor-key "$T/vendor.pub" --tpm-watch 1 --socket-mode 0666 --service-group 4242 \
        --admin-group 4343 >>"$T/a.log" 2>&1 &
    echo $! >"$T/a.pid"
    for i in $(seq 1 $limit); do
        answers_within 1 GET /v1/status >/dev/null && break
        sleep 0.05
    done
    offline_request a L-1
    vendor_sign a --product p --customer-id 1 --type perpetual --secs-allocated 100 --secs-granted 100 --tick-secs 10 \
        --offline-allowed
    apply_license a L-1 >/dev/null
    assert_eq 200 "$(status)"
    lease=$(api a POST /v1/usage/reserve '{"seconds": 5}' | jq -r .lease)
    api a POST /v1/usage/commit "{\"lease\": \"$lease\", \"used\": 2}" >/dev/null
    assert_eq 200 "$(status)"
    "$SWTPM_CTL" poweroff "$T/a.tpm" >/dev/null
    wait_until 30 grep -q "TPM lost" "$T/a.log" || fail "the TPM loss was not seen"
    "$SWTPM_CTL" start "$T/a.tpm" >/dev/null
    wait_until 30 grep -q "TPM answers again" "$T/a.log" || fail "the TPM was not reopened"
    pid=$(cat "$T/a.pid")
    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    rm -f "$T/a.pid"
    [ "$rc" = 0 ] || { tail -40 "$T/a.log" >&2; fail "exit status $rc after SIGTERM"; }
    # nothing happened after the stop began
    sed -n '/stopping on signal/,$p' "$T/a.log" | grep -q "TPM answers again\|TPM lost" &&
        fail "the TPM was used after the stop began"
    return 0
}

test_a_failed_start_exits_non_zero_with_the_reason() {
    vendor_keys
    tcti=$(new_tpm a.tpm)
    rc=0
    TPMLIC_TEST_CURL_INIT_FAILS=1 "$B/tpmlicd-testclock" --config /dev/null --tcti "$tcti" \
        --socket "$T/a.sock" --state-dir "$T/a.state" --vendor-key "$T/vendor.pub" \
        >"$T/a.log" 2>&1 || rc=$?
    assert_eq 1 "$rc" "exit status when libcurl cannot start"
    assert_contains "$(cat "$T/a.log")" "cannot initialise libcurl"
    assert_eq 1 "$(wc -l <"$T/a.log")" "one line"
}

run_tests
