#!/bin/bash
# tpmlic-server on PostgreSQL: one real cluster for this script (Debian's
# postgresql, initdb into a temporary directory, a UNIX socket only:
# tests/lib/pgtest), a database per test. The decisions' unit tests run
# again on it; the CLI and the API work on a postgresql:// URI; two serve
# instances sharing one database under 64 concurrent clients never give
# more than the pool or max_activations and never accept a stale epoch;
# refills racing across instances take the free seconds exactly once;
# migrations run once when two servers start together; a webhook delivery
# is sent once by two instances; a PostgreSQL restart is ridden out.
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/agentlib.sh"
. "$(dirname "$0")/../lib/serverlib.sh"

S=$TPMLIC_SERVER
MK=$B/test-make-activation
PGTEST=$TPMLIC_SRCDIR/tests/lib/pgtest
RECEIVER=$TPMLIC_SRCDIR/tests/lib/webhook_receiver.py
for p in "$S" "$MK" "$VENDOR" "$B/test_server_logic"; do
    [ -x "$p" ] || { echo "missing $p: build it first (make B=$B build-tests)" >&2; exit 1; }
done
for c in openssl jq curl python3; do
    command -v $c >/dev/null || { echo "$c missing (packaging/debian-packages.txt)" >&2; exit 1; }
done

PG=$(mktemp -d /tmp/tpmlic-pg.XXXXXX)
trap '"$PGTEST" stop "$PG"; rm -rf "$PG"' EXIT
"$PGTEST" start "$PG" || { echo "cannot start PostgreSQL" >&2; exit 1; }
DBSEQ=0

# pgdb: a new database; its URI on stdout
pgdb() {
    DBSEQ=$((DBSEQ + 1))
    local name="t${DBSEQ}_$$_$RANDOM"
    "$PGTEST" createdb "$PG" "$name" >/dev/null || fail "createdb $name"
    "$PGTEST" uri "$PG" "$name"
}

