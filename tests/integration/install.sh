#!/bin/bash
# make install honours PREFIX and DESTDIR and installs every program, the
# systemd unit, the sysusers file and the default config, and libtpmlic
# (shared and static library, header, pkg-config file) with tpmlicctl's bash
# completion.
. "$(dirname "$0")/../lib/testlib.sh"

test_install_prefix_destdir() {
    make -s -C "$TPMLIC_SRCDIR" B="$B" install DESTDIR="$T/root" PREFIX=/opt/tpmlic >/dev/null
    for f in opt/tpmlic/sbin/tpmlicd lib/systemd/system/tpmlicd.service \
        usr/lib/sysusers.d/tpmlic.conf etc/tpmlic/tpmlicd.conf opt/tpmlic/share/doc/tpmlic/README.md; do
        [ -e "$T/root/$f" ] || fail "$f not installed"
    done
    [ -x "$T/root/opt/tpmlic/sbin/tpmlicd" ] || fail "tpmlicd not executable"
    grep -q '^ExecStart=/opt/tpmlic/sbin/tpmlicd ' "$T/root/lib/systemd/system/tpmlicd.service" ||
        fail "unit does not start the installed tpmlicd"
    "$T/root/opt/tpmlic/sbin/tpmlicd" --version | grep -q '^tpmlicd ' || fail "--version"
}

test_install_client_library() {
    make -s -C "$TPMLIC_SRCDIR" B="$B" install DESTDIR="$T/root" PREFIX=/opt/tpmlic >/dev/null
    r=$T/root/opt/tpmlic
    for f in bin/tpmlicctl lib/libtpmlic.so.0.1.0 lib/libtpmlic.so.0 lib/libtpmlic.so lib/libtpmlic.a \
        include/tpmlic/client.h lib/pkgconfig/tpmlic.pc share/bash-completion/completions/tpmlicctl; do
        [ -e "$r/$f" ] || fail "$f not installed"
    done
    assert_eq libtpmlic.so.0.1.0 "$(readlink "$r/lib/libtpmlic.so.0")" "soname link"
    assert_eq libtpmlic.so.0 "$(readlink "$r/lib/libtpmlic.so")" "development link"
    "$r/bin/tpmlicctl" --version | grep -q '^tpmlicctl ' || fail "tpmlicctl --version"
    # the .pc file names the installed prefix; a program builds against the
    # installed library through pkg-config alone
    export PKG_CONFIG_PATH=$r/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$T/root
    assert_eq 0.1.0 "$(pkg-config --modversion tpmlic)" "pkg-config --modversion"
    grep -q '^libdir=/opt/tpmlic/lib$' "$r/lib/pkgconfig/tpmlic.pc" || fail "libdir in tpmlic.pc"
    cat >"$T/prog.c" <<'C'
#include <stdio.h>
#include <tpmlic/client.h>
int main(void) {
    struct tpmlic *h = NULL;
    struct tpmlic_error e;
    int r = tpmlic_connect("/nonexistent/tpmlicd.sock", &h, &e);
    printf("%s %d %s\n", tpmlic_version(), r, e.message);
    return 0;
}
C
    # a library built with SANITIZE=1 needs its runtime in the program too
    san=()
    nm -D "$r/lib/libtpmlic.so" | grep -q __asan_init && san=(-fsanitize=address,undefined)
    # shellcheck disable=SC2046
    cc "${san[@]}" -o "$T/prog" "$T/prog.c" $(pkg-config --cflags --libs tpmlic) -Wl,-rpath,"$r/lib" ||
        fail "a program does not build against the installed library"
    readelf -d "$T/prog" | grep -q 'NEEDED.*\[libtpmlic.so.0\]' || fail "not linked to libtpmlic.so.0"
    out=$("$T/prog")
    assert_contains "$out" "0.1.0 -2 cannot connect to tpmlicd at /nonexistent/tpmlicd.sock"
    # and statically
    # shellcheck disable=SC2046
    cc "${san[@]}" -o "$T/prog-static" "$T/prog.c" $(pkg-config --cflags tpmlic) "$r/lib/libtpmlic.a" \
        $(pkg-config --libs jansson) -lpthread || fail "a program does not build against libtpmlic.a"
    assert_contains "$("$T/prog-static")" "0.1.0 -2"
}

test_install_keeps_existing_config() {
    mkdir -p "$T/root/etc/tpmlic"
    echo "# mine" >"$T/root/etc/tpmlic/tpmlicd.conf"
    make -s -C "$TPMLIC_SRCDIR" B="$B" install DESTDIR="$T/root" PREFIX=/usr >/dev/null
    assert_eq "# mine" "$(cat "$T/root/etc/tpmlic/tpmlicd.conf")" "config after install"
}

run_tests
