#!/bin/bash
# Online licenses against root on the appliance (SPEC section 11,
# docs/security.md): an online license holds only within the validity its
# last signed answer gave, on the TPM's clock; edits of the agent's state
# index with its auth value (a copy from before, the offline flag, a forged
# grace length) and a removed license's certificate applied again or
# restored into the TPM gain nothing; the clock set back during a grace
# period does not lengthen it; a license for certified TPMs is activated
# only for a TPM whose EK certificate chains to the server's EK trust
# store. A real tpmlicd on swtpm (some running their clock fast), a real
# tpmlic-server, tpm2-tools and libfaketime.
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/agentlib.sh"
. "$(dirname "$0")/../lib/serverlib.sh"
. "$(dirname "$0")/../lib/onlinelib.sh"

STATE_INDEX=0x01a0c002

in_days() { date -u -d "$1 days" +%Y-%m-%dT%H:%M:%SZ; }

# fast_tpm NAME SPEED: a swtpm in $T/NAME.tpm whose clock runs SPEED times
# as fast; prints its TCTI
fast_tpm() {
    "$SWTPM_CTL" manufacture "$T/$1.tpm" --ca "${TPMLIC_TEST_CA:-/tmp/tpmlic-test-ca-$(id -u)}" >/dev/null
    "$SWTPM_CTL" start "$T/$1.tpm" --speed "$2"
}

# the agent's ordinary NV indices (license, state), whatever their number
agent_indices() { # TCTI
    TPM2TOOLS_TCTI=$1 tpm2_getcap handles-nv-index | awk '{print $2}' | grep -i '^0x0*1a0c0' |
        while read -r i; do
            TPM2TOOLS_TCTI=$1 tpm2_nvreadpublic "$i" | grep -q 'nt=0x1' || echo "$i"
        done
}

