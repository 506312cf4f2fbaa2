# Helpers of the appliance boot test (tests/vm/run): the case runner, state
# shared between cases, the base image cache, vTPMs, and qemu guests driven
# through the command channel (hostctl.py <-> guest/vmtest-agent).
# Everything lives in $W; every process started here is recorded in
# $W/pids and stopped at the end.

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$VM_DIR/../.." && pwd)
HOSTCTL=$VM_DIR/hostctl.py
SWTPM_CTL=$SRC/swtpm-scripts/swtpm-ctl
export TPMLIC_TEST_CA=${TPMLIC_TEST_CA:-/tmp/tpmlic-test-ca-$(id -u)}

# ---- messages and state ------------------------------------------------------

fail() {
    echo "    FAIL: $*" >&2
    return 1
}

note() {
    echo "    $*"
}

assert_eq() {
    [ "$1" = "$2" ] || fail "${3:-value}: expected '$1', got '$2'"
}

assert_contains() {
    case $1 in *"$2"*) return 0 ;; esac
    fail "${3:-output} does not contain '$2': $1"
}

# state_set KEY VALUE / state_get KEY: values that cases hand to later cases
state_set() {
    mkdir -p "$W/state"
    printf '%s' "$2" >"$W/state/$1"
}

state_get() {
    cat "$W/state/$1" 2>/dev/null
}

# require KEY...: fails unless earlier cases set every KEY
require() {
    local k
    for k in "$@"; do
        [ -e "$W/state/$k" ] && continue
        : >"$W/unmet"
        fail "needs '$k', which an earlier case did not provide"
    done
}

# measure TEXT: a line for the figures printed at the end
measure() {
    echo "$*" >>"$W/measurements"
    note "measured: $*"
}

# ---- the case runner -----------------------------------------------------------

# run_cases: every function vmcase_* in name order, each in a subshell with
# set -e, results in the format of tests/lib/testlib.sh; the last line is
# "N passed, N failed"
run_cases() {
    local cases c rc passed=0 failed=0 failed_names=() t0
    cases=$(declare -F | awk '{print $3}' | grep '^vmcase_' | grep -E -- "${VM_ONLY:-.}" | sort)
    echo "[==========] Running $(echo "$cases" | wc -w) test(s)."
    for c in $cases; do
        echo "[ RUN      ] $c"
        rm -f "$W/unmet"
        t0=$(date +%s)
        ( set -e; "$c" )
        rc=$?
        if [ $rc -eq 0 ]; then
            echo "[       OK ] $c ($(($(date +%s) - t0)) s)"
            passed=$((passed + 1))
        else
            echo "[  FAILED  ] $c ($(($(date +%s) - t0)) s)"
            failed=$((failed + 1))
            failed_names+=("$c")
            [ -e "$W/unmet" ] || vm_console_tail
        fi
    done
    echo "[==========] $((passed + failed)) test(s) run."
    echo "[  PASSED  ] $passed test(s)."
    if [ $failed -gt 0 ]; then
        echo "[  FAILED  ] $failed test(s), listed below:"
        for c in "${failed_names[@]}"; do echo "[  FAILED  ] $c"; done
    fi
    if [ -s "$W/measurements" ]; then
        echo
        echo "measurements:"
        sed 's/^/  /' "$W/measurements"
    fi
    echo
    echo "(took $((SECONDS - ${VM_T0:-0})) s)"
    echo "$passed passed, $failed failed"
    [ $failed -eq 0 ]
}

# ---- processes -----------------------------------------------------------------

track() {
    echo "$1" >>"$W/pids"
}

stop_all() {
    local p
    [ -f "$W/pids" ] || return 0
    for p in $(tac "$W/pids"); do
        kill -TERM "$p" 2>/dev/null
    done
    sleep 0.5
    for p in $(cat "$W/pids"); do
        kill -KILL "$p" 2>/dev/null
    done
    rm -f "$W/pids"
}

# ---- the base image ------------------------------------------------------------

# base_tar: the cached base root file system (built by tests/vm/mkbase when
# missing); prints its path. The key is a hash of mkbase and of the package
# lists it reads, so a changed list builds a new base.
base_tar() {
    local cache=${TPMLIC_VM_CACHE:-/var/cache/tpmlic-vm} key dir
    key=$(cat "$VM_DIR/mkbase" "$VM_DIR/base-packages.txt" "$SRC/packaging/debian-runtime-packages.txt" |
        sha256sum | cut -c1-16)
    dir=$cache/$key
    mkdir -p "$dir"
    (
        flock 9
        if [ ! -s "$dir/base.tar" ]; then
            echo "    building the base image (debootstrap, about 2 minutes) into $dir" >&2
            "$VM_DIR/mkbase" "$dir/base.tar" >"$dir/mkbase.log" 2>&1 ||
                { tail -n 30 "$dir/mkbase.log" >&2; exit 1; }
        fi
    ) 9>"$dir/lock" || return 1
    echo "$dir/base.tar"
}

# ---- vTPMs ---------------------------------------------------------------------

# vtpm_new NAME: a freshly manufactured vTPM (EK certificates) in $W/tpm-NAME
vtpm_new() {
    "$SWTPM_CTL" manufacture "$W/tpm-$1" --ca "$TPMLIC_TEST_CA" >"$W/tpm-$1.log" 2>&1 ||
        { cat "$W/tpm-$1.log" >&2; fail "cannot manufacture vTPM $1"; }
}

