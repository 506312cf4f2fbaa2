#!/bin/bash
# tpmlic-server end to end: the admin CLI (license create/list/show/update/
# suspend/resume/delete, human and --json, bad input with its message and
# exit status: 0 ok, 1 refused or failed, 2 usage error), `serve` over TLS
# on loopback spoken to with curl --cacert (each endpoint, signed answers
# checked with openssl as an independent verifier, 400 / 413 / 405 / 404,
# plain HTTP refused), `offline sign` counting against max activations
# (activation certificates from test-make-activation, and one from a real
# agent on swtpm), and SIGTERM -> exit 0 with a connection open.
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/agentlib.sh"
. "$(dirname "$0")/../lib/serverlib.sh"

S=$TPMLIC_SERVER
MK=$B/test-make-activation
for p in "$S" "$MK" "$VENDOR"; do
    [ -x "$p" ] || { echo "missing $p: build it first (make B=$B build-tests)" >&2; exit 1; }
done
for c in openssl jq base64 curl; do
    command -v $c >/dev/null || { echo "$c missing (packaging/debian-packages.txt)" >&2; exit 1; }
done

FUTURE=2099-12-31T00:00:00Z

# expect_refused RC NEEDLE COMMAND...: exit status RC and NEEDLE on stderr
expect_refused() {
    local want=$1 needle=$2 rc=0 out
    shift 2
    out=$("$@" 2>&1 >/dev/null) || rc=$?
    assert_eq "$want" "$rc" "exit status of ${*:2}" || return 1
    assert_contains "$out" "$needle" "stderr of ${*:2}" || return 1
    # the program, and for a usage error the command, before the message
    case $out in tpmlic-server*:\ *) ;; *) fail "stderr prefix: $out" ;; esac
}

# ---- the admin CLI -------------------------------------------------------------

test_help_version_and_usage_errors() {
    local c
    "$S" --help >out.txt
    assert_contains "$(cat out.txt)" "Exit status: 0 success, 1 refused or failed, 2 usage error"
    assert_contains "$("$S" --version)" "tpmlic-server "
    for c in "serve" "license create" "license list" "license show" "license update" \
        "license suspend" "license resume" "license delete" "offline sign"; do
        # shellcheck disable=SC2086
        "$S" $c --help >out.txt || fail "$c --help exit status"
        assert_contains "$(cat out.txt)" "Usage: tpmlic-server"
    done
    expect_refused 2 "a command is needed" "$S"
    expect_refused 2 "unknown command 'frobnicate'" "$S" frobnicate
    expect_refused 2 "a license command is needed" "$S" license
    expect_refused 2 "unknown license command 'rename'" "$S" license rename
    expect_refused 2 "unknown offline command 'verify'" "$S" offline verify
    expect_refused 2 "unknown option '--bogus'" "$S" license list --db x.db --bogus
    expect_refused 2 "needs a value" "$S" license list --db
    expect_refused 2 "--db is required" "$S" license list
    expect_refused 2 "CODE and --db are required" "$S" license show --db x.db
    expect_refused 2 "unexpected argument 'B'" "$S" license show A B --db x.db
    expect_refused 2 "unknown option '--force'" "$S" license suspend A --db x.db --force
    expect_refused 2 "are required" "$S" license create --db x.db --code A
    expect_refused 2 "--db and --key are required" "$S" offline sign --db x.db
    expect_refused 2 "are required" "$S" serve --db x.db
    # reading commands do not create a database
    expect_refused 1 "no database at x.db" "$S" license list --db x.db
    [ ! -e x.db ] || fail "license list created x.db"
}

