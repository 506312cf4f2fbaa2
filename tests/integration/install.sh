#!/bin/bash
# make install honours PREFIX and DESTDIR and installs every program, the
# systemd unit, the sysusers file and the default config.
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

test_install_keeps_existing_config() {
    mkdir -p "$T/root/etc/tpmlic"
    echo "# mine" >"$T/root/etc/tpmlic/tpmlicd.conf"
    make -s -C "$TPMLIC_SRCDIR" B="$B" install DESTDIR="$T/root" PREFIX=/usr >/dev/null
    assert_eq "# mine" "$(cat "$T/root/etc/tpmlic/tpmlicd.conf")" "config after install"
}

run_tests
