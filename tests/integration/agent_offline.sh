#!/bin/bash
# tpmlicd end to end on a real swtpm, over its real UNIX socket with curl:
# offline activation (POST, vendor signs, PUT) surviving agent restarts, TPM
# reboots and power loss between and after; refused certificates change
# nothing; checks per feature.
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/agentlib.sh"

EXPIRY=$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)

licensed_agent() { # NAME: a swtpm, an agent, an applied offline license
    vendor_keys
    tcti=$(new_tpm "$1.tpm")
    start_agent "$1" "$tcti"
    offline_request "$1" L-1001
    vendor_sign "$1" --product speech --customer-id 4949 --type subscription --expiry "$EXPIRY" \
        --features standard --secs-allocated 1800000 --secs-granted 3600 --offline-allowed
    apply_license "$1" L-1001 >/dev/null
    assert_eq 200 "$(status)" "PUT offlineactivation: $(cat "$T/resp")"
}

test_offline_activation_round_trip() {
    vendor_keys
    tcti=$(new_tpm a.tpm)
    start_agent a "$tcti"
    out=$(api a GET /v1/status)
    assert_eq 200 "$(status)"
    assert_eq false "$(jq .licensed <<<"$out")" "licensed before"
    id=$(jq -r .computer_id <<<"$out")
    assert_eq "$id" "$("$TPMLICD" --config /dev/null --print-computer-id --tcti "$tcti")" "computer ID"

    offline_request a L-1001
    # the appliance reboots between the request and the answer
    stop_agent a
    "$SWTPM_CTL" reboot "$T/a.tpm" >/dev/null
    start_agent a "$tcti"
    vendor_sign a --product speech --customer-id 4949 --type subscription --expiry "$EXPIRY" \
        --features standard,enhanced --secs-allocated 1800000 --secs-granted 3600 --offline-allowed
    out=$(apply_license a L-1001)
    assert_eq 200 "$(status)" "PUT: $out"
    assert_eq true "$(jq .licensed <<<"$out")" "licensed"
    assert_eq offline "$(jq -r .activation_type <<<"$out")"
    assert_eq true "$(jq .offline_mode <<<"$out")"
    assert_eq L-1001 "$(jq -r .license_code <<<"$out")"
    assert_eq 4949 "$(jq .customer_id <<<"$out")"
    assert_eq 3600 "$(jq .transcription_secs_allowed <<<"$out")"
    assert_eq 1800000 "$(jq .transcription_secs_allocated <<<"$out")"
    assert_eq "$id" "$(jq -r .computer_id <<<"$out")"

    for step in restart reboot powerloss; do
        stop_agent a
        case $step in
        reboot) "$SWTPM_CTL" reboot "$T/a.tpm" >/dev/null ;;
        powerloss) "$SWTPM_CTL" poweroff "$T/a.tpm"; "$SWTPM_CTL" start "$T/a.tpm" >/dev/null ;;
        esac
        start_agent a "$tcti"
        out=$(api a GET /v1/status)
        assert_eq true "$(jq .valid <<<"$out")" "valid after $step"
        assert_eq "$id" "$(jq -r .computer_id <<<"$out")" "computer ID after $step"
        assert_eq '["standard","enhanced"]' "$(jq -c .features <<<"$out")"
        out=$(api a POST /v1/check '{"feature": "enhanced"}')
        assert_eq 200 "$(status)" "check after $step"
        assert_eq true "$(jq .allowed <<<"$out")"
    done
}

test_check_per_feature() {
    licensed_agent a
    out=$(api a POST /v1/check)
    assert_eq 200 "$(status)"
    out=$(api a POST /v1/check '{"feature": "standard"}')
    assert_eq 200 "$(status)"
    out=$(api a POST /v1/check '{"feature": "enhanced"}')
    assert_eq 403 "$(status)" "check for a feature the license lacks"
    assert_eq false "$(jq .allowed <<<"$out")"
    assert_eq "You are not authorised to perform this action: License does not include feature 'enhanced'" \
        "$(jq -r .error <<<"$out")"
    out=$(api a POST /v1/check '{"feature": 7}')
    assert_eq 400 "$(status)"
    out=$(api a POST /v1/check '{"feature": "standard", "extra": 1}')
    assert_eq 400 "$(status)"
    m=$(api a GET /metrics)
    assert_contains "$m" 'tpmlic_checks_total{result="allowed"} 2'
    assert_contains "$m" 'tpmlic_checks_total{result="denied"} 1'
    assert_contains "$m" 'tpmlic_license_valid 1'
    l=$(api a GET /licensing)
    assert_eq true "$(jq .valid <<<"$l")"
    assert_eq "$EXPIRY" "$(jq -r .expiry <<<"$l")"
    assert_eq null "$(jq .last_check <<<"$l")"
}