test_license_create_refuses_bad_terms() {
    local db=(--db "$T/l.db") base=(--product speech --customer-id 7)
    local C=("$S" license create "${db[@]}")
    expect_refused 2 "--code must be 1 to 64" "${C[@]}" --code 'A B' "${base[@]}" --type perpetual
    expect_refused 2 "--customer-id must be a whole number" "${C[@]}" --code A --product p \
        --customer-id -3 --type perpetual
    expect_refused 2 "--type must be perpetual, time-limited" "${C[@]}" --code A "${base[@]}" \
        --type forever
    expect_refused 2 "--expiry must be an RFC 3339 UTC time" "${C[@]}" --code A "${base[@]}" \
        --type subscription --expiry tomorrow
    expect_refused 1 "is in the past" "${C[@]}" --code A "${base[@]}" --type subscription \
        --expiry 2001-01-01T00:00:00Z
    expect_refused 1 "a subscription license needs --expiry" "${C[@]}" --code A "${base[@]}" \
        --type subscription
    expect_refused 1 "a perpetual license has no expiry" "${C[@]}" --code A "${base[@]}" \
        --type perpetual --expiry "$FUTURE"
    expect_refused 1 "a consumption license needs --secs-allocated" "${C[@]}" --code A \
        "${base[@]}" --type consumption --expiry "$FUTURE"
    expect_refused 2 "has an empty name" "${C[@]}" --code A "${base[@]}" --type perpetual \
        --features a,,b
    expect_refused 2 "'std' is listed twice" "${C[@]}" --code A "${base[@]}" --type perpetual \
        --features std,std
    expect_refused 2 "must be letters, digits" "${C[@]}" --code A "${base[@]}" --type perpetual \
        --features 'a b'
    expect_refused 2 "--tick-secs must be 1 to 86400" "${C[@]}" --code A "${base[@]}" \
        --type perpetual --tick-secs 0
    expect_refused 2 "--cache-secs must be a whole number above 0" "${C[@]}" --code A \
        "${base[@]}" --type perpetual --cache-secs 0
    expect_refused 2 "--max-activations must be 0 to 1000000" "${C[@]}" --code A "${base[@]}" \
        --type perpetual --max-activations lots
    expect_refused 2 "--product must be 1 to 64" "${C[@]}" --code A --product "" \
        --customer-id 7 --type perpetual
    # nothing was stored by any of them
    "$S" license list --db "$T/l.db" --json >out.json 2>/dev/null || echo '[]' >out.json
    assert_eq 0 "$(jq length out.json)" "licenses after refusals"
    "${C[@]}" --code A "${base[@]}" --type perpetual >/dev/null
    expect_refused 1 "a license with the code A exists already" "${C[@]}" --code A "${base[@]}" \
        --type perpetual
}

test_license_create_list_show_human_and_json() {
    local out
    out=$("$S" license create --db "$T/l.db" --code ACME-0001 --product "Speech Engine" \
        --customer-id 4242 --type subscription --expiry "$FUTURE" --features standard,enhanced \
        --secs-allocated 360000 --cache-secs 7200 --tick-secs 30 --max-activations 3 \
        --offline-allowed)
    assert_contains "$out" "license ACME-0001 created"
    assert_contains "$out" "subscription_expiry: $FUTURE"
    assert_contains "$out" "features:            standard, enhanced"
    assert_contains "$out" "activations:         0 active of at most 3"
    assert_contains "$out" "secs_free:           360000"
    "$S" license create --db "$T/l.db" --code B-2 --product p --customer-id 1 --type perpetual \
        --json >create.json
    jq -e '.code == "B-2" and .license_type == "perpetual" and .subscription_expiry == null and
        .max_activations == 1 and .cache_secs == 3600 and .tick_secs == 60 and
        .offline_allowed == false and .state == "active" and .pool.free == 0' create.json \
        >/dev/null || fail "create --json: $(cat create.json)"

    out=$("$S" license list --db "$T/l.db")
    assert_contains "$out" "CODE"
    assert_contains "$(echo "$out" | grep ACME-0001)" "0/3"
    assert_contains "$(echo "$out" | grep ACME-0001)" "360000"
    assert_eq 3 "$(echo "$out" | wc -l)" "list lines (header and two licenses)"
    "$S" license list --db "$T/l.db" --json >list.json
    assert_eq '["ACME-0001","B-2"]' "$(jq -c '[.[].code]' list.json)" "list --json (by code)"

    "$S" license show ACME-0001 --db "$T/l.db" --json >show.json
    jq -e '.product == "Speech Engine" and .customer_id == 4242 and
        .features == ["standard","enhanced"] and .secs_allocated == 360000 and
        .cache_secs == 7200 and .tick_secs == 30 and .offline_allowed == true and
        .pool == {"allocated": 360000, "committed": 0, "free": 360000} and
        .active_activations == 0 and .activations == []' show.json >/dev/null ||
        fail "show --json: $(cat show.json)"
    out=$("$S" license show ACME-0001 --db "$T/l.db")
    assert_contains "$out" "no activations"
    expect_refused 1 "no license has the code NOPE" "$S" license show NOPE --db "$T/l.db"

    # update: terms in certificates bump; the allocation cannot go below what is committed
    out=$("$S" license update ACME-0001 --db "$T/l.db" --features standard --max-activations 5)
    assert_contains "$out" "appliances get new certificates at their next validation"
    assert_contains "$out" "0 active of at most 5"
    "$S" license update B-2 --db "$T/l.db" --json --secs-allocated 100 | jq -e '.pool.free == 100' \
        >/dev/null || fail "update --secs-allocated"
    expect_refused 2 "unknown option '--tick-secs'" "$S" license update B-2 --db "$T/l.db" \
        --tick-secs 5
    expect_refused 1 "no license has the code NOPE" "$S" license update NOPE --db "$T/l.db" \
        --max-activations 2
}

