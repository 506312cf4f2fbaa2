#!/bin/bash
# A license change torn by a power cut, at every point where it can be
# torn: the TPM proxy forwards the first k NV_Write commands of the change
# and then cuts the connection, for every k from 0 to the number of
# NV_Writes the change makes; the agent is killed, swtpm loses power, and
# the agent started again must serve the old license or the new one,
# exactly (its code and customer through the API, its certificate in the
# TPM), never none and never a damaged record. Once for a certificate
# applied over another (offline), once for a removal (online).
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/agentlib.sh"
. "$(dirname "$0")/../lib/serverlib.sh"
. "$(dirname "$0")/../lib/onlinelib.sh"

in30days() { date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ; }

# in_force NAME: the license agent NAME serves, as "CODE CUSTOMER", or "none"
in_force() {
    local out
    out=$(api "$1" GET /v1/management/license)
    [ "$(status)" = 200 ] || fail "license status: $(status) $out"
    jq -r 'if .license_code == "" then "none" else "\(.license_code) \(.customer_id)" end' <<<"$out"
}

# cut_made PROXY: the proxy cut the connection (a command was dropped)
cut_made() { grep -q "dropped" "$T/$1.log"; }
# forwarded_writes PROXY: the NV_Writes forwarded under drop-nvwrite, by index
forwarded_writes() {
    awk '$1 == "drop-nvwrite" && $2 == "0x137" && $4 != "dropped" {print $3}' "$T/$1.log" |
        paste -sd, -
}

# power_cut NAME TPMDIR: the agent killed and the TPM's power lost, as in a
# power cut; the agent started again on the TPM itself (no proxy). Extra
# options for the agent follow.
power_cut() {
    local n=$1 dir=$2 tcti
    shift 2
    stop_agent "$n" KILL
    "$SWTPM_CTL" poweroff "$dir" >/dev/null
    tcti=$("$SWTPM_CTL" start "$dir")
    start_agent "$n" "$tcti" "$@"
    echo "$tcti" >"$T/$n.tcti"
}

# after_cut NAME OLD NEW OLD-CERT NEW-CERT: what agent NAME serves is OLD
# or NEW (as in_force prints them), with the matching certificate in the
# TPM; prints which
after_cut() {
    local n=$1 got reason cert
    got=$(in_force "$n") || return 1
    reason=$(api "$n" GET /v1/status | jq -r .reason)
    case $reason in *damaged* | *unreadable*)
        fail "after the cut: $reason"
        return 1
        ;;
    esac
    cert=$(agent_cert "$n" "$(cat "$T/$n.tcti")") || {
        fail "neither license slot holds an intact record"
        return 1
    }
    if [ "$got" = "$2" ]; then
        assert_eq "$(cat "$4")" "$cert" "the certificate in the TPM (old)" || return 1
        echo old
    elif [ "$got" = "$3" ]; then
        assert_eq "$(cat "$5")" "$cert" "the certificate in the TPM (new)" || return 1
        echo new
    else
        fail "after the cut the agent serves '$got': neither '$2' nor '$3'"
        return 1
    fi
}

# next_round NAME TPMDIR PROXY: the agent, the TPM and the proxy of one
# round stopped
next_round() {
    stop_agent "$1"
    "$SWTPM_CTL" poweroff "$2" >/dev/null
    kill "$(cat "$T/$3.pid")" 2>/dev/null
    wait "$(cat "$T/$3.pid")" 2>/dev/null || true
    rm -f "$T/$3.pid"
}

# round_done K CODE GOT T0 OUT WHAT: says what the round with a cut after K
# NV_Writes gave (the answer CODE and OUT, then the state GOT); sets
# ran_through when no cut was made, so WHAT ran through: it must have
# answered 200 and left the new state. Cut before the first write, the old
# state must be left. A plain command, so that set -e stops at its asserts.
round_done() {
    local k=$1 code=$2 got=$3 t0=$4 out=$5 what=$6
    echo "    cut after $k NV_Writes ($(forwarded_writes p$k)): answer $code, then $got ($(((($(date +%s%N) - t0) / 1000000))) ms from the cut to the check)"
    ran_through=false
    if ! cut_made p$k; then
        assert_eq 200 "$code" "the $what with no cut: $out"
        assert_eq new "$got" "with every NV_Write made"
        ran_through=true
    elif [ "$k" = 0 ]; then
        assert_eq old "$got" "cut before the first NV_Write"
    fi
}

