#!/bin/bash
# What root on the appliance (or another TPM user) can do with standard
# tools, and that it gains nothing (SPEC section 11, docs/security.md): a
# software TPM carrying a copy of the EK certificate and of the agent's NV
# indices; a proxy that changes the TPM's answers; tpm2-tools on the agent's
# indices with and without their auth value; the owner authorization set by
# someone else; the clock set back with libfaketime; certificates applied
# again after their end; trust files others can write; EK certificates from
# CAs the license does not trust.
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/agentlib.sh"

LICENSE_INDEX=0x01a0c000
LICENSE_B=0x01a0c004
COUNTER=0x01a0c001
STATE_INDEX=0x01a0c002
FLOOR=0x01a0c003

in_days() { date -u -d "$1 days" +%Y-%m-%dT%H:%M:%SZ; }

consumable() { # NAME [sign options]: a licensed agent with 3600 s at tick 60
    local n=$1
    shift
    licensed_agent "$n" --type time-limited --expiry "$(in_days +30)" --secs-allocated 3600 \
        --secs-granted 3600 --tick-secs 60 "$@"
}

use() { # NAME SECS: reserve and commit them all
    local lease
    lease=$(api "$1" POST /v1/usage/reserve "{\"seconds\": $2}" | jq -r .lease)
    api "$1" POST /v1/usage/commit "{\"lease\": \"$lease\", \"used\": $2}" >/dev/null
    assert_eq 200 "$(status)" "using $2 s"
}

remaining() { api "$1" GET /v1/status | jq .secs_remaining; }

# tpm_nv NAME TCTI CMD ARGS...: a tpm2-tools command on agent NAME's TPM
tpm_nv() {
    local tcti=$2 cmd=$3
    shift 3
    TPM2TOOLS_TCTI=$tcti "$cmd" "$@"
}