# Every refused certificate leaves the previous license as it was.
test_refused_certificates_change_nothing() {
    licensed_agent a
    before=$(api a GET /v1/management/license)
    cp "$T/a.lic" "$T/good.lic"

    # tampered: one character of the payload changed
    lic=$(cat "$T/good.lic")
    p=${lic#*.}; p=${p%%.*}
    c=${p:40:1}; [ "$c" = A ] && r=B || r=A
    echo "${lic%%.*}.${p:0:40}$r${p:41}.${lic##*.}" >"$T/tampered.lic"
    out=$(apply_license a L-1001 "$T/tampered.lic")
    assert_eq 400 "$(status)"
    assert_contains "$out" "License certificate refused: "

    # signed by another vendor key
    "$VENDOR" keygen --private "$T/other.key" --public "$T/other.pub" >/dev/null
    "$VENDOR" sign-activation --key "$T/other.key" --in "$T/a.act" --product speech --customer-id 1 \
        --type perpetual --offline-allowed >"$T/otherkey.lic"
    out=$(apply_license a L-1001 "$T/otherkey.lic")
    assert_eq 400 "$(status)"
    assert_contains "$out" "signed by another key"

    # for another license code than the operator says
    out=$(apply_license a L-9999 "$T/good.lic")
    assert_eq 400 "$(status)"
    assert_contains "$out" "is for license L-1001, not L-9999"

    # expired by the time it is applied
    vendor_sign a --product speech --customer-id 1 --type time-limited \
        --expiry "$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%SZ)" --offline-allowed
    sleep 3
    out=$(apply_license a L-1001)
    assert_eq 400 "$(status)"
    assert_contains "$out" "expired on "

    # made for another machine: a second TPM's activation request
    tb=$(new_tpm b.tpm)
    start_agent b "$tb"
    offline_request b L-1001
    vendor_sign b --product speech --customer-id 1 --type perpetual --offline-allowed
    out=$(apply_license a L-1001 "$T/b.lic")
    assert_eq 400 "$(status)"
    assert_contains "$out" "certificate for another computer"
    assert_contains "$out" "EK"

    # garbage, empty, oversized
    for bad in "" "not-a-jws" "a.b.c" "$(head -c 3000 /dev/zero | tr '\0' A)"; do
        echo "$bad" >"$T/bad.lic"
        api a PUT /v1/management/license/offlineactivation \
            "{\"license\": \"L-1001\", \"certificate\": \"$bad\"}" >/dev/null
        assert_eq 400 "$(status)" "certificate '${bad:0:20}'"
    done

    assert_eq "$before" "$(api a GET /v1/management/license)" "license after refusals"
    stop_agent a
    start_agent a "$("$SWTPM_CTL" tcti "$T/a.tpm")"
    assert_eq "$before" "$(api a GET /v1/management/license)" "license after refusals and restart"
}

test_post_with_certificate_says_use_put() {
    vendor_keys
    start_agent a "$(new_tpm a.tpm)"
    out=$(api a POST /v1/management/license/offlineactivation '{"license": "L-1", "certificate": "x.y.z"}')
    assert_eq 400 "$(status)"
    assert_contains "$out" "send the same body with PUT /v1/management/license/offlineactivation"
    out=$(api a POST /v1/management/license/offlineactivation '{"license": "bad code!"}')
    assert_eq 400 "$(status)"
    assert_contains "$out" "Invalid license code"
    out=$(api a POST /v1/management/license/offlineactivation '{"license": "L-1", "username": 5}')
    assert_eq 400 "$(status)"
}

test_offline_mode_and_online_endpoints() {
    licensed_agent a
    out=$(api a POST /v1/management/license/offlinemode '{"offline": false}')
    assert_eq 409 "$(status)"
    assert_contains "$out" "activated offline and stays in offline mode"
    out=$(api a POST /v1/management/license/offlinemode '{"offline": "yes"}')
    assert_eq 400 "$(status)"
    out=$(api a DELETE /v1/management/license)
    assert_eq 409 "$(status)"
    assert_contains "$out" "Cannot remove license in offline mode"
    out=$(api a POST /v1/management/license '{"license": "L-1001"}')
    assert_contains "$out" "Cannot activate when offline"
}

test_offline_mode_refused_when_license_does_not_allow_it() {
    vendor_keys
    start_agent a "$(new_tpm a.tpm)"
    out=$(api a POST /v1/management/license/offlinemode '{"offline": true}')
    assert_eq 409 "$(status)"
    assert_contains "$out" "No license is applied"
}

test_network_settings_never_echo_the_password() {
    vendor_keys
    start_agent a "$(new_tpm a.tpm)"
    out=$(api a POST /v1/management/license/network \
        '{"http_configuration": {"ip": "proxy.example", "port": "3128", "user": "amy", "password": "s3cret-pw"}}')
    assert_eq 200 "$(status)"
    assert_eq true "$(jq .http_configuration.password_set <<<"$out")"
    assert_eq 3128 "$(jq .http_configuration.port <<<"$out")"
    case $out in *s3cret-pw*) fail "password echoed" ;; esac
    if grep -q s3cret-pw "$T/a.log"; then fail "password logged"; fi
    assert_eq 600 "$(stat -c %a "$T/a.state/network.json")" "network.json mode"
    out=$(api a POST /v1/management/license/network '{"http_configuration": {"ip": "p", "port": "99999"}}')
    assert_eq 400 "$(status)"
    out=$(api a POST /v1/management/license/network '{"http_configuration": {"ip": "p; rm", "port": 1}}')
    assert_eq 400 "$(status)"
}

run_tests
