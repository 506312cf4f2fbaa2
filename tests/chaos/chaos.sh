#!/bin/bash
# make chaos: the chaos run (tests/chaos/chaos.py, docs/testing.md) against
# the programs in $B. CHAOS_SECS (default 600) is how long it runs,
# CHAOS_SEED replays a run (its seed is printed first), CHAOS_DIR keeps its
# files in that directory, CHAOS_KEEP=1 keeps them after a run that passed.
set -eu
TPMLIC_SRCDIR=${TPMLIC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${B:-build/rel}
case $B in /*) ;; *) B=$TPMLIC_SRCDIR/$B ;; esac
for c in swtpm swtpm_setup tpm2_nvread openssl sqlite3 python3; do
    command -v "$c" >/dev/null || { echo "chaos: $c is not installed" >&2; exit 1; }
done
for p in tpmlicd tpmlic-server tpmlic-vendor; do
    [ -x "$B/$p" ] || { echo "chaos: $B/$p is not built (make build-tests)" >&2; exit 1; }
done
args=(--secs "${CHAOS_SECS:-600}" --build "$B" --srcdir "$TPMLIC_SRCDIR")
[ -n "${CHAOS_SEED:-}" ] && args+=(--seed "$CHAOS_SEED")
[ -n "${CHAOS_DIR:-}" ] && args+=(--dir "$CHAOS_DIR")
[ -n "${CHAOS_KEEP:-}" ] && args+=(--keep)
exec python3 "$TPMLIC_SRCDIR/tests/chaos/chaos.py" "${args[@]}"
