#!/bin/bash
# tpmlic-server's admin REST API and what serve does beside the appliance
# protocol, end to end over TLS on loopback with curl, on SQLite: bearer
# tokens and their scopes (stored hashed, never logged), every admin
# operation through the API and the same through the CLI, per-activation
# revoke / transfer / clear-flags / cull, the audit log, webhooks to a real
# receiver (signatures checked independently, retries with back-off, the
# delivery log), docs/openapi.yaml against the routes served, /metrics
# through promtool, /health, client addresses and trusted proxies, the
# activation rate per address, a caller holding many idle connections,
# the config file, the admin listener, and bad requests.
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/agentlib.sh"
. "$(dirname "$0")/../lib/serverlib.sh"

S=$TPMLIC_SERVER
MK=$B/test-make-activation
RECEIVER=$TPMLIC_SRCDIR/tests/lib/webhook_receiver.py
OPENAPI=$TPMLIC_SRCDIR/docs/openapi.yaml
for p in "$S" "$MK" "$VENDOR"; do
    [ -x "$p" ] || { echo "missing $p: build it first (make B=$B build-tests)" >&2; exit 1; }
done
for c in openssl jq curl python3 promtool; do
    command -v $c >/dev/null || { echo "$c missing (packaging/debian-packages.txt)" >&2; exit 1; }
done
python3 -c 'import yaml' 2>/dev/null || { echo "python3-yaml missing (packaging/debian-packages.txt)" >&2; exit 1; }

FUTURE=2099-12-31T00:00:00Z

expect_status() { # WANT WHAT
    assert_eq "$1" "$(status)" "$2: $(cat "$T/resp")"
}

# set_last_seen NAME ACTIVATION UNIX: an appliance that was last seen long ago
set_last_seen() {
    python3 - "$T/$1.db" "$2" "$3" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=10)
c.execute("UPDATE activations SET last_seen = ? WHERE id = ?", (int(sys.argv[3]), sys.argv[2]))
c.commit()
EOF
}

# ---- tokens ---------------------------------------------------------------------------

test_tokens_scopes_hashing_and_revocation() {
    local r w a hdr
    start_server s
    r=$(server_token s read)
    w=$(server_token s write)
    a=$(server_token s admin)
    [[ $r =~ ^tpmlic_[0-9a-f]{16}_[0-9a-f]{64}$ ]] || fail "token format: $r"
    # none, garbage, a forged one with a real ID: 401 with WWW-Authenticate
    admin s "" GET /admin/v1/licenses >/dev/null
    expect_status 401 "no token"
    grep -qi '^WWW-Authenticate: Bearer' "$T/headers" || fail "no WWW-Authenticate: $(cat "$T/headers")"
    admin s "tpmlic_nonsense" GET /admin/v1/licenses >/dev/null
    expect_status 401 "a malformed token"
    admin s "${r%_*}_$(printf '%064d' 0)" GET /admin/v1/licenses >/dev/null
    expect_status 401 "a real ID with a wrong secret"
    # scopes nest: read < write < admin
    admin s "$r" GET /admin/v1/licenses >/dev/null
    expect_status 200 "read lists"
    admin s "$r" POST /admin/v1/licenses '{"code": "T-1"}' >/dev/null
    expect_status 403 "read cannot create"
    assert_contains "$(jq -r .error "$T/resp")" "needs write"
    admin s "$w" POST /admin/v1/licenses \
        '{"code": "T-1", "product": "p", "customer_id": 1, "license_type": "perpetual"}' >/dev/null
    expect_status 201 "write creates"
    admin s "$w" GET /admin/v1/audit >/dev/null
    expect_status 403 "write cannot read the audit log"
    admin s "$a" GET /admin/v1/audit >/dev/null
    expect_status 200 "admin reads the audit log"
    # a token made through the API, shown once; the list never shows one
    admin s "$a" POST /admin/v1/tokens '{"scope": "read", "name": "billing"}' >api-token.json
    expect_status 201 "token through the API"
    jq -e '.scope == "read" and .name == "billing" and (.token | test("^tpmlic_"))' api-token.json \
        >/dev/null || fail "token answer: $(cat api-token.json)"
    admin s "$a" GET /admin/v1/tokens >tokens.json
    assert_eq 4 "$(jq '.tokens | length' tokens.json)" "tokens listed"
    if grep -q tpmlic_ tokens.json; then fail "a token listed: $(cat tokens.json)"; fi
    # the database keeps hashes only; the log has IDs only
    for t in "$r" "$w" "$a" "$(jq -r .token api-token.json)"; do
        if grep -aq "${t##*_}" "$T/s.db" "$T/s.db-wal" 2>/dev/null; then fail "a token secret is in the database"; fi
        if grep -q "${t##*_}" "$T/s.log"; then fail "a token secret is in the log"; fi
    done
    grep -q "token=$(echo "$r" | cut -d_ -f2)" "$T/s.log" || fail "no token ID in the log"
    # revoked: refused from then on
    server_cli s token revoke "$(echo "$r" | cut -d_ -f2)" >/dev/null || fail "token revoke"
    admin s "$r" GET /admin/v1/licenses >/dev/null
    expect_status 401 "a revoked token"
    admin s "$a" DELETE "/admin/v1/tokens/$(jq -r .id api-token.json)" >/dev/null
    expect_status 200 "revoke through the API"
    admin s "$a" DELETE "/admin/v1/tokens/$(jq -r .id api-token.json)" >/dev/null
    expect_status 409 "revoked twice"
    server_cli s audit list --json --action token. >audit.json
    assert_eq '["token.revoke","token.revoke","token.create","token.create","token.create","token.create"]' \
        "$(jq -c '[.[].action]' audit.json)" "token actions audited"
    stop_server s
}

