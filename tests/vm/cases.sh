# The cases of the appliance boot test, run in name order by tests/vm/run
# (tests/vm/README.md: how to add one). A case is a function vmcase_NN_name;
# it runs in a subshell with set -e, hands what later cases need to them with
# state_set and asks for it with require. The guests: A (appliance A: disk
# a.qcow2, vTPM A), snap (A's disk as it was before the usage, vTPM A),
# clone (A's disk copied, a fresh vTPM B, another MAC and SMBIOS UUID).

MAC_A=52:54:00:7e:00:0a
UUID_A=8d0c7f2e-5b1a-4c39-9e57-2f6d1a3b4c0a
MAC_CLONE=52:54:00:7e:00:0b
UUID_CLONE=8d0c7f2e-5b1a-4c39-9e57-2f6d1a3b4c0b
LICENSE=VM-1001
ONLINE_LICENSE=VM-2002
SECS_GRANTED=36000

# host-side copies of the packaged vendor tool and license server
vendor() { "$W/host/usr/bin/tpmlic-vendor" "$@"; }
server() { "$W/host/usr/bin/tpmlic-server" "$@"; }

# status_json: the agent's GET /v1/status in the current guest
status_json() {
    g tpmlicctl --json status
}

# ---- the packages --------------------------------------------------------------

vmcase_01_packages_build() {
    local t0=$SECONDS
    "$SRC/packaging/build-debs" "$W/deb" >"$W/build-debs.log" 2>&1 ||
        { tail -n 40 "$W/build-debs.log" >&2; fail "dpkg-buildpackage failed (log: build-debs.log)"; }
    local p
    for p in tpmlicd libtpmlic0 libtpmlic-dev tpmlic-vendor tpmlic-server; do
        ls "$W/deb/${p}_"*.deb >/dev/null 2>&1 || fail "no package $p"
    done
    measure "dpkg-buildpackage -us -uc -b: $((SECONDS - t0)) s"
    mkdir -p "$W/host"
    dpkg-deb -x "$W/deb"/tpmlic-vendor_*.deb "$W/host"
    dpkg-deb -x "$W/deb"/tpmlic-server_*.deb "$W/host"
    state_set debs 1
}

vmcase_02_lintian_has_no_errors() {
    require debs
    local out rc=0
    out=$(cd "$W/deb" && lintian --fail-on error --display-info *.changes 2>&1) || rc=$?
    grep -E '^[EWIP]: ' <<<"$out" | sed 's/^/    lintian: /' || true
    [ "$rc" = 0 ] || fail "lintian found errors"
    measure "lintian: $(grep -c '^E: ' <<<"$out" || true) errors, $(grep -c '^W: ' <<<"$out" || true) warnings"
}

