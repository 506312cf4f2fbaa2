#!/usr/bin/env python3
"""A fault-injecting TLS reverse proxy in front of tpmlic-server, for tests.

It listens with TLS on 127.0.0.1 (port 0: the chosen port goes to
--port-file), presents a certificate of the test CA, and handles each
request according to the first word of the mode file, re-read for every
connection:

  pass      forward to the server and return its answer
  500       answer 500 without forwarding
  hang      read the request and never answer
  garbage   answer 200 with a body that is not JSON
  unsigned  answer 200 {"answer": "<not a signed JWS>"}
  badsig    forward, then change one character of the answer's signature
  replay    answer with the answer recorded for the previous request to the
            same path (its nonce is old), without forwarding
  drop      forward (the server acts on it), then close without answering
  refuse    close the connection before the TLS handshake
  hold      forward (the server acts on it), then keep the answer back while
            the mode file still says hold
  resign K=V ...  forward, then set the fields K to V in the payload of the
            answer's license certificate (V as JSON, else a string), and sign
            that certificate and the answer again with --vendor-key: a
            well-signed answer the server never gave

Mode files are one line: the mode and its arguments.

Each request is logged to --log as "MODE METHOD PATH". Standard library only,
and for resign the cryptography package.
"""
import base64
import argparse
import http.client
import http.server
import json
import os
import socketserver
import ssl
import sys
import threading
import time


def read_words(path):
    try:
        with open(path) as f:
            return f.read().split() or ["pass"]
    except OSError:
        return ["pass"]


def read_mode(path):
    return read_words(path)[0]


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def resign_jws(jws, key, change=None):
    """Changes the JWS payload with change(payload) and signs it again."""
    head, payload, _ = jws.split(".")
    if change:
        p = json.loads(b64d(payload))
        change(p)
        payload = b64e(json.dumps(p, separators=(",", ":")).encode())
    sig = key.sign(f"{head}.{payload}".encode())
    return f"{head}.{payload}.{b64e(sig)}"


def resign(data, key_path, assignments):
    from cryptography.hazmat.primitives import serialization

    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    fields = {}
    for a in assignments:
        k, v = a.split("=", 1)
        try:
            fields[k] = json.loads(v)
        except ValueError:
            fields[k] = v
    o = json.loads(data)

    def change_answer(p):
        if "license_certificate" in p:
            p["license_certificate"] = resign_jws(p["license_certificate"], key,
                                                  lambda c: c.update(fields))

    o["answer"] = resign_jws(o["answer"], key, change_answer)
    return json.dumps(o).encode()


class Proxy(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, args):
        self.args = args
        self.recorded = {}
        self.lock = threading.Lock()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(args.cert, args.key)
        self.upstream_ctx = ssl.create_default_context(cafile=args.ca)
        super().__init__(("127.0.0.1", 0), Handler)

    def verify_request(self, request, client_address):
        # "refuse": the connection is closed before any TLS
        return read_mode(self.args.mode_file) != "refuse" or self.log_mode("refuse", "-", "-")

    def log_mode(self, mode, method, path):
        with self.lock, open(self.args.log, "a") as f:
            f.write(f"{mode} {method} {path}\n")
        return False

    def finish_request(self, request, client_address):
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def forward(self, body):
        a = self.server.args
        host, port = a.upstream.rsplit(":", 1)
        c = http.client.HTTPSConnection(host, int(port), context=self.server.upstream_ctx,
                                        timeout=30)
        c.request(self.command, self.path, body,
                  {"Content-Type": self.headers.get("Content-Type", "application/json")})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def handle_any(self):
        mode = read_mode(self.server.args.mode_file)
        self.server.log_mode(mode, self.command, self.path)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        if mode == "500":
            return self.reply(500, '{"error": "injected server error", "code": 500}')
        if mode == "hang":
            time.sleep(3600)
            return
        if mode == "garbage":
            return self.reply(200, "<html>this is not the license server</html>")
        if mode == "unsigned":
            return self.reply(200, '{"answer": "eyJhbGciOiJub25lIn0.e30."}')
        if mode == "replay":
            with self.server.lock:
                old = self.server.recorded.get(self.path)
            if old is None:
                return self.reply(500, '{"error": "nothing recorded to replay", "code": 500}')
            return self.reply(old[0], old[1])
        status, data = self.forward(body)
        if mode == "hold":
            while read_mode(self.server.args.mode_file) == "hold":
                time.sleep(0.02)
        if mode == "resign":
            data = resign(data, self.server.args.vendor_key,
                          read_words(self.server.args.mode_file)[1:])
        if mode == "drop":
            self.close_connection = True
            return
        with self.server.lock:
            self.server.recorded[self.path] = (status, data)
        if mode == "badsig":
            try:
                o = json.loads(data)
                head, payload, sig = o["answer"].split(".")
                mid = len(sig) // 2
                sig = sig[:mid] + ("A" if sig[mid] != "A" else "B") + sig[mid + 1:]
                o["answer"] = ".".join((head, payload, sig))
                data = json.dumps(o).encode()
            except (ValueError, KeyError):
                pass
        return self.reply(status, data)

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True, help="CA the upstream server chains to")
    p.add_argument("--upstream", required=True, help="HOST:PORT of tpmlic-server")
    p.add_argument("--mode-file", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--vendor-key", help="the vendor's private key, for resign")
    args = p.parse_args()
    srv = Proxy(args)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
