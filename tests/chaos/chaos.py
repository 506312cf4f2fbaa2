#!/usr/bin/env python3
"""The chaos run: tpmlicd on a swtpm, a tpmlic-server behind the fault proxy,
32 service clients reserving and committing usage seconds, an operator
activating and removing the license, and the agent, the TPM and the server
killed with -9 at random points and started again. After every restart and
at the end the invariants of docs/testing.md are checked.

Everything random comes from one seeded generator (--seed, printed at the
start): the same seed replays the same schedule of events. The clients'
timing still depends on the machine, so a replay is the same sequence of
kills, faults and operations, not the same interleaving to the millisecond.
Standard library only.
"""
import argparse
import base64
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import nvlicense  # noqa: E402

LICENSE = "L-CHAOS"
COUNTER_INDEX = "0x01a0c001"
LICENSE_SLOT_0 = "0x01a0c000"
LICENSE_SLOT_1 = "0x01a0c004"
CLIENTS = 32
FAULT_MODES = ["500", "drop", "badsig", "refuse", "garbage", "unsigned", "replay", "hang"]


def now():
    return time.monotonic()


# --- HTTP on the agent's UNIX socket ----------------------------------------------


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def request(conn, method, path, body=None):
    """One exchange on conn; (status, parsed body). Raises OSError and
    http.client exceptions when the agent is gone."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    conn.request(method, path, data, headers)
    r = conn.getresponse()
    raw = r.read()
    try:
        obj = json.loads(raw) if raw else {}
    except ValueError:
        obj = {"raw": raw.decode(errors="replace")}
    return r.status, obj


def request_retry(conn, method, path, body):
    """request(), retried while the agent answers 503 busy (docs/integration.md)"""
    for _ in range(20):
        s, o = request(conn, method, path, body)
        if s != 503 or "busy" not in str(o.get("error")):
            break
        time.sleep(0.05)
    return s, o


def api(sock, method, path, body=None, timeout=60):
    """A request on a connection of its own; (status, body), status 0 when
    the agent could not be reached."""
    c = UnixConnection(sock, timeout)
    try:
        return request(c, method, path, body)
    except (OSError, http.client.HTTPException) as e:
        return 0, {"error": f"{type(e).__name__}: {e}"}
    finally:
        c.close()


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# --- the run's state ---------------------------------------------------------------


class Violation(Exception):
    pass


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}

    def add(self, key, n=1):
        with self.lock:
            self.c[key] = self.c.get(key, 0) + n

    def get(self, key):
        with self.lock:
            return self.c.get(key, 0)


class Clients:
    """32 threads, each with its own connection and its own generator, that
    reserve seconds, use some, and commit. Every commit the agent answers 200
    is recorded with the license generation it happened in."""

    def __init__(self, run, n):
        self.run = run
        self.n = n
        self.lock = threading.Condition()
        self.paused = False
        self.busy = 0
        self.stop = False
        # gen (even: the license as the controller last saw it; odd: an
        # operator's activation or removal under way) -> charged seconds
        self.gen = 0
        self.charged = {}
        self.ambiguous = 0
        self.threads = []

    def start(self):
        for i in range(self.n):
            t = threading.Thread(target=self.loop, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)

    def pause(self, timeout=120):
        """Waits until no client is between a reservation and its commit."""
        with self.lock:
            self.paused = True
            end = now() + timeout
            while self.busy and now() < end:
                self.lock.wait(0.2)
            if self.busy:
                raise Violation(f"{self.busy} clients still busy {timeout} s after a pause")

    def resume(self):
        with self.lock:
            self.paused = False
            self.lock.notify_all()

    def finish(self):
        self.pause()
        with self.lock:
            self.stop = True
            self.paused = False
            self.lock.notify_all()
        for t in self.threads:
            t.join(30)

    def snapshot(self):
        with self.lock:
            return dict(self.charged), self.ambiguous

    def loop(self, i):
        rng = random.Random(f"{self.run.seed}-client-{i}")
        st = self.run.stats
        conn = None
        while True:
            with self.lock:
                if self.paused and conn:
                    conn.close()  # a paused client holds no connection (the fd count)
                    conn = None
                while self.paused and not self.stop:
                    self.lock.wait()
                if self.stop:
                    break
                self.busy += 1
            try:
                if conn is None:
                    conn = UnixConnection(self.run.sock, 15)
                g1 = self.gen
                ask = rng.randint(1, 60)
                try:
                    s, o = request_retry(conn, "POST", "/v1/usage/reserve",
                                   {"seconds": ask, "feature": "standard"})
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = None
                    st.add("reserve: agent unreachable")
                    self.run.window.add("client-error")
                    continue
                if s != 200:
                    st.add(f"reserve: {s}")
                    continue
                st.add("reserve: 200")
                got = o["seconds"]
                st.add("seconds reserved", got)
                if got < 1 or got > ask:
                    self.run.violate("ledger", f"asked {ask} s, granted {got}")
                time.sleep(rng.uniform(0, 0.03))
                used = rng.randint(0, got)
                try:
                    s, o = request_retry(conn, "POST", "/v1/usage/commit",
                                         {"lease": o["lease"], "used": used})
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = None
                    st.add("commit: agent unreachable (lease lost)")
                    self.run.window.add("client-error")
                    continue
                g2 = self.gen
                if s != 200:
                    st.add(f"commit: {s}")
                    self.run.window.add("client-error")
                    self.run.note(f"client {i}: commit answered {s} {o} (gen {g1} -> {g2})")
                    continue
                st.add("commit: 200")
                charged = o["charged"]
                if charged != used or charged + o["returned"] != got:
                    self.run.violate("ledger", f"lease of {got} s, {used} used: the commit answered {o}")
                with self.lock:
                    if g1 == g2 and g1 % 2 == 0:
                        self.charged[g1] = self.charged.get(g1, 0) + charged
                    else:
                        self.ambiguous += charged
                st.add("seconds charged", charged)
            finally:
                with self.lock:
                    self.busy -= 1
                    self.lock.notify_all()
                time.sleep(rng.uniform(0.05, 0.3))
        if conn:
            conn.close()


class Run:
    def __init__(self, args):
        self.args = args
        self.seed = args.seed
        self.rng = random.Random(self.seed)
        self.B = args.build
        self.src = args.srcdir
        self.dir = args.dir
        self.sock = os.path.join(self.dir, "agent.sock")
        self.tpmdir = os.path.join(self.dir, "tpm")
        self.stats = Stats()
        self.t0 = now()
        self.violations = []
        self.checks = {k: 0 for k in INVARIANTS + EXTRA}
        self.failed = {k: 0 for k in INVARIANTS}
        self.agent = None
        self.server = None
        self.proxy = None
        self.tpm_up = False
        self.fault_until = None
        self.log = open(os.path.join(self.dir, "chaos.log"), "a")
        # what the operator expects on the appliance: ("none",), ("lic", jti),
        # ("maybe", jti) after a removal that may have reached the server,
        # ("unknown",) after a kill during an operation
        self.expect = ("none",)
        self.prev = None  # the last checkpoint's observation
        self.charged_by_key = {}  # (jti, base) -> seconds charged under it
        self.charged_seen = {}  # gen -> charged already counted
        self.key_of_gen = {}  # gen -> (jti, base) or None
        self.at_removal = {}  # jti -> seconds charged before its first removal attempt
        self.window = set()  # what happened since the last checkpoint
        self.samples = {"agent": {}, "server": {}}  # pid -> [(fds, rss kB)]
        self.validations = {}  # agent pid -> {result: n}
        self.not_ended = set()  # certificates removed but not ended in the TPM
        self.removed_ok = set()  # certificates whose removal was answered 200
        self.flags_seen = set()  # (activation, time, reason) of flags reported
        self.act_uncertain = False  # an activation failed since the last success

    # --- output ---

    def say(self, msg):
        line = f"[{now() - self.t0:7.1f}s] {msg}"
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    def note(self, msg):
        self.log.write(f"[{now() - self.t0:7.1f}s] {msg}\n")
        self.log.flush()

    def violate(self, inv, msg):
        self.failed.setdefault(inv, 0)
        self.failed[inv] += 1
        self.violations.append(f"{inv}: {msg}")
        self.say(f"VIOLATION {inv}: {msg}")

    def check(self, inv, ok, msg):
        self.checks[inv] += 1
        if not ok:
            self.violate(inv, msg)
        return ok

    # --- processes ---

    def path(self, name):
        return os.path.join(self.dir, name)

    def sh(self, *cmd, env=None, check=True, timeout=120):
        e = dict(os.environ)
        if env:
            e.update(env)
        r = subprocess.run(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.decode()[-2000:]}")
        return r

    def swtpm_ctl(self, *a, check=True):
        return self.sh(os.path.join(self.src, "swtpm-scripts/swtpm-ctl"), *a, check=check)

    def server_cli(self, *a, check=True):
        return self.sh(os.path.join(self.B, "tpmlic-server"), *a, "--db", self.path("srv.db"),
                       check=check)

    def setup(self):
        # unset or empty: the tests' default CA, as in tests/lib
        ca = os.environ.get("TPMLIC_TEST_CA") or f"/tmp/tpmlic-test-ca-{os.getuid()}"
        self.swtpm_ctl("manufacture", self.tpmdir, "--ca", ca)
        self.start_tpm()
        self.sh(os.path.join(self.B, "tpmlic-vendor"), "keygen", "--private", self.path("vendor.key"),
                "--public", self.path("vendor.pub"))
        d = self.dir
        ossl = ["openssl"]
        self.sh(*ossl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-days", "2", "-keyout", f"{d}/srv-ca.key", "-out", f"{d}/srv-ca.pem", "-subj",
                "/CN=tpmlic chaos CA")
        self.sh(*ossl, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{d}/srv.key", "-out", f"{d}/srv.csr", "-subj", "/CN=127.0.0.1")
        with open(f"{d}/srv.ext", "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        self.sh(*ossl, "x509", "-req", "-in", f"{d}/srv.csr", "-CA", f"{d}/srv-ca.pem", "-CAkey",
                f"{d}/srv-ca.key", "-CAcreateserial", "-days", "2", "-extfile", f"{d}/srv.ext",
                "-out", f"{d}/srv.crt")
        expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30 * 86400))
        self.server_cli("license", "create", "--code", LICENSE, "--product", "speech",
                        "--customer-id", "4949", "--type", "consumption", "--expiry", expiry,
                        "--features", "standard", "--secs-allocated", str(self.args.allocated),
                        "--cache-secs", str(self.args.cache_secs), "--tick-secs",
                        str(self.args.tick_secs))
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.server_port = s.getsockname()[1]
        s.close()
        self.start_server()
        self.start_proxy()
        self.start_agent()

    def start_tpm(self):
        self.swtpm_ctl("start", self.tpmdir)
        self.tcti = f"swtpm:path={self.tpmdir}/tpm.sock"
        self.tpm_up = True

    def cut_tpm(self):
        self.swtpm_ctl("poweroff", self.tpmdir)
        self.tpm_up = False

    def start_server(self):
        for attempt in range(50):
            pf = self.path("srv.port")
            if os.path.exists(pf):
                os.unlink(pf)
            log = open(self.path("server.log"), "a")
            p = subprocess.Popen([os.path.join(self.B, "tpmlic-server"), "serve", "--db",
                                  self.path("srv.db"), "--key", self.path("vendor.key"), "--listen",
                                  f"127.0.0.1:{self.server_port}", "--tls-cert", self.path("srv.crt"),
                                  "--tls-key", self.path("srv.key"), "--port-file", pf],
                                 stdout=log, stderr=log)
            log.close()
            end = now() + 30
            while now() < end and p.poll() is None and not os.path.exists(pf):
                time.sleep(0.05)
            if os.path.exists(pf):
                self.server = p
                return
            p.kill()
            p.wait()
            time.sleep(0.2)  # the port may still be held
        raise RuntimeError("tpmlic-server does not start (server.log)")

    def start_proxy(self):
        pf = self.path("fp.port")
        self.set_fault("pass")
        log = open(self.path("faultproxy.log"), "a")
        self.proxy = subprocess.Popen(
            [sys.executable, os.path.join(self.src, "tests/lib/faultproxy.py"), "--cert",
             self.path("srv.crt"), "--key", self.path("srv.key"), "--ca", self.path("srv-ca.pem"),
             "--upstream", f"127.0.0.1:{self.server_port}", "--mode-file", self.path("fp.mode"),
             "--port-file", pf, "--log", self.path("fp.requests")], stdout=log, stderr=log)
        log.close()
        end = now() + 30
        while not os.path.exists(pf) and now() < end:
            time.sleep(0.05)
        with open(pf) as f:
            self.proxy_url = f"https://127.0.0.1:{f.read().strip()}"

    def set_fault(self, mode):
        with open(self.path("fp.mode.new"), "w") as f:
            f.write(mode + "\n")
        os.rename(self.path("fp.mode.new"), self.path("fp.mode"))
        self.fault = mode

    def start_agent(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        log = open(self.path("agent.log"), "a")
        env = dict(os.environ)
        p = subprocess.Popen([os.path.join(self.B, "tpmlicd"), "--config", "/dev/null", "--tcti",
                              self.tcti, "--socket", self.sock, "--state-dir", self.path("state"),
                              "--vendor-key", self.path("vendor.pub"), "--tpm-watch", "1",
                              "--socket-mode", "0666", "--service-group", "4242", "--admin-group",
                              "4343", "--server", self.proxy_url, "--server-ca",
                              self.path("srv-ca.pem"), "--server-timeout", "3"],
                             stdout=log, stderr=log, env=env)
        log.close()
        end = now() + 60
        while now() < end:
            if p.poll() is not None:
                raise Violation(f"the agent exited with {p.returncode} at start (agent.log)")
            s, _ = api(self.sock, "GET", "/v1/status", timeout=5)
            if s == 200:
                self.agent = p
                return
            time.sleep(0.05)
        raise Violation("the agent did not answer 60 s after its start")

    def kill(self, what):
        p = getattr(self, what)
        p.send_signal(signal.SIGKILL)
        p.wait()
        setattr(self, what, None)

    def stop_orderly(self, what):
        p = getattr(self, what)
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = "(did not stop in 60 s)"
        setattr(self, what, None)
        return rc

    # --- observation ---

    def nvread(self, index, must=False):
        """An NV index as root can read it (the auth value is in the state
        directory); None when it is not there."""
        auth = open(self.path("state/nv.auth"), "rb").read().hex()
        out = self.path("nv.out")
        for attempt in range(10):
            r = self.sh("tpm2_nvread", index, "-P", f"hex:{auth}", "-o", out,
                        env={"TPM2TOOLS_TCTI": self.tcti}, check=False, timeout=60)
            if r.returncode == 0:
                with open(out, "rb") as f:
                    return f.read()
            err = r.stderr.decode(errors="replace").strip()
            if "0x14b" in err or "0x18b" in err:  # TPM_RC_HANDLE: not defined
                return None
            self.note(f"tpm2_nvread {index}: {err}")
            time.sleep(0.3)
        if must:
            raise Violation(f"tpm2_nvread {index} fails: {err}")
        return None

    def counter(self):
        return int.from_bytes(self.nvread(COUNTER_INDEX, must=True), "big")

    def cert(self):
        """The payload of the license certificate in force in the TPM, or
        None (no license, or no intact record)."""
        b = nvlicense.in_force([self.nvread(LICENSE_SLOT_0), self.nvread(LICENSE_SLOT_1)])
        if not b:
            return None
        try:
            return json.loads(b64url(b.decode().split(".")[1]))
        except (ValueError, IndexError, UnicodeDecodeError):
            return None

    def show(self):
        r = self.server_cli("license", "show", LICENSE, "--json")
        return json.loads(r.stdout)

    def metrics(self):
        c = UnixConnection(self.sock, 20)
        try:
            c.request("GET", "/metrics")
            r = c.getresponse()
            text = r.read().decode()
        except (OSError, http.client.HTTPException):
            return {}
        finally:
            c.close()
        m = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                try:
                    m[k] = float(v)
                except ValueError:
                    pass
        return m

    def validations_done(self):
        m = self.metrics()
        return sum(v for k, v in m.items() if k.startswith("tpmlic_validations_total"))

    def proc_sample(self, p):
        try:
            fds = 1 << 30
            for _ in range(3):  # connections just closed may still be open
                fds = min(fds, len(os.listdir(f"/proc/{p.pid}/fd")))
                time.sleep(0.2)
            with open(f"/proc/{p.pid}/status") as f:
                rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            return fds, rss
        except (OSError, StopIteration):
            return None

    # --- the checkpoint ---

    def observe(self):
        """The agent's state once it has settled: two equal readings."""
        last = None
        for _ in range(40):
            s, st = api(self.sock, "GET", "/v1/status", timeout=30)
            if s != 200:
                raise Violation(f"the agent does not answer /v1/status: {s} {st}")
            cert = self.cert() if st.get("licensed") else None
            vals = self.validations_done()
            cur = (st.get("licensed"), st.get("valid"), st.get("secs_remaining"),
                   cert and (cert["jti"], cert["counter"]["base"], cert["secs_granted"]), vals)
            if cur == last:
                return st, cert
            last = cur
            time.sleep(0.3)
        raise Violation(f"the agent's state does not settle: {last}")

    def settle_after_start(self):
        """After a start: the start-up validation, when there is a license."""
        end = now() + 30
        while now() < end:
            s, st = api(self.sock, "GET", "/v1/status", timeout=30)
            if s == 200 and not st.get("licensed"):
                return
            if s == 200 and st.get("tpm", {}).get("ok") and self.validations_done() >= 1:
                return
            time.sleep(0.1)
        self.note("no validation within 30 s of the start")

    def checkpoint(self, why):
        """Clients are paused; the agent, TPM and server are running."""
        self.stats.add("checkpoints")
        # the TPM must be back for the agent (after a cut of the TPM alone)
        end = now() + 30
        while now() < end:
            s, st = api(self.sock, "GET", "/v1/status", timeout=30)
            if s == 200 and st.get("tpm", {}).get("ok"):
                break
            time.sleep(0.1)
        else:
            raise Violation(f"the agent does not see the TPM again: {st}")
        st, cert = self.observe()
        C = self.counter()
        show = self.show()
        charged, ambiguous = self.clients.snapshot()
        # the seconds charged since the last checkpoint, under the license
        # seen then (clients were paused at both ends)
        window_x = 0
        prev_key = self.prev["key"] if self.prev else None
        for g, x in charged.items():
            d = x - self.charged_seen.get(g, 0)
            if d:
                k = self.key_of_gen.get(g, prev_key)
                if k is None:
                    self.violate("charged <= consumption",
                                 f"{d} s charged while the agent held no license (gen {g})")
                else:
                    self.charged_by_key[k] = self.charged_by_key.get(k, 0) + d
                    if k == prev_key:
                        window_x += d
            self.charged_seen[g] = x
        key = (cert["jti"], cert["counter"]["base"]) if cert else None
        jti = cert["jti"] if cert else None
        obs = {"key": key, "jti": jti, "C": C, "licensed": bool(st.get("licensed")),
               "valid": st.get("valid"), "R": st.get("secs_remaining"),
               "G": cert["secs_granted"] if cert else None, "why": why}
        self.note(f"checkpoint {why}: {json.dumps(obs)} expect={self.expect} window={sorted(self.window)} "
                  f"x={window_x} ambiguous={ambiguous} pool={show['pool']}")

        self.check_counter(obs, cert)
        self.check_no_reappear(obs, window_x)
        self.check_license_kept(obs, show)
        self.check_pool(show)
        self.check_resources()

        self.clients.gen += 2 if self.clients.gen % 2 == 0 else 1
        self.key_of_gen[self.clients.gen] = key
        self.prev = obs
        self.window = set()

    def check_counter(self, obs, cert):
        inv = "charged <= consumption"
        if self.prev:
            self.check(inv, obs["C"] >= self.prev["C"],
                       f"the TPM counter went back from {self.prev['C']} to {obs['C']}")
        if not cert:
            return
        tick = cert["tick_secs"]
        covered = (obs["C"] - cert["counter"]["base"]) * tick
        used = obs["G"] - obs["R"]
        x = self.charged_by_key.get(obs["key"], 0)
        self.check(inv, covered >= x,
                   f"the counter covers {covered} s of license {obs['key']}, {x} s were charged")
        self.check(inv, used >= x,
                   f"the agent counts {used} s consumed of license {obs['key']}, {x} s were charged")
        if obs["R"] > 0:
            self.check(inv, covered >= used,
                       f"consumed {used} s is more than the counter covers ({covered} s)")
        # right after a start nothing holds covered seconds: consumed is what
        # the counter says, exactly
        if "agent-start" in self.window and covered <= obs["G"]:
            self.check(inv, used == covered,
                       f"after a start the agent counts {used} s consumed, the counter covers {covered} s")

    def check_no_reappear(self, obs, window_x):
        """Between two checkpoints under one license (same activation, same
        base), with every lease committed at both: remaining may rise by no
        more than the grant rose, less what was charged in between:
            R_k <= R_(k-1) + (G_k - G_(k-1)) - charged
        and with nothing but client traffic in between (no restart, no cut,
        no operation), exactly that."""
        inv = "no seconds reappear"
        p = self.prev
        if not p or not obs["key"] or obs["key"] != p["key"]:
            return
        bound = p["R"] + (obs["G"] - p["G"]) - window_x
        self.check(inv, obs["G"] >= p["G"], f"the grant went down from {p['G']} to {obs['G']}")
        self.check(inv, obs["R"] <= bound,
                   f"remaining {obs['R']} s, at most {bound} s expected (before: {p['R']} s, grant "
                   f"{p['G']} -> {obs['G']}, {window_x} s charged since)")
        quiet = not (self.window & {"agent-start", "tpm-cut", "op", "agent-kill", "client-error"})
        if quiet and bound >= 0 and obs["G"] == p["G"]:
            self.check(inv, obs["R"] == bound,
                       f"remaining {obs['R']} s after nothing but commits, {bound} s expected")

    def check_license_kept(self, obs, show):
        inv = "no license lost"
        acts = {a["id"]: a for a in show["activations"]}
        e = self.expect
        if e[0] == "lic":
            ok = self.check(inv, obs["jti"] == e[1] and obs["licensed"],
                            f"expected license {e[1]} on the appliance after {self.window}, found "
                            f"{obs['jti']}")
            if ok:
                self.check(inv, obs["valid"] is True, f"license {e[1]} is not valid: {obs}")
                a = acts.get(e[1])
                self.check(inv, a is not None and a["state"] == "active",
                           f"the server does not hold activation {e[1]} active: {a}")
        elif e[0] == "none" and obs["licensed"] and obs["jti"] in self.not_ended:
            self.check("removal ends the certificate", False,
                       f"certificate {obs['jti']}, removed, not ended, serves again after a restart")
        elif e[0] == "none" and obs["licensed"] and self.act_uncertain:
            # an activation that failed may still have reached the TPM (its
            # last write done, the answer lost): then the server holds it
            a = acts.get(obs["jti"])
            self.check(inv, a is not None and a["state"] == "active",
                       f"license {obs['jti']} appeared after a failed activation, the server "
                       f"does not hold it active: {a}")
        elif e[0] == "none":
            self.check(inv, not obs["licensed"],
                       f"no license expected, found {obs['jti']} after {self.window}")
            # a removal the agent confirmed leaves no certificate that could
            # serve again in the TPM: erased, or its counter past its ceiling
            c = self.cert() if self.removed_ok else None
            if self.removed_ok and not (c and c["jti"] in self.removed_ok):
                self.check("removal ends the certificate", True, "")  # erased
            elif c:
                tick = c["tick_secs"]
                ceiling = c["counter"]["base"] + -(-c["secs_granted"] // tick)
                if obs["C"] <= ceiling:
                    self.not_ended.add(c["jti"])
                self.check("removal ends the certificate", obs["C"] > ceiling,
                           f"after a removal answered 200 the TPM still holds certificate "
                           f"{c['jti']} with the counter at {obs['C']}, its ceiling {ceiling}: "
                           "a restart loads it again")
        elif e[0] == "maybe":
            # a removal that may have reached the server: kept, or closed on the server
            a = acts.get(e[1])
            if obs["licensed"]:
                self.check(inv, obs["jti"] == e[1], f"expected {e[1]} or none, found {obs['jti']}")
            else:
                self.check(inv, a is not None and a["state"] == "closed",
                           f"license {e[1]} gone from the appliance but active on the server: {a}")
        # what comes next is expected to stay as it is now, unless the
        # server has closed it (then the next validation removes it)
        if obs["licensed"]:
            a = acts.get(obs["jti"])
            if a is not None and a["state"] == "closed":
                self.expect = ("maybe", obs["jti"])
            else:
                self.expect = ("lic", obs["jti"])
        else:
            self.expect = ("none",)

    def check_pool(self, show):
        inv = "server pool adds up"
        pool = show["pool"]
        acts = show["activations"]
        committed = sum(a["secs_granted"] if a["state"] == "active" else a["final_secs"] for a in acts)
        self.check(inv, pool["free"] == pool["allocated"] - pool["committed"],
                   f"free {pool['free']} != allocated {pool['allocated']} - committed {pool['committed']}")
        self.check(inv, pool["committed"] == committed,
                   f"committed {pool['committed']}, the activations add up to {committed}: {acts}")
        for a in acts:
            if a["state"] == "closed":
                self.check(inv, a["final_secs"] + a["returned_secs"] == a["secs_granted"],
                           f"closed activation {a['id']}: final {a['final_secs']} + returned "
                           f"{a['returned_secs']} != granted {a['secs_granted']}")
                x = self.at_removal.get(a["id"])
                if x is not None:
                    self.check(inv, a["final_secs"] >= x,
                               f"activation {a['id']} closed with {a['final_secs']} s consumed, {x} s "
                               "were charged before its removal")
            new = [f for f in a["flags"] if (a["id"], f["time"], f["reason"]) not in self.flags_seen]
            self.check(inv, not new, f"activation {a['id']} is flagged: {new}")
            self.flags_seen.update((a["id"], f["time"], f["reason"]) for f in new)
        # the database itself, with sqlite3: the trigger-kept pool against the rows
        r = self.sh("sqlite3", self.path("srv.db"),
                    "SELECT l.secs_allocated, l.committed_secs, (SELECT COALESCE(SUM(CASE a.state WHEN "
                    "'active' THEN a.secs_granted ELSE a.final_secs END), 0) FROM activations a WHERE "
                    f"a.license_id = l.id) FROM licenses l WHERE l.code = '{LICENSE}'", check=False)
        if r.returncode == 0 and r.stdout.strip():
            alloc, comm, rows = (int(v) for v in r.stdout.decode().strip().split("|"))
            self.check(inv, comm == rows and alloc == pool["allocated"],
                       f"sqlite3: committed_secs {comm}, the rows add up to {rows}")

    def check_resources(self):
        inv = "fds and memory bounded"
        for name, p in (("agent", self.agent), ("server", self.server)):
            s = self.proc_sample(p)
            if not s:
                continue
            self.samples[name].setdefault(p.pid, []).append(s)
            firsts = [v[0] for v in self.samples[name].values()]
            first = firsts[0]
            mine = self.samples[name][p.pid]
            fd_slack, rss_slack = self.args.fd_slack, self.args.rss_slack_kb
            self.check(inv, s[0] <= mine[0][0] + fd_slack,
                       f"{name} pid {p.pid}: {s[0]} fds open, {mine[0][0]} at its first checkpoint")
            self.check(inv, s[0] <= first[0] + fd_slack,
                       f"{name} pid {p.pid}: {s[0]} fds open, the first {name} had {first[0]}")
            self.check(inv, s[1] <= mine[0][1] + rss_slack,
                       f"{name} pid {p.pid}: VmRSS {s[1]} kB, {mine[0][1]} kB at its first checkpoint")
            self.check(inv, s[1] <= first[1] + rss_slack,
                       f"{name} pid {p.pid}: VmRSS {s[1]} kB, the first {name} had {first[1]} kB")

    # --- events ---

    def agent_metrics_keep(self):
        if self.agent:
            m = self.metrics()
            v = {k: m[k] for k in m if k.startswith("tpmlic_validations_total")}
            if v:
                self.validations[self.agent.pid] = v

    def flush_dead_agents_handles(self):
        """What the kernel's resource manager (/dev/tpmrm0) does when a
        process ends: its sessions and objects leave the TPM. swtpm on a
        socket has none, so a killed agent's stay loaded; the agent copes
        (it flushes stale ones when the TPM is full), tpm2_nvread here
        would not."""
        if self.tpm_up:
            for what in ("-l", "-t", "-s"):
                self.sh("tpm2_flushcontext", what, env={"TPM2TOOLS_TCTI": self.tcti}, check=False)

    def restart_agent(self, how):
        self.agent_metrics_keep()
        if how == "kill":
            self.kill("agent")
            self.flush_dead_agents_handles()
        else:
            rc = self.stop_orderly("agent")
            self.check("fds and memory bounded", rc == 0,
                       f"the agent exited with {rc} after SIGTERM (agent.log)")
        self.stats.add("restarts: agent")
        self.window.add("agent-start")

    def op_thread(self, kind, result):
        if kind == "activate":
            s, o = api(self.sock, "POST", "/v1/management/license", {"license": LICENSE}, timeout=120)
        else:
            s, o = api(self.sock, "DELETE", "/v1/management/license", timeout=300)
        result.extend([s, o])

    def operator(self, kill_kind):
        licensed = self.prev and self.prev["licensed"]
        kind = "remove" if licensed else "activate"
        jti = self.prev["jti"] if licensed else None
        if kind == "remove" and jti not in self.at_removal:
            charged, _ = self.clients.snapshot()
            g = self.clients.gen
            self.at_removal[jti] = self.charged_by_key.get(self.prev["key"], 0) + \
                charged.get(g, 0) - self.charged_seen.get(g, 0)
        self.clients.gen += 1  # odd: under way
        result = []
        t = threading.Thread(target=self.op_thread, args=(kind, result), daemon=True)
        t.start()
        if kill_kind:
            time.sleep(self.rng.uniform(0, 1.5))
            self.say(f"{kind} (fault {self.fault}), {kill_kind} during it")
            self.do_kill(kill_kind)
            self.clients.pause()
            self.bring_up()
        t.join(300)
        s, o = result if result else (0, {"error": "no answer in 300 s"})
        self.stats.add(f"operator {kind}: {s}")
        self.window.add("op")
        if not kill_kind:
            self.say(f"{kind} (fault {self.fault}): {s} {o.get('error', '')}".rstrip())
        self.clients.pause()
        if s == 200 and kind == "remove":
            self.removed_ok.add(jti)
        if s == 200:
            self.act_uncertain = False
        elif kind == "activate":
            self.act_uncertain = True
        if s == 200:
            self.expect = ("lic", None) if kind == "activate" else ("none",)
        elif kill_kind:
            self.expect = ("unknown",)
        elif kind == "remove":
            self.expect = ("maybe", jti)
        else:
            self.expect = ("unknown",)
        if self.expect == ("lic", None):
            cert = self.cert()
            self.expect = ("lic", cert["jti"] if cert else "(none in the TPM)")
        self.checkpoint(f"operator {kind}")
        self.clients.resume()

    def do_kill(self, kind):
        """Kills; what is killed comes back in bring_up()."""
        self.stats.add(f"kills: {kind}")
        self.window.add(kind)
        if kind == "agent-kill":
            self.restart_agent("kill")
        elif kind == "agent-stop":
            self.restart_agent("term")
        elif kind == "tpm-cut":
            self.cut_tpm()
            self.stats.add("restarts: swtpm")
        elif kind == "power-cut":
            self.agent_metrics_keep()
            self.kill("agent")
            self.cut_tpm()
            self.stats.add("restarts: agent")
            self.stats.add("restarts: swtpm")
            self.window.add("agent-start")
        elif kind == "server-kill":
            self.kill("server")
            self.stats.add("restarts: server")

    def bring_up(self):
        if not self.tpm_up:
            time.sleep(self.rng.uniform(0.1, 2))
            self.start_tpm()
        if self.server is None:
            time.sleep(self.rng.uniform(0.1, 2))
            self.start_server()
        if self.agent is None:
            self.start_agent()
            self.settle_after_start()

    def event(self, kind):
        if kind == "operator":
            kk = None
            if self.rng.random() < self.args.kill_during_op:
                kk = self.rng.choice(["agent-kill", "power-cut", "server-kill", "tpm-cut"])
            self.operator(kk)
            return
        self.say(f"{kind} (fault {self.fault})")
        if kind in ("agent-kill", "agent-stop", "power-cut"):
            # the agent is gone: clients stop before it comes back, so that
            # the first checkpoint sees it as it starts
            self.do_kill(kind)
            self.clients.pause()
            self.bring_up()
        else:
            self.do_kill(kind)
            time.sleep(self.rng.uniform(0.2, 3))  # clients meet the gap
            self.clients.pause()
            self.bring_up()
        self.checkpoint(kind)
        self.clients.resume()

    def main(self):
        a = self.args
        self.say(f"chaos run: seed {self.seed}, {a.secs} s, {CLIENTS} clients, in {self.dir}")
        self.say(f"replay with: make chaos CHAOS_SECS={a.secs} CHAOS_SEED={self.seed}")
        self.setup()
        self.clients = Clients(self, CLIENTS)
        self.key_of_gen[0] = None
        self.clients.start()
        # the first license
        self.operator(None)
        kinds = ["agent-kill", "agent-stop", "power-cut", "tpm-cut", "server-kill", "fault",
                 "operator"]
        weights = [4, 1, 2, 2, 3, 3, 3]
        end = self.t0 + a.secs
        while now() < end:
            pause = self.rng.uniform(0.5, 5)
            kind = self.rng.choices(kinds, weights)[0]
            fault = self.rng.choice(FAULT_MODES)
            fault_secs = self.rng.uniform(2, 20)
            t_end = now() + pause
            while now() < t_end:
                if self.fault_until and now() >= self.fault_until:
                    self.set_fault("pass")
                    self.fault_until = None
                    self.note("fault proxy: pass")
                time.sleep(0.1)
            if now() >= end:
                break
            if kind == "fault":
                self.set_fault(fault)
                self.fault_until = now() + fault_secs
                self.stats.add(f"faults: {fault}")
                self.say(f"fault proxy: {fault} for {fault_secs:.0f} s")
                continue
            # keep the license applied most of the time
            licensed = self.prev and self.prev["licensed"]
            if kind == "operator" and licensed and self.rng.random() < 0.5:
                kind = "agent-kill"
            elif not licensed and self.rng.random() < 0.3:
                kind = "operator"
            self.event(kind)
        self.set_fault("pass")
        self.fault_until = None
        self.clients.finish()
        # the end: one more start, so the final state is also seen as a restart sees it
        self.say("end: the last restart of the agent")
        self.do_kill("agent-stop")
        self.bring_up()
        self.checkpoint("end")
        self.agent_metrics_keep()
        rc = self.stop_orderly("agent")
        self.check("fds and memory bounded", rc == 0, f"the agent exited with {rc} after SIGTERM")
        rc = self.stop_orderly("server")
        self.check("fds and memory bounded", rc == 0, f"tpmlic-server exited with {rc} after SIGTERM")

    def cleanup(self):
        for p in (self.agent, self.server, self.proxy):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        self.swtpm_ctl("poweroff", self.tpmdir, check=False)

    def report(self):
        st = self.stats.c
        print()
        print(f"=== chaos run, seed {self.seed}, {now() - self.t0:.0f} s")
        groups = {}
        for k in sorted(st):
            g = k.split(":")[0] if ":" in k else "figures"
            groups.setdefault(g, []).append(f"{k.split(': ', 1)[-1]} {st[k]}")
        for g, items in groups.items():
            print(f"{g}: " + ", ".join(items))
        vals = {}
        for v in self.validations.values():
            for k, n in v.items():
                r = k.split('"')[1] if '"' in k else k
                vals[r] = vals.get(r, 0) + int(n)
        print("validations (agent metrics, all agents): " +
              ", ".join(f"{k} {v}" for k, v in sorted(vals.items())))
        for name, pids in self.samples.items():
            fds = [s[0] for v in pids.values() for s in v]
            rss = [s[1] for v in pids.values() for s in v]
            if fds:
                print(f"{name}: {len(pids)} processes, fds {min(fds)}..{max(fds)}, "
                      f"VmRSS {min(rss)}..{max(rss)} kB")
        if hasattr(self, "clients"):  # not when the set-up failed
            charged, ambiguous = self.clients.snapshot()
            print(f"seconds charged: {sum(charged.values()) + ambiguous} "
                  f"({ambiguous} during an operator's operation, not attributed)")
        print()
        ok = True
        for k in INVARIANTS + EXTRA:
            n, bad = self.checks[k], self.failed.get(k, 0)
            if bad or (n == 0 and k in INVARIANTS):
                res, ok = "FAIL", False
            else:
                res = "PASS" if n else "not exercised"
            print(f"{res}  {k}: {n} checks, {bad} failed")
        for k in self.failed:
            if k not in self.checks:
                print(f"FAIL  {k}: {self.failed[k]} failed")
                ok = False
        return ok


INVARIANTS = ["charged <= consumption", "server pool adds up", "no license lost",
              "no seconds reappear", "fds and memory bounded"]
# checked only when the run gets there (a removal answered 200)
EXTRA = ["removal ends the certificate"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--secs", type=int, default=600)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--build", required=True, help="the build directory (B)")
    p.add_argument("--srcdir", required=True)
    p.add_argument("--dir", help="where the run keeps its files (default: a new /tmp directory)")
    p.add_argument("--keep", action="store_true", help="keep the directory after a run that passed")
    p.add_argument("--allocated", type=int, default=50_000_000)
    p.add_argument("--cache-secs", type=int, default=36_000)
    p.add_argument("--tick-secs", type=int, default=60)
    p.add_argument("--kill-during-op", type=float, default=0.4)
    p.add_argument("--fd-slack", type=int, default=4)
    p.add_argument("--rss-slack-kb", type=int, default=32 * 1024)
    a = p.parse_args()
    if a.seed is None:
        a.seed = int.from_bytes(os.urandom(4), "big")
    a.build = os.path.abspath(a.build)
    ldd = subprocess.run(["ldd", os.path.join(a.build, "tpmlicd")], stdout=subprocess.PIPE)
    if b"libasan" in ldd.stdout:
        a.rss_slack_kb = max(a.rss_slack_kb, 1024 * 1024)  # ASan's quarantine grows to 256 MiB
    made = a.dir is None
    if made:
        a.dir = tempfile.mkdtemp(prefix="tpmlic-chaos.")
    os.makedirs(a.dir, exist_ok=True)
    run = Run(a)
    ok = False
    try:
        run.main()
    except Violation as e:
        run.violate("run", str(e))
    except Exception as e:  # a harness failure is a failed run too, with its reason
        import traceback
        traceback.print_exc()
        run.violate("run", f"{type(e).__name__}: {e}")
    finally:
        run.cleanup()
        try:
            ok = run.report()
        except Exception:
            import traceback
            traceback.print_exc()
    if ok and made and not a.keep:
        shutil.rmtree(a.dir, ignore_errors=True)
    else:
        print(f"files of the run: {a.dir} (agent.log, server.log, chaos.log)")
    print("chaos: PASS" if ok else f"chaos: FAIL (seed {a.seed})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
