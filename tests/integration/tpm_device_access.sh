#!/bin/bash
# A TPM device node that exists but that the agent may not open is reported
# as a permission problem (node, owner, group, mode, the agent's ids, what to
# add), not as "no TPM". A device-like file stands in for /dev/tpmrm0; the
# agent runs as an unprivileged user through setpriv. Needs root.
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/agentlib.sh"

NOBODY=65534
[ "$(id -u)" = 0 ] || { echo "tpm_device_access.sh needs root (it runs the agent as another user)" >&2; exit 1; }

# as_nobody CMD...: CMD as uid/gid 65534 with no supplementary groups
as_nobody() {
    setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups -- "$@"
}

# a device-like node in $T owned by daemon (uid 1, gid 1) with MODE
node() {
    chmod 0755 "$T"
    : >"$T/tpmrm0"
    chown 1:1 "$T/tpmrm0"
    chmod "$1" "$T/tpmrm0"
}

test_owner_only_node_names_owner_mode_and_ids() {
    node 0600
    local out rc=0
    out=$(as_nobody "$TPMLICD" --config /dev/null --tpm-info --tcti "device:$T/tpmrm0" 2>&1) || rc=$?
    assert_eq 1 "$rc" "exit status"
    assert_contains "$out" "cannot open the TPM device $T/tpmrm0"
    assert_contains "$out" "(-rw------- daemon:daemon)"
    assert_contains "$out" "permission denied for uid $NOBODY, gid $NOBODY"
    assert_contains "$out" "only its owner may open it"
    case $out in *"no TPM at"* | *"IO failure"*) fail "still reported as a missing TPM: $out" ;; esac
}

test_group_node_says_which_group_to_add() {
    node 0660
    local out rc=0
    out=$(as_nobody "$TPMLICD" --config /dev/null --tpm-info --tcti "device:$T/tpmrm0" 2>&1) || rc=$?
    assert_eq 1 "$rc" "exit status"
    assert_contains "$out" "(-rw-rw---- daemon:daemon)"
    assert_contains "$out" "add group daemon (systemd: SupplementaryGroups=daemon, or membership of group daemon)"
}

test_member_of_the_group_gets_past_the_permission_check() {
    # with the group the node opens: whatever fails next is not permissions
    node 0660
    local out rc=0
    out=$(setpriv --reuid=$NOBODY --regid=$NOBODY --groups=1 -- \
        "$TPMLICD" --config /dev/null --tpm-info --tcti "device:$T/tpmrm0" 2>&1) || rc=$?
    [ "$rc" != 0 ] || fail "a plain file answered as a TPM"
    case $out in *"permission denied"* | *SupplementaryGroups*) fail "blamed permissions: $out" ;; esac
}

test_unsearchable_directory_is_named() {
    node 0666
    chmod 0700 "$T"
    local out rc=0
    out=$(as_nobody "$TPMLICD" --config /dev/null --tpm-info --tcti "device:$T/tpmrm0" 2>&1) || rc=$?
    chmod 0755 "$T"
    assert_eq 1 "$rc" "exit status"
    assert_contains "$out" "cannot reach the TPM device $T/tpmrm0: permission denied on a directory above it (uid $NOBODY, gid $NOBODY)"
}

test_missing_node_is_still_no_tpm() {
    chmod 0755 "$T"
    local out rc=0
    out=$(as_nobody "$TPMLICD" --config /dev/null --tpm-info --tcti "device:$T/absent" 2>&1) || rc=$?
    assert_eq 1 "$rc" "exit status"
    assert_contains "$out" "no TPM at 'device:$T/absent'"
}

test_agent_start_reports_it() {
    # the start-up path (not only --tpm-info) carries the reason to its one line
    node 0660
    vendor_keys
    chmod 0644 "$T/vendor.pub"
    local out rc=0
    out=$(as_nobody timeout 20 "$TPMLICD" --config /dev/null --tcti "device:$T/tpmrm0" \
        --socket "$T/a.sock" --state-dir "$T/state" --vendor-key "$T/vendor.pub" 2>&1) || rc=$?
    assert_eq 1 "$rc" "exit status"
    assert_contains "$out" "no usable TPM: cannot open the TPM device $T/tpmrm0 (-rw-rw---- daemon:daemon)"
    assert_contains "$out" "SupplementaryGroups=daemon"
}

run_tests