vmcase_03_package_contents_and_dependencies() {
    require debs
    local deb=$W/deb p bad list
    # root:root everywhere; trust files and their directories writable by root only
    for p in "$deb"/*.deb; do
        bad=$(dpkg-deb -c "$p" | awk '$2 != "root/root" || $1 ~ /^[^l]....w|^[^l].......w/')
        [ -z "$bad" ] || fail "$(basename "$p"): not root-owned or writable by others: $bad"
    done
    list=$(dpkg-deb -c "$deb"/tpmlicd_*.deb)
    grep -q '^drwxr-xr-x root/root .* ./etc/tpmlic/$' <<<"$list" || fail "/etc/tpmlic not 0755"
    grep -q '^drwxr-xr-x root/root .* ./etc/tpmlic/ek-ca.d/$' <<<"$list" || fail "/etc/tpmlic/ek-ca.d not 0755"
    grep -q '^-rw-r--r-- root/root .* ./etc/tpmlic/tpmlicd.conf$' <<<"$list" || fail "tpmlicd.conf not 0644"
    assert_eq "/etc/tpmlic/tpmlicd.conf" "$(dpkg-deb -I "$deb"/tpmlicd_*.deb conffiles)" "conffiles"
    # each unit's Documentation= and ExecStart= name files of its own package
    local pkg unit x f
    for x in tpmlicd:tpmlicd.service tpmlic-server:tpmlic-server.service; do
        pkg=${x%%:*} unit=${x#*:}
        rm -rf "$W/unpack" && mkdir "$W/unpack" && dpkg-deb -x "$deb/${pkg}_"*.deb "$W/unpack"
        for f in $(sed -n 's|^Documentation=.*file://\([^ ]*\).*|\1|p; s|^ExecStart=\([^ ]*\).*|\1|p' \
            "$W/unpack/lib/systemd/system/$unit"); do
            [ -e "$W/unpack$f" ] || fail "$unit names $f, which package $pkg does not hold"
        done
    done
    rm -rf "$W/unpack"
    # the dependencies: shlibs plus the dlopen'ed TCTI, and together with their
    # own dependencies every package of the run-time list
    local depends closure missing=""
    depends=$(dpkg-deb -f "$deb"/tpmlicd_*.deb Depends)
    assert_contains "$depends" "libtss2-tcti-device0" "Depends of tpmlicd"
    closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances $(sed 's/([^)]*)//g; s/|[^,]*//g; s/,/ /g' <<<"$depends") \
        $(dpkg-deb -f "$deb"/libtpmlic0_*.deb Depends | sed 's/([^)]*)//g; s/,/ /g') 2>/dev/null |
        grep -v '^ ' | sort -u)
    for p in $(sed 's/#.*//' "$SRC/packaging/debian-runtime-packages.txt"); do
        grep -qx "$p" <<<"$closure" || missing="$missing $p"
    done
    [ -z "$missing" ] || fail "run-time packages the Depends of tpmlicd and libtpmlic0 do not pull in:$missing"
    measure "tpmlicd Depends: $depends"
    for p in "$deb"/*.deb; do
        case $p in *-dbgsym_*) continue ;; esac
        measure "package $(dpkg-deb -f "$p" Package): $(stat -c %s "$p") bytes, installed $(dpkg-deb -f "$p" Installed-Size) KiB"
    done
}

# ---- the image -------------------------------------------------------------------

vmcase_04_image_with_the_packages() {
    require debs
    local t0=$SECONDS base
    base=$(base_tar) || fail "no base image"
    measure "base image: $(du -h "$base" | cut -f1) (cache $(dirname "$base"); $((SECONDS - t0)) s)"
    t0=$SECONDS
    mkdir "$W/root"
    tar -C "$W/root" -xf "$base"
    # the packages, as an image build installs them: dpkg in the image's
    # chroot, everything they need already in the base, nothing downloaded
    mkdir -p "$W/root/tmp/debs"
    cp "$W/deb"/tpmlicd_*.deb "$W/deb"/libtpmlic0_*.deb "$W/root/tmp/debs/"
    chroot "$W/root" sh -c 'dpkg -i /tmp/debs/*.deb' >"$W/dpkg.log" 2>&1 ||
        { cat "$W/dpkg.log" >&2; fail "dpkg -i in the image failed"; }
    rm -rf "$W/root/tmp/debs"
    assert_eq "enabled enabled" "$(chroot "$W/root" systemctl is-enabled tpmlicd.service tpmlicd.socket | paste -sd' ')" \
        "units enabled by the package"
    grep -q '^tpmlic:' "$W/root/etc/passwd" || fail "user tpmlic not created by the package"
    # the vendor's public key, made with the packaged tpmlic-vendor
    vendor keygen --private "$W/vendor.key" --public "$W/vendor.pub" >/dev/null
    install -m 0644 -o root -g root "$W/vendor.pub" "$W/root/etc/tpmlic/vendor.pub"
    # the test's command channel (not part of the product)
    install -m 0755 "$VM_DIR/guest/vmtest-agent" "$W/root/usr/local/sbin/vmtest-agent"
    install -m 0644 "$VM_DIR/guest/vmtest-agent.service" "$W/root/etc/systemd/system/"
    chroot "$W/root" systemctl enable vmtest-agent.service >/dev/null 2>&1
    cp "$(ls "$W"/root/boot/vmlinuz-* | head -n 1)" "$W/vmlinuz"
    cp "$(ls "$W"/root/boot/initrd.img-* | head -n 1)" "$W/initrd.img"
    mkfs.ext4 -q -F -L root -d "$W/root" "$W/base.raw" 2G
    rm -rf "$W/root"
    qemu-img create -q -f qcow2 -b "$W/base.raw" -F raw "$W/a.qcow2"
    vtpm_new A
    measure "image assembly (extract, dpkg -i, mkfs): $((SECONDS - t0)) s"
    state_set image 1
}

# ---- appliance A -----------------------------------------------------------------

vmcase_10_agent_ready_under_systemd_as_its_user() {
    require image
    vm_start a "$W/a.qcow2" A "$MAC_A" "$UUID_A"
    vm_wait
    state_set up_a 1
    assert_eq active "$(g systemctl is-active tpmlicd.service)" "tpmlicd.service"
    local pid user
    pid=$(g systemctl show -p MainPID --value tpmlicd.service)
    user=$(g ps -o user= -p "$pid")
    assert_eq tpmlic "$user" "the agent's user"
    # real, effective, saved and file-system uid: all the user's
    local uid
    uid=$(g id -u tpmlic)
    assert_eq "$uid $uid $uid $uid" "$(g "awk '/^Uid:/ {print \$2, \$3, \$4, \$5}' /proc/$pid/status")" "uids of the agent"
    local journal
    journal=$(g journalctl -b -u tpmlicd.service -o short-monotonic --no-pager)
    assert_contains "$journal" "serving on the socket passed by systemd"
    assert_contains "$journal" "running as user tpmlic"
    assert_contains "$journal" "ready on /run/tpmlic/tpmlicd.sock"
    # start to ready: from systemd starting the unit to the agent's READY=1
    # (systemd logs "Started" when it arrives), and the TPM commands it took
    local t_start t_ready cmds
    t_start=$(sed -n 's/^\[ *\([0-9.]*\)\].*Starting tpmlicd.service.*/\1/p' <<<"$journal" | head -n 1)
    t_ready=$(sed -n 's/^\[ *\([0-9.]*\)\].*Started tpmlicd.service.*/\1/p' <<<"$journal" | head -n 1)
    cmds=$(sed -n 's/.*start-up took \([0-9]*\) TPM commands.*/\1/p' <<<"$journal" | head -n 1)
    [ -n "$t_start" ] && [ -n "$t_ready" ] && [ -n "$cmds" ] || fail "start or ready not in the journal: $journal"
    measure "agent start to ready under systemd in the VM (TCG): $(awk -v a="$t_start" -v b="$t_ready" 'BEGIN {printf "%.2f", b - a}') s, $cmds TPM commands (first start: the NV indices defined)"
    assert_eq "srw-rw---- root tpmlic" "$(g stat -c "'%A %U %G'" /run/tpmlic/tpmlicd.sock)" "the socket"
}

