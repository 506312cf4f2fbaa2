#!/bin/bash
# libtpmlic exports exactly the functions of include/tpmlic/client.h, all
# tpmlic_*, at symbol version TPMLIC_0 (client/libtpmlic.map), and
# debian/libtpmlic0.symbols lists exactly those; programs linked against it
# record the version.
. "$(dirname "$0")/../lib/testlib.sh"

SO=$B/libtpmlic.so.0.1.0
SYMBOLS=$TPMLIC_SRCDIR/debian/libtpmlic0.symbols

# exported: NAME@@VERSION of every symbol the library defines (a version
# node shows as an absolute symbol of its own name: VERSION@@VERSION)
exported() {
    readelf --dyn-syms -W "$SO" |
        awk '$7 == "ABS" && $8 !~ /@/ {print $8 "@@" $8; next} $7 != "UND" && $8 ~ /@/ {print $8}' | sort
}

test_only_versioned_tpmlic_functions() {
    local s bad=""
    [ -n "$(exported)" ] || fail "no exported symbols in $SO"
    for s in $(exported); do
        case $s in
        tpmlic_*@@TPMLIC_0 | TPMLIC_0@@TPMLIC_0) ;;
        *) bad="$bad $s" ;;
        esac
    done
    [ -z "$bad" ] || fail "exported beside tpmlic_*@@TPMLIC_0:$bad"
    readelf -d "$SO" | grep -q 'SONAME.*\[libtpmlic.so.0\]' || fail "soname"
}

test_exports_are_the_header_functions() {
    local header
    header=$(grep -o 'TPMLIC_API[^(]*(' "$TPMLIC_SRCDIR/include/tpmlic/client.h" |
        grep -o 'tpmlic_[a-z_]*' | sort -u)
    [ -n "$header" ] || fail "no TPMLIC_API function found in client.h"
    assert_eq "$header" "$(exported | sed -n 's/@@TPMLIC_0$//p' | grep '^tpmlic_' | sort -u)" \
        "functions of client.h vs exported"
}

test_symbols_file_lists_the_exports() {
    head -n 1 "$SYMBOLS" | grep -qx 'libtpmlic.so.0 libtpmlic0 #MINVER#' || fail "symbols file header"
    assert_eq "$(exported | sed 's/@@/@/')" \
        "$(sed -n 's/^ \([^ ]*@[^ ]*\) .*/\1/p' "$SYMBOLS" | sort)" "debian/libtpmlic0.symbols vs exported"
}

test_programs_record_the_version() {
    [ -x "$B/test-client" ] || fail "$B/test-client not built (make check builds it)"
    readelf -V -W "$B/test-client" | grep -A3 'libtpmlic.so.0' | grep -q 'Name: TPMLIC_0' ||
        fail "test-client does not require TPMLIC_0: $(readelf -V -W "$B/test-client")"
}

run_tests