# ---- licenses --------------------------------------------------------------------------

test_license_operations_match_the_cli() {
    local w
    start_server s
    w=$(server_token s write)
    admin s "$w" POST /admin/v1/licenses "{\"code\": \"API-1\", \"product\": \"Speech\",
        \"customer_id\": 42, \"license_type\": \"subscription\", \"expiry\": \"$FUTURE\",
        \"features\": [\"standard\", \"enhanced\"], \"secs_allocated\": 100000,
        \"max_activations\": 3, \"max_transfers\": 1, \"cull_days\": 30,
        \"pool_alert_secs\": 5000}" >created.json
    expect_status 201 "create"
    jq -e '.code == "API-1" and .max_transfers == 1 and .cull_days == 30 and
        .pool_alert_secs == 5000 and .pool.free == 100000' created.json >/dev/null ||
        fail "created: $(cat created.json)"
    admin s "$w" POST /admin/v1/licenses "{\"code\": \"API-1\", \"product\": \"p\",
        \"customer_id\": 1, \"license_type\": \"perpetual\"}" >/dev/null
    expect_status 409 "the code exists"
    # the answer of the API is the document of the CLI
    admin s "$w" GET /admin/v1/licenses/API-1 | jq -S 'del(.activations, .transfers)' >api.json
    server_cli s license show API-1 --json | jq -S 'del(.activations, .transfers)' >cli.json
    assert_eq "$(cat cli.json)" "$(cat api.json)" "API and CLI show"
    # bad values: the rule named, the field given, nothing changed
    admin s "$w" PATCH /admin/v1/licenses/API-1 '{"tick_secs": 5}' >/dev/null
    expect_status 400 "tick_secs is fixed"
    jq -e '.field == "tick_secs"' "$T/resp" >/dev/null || fail "field: $(cat "$T/resp")"
    admin s "$w" PATCH /admin/v1/licenses/API-1 '{"max_activations": 2000000}' >/dev/null
    expect_status 400 "out of range"
    assert_contains "$(jq -r .error "$T/resp")" "'max_activations' must be 0 to 1000000"
    admin s "$w" PATCH /admin/v1/licenses/API-1 '{"max_activations": "3"}' >/dev/null
    expect_status 400 "a string for a number"
    admin s "$w" PATCH /admin/v1/licenses/API-1 '{"colour": "blue"}' >/dev/null
    expect_status 400 "unknown field"
    assert_contains "$(jq -r .error "$T/resp")" "unknown field 'colour'"
    admin s "$w" PATCH /admin/v1/licenses/API-1 '{"expiry": "2001-01-01T00:00:00Z"}' >/dev/null
    expect_status 409 "an expiry in the past"
    admin s "$w" PATCH /admin/v1/licenses/API-1 '{"features": ["a", "a"]}' >/dev/null
    expect_status 400 "a feature twice"
    admin s "$w" GET /admin/v1/licenses/API-1 | jq -S 'del(.activations, .transfers)' >after.json
    assert_eq "$(cat api.json)" "$(cat after.json)" "nothing changed"
    # changes
    admin s "$w" PATCH /admin/v1/licenses/API-1 '{"features": ["standard"], "max_activations": 5}' \
        >patched.json
    expect_status 200 "patch"
    jq -e '.terms_changed == true and .features == ["standard"] and .max_activations == 5' \
        patched.json >/dev/null || fail "patched: $(cat patched.json)"
    admin s "$w" PATCH /admin/v1/licenses/API-1 '{"cull_days": 7}' | jq -e '.terms_changed == false' \
        >/dev/null || fail "cull_days is not a certificate term"
    admin s "$w" POST /admin/v1/licenses/API-1/suspend | jq -e '.state == "suspended"' >/dev/null ||
        fail "suspend"
    admin s "$w" POST /admin/v1/licenses/API-1/resume | jq -e '.state == "active"' >/dev/null ||
        fail "resume"
    admin s "$w" GET /admin/v1/licenses | jq -e '.licenses | length == 1' >/dev/null || fail "list"
    admin s "$w" GET /admin/v1/licenses/NOPE >/dev/null
    expect_status 404 "unknown license"
    # delete: refused with active activations, unless force
    "$MK" --license API-1 >a1.txt
    srv_activate s a1.txt
    expect_status 200 "activate"
    admin s "$w" DELETE /admin/v1/licenses/API-1 >/dev/null
    expect_status 409 "delete with an active activation"
    assert_contains "$(jq -r .error "$T/resp")" "or delete with 'force'"
    admin s "$w" DELETE "/admin/v1/licenses/API-1?force=true" | jq -e '.deleted == true and
        .active_activations_deleted == 1' >/dev/null || fail "delete: $(cat "$T/resp")"
    # every change is in the audit log, with who and before/after
    server_cli s audit list --json --action license. >audit.json
    assert_eq '["license.delete","license.resume","license.suspend","license.update","license.update","license.create"]' \
        "$(jq -c '[.[].action]' audit.json)" "license actions audited"
    jq -e '.[4].before.features == ["standard","enhanced"] and .[4].after.features == ["standard"]
        and (.[4].actor | startswith("token:")) and .[0].after == null' audit.json >/dev/null ||
        fail "audit entries: $(cat audit.json)"
    stop_server s
}

