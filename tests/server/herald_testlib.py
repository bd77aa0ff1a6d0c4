"""Shared pieces of Herald's black-box tests: the real server on a random
free port, HTTP calls, checks that collect failures, and JWTs signed with
keys the test makes itself (python3-cryptography), with the JWKS files
and auth configuration that let the server verify them.

Tests run with /usr/bin/python3 (Debian's python3-websockets).
"""
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import websockets
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

failures = []


def check(cond, what):
    """Records a failed expectation and goes on, so one run reports them all."""
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)
    return cond


def finish(name):
    """Prints the verdict and returns the process exit code."""
    if failures:
        print(f"{name}: {len(failures)} checks failed")
        return 1
    print(f"{name}: all checks passed")
    return 0


def admin_key(data):
    """The admin key of data folder `data`, as scripts get it: from the
    file (mode 0600) its first start or `herald admin-key` wrote; None if
    there is none. The server never prints the key itself."""
    try:
        with open(os.path.join(data, "admin.key")) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`herald serve` for one app and data folder, stopped with SIGTERM."""

    def __init__(self, herald, app, data, extra=(), expect_start=True, no_sync=True,
                 preexec_fn=None):
        self.herald, self.app, self.data = herald, app, data
        self.port = free_port()
        self.lines = []
        self.key = None
        self.key_shown = False  # this start made a new admin key (and said where it is)
        self.proc = subprocess.Popen(
            [herald, "--data", data, "--app", app, *(["--no-sync"] if no_sync else []),
             "serve", "--port", str(self.port), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=preexec_fn)
        deadline = time.time() + 30
        started = False
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith("admin key written to "):
                self.key_shown = True
            if "listening on" in line:
                started = True
                break
        if started:
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()
            self.key = admin_key(data)
        elif expect_start:
            raise RuntimeError("server did not start: " + "".join(self.lines))
        else:
            self.proc.wait(timeout=30)
            self.reader = None

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def output(self):
        return "".join(self.lines)

    def wait_for_line(self, text, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(text in line for line in self.lines):
                return True
            time.sleep(0.05)
        return False

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def ws(self):
        return websockets.connect(f"ws://127.0.0.1:{self.port}/ws", max_size=None)

    def sighup(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.reader:
            self.reader.join(timeout=10)
        return self.proc.returncode


def http(server, endpoint, body, token=None, raw=None):
    """POSTs JSON to /api/<endpoint>; returns (HTTP status, decoded reply)."""
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(server.url("/api/" + endpoint), data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def call(server, kind, path, args=None, token=None):
    """A function call over HTTP, as a worker makes it: (status, reply)."""
    return http(server, kind, {"path": path, "args": args or {}}, token)


def call_value(server, kind, path, args=None, token=None):
    """A function call over HTTP: (status, its value when 200, else the whole reply)."""
    status, reply = call(server, kind, path, args, token)
    return status, reply.get("value") if status == 200 else reply


def value(server, kind, path, args=None, token=None):
    """A function call's value; raises when the call fails."""
    status, v = call_value(server, kind, path, args, token)
    if status != 200:
        raise RuntimeError(f"{path}: {status} {v}")
    return v


def wait_for(cond, seconds=10.0):
    """Polls `cond` until it holds or `seconds` pass; returns its last answer."""
    end = time.time() + seconds
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


# ---- JWTs -----------------------------------------------------------------

def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(n, length=None):
    length = length or (n.bit_length() + 7) // 8
    return b64url(n.to_bytes(length, "big"))


class Issuer:
    """An identity provider: its keys, its JWKS, and tokens it signs."""

    def __init__(self, issuer, audience, alg="RS256", leeway=None):
        self.issuer, self.audience, self.alg, self.leeway = issuer, audience, alg, leeway
        self.kid = hashlib.sha256(issuer.encode()).hexdigest()[:16]
        if alg == "RS256":
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            self.key = ec.generate_private_key(ec.SECP256R1())
        elif alg == "HS256":
            self.key = os.urandom(32)
        elif alg == "EdDSA":  # Ed25519 (RFC 8037), Better Auth's default
            self.key = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(alg)

    def jwk(self):
        if self.alg == "RS256":
            pub = self.key.public_key().public_numbers()
            return {"kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig",
                    "n": _int_b64(pub.n), "e": _int_b64(pub.e)}
        if self.alg == "ES256":
            pub = self.key.public_key().public_numbers()
            return {"kty": "EC", "kid": self.kid, "crv": "P-256", "alg": "ES256",
                    "x": _int_b64(pub.x, 32), "y": _int_b64(pub.y, 32)}
        if self.alg == "EdDSA":
            raw = self.key.public_key().public_bytes(serialization.Encoding.Raw,
                                                     serialization.PublicFormat.Raw)
            return {"kty": "OKP", "kid": self.kid, "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                    "x": b64url(raw)}
        return {"kty": "oct", "kid": self.kid, "alg": "HS256", "k": b64url(self.key)}

    def provider(self, jwks_path):
        p = {"issuer": self.issuer, "audience": self.audience, "jwks": jwks_path,
             "algorithms": [self.alg]}
        if self.leeway is not None:
            p["leeway"] = self.leeway
        return p

    def token(self, subject, ttl=3600, **claims):
        now = int(time.time())
        body = {"iss": self.issuer, "aud": self.audience, "sub": subject,
                "iat": now, "exp": now + ttl}
        body.update(claims)
        header = {"alg": self.alg, "typ": "JWT", "kid": self.kid}
        signing = (b64url(json.dumps(header)) + "." + b64url(json.dumps(body))).encode()
        if self.alg == "RS256":
            sig = self.key.sign(signing, padding.PKCS1v15(), hashes.SHA256())
        elif self.alg == "ES256":
            r, s = decode_dss_signature(self.key.sign(signing, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        elif self.alg == "EdDSA":
            sig = self.key.sign(signing)
        else:
            sig = hmac.new(self.key, signing, hashlib.sha256).digest()
        return signing.decode() + "." + b64url(sig)


def write_app(work, schema_ts, functions):
    """Writes an app folder WORK/app: schema.ts and functions/<module>.lua for each
    (module, source) of `functions`; returns its path."""
    app = os.path.join(work, "app")
    os.makedirs(os.path.join(app, "functions"))
    with open(os.path.join(app, "schema.ts"), "w") as f:
        f.write(schema_ts)
    for module, source in functions.items():
        with open(os.path.join(app, "functions", module + ".lua"), "w") as f:
            f.write(source)
    return app


def app_with_issuers(app, issuers, workdir=None):
    """A copy of app folder `app` whose auth.config.json trusts `issuers`
    (their JWKS written beside it); returns the copy's path."""
    workdir = workdir or tempfile.mkdtemp(prefix="herald-app-")
    dst = os.path.join(workdir, os.path.basename(app.rstrip("/")))
    shutil.copytree(app, dst, ignore=shutil.ignore_patterns("node_modules", "*.pyc"))
    os.makedirs(os.path.join(dst, "keys"), exist_ok=True)
    providers = []
    for i, iss in enumerate(issuers):
        path = f"keys/test-{i}.jwks.json"
        with open(os.path.join(dst, path), "w") as f:
            json.dump({"keys": [iss.jwk()]}, f)
        providers.append(iss.provider(path))
    with open(os.path.join(dst, "auth.config.json"), "w") as f:
        json.dump({"providers": providers}, f, indent=2)
    return dst