# as_tss_member TCTI CMD ARGS...: a TPM user without the agent's auth value
# (a member of group tss on an appliance), as uid 65534
as_tss_member() {
    local tcti=$1
    shift
    chmod 0711 "$T"
    chmod 0777 "$T"/*.tpm "$T"/*.tpm/tpm.sock* 2>/dev/null || true
    setpriv --reuid 65534 --regid 65534 --clear-groups env TPM2TOOLS_TCTI="$tcti" HOME=/tmp "$@"
}

# copy_index SRC-TCTI DST-TCTI INDEX AUTH ATTRS: an ordinary index and its
# content from one TPM into another, with the same attributes (so the same
# NV name); one never written is copied as such
copy_index() {
    local size
    size=$(TPM2TOOLS_TCTI=$1 tpm2_nvreadpublic "$3" | awk '/size:/ {print $2}')
    TPM2TOOLS_TCTI=$2 tpm2_nvdefine "$3" -C o -s "$size" -a "$5" ${4:+-p "$4"} >/dev/null
    if TPM2TOOLS_TCTI=$1 tpm2_nvread "$3" ${4:+-P "$4"} -o "$T/copy.bin" >/dev/null 2>&1; then
        TPM2TOOLS_TCTI=$2 tpm2_nvwrite "$3" ${4:+-P "$4"} -i "$T/copy.bin" >/dev/null
    fi
}

test_a_fake_tpm_with_the_copied_ek_certificate_and_indices_is_refused() {
    consumable a
    use a 600
    auth=$(nv_auth a)
    tcti_a=$(cat "$T/a.tcti")
    stop_agent a
    # a fresh software TPM, no certificates of its own
    "$SWTPM_CTL" manufacture "$T/fake.tpm" --no-certs >/dev/null
    tcti_f=$("$SWTPM_CTL" start "$T/fake.tpm")
    # the appliance's EK certificate (public: anyone may read it) ...
    size=$(tpm_nv a "$tcti_a" tpm2_nvreadpublic 0x01c00002 | awk '/size:/ {print $2}')
    tpm_nv a "$tcti_a" tpm2_nvread 0x01c00002 -o "$T/ekcert.der" >/dev/null
    tpm_nv f "$tcti_f" tpm2_nvdefine 0x01c00002 -C p -s "$size" \
        -a "ppwrite|ppread|ownerread|authread|no_da|platformcreate" >/dev/null
    tpm_nv f "$tcti_f" tpm2_nvwrite 0x01c00002 -C p -i "$T/ekcert.der" >/dev/null
    # ... and the agent's indices, with their auth value and attributes
    copy_index "$tcti_a" "$tcti_f" $LICENSE_INDEX "$auth" "authread|authwrite|no_da"
    copy_index "$tcti_a" "$tcti_f" $LICENSE_B "$auth" "authread|authwrite|no_da"
    copy_index "$tcti_a" "$tcti_f" $STATE_INDEX "$auth" "authread|authwrite|no_da"
    for c in $COUNTER $FLOOR; do
        tpm_nv f "$tcti_f" tpm2_nvdefine $c -C o -s 8 -a "nt=counter|authread|authwrite|no_da" \
            -p "$auth" >/dev/null
        tpm_nv f "$tcti_f" tpm2_nvincrement $c -P "$auth" >/dev/null
    done
    assert_eq "$(tpm_nv a "$tcti_a" tpm2_nvreadpublic $LICENSE_INDEX | grep name:)" \
        "$(tpm_nv f "$tcti_f" tpm2_nvreadpublic $LICENSE_INDEX | grep name:)" "the copied index's name"
    # the same disk, the fake TPM
    rc=0
    timeout 30 "$TPMLICD" --config /dev/null --tcti "$tcti_f" --socket "$T/f.sock" --state-dir "$T/a.state" \
        --vendor-key "$T/vendor.pub" >"$T/f.log" 2>&1 || rc=$?
    assert_eq 1 "$rc" "the agent's exit status on the fake TPM"
    assert_contains "$(cat "$T/f.log")" \
        "the TPM does not hold the private key of its endorsement key certificate"
    rc=0
    timeout 30 "$TPMLICD" --print-computer-id --tcti "$tcti_f" >"$T/id.out" 2>&1 || rc=$?
    assert_eq 1 "$rc" "--print-computer-id on the fake TPM"
    # the real one still works, with what was used still used
    start_agent a "$tcti_a"
    assert_eq 3000 "$(remaining a)"
}

test_a_proxy_that_changes_the_tpms_answers_is_detected() {
    consumable a
    tcti_a=$(cat "$T/a.tcti")
    stop_agent a
    ptcti=$(tpm_proxy tp "$T/a.tpm")
    # a counter read changed on the way: the agent does not start
    tpm_proxy_mode tp flip-nvread 01a0c001
    rc=0
    timeout 30 "$TPMLICD" --config /dev/null --tcti "$ptcti" --socket "$T/a.sock" --state-dir "$T/a.state" \
        --vendor-key "$T/vendor.pub" >"$T/p.log" 2>&1 || rc=$?
    assert_eq 1 "$rc" "exit status with a changed counter read"
    assert_contains "$(cat "$T/p.log")" "failed its HMAC check"
    grep -q "flip-nvread 0x14e 0x1a0c001" "$T/tp.log" || fail "the proxy changed no answer"
    # the license record changed: the same
    tpm_proxy_mode tp flip-nvread 01a0c000
    rc=0
    timeout 30 "$TPMLICD" --config /dev/null --tcti "$ptcti" --socket "$T/a.sock" --state-dir "$T/a.state" \
        --vendor-key "$T/vendor.pub" >"$T/p.log" 2>&1 || rc=$?
    assert_eq 1 "$rc" "exit status with a changed license read"
    # the clock changed while it runs: checks are refused until the TPM
    # proves itself again
    tpm_proxy_mode tp pass
    start_agent a "$ptcti"
    api a POST /v1/check >/dev/null
    assert_eq 200 "$(status)"
    tpm_proxy_mode tp flip-clock
    wait_until 40 sh -c "curl -s --unix-socket '$T/a.sock' -X POST http://localhost/v1/check | grep -q 'could not be authenticated'" ||
        fail "a changed clock answer was not refused: $(tail -3 "$T/a.log")"
    out=$(api a POST /v1/usage/reserve '{"seconds": 10}')
    assert_eq 403 "$(status)" "reserve while the TPM is not trusted: $out"
    assert_eq false "$(api a GET /v1/status | jq .valid)"
    tpm_proxy_mode tp pass
    wait_until 20 sh -c "curl -s --unix-socket '$T/a.sock' -X POST http://localhost/v1/check | grep -q '\"allowed\": *true'" ||
        fail "the TPM was not trusted again: $(tail -3 "$T/a.log")"
    assert_contains "$(cat "$T/a.log")" "proved its endorsement key"
}

test_a_tpm_user_without_the_agents_auth_value_cannot_touch_its_indices() {
    consumable a
    use a 600
    tcti=$(cat "$T/a.tcti")
    before=$(remaining a)
    # increment (burn the customer's seconds), overwrite the license
    as_tss_member "$tcti" tpm2_nvincrement $COUNTER >/dev/null 2>&1 &&
        fail "a TPM user incremented the agent's counter"
    as_tss_member "$tcti" tpm2_nvincrement $COUNTER -C o >/dev/null 2>&1 &&
        fail "a TPM user incremented the agent's counter with the owner's authorization"
    head -c 64 /dev/zero >"$T/zero"
    chmod 0644 "$T/zero"
    as_tss_member "$tcti" tpm2_nvwrite $LICENSE_INDEX -i "$T/zero" >/dev/null 2>&1 &&
        fail "a TPM user overwrote the license"
    as_tss_member "$tcti" tpm2_nvwrite $STATE_INDEX -C o -i "$T/zero" >/dev/null 2>&1 &&
        fail "a TPM user overwrote the state with the owner's authorization"
    stop_agent a
    start_agent a "$tcti"
    assert_eq "$before" "$(remaining a)" "seconds after the attempts"
    assert_eq true "$(api a GET /v1/status | jq .valid)"
    # with the owner's authorization empty, the index can be undefined: the
    # license is gone, and nothing comes back (a counter defined anew
    # starts above every value it had)
    c0=$(tpm_nv a "$tcti" tpm2_nvread $COUNTER -P "$(nv_auth a)" | od -An -tx1 | tr -d ' \n')
    stop_agent a
    as_tss_member "$tcti" tpm2_nvundefine $COUNTER -C o >/dev/null
    start_agent a "$tcti"
    c1=$(tpm_nv a "$tcti" tpm2_nvread $COUNTER -P "$(nv_auth a)" | od -An -tx1 | tr -d ' \n')
    [ $((16#$c1)) -ge $((16#$c0)) ] || fail "the counter defined anew is lower: $c0 -> $c1"
    apply_license a L-1 >/dev/null
    assert_eq 200 "$(status)" "the certificate again: $(cat "$T/resp")"
    [ "$(remaining a)" -le "$before" ] || fail "seconds came back: $before -> $(remaining a)"
    # an image that set the owner's authorization (and gave it to the agent)
    # stops that too
    printf 'owner-secret' >"$T/owner.auth"
    chmod 0400 "$T/owner.auth"
    tpm_nv a "$tcti" tpm2_changeauth -c o owner-secret
    as_tss_member "$tcti" tpm2_nvundefine $COUNTER -C o >/dev/null 2>&1 &&
        fail "a TPM user undefined the counter with the owner's authorization set"
    stop_agent a
    start_agent a "$tcti" --owner-auth-file "$T/owner.auth"
    assert_eq true "$(api a GET /v1/status | jq .valid)"
}

test_an_owner_authorization_set_by_someone_else_is_reported() {
    vendor_keys
    tcti=$(new_tpm a.tpm)
    # another TPM user sets it before the agent's first start
    as_tss_member "$tcti" tpm2_changeauth -c o not-yours
    rc=0
    timeout 30 "$TPMLICD" --config /dev/null --tcti "$tcti" --socket "$T/a.sock" --state-dir "$T/a.state" \
        --vendor-key "$T/vendor.pub" >"$T/a.log" 2>&1 || rc=$?
    assert_eq 1 "$rc"
    assert_contains "$(cat "$T/a.log")" "needs the TPM owner's authorization"
    assert_contains "$(cat "$T/a.log")" "owner_auth_file"
    printf 'not-yours\n' >"$T/owner.auth"
    chmod 0400 "$T/owner.auth"
    start_agent a "$tcti" --owner-auth-file "$T/owner.auth"
    assert_eq false "$(api a GET /v1/status | jq .licensed)"
    # a file others may read is refused
    chmod 0644 "$T/owner.auth"
    stop_agent a
    rc=0
    timeout 30 "$TPMLICD" --config /dev/null --tcti "$tcti" --socket "$T/a.sock" --state-dir "$T/a.state" \
        --vendor-key "$T/vendor.pub" --owner-auth-file "$T/owner.auth" >"$T/b.log" 2>&1 || rc=$?
    assert_eq 1 "$rc"
    assert_contains "$(cat "$T/b.log")" "can be read by others than root"
}

# faked FAKETIME PROGRAM ARGS...: runs a program with libfaketime's clock
faked() {
    faketime_wrapper "$1" "$T/faked" "$2"
    shift 2
    "$T/faked" "$@"
}

test_an_expired_license_stays_expired_with_the_clock_set_back() {
    vendor_keys
    # a TPM whose clock runs 3600 times as fast: an hour passes each second
    "$SWTPM_CTL" manufacture "$T/a.tpm" --ca "${TPMLIC_TEST_CA:-/tmp/tpmlic-test-ca-$(id -u)}" >/dev/null
    tcti=$("$SWTPM_CTL" start "$T/a.tpm" --speed 3600)
    # a day ago (and as fast as the TPM since then), the license was
    # requested, signed for 12 hours, and applied
    TPMLICD_REAL=$TPMLICD
    faketime_wrapper "-1d x3600" "$T/tpmlicd-fast" "$TPMLICD_REAL"
    TPMLICD=$T/tpmlicd-fast
    start_agent a "$tcti" --log-level debug
    offline_request a L-1
    # the vendor signs at the request's date, for 12 hours from then
    asked=$("$VENDOR" inspect --in "$T/a.act" --json | jq -r .date)
    expiry=$(date -u -d "$asked + 12 hours" +%Y-%m-%dT%H:%M:%SZ)
    faked "@$(date -u -d "$asked" '+%Y-%m-%d %H:%M:%S')" "$VENDOR" sign-activation \
        --key "$T/vendor.key" --in "$T/a.act" --product p --customer-id 1 --type time-limited \
        --expiry "$expiry" >"$T/a.lic" || fail "sign-activation failed"
    apply_license a L-1 >/dev/null
    assert_eq 200 "$(status)" "applying: $(cat "$T/resp")"
    # the agent watches the day go by (an hour a second); the license
    # expires, and the time floor (an hour behind the clock at most) passes
    # its expiry too
    wait_until 60 sh -c "curl -s --unix-socket '$T/a.sock' http://localhost/v1/status | grep -q 'expired'" ||
        fail "the license did not expire: $(api a GET /v1/status)"
    end=$(date -u -d "$expiry" +%s)
    floor_past_end() {
        awk -v e="$end" '/time floor moved to/ {t = $8} END {exit !(t >= e)}' "$T/a.log"
    }
    wait_until 30 floor_past_end || fail "the time floor did not pass the expiry: $(grep floor "$T/a.log" | tail -2)"
    stop_agent a
    # the clock set back 20 days, the license applied again: still expired
    TPMLICD=$T/tpmlicd-back
    faketime_wrapper -20d "$TPMLICD" "$TPMLICD_REAL"
    start_agent a "$tcti"
    out=$(api a POST /v1/check)
    assert_eq 403 "$(status)" "a check with the clock set back: $out"
    assert_contains "$(jq -r .error <<<"$out")" "expired"
    out=$(apply_license a L-1)
    assert_eq 400 "$(status)" "the certificate applied again with the clock set back: $out"
    assert_contains "$out" "expired on"
}

test_an_older_offline_certificate_after_a_renewal_is_refused() {
    consumable a
    use a 600
    cp "$T/a.lic" "$T/first.lic"
    # the renewal: requested while the first is in force, so it names it
    offline_request a L-1
    out=$("$VENDOR" inspect --in "$T/a.act")
    assert_contains "$out" "supersedes"
    vendor_sign a --product p --customer-id 1 --type time-limited --expiry "$(in_days +60)" \
        --secs-allocated 7200 --secs-granted 7200 --tick-secs 60
    apply_license a L-1 >/dev/null
    assert_eq 200 "$(status)" "the renewal: $(cat "$T/resp")"
    assert_eq 7200 "$(remaining a)" "the renewal's seconds start afresh"
    assert_contains "$(cat "$T/a.log")" "replaced by"
    # the first one again: ended
    out=$(apply_license a L-1 "$T/first.lic")
    assert_eq 400 "$(status)" "the first certificate again: $out"
    assert_contains "$out" "no longer in force"
    assert_eq 7200 "$(remaining a)"
    # and from a restored state directory after a restart: the same
    stop_agent a
    start_agent a "$(cat "$T/a.tcti")"
    assert_eq 7200 "$(remaining a)"
}

test_trust_files_others_can_write_are_refused() {
    vendor_keys
    tcti=$(new_tpm a.tpm)
    echo "[agent]" >"$T/agent.conf"
    chmod 0664 "$T/agent.conf"
    run() {
        rc=0
        timeout 30 "$TPMLICD" --config "$T/agent.conf" --tcti "$tcti" --socket "$T/a.sock" \
            --state-dir "$T/a.state" --vendor-key "$T/vendor.pub" "$@" >"$T/a.log" 2>&1 || rc=$?
        assert_eq 1 "$rc" "exit status: $(cat "$T/a.log")"
    }
    run
    assert_contains "$(cat "$T/a.log")" "the config file $T/agent.conf can be changed by others"
    assert_contains "$(cat "$T/a.log")" "mode 0664"
    chmod 0644 "$T/agent.conf"
    chmod 0666 "$T/vendor.pub"
    run
    assert_contains "$(cat "$T/a.log")" "the vendor key $T/vendor.pub can be changed by others"
    chmod 0644 "$T/vendor.pub"
    # through a directory others can write
    mkdir -m 0777 "$T/open"
    cp "$T/vendor.pub" "$T/open/vendor.pub"
    run --vendor-key "$T/open/vendor.pub"
    assert_contains "$(cat "$T/a.log")" "a directory above it"
    # a link to a file others can write
    cp "$T/vendor.pub" "$T/w.pub"
    chmod 0666 "$T/w.pub"
    ln -s "$T/w.pub" "$T/link.pub"
    run --vendor-key "$T/link.pub"
    assert_contains "$(cat "$T/a.log")" "the file it leads to"
    # the EK trust store and the license server's CA
    mkdir "$T/ekca"
    cp "$T/vendor.pub" "$T/ekca/x.pem"
    chmod 0666 "$T/ekca/x.pem"
    run --ek-ca-dir "$T/ekca"
    assert_contains "$(cat "$T/a.log")" "the EK trust store"
    run --ek-ca-dir "$T/none" --server https://127.0.0.1:1 --server-ca "$T/ekca/x.pem"
    assert_contains "$(cat "$T/a.log")" "the license server's CA"
}

ek_store() { # DIR: the test CA's certificates (roots and issuers, no keys) in DIR
    local ca=${TPMLIC_TEST_CA:-/tmp/tpmlic-test-ca-$(id -u)}
    mkdir -p "$1"
    cp "$ca/issuercert.pem" "$ca/swtpm-localca-rootca-cert.pem" "$1/"
}

test_a_license_can_require_a_certified_tpm() {
    vendor_keys
    tcti=$(new_tpm a.tpm)
    ek_store "$T/ekca"
    start_agent a "$tcti" --ek-ca-dir "$T/none"
    offline_request a L-1
    # the CA key ids of this TPM's chain, as the vendor sees them
    ids=$("$VENDOR" inspect --in "$T/a.act" --ek-ca-dir "$T/ekca" --json | jq -r '.ek_trust.ca_key_ids | join(",")')
    [ -n "$ids" ] || fail "no CA key id in the EK chain"
    assert_contains "$("$VENDOR" inspect --in "$T/a.act")" "ek_issuer"
    # the vendor's tool checks the EK against the vendor's store
    out=$("$VENDOR" sign-activation --key "$T/vendor.key" --in "$T/a.act" --product p \
        --customer-id 1 --type perpetual --tpm-trust certified 2>&1) && fail "signed without a store"
    assert_contains "$out" "needs --ek-ca-dir"
    mkdir -p "$T/empty"
    out=$("$VENDOR" sign-activation --key "$T/vendor.key" --in "$T/a.act" --product p \
        --customer-id 1 --type perpetual --tpm-trust certified --ek-ca-dir "$T/empty" 2>&1) &&
        fail "signed with a store the EK does not chain to"
    assert_contains "$out" "refused"
    for trust in certified "$ids"; do
        vendor_sign a --product p --customer-id 1 --type perpetual --tpm-trust "$trust" --ek-ca-dir "$T/ekca"
        out=$(apply_license a L-1)
        assert_eq 400 "$(status)" "tpm_trust $trust without a trust store: $out"
        assert_contains "$out" "this TPM's does not qualify"
    done
    stop_agent a
    start_agent a "$tcti" --ek-ca-dir "$T/ekca"
    out=$(apply_license a L-1)
    assert_eq 200 "$(status)" "tpm_trust by key id with the store: $out"
    # another CA's key id: refused
    offline_request a L-1
    other=$(printf '%064d' 7)
    out=$("$VENDOR" sign-activation --key "$T/vendor.key" --in "$T/a.act" --product p \
        --customer-id 1 --type perpetual --tpm-trust "$other" --ek-ca-dir "$T/ekca" 2>&1) &&
        fail "signed for another CA"
    assert_contains "$out" "chains to none of them"
}

run_tests