test_suspend_resume_delete() {
    local out
    vendor_keys
    server_license l S-1 --type perpetual --max-activations 2
    out=$(server_cli l license suspend S-1)
    assert_eq "license S-1 suspended" "$out"
    assert_eq suspended "$(server_cli l license show S-1 --json | jq -r .state)"
    assert_contains "$(server_cli l license list)" "suspended"
    server_cli l license resume S-1 --json | jq -e '.state == "active" and .suspended == false' \
        >/dev/null || fail "resume --json"
    expect_refused 1 "no license has the code S-9" "$S" license suspend S-9 --db "$T/l.db"

    # an active activation (offline, through the same database) blocks delete without --force
    server_cli l license update S-1 --offline-allowed >/dev/null
    "$MK" --license S-1 >act.txt
    server_cli l offline sign --key "$T/vendor.key" --in act.txt >lic.txt 2>/dev/null ||
        fail "offline sign"
    expect_refused 1 "has 1 active activation(s)" "$S" license delete S-1 --db "$T/l.db"
    server_cli l license delete S-1 --force --json | jq -e '.deleted == true and
        .active_activations_deleted == 1' >/dev/null || fail "delete --force --json"
    expect_refused 1 "no license has the code S-1" "$S" license show S-1 --db "$T/l.db"
    server_license l S-2 --type perpetual
    assert_eq "license S-2 deleted" "$(server_cli l license delete S-2)"
    assert_eq 0 "$(server_cli l license list --json | jq length)" "licenses left"
}

# ---- offline sign --------------------------------------------------------------------

