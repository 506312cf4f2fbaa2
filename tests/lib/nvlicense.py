#!/usr/bin/env python3
"""The license record in force, from the agent's two license slots as root
can read them with tpm2_nvread (docs/agent.md, "What the TPM holds"): of
the intact records the one with the highest sequence number. A record of
the one-slot layout (version 1) counts as sequence number 0.

As a program: nvlicense.py SLOT-FILE... prints the certificate (nothing
when the record says "no license"), exits 1 when no file holds an intact
record. Missing files are skipped."""
import hashlib
import os
import sys

MAGIC = b"TLIC"


def record(b):
    """(seq, certificate bytes) of one slot's bytes, None when damaged."""
    if not b or len(b) < 8 or b[:4] != MAGIC:
        return None
    n = b[6] << 8 | b[7]
    if b[4] == 1:
        seq, data = 0, b[40:40 + n]
        ok = hashlib.sha256(data).digest() == b[8:40]
    elif b[4] == 2:
        seq, data = int.from_bytes(b[8:16], "big"), b[48:48 + n]
        ok = hashlib.sha256(b[:16] + data).digest() == b[16:48]
    else:
        return None
    return (seq, data) if ok and len(data) == n else None


def in_force(slots):
    """The certificate (b"" for "no license") of the record in force among
    the slots' bytes (None for a slot not read), or None when none is
    intact."""
    best = None
    for b in slots:
        r = record(b)
        if r and (best is None or r[0] > best[0]):
            best = r
    return best and best[1]


def main(paths):
    slots = [open(p, "rb").read() for p in paths if os.path.exists(p)]
    cert = in_force(slots)
    if cert is None:
        return 1
    sys.stdout.write(cert.decode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