# sql URI QUERY: one value
sql() {
    local db=${1#*@/}
    db=${db%%\?*}
    "$PGTEST" psql "$PG" "$db" -At -c "$2"
}

# start_pg NAME URI [options]
start_pg() {
    local n=$1 uri=$2
    shift 2
    start_server "$n" --db "$uri" "$@"
}

test_decisions_on_postgresql() {
    TPMLIC_TEST_PG_HOST=$PG TPMLIC_TEST_PG_PORT=5432 \
        TPMLIC_TEST_PG_USER=$([ "$(id -u)" = 0 ] && echo postgres || id -un) \
        "$B/test_server_logic" || fail "the decisions on PostgreSQL"
}

test_cli_and_api_on_postgresql() {
    local uri tok
    uri=$(pgdb)
    vendor_keys
    "$S" license create --db "$uri" --code PG-1 --product speech --customer-id 1 \
        --type subscription --expiry 2099-01-01T00:00:00Z --secs-allocated 10000 \
        --max-activations 2 --offline-allowed >out.txt || fail "license create: $(cat out.txt)"
    assert_contains "$(cat out.txt)" "license PG-1 created"
    assert_eq 5 "$(sql "$uri" 'SELECT MAX(version) FROM schema_migrations')" "schema version"
    "$S" license list --db "$uri" --json | jq -e '.[0].code == "PG-1"' >/dev/null || fail "list"
    "$MK" --license PG-1 --dmi-serial off >off.txt
    "$S" offline sign --db "$uri" --key "$T/vendor.key" --in off.txt --secs-granted 1000 >lic.txt \
        2>/dev/null || fail "offline sign"
    tok=$("$S" token create --db "$uri" --scope admin 2>/dev/null)
    start_pg s "$uri"
    grep -q "database: PostgreSQL" "$T/s.log" || fail "log: $(cat "$T/s.log")"
    "$MK" --license PG-1 >a.txt
    srv_activate s a.txt
    expect() { assert_eq "$1" "$(status)" "$2: $(cat "$T/resp")"; }
    expect 200 "activate"
    admin s "$tok" GET /admin/v1/licenses/PG-1 | jq -e '.active_activations == 2 and
        .pool.committed == 4600' >/dev/null || fail "show: $(cat "$T/resp")"
    admin s "$tok" PATCH /admin/v1/licenses/PG-1 '{"max_activations": 3}' >/dev/null
    expect 200 "patch"
    admin s "$tok" GET "/admin/v1/audit?action=license." | jq -e '[.audit[].action] ==
        ["license.update", "license.create"]' >/dev/null || fail "audit: $(cat "$T/resp")"
    # the audit log cannot be changed, not even with SQL
    if sql "$uri" "DELETE FROM audit" 2>/dev/null; then fail "the audit log was deleted"; fi
    curl -s --cacert "$T/s-ca.pem" "$(cat "$T/s.url")/health" | jq -e '.database == "ok"' \
        >/dev/null || fail "health"
    stop_server s
}

# fire N FILE: runs the N curl command lines in FILE at once
fire() {
    xargs -P "$1" -I{} sh -c '{}' <"$2"
}

test_two_instances_64_clients_never_over_commit() {
    local uri i k n e ok=0 refused=0 other=0 id ep cid winners stale win=0
    uri=$(pgdb)
    vendor_keys
    # 24 seats, 24 grants of 3600 and 5000 seconds more
    "$S" license create --db "$uri" --code POOL-1 --product speech --customer-id 1 \
        --type consumption --expiry 2099-01-01T00:00:00Z --secs-allocated $((24 * 3600 + 5000)) \
        --cache-secs 3600 --max-activations 24 >/dev/null || fail "license create"
    start_pg a "$uri" --threads 8 --activation-rate 0
    start_pg b "$uri" --threads 8 --activation-rate 0
    : >cmds.txt
    for i in $(seq 1 64); do
        "$MK" --license POOL-1 --dmi-serial "c$i" >"a$i.txt"
        activation_body "a$i.txt" >"r$i.json"
        n=$([ $((i % 2)) = 0 ] && echo a || echo b)
        echo "curl -s -o '$T/ans$i.json' --cacert '$T/$n-ca.pem' --max-time 60 --data-binary @'$T/r$i.json' '$(cat "$T/$n.url")/v1/activate'" >>cmds.txt
    done
    fire 64 cmds.txt
    for i in $(seq 1 64); do
        answer_payload <"ans$i.json" >"p$i.json" || { other=$((other + 1)); continue; }
        case $(jq -r '.result + ":" + (.reason // "")' "p$i.json") in
        ok:) ok=$((ok + 1)) ;;
        refused:max_activations) refused=$((refused + 1)) ;;
        *) other=$((other + 1)) ;;
        esac
    done
    echo "    64 activations across two instances: $ok ok, $refused max_activations, $other other"
    assert_eq "24 40 0" "$ok $refused $other" "ok, refused, other"
    assert_eq "24|$((24 * 3600))|$((24 * 3600))" \
        "$(sql "$uri" "SELECT active_activations, committed_secs, (SELECT SUM(secs_granted) FROM activations) FROM licenses")" \
        "the pool after the activations"
    # 64 copies of one appliance validate with the same epoch at once: one wins
    for i in $(seq 1 64); do [ "$(jq -r .result "p$i.json")" = ok ] && break; done
    id=$(jq -r .activation "p$i.json")
    ep=$(jq -r .epoch "p$i.json")
    cid=$(computer_id_of "a$i.txt")
    : >cmds.txt
    for k in $(seq 1 64); do
        n=$([ $((k % 2)) = 0 ] && echo a || echo b)
        jq -n --arg a "$id" --arg c "$cid" --arg e "$ep" --arg x "$(printf '%032x' "$k")" \
            '{v: 1, license: "POOL-1", activation: $a, computer_id: $c,
              nonce: "00112233445566778899aabbccddeeff", epoch: $e, next_epoch: $x,
              counter: 1000, consumed_secs: 0}' >"v$k.json"
        echo "curl -s -o '$T/vans$k.json' --cacert '$T/$n-ca.pem' --max-time 60 --data-binary @'$T/v$k.json' '$(cat "$T/$n.url")/v1/validate'" >>cmds.txt
    done
    fire 64 cmds.txt
    winners=0
    stale=0
    for k in $(seq 1 64); do
        answer_payload <"vans$k.json" >"vp$k.json" || continue
        case $(jq -r '.result + ":" + (.reason // "")' "vp$k.json") in
        ok:) winners=$((winners + 1)) win=$k ;;
        refused:stale_epoch) stale=$((stale + 1)) ;;
        esac
    done
    echo "    64 validations of one epoch across two instances: $winners accepted, $stale stale_epoch"
    assert_eq "1 63" "$winners $stale" "accepted, stale"
    assert_eq 63 "$(sql "$uri" "SELECT COUNT(*) FROM flags WHERE activation_id = '$id'")" "flags"
    # the 24 appliances ask for a refill at once: 5000 free seconds, taken once
    : >cmds.txt
    k=0
    for i in $(seq 1 64); do
        [ "$(jq -r .result "p$i.json")" = ok ] || continue
        k=$((k + 1))
        n=$([ $((k % 2)) = 0 ] && echo a || echo b)
        e=$(jq -r .epoch "p$i.json")
        [ "$(jq -r .activation "p$i.json")" = "$id" ] && e=$(printf '%032x' "$win")
        jq -n --arg a "$(jq -r .activation "p$i.json")" --arg c "$(computer_id_of "a$i.txt")" \
            --arg e "$e" '{v: 1, license: "POOL-1", activation: $a, computer_id: $c,
              nonce: "00112233445566778899aabbccddeeff", epoch: $e,
              next_epoch: "ffffffffffffffffffffffffffffffff", counter: 1001, consumed_secs: 3000,
              refill: true}' >"f$k.json"
        echo "curl -s -o '$T/fans$k.json' --cacert '$T/$n-ca.pem' --max-time 60 --data-binary @'$T/f$k.json' '$(cat "$T/$n.url")/v1/validate'" >>cmds.txt
    done
    fire 24 cmds.txt
    for i in $(seq 1 24); do
        answer_payload <"fans$i.json" | jq -e '.result == "ok"' >/dev/null ||
            fail "refill $i: $(cat "fans$i.json")"
    done
    assert_eq "$((24 * 3600 + 5000))|$((24 * 3600 + 5000))" \
        "$(sql "$uri" "SELECT committed_secs, (SELECT SUM(secs_granted) FROM activations) FROM licenses")" \
        "every free second granted once, none more"
    stop_server a
    stop_server b
}