test_offline_sign_counts_against_max_activations() {
    local out i
    vendor_keys
    server_license o OFF-1 --type subscription --expiry "$FUTURE" --features standard \
        --secs-allocated 10000 --max-activations 2 --offline-allowed
    for i in 1 2 3; do "$MK" --license OFF-1 --details >act$i.txt; done
    server_cli o offline sign --key "$T/vendor.key" --in act1.txt --secs-granted 3000 \
        >lic1.txt 2>err.txt || fail "offline sign 1: $(cat err.txt)"
    assert_contains "$(cat err.txt)" "recorded"
    "$VENDOR" inspect --public "$T/vendor.pub" --in lic1.txt --json >ins.json ||
        fail "inspect: $(cat lic1.txt)"
    jq -e '.license == "OFF-1" and .activation_type == "offline" and .secs_granted == 3000 and
        .secs_allocated == 10000 and .features == ["standard"]' ins.json >/dev/null ||
        fail "the offline certificate: $(cat ins.json)"
    # from standard input; default grant: all that is free
    server_cli o offline sign --key "$T/vendor.key" <act2.txt >lic2.txt 2>/dev/null ||
        fail "offline sign 2"
    assert_eq 7000 "$(cert_payload <lic2.txt | jq .secs_granted)" "default grant"
    # the maximum is reached
    expect_refused 1 "refused (max_activations): all 2 activations" \
        "$S" offline sign --db "$T/o.db" --key "$T/vendor.key" --in act3.txt
    # the same appliance again: its activation again, nothing more used
    server_cli o offline sign --key "$T/vendor.key" --in act1.txt >lic1b.txt 2>err.txt ||
        fail "offline sign again"
    assert_contains "$(cat err.txt)" "signed again"
    assert_eq "$(cert_payload <lic1.txt | jq -r .jti)" "$(cert_payload <lic1b.txt | jq -r .jti)" \
        "the same activation"
    server_cli o license show OFF-1 --json >show.json
    jq -e '.active_activations == 2 and .pool.committed == 10000 and
        ([.activations[] | select(.kind == "offline")] | length) == 2' show.json >/dev/null ||
        fail "after offline signing: $(cat show.json)"
    # online activation of a third appliance is refused the same way
    start_server o
    activation_body act3.txt >req.json
    post o /v1/activate req.json >ans.json
    assert_eq 403 "$(status)" "online activation over the maximum"
    answer_payload <ans.json | jq -e '.result == "refused" and .reason == "max_activations"' \
        >/dev/null || fail "answer: $(cat ans.json)"
    stop_server o

    # refusals: offline not allowed, suspended, unknown, garbage, altered
    server_license o ON-1 --type perpetual
    "$MK" --license ON-1 >on.txt
    expect_refused 1 "refused (offline_not_allowed)" "$S" offline sign --db "$T/o.db" \
        --key "$T/vendor.key" --in on.txt
    server_cli o license suspend OFF-1 >/dev/null
    expect_refused 1 "refused (suspended)" "$S" offline sign --db "$T/o.db" --key "$T/vendor.key" \
        --in act3.txt
    "$MK" --license NOPE-1 >nope.txt
    expect_refused 1 "refused (unknown_license)" "$S" offline sign --db "$T/o.db" \
        --key "$T/vendor.key" --in nope.txt
    echo 'this is not an activation certificate' >junk.txt
    expect_refused 1 "the activation certificate is malformed" "$S" offline sign --db "$T/o.db" \
        --key "$T/vendor.key" --in junk.txt
    : >empty.txt
    expect_refused 1 "is empty" "$S" offline sign --db "$T/o.db" --key "$T/vendor.key" \
        --in empty.txt
    expect_refused 1 "cannot read" "$S" offline sign --db "$T/o.db" --key "$T/vendor.key" \
        --in missing.txt
    expect_refused 1 "is not a PEM private key" "$S" offline sign --db "$T/o.db" \
        --key "$T/vendor.pub" --in act3.txt
    expect_refused 2 "--secs-granted must be a whole number" "$S" offline sign --db "$T/o.db" \
        --key "$T/vendor.key" --in act3.txt --secs-granted -1
}

test_offline_sign_for_a_real_agent() {
    local tcti
    vendor_keys
    server_license r R-1 --type perpetual --features standard --secs-allocated 3600 \
        --offline-allowed
    tcti=$(new_tpm a.tpm)
    start_agent a "$tcti"
    offline_request a R-1
    server_cli r offline sign --key "$T/vendor.key" --in "$T/a.act" >"$T/a.lic" 2>/dev/null ||
        fail "offline sign of the agent's request"
    apply_license a R-1 >/dev/null
    assert_eq 200 "$(status)" "applying the license: $(cat "$T/resp")"
    api a GET /v1/status | jq -e '.licensed == true and .valid == true and .offline_mode == true' \
        >/dev/null || fail "agent status: $(cat "$T/resp")"
    assert_eq 3600 "$(cert_payload <"$T/a.lic" | jq .secs_granted)" "grant"
    assert_eq "$(api a GET /v1/status | jq -r .computer_id)" \
        "$(server_cli r license show R-1 --json | jq -r '.activations[0].computer_id')" \
        "the computer ID recorded"
    stop_agent a
}

# ---- serve ----------------------------------------------------------------------

