# Shell test helpers: source this, define test_* functions, end with run_tests.
# Output follows cmocka's summary lines so tests/run-tests counts both alike.
set -u
TPMLIC_SRCDIR=${TPMLIC_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
B=${B:-build/rel}
case $B in /*) ;; *) B=$TPMLIC_SRCDIR/$B ;; esac
SWTPM_CTL=$TPMLIC_SRCDIR/swtpm-scripts/swtpm-ctl
_t_pass=0
_t_fail=0
_t_failed=()

fail() {
    echo "    FAIL: $*" >&2
    return 1
}

# faketime_wrapper FAKETIME OUT PROGRAM: writes OUT, a script that runs
# PROGRAM with its arguments under libfaketime at FAKETIME (the root
# attacker's clock). A sanitizer build of PROGRAM gets its ASan runtime
# first in LD_PRELOAD, as ASan requires.
faketime_wrapper() {
    local lib pre
    lib=$(find /usr/lib -name libfaketime.so.1 2>/dev/null | head -n 1)
    [ -n "$lib" ] || {
        fail "libfaketime is not installed"
        return 1
    }
    pre=$(ldd "$3" 2>/dev/null | awk '/libasan/ {print $3}')
    printf '#!/bin/sh\nexec env LD_PRELOAD="%s" FAKETIME="%s" FAKETIME_NO_CACHE=1 "%s" "$@"\n' \
        "${pre:+$pre }$lib" "$1" "$3" >"$2"
    chmod +x "$2"
}

# assert_eq EXPECTED ACTUAL [WHAT]
assert_eq() {
    [ "$1" = "$2" ] || fail "${3:-value}: expected '$1', got '$2'"
}

# assert_contains HAYSTACK NEEDLE [WHAT]
assert_contains() {
    case $1 in *"$2"*) return 0 ;; esac
    fail "${3:-output} does not contain '$2': $1"
}

# Each test runs in a subshell with its own scratch directory in $T;
# swtpm instances started under $T are powered off afterwards. TEST_ONLY=RE
# runs only the tests whose names match; TEST_KEEP=1 keeps $T of a failed
# test (its path is printed).
run_tests() {
    local t
    local tests
    tests=$(declare -F | awk '{print $3}' | grep '^test_' | grep -e "${TEST_ONLY:-.}")
    echo "[==========] Running $(echo "$tests" | wc -w) test(s)."
    for t in $tests; do
        echo "[ RUN      ] $t"
        T=$(mktemp -d /tmp/tpmlic-test.XXXXXX)
        ( set -e; cd "$T"; "$t" )
        local rc=$?
        for p in "$T"/*.pid; do
            [ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null
        done
        for d in "$T"/*/ "$T"/; do
            [ -f "$d/swtpm.pid" ] && "$SWTPM_CTL" poweroff "$d" >/dev/null 2>&1
        done
        if [ $rc -ne 0 ] && [ -n "${TEST_KEEP-}" ]; then
            echo "    kept $T"
        else
            rm -rf "$T"
        fi
        if [ $rc -eq 0 ]; then
            echo "[       OK ] $t"
            _t_pass=$((_t_pass + 1))
        else
            echo "[  FAILED  ] $t"
            _t_fail=$((_t_fail + 1))
            _t_failed+=("$t")
        fi
    done
    echo "[==========] $((_t_pass + _t_fail)) test(s) run."
    echo "[  PASSED  ] $_t_pass test(s)."
    if [ $_t_fail -gt 0 ]; then
        echo "[  FAILED  ] $_t_fail test(s), listed below:"
        for t in "${_t_failed[@]}"; do echo "[  FAILED  ] $t"; done
        exit 1
    fi
    exit 0
}