# vtpm_start NAME: swtpm for qemu on $W/tpm-NAME/qemu.ctrl (qemu drives it
# through that control channel; it exits when qemu closes it)
vtpm_start() {
    local d=$W/tpm-$1
    rm -f "$d/qemu.ctrl" "$d/qemu.pid"
    swtpm socket --tpm2 --tpmstate "dir=$d" --ctrl "type=unixio,path=$d/qemu.ctrl" \
        --pid "file=$d/qemu.pid" --log "file=$d/qemu.log,level=1" --daemon ||
        fail "swtpm for vTPM $1 did not start"
    for _ in $(seq 1 50); do
        [ -S "$d/qemu.ctrl" ] && [ -s "$d/qemu.pid" ] && break
        sleep 0.1
    done
    [ -S "$d/qemu.ctrl" ] || fail "swtpm for vTPM $1: no control socket"
    track "$(cat "$d/qemu.pid")"
}

# ---- guests --------------------------------------------------------------------

# vm_start NAME DISK TPM MAC UUID: boots the image on DISK (qcow2) with vTPM
# TPM, a virtio NIC with MAC on qemu's user network (the host's loopback is
# 10.0.2.2 from the guest) and the SMBIOS system UUID UUID. NAME becomes
# the current guest (what g talks to).
vm_start() {
    local name=$1 disk=$2 tpm=$3 mac=$4 uuid=$5
    vtpm_start "$tpm"
    rm -f "$W/$name.ctl" "$W/$name.mon" "$W/$name.pid"
    : >"$W/$name.console"
    qemu-system-x86_64 -machine q35,accel=tcg -smp "${VM_SMP:-2}" -m 1024 \
        -kernel "$W/vmlinuz" -initrd "$W/initrd.img" \
        -append "root=/dev/vda rw console=ttyS0 quiet systemd.show_status=1 panic=-1" \
        -drive "file=$disk,format=qcow2,if=virtio,cache=unsafe,id=drive0" \
        -nic "user,model=virtio-net-pci,mac=$mac" \
        -smbios "type=1,manufacturer=tpmlic test,product=appliance,uuid=$uuid" \
        -chardev "socket,id=chrtpm,path=$W/tpm-$tpm/qemu.ctrl" -tpmdev emulator,id=tpm0,chardev=chrtpm \
        -device tpm-crb,tpmdev=tpm0 \
        -device virtio-serial-pci -chardev "socket,id=ctl,path=$W/$name.ctl,server=on,wait=off" \
        -device virtserialport,chardev=ctl,name=org.tpmlic.ctl \
        -monitor "unix:$W/$name.mon,server=on,wait=off" \
        -serial "file:$W/$name.console" -display none -pidfile "$W/$name.pid" \
        >"$W/$name.qemu.log" 2>&1 &
    track $!
    echo "$name" >"$W/current"
    date +%s.%N >"$W/$name.started"
}

vm_current() {
    cat "$W/current"
}

# vm_wait [SECONDS]: until the guest answers and systemd finished booting
vm_wait() {
    local n
    n=$(vm_current)
    python3 "$HOSTCTL" wait "$W/$n.ctl" --timeout "${1:-180}" ||
        fail "guest $n did not come up: $(tail -n 5 "$W/$n.qemu.log")"
    g systemctl is-system-running --wait >/dev/null || true
    note "guest $n up after $(awk -v a="$(cat "$W/$n.started")" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"
}

# g CMD...: runs CMD (a shell command line) in the current guest as root;
# its output on standard output, its exit status
g() {
    printf '%s\n' "$*" | python3 "$HOSTCTL" run "$W/$(vm_current).ctl" --timeout "${G_TIMEOUT:-90}"
}

# g_put FILE PATH MODE: copies a host file into the guest
g_put() {
    g "base64 -d >'$2' <<'B64'
$(base64 -w76 "$1")
B64
chmod $3 '$2'"
}

# vm_boot_id: the guest's boot ID
vm_boot_id() {
    g cat /proc/sys/kernel/random/boot_id
}

# vm_reboot: reboots the guest (same qemu, same vTPM) and waits for it
vm_reboot() {
    local before after
    before=$(vm_boot_id)
    g "systemd-run --on-active=1 --timer-property=AccuracySec=100ms systemctl reboot" >/dev/null
    sleep 5
    python3 "$HOSTCTL" wait "$W/$(vm_current).ctl" --timeout 180 || fail "no answer after the reboot"
    for _ in $(seq 1 60); do
        after=$(vm_boot_id 2>/dev/null) || after=""
        [ -n "$after" ] && [ "$after" != "$before" ] && break
        sleep 1
    done
    [ -n "$after" ] && [ "$after" != "$before" ] || fail "the guest did not reboot"
    g systemctl is-system-running --wait >/dev/null || true
}

# vm_poweroff: shuts the guest down; qemu and its swtpm end
vm_poweroff() {
    local n pid
    n=$(vm_current)
    pid=$(cat "$W/$n.pid" 2>/dev/null) || return 0
    g "systemd-run --on-active=1 --timer-property=AccuracySec=100ms systemctl poweroff" >/dev/null || true
    for _ in $(seq 1 90); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        fail "guest $n did not power off"
    fi
    rm -f "$W/$n.pid"
}

# vm_hmp CMD: a qemu monitor command on the current guest
vm_hmp() {
    python3 "$HOSTCTL" hmp "$W/$(vm_current).mon" "$@"
}

# vm_console_tail: the end of the current guest's serial console
vm_console_tail() {
    local n
    n=$(cat "$W/current" 2>/dev/null) || return 0
    [ -s "$W/$n.console" ] || return 0
    echo "    --- last lines of the serial console of $n:"
    tail -n 15 "$W/$n.console" | sed 's/\x1b\[[0-9;]*m//g; s/^/    | /'
}