test_serve_usage_and_tls_errors() {
    vendor_keys
    server_tls t
    server_tls u
    local base=(serve --db "$T/t.db" --key "$T/vendor.key" --listen 127.0.0.1:0)
    expect_refused 2 "--listen must be HOST:PORT" "$S" serve --db "$T/t.db" --key "$T/vendor.key" \
        --listen localhost --tls-cert "$T/t.crt" --tls-key "$T/t.key"
    expect_refused 2 "is not a port" "$S" serve --db "$T/t.db" --key "$T/vendor.key" \
        --listen 127.0.0.1:99999 --tls-cert "$T/t.crt" --tls-key "$T/t.key"
    expect_refused 2 "--threads must be 1 to 256" "$S" "${base[@]}" --tls-cert "$T/t.crt" \
        --tls-key "$T/t.key" --threads 0
    expect_refused 1 "does not belong to the certificate" "$S" "${base[@]}" \
        --tls-cert "$T/t.crt" --tls-key "$T/u.key"
    expect_refused 1 "is not a PEM certificate" "$S" "${base[@]}" --tls-cert "$T/t.key" \
        --tls-key "$T/t.key"
    expect_refused 1 "cannot read the TLS certificate" "$S" "${base[@]}" \
        --tls-cert "$T/missing.crt" --tls-key "$T/t.key"
    expect_refused 1 "is not an Ed25519 key" "$S" serve --db "$T/t.db" --key "$T/t.key" \
        --listen 127.0.0.1:0 --tls-cert "$T/t.crt" --tls-key "$T/t.key"
    echo 'not sqlite, just text, long enough to be looked at by sqlite........' >"$T/bad.db"
    expect_refused 1 "is not a usable SQLite database" "$S" serve --db "$T/bad.db" \
        --key "$T/vendor.key" --listen 127.0.0.1:0 --tls-cert "$T/t.crt" --tls-key "$T/t.key"
    # the port is taken
    start_server t
    expect_refused 1 "cannot listen on 127.0.0.1:$(cat "$T/t.port")" "$S" serve --db "$T/t.db" \
        --key "$T/vendor.key" --listen "127.0.0.1:$(cat "$T/t.port")" --tls-cert "$T/t.crt" \
        --tls-key "$T/t.key"
    stop_server t
}

test_serve_refuses_bad_requests() {
    local url hdrs
    start_server h
    url=$(cat "$T/h.url")
    # malformed JSON: 400, unsigned {"error", "code"}
    printf '{"activation_certificate": ' >bad.json
    post h /v1/activate bad.json >out.json
    assert_eq 400 "$(status)" "malformed JSON"
    jq -e '.code == 400 and (.error | test("not JSON"))' out.json >/dev/null ||
        fail "400 body: $(cat out.json)"
    echo '[1, 2]' >arr.json
    post h /v1/validate arr.json >out.json
    assert_eq 400 "$(status)" "not an object"
    assert_contains "$(jq -r .error out.json)" "must be a JSON object"
    echo '{"v": 1}' >v.json
    post h /v1/validate v.json >out.json
    assert_eq 400 "$(status)" "missing fields"
    assert_contains "$(jq -r .error out.json)" "field 'license' is missing"
    echo '{"a": 1, "a": 2}' >dup.json
    post h /v1/deactivate dup.json >/dev/null
    assert_eq 400 "$(status)" "duplicate keys"
    : >empty.json
    post h /v1/activate empty.json >out.json
    assert_eq 400 "$(status)" "empty body"
    # over 16 KiB: 413, with and without Expect: 100-continue, and chunked
    head -c 16385 /dev/zero | tr '\0' ' ' >big.json
    post h /v1/activate big.json >out.json
    assert_eq 413 "$(status)" "a body of 16 KiB + 1"
    jq -e '.code == 413' out.json >/dev/null || fail "413 body: $(cat out.json)"
    post h /v1/activate big.json -H 'Expect:' >/dev/null
    assert_eq 413 "$(status)" "a body of 16 KiB + 1 sent at once"
    post h /v1/activate big.json -H 'Transfer-Encoding: chunked' >/dev/null
    assert_eq 413 "$(status)" "a chunked body over 16 KiB"
    # exactly 16 KiB is read (and is not JSON)
    head -c 16384 /dev/zero | tr '\0' ' ' >max.json
    post h /v1/activate max.json >/dev/null
    assert_eq 400 "$(status)" "a body of exactly 16 KiB"
    # GET: 405 with Allow: POST; unknown path: 404
    hdrs=$(curl -s -D - -o "$T/resp" --cacert "$T/h-ca.pem" "$url/v1/validate")
    assert_contains "$hdrs" " 405"
    assert_contains "$(echo "$hdrs" | tr -d '\r')" "Allow: POST"
    jq -e '.code == 405' "$T/resp" >/dev/null || fail "405 body: $(cat "$T/resp")"
    for m in PUT DELETE; do
        assert_eq 405 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/h-ca.pem" -X $m \
            "$url/v1/activate")" "$m"
    done
    echo '{}' >e.json
    post h /v1/status e.json >out.json
    assert_eq 404 "$(status)" "unknown path"
    assert_contains "$(jq -r .error out.json)" "/v1/activate"
    assert_eq 404 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/h-ca.pem" "$url/")" "/"
    # plain HTTP to the TLS port gets no HTTP answer
    if curl -s -o /dev/null --max-time 5 -d '{}' "http://127.0.0.1:$(cat "$T/h.port")/v1/activate"; then
        fail "plain HTTP was answered"
    fi
    # a certificate the client does not trust: the handshake fails
    server_tls other
    if curl -s -o /dev/null --max-time 5 --cacert "$T/other-ca.pem" -d '{}' "$url/v1/activate"; then
        fail "a server certificate from another CA was accepted"
    fi
    # still serving after all that; one log line per request, no full codes
    post h /v1/activate e.json >/dev/null
    assert_eq 400 "$(status)" "still serving"
    grep -q "POST /v1/activate 413" "$T/h.log" || fail "413 not logged: $(cat "$T/h.log")"
    stop_server h
}