# save_indices NAME TCTI TAG / restore_indices NAME TCTI TAG: every ordinary
# index of agent NAME, as root can copy them with the auth value in the
# state directory. An index never written cannot be made so again: it is
# restored as zeros (a damaged record, so that the other license slot, as
# it was saved, is in force: the most root can do)
save_indices() {
    local i
    mkdir -p "$T/nv-$3"
    for i in $(agent_indices "$2"); do
        if ! TPM2TOOLS_TCTI=$2 tpm2_nvreadpublic "$i" | grep -q '|written'; then
            : >"$T/nv-$3/$i.never-written"
            continue
        fi
        TPM2TOOLS_TCTI=$2 tpm2_nvread "$i" -P "$(nv_auth "$1")" -o "$T/nv-$3/$i" >/dev/null ||
            fail "cannot read $i"
    done
    [ -n "$(ls "$T/nv-$3")" ] || fail "no index saved"
}
restore_indices() {
    local f i
    head -c 64 /dev/zero >"$T/zeros.bin"
    for f in "$T/nv-$3"/*; do
        i=$(basename "$f" .never-written)
        [ "$i" = "$(basename "$f")" ] || f=$T/zeros.bin
        TPM2TOOLS_TCTI=$2 tpm2_nvwrite "$i" -P "$(nv_auth "$1")" -i "$f" >/dev/null ||
            fail "cannot write $i"
    done
}

# edit_state NAME TCTI OFFSET HEX: root rewrites bytes of the state index
edit_state() {
    TPM2TOOLS_TCTI=$2 tpm2_nvread "$STATE_INDEX" -P "$(nv_auth "$1")" -o "$T/state.bin" >/dev/null ||
        fail "cannot read the state index"
    python3 -c '
import sys
b = bytearray(open(sys.argv[1], "rb").read())
off, val = int(sys.argv[2]), bytes.fromhex(sys.argv[3])
b[off:off + len(val)] = val
open(sys.argv[1], "wb").write(b)' "$T/state.bin" "$3" "$4"
    TPM2TOOLS_TCTI=$2 tpm2_nvwrite "$STATE_INDEX" -P "$(nv_auth "$1")" -i "$T/state.bin" >/dev/null ||
        fail "cannot write the state index"
}

valid() { api "$1" GET /v1/status | jq -r .valid; }
reason() { api "$1" GET /v1/status | jq -r .reason; }

test_an_online_license_holds_only_within_its_signed_validity() {
    vendor_keys
    # a validity of one hour on a TPM clock running 600 times as fast: the
    # window ends 6 s after the answer
    start_server srv --validity-window 3600
    server_license srv L-1 --type subscription --expiry "$(in_days +30)" --features standard
    url=$(cat "$T/srv.url")
    tcti=$(fast_tpm a 600)
    online_agent a "$tcti" "$url"
    out=$(activate a)
    assert_eq 200 "$(status)" "activate: $out"
    assert_eq true "$(valid a)"
    save_indices a "$tcti" fresh
    # the server goes away; the window runs out on the TPM clock
    stop_server srv
    wait_until 90 sh -c "curl -s --unix-socket '$T/a.sock' http://localhost/v1/status | grep -q 'signed validity'" ||
        fail "the window did not end: $(api a GET /v1/status)"
    out=$(api a POST /v1/check)
    assert_eq 403 "$(status)" "a check after the window: $out"
    assert_contains "$(jq -r .error <<<"$out")" "within its signed validity"
    # root restores the indices as they were right after the activation
    stop_agent a
    restore_indices a "$tcti" fresh
    online_agent a "$tcti" "$url"
    assert_eq false "$(valid a)" "valid after restoring the indices"
    assert_contains "$(reason a)" "signed validity"
    # and a forged grace length and the offline flag (this license does
    # not allow offline mode)
    stop_agent a
    edit_state a "$tcti" 36 ffffffff
    edit_state a "$tcti" 8 00000001
    online_agent a "$tcti" "$url"
    assert_eq false "$(valid a)" "valid after forging the state"
    assert_eq false "$(api a GET /v1/status | jq -r .offline_mode)" "offline mode from a forged flag"
    # the server back: a validation renews the window
    start_server srv --validity-window 3600
    url=$(cat "$T/srv.url")
    stop_agent a
    online_agent a "$tcti" "$url"
    wait_until 20 sh -c "[ \"\$(curl -s --unix-socket '$T/a.sock' http://localhost/v1/status | jq -r .valid)\" = true ]" ||
        fail "not valid after a validation: $(api a GET /v1/status)"
    # the next validation is due within half the window
    next=$(date -u -d "$(api a GET /licensing | jq -r .next_check)" +%s)
    [ $((next - $(date +%s))) -le 1800 ] || fail "next validation in $((next - $(date +%s))) s, not within 1800 s"
}

test_a_grace_period_is_not_longer_with_the_clock_set_back_or_forged_state() {
    vendor_keys
    start_server srv
    server_license srv L-1 --type subscription --expiry "$(in_days +30)" --features standard
    start_faultproxy fp srv
    # two hours (a server error's grace period) pass in 48 s on this TPM
    tcti=$(fast_tpm a 150)
    online_agent a "$tcti" "$(cat "$T/fp.url")"
    out=$(activate a)
    assert_eq 200 "$(status)" "activate: $out"
    stop_agent a
    # the server fails from now on: the validation at start begins a grace period
    faultproxy_mode fp 500
    online_agent a "$tcti" "$(cat "$T/fp.url")"
    wait_until 10 sh -c "[ \"\$(curl -s --unix-socket '$T/a.sock' http://localhost/licensing | jq -r .grace_period_end)\" != null ]" ||
        fail "no grace period: $(api a GET /licensing)"
    end=$(date -u -d "$(api a GET /licensing | jq -r .grace_period_end)" +%s)
    [ $((end - $(date +%s))) -le 7200 ] || fail "a grace period of more than 2 h: $(api a GET /licensing)"
    # root runs the agent with the clock set back ten days
    stop_agent a
    faketime_wrapper -10d "$T/tpmlicd-back" "$TPMLICD"
    TPMLICD=$T/tpmlicd-back
    online_agent a "$tcti" "$(cat "$T/fp.url")"
    assert_eq true "$(valid a)" "valid during the grace period: $(reason a)"
    # the TPM's clock counts the two hours: over, whatever the wall clock says
    wait_until 90 sh -c "curl -s --unix-socket '$T/a.sock' http://localhost/v1/status | grep -q 'grace period is over'" ||
        fail "the grace period did not end: $(api a GET /v1/status)"
    out=$(api a POST /v1/check)
    assert_eq 403 "$(status)" "a check after the grace period: $out"
    # a forged grace length of 2^32-1 s: a record that is not one the agent
    # writes counts as the least favourable state
    stop_agent a
    edit_state a "$tcti" 36 ffffffff
    online_agent a "$tcti" "$(cat "$T/fp.url")"
    assert_eq false "$(valid a)" "valid with a forged grace length"
    assert_contains "$(reason a)" "grace period is over"
}

test_a_removed_online_certificate_never_serves_again() {
    setup_online a --type consumption --expiry "$(in_days +30)" --features standard \
        --secs-allocated 100000 --cache-secs 3600 --tick-secs 60
    online_agent a "$tcti" "$url"
    out=$(activate a)
    assert_eq 200 "$(status)" "activate: $out"
    lease=$(api a POST /v1/usage/reserve '{"seconds": 600}' | jq -r .lease)
    api a POST /v1/usage/commit "{\"lease\": \"$lease\", \"used\": 600}" >/dev/null
    agent_cert a "$tcti" >"$T/a.cert" || fail "cannot read the certificate"
    save_indices a "$tcti" live
    # an online certificate comes from the server's answers only
    out=$(api a PUT /v1/management/license/offlineactivation \
        "{\"license\": \"L-1\", \"certificate\": \"$(cat "$T/a.cert")\"}")
    assert_eq 400 "$(status)" "PUT of the online certificate in force: $out"
    assert_contains "$out" "never applied by hand"
    out=$(api a DELETE /v1/management/license)
    assert_eq 200 "$(status)" "remove: $out"
    assert_eq 3000 "$(jq .transcription_secs_returned <<<"$out")"
    # applied again by hand: ended (the counter is past its ceiling)
    out=$(api a PUT /v1/management/license/offlineactivation \
        "{\"license\": \"L-1\", \"certificate\": \"$(cat "$T/a.cert")\"}")
    assert_eq 400 "$(status)" "PUT of the removed certificate: $out"
    assert_contains "$out" "no longer in force"
    # restored into the TPM with the state from before the removal
    stop_agent a
    restore_indices a "$tcti" live
    online_agent a "$tcti" "$url"
    st=$(api a GET /v1/status)
    assert_eq false "$(jq -r .valid <<<"$st")" "valid after restoring the indices: $st"
    assert_contains "$(jq -r .reason <<<"$st")" "no longer in force"
    out=$(api a POST /v1/usage/reserve '{"seconds": 60}')
    assert_eq 403 "$(status)" "a reservation after restoring: $out"
    # the server kept the return once
    assert_eq 3000 "$(server_cli srv license show L-1 --json | jq '.activations[0].returned_secs')"
}

test_a_license_for_certified_tpms_needs_the_servers_trust_store() {
    vendor_keys
    ca=${TPMLIC_TEST_CA:-/tmp/tpmlic-test-ca-$(id -u)}
    mkdir -p "$T/ekca"
    cp "$ca/issuercert.pem" "$ca/swtpm-localca-rootca-cert.pem" "$T/ekca/"
    start_server srv
    server_license srv L-1 --type perpetual --tpm-trust certified --max-activations 2
    out=$(server_cli srv license show L-1)
    assert_contains "$out" "tpm_trust"
    assert_contains "$out" "certified"
    tcti=$(new_tpm a.tpm)
    online_agent a "$tcti" "$(cat "$T/srv.url")" --ek-ca-dir "$T/ekca"
    # a server without an EK trust store cannot tell
    out=$(activate a)
    assert_eq 403 "$(status)" "activation without the server's store: $out"
    assert_contains "$out" "no EK trust store"
    stop_server srv
    start_server srv --ek-ca-dir "$T/ekca"
    stop_agent a
    online_agent a "$tcti" "$(cat "$T/srv.url")" --ek-ca-dir "$T/ekca"
    out=$(activate a)
    assert_eq 200 "$(status)" "activation with the server's store: $out"
    agent_cert a "$tcti" >"$T/a.cert"
    "$VENDOR" inspect --in "$T/a.cert" --public "$T/vendor.pub" | grep -q 'certified' ||
        fail "the certificate does not carry tpm_trust: $("$VENDOR" inspect --in "$T/a.cert" --public "$T/vendor.pub")"
    # a license that names another CA: refused, named
    server_license srv L-2 --type perpetual --tpm-trust "$(printf '%064d' 7)"
    api a DELETE /v1/management/license >/dev/null
    out=$(activate a L-2)
    assert_eq 403 "$(status)" "another CA: $out"
    assert_contains "$out" "chains to none of them"
    # a server whose store does not exist refuses to start
    rc=0
    "$TPMLIC_SERVER" serve --db "$T/x.db" --key "$T/vendor.key" --listen 127.0.0.1:0 \
        --tls-cert "$T/srv.crt" --tls-key "$T/srv.key" --ek-ca-dir "$T/nowhere" >"$T/x.log" 2>&1 || rc=$?
    assert_eq 1 "$rc" "serve with a missing --ek-ca-dir"
    assert_contains "$(cat "$T/x.log")" "--ek-ca-dir $T/nowhere"
}

run_tests