test_offline_sign_over_the_api() {
    local w
    start_server s
    w=$(server_token s write)
    server_license s OFF-1 --type perpetual --secs-allocated 5000 --max-activations 1 --offline-allowed
    "$MK" --license OFF-1 >a1.txt
    "$MK" --license OFF-1 --dmi-serial other >a2.txt
    admin s "$w" POST /admin/v1/offline-activations \
        "$(jq -n --arg a "$(cat a1.txt)" '{activation_certificate: $a, secs_granted: 1200}')" >signed.json
    expect_status 201 "offline sign"
    jq -r .license_certificate signed.json >lic.txt
    "$VENDOR" inspect --public "$T/vendor.pub" --in lic.txt --json | jq -e '.activation_type ==
        "offline" and .secs_granted == 1200' >/dev/null || fail "the certificate: $(cat signed.json)"
    admin s "$w" POST /admin/v1/offline-activations \
        "$(jq -n --arg a "$(cat a2.txt)" '{activation_certificate: $a}')" >/dev/null
    expect_status 409 "over the maximum"
    jq -e '.reason == "max_activations"' "$T/resp" >/dev/null || fail "reason: $(cat "$T/resp")"
    admin s "$w" POST /admin/v1/offline-activations '{"activation_certificate": "bm90IGEgY2VydA"}' \
        >/dev/null
    expect_status 400 "malformed certificate"
    server_cli s audit list --action offline.sign --json | jq -e 'length == 1' >/dev/null ||
        fail "offline.sign audited"
    stop_server s
}

# ---- activations -----------------------------------------------------------------------

test_revoke_transfer_clear_flags() {
    local w ida idb idc idd cida cidd epa
    start_server s
    w=$(server_token s write)
    server_license s R-1 --type perpetual --secs-allocated 100000 --max-activations 2 --max-transfers 1
    for x in a b c d e; do "$MK" --license R-1 --dmi-serial "$x" >"$x.txt"; done
    srv_activate s a.txt
    ida=$(jq -r .activation "$T/payload.json")
    epa=$(jq -r .epoch "$T/payload.json")
    cida=$(computer_id_of a.txt)
    srv_activate s b.txt
    idb=$(jq -r .activation "$T/payload.json")
    admin s "$w" GET "/admin/v1/activations?license=R-1&state=active" |
        jq -e '.activations | length == 2' >/dev/null || fail "list: $(cat "$T/resp")"
    # a copy of A validates with an old epoch: flagged
    srv_check s validate R-1 "$ida" "$cida" "$epa" 11111111111111111111111111111111 1000 0
    expect_status 200 "A validates"
    srv_check s validate R-1 "$ida" "$cida" "$epa" 22222222222222222222222222222222 1000 0
    expect_status 403 "a copy of A"
    admin s "$w" GET "/admin/v1/activations?flagged=true" | jq -e --arg a "$ida" \
        '[.activations[].id] == [$a]' >/dev/null || fail "flagged: $(cat "$T/resp")"
    admin s "$w" POST "/admin/v1/activations/$ida/clear-flags" >cleared.json
    expect_status 200 "clear-flags"
    jq -e '.flagged == false and .flags_cleared == 1 and .flags[0].reason == "stale_epoch" and
        (.flags[0].cleared_by | startswith("token:"))' cleared.json >/dev/null ||
        fail "cleared: $(cat cleared.json)"
    admin s "$w" GET "/admin/v1/activations?flagged=true" | jq -e '.activations == []' >/dev/null ||
        fail "still flagged"
    # revoke B: its seat is free, its appliance refused at its next validation
    admin s "$w" POST "/admin/v1/activations/$idb/revoke" | jq -e '.state == "closed" and
        .closed_reason == "revoked"' >/dev/null || fail "revoke: $(cat "$T/resp")"
    srv_check s validate R-1 "$idb" "$(computer_id_of b.txt)" 00000000000000000000000000000000 \
        33333333333333333333333333333333 1000 0
    jq -e '.reason == "not_active" and (.message | test("revoked"))' "$T/payload.json" >/dev/null ||
        fail "after revoke: $(cat "$T/payload.json")"
    admin s "$w" POST "/admin/v1/activations/$idb/revoke" >/dev/null
    expect_status 409 "revoked twice"
    srv_activate s c.txt
    expect_status 200 "C takes the freed seat"
    idc=$(jq -r .activation "$T/payload.json")
    # transfer A to D: the seat is D's, E cannot have it
    cidd=$(computer_id_of d.txt)
    admin s "$w" POST "/admin/v1/activations/$ida/transfer" '{"to_computer_id": "not-an-id"}' >/dev/null
    expect_status 400 "a bad computer ID"
    admin s "$w" POST "/admin/v1/activations/$ida/transfer" "{\"to_computer_id\": \"$cidd\"}" \
        >transfer.json
    expect_status 200 "transfer"
    jq -e --arg d "$cidd" '.activation.closed_reason == "transferred" and
        .transfer.to_computer_id == $d and .transfers_used == 1' transfer.json >/dev/null ||
        fail "transfer: $(cat transfer.json)"
    srv_activate s e.txt
    jq -e '.reason == "max_activations"' "$T/payload.json" >/dev/null ||
        fail "E over the maximum: $(cat "$T/payload.json")"
    srv_activate s d.txt
    expect_status 200 "D activates on the transferred seat"
    idd=$(jq -r .activation "$T/payload.json")
    srv_check s validate R-1 "$ida" "$cida" 11111111111111111111111111111111 \
        44444444444444444444444444444444 1000 0
    jq -e '.reason == "not_active" and (.message | test("transferred"))' "$T/payload.json" \
        >/dev/null || fail "A after the transfer: $(cat "$T/payload.json")"
    # no transfer left
    admin s "$w" POST "/admin/v1/activations/$idc/transfer" "{\"to_computer_id\": \"$cida\"}" >/dev/null
    expect_status 409 "max_transfers"
    jq -e '.reason == "max_transfers"' "$T/resp" >/dev/null || fail "reason: $(cat "$T/resp")"
    # the same through the CLI
    server_cli s activation show "$idd" --json | jq -e '.state == "active"' >/dev/null ||
        fail "activation show"
    server_cli s activation list --license R-1 --state closed --json |
        jq -e '[.[].closed_reason] | sort == ["revoked", "transferred"]' >/dev/null ||
        fail "activation list --state closed"
    server_cli s license show R-1 --json | jq -e '.active_activations == 2 and .transfers_used == 1
        and .reserved_seats == 0' >/dev/null || fail "license after: $(server_cli s license show R-1 --json)"
    server_cli s audit list --action activation. --json |
        jq -e '[.[].action] == ["activation.transfer", "activation.revoke", "activation.clear_flags"]' \
            >/dev/null || fail "activation actions audited"
    stop_server s
}