vmcase_11_unit_exactly_as_packaged() {
    require up_a
    assert_eq "" "$(g dpkg --verify tpmlicd)" "dpkg --verify tpmlicd (files changed since installation)"
    assert_eq "" "$(g systemctl show -p DropInPaths --value tpmlicd.service tpmlicd.socket | tr -d '\n')" "drop-ins"
    assert_eq /lib/systemd/system/tpmlicd.service "$(g systemctl show -p FragmentPath --value tpmlicd.service)"
    assert_eq "" "$(g systemd-delta --no-pager --type=overridden,extended 2>/dev/null | grep tpmlicd || true)" "systemd-delta"
    local sec
    sec=$(g systemd-analyze security tpmlicd.service 2>&1 | sed -n 's/.*Overall exposure level for tpmlicd.service: \([0-9.]*\).*/\1/p')
    [ -n "$sec" ] || fail "systemd-analyze security gave no exposure"
    measure "systemd-analyze security tpmlicd.service (running, in the VM): $sec"
    awk -v e="$sec" 'BEGIN { exit !(e <= 2.3) }' || fail "exposure $sec"
}

vmcase_12_permission_problem_is_named() {
    require up_a
    local out
    out=$(g "setpriv --reuid=nobody --regid=nogroup --clear-groups tpmlicd --config /dev/null --tpm-info 2>&1; echo rc=\$?")
    assert_contains "$out" "cannot open the TPM device /dev/tpmrm0 (crw-rw---- tss:tss): permission denied for uid 65534"
    assert_contains "$out" "SupplementaryGroups=tss"
    assert_contains "$out" "rc=1"
}

