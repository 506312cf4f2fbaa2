#!/bin/bash
# tpmlic-vendor end to end: keygen (modes, no overwrite), sign-activation for
# every license type and its refusals, inspect (human and --json), keys never
# printed, and interoperability: openssl's command line verifies the JWS on
# its own, so the format is standard RFC 7515/8037, not a private variant.
# Activation certificates come from test-make-activation (a stand-in EK, no
# TPM needed).
. "$(dirname "$0")/../lib/testlib.sh"

V=$B/tpmlic-vendor
MK=$B/test-make-activation
for p in "$V" "$MK"; do
    [ -x "$p" ] || { echo "missing $p: build it first (make B=$B)" >&2; exit 1; }
done
for c in openssl jq base64; do
    command -v $c >/dev/null || { echo "$c missing (packaging/debian-packages.txt)" >&2; exit 1; }
done

FUTURE=2099-12-31T00:00:00Z

b64url_decode() { # stdin -> stdout
    local s
    s=$(tr -- '-_' '+/')
    case $((${#s} % 4)) in 2) s="$s==" ;; 3) s="$s=" ;; esac
    printf '%s' "$s" | base64 -d
}
b64url_encode() { base64 -w0 | tr -- '+/' '-_' | tr -d '='; }

keys() { "$V" keygen --private priv.pem --public pub.pem >/dev/null; }

sign() { # sign ACTIVATION_FILE TYPE [more options]
    local in=$1 type=$2
    shift 2
    local exp=()
    [ "$type" = perpetual ] || exp=(--expiry "$FUTURE")
    "$V" sign-activation --key priv.pem --in "$in" --product "Speech Engine Pro 24" \
        --customer-id 1234 --type "$type" "${exp[@]}" --features standard,enhanced \
        --secs-allocated 360000 --secs-granted 36000 "$@"
}

# expect_refused RC NEEDLE COMMAND...: exit status RC and NEEDLE on stderr,
# whose lines start with the program's name ("tpmlic-vendor: ") or, for a
# usage error, with the command's ("tpmlic-vendor keygen: ")
expect_refused() {
    local want=$1 needle=$2 rc=0 out
    shift 2
    out=$("$@" 2>&1 >/dev/null) || rc=$?
    assert_eq "$want" "$rc" "exit status of $*" || return 1
    assert_contains "$out" "$needle" "stderr of $*" || return 1
    [[ $out =~ ^tpmlic-vendor(\ [a-z-]+)?:\  ]] || fail "stderr prefix of $*: $out"
    if [ "$want" = 2 ]; then
        assert_contains "$out" "--help')" "a usage error points to the help"
    fi
}

test_help_and_version() {
    local c
    "$V" --help | grep -q 'sign-activation'
    assert_contains "$("$V" --version)" "tpmlic-vendor "
    for c in keygen sign-activation inspect; do
        "$V" "$c" --help >out.txt || fail "$c --help exit status"
        assert_contains "$(cat out.txt)" "Usage: tpmlic-vendor $c"
        "$V" "$c" --version >/dev/null || fail "$c --version exit status"
    done
    expect_refused 2 "a command is needed" "$V"
    expect_refused 2 "unknown command 'frobnicate'" "$V" frobnicate
    expect_refused 2 "unknown option '--bogus'" "$V" keygen --bogus
    expect_refused 2 "needs a value" "$V" inspect --public
    expect_refused 2 "are required" "$V" sign-activation --key x
    expect_refused 2 "unexpected argument 'extra'" "$V" keygen --private a --public b extra
}

test_keygen_modes_and_no_overwrite() {
    local before
    (umask 077 && "$V" keygen --private priv.pem --public pub.pem >out.txt)
    assert_eq 600 "$(stat -c %a priv.pem)" "private key mode"
    assert_eq 644 "$(stat -c %a pub.pem)" "public key mode (even under umask 077)"
    assert_contains "$(cat out.txt)" "key id:"
    grep -q 'BEGIN PRIVATE KEY' priv.pem || fail "private key is not PKCS#8 PEM"
    openssl pkey -in priv.pem -noout -text 2>/dev/null | grep -q ED25519 || fail "not Ed25519"
    before=$(sha256sum priv.pem pub.pem)
    expect_refused 1 "priv.pem exists (use --force" "$V" keygen --private priv.pem --public pub.pem
    "$V" keygen --private new.pem --public pub.pem >/dev/null 2>&1 && fail "public key overwritten"
    [ ! -e new.pem ] || fail "a refused keygen left new.pem behind"
    assert_eq "$before" "$(sha256sum priv.pem pub.pem)" "keys after refused keygen"
    (umask 000 && "$V" keygen --private priv.pem --public pub.pem --force >/dev/null)
    [ "$before" != "$(sha256sum priv.pem pub.pem)" ] || fail "--force did not replace the keys"
    assert_eq 600 "$(stat -c %a priv.pem)" "private key mode after --force (umask 000)"
    assert_eq 644 "$(stat -c %a pub.pem)" "public key mode after --force"
    expect_refused 2 "same file" "$V" keygen --private x.pem --public x.pem
}

test_sign_and_inspect_every_type() {
    local t out
    keys
    "$MK" --details >act.txt
    for t in perpetual time-limited subscription consumption; do
        sign act.txt "$t" >lic.jws || fail "sign-activation --type $t"
        out=$("$V" inspect --public pub.pem --in lic.jws) || fail "inspect $t: $out"
        assert_contains "$out" "status:              valid"
        assert_contains "$out" "license_type:        $t"
        out=$("$V" inspect --public pub.pem --in lic.jws --json)
        assert_contains "$out" '"status": "valid"'
        assert_contains "$out" "\"license_type\": \"$t\""
        assert_contains "$out" '"kind": "license"'
        jq -e ".status == \"valid\" and .license_type == \"$t\" and .counter.base == 42" \
            <<<"$out" >/dev/null || fail "--json output: $out"
    done
    [ "$(wc -c <lic.jws)" -le 1537 ] || fail "license certificate over 1,536 bytes"
}

test_inspect_shows_the_fields() {
    local out act ek cid
    keys
    "$MK" --counter-value 4242 >act.txt
    act=$("$V" inspect --in act.txt) || fail "inspect activation: $act"
    assert_contains "$act" "kind:                activation certificate"
    assert_contains "$act" "status:              consistent"
    assert_contains "$act" "signature:           none"
    assert_contains "$act" "counter.value:       4242"
    ek=$(sed -n 's/^hwid.ek: *//p' <<<"$act")
    cid=$(sed -n 's/^computer_id: *//p' <<<"$act")
    sign act.txt subscription --features a,b.c,d-e --tick-secs 30 --hwid-policy all \
        --license TEST-LIC-0001 >lic.jws
    out=$("$V" inspect --public pub.pem --in lic.jws)
    assert_contains "$out" "product:             Speech Engine Pro 24"
    assert_contains "$out" "customer_id:         1234"
    assert_contains "$out" "computer_id:         $cid"
    assert_contains "$out" "hwid.ek:             $ek"
    assert_contains "$out" "hwid_policy:         all"
    assert_contains "$out" "subscription_expiry: $FUTURE"
    assert_contains "$out" "features:            a, b.c, d-e"
    assert_contains "$out" "secs_granted:        36000"
    assert_contains "$out" "activation_type:     offline"
    assert_contains "$out" "offline_allowed:     true"
    assert_contains "$out" "tick_secs:           30"
    assert_contains "$out" "counter.index:       0x01a0c001"
    assert_contains "$out" "counter.base:        4242"
    [[ $out =~ iat:\ +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z ]] || fail "iat not RFC 3339: $out"
    [[ $out =~ jti:\ +[0-9a-f]{32} ]] || fail "jti not 16 random bytes in hex"
    out=$("$V" inspect --in act.txt --json)
    assert_contains "$out" '"kind": "activation"'
    assert_contains "$out" '"status": "consistent"'
    assert_contains "$out" "\"computer_id_recomputed\": \"$cid\""
    # secs_granted defaults to secs_allocated, tick_secs to 60
    "$V" sign-activation --key priv.pem --in act.txt --product P --customer-id 1 \
        --type consumption --expiry "$FUTURE" --secs-allocated 900 >lic2.jws
    out=$("$V" inspect --public pub.pem --in lic2.jws)
    assert_contains "$out" "secs_granted:        900"
    assert_contains "$out" "tick_secs:           60"
    assert_contains "$out" "features:            (none)"
}

test_activation_from_stdin_and_wrapped() {
    keys
    "$MK" >act.txt
    sign - perpetual <act.txt >lic.jws || fail "from standard input"
    # a mail client wraps long lines: line breaks are ignored
    fold -w 76 act.txt >wrapped.txt
    [ "$(wc -l <wrapped.txt)" -gt 3 ] || fail "fold did not wrap"
    sign wrapped.txt perpetual >lic.jws || fail "wrapped activation certificate"
    "$V" inspect --public pub.pem <lic.jws >/dev/null || fail "inspect from standard input"
}

# Rewrites the activation JSON with a jq filter and encodes it again.
edit_activation() { # edit_activation IN OUT JQ-FILTER
    b64url_decode <"$1" | jq -c "$3" | tr -d '\n' | b64url_encode >"$2"
}

test_tampered_activation_refused() {
    keys
    "$MK" >act.txt
    sign act.txt perpetual >/dev/null || fail "the untampered one must sign"
    edit_activation act.txt t1.txt ".hwid.dmi = \"$(printf '0%.0s' {1..64})\""
    expect_refused 1 "does not match the hardware digests" sign t1.txt perpetual
    edit_activation act.txt t2.txt ".computer_id = \"00000000-0000-8000-8000-000000000000\""
    expect_refused 1 "does not match the hardware digests" sign t2.txt perpetual
    edit_activation act.txt t3.txt ".hwid.ek = \"$(printf '1%.0s' {1..64})\""
    expect_refused 1 "'ek_public' does not match the EK digest" sign t3.txt perpetual
    edit_activation act.txt t4.txt '.v = 2'
    expect_refused 1 "unsupported version" sign t4.txt perpetual
    edit_activation act.txt t5.txt '.extra = 1'
    expect_refused 1 "unknown field 'extra'" sign t5.txt perpetual
    edit_activation act.txt t6.txt '.counter.value = "42"'
    expect_refused 1 "field 'value' must be a whole number" sign t6.txt perpetual
    printf '%s=\n' "$(cat act.txt)" >t7.txt
    expect_refused 1 "not base64url" sign t7.txt perpetual
    head -c 9000 /dev/zero | tr '\0' A >t8.txt
    expect_refused 1 "at most 8192" sign t8.txt perpetual
    "$MK" --ek-cert-other >t9.txt
    expect_refused 1 "ek_certificate certifies another key" sign t9.txt perpetual
    "$MK" --ek-cert >ok.txt
    sign ok.txt perpetual >/dev/null || fail "a matching EK certificate must be accepted"
    out=$("$V" inspect --in t1.txt 2>&1) && fail "inspect of a tampered activation exits 0"
    assert_contains "$out" "status:              computer_id"
}

test_license_terms_refused() {
    keys
    "$MK" --license CODE-AAAA >act.txt
    expect_refused 1 "another license code than --license" sign act.txt perpetual --license CODE-BBBB
    expect_refused 1 "is in the past" sign act.txt subscription --expiry 2020-01-01T00:00:00Z
    expect_refused 1 "a perpetual license has no expiry" sign act.txt perpetual --expiry "$FUTURE"
    expect_refused 1 "needs --expiry" "$V" sign-activation --key priv.pem --in act.txt \
        --product P --customer-id 1 --type time-limited
    expect_refused 2 "RFC 3339" sign act.txt subscription --expiry 2099-12-31
    expect_refused 2 "--type must be" sign act.txt forever --expiry "$FUTURE"
    expect_refused 2 "--customer-id must be" "$V" sign-activation --key priv.pem --in act.txt \
        --product P --customer-id -5 --type perpetual
    expect_refused 1 "is more than --secs-allocated" sign act.txt perpetual --secs-granted 999999
    expect_refused 1 "more than 16 features" sign act.txt perpetual \
        --features a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q
    expect_refused 2 "empty name" sign act.txt perpetual --features a,,b
    expect_refused 1 "features[1]" sign act.txt perpetual --features 'a,b c'
    expect_refused 1 "listed twice" sign act.txt perpetual --features a,a
    expect_refused 1 "consumption license needs" "$V" sign-activation --key priv.pem \
        --in act.txt --product P --customer-id 1 --type consumption --expiry "$FUTURE"
    expect_refused 1 "more than the 1536" sign act.txt perpetual --features \
        "$(printf 'feature-%024d,' $(seq 1 16) | sed 's/,$//')"
    expect_refused 1 "not a PEM private key" "$V" sign-activation --key pub.pem --in act.txt \
        --product P --customer-id 1 --type perpetual
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem 2>/dev/null
    expect_refused 1 "is not an Ed25519 key" "$V" sign-activation --key ec.pem --in act.txt \
        --product P --customer-id 1 --type perpetual
    expect_refused 1 "cannot read the private key nope.pem" "$V" sign-activation --key nope.pem \
        --in act.txt --product P --customer-id 1 --type perpetual
    # a key others can read is used, with a warning
    chmod 0644 priv.pem
    sign act.txt perpetual 2>err.txt >/dev/null || fail "signing with a 0644 key"
    assert_contains "$(cat err.txt)" "the private key priv.pem can be read by others"
    chmod 0600 priv.pem
    sign act.txt perpetual 2>err.txt >/dev/null
    assert_eq "" "$(cat err.txt)" "no warning for a 0600 key"
}

test_inspect_verdicts() {
    local out
    keys
    "$V" keygen --private other.pem --public other.pub >/dev/null
    "$MK" >act.txt
    sign act.txt subscription --not-before "$FUTURE" --expiry 2100-01-01T00:00:00Z >future.jws
    out=$("$V" inspect --public pub.pem --in future.jws) && fail "not-yet-valid exits 0"
    assert_contains "$out" "status:              not yet valid: valid from $FUTURE"
    assert_contains "$out" "nbf:                 $FUTURE"
    sign act.txt perpetual >lic.jws
    out=$("$V" inspect --public other.pub --in lic.jws) && fail "another key exits 0"
    assert_contains "$out" "status:              signed by another key"
    out=$("$V" inspect --public other.pub --in lic.jws --json) || true
    assert_contains "$out" '"status": "wrong_key"'
    # one payload character changed
    awk -F. '{p=$2; c=substr(p,20,1); r=(c=="A")?"B":"A"; print $1"."substr(p,1,19) r substr(p,21)"."$3}' \
        lic.jws >bad.jws
    out=$("$V" inspect --public pub.pem --in bad.jws) && fail "tampered exits 0"
    assert_contains "$out" "status:              bad signature"
    out=$("$V" inspect --public pub.pem --in bad.jws --json) || true
    assert_contains "$out" '"status": "bad_signature"'
    cut -d. -f1,2 lic.jws >two.jws
    out=$("$V" inspect --public pub.pem --in two.jws) && fail "two parts exits 0"
    assert_contains "$out" "status:              malformed"
    expect_refused 2 "--public FILE is needed" "$V" inspect --in lic.jws
    expect_refused 1 "not a PEM public key" "$V" inspect --public priv.pem --in lic.jws
}

test_private_key_never_printed() {
    local all secret line
    "$V" keygen --private priv.pem --public pub.pem >log.txt 2>&1
    "$MK" >act.txt
    sign act.txt perpetual >>log.txt 2>&1
    sign act.txt subscription --expiry 2020-01-01T00:00:00Z >>log.txt 2>&1 || true
    "$V" inspect --public pub.pem --in <(sign act.txt perpetual) >>log.txt 2>&1
    "$V" inspect --public pub.pem --in <(sign act.txt perpetual) --json >>log.txt 2>&1
    "$V" keygen --private priv.pem --public pub.pem >>log.txt 2>&1 || true
    "$V" sign-activation --key priv.pem --in pub.pem --product P --customer-id 1 \
        --type perpetual >>log.txt 2>&1 || true
    all=$(cat log.txt)
    # the PEM body, and the 32-byte seed in hex and base64url
    while read -r line; do
        case $line in -----*) continue ;; esac
        case $all in *"$line"*) fail "PEM private key text printed" ;; esac
    done <priv.pem
    secret=$(openssl pkey -in priv.pem -outform DER | tail -c 32 | od -An -tx1 | tr -d ' \n')
    [ ${#secret} -eq 64 ] || fail "could not extract the seed"
    case $all in *"$secret"*) fail "private key printed in hex" ;; esac
    secret=$(openssl pkey -in priv.pem -outform DER | tail -c 32 | b64url_encode)
    case $all in *"${secret:0:40}"*) fail "private key printed in base64url" ;; esac
}

# The interoperability check of the issue: openssl's command line, knowing
# nothing of tpmlic, verifies the signature over "header.payload".
test_openssl_verifies_the_jws() {
    local h p s out
    keys
    "$MK" --details >act.txt
    sign act.txt subscription >lic.jws
    IFS=. read -r h p s <lic.jws
    printf '%s.%s' "$h" "$p" >input.txt
    printf '%s' "$s" | b64url_decode >sig.bin
    assert_eq 64 "$(wc -c <sig.bin)" "signature length"
    out=$(openssl pkeyutl -verify -rawin -pubin -inkey pub.pem -sigfile sig.bin -in input.txt 2>&1)
    assert_contains "$out" "Signature Verified Successfully" "openssl pkeyutl"
    # the header is the standard one
    out=$(printf '%s' "$h" | b64url_decode)
    assert_contains "$out" '"alg":"EdDSA"'
    # the key id is SHA-256 over the DER public key
    assert_contains "$out" "\"kid\":\"$(openssl pkey -pubin -in pub.pem -outform DER | sha256sum | cut -c1-16)\""
    printf '%s' "$p" | b64url_decode | jq -e '.v == 1 and .license_type == "subscription"' \
        >/dev/null || fail "payload is not the JSON of docs/certificates.md"
    # one payload byte flipped: openssl refuses too
    b64url_decode <<<"$p" >payload.json
    sed 's/"customer_id":1234/"customer_id":1235/' payload.json >payload2.json
    ! cmp -s payload.json payload2.json || fail "sed changed nothing"
    printf '%s.%s' "$h" "$(b64url_encode <payload2.json)" >input2.txt
    out=$(openssl pkeyutl -verify -rawin -pubin -inkey pub.pem -sigfile sig.bin -in input2.txt 2>&1) &&
        fail "openssl verified a tampered payload"
    assert_contains "$out" "Signature Verification Failure" "openssl on a tampered payload"
    # and the same tampered certificate is refused by tpmlic-vendor
    printf '%s.%s\n' "$(cat input2.txt)" "$s" >bad.jws
    out=$("$V" inspect --public pub.pem --in bad.jws) && fail "inspect accepted a tampered payload"
    assert_contains "$out" "bad signature"
}

# The other direction: a JWS signed by openssl's command line over a payload
# edited with jq verifies with tpmlic-vendor, so the verifier reads standard
# JWS and not only its own output; and an unsecured "alg":"none" one is
# refused for its algorithm.
test_openssl_signed_jws_verifies() {
    local h p s out
    keys
    "$MK" >act.txt
    sign act.txt perpetual >lic.jws
    IFS=. read -r h p s <lic.jws
    p=$(printf '%s' "$p" | b64url_decode | jq -c '.customer_id = 777' | tr -d '\n' | b64url_encode)
    printf '%s.%s' "$h" "$p" >input.txt
    openssl pkeyutl -sign -rawin -inkey priv.pem -in input.txt -out sig.bin ||
        fail "openssl pkeyutl -sign"
    printf '%s.%s.%s\n' "$h" "$p" "$(b64url_encode <sig.bin)" >openssl.jws
    out=$("$V" inspect --public pub.pem --in openssl.jws) || fail "inspect: $out"
    assert_contains "$out" "status:              valid"
    assert_contains "$out" "customer_id:         777"
    # unsecured JWS: alg none, empty signature
    h=$(printf '{"alg":"none","typ":"tpmlic-license+jws"}' | b64url_encode)
    printf '%s.%s.\n' "$h" "$p" >none.jws
    out=$("$V" inspect --public pub.pem --in none.jws) && fail "alg none exits 0"
    assert_contains "$out" "algorithm 'none' is not accepted"
}

run_tests
