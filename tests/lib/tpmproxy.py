#!/usr/bin/env python3
"""A fault-injecting proxy between a TPM client and swtpm, for tests.

It listens on the UNIX sockets PATH (TPM commands) and PATH.ctrl (swtpm's
control channel), so a client points its TCTI at swtpm:path=PATH, and
forwards to the swtpm at --upstream (its data socket; UPSTREAM.ctrl is its
control socket). Control messages pass untouched. Each TPM command is
forwarded according to the mode file, re-read for every command; a line
holds a mode and its arguments:

  pass                 forward
  hold-nvwrite INDEX [SKIP]
                       an NV_Write to INDEX (hex) waits, unforwarded, while
                       the mode file still says hold-nvwrite (after SKIP
                       such writes have passed); the other commands pass
  flip-nvread INDEX    flip one bit in the data of NV_Read answers for INDEX
  flip-clock           flip one bit in the clock of ReadClock answers
  drop-nvwrite N       forward the first N NV_Write commands since this mode
                       was set, then close the connection instead of
                       forwarding the next one and any command after it
                       (a power cut in the middle of a write); the
                       counter restarts when the mode file changes

Every command is logged to --log as "MODE CC [INDEX] RC". Standard library
only.
"""
import argparse
import os
import socket
import struct
import sys
import threading
import time

CC_NV_WRITE = 0x137
CC_NV_READ = 0x14E
CC_READ_CLOCK = 0x181
ST_SESSIONS = 0x8002


def read_mode(path):
    try:
        with open(path) as f:
            st = os.fstat(f.fileno())
            words = f.read().split()
            return (words or ["pass"]), st.st_mtime_ns
    except OSError:
        return ["pass"], 0


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def recv_frame(sock):
    head = recv_exact(sock, 10)
    if head is None:
        return None
    size = struct.unpack(">I", head[2:6])[0]
    if size < 10 or size > 1 << 20:
        return None
    rest = recv_exact(sock, size - 10)
    return None if rest is None else head + rest


class Proxy:
    def __init__(self, args):
        self.args = args
        # re-entrant: command() logs while it holds the lock
        self.lock = threading.RLock()
        self.writes = 0
        self.mode_stamp = None
        self.dead = False

    def log(self, line):
        with self.lock, open(self.args.log, "a") as f:
            f.write(line + "\n")

    def nv_index(self, cmd):
        # NV_Write / NV_Read: authHandle, nvIndex
        return struct.unpack(">I", cmd[14:18])[0] if len(cmd) >= 18 else None

    def mode(self):
        words, stamp = read_mode(self.args.mode_file)
        with self.lock:
            if stamp != self.mode_stamp:
                self.mode_stamp = stamp
                self.writes = 0
                self.dead = False
        return words

    def command(self, cmd):
        """Returns the answer to send back, or None to close the connection."""
        words = self.mode()
        cc = struct.unpack(">I", cmd[6:10])[0]
        index = self.nv_index(cmd) if cc in (CC_NV_WRITE, CC_NV_READ) else None
        m = words[0]
        if m == "drop-nvwrite":
            drop = None
            with self.lock:  # log() takes it too: log after
                if self.dead:
                    drop = f"{m} {cc:#x} dropped"
                elif cc == CC_NV_WRITE:
                    if self.writes >= int(words[1]):
                        self.dead = True
                        drop = f"{m} {cc:#x} {index:#x} dropped"
                    else:
                        self.writes += 1
            if drop:
                self.log(drop)
                return None
        if m == "hold-nvwrite" and cc == CC_NV_WRITE and index == int(words[1], 16):
            with self.lock:
                self.writes += 1
                skip = self.writes <= (int(words[2]) if len(words) > 2 else 0)
            if not skip:
                self.log(f"{m} {cc:#x} {index:#x} held")
                while self.mode()[0] == "hold-nvwrite":
                    time.sleep(0.02)
        answer = self.forward(cmd)
        if answer is None:
            return None
        rc = struct.unpack(">I", answer[6:10])[0]
        if rc == 0 and m == "flip-nvread" and cc == CC_NV_READ and index == int(words[1], 16):
            answer = self.flip_nvread(answer)
        if rc == 0 and m == "flip-clock" and cc == CC_READ_CLOCK:
            answer = self.flip_clock(answer)
        self.log(f"{m} {cc:#x} {'' if index is None else hex(index)} {rc:#x}")
        return answer

    def payload_start(self, answer):
        # after the header, an answer with sessions carries parameterSize
        tag = struct.unpack(">H", answer[0:2])[0]
        return 14 if tag == ST_SESSIONS else 10

    def flip_nvread(self, answer):
        # parameters: TPM2B_MAX_NV_BUFFER (size, data)
        p = self.payload_start(answer)
        size = struct.unpack(">H", answer[p:p + 2])[0]
        if size == 0:
            return answer
        b = bytearray(answer)
        b[p + 2 + size // 2] ^= 0x01
        return bytes(b)

    def flip_clock(self, answer):
        # TPMS_TIME_INFO: time (8), clockInfo.clock (8), ...
        p = self.payload_start(answer)
        b = bytearray(answer)
        b[p + 8 + 6] ^= 0x10
        return bytes(b)

    def forward(self, cmd):
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            up.connect(self.args.upstream)
            up.sendall(cmd)
            return recv_frame(up)
        except OSError:
            return None
        finally:
            up.close()

    def serve_data(self, conn):
        with conn:
            while True:
                cmd = recv_frame(conn)
                if cmd is None:
                    return
                answer = self.command(cmd)
                if answer is None:
                    return
                try:
                    conn.sendall(answer)
                except OSError:
                    return

    def serve_ctrl(self, conn):
        # swtpm's control channel: relay bytes both ways
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            up.connect(self.args.upstream + ".ctrl")
        except OSError:
            conn.close()
            return

        def pump(a, b):
            try:
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    b.sendall(d)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        t = threading.Thread(target=pump, args=(up, conn), daemon=True)
        t.start()
        pump(conn, up)
        t.join()
        up.close()
        conn.close()

    def listen(self, path, handler):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(64)

        def loop():
            while True:
                c, _ = s.accept()
                threading.Thread(target=handler, args=(c,), daemon=True).start()

        threading.Thread(target=loop, daemon=True).start()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True, help="socket path the client uses")
    p.add_argument("--upstream", required=True, help="swtpm's data socket")
    p.add_argument("--mode-file", required=True)
    p.add_argument("--log", required=True)
    args = p.parse_args()
    proxy = Proxy(args)
    proxy.listen(args.listen, proxy.serve_data)
    proxy.listen(args.listen + ".ctrl", proxy.serve_ctrl)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