vmcase_13_offline_activation_signed_on_the_host() {
    require up_a
    g "tpmlicctl offline request $LICENSE --username 'VM Test' --company 'Example Pty' --out /root/activation.txt" >/dev/null
    g cat /root/activation.txt >"$W/activation.txt"
    vendor sign-activation --key "$W/vendor.key" --in "$W/activation.txt" --license "$LICENSE" \
        --product speech --customer-id 4949 --type subscription \
        --expiry "$(date -u -d '+1 year' +%Y-%m-%dT%H:%M:%SZ)" --features standard,enhanced \
        --secs-allocated $SECS_GRANTED --tick-secs 60 >"$W/license.jws"
    # kept on the appliance's disk, as an operator would
    g_put "$W/license.jws" /root/license.jws 0600
    g tpmlicctl offline apply "$LICENSE" /root/license.jws >/dev/null
    local st
    st=$(status_json)
    assert_eq true "$(jq -r .valid <<<"$st")" "valid after apply: $st"
    assert_eq $SECS_GRANTED "$(jq -r .secs_remaining <<<"$st")" "seconds after apply"
    state_set computer_id_a "$(jq -r .computer_id <<<"$st")"
    g tpmlicctl check --feature enhanced >/dev/null
    # the disk as it is now, before any usage: qemu's external snapshot
    # freezes a.qcow2 and writes on in a-after.qcow2
    g sync
    vm_hmp snapshot_blkdev drive0 "$W/a-after.qcow2" qcow2 >/dev/null
    [ -f "$W/a-after.qcow2" ] || fail "no disk snapshot"
    state_set licensed_a 1
}

vmcase_14_usage_reserve_and_commit() {
    require licensed_a
    local lease
    lease=$(g tpmlicctl --json usage reserve 600 --feature standard | jq -r .lease)
    [ -n "$lease" ] && [ "$lease" != null ] || fail "no lease"
    g tpmlicctl usage commit "$lease" 600 >/dev/null
    local left
    left=$(status_json | jq -r .secs_remaining)
    assert_eq $((SECS_GRANTED - 600)) "$left" "seconds left after 600 used"
    state_set secs_after_usage "$left"
}

vmcase_15_reboot_keeps_id_license_and_seconds() {
    require secs_after_usage
    vm_reboot
    assert_eq active "$(g systemctl is-active tpmlicd.service)" "tpmlicd after the reboot"
    local st journal
    st=$(status_json)
    assert_eq "$(state_get computer_id_a)" "$(jq -r .computer_id <<<"$st")" "computer ID after the reboot"
    assert_eq true "$(jq -r .valid <<<"$st")" "license after the reboot: $st"
    assert_eq "$(state_get secs_after_usage)" "$(jq -r .secs_remaining <<<"$st")" "seconds left after the reboot"
    journal=$(g journalctl -b -u tpmlicd.service -o short-monotonic --no-pager)
    assert_contains "$journal" "loaded from the TPM"
    local t_start t_ready
    t_start=$(sed -n 's/^\[ *\([0-9.]*\)\].*Starting tpmlicd.service.*/\1/p' <<<"$journal" | head -n 1)
    t_ready=$(sed -n 's/^\[ *\([0-9.]*\)\].*Started tpmlicd.service.*/\1/p' <<<"$journal" | head -n 1)
    measure "agent start to ready after a reboot, license loaded from the TPM: $(awk -v a="$t_start" -v b="$t_ready" 'BEGIN {printf "%.2f", b - a}') s, $(sed -n 's/.*start-up took \([0-9]*\) TPM commands.*/\1/p' <<<"$journal" | head -n 1) TPM commands"
}

