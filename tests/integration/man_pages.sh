#!/bin/bash
# The man pages (docs/man/*.scd, built with scdoc) exist for every program
# and for tpmlicd.conf(5), render without warnings, and stay true: every
# option that a program's --help (or one of its commands' --help) shows is
# in its page, and every setting of tpmlicd --help is in tpmlicd.conf(5).
. "$(dirname "$0")/../lib/testlib.sh"

HELPOPTS=$TPMLIC_SRCDIR/tests/lib/help_options.py
MAN=$TPMLIC_SRCDIR/docs/man

command -v scdoc >/dev/null || { echo "scdoc is missing (packaging/debian-packages.txt lists it)" >&2; exit 1; }

# page_has PAGE WORD: the page's source shows WORD in bold (as options are)
page_has() {
    grep -qF -- "*$2*" "$MAN/$1.scd"
}

# check_options PROGRAM PAGE: every option of every command's --help
check_options() {
    local prog=$1 page=$2 cmd group opts o missing="" n=0
    while IFS='|' read -r cmd group opts; do
        for o in $opts; do
            n=$((n + 1))
            page_has "$page" "$o" || missing="$missing $o (${cmd:-$prog})"
        done
    done < <(python3 "$HELPOPTS" "$B/$prog")
    [ "$n" -ge 5 ] || fail "found only $n options in $prog's help"
    [ -z "$missing" ] || fail "$page lacks options shown by --help:$missing"
}

test_every_program_has_a_page_that_builds() {
    local p
    for p in tpmlicd.8 tpmlicctl.1 tpmlic-vendor.1 tpmlic-server.8 tpmlicd.conf.5; do
        [ -f "$MAN/$p.scd" ] || fail "no docs/man/$p.scd"
        [ -s "$B/man/$p" ] || fail "$B/man/$p was not built (make builds it when scdoc is installed)"
        # rendered by man/groff with every warning on: none may come
        out=$(MANWIDTH=80 man --warnings=w -l "$B/man/$p" 2>&1 >/dev/null)
        assert_eq "" "$out" "warnings rendering $p"
        head -n 1 "$MAN/$p.scd" | grep -qx "${p%.*}(${p##*.})" || fail "$p.scd does not start with its name(section)"
    done
}

test_tpmlicd_page_has_every_option() {
    check_options tpmlicd tpmlicd.8
}

test_tpmlicctl_page_has_every_option() {
    check_options tpmlicctl tpmlicctl.1
}

test_tpmlicctl_page_has_every_command() {
    local cmd group missing="" n=0
    while IFS='|' read -r cmd group _; do
        [ -n "$cmd" ] && [ -z "$group" ] || continue
        case $cmd in offline-mode\ *) continue ;; esac  # on|off are arguments
        n=$((n + 1))
        grep -qF -- "*$cmd*" "$MAN/tpmlicctl.1.scd" || missing="$missing '$cmd'"
    done < <(python3 "$HELPOPTS" "$B/tpmlicctl")
    [ "$n" -ge 12 ] || fail "found only $n commands in tpmlicctl's help"
    [ -z "$missing" ] || fail "tpmlicctl.1 lacks commands:$missing"
}

test_vendor_page_has_every_option() {
    check_options tpmlic-vendor tpmlic-vendor.1
}

test_server_page_has_every_option() {
    check_options tpmlic-server tpmlic-server.8
}

test_config_page_has_every_setting() {
    local s missing="" n=0
    for s in $(python3 "$HELPOPTS" --settings "$B/tpmlicd"); do
        n=$((n + 1))
        page_has tpmlicd.conf.5 "$s" || missing="$missing $s"
    done
    [ "$n" -ge 10 ] || fail "found only $n settings in tpmlicd --help"
    [ -z "$missing" ] || fail "tpmlicd.conf.5 lacks settings:$missing"
}

test_check_catches_an_undocumented_option() {
    # the check itself: a page without one of the options is caught
    local saved=$MAN
    mkdir -p "$T/man"
    grep -vF -- '*--tpm-watch*' "$saved/tpmlicd.8.scd" >"$T/man/tpmlicd.8.scd"
    MAN=$T/man
    local rc=0
    (check_options tpmlicd tpmlicd.8) 2>"$T/err" || rc=$?
    MAN=$saved
    [ "$rc" != 0 ] || fail "a page without --tpm-watch passed"
    assert_contains "$(cat "$T/err")" "--tpm-watch"
}

run_tests
