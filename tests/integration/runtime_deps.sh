#!/bin/bash
# packaging/debian-runtime-packages.txt is what the installed agent really
# loads: the Debian packages of every library ldd shows for tpmlicd,
# tpmlicctl and libtpmlic.so.0, and of what tpmlicd loads with dlopen (the
# TCTI for device:/dev/tpmrm0, seen with LD_DEBUG). Nothing missing, nothing
# extra; a dlopen'ed package is also an explicit dependency of the tpmlicd
# package (dh_shlibdeps cannot see it).
. "$(dirname "$0")/../lib/testlib.sh"

LIST=$TPMLIC_SRCDIR/packaging/debian-runtime-packages.txt
# packages of the sanitizer runtimes, in SANITIZE=1 builds only
SANITIZER_PKGS="libasan8 libubsan1 libstdc++6 libgcc-s1"

# package_of PATH: the Debian package that holds PATH (merged /usr aware)
package_of() {
    local c r
    for c in "$1" "$(realpath "$1")" "${1#/usr}" "/usr$1" "$(realpath "$1" | sed 's|^/usr||')"; do
        r=$(dpkg -S "$c" 2>/dev/null | head -n 1 | cut -d: -f1)
        [ -n "$r" ] && { echo "$r"; return 0; }
    done
    fail "no package holds $1"
}

listed() {
    sed 's/#.*//; s/[[:space:]]//g' "$LIST" | grep -v '^$' | sort -u
}

installed_agent() {
    make -s -C "$TPMLIC_SRCDIR" B="$B" install-agent DESTDIR="$T/root" PREFIX=/usr >"$T/make.log" 2>&1 ||
        { cat "$T/make.log" >&2; fail "make install-agent failed"; }
    find "$T/root/usr/sbin/tpmlicd" "$T/root/usr/bin/tpmlicctl" "$T/root"/usr/lib/*/libtpmlic.so.0
}

# loaded_libraries: ldd of the installed agent, then what tpmlicd dlopens
loaded_libraries() {
    local f
    for f in $(installed_agent); do
        ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
    done
    # the TCTI loader dlopens the TCTI library whether or not the device is there
    LD_DEBUG=files "$T/root/usr/sbin/tpmlicd" --config /dev/null --tpm-info \
        --tcti "device:$T/no-tpm" 2>&1 >/dev/null | dlopened
}

# dlopened: from LD_DEBUG=files output, the paths of objects loaded by dlopen
dlopened() {
    awk '/dynamically loaded by/ { split($2, a, "="); name = a[2]; next }
         name != "" && /generating link map/ { want[name] = 1; name = ""; next }
         /calling init: / { p = $NF; n = split(p, b, "/"); if (b[n] in want) print p }'
}

test_list_matches_what_the_agent_loads() {
    local libs pkgs p missing="" extra=""
    libs=$(loaded_libraries | sort -u)
    grep -q 'libtss2-tcti-device.so' <<<"$libs" || fail "the device TCTI was not seen being loaded: $libs"
    pkgs=$(for p in $libs; do package_of "$p"; done | sort -u)
    if grep -q libasan <<<"$libs"; then
        pkgs=$(comm -23 <(echo "$pkgs") <(tr ' ' '\n' <<<"$SANITIZER_PKGS" | sort))
    fi
    for p in $pkgs; do listed | grep -qx "$p" || missing="$missing $p"; done
    for p in $(listed); do grep -qx "$p" <<<"$pkgs" || extra="$extra $p"; done
    [ -z "$missing" ] || fail "loaded but not in $(basename "$LIST"):$missing"
    [ -z "$extra" ] || fail "in $(basename "$LIST") but not loaded:$extra"
}

test_dlopened_packages_are_explicit_dependencies() {
    local p deps
    deps=$(sed -n '/^Package: tpmlicd$/,/^$/p' "$TPMLIC_SRCDIR/debian/control" |
        sed -n '/^Depends:/,/^[A-Z]/p' | grep -v '^#')
    for p in $(grep 'dlopen' "$LIST" | sed 's/#.*//'); do
        assert_contains "$deps" "$p" "Depends of tpmlicd in debian/control"
    done
    [ -n "$(grep 'dlopen' "$LIST")" ] || fail "no dlopen'ed package marked in the list"
}

run_tests
