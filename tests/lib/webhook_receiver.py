#!/usr/bin/env python3
"""A webhook receiver for tests: an HTTP(S) server on 127.0.0.1 that
records every POST (headers, body, whether its signature verifies) as one
JSON line, and answers each delivery (X-Tpmlic-Delivery) with the statuses
it is told, attempt after attempt (the last one repeats). The signature is checked independently of tpmlic-server's code:
X-Tpmlic-Signature: t=TIME,v1=HEX where HEX = HMAC-SHA256(secret, "TIME.BODY")
and the secret is the text of --secret-file (read at each request: the
secret is known only once the webhook is created).

  webhook_receiver.py --port-file F --log F [--secret-file F]
                      [--statuses 500,500,200] [--cert C --key K]
"""
import argparse
import hashlib
import hmac
import http.server
import json
import os
import ssl
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--secret-file")
    ap.add_argument("--statuses", default="200")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    statuses = [int(s) for s in args.statuses.split(",")]
    lock = threading.Lock()
    seen = {}  # delivery ID -> attempts seen

    def secret():
        if not args.secret_file or not os.path.exists(args.secret_file):
            return None
        with open(args.secret_file) as f:
            return f.read().strip()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            sig = self.headers.get("X-Tpmlic-Signature", "")
            parts = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
            key = secret()
            verified = False
            if key and "t" in parts and "v1" in parts:
                want = hmac.new(key.encode(), parts["t"].encode() + b"." + body,
                                hashlib.sha256).hexdigest()
                verified = hmac.compare_digest(want, parts["v1"])
            delivery = self.headers.get("X-Tpmlic-Delivery")
            with lock:
                k = seen.get(delivery, 0)
                status = statuses[min(k, len(statuses) - 1)]
                seen[delivery] = k + 1
                entry = {
                    "time": time.time(),
                    "path": self.path,
                    "event": self.headers.get("X-Tpmlic-Event"),
                    "delivery": delivery,
                    "content_type": self.headers.get("Content-Type"),
                    "signature_time": parts.get("t"),
                    "verified": verified,
                    "status": status,
                    "body": json.loads(body.decode()) if body else None,
                }
                with open(args.log, "a") as f:
                    f.write(json.dumps(entry) + "\n")
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