test_cull_by_policy() {
    local w ida idb old
    start_server s --cull-interval 1
    w=$(server_token s write)
    server_license s C-1 --type perpetual --secs-allocated 10000 --max-activations 3 --cull-days 2
    server_license s C-2 --type perpetual --max-activations 3
    "$MK" --license C-1 --dmi-serial a >a.txt
    "$MK" --license C-1 --dmi-serial b >b.txt
    srv_activate s a.txt
    ida=$(jq -r .activation "$T/payload.json")
    srv_activate s b.txt
    idb=$(jq -r .activation "$T/payload.json")
    old=$(($(date +%s) - 3 * 86400))
    set_last_seen s "$ida" "$old"
    admin s "$w" POST /admin/v1/licenses/C-2/cull >/dev/null
    expect_status 409 "no policy"
    # the server's policy: A goes within a few seconds, B (seen now) stays
    wait_until 10 sh -c "'$S' activation show $ida --db '$T/s.db' --json | jq -e '.state == \"closed\"' >/dev/null" ||
        fail "A was not culled"
    server_cli s activation show "$ida" --json | jq -e '.closed_reason == "culled"' >/dev/null ||
        fail "closed_reason"
    server_cli s activation show "$idb" --json | jq -e '.state == "active"' >/dev/null ||
        fail "B was culled"
    server_cli s audit list --action activation.cull --json | jq -e '.[0].actor ==
        "system:cull-policy" and .[0].target == "'"$ida"'"' >/dev/null || fail "cull audited"
    # by hand, dry run first
    set_last_seen s "$idb" "$old"
    stop_server s
    start_server s --cull-interval 0
    admin s "$w" POST /admin/v1/licenses/C-1/cull '{"dry_run": true}' | jq -e --arg b "$idb" \
        '.dry_run == true and [.culled[].activation] == [$b]' >/dev/null || fail "dry run: $(cat "$T/resp")"
    server_cli s activation show "$idb" --json | jq -e '.state == "active"' >/dev/null ||
        fail "a dry run culled"
    server_cli s activation cull --license C-1 | grep -q "1 activation(s) culled" || fail "cull"
    server_cli s license show C-1 --json | jq -e '.active_activations == 0 and .pool.free ==
        10000 - 7200' >/dev/null || fail "the culled grants stay used"
    stop_server s
}

# ---- the audit log ------------------------------------------------------------------------

test_audit_log_is_queryable_not_editable() {
    local a n
    start_server s
    a=$(server_token s admin)
    server_license s A-1 --type perpetual
    server_cli s license update A-1 --max-activations 4 >/dev/null
    admin s "$a" GET "/admin/v1/audit?action=license.update" >audit.json
    jq -e '.audit | length == 1 and .[0].actor == "cli:'"$(id -un)"'" and .[0].target == "A-1" and
        .[0].before.max_activations == 1 and .[0].after.max_activations == 4' audit.json >/dev/null ||
        fail "audit: $(cat audit.json)"
    admin s "$a" GET "/admin/v1/audit?target=A-1&limit=1" | jq -e '.audit | length == 1' >/dev/null ||
        fail "limit"
    admin s "$a" GET "/admin/v1/audit?since=2001-01-01T00:00:00Z&until=2001-01-02T00:00:00Z" |
        jq -e '.audit == []' >/dev/null || fail "since/until"
    admin s "$a" GET "/admin/v1/audit?since=yesterday" >/dev/null
    expect_status 400 "a bad time"
    n=$(server_cli s audit list --json | jq length)
    # nothing edits it
    for m in PUT PATCH DELETE POST; do
        admin s "$a" "$m" /admin/v1/audit '{}' >/dev/null
        expect_status 405 "$m /admin/v1/audit"
    done
    grep -qi '^Allow: GET' "$T/headers" || fail "Allow: $(cat "$T/headers")"
    assert_eq "$n" "$(server_cli s audit list --json | jq length)" "entries"
    server_cli s audit list | grep -q "license.update" || fail "audit list text"
    stop_server s
}

# ---- webhooks -----------------------------------------------------------------------------

# start_receiver NAME STATUSES: the receiver in $T, its URL in $T/NAME.hook-url
start_receiver() {
    rm -f "$T/$1.hook-port"
    python3 "$RECEIVER" --port-file "$T/$1.hook-port" --log "$T/$1.hook.log" \
        --secret-file "$T/$1.secret" --statuses "$2" >>"$T/$1.receiver.log" 2>&1 &
    echo $! >"$T/$1.receiver.pid"
    _wait_port "$T/$1.hook-port" "$(cat "$T/$1.receiver.pid")" "webhook receiver $1"
    echo "http://127.0.0.1:$(cat "$T/$1.hook-port")/hooks/tpmlic" >"$T/$1.hook-url"
}

received() { # NAME EVENT: how many verified deliveries of EVENT reached receiver NAME
    [ -f "$T/$1.hook.log" ] || { echo 0; return; }
    jq -s --arg e "$2" '[.[] | select(.event == $e and .verified and .status == 200)] | length' \
        "$T/$1.hook.log"
}

