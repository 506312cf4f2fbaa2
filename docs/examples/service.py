#!/usr/bin/env python3
"""A service that bills by time, in Python with only the standard library
(docs/integration.md).

    service.py MAX_SECONDS USED_SECONDS [FEATURE]

Checks the license for FEATURE (default "standard") before it works, reserves
MAX_SECONDS usage seconds, "works", and commits what the work used
(USED_SECONDS stands for what a real service would measure). The socket comes
from TPMLIC_SOCKET, else /run/tpmlic/tpmlicd.sock.
"""
import http.client
import json
import os
import socket
import sys


class TpmlicConnection(http.client.HTTPConnection):
    """HTTP/1.1 to tpmlicd over its UNIX socket; kept alive between calls."""

    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Refused(Exception):
    pass


def call(conn, method, path, body=None):
    """One request; the decoded answer, or Refused with the agent's message."""
    data = json.dumps(body) if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    # Sent again once on a new connection when the agent restarted or closed
    # the kept-alive one (after 30 s idle): always if it was not sent, and
    # only for requests that change nothing if the answer was lost after
    # sending - a reservation or a commit is never sent twice.
    repeatable = method == "GET" or path == "/v1/check"
    for attempt in (1, 2):
        try:
            conn.request(method, path, body=data, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            conn.close()
            if attempt == 2:
                raise
            continue
        try:
            resp = conn.getresponse()
        except (ConnectionError, http.client.RemoteDisconnected):
            conn.close()
            if attempt == 2 or not repeatable:
                raise
            continue
        break
    answer = json.loads(resp.read() or b"{}")
    if resp.status != 200:
        raise Refused(answer.get("error", "HTTP %d" % resp.status))
    return answer


def main():
    if len(sys.argv) < 3:
        print("usage: service.py MAX_SECONDS USED_SECONDS [FEATURE]", file=sys.stderr)
        return 2
    max_secs, used = int(sys.argv[1]), int(sys.argv[2])
    feature = sys.argv[3] if len(sys.argv) > 3 else "standard"
    conn = TpmlicConnection(os.environ.get("TPMLIC_SOCKET") or "/run/tpmlic/tpmlicd.sock")
    try:
        # 1. May this work be done at all?
        call(conn, "POST", "/v1/check", {"feature": feature})
        print("allowed: feature %s" % feature)
        # 2. Take the seconds the work may need. The agent may grant fewer.
        lease = call(conn, "POST", "/v1/usage/reserve", {"seconds": max_secs, "feature": feature})
        print("reserved %d s (lease %s)" % (lease["seconds"], lease["lease"]))
        # 3. The work itself, within what was granted.
        used = min(used, lease["seconds"])
        # 4. Charge what was used; the rest goes back.
        done = call(conn, "POST", "/v1/usage/commit", {"lease": lease["lease"], "used": used})
        print("charged %d s, returned %d s" % (done["charged"], done["returned"]))
    except Refused as e:
        print("refused: %s" % e, file=sys.stderr)
        return 1
    except OSError as e:
        print("cannot reach tpmlicd: %s" % e, file=sys.stderr)
        return 1
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
