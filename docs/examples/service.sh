#!/bin/sh
# A service that bills by time, in shell with curl and jq
# (docs/integration.md).
#
#   service.sh MAX_SECONDS USED_SECONDS [FEATURE]
#
# Checks the license for FEATURE (default "standard") before it works,
# reserves MAX_SECONDS usage seconds, "works", and commits what the work used
# (USED_SECONDS stands for what a real service would measure). The socket
# comes from TPMLIC_SOCKET, else /run/tpmlic/tpmlicd.sock.
set -eu
[ $# -ge 2 ] || { echo "usage: service.sh MAX_SECONDS USED_SECONDS [FEATURE]" >&2; exit 2; }
max=$1 used=$2 feature=${3:-standard}
S=${TPMLIC_SOCKET:-/run/tpmlic/tpmlicd.sock}

# call PATH JSON: the answer on stdout; exit 1 with the agent's message when
# it refuses. (curl keeps no connection between runs: each call connects.)
call() {
    out=$(curl -sS --max-time 10 --unix-socket "$S" -H 'Content-Type: application/json' \
        -w '\n%{http_code}' -d "$2" "http://localhost$1") || { echo "cannot reach tpmlicd" >&2; exit 1; }
    code=$(printf '%s\n' "$out" | tail -n 1)
    body=$(printf '%s\n' "$out" | sed '$d')
    if [ "$code" != 200 ]; then
        echo "refused: $(printf '%s' "$body" | jq -r .error)" >&2
        exit 1
    fi
    printf '%s\n' "$body"
}

# 1. May this work be done at all?
call /v1/check "{\"feature\": \"$feature\"}" >/dev/null
echo "allowed: feature $feature"

# 2. Take the seconds the work may need. The agent may grant fewer.
lease=$(call /v1/usage/reserve "{\"seconds\": $max, \"feature\": \"$feature\"}")
id=$(printf '%s' "$lease" | jq -r .lease)
granted=$(printf '%s' "$lease" | jq .seconds)
echo "reserved $granted s (lease $id)"

# 3. The work itself, within what was granted.
[ "$used" -le "$granted" ] || used=$granted

# 4. Charge what was used; the rest goes back.
done=$(call /v1/usage/commit "{\"lease\": \"$id\", \"used\": $used}")
echo "charged $(printf '%s' "$done" | jq .charged) s, returned $(printf '%s' "$done" | jq .returned) s"