test_webhooks_signed_retried_and_logged() {
    local a id cid ep
    start_server s --webhook-retry-secs 1 --webhook-attempts 3
    a=$(server_token s admin)
    start_receiver r 500,500,200
    admin s "$a" POST /admin/v1/webhooks "$(jq -n --arg u "$(cat "$T/r.hook-url")" \
        '{url: $u, events: ["activation", "deactivation", "validation_refused", "clone_flagged",
          "pool_low"], description: "CRM"}')" >hook.json
    expect_status 201 "webhook"
    jq -r .secret hook.json >"$T/r.secret"
    [[ $(cat "$T/r.secret") =~ ^[0-9a-f]{64}$ ]] || fail "secret: $(cat hook.json)"
    admin s "$a" GET /admin/v1/webhooks | jq -e '.webhooks[0].events | length == 5' >/dev/null ||
        fail "list"
    if grep -q "$(cat "$T/r.secret")" "$T/resp" "$T/s.log"; then fail "the secret was shown again"; fi
    server_license s W-1 --type consumption --expiry "$FUTURE" --secs-allocated 5000 \
        --cache-secs 3600 --pool-alert-secs 2000 --max-activations 2
    "$MK" --license W-1 >a.txt
    srv_activate s a.txt
    id=$(jq -r .activation "$T/payload.json")
    ep=$(jq -r .epoch "$T/payload.json")
    cid=$(computer_id_of a.txt)
    # the activation: refused twice (500), delivered at the third attempt,
    # one delivery ID throughout, every body signed
    wait_until 20 sh -c "[ \"\$(jq -s '[.[] | select(.event == \"activation\")] | length' '$T/r.hook.log' 2>/dev/null)\" = 3 ]" ||
        fail "activation attempts: $(cat "$T/r.hook.log" 2>/dev/null)"
    jq -s -e --arg a "$id" '[.[] | select(.event == "activation")] as $d |
        ($d | map(.status)) == [500, 500, 200] and ($d | map(.verified) | all) and
        ($d | map(.delivery) | unique | length) == 1 and
        ($d[0].body.data.activation == $a) and ($d[0].body.event == "activation") and
        ($d[0].content_type == "application/json") and
        ($d[2].time - $d[1].time) >= 1.5 and ($d[1].time - $d[0].time) >= 0.5' "$T/r.hook.log" \
        >/dev/null || fail "the attempts: $(cat "$T/r.hook.log")"
    # pool_low: 5000 - 3600 is below 2000
    wait_until 10 sh -c "[ \"\$(jq -s '[.[] | select(.event == \"pool_low\" and .status == 200)] | length' '$T/r.hook.log')\" = 1 ]" ||
        fail "pool_low: $(cat "$T/r.hook.log")"
    # a clone: validation_refused and clone_flagged; then a deactivation
    srv_check s validate W-1 "$id" "$cid" "$ep" 11111111111111111111111111111111 50 60
    srv_check s validate W-1 "$id" "$cid" "$ep" 22222222222222222222222222222222 50 60
    expect_status 403 "stale"
    srv_check s deactivate W-1 "$id" "$cid" 11111111111111111111111111111111 "" 51 120
    expect_status 200 "deactivate"
    wait_until 15 sh -c "[ \"\$(jq -s '[.[] | select(.status == 200 and .verified)] | length' '$T/r.hook.log')\" = 5 ]" ||
        fail "events: $(jq -c '{event, status}' "$T/r.hook.log")"
    assert_eq 1 "$(received r validation_refused)" "validation_refused"
    assert_eq 1 "$(received r clone_flagged)" "clone_flagged"
    assert_eq 1 "$(received r deactivation)" "deactivation"
    jq -s -e '[.[] | select(.event == "deactivation")][0].body.data | .returned_secs == 3480 and
        .reason == "deactivated"' "$T/r.hook.log" >/dev/null || fail "deactivation body"
    # the delivery log
    admin s "$a" GET "/admin/v1/deliveries?state=delivered" >log.json
    jq -e '(.deliveries | length) == 5 and ([.deliveries[] | select(.event == "activation")][0] |
        .attempts == 3 and ([.attempt_log[].status] == [500, 500, 200]))' log.json >/dev/null ||
        fail "delivery log: $(cat log.json)"
    # an endpoint that never answers: failed after the attempts allowed
    admin s "$a" POST /admin/v1/webhooks '{"url": "http://127.0.0.1:9/nobody", "events":
        ["deactivation"]}' >dead.json
    "$MK" --license W-1 --dmi-serial other >b.txt
    srv_activate s b.txt
    srv_check s deactivate W-1 "$(jq -r .activation "$T/payload.json")" "$(computer_id_of b.txt)" \
        "$(jq -r .epoch "$T/payload.json")" "" 1000 0
    wait_until 20 sh -c "'$S' webhook deliveries --db '$T/s.db' --state failed --json | jq -e 'length == 1' >/dev/null" ||
        fail "never failed: $(server_cli s webhook deliveries)"
    server_cli s webhook deliveries --state failed --json | jq -e '.[0].attempts == 3 and
        .[0].last_status == 0' >/dev/null || fail "failed delivery: $(server_cli s webhook deliveries --json)"
    # a receiver with another secret sees signatures that do not verify
    echo 0000 >"$T/r.secret"
    srv_activate s b.txt
    wait_until 10 sh -c "jq -s -e '[.[] | select(.verified == false)] | length >= 1' '$T/r.hook.log' >/dev/null" ||
        fail "a wrong secret verified"
    admin s "$a" DELETE "/admin/v1/webhooks/$(jq -r .id hook.json)" >/dev/null
    expect_status 200 "delete webhook"
    stop_server s
}