vmcase_16_start_limit_ends_the_restart_loop() {
    require up_a
    # a start that cannot succeed (the vendor key gone): retried every
    # RestartSec, then given up for good, with the reason in the journal
    g "mv /etc/tpmlic/vendor.pub /root/vendor.pub; systemctl reset-failed tpmlicd.service;
       date +%s >/run/limit-t0; systemctl restart tpmlicd.service" >/dev/null 2>&1 || true
    local t0=$SECONDS state=""
    while [ $((SECONDS - t0)) -lt 150 ]; do
        state=$(g systemctl show -p ActiveState,SubState --value tpmlicd.service | paste -sd/)
        [ "$state" = failed/failed ] && break
        sleep 2
    done
    local took=$((SECONDS - t0)) journal
    # still failed a while later: nothing restarts it any more
    sleep 8
    assert_eq failed/failed "$(g systemctl show -p ActiveState,SubState --value tpmlicd.service | paste -sd/)" \
        "tpmlicd.service after the start limit (was $state after ${took}s)"
    journal=$(g "journalctl -u tpmlicd.service --no-pager --since @\$(cat /run/limit-t0)")
    g "mv /root/vendor.pub /etc/tpmlic/vendor.pub; systemctl reset-failed tpmlicd.service; systemctl start tpmlicd.service"
    assert_contains "$journal" "cannot read the vendor public key /etc/tpmlic/vendor.pub"
    assert_contains "$journal" "Start request repeated too quickly"
    assert_eq 5 "$(grep -c 'cannot read the vendor public key' <<<"$journal")" "failed starts (StartLimitBurst)"
    measure "restart loop ended by the start limit after ${took} s (5 failed starts, RestartSec 5 s)"
    assert_eq active "$(g systemctl is-active tpmlicd.service)" "tpmlicd once the key is back"
}

vmcase_19_appliance_a_powers_off() {
    require up_a
    vm_poweroff
    state_set a_off 1
}

# ---- a restored disk snapshot on the same vTPM ---------------------------------

vmcase_20_disk_snapshot_gives_no_seconds_back() {
    require a_off licensed_a secs_after_usage
    qemu-img create -q -f qcow2 -b "$W/a.qcow2" -F qcow2 "$W/snap.qcow2"
    vm_start snap "$W/snap.qcow2" A "$MAC_A" "$UUID_A"
    vm_wait
    local st
    st=$(status_json)
    assert_eq "$(state_get computer_id_a)" "$(jq -r .computer_id <<<"$st")" "computer ID"
    assert_eq true "$(jq -r .valid <<<"$st")" "license on the restored disk: $st"
    # the disk is from before the 600 s were used; the TPM counter is not
    assert_eq "$(state_get secs_after_usage)" "$(jq -r .secs_remaining <<<"$st")" "seconds left"
    vm_poweroff
}

# ---- a clone: copied disk, fresh vTPM, new MAC and SMBIOS UUID -----------------

vmcase_30_clone_is_refused_naming_what_changed() {
    require a_off licensed_a
    qemu-img create -q -f qcow2 -b "$W/a-after.qcow2" -F qcow2 "$W/clone.qcow2"
    vtpm_new B
    vm_start clone "$W/clone.qcow2" B "$MAC_CLONE" "$UUID_CLONE"
    vm_wait
    state_set up_clone 1
    local st out rc=0
    st=$(status_json)
    assert_eq false "$(jq -r .licensed <<<"$st")" "a fresh vTPM holds no license: $st"
    [ "$(jq -r .computer_id <<<"$st")" != "$(state_get computer_id_a)" ] || fail "the clone has A's computer ID"
    # the license certificate came along on the copied disk
    out=$(g "tpmlicctl offline apply $LICENSE /root/license.jws 2>&1") || rc=$?
    assert_eq 1 "$rc" "exit status of apply on the clone"
    assert_contains "$out" "certificate for another computer ($(state_get computer_id_a))"
    local c
    for c in ek dmi nic; do
        grep -qi "$c changed" <<<"$out" || fail "the refusal does not say that $c changed: $out"
    done
    note "refused: $out"
}

# ---- online licensing through the hardened unit (the clone is a new appliance) --