# A certificate as large as a certificate gets (two NV_Write chunks on
# every TPM) replaces another; cut after k = 0, 1, ... NV_Writes.
test_a_certificate_applied_over_another_is_old_or_new_after_a_cut_at_every_write() {
    local k=0 seen="" out code tpm features chunks t0
    vendor_keys
    # enough features for the certificate to need more than one NV_Write
    features=$(seq -f 'feature-%02g' 1 12 | paste -sd, -)
    while :; do
        tpm=$T/k$k.tpm
        new_tpm "k$k.tpm" >/dev/null
        start_agent a "$(tpm_proxy p$k "$tpm")"
        offline_request a L-1
        vendor_sign a --product p --customer-id 1 --type perpetual
        mv "$T/a.lic" "$T/old.lic"
        apply_license a L-1 "$T/old.lic" >/dev/null
        assert_eq 200 "$(status)" "the first license: $(cat "$T/resp")"
        offline_request a L-2
        vendor_sign a --product p --customer-id 2 --type perpetual --features "$features"
        mv "$T/a.lic" "$T/new.lic"
        [ "$(wc -c <"$T/new.lic")" -gt 1100 ] || fail "the new certificate fits one NV_Write"
        t0=$(date +%s%N)
        tpm_proxy_mode p$k drop-nvwrite $k
        out=$(apply_license a L-2 "$T/new.lic")
        code=$(status)
        power_cut a "$tpm"
        got=$(after_cut a "L-1 1" "L-2 2" "$T/old.lic" "$T/new.lic")
        seen="$seen $k:$got"
        round_done $k "$code" "$got" "$t0" "$out" apply
        ! $ran_through || break
        next_round a "$tpm" p$k
        k=$((k + 1))
        [ $k -le 8 ] || fail "the apply never ran through: $seen"
    done
    chunks=$k
    echo "    NV_Writes of the apply: $chunks ($(forwarded_writes p$k)); outcome per cut:$seen; $(wc -c <"$T/new.lic") bytes of certificate"
    # two chunks of the certificate and one of the state at least
    [ "$chunks" -ge 3 ] || fail "only $chunks NV_Writes: the certificate was not torn between chunks"
}

# An online license removed (the server took its seconds back): cut after
# k = 0, 1, ... NV_Writes of the removal; the license or none.
test_a_removal_is_old_or_new_after_a_cut_at_every_write() {
    local k=0 seen="" out code tpm tcti t0
    vendor_keys
    server_tls srv
    start_server srv
    url=$(cat "$T/srv.url")
    while :; do
        tpm=$T/k$k.tpm
        server_license srv "L-1$k" --type subscription --expiry "$(in30days)"
        tcti=$(new_tpm "k$k.tpm")
        online_agent a "$(tpm_proxy p$k "$tpm")" "$url"
        out=$(activate a "L-1$k")
        assert_eq 200 "$(status)" "activation: $out"
        agent_cert a "$tcti" >"$T/old.lic" || fail "no certificate after activation"
        : >"$T/none.lic"
        t0=$(date +%s%N)
        tpm_proxy_mode p$k drop-nvwrite $k
        out=$(api a DELETE /v1/management/license)
        code=$(status)
        # started again without the server: what the TPM holds, unchanged
        power_cut a "$tpm"
        got=$(after_cut a "L-1$k 4949" none "$T/old.lic" "$T/none.lic")
        seen="$seen $k:$got"
        round_done $k "$code" "$got" "$t0" "$out" removal
        ! $ran_through || break
        next_round a "$tpm" p$k
        k=$((k + 1))
        [ $k -le 8 ] || fail "the removal never ran through: $seen"
    done
    echo "    NV_Writes of the removal: $k ($(forwarded_writes p$k)); outcome per cut:$seen"
    [ "$k" -ge 2 ] || fail "only $k NV_Writes in a removal"
}

run_tests