test_webhook_definitions_refused() {
    local a
    start_server s
    a=$(server_token s admin)
    for body in '{"url": "http://example.com/x", "events": ["activation"]}' \
        '{"url": "https://example.com/x", "events": ["launch"]}' \
        '{"url": "https://example.com/x", "events": []}' \
        '{"url": "https://example.com/x", "events": ["activation", "activation"]}' \
        '{"url": "https://example.com/x"}' \
        '{"url": "https://example.com/x", "events": ["activation"], "secret": "mine"}'; do
        admin s "$a" POST /admin/v1/webhooks "$body" >/dev/null
        expect_status 400 "$body"
    done
    admin s "$a" GET /admin/v1/webhooks | jq -e '.webhooks == []' >/dev/null || fail "one was stored"
    stop_server s
}

# ---- the route table, OpenAPI, metrics, health -----------------------------------------------

test_openapi_document_matches_the_routes() {
    local m p scope code
    "$S" routes --json >routes.json
    python3 - "$OPENAPI" routes.json <<'EOF' || fail "docs/openapi.yaml and the routes differ"
import json, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
routes = json.load(open(sys.argv[2]))
assert str(doc.get("openapi", "")).startswith("3."), "not OpenAPI 3"
assert doc["info"]["title"] and doc["info"]["version"]
ops = {}
for path, item in doc["paths"].items():
    for method, op in item.items():
        if method in ("parameters", "summary", "description"):
            continue
        ops[(method.upper(), path)] = op
        assert op.get("responses"), (method, path, "has no responses")
        assert op.get("operationId"), (method, path, "has no operationId")
served = {(r["method"], r["path"]): r for r in routes}
missing = sorted(set(served) - set(ops))
extra = sorted(set(ops) - set(served))
assert not missing, ("routes the document does not describe", missing)
assert not extra, ("documented operations the server does not serve", extra)
for key, r in served.items():
    op = ops[key]
    scope = op.get("x-required-scope", "none")
    assert scope == r["scope"], (key, "scope", scope, r["scope"])
    if r["scope"] != "none":
        assert op.get("security") == [{"bearerToken": []}], (key, "security")
        assert "401" in op["responses"] and "403" in op["responses"], (key, "401/403")
# every $ref resolves
def refs(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "$ref":
                yield v
            else:
                yield from refs(v)
    elif isinstance(o, list):
        for v in o:
            yield from refs(v)
for ref in refs(doc):
    node = doc
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
print("ok:", len(served), "routes")
EOF
    # the live server answers each route: admin routes want a token
    start_server s
    jq -r '.[] | "\(.method) \(.path) \(.scope)"' routes.json >list.txt
    while read -r m p scope; do
        p=${p//\{code\}/NO-SUCH}
        p=${p//\{id\}/1}
        code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/s-ca.pem" -X "$m" \
            "$(cat "$T/s.url")$p")
        case $scope in
        none) case $p in
            /health | /metrics) assert_eq 200 "$code" "$m $p" ;;
            *) assert_eq 400 "$code" "$m $p without a body" ;;
            esac ;;
        *) assert_eq 401 "$code" "$m $p without a token" ;;
        esac
    done <list.txt
    stop_server s
}

test_metrics_pass_promtool_and_count() {
    local before after
    start_server s
    server_license s M-1 --type perpetual
    "$MK" --license M-1 >a.txt
    srv_activate s a.txt
    curl -s --cacert "$T/s-ca.pem" "$(cat "$T/s.url")/metrics" >m1.txt
    promtool check metrics <m1.txt || fail "promtool: $(promtool check metrics <m1.txt 2>&1)"
    grep -q '^tpmlic_server_build_info{version="[0-9.]*"} 1$' m1.txt || fail "build_info"
    grep -q '^tpmlic_server_decisions_total{request="activate",result="ok",reason=""} 1$' m1.txt ||
        fail "activate decision: $(grep decisions m1.txt)"
    grep -q '^tpmlic_server_activations_active 1$' m1.txt || fail "active gauge"
    grep -q '^tpmlic_server_database_up 1$' m1.txt || fail "database_up"
    before=$(sed -n 's/^tpmlic_server_requests_total{route="activate",code="200"} //p' m1.txt)
    srv_activate s a.txt
    curl -s --cacert "$T/s-ca.pem" "$(cat "$T/s.url")/metrics" >m2.txt
    after=$(sed -n 's/^tpmlic_server_requests_total{route="activate",code="200"} //p' m2.txt)
    assert_eq $((before + 1)) "$after" "requests counted"
    grep -q '^tpmlic_server_request_duration_seconds_count{route="activate"} 2$' m2.txt ||
        fail "histogram count"
    curl -s -D - -o /dev/null --cacert "$T/s-ca.pem" "$(cat "$T/s.url")/metrics" |
        grep -qi '^content-type: text/plain; version=0.0.4' || fail "content type"
    curl -s --cacert "$T/s-ca.pem" "$(cat "$T/s.url")/health" | jq -e '.status == "ok" and
        .database == "ok"' >/dev/null || fail "health"
    stop_server s
}

# ---- client addresses, limits ----------------------------------------------------------------