# online_server: tpmlic-server on the host's loopback with a TLS certificate
# for licensing.test and localhost, and license ONLINE_LICENSE; the guest
# reaches it at 10.0.2.2 (qemu's user network)
online_server() {
    local d=$W/srv
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -keyout "$d/ca.key" -out "$d/ca.pem" -subj "/CN=tpmlic vm test CA" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/tls.key" \
        -out "$d/tls.csr" -subj "/CN=licensing.test" 2>/dev/null
    printf 'subjectAltName=DNS:licensing.test,DNS:localhost\n' >"$d/ext"
    openssl x509 -req -in "$d/tls.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
        -extfile "$d/ext" -out "$d/tls.crt" 2>/dev/null
    server license create --db "$d/licenses.db" --code "$ONLINE_LICENSE" --product speech \
        --customer-id 4949 --type consumption --expiry "$(date -u -d '+1 year' +%Y-%m-%dT%H:%M:%SZ)" \
        --features standard --secs-allocated 36000 --cache-secs 3600 >/dev/null
    # the program itself in the background (not the wrapper function), so that
    # stop_all stops it
    "$W/host/usr/bin/tpmlic-server" serve --db "$d/licenses.db" --key "$W/vendor.key" --listen 127.0.0.1:0 \
        --tls-cert "$d/tls.crt" --tls-key "$d/tls.key" --port-file "$d/port" >"$d/server.log" 2>&1 &
    track $!
    for _ in $(seq 1 100); do [ -s "$d/port" ] && break; sleep 0.05; done
    [ -s "$d/port" ] || fail "tpmlic-server did not start: $(cat "$d/server.log")"
}

# guest_server_config URL: the guest's tpmlicd.conf names the server and its CA
guest_server_config() {
    g "printf '[agent]\nserver = %s\nserver_ca = /etc/tpmlic/server-ca.pem\n' '$1' >/etc/tpmlic/tpmlicd.conf"
}

# validations: how many validations the server answered
validations() {
    grep -c '/v1/validate' "$W/srv/server.log" || true
}

vmcase_31_online_activation_by_host_name() {
    require up_clone
    online_server
    g_put "$W/srv/ca.pem" /etc/tpmlic/server-ca.pem 0644
    g "echo '10.0.2.2 licensing.test' >>/etc/hosts"
    guest_server_config "https://licensing.test:$(cat "$W/srv/port")"
    g systemctl restart tpmlicd.service
    g "tpmlicctl activate $ONLINE_LICENSE --username 'VM Test'" >/dev/null
    local st
    st=$(status_json)
    assert_eq true "$(jq -r .valid <<<"$st")" "valid after online activation: $st"
    assert_eq false "$(jq -r .offline_mode <<<"$st")" "offline mode"
    grep -q '/v1/activate.* ok' "$W/srv/server.log" || fail "the server saw no activation: $(cat "$W/srv/server.log")"
    state_set online 1
}

vmcase_32_online_validation_through_a_proxy_across_restarts() {
    require online
    command -v tinyproxy >/dev/null || fail "tinyproxy is not installed (package tinyproxy-bin)"
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    printf 'Port %s\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nLogLevel Connect\n' "$port" >"$W/tinyproxy.conf"
    tinyproxy -d -c "$W/tinyproxy.conf" >"$W/tinyproxy.log" 2>&1 &
    track $!
    # 'localhost' is the host only through the proxy: a validation that
    # succeeds went through it
    guest_server_config "https://localhost:$(cat "$W/srv/port")"
    g tpmlicctl proxy set 10.0.2.2 "$port" >/dev/null
    local i before
    for i in 1 2; do
        # the proxy settings live in the state directory and must be readable
        # by the agent after every restart (it runs as tpmlic by then)
        before=$(validations)
        g systemctl restart tpmlicd.service
        for _ in $(seq 1 60); do
            [ "$(validations)" -gt "$before" ] && break
            sleep 1
        done
        [ "$(validations)" -gt "$before" ] || fail "no validation through the proxy after restart $i: $(g journalctl -b -u tpmlicd -n 20 --no-pager)"
        assert_eq true "$(status_json | jq -r .valid)" "valid after restart $i"
    done
    grep -q "CONNECT.*localhost:$(cat "$W/srv/port")" "$W/tinyproxy.log" ||
        fail "the proxy saw no CONNECT: $(tail -n 5 "$W/tinyproxy.log")"
    assert_eq "tpmlic tpmlic" "$(g stat -c "'%U %G'" /var/lib/tpmlic/network.json)" "owner of the proxy settings"
    vm_poweroff
}
