#!/bin/bash
# Bash completion for every program (packaging/bash-completion/): each
# completes every option that the --help of the command being typed shows,
# the commands and sub-commands, and values where there is a fixed set; with
# bash-completion's _init_completion and without it.
. "$(dirname "$0")/../lib/testlib.sh"

HELPOPTS=$TPMLIC_SRCDIR/tests/lib/help_options.py
COMP=$TPMLIC_SRCDIR/packaging/bash-completion
BASHCOMP_LIB=/usr/share/bash-completion/bash_completion

# complete_words [--plain] PROGRAM WORD...: what completion offers for the
# last WORD, one per line, from a fresh bash that sourced the completion
# (and bash-completion's library unless --plain)
complete_words() {
    local lib=$BASHCOMP_LIB
    if [ "$1" = --plain ]; then
        lib=/dev/null
        shift
    fi
    bash --norc --noprofile -c '
        . "$1" >/dev/null 2>&1
        . "$2"
        prog=$3
        shift 3
        COMP_WORDS=("$prog" "$@")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        COMP_LINE="${COMP_WORDS[*]}"
        COMP_POINT=${#COMP_LINE}
        fn=$(complete -p "$prog" | sed -n "s/.*-F \([^ ]*\) .*/\1/p")
        "$fn" "$prog" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf "%s\n" "${COMPREPLY[@]}"
    ' _ "$lib" "$COMP/$1" "$@"
}

# check_program PROGRAM: for every command (not groups of sub-commands),
# 'PROGRAM COMMAND... --' offers every option of that command's --help
check_program() {
    local prog=$1 cmd group opts o got missing="" plain n=0
    for plain in "" --plain; do
        while IFS='|' read -r cmd group opts; do
            [ -z "$group" ] || continue
            # shellcheck disable=SC2086
            got=$(complete_words $plain "$prog" $cmd --)
            for o in $opts; do
                [ "$o" = -h ] && continue
                n=$((n + 1))
                grep -qx -- "$o" <<<"$got" || missing="$missing $o (${cmd:-$prog}${plain:+, plain})"
            done
        done < <(python3 "$HELPOPTS" "$B/$prog")
    done
    [ "$n" -ge 10 ] || fail "found only $n options in $prog's help"
    [ -z "$missing" ] || fail "completion for $prog lacks:$missing"
}

test_bash_completion_library_is_installed() {
    # the users' setup: bash-completion (packaging/debian-packages.txt)
    [ -f "$BASHCOMP_LIB" ] || fail "$BASHCOMP_LIB missing: install bash-completion"
}

test_every_program_has_a_completion() {
    local p
    for p in tpmlicd tpmlicctl tpmlic-vendor tpmlic-server; do
        [ -f "$COMP/$p" ] || fail "no packaging/bash-completion/$p"
        bash -n "$COMP/$p" || fail "$p: syntax error"
    done
}

test_tpmlicd_options() {
    check_program tpmlicd
}

test_tpmlicctl_options() {
    check_program tpmlicctl
}

test_vendor_options() {
    check_program tpmlic-vendor
}

test_server_options() {
    check_program tpmlic-server
}

test_commands_and_values() {
    assert_contains "$(complete_words tpmlicctl "")" "offline-mode"
    assert_eq "$(printf 'apply\nrequest')" "$(complete_words tpmlicctl offline "" | sort)" "tpmlicctl offline"
    assert_eq "$(printf 'inspect\nkeygen\nsign-activation')" "$(complete_words tpmlic-vendor "" | grep -v '^-' | sort)" "vendor commands"
    assert_eq "$(printf 'create\ndelete\nlist\nresume\nshow\nsuspend\nupdate')" \
        "$(complete_words tpmlic-server license "" | sort)" "server license"
    assert_eq "sign" "$(complete_words tpmlic-server offline "")" "server offline"
    assert_eq "$(printf 'consumption\nperpetual\nsubscription\ntime-limited')" \
        "$(complete_words tpmlic-vendor sign-activation --type "" | sort)" "--type"
    assert_eq "debug" "$(complete_words tpmlicd --log-level d)" "--log-level"
    assert_eq "warn" "$(complete_words tpmlic-server serve --log-level w)" "server --log-level"
    # a file where a file is expected
    : >"$T/vendor-key.pem"
    assert_eq "$T/vendor-key.pem" "$(complete_words tpmlicd --vendor-key "$T/vendor-k")" "--vendor-key FILE"
    assert_eq "$T/vendor-key.pem" "$(complete_words tpmlic-server serve --db x --key "$T/vendor-k")" "--key FILE"
}

test_check_catches_a_missing_option() {
    # the check itself: a completion without one option is caught
    mkdir -p "$T/comp"
    sed 's/ --tpm-watch//' "$COMP/tpmlicd" >"$T/comp/tpmlicd"
    local rc=0
    (COMP=$T/comp; check_program tpmlicd) 2>"$T/err" || rc=$?
    [ "$rc" != 0 ] || fail "a completion without --tpm-watch passed"
    assert_contains "$(cat "$T/err")" "--tpm-watch"
}

run_tests