test_client_address_and_trusted_proxies() {
    start_server s --trusted-proxy 127.0.0.1,10.0.0.0/8
    curl -s -o /dev/null --cacert "$T/s-ca.pem" -H 'X-Forwarded-For: 198.51.100.1, 203.0.113.9' \
        "$(cat "$T/s.url")/health"
    curl -s -o /dev/null --cacert "$T/s-ca.pem" --interface 127.0.0.2 \
        -H 'X-Forwarded-For: 203.0.113.77' "$(cat "$T/s.url")/health"
    curl -s -o /dev/null --cacert "$T/s-ca.pem" -H 'X-Forwarded-For: 198.51.100.1, 10.1.2.3' \
        "$(cat "$T/s.url")/health"
    curl -s -o /dev/null --cacert "$T/s-ca.pem" -H 'X-Forwarded-For: junk, 203.0.113.10' \
        "$(cat "$T/s.url")/health"
    grep -q "client=203.0.113.9 via=127.0.0.1" "$T/s.log" || fail "forwarded: $(cat "$T/s.log")"
    grep -q "client=127.0.0.2 " "$T/s.log" || fail "an untrusted peer's header was used"
    if grep -q 203.0.113.77 "$T/s.log"; then fail "an untrusted peer's header was used"; fi
    grep -q "client=198.51.100.1 via=127.0.0.1" "$T/s.log" || fail "a chain of trusted proxies"
    grep -q "client=203.0.113.10 via=127.0.0.1" "$T/s.log" || fail "junk ends the walk"
    stop_server s
    start_server p
    curl -s -o /dev/null --cacert "$T/p-ca.pem" -H 'X-Forwarded-For: 203.0.113.9' \
        "$(cat "$T/p.url")/health"
    grep -q "client=127.0.0.1 " "$T/p.log" || fail "no proxy trusted: $(cat "$T/p.log")"
    stop_server p
    expect_refused_serve 2 "--trusted-proxy: 'nonsense' is not an address" --trusted-proxy nonsense
}

# expect_refused_serve RC NEEDLE [serve options]: serve refuses to start
expect_refused_serve() {
    local want=$1 needle=$2 rc=0 out
    shift 2
    vendor_keys
    server_tls x
    out=$("$S" serve --db "$T/x.db" --key "$T/vendor.key" --listen 127.0.0.1:0 \
        --tls-cert "$T/x.crt" --tls-key "$T/x.key" "$@" 2>&1 >/dev/null) || rc=$?
    assert_eq "$want" "$rc" "serve $*: $out"
    assert_contains "$out" "$needle"
}

test_activation_rate_per_client_address() {
    local i codes=""
    start_server s --activation-rate 2 --activation-burst 2 --trusted-proxy 127.0.0.3
    server_license s RL-1 --type perpetual --max-activations 100
    for i in 1 2 3; do
        "$MK" --license RL-1 --dmi-serial "n$i" >"a$i.txt"
        activation_body "a$i.txt" >"r$i.json"
        post s /v1/activate "r$i.json" >/dev/null
        codes="$codes $(status)"
    done
    assert_eq " 200 200 429" "$codes" "the third from one address"
    grep -qi '^Retry-After: [0-9]' <(curl -s -D - -o /dev/null --cacert "$T/s-ca.pem" \
        --data-binary @r3.json "$(cat "$T/s.url")/v1/activate") || fail "no Retry-After"
    # another address has its own bucket; so has each client behind a trusted proxy
    post s /v1/activate r3.json --interface 127.0.0.2 >/dev/null
    expect_status 200 "another address"
    post s /v1/activate r3.json --interface 127.0.0.3 -H 'X-Forwarded-For: 203.0.113.5' >/dev/null
    expect_status 200 "a client behind the proxy"
    # validations are not rate limited
    curl -s --cacert "$T/s-ca.pem" "$(cat "$T/s.url")/metrics" |
        grep -q '^tpmlic_server_rate_limited_total 2$' || fail "rate_limited_total"
    stop_server s
}

# A caller on 127.0.0.1 opens 1,100 TCP connections and leaves them idle;
# an appliance on 127.0.0.2 still validates. Prints what the caller held.
test_hostile_idle_connections_do_not_starve_others() {
    local id cid ep t0 t1 held
    start_server s --max-connections-per-ip 32 --max-connections 512 --threads 4
    server_license s H-1 --type perpetual --max-activations 5
    "$MK" --license H-1 >a.txt
    srv_activate s a.txt
    id=$(jq -r .activation "$T/payload.json")
    ep=$(jq -r .epoch "$T/payload.json")
    cid=$(computer_id_of a.txt)
    python3 - "$(cat "$T/s.port")" "$T/held" <<'EOF' &
import socket, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
socks = []
for i in range(1100):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        socks.append(s)
    except OSError:
        pass
time.sleep(2)  # the server closes those over the limit at once
alive = 0
for s in socks:
    s.setblocking(False)
    try:
        alive += 0 if s.recv(1) == b"" else 1
    except BlockingIOError:
        alive += 1
    except OSError:
        pass
with open(out + ".tmp", "w") as f:
    f.write("%d %d\n" % (len(socks), alive))
import os
os.rename(out + ".tmp", out)
time.sleep(30)
EOF
    echo $! >"$T/hostile.pid"
    wait_until 30 test -s "$T/held" || fail "the hostile caller did not report"
    t0=$(date +%s%N)
    srv_check s validate H-1 "$id" "$cid" "$ep" 11111111111111111111111111111111 1000 0 \
        --interface 127.0.0.2 --max-time 5
    t1=$(date +%s%N)
    expect_status 200 "a validation from another address"
    read -r opened held <"$T/held"
    echo "    hostile caller: $opened connections accepted by the kernel, $held still open after 2 s; validation answered in $(((t1 - t0) / 1000000)) ms"
    [ "$held" -le $((32 + 4)) ] || fail "the caller holds $held connections"
    curl -s --cacert "$T/s-ca.pem" --interface 127.0.0.2 "$(cat "$T/s.url")/metrics" >m.txt
    awk '/^tpmlic_server_connections_refused_total\{reason="per_address"\}/ { exit !($2 > 1000) }' m.txt ||
        fail "refusals not counted: $(grep refused m.txt)"
    grep -q "refusing connections" "$T/s.log" || fail "no warning logged"
    [ "$(grep -c "refusing connections" "$T/s.log")" -le 2 ] || fail "the log is flooded"
    kill "$(cat "$T/hostile.pid")" 2>/dev/null
    stop_server s
}

