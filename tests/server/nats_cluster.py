"""A cluster of NATS servers with JetStream on loopback, for the replication
tests: Debian's `nats-server`, one process per server, each with its own
folder (configuration, JetStream store, log) under a work folder the test
owns, clustered with the others through routes, every port a free one.

    cluster = NatsCluster(3, workdir)   # waits for a JetStream meta leader
    cluster.urls()                      # "nats://127.0.0.1:p1,nats://..."
    cluster.kill(1); cluster.start(1)   # SIGKILL, then again on the same ports and store
    cluster.stop()                      # every server, and their folders

Run it on its own (`/usr/bin/python3 nats_cluster.py`) to check that a
cluster comes up, survives one server's death and takes it back.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

NATS_SERVER = shutil.which("nats-server") or (
    "/usr/sbin/nats-server" if os.access("/usr/sbin/nats-server", os.X_OK) else None)


def _free_ports(count):
    """`count` distinct free ports on loopback, held open together while
    chosen so that none is picked twice."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class NatsServer:
    """One member of the cluster: its ports, folder and process."""

    def __init__(self, index, folder, name, client_port, cluster_port, http_port):
        self.index, self.folder, self.name = index, folder, name
        self.client_port, self.cluster_port, self.http_port = client_port, cluster_port, http_port
        self.config = os.path.join(folder, "nats.conf")
        self.log = os.path.join(folder, "nats.log")
        self.proc = None

    def url(self):
        return f"nats://127.0.0.1:{self.client_port}"

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def monitor(self, path, timeout=2):
        """GET on the monitoring port: (status, decoded JSON), (None, None) when it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}",
                                        timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read() or b"null")
            except ValueError:
                return e.code, None
        except (OSError, ValueError):
            return None, None

    def log_tail(self, lines=30):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except FileNotFoundError:
            return ""


class NatsClient:
    """Just enough of the NATS client protocol (text over TCP) to send requests to
    JetStream's API and publish with an acknowledgement: CONNECT, SUB on one inbox,
    PUB with a reply subject, MSG back. Headers are not asked for."""

    def __init__(self, url, timeout=5.0):
        host, port = url.split("://", 1)[-1].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""
        self.inbox = "_INBOX.herald-test-" + os.urandom(6).hex()
        self.next_reply = 0
        self._line()  # INFO {...}
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":false}\r\n'
                          b"SUB " + self.inbox.encode() + b".* 1\r\nPING\r\n")
        while self._line() != b"PONG":
            pass

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the NATS server closed the connection")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _publish_request(self, subject, payload):
        """Publishes `payload` (bytes, or an object sent as JSON) on `subject` with a new
        reply subject, which it returns."""
        if not isinstance(payload, bytes):
            payload = json.dumps(payload).encode()
        self.next_reply += 1
        reply = f"{self.inbox}.{self.next_reply}"
        self.sock.sendall(f"PUB {subject} {reply} {len(payload)}\r\n".encode() + payload + b"\r\n")
        return reply

    def _next_msg(self):
        """The next message for this client: (subject, body); answers the server's PINGs."""
        while True:
            line = self._line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
                continue
            if line.startswith(b"-ERR"):
                raise ConnectionError(line.decode())
            if not line.startswith(b"MSG "):
                continue
            parts = line.split()
            size = int(parts[-1])
            while len(self.buf) < size + 2:
                self._fill()
            body, self.buf = self.buf[:size], self.buf[size + 2:]
            return parts[1].decode(), body

    def request(self, subject, payload=b"", timeout=5.0):
        """Sends a request and returns the first answer, decoded from JSON."""
        reply = self._publish_request(subject, payload)
        self.sock.settimeout(timeout)
        while True:
            to, body = self._next_msg()
            if to == reply:
                return json.loads(body or b"null")

    def replies(self, subject, payload=b"", seconds=1.0):
        """Sends a request and returns every answer that comes within `seconds`
        (decoded from JSON): one per responder."""
        reply = self._publish_request(subject, payload)
        out = []
        end = time.time() + seconds
        while time.time() < end:
            self.sock.settimeout(max(end - time.time(), 0.01))
            try:
                to, body = self._next_msg()
            except (socket.timeout, TimeoutError):
                break
            if to == reply:
                out.append(json.loads(body or b"null"))
        return out

    def close(self):
        self.sock.close()