test_migrations_run_once_with_two_servers_starting() {
    local uri
    uri=$(pgdb)
    vendor_keys
    server_tls a
    server_tls b
    for n in a b; do
        "$S" serve --db "$uri" --key "$T/vendor.key" --listen 127.0.0.1:0 --tls-cert "$T/$n.crt" \
            --tls-key "$T/$n.key" --port-file "$T/$n.port" >>"$T/$n.log" 2>&1 &
        echo $! >"$T/$n.pid"
    done
    _wait_port "$T/a.port" "$(cat "$T/a.pid")" "server a"
    _wait_port "$T/b.port" "$(cat "$T/b.pid")" "server b"
    assert_eq "1,2,3,4,5" "$(sql "$uri" "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations")" \
        "each step once"
    stop_server a
    stop_server b
}

test_a_webhook_delivery_is_sent_once_by_two_instances() {
    local uri tok i
    uri=$(pgdb)
    vendor_keys
    "$S" license create --db "$uri" --code WH-1 --product speech --customer-id 1 \
        --type perpetual --max-activations 100 >/dev/null
    rm -f "$T/hook.port"
    python3 "$RECEIVER" --port-file "$T/hook.port" --log "$T/hook.log" --secret-file "$T/secret" \
        --statuses 200 >>"$T/receiver.log" 2>&1 &
    echo $! >"$T/receiver.pid"
    _wait_port "$T/hook.port" "$(cat "$T/receiver.pid")" "receiver"
    "$S" webhook create --db "$uri" --url "http://127.0.0.1:$(cat "$T/hook.port")/h" \
        --events activation >"$T/secret" 2>/dev/null || fail "webhook create"
    start_pg a "$uri" --activation-rate 0
    start_pg b "$uri" --activation-rate 0
    for i in $(seq 1 20); do "$MK" --license WH-1 --dmi-serial "w$i" >"a$i.txt"; done
    for i in $(seq 1 20); do
        n=$([ $((i % 2)) = 0 ] && echo a || echo b)
        srv_activate "$n" "a$i.txt"
    done
    wait_until 20 sh -c "[ \"\$(wc -l <'$T/hook.log' 2>/dev/null)\" -ge 20 ]" ||
        fail "deliveries: $(wc -l <"$T/hook.log" 2>/dev/null)"
    sleep 2 # a second copy would come now
    assert_eq 20 "$(wc -l <"$T/hook.log")" "deliveries received"
    assert_eq 20 "$(jq -s '[.[].delivery] | unique | length' "$T/hook.log")" "distinct deliveries"
    assert_eq 20 "$(jq -s '[.[] | select(.verified)] | length' "$T/hook.log")" "signed"
    assert_eq 20 "$(sql "$uri" "SELECT COUNT(*) FROM deliveries WHERE state = 'delivered' AND attempts = 1")" \
        "delivered once each"
    stop_server a
    stop_server b
}

test_a_postgresql_restart_is_ridden_out() {
    local uri i code
    uri=$(pgdb)
    vendor_keys
    "$S" license create --db "$uri" --code RS-1 --product speech --customer-id 1 \
        --type perpetual --max-activations 10 >/dev/null
    start_pg s "$uri" --threads 2
    "$PGTEST" stop "$PG"
    code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/s-ca.pem" "$(cat "$T/s.url")/health")
    assert_eq 503 "$code" "health with PostgreSQL down"
    "$MK" --license RS-1 >a.txt
    srv_activate s a.txt 2>/dev/null || true
    case $(status) in 500 | 503) ;; *) fail "an activation with PostgreSQL down: $(status)" ;; esac
    "$PGTEST" start "$PG" || fail "restart PostgreSQL"
    for i in $(seq 1 50); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/s-ca.pem" "$(cat "$T/s.url")/health")
        [ "$code" = 200 ] && break
        sleep 0.2
    done
    assert_eq 200 "$code" "health after the restart"
    for i in 1 2 3; do
        srv_activate s a.txt && [ "$(status)" = 200 ] && break
    done
    assert_eq 200 "$(status)" "an activation after the restart"
    stop_server s
}

run_tests