# ---- settings ----------------------------------------------------------------------------

test_config_file_and_command_line() {
    vendor_keys
    server_tls c
    cat >c.conf <<EOF
# tpmlic-server settings
[server]
db = $T/c.db
key = $T/vendor.key
listen = 127.0.0.1:0
tls_cert = $T/c.crt
tls_key = $T/c.key
port_file = $T/c.port
threads = 0
max_connections_per_ip = 8
log_level = warn
EOF
    expect_refused_conf 2 "c.conf:9: threads must be 1 to 256 (it is '0')" --config c.conf
    # the command line wins (the bad value is not even read)
    "$S" serve --config c.conf --threads 2 --log-level info >>"$T/c.log" 2>&1 &
    echo $! >"$T/c.pid"
    _wait_port "$T/c.port" "$(cat "$T/c.pid")" "serve --config"
    echo "https://127.0.0.1:$(cat "$T/c.port")" >"$T/c.url"
    curl -s --cacert "$T/c-ca.pem" "$(cat "$T/c.url")/health" | jq -e '.status == "ok"' >/dev/null ||
        fail "serving from the config file"
    grep -q "listening on" "$T/c.log" || fail "the command line's log level"
    stop_server c
    printf '[server]\nbogus = 1\n' >u.conf
    expect_refused_conf 2 "u.conf:2: unknown setting 'bogus'" --config u.conf
    printf '[server]\ntls-cert = x\n' >d.conf
    expect_refused_conf 2 "d.conf:2: unknown setting 'tls-cert'" --config d.conf
    printf '[agent]\ndb = x\n' >s.conf
    expect_refused_conf 2 "s.conf:2: unknown section [agent]" --config s.conf
    printf '[server]\nthis is not a setting\n' >g.conf
    expect_refused_conf 2 "g.conf:2:" --config g.conf
    expect_refused_conf 1 "cannot read the config file" --config missing.conf
    expect_refused_conf 2 "are required" --config /dev/null
}

expect_refused_conf() { # RC NEEDLE serve-args
    local want=$1 needle=$2 rc=0 out
    shift 2
    out=$("$S" serve "$@" 2>&1 >/dev/null) || rc=$?
    assert_eq "$want" "$rc" "serve $*: $out"
    assert_contains "$out" "$needle"
}

test_admin_listener_of_its_own() {
    local a
    start_server s --admin-listen 127.0.0.1:0
    a=$(server_token s admin)
    admin s "$a" GET /admin/v1/licenses >/dev/null
    expect_status 200 "admin API on the admin listener"
    assert_eq 404 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/s-ca.pem" \
        -H "Authorization: Bearer $a" "$(cat "$T/s.url")/admin/v1/licenses")" "admin API on --listen"
    assert_eq 404 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/s-ca.pem" \
        "$(cat "$T/s.url")/metrics")" "metrics on --listen"
    assert_eq 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/s-ca.pem" \
        "$(cat "$T/s.url")/health")" "health on --listen"
    assert_eq 404 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/s-ca.pem" -d '{}' \
        "$(cat "$T/s.admin-url")/v1/validate")" "the protocol on the admin listener"
    assert_eq 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/s-ca.pem" \
        "$(cat "$T/s.admin-url")/metrics")" "metrics on the admin listener"
    stop_server s
}

test_bad_admin_requests_change_nothing() {
    local w n
    start_server s
    w=$(server_token s write)
    server_license s B-1 --type perpetual
    n=$(server_cli s audit list --json | jq length)
    admin s "$w" GET /admin/v1/nothing >/dev/null
    expect_status 404 "unknown route"
    admin s "$w" PUT /admin/v1/licenses/B-1 '{}' >/dev/null
    expect_status 405 "PUT"
    grep -qi '^Allow: GET, PATCH, DELETE' "$T/headers" || fail "Allow: $(cat "$T/headers")"
    admin s "$w" PATCH /admin/v1/licenses/B-1 '{"max_activations": ' >/dev/null
    expect_status 400 "malformed JSON"
    assert_contains "$(jq -r .error "$T/resp")" "malformed JSON"
    admin s "$w" PATCH /admin/v1/licenses/B-1 '[1]' >/dev/null
    expect_status 400 "an array"
    admin s "$w" PATCH /admin/v1/licenses/B-1 '{"a": 1, "a": 2}' >/dev/null
    expect_status 400 "duplicate keys"
    admin s "$w" GET "/admin/v1/activations?limit=0" >/dev/null
    expect_status 400 "limit 0"
    admin s "$w" GET "/admin/v1/activations?colour=blue" >/dev/null
    expect_status 400 "unknown parameter"
    admin s "$w" GET "/admin/v1/activations?state=active&state=closed" >/dev/null
    expect_status 400 "a parameter twice"
    admin s "$w" GET "/admin/v1/activations?state=zombie" >/dev/null
    expect_status 400 "a bad state"
    admin s "$w" POST /admin/v1/licenses/B-1/suspend '{"now": true}' >/dev/null
    expect_status 400 "a body where none is taken"
    head -c 20000 /dev/zero | tr '\0' ' ' >big.json
    admin s "$w" POST /admin/v1/licenses "$(cat big.json)" >/dev/null
    expect_status 413 "over 16 KiB"
    assert_eq "$n" "$(server_cli s audit list --json | jq length)" "nothing was done"
    server_cli s license show B-1 --json | jq -e '.suspended == false' >/dev/null || fail "B-1 changed"
    stop_server s
}

run_tests
