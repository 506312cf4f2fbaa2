#!/bin/bash
# tpmlicd --print-computer-id against real swtpms: stable across TPM
# restart and power loss, different on another TPM (and only the EK digest
# differs), and a clear error without a TPM unless --allow-no-tpm.
. "$(dirname "$0")/../lib/testlib.sh"

TPMLICD=$B/tpmlicd

id_of() { "$TPMLICD" --config /dev/null --print-computer-id --tcti "$1"; }
digest_of() { # digest_of TCTI COMPONENT
    "$TPMLICD" --config /dev/null --print-computer-id --json --tcti "$1" |
        sed -n "s/^    \"$2\": \"\\([0-9a-f]*\\)\".*/\\1/p"
}

test_stable_across_restart_and_power_loss() {
    "$SWTPM_CTL" manufacture tpm >/dev/null
    tcti=$("$SWTPM_CTL" start tpm)
    id1=$(id_of "$tcti")
    [[ $id1 =~ ^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] ||
        fail "not a version-8 UUID: $id1"
    "$SWTPM_CTL" reboot tpm >/dev/null
    assert_eq "$id1" "$(id_of "$tcti")" "ID after TPM reboot"
    "$SWTPM_CTL" poweroff tpm
    "$SWTPM_CTL" start tpm >/dev/null
    assert_eq "$id1" "$(id_of "$tcti")" "ID after power loss"
    # the same TPM without its certificate: EK from CreatePrimary, same ID
    TPM2TOOLS_TCTI=$tcti tpm2_nvundefine -C p 0x01c00002 >/dev/null 2>&1
    TPM2TOOLS_TCTI=$tcti tpm2_evictcontrol -C o -c 0x81010001 >/dev/null 2>&1
    out=$("$TPMLICD" --config /dev/null --print-computer-id --explain --tcti "$tcti")
    assert_contains "$out" "source: CreatePrimary with EK template L-1"
    assert_eq "$id1" "$(id_of "$tcti")" "ID with the EK from CreatePrimary"
}

test_another_tpm_changes_only_the_ek() {
    "$SWTPM_CTL" manufacture a >/dev/null
    "$SWTPM_CTL" manufacture b >/dev/null
    ta=$("$SWTPM_CTL" start a)
    tb=$("$SWTPM_CTL" start b)
    [ "$(id_of "$ta")" != "$(id_of "$tb")" ] || fail "two TPMs gave one ID"
    [ "$(digest_of "$ta" ek)" != "$(digest_of "$tb" ek)" ] || fail "EK digests equal"
    assert_eq "$(digest_of "$ta" nic)" "$(digest_of "$tb" nic)" "NIC digest"
    out=$("$TPMLICD" --config /dev/null --print-computer-id --explain --tcti "$ta")
    assert_contains "$out" "source: EK certificate at NV 0x01c00002"
    assert_contains "$out" "computer ID: $(id_of "$ta")"
}

test_no_tpm_is_an_error_unless_allowed() {
    local out rc=0
    out=$("$TPMLICD" --config /dev/null --print-computer-id --tcti "swtpm:path=$T/none.sock" 2>&1) || rc=$?
    assert_eq 1 "$rc" "exit status without a TPM"
    assert_contains "$out" "no usable TPM: no TPM at 'swtpm:path=$T/none.sock'"
    assert_contains "$out" "--allow-no-tpm"
    out=$("$TPMLICD" --config /dev/null --print-computer-id --allow-no-tpm --tcti "swtpm:path=$T/none.sock")
    assert_contains "$out" "(no TPM: development only)"
    out=$("$TPMLICD" --config /dev/null --print-computer-id --allow-no-tpm --json --tcti "swtpm:path=$T/none.sock")
    assert_contains "$out" '"tpm": false'
    assert_contains "$out" '"ek": null'
}

run_tests
