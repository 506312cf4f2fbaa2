#!/usr/bin/env python3
"""The host side of the appliance test's channels to a running guest.

    hostctl.py run SOCKET [--timeout S]    runs standard input as a bash script
                                           in the guest as root; prints its
                                           output, exits with its status
    hostctl.py wait SOCKET [--timeout S]   waits until the guest answers
    hostctl.py hmp SOCKET COMMAND...       one qemu monitor (HMP) command

SOCKET for run and wait is qemu's chardev socket of the virtio serial port
org.tpmlic.ctl, whose guest side is tests/vm/guest/vmtest-agent: requests
"ID BASE64-SCRIPT", answers "ID STATUS BASE64-OUTPUT", a line each. Exit
status 124 when the guest does not answer in time.
"""
import base64
import os
import socket
import sys
import time


def connect(path, deadline):
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def request(path, script, timeout):
    """Sends one script; returns (status, output) or None on timeout."""
    deadline = time.monotonic() + timeout
    ident = "%d-%d" % (os.getpid(), time.monotonic_ns())
    try:
        s = connect(path, deadline)
    except OSError:
        return None
    with s:
        s.sendall(("%s %s\n" % (ident, base64.b64encode(script).decode())).encode())
        buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                return None
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                parts = line.decode(errors="replace").split(" ", 2)
                if len(parts) >= 2 and parts[0] == ident:
                    out = base64.b64decode(parts[2]) if len(parts) == 3 else b""
                    return int(parts[1]), out
                # an answer to an earlier, abandoned request: ignored


def hmp(path, command):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(30)

    def until_prompt():
        buf = b""
        while not buf.endswith(b"(qemu) "):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf

    until_prompt()
    s.sendall((command + "\n").encode())
    out = until_prompt().decode(errors="replace")
    s.close()
    # the echo of the command and the prompt are not the answer
    lines = [l for l in out.replace("\r", "").split("\n") if l and not l.startswith("(qemu)")]
    lines = [l for l in lines if command not in l]
    return "\n".join(lines)


def main():
    args = sys.argv[1:]
    timeout = 60.0
    if "--timeout" in args:
        i = args.index("--timeout")
        timeout = float(args[i + 1])
        del args[i : i + 2]
    if len(args) >= 2 and args[0] == "run":
        r = request(args[1], sys.stdin.buffer.read(), timeout)
        if r is None:
            print("hostctl: the guest did not answer within %gs" % timeout, file=sys.stderr)
            sys.exit(124)
        sys.stdout.buffer.write(r[1])
        sys.exit(r[0])
    if len(args) == 2 and args[0] == "wait":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = request(args[1], b"echo ready", min(3.0, max(0.5, deadline - time.monotonic())))
            if r is not None and r[1].strip() == b"ready":
                sys.exit(0)
            time.sleep(0.5)
        print("hostctl: the guest did not come up within %gs" % timeout, file=sys.stderr)
        sys.exit(124)
    if len(args) >= 3 and args[0] == "hmp":
        out = hmp(args[1], " ".join(args[2:]))
        if out:
            print(out)
        sys.exit(0)
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