class NatsCluster:
    """n clustered nats-server processes with JetStream; see the module's text."""

    def __init__(self, n=3, workdir=None, name=None, wait=30.0, max_payload="8MB"):
        """`max_payload`: the largest message the servers take (NATS' own default is 1MB)."""
        if NATS_SERVER is None:
            raise RuntimeError("nats-server is not installed")
        self.own_workdir = workdir is None
        self.workdir = tempfile.mkdtemp(prefix="nats-cluster-", dir=workdir)
        self.name = name or "herald-test-" + os.path.basename(self.workdir).rsplit("-", 1)[-1]
        self.max_payload = max_payload
        ports = _free_ports(3 * n)
        self.servers = []
        for i in range(n):
            folder = os.path.join(self.workdir, f"n{i}")
            os.makedirs(os.path.join(folder, "jetstream"))
            self.servers.append(NatsServer(i, folder, f"n{i}", *ports[3 * i:3 * i + 3]))
        for s in self.servers:
            self._write_config(s)
        try:
            for i in range(n):
                self.start(i, wait=False)
            if not self.wait_ready(wait):
                raise RuntimeError("the NATS cluster has no JetStream meta leader:\n" +
                                   self.logs())
        except BaseException:
            self.stop()
            raise

    def _write_config(self, s):
        routes = ", ".join(f"nats-route://127.0.0.1:{o.cluster_port}"
                           for o in self.servers if o is not s)
        store = os.path.join(s.folder, "jetstream")
        with open(s.config, "w") as f:
            f.write(f"""server_name: {s.name}
listen: 127.0.0.1:{s.client_port}
http: 127.0.0.1:{s.http_port}
max_payload: {self.max_payload}
jetstream {{
  store_dir: "{store}"
}}
cluster {{
  name: {self.name}
  listen: 127.0.0.1:{s.cluster_port}
  routes: [{routes}]
}}
""")

    def urls(self):
        return ",".join(s.url() for s in self.servers)

    def start(self, i, wait=True, timeout=30.0):
        """Starts server i (again: same ports, same store). With `wait`, returns once it
        answers on its monitoring port and the cluster has a meta leader again."""
        s = self.servers[i]
        if s.running():
            return True
        log = open(s.log, "a")
        try:
            s.proc = subprocess.Popen([NATS_SERVER, "-c", s.config], stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        if wait:
            return self.wait_ready(timeout)
        return True

    def kill(self, i):
        """SIGKILL server i: no goodbye to its peers, whatever it had not flushed is lost."""
        s = self.servers[i]
        if s.running():
            s.proc.send_signal(signal.SIGKILL)
        if s.proc is not None:
            s.proc.wait()

    def meta_leader(self, i):
        """The JetStream meta leader server i knows of, or None."""
        status, jsz = self.servers[i].monitor("/jsz")
        if status != 200 or not isinstance(jsz, dict):
            return None
        return (jsz.get("meta_cluster") or {}).get("leader") or None

    def wait_ready(self, timeout=30.0):
        """Waits until every running server answers and all of them name the same
        JetStream meta leader, itself one of the running servers."""
        end = time.time() + timeout
        while True:
            running = [s for s in self.servers if s.running()]
            leaders = {self.meta_leader(s.index) for s in running}
            names = {s.name for s in running}
            if running and len(leaders) == 1 and next(iter(leaders)) in names:
                return True
            if time.time() >= end:
                return False
            time.sleep(0.1)

    def healthy(self, i):
        """Server i's own verdict (GET /healthz): 200 once its JetStream, with every
        stream and consumer it holds a replica of, has caught up with the cluster."""
        status, _ = self.servers[i].monitor("/healthz")
        return status == 200

    def streams(self, i):
        """Server i's view of its streams (GET /jsz?streams=true): {name: state}, where
        state holds "messages", "first_seq", "last_seq", ..."""
        status, jsz = self.servers[i].monitor("/jsz?streams=true&config=true")
        if status != 200 or not isinstance(jsz, dict):
            return {}
        out = {}
        for account in jsz.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                out[stream["name"]] = dict(stream.get("state") or {},
                                           cluster=stream.get("cluster") or {})
        return out

    def logs(self):
        return "".join(f"--- nats {s.name} (port {s.client_port}) ---\n{s.log_tail()}"
                       for s in self.servers)

    def stop(self):
        """Stops every server (SIGTERM, then SIGKILL after 10 s) and removes their folders."""
        for s in self.servers:
            if s.running():
                s.proc.send_signal(signal.SIGTERM)
        for s in self.servers:
            if s.proc is not None:
                try:
                    s.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    s.proc.kill()
                    s.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _self_test():
    """Brings a cluster up, makes a stream kept on all three servers, kills one server
    (the meta leader), publishes without it, starts it again and waits until its copy
    of the stream holds every message; then stops and checks the folders are gone."""
    parent = tempfile.mkdtemp(prefix="nats-selftest-")
    failed = []

    def expect(cond, what):
        if not cond:
            failed.append(what)
            print("FAIL:", what, flush=True)

    try:
        with NatsCluster(3, parent) as c:
            client = NatsClient(c.servers[0].url())
            r = client.request("$JS.API.STREAM.CREATE.SELFTEST",
                               {"name": "SELFTEST", "subjects": ["selftest.>"], "num_replicas": 3,
                                "storage": "file"})
            expect("error" not in r, f"stream created: {r}")
            for k in range(10):
                r = client.request("selftest.x", f"m{k}".encode())
                expect(r.get("seq") == k + 1, f"publish {k}: {r}")
            client.close()
            leader = c.meta_leader(0)
            victim = next(s.index for s in c.servers if s.name == leader)
            survivor = (victim + 1) % 3
            c.kill(victim)
            expect(c.wait_ready(30), "a new meta leader after the kill")
            client = NatsClient(c.servers[survivor].url())
            end = time.time() + 30
            while True:  # the stream's own leader may have been the victim: retry until elected
                r = client.request("selftest.x", b"after", timeout=2)
                if r.get("seq") == 11 or time.time() > end:
                    break
                time.sleep(0.2)
            expect(r.get("seq") == 11, f"publish with a server down: {r}")
            client.close()
            expect(c.start(victim), "the killed server rejoins")
            end = time.time() + 30
            while time.time() < end and (c.streams(victim).get("SELFTEST") or {}).get("last_seq") != 11:
                time.sleep(0.2)
            state = c.streams(victim).get("SELFTEST") or {}
            expect(state.get("last_seq") == 11 and state.get("messages") == 11,
                   f"the restarted server caught up: {state}")
            folders = [s.folder for s in c.servers]
        expect(not any(os.path.exists(f) for f in folders), "folders removed")
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    print("nats_cluster self-test:", "FAILED" if failed else "ok")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(_self_test())