test_serve_activate_validate_deactivate() {
    local act epoch next cid
    start_server s
    server_license s SPEECH-0001-ABCD --type consumption --expiry "$FUTURE" \
        --features standard --secs-allocated 10000 --cache-secs 3600 --max-activations 2
    "$MK" --license SPEECH-0001-ABCD --counter-value 100 >a1.txt
    activation_body a1.txt >req.json
    post s /v1/activate req.json >ans.json
    assert_eq 200 "$(status)" "activate: $(cat ans.json)"
    answer_payload <ans.json >p.json
    jq -e '.v == 1 and .type == "activate" and .result == "ok" and
        .nonce == "00112233445566778899aabbccddeeff" and .cache_secs == 3600 and
        .validate_after == 86400 and (.epoch | test("^[0-9a-f]{32}$"))' p.json >/dev/null ||
        fail "activate answer: $(cat p.json)"
    act=$(jq -r .activation p.json)
    epoch=$(jq -r .epoch p.json)
    jq -r .license_certificate p.json >lic.txt
    "$VENDOR" inspect --public "$T/vendor.pub" --in lic.txt --json >ins.json ||
        fail "the license certificate does not verify"
    jq -e --arg a "$act" '.jti == $a and .activation_type == "online" and
        .secs_granted == 3600 and .counter.base == 100 and .license == "SPEECH-0001-ABCD"' \
        ins.json >/dev/null || fail "license certificate: $(cat ins.json)"
    # the log names the license by its last 4 characters only
    grep -q "license=\.\.\.ABCD" "$T/s.log" || fail "log: $(cat "$T/s.log")"
    if grep -q "SPEECH-0001-ABCD" "$T/s.log"; then fail "the full license code was logged"; fi

    # validate with refill: the epoch rotates, a new certificate for 1000 + 3600
    cid=$(jq -r .computer_id ins.json)
    next=0123456789abcdef0123456789abcdef
    jq -n --arg a "$act" --arg c "$cid" --arg e "$epoch" --arg n "$next" \
        '{v: 1, license: "SPEECH-0001-ABCD", activation: $a, computer_id: $c,
          nonce: "ffffffffffffffffffffffffffffffff", epoch: $e, next_epoch: $n,
          counter: 120, consumed_secs: 1000, refill: true}' >val.json
    post s /v1/validate val.json >ans.json
    assert_eq 200 "$(status)" "validate: $(cat ans.json)"
    answer_payload <ans.json >p.json
    jq -e --arg n "$next" '.type == "validate" and .result == "ok" and .epoch == $n and
        .status == "active" and .secs_granted == 4600 and .subscription_expiry == "2099-12-31T00:00:00Z" and
        .nonce == "ffffffffffffffffffffffffffffffff" and (.license_certificate | length) > 0' \
        p.json >/dev/null || fail "validate answer: $(cat p.json)"
    # the same request again is the retry of a lost answer: accepted
    post s /v1/validate val.json >ans.json
    assert_eq 200 "$(status)" "retry with the pending epoch"
    # a copy holding the old epoch with another pending one: stale_epoch, 403, flagged
    jq '.next_epoch = "99999999999999999999999999999999"' val.json >stale.json
    post s /v1/validate stale.json >ans.json
    assert_eq 403 "$(status)" "stale epoch"
    answer_payload <ans.json | jq -e '.result == "refused" and .reason == "stale_epoch"' \
        >/dev/null || fail "stale answer: $(cat ans.json)"
    server_cli s license show SPEECH-0001-ABCD >show.txt
    assert_contains "$(cat show.txt)" "flag "
    assert_contains "$(cat show.txt)" "stale_epoch"
    server_cli s license show SPEECH-0001-ABCD --json |
        jq -e '.activations[0].flags[0].reason == "stale_epoch"' >/dev/null || fail "flags in --json"

    # deactivate: 4600 - 1500 come back
    jq -n --arg a "$act" --arg c "$cid" --arg e "$next" \
        '{v: 1, license: "SPEECH-0001-ABCD", activation: $a, computer_id: $c,
          nonce: "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", epoch: $e, counter: 130,
          consumed_secs: 1500}' >deact.json
    post s /v1/deactivate deact.json >ans.json
    assert_eq 200 "$(status)" "deactivate: $(cat ans.json)"
    answer_payload <ans.json | jq -e '.type == "deactivate" and .returned_secs == 3100' \
        >/dev/null || fail "deactivate answer: $(cat ans.json)"
    server_cli s license show SPEECH-0001-ABCD --json >show.json
    jq -e '.active_activations == 0 and .pool.free == 8500 and
        .activations[0].state == "closed" and .activations[0].final_secs == 1500' show.json \
        >/dev/null || fail "after deactivation: $(cat show.json)"
    # validating now: not_active
    jq '.epoch = .next_epoch | .next_epoch = "11111111111111111111111111111111" | .counter = 130' \
        val.json >val2.json
    post s /v1/validate val2.json >ans.json
    assert_eq 403 "$(status)"
    answer_payload <ans.json | jq -e '.reason == "not_active"' >/dev/null ||
        fail "not_active: $(cat ans.json)"

    # suspended and unknown licenses: signed refusals
    server_cli s license suspend SPEECH-0001-ABCD >/dev/null
    post s /v1/activate req.json >ans.json
    assert_eq 403 "$(status)"
    answer_payload <ans.json | jq -e '.reason == "suspended"' >/dev/null ||
        fail "suspended: $(cat ans.json)"
    "$MK" --license NO-SUCH-CODE >u.txt
    activation_body u.txt >u.json
    post s /v1/activate u.json >ans.json
    assert_eq 403 "$(status)"
    answer_payload <ans.json | jq -e '.reason == "unknown_license" and
        .message == "Invalid license code"' >/dev/null || fail "unknown: $(cat ans.json)"
    stop_server s
}

test_sigterm_exits_0_with_connections_open() {
    local pid rc=0
    start_server k
    pid=$(cat "$T/k.pid")
    # an idle keep-alive TLS connection, and a slow client sending headers only
    (sleep 3 | openssl s_client -quiet -connect "127.0.0.1:$(cat "$T/k.port")" \
        -CAfile "$T/k-ca.pem" >/dev/null 2>&1) &
    echo $! >"$T/sclient.pid"
    sleep 0.5
    kill -INT "$pid"
    wait "$pid" || rc=$?
    rm -f "$T/k.pid"
    assert_eq 0 "$rc" "exit status after SIGINT"
    grep -q "stopping on Interrupt" "$T/k.log" || fail "log: $(cat "$T/k.log")"
    grep -q "stopped" "$T/k.log" || fail "log: $(cat "$T/k.log")"
    # and SIGTERM: exit status 0 (stop_server checks it)
    start_server k
    echo '{}' >e.json
    post k /v1/activate e.json >/dev/null
    stop_server k
    grep -q "stopping on Terminated" "$T/k.log" || fail "log: $(cat "$T/k.log")"
}

run_tests
