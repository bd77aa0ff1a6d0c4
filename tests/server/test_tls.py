"""Black-box tests of TLS in `herald serve` (--tls-cert, --tls-key;
docs/operations.md, "TLS"), with a CA, an intermediate and server
certificates the test makes itself (python3-cryptography):

- every kind of client over the one port, each verifying the server's
  certificate against the test's CA: the HTTP API (Python's ssl, curl),
  static files, uploads and downloads whose URLs start https://, WSS with
  python3-websockets (subscribe, mutate, update), the JavaScript client
  (web-demo/herald.js on Node's `ws`), Convex's clients over https:// and
  the sync protocol over wss://, and `herald console wss://... --ca`;
- TLS 1.1 and a TLS 1.2 suite outside the list are refused by the server;
  plain HTTP and ws:// to the port fail, and the server serves on;
- SIGHUP with a new certificate (another key type): an established WSS
  connection goes on working with the old one while new connections get
  the new one; a broken or mismatched pair on SIGHUP is refused and the
  current one stays; the console refuses a certificate it cannot trust;
- at start: one flag without the other is a usage error, a key that is not
  the certificate's or a file that cannot be read is named, exit non-zero.

Run as: /usr/bin/python3 test_tls.py <herald> <source root>
"""
import asyncio
import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import warnings

import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_client import Client  # noqa: E402
from herald_testlib import Server, check, finish, wait_for, write_app  # noqa: E402

HERALD, ROOT = sys.argv[1], sys.argv[2]

SCHEMA = """import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
export default defineSchema({
  messages: defineTable({ text: v.string() }),
});
"""

MESSAGES = r'''
local M = {}
M.list = herald.query{handler = function(ctx)
  local out = {}
  for _, m in ipairs(ctx.db:query("messages"):collect()) do out[#out + 1] = m.text end
  return out
end}
M.add = herald.mutation{args = {text = v.string()}, handler = function(ctx, a)
  return ctx.db:insert("messages", {text = a.text})
end}
M.uploadUrl = herald.mutation{handler = function(ctx) return ctx.storage:generateUploadUrl() end}
M.fileUrl = herald.query{args = {id = v.id("_storage")}, handler = function(ctx, a)
  return ctx.storage:getUrl(a.id)
end}
return M
'''


# ---- certificates ---------------------------------------------------------------

def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(subject, key, issuer=None, issuer_key=None, ca=False, hosts=()):
    """A certificate for `key` signed by issuer_key (itself when None)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer, issuer_key = issuer or None, issuer_key or key
    b = (x509.CertificateBuilder()
         .subject_name(_name(subject))
         .issuer_name(issuer.subject if issuer else _name(subject))
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                        critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             issuer_key.public_key()), critical=False))
    if ca:
        b = b.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        names = [x509.DNSName(h) for h in hosts if not h[0].isdigit()]
        names += [x509.IPAddress(ipaddress.ip_address(h)) for h in hosts if h[0].isdigit()]
        b = (b.add_extension(x509.SubjectAlternativeName(names), critical=False)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                            critical=False))
    return b.sign(issuer_key, hashes.SHA256())


def pem(*certs):
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


# ---- clients ----------------------------------------------------------------------

def tls_context(ca_file):
    return ssl.create_default_context(cafile=ca_file)


def https(ctx, port, path, body=None, headers=None, method=None):
    """(status, headers, body) of one HTTPS request to localhost:port."""
    req = urllib.request.Request(f"https://localhost:{port}{path}", data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def api(ctx, port, kind, path, args=None):
    status, _, body = https(ctx, port, f"/api/{kind}",
                            json.dumps({"path": path, "args": args or {}}).encode(),
                            {"Content-Type": "application/json"})
    reply = json.loads(body or b"{}")
    return status, reply.get("value") if status == 200 else reply


def peer_cert(port, ca_file):
    """The DER certificate a new connection to the port is shown."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with tls_context(ca_file).wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def handshake_error(port, configure):
    """None when a handshake with a context set up by `configure` succeeds, else the error."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        configure(ctx)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.version()
                return None
    except (ssl.SSLError, OSError) as e:
        return e


def console(port, ca_file, key_file, commands="tables\n"):
    args = [HERALD, "console", f"wss://localhost:{port}", "--key-file", key_file]
    if ca_file:
        args += ["--ca", ca_file]
    p = subprocess.run(args, input=commands, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


# ---- the JavaScript clients, on Node ------------------------------------------------

NODE_SCRIPT = r"""
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const env = process.env;
let ws, convex;
try {
  ws = await import('ws');
  convex = await import('convex/browser');
} catch {
  console.log('SKIP: the npm packages are missing (npm ci in tests/js)');
  process.exit(77);
}
const ca = readFileSync(env.TLS_CA);
/* Node's `ws` trusting the test's CA, as a page's browser would trust a real one. */
class CAWebSocket extends ws.WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { ca });
  }
}
const { connect } = await import(pathToFileURL(env.TLS_ROOT + '/web-demo/herald.js').href);
const base = `localhost:${env.TLS_PORT}`;
const failures = [];
const check = (cond, what) => { if (!cond) { failures.push(what); console.log('FAIL: ' + what); } };
const until = async (cond, ms = 20000) => {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20)))
    if (cond()) return true;
  return cond();
};
const timer = setTimeout(() => { console.log('FAIL: stuck'); process.exit(1); }, 120000);

/* herald.js over wss://: a subscription follows a mutation made through it. */
const db = connect(`wss://${base}/ws`, { WebSocket: CAWebSocket });
let seen = null;
const stop = db.subscribe('messages:list', {}, (v) => { seen = v; }, (e) => check(false, `herald.js: ${e.message}`));
check(await until(() => Array.isArray(seen)), 'herald.js over wss: the first result');
await db.mutation('messages:add', { text: 'from herald.js' });
check(await until(() => seen.includes('from herald.js')), `herald.js over wss: the update (${JSON.stringify(seen)})`);
stop();
db.close();

/* Convex's clients: HTTP over https:// (fetch, NODE_EXTRA_CA_CERTS) and the sync protocol over wss://. */
const http = new convex.ConvexHttpClient(`https://${base}`);
await http.mutation('messages:add', { text: 'from convex http' });
check((await http.query('messages:list', {})).includes('from convex http'), 'ConvexHttpClient over https');
const client = new convex.ConvexClient(`https://${base}`, { webSocketConstructor: CAWebSocket });
let synced = null;
client.onUpdate('messages:list', {}, (v) => { synced = v; });
check(await until(() => Array.isArray(synced)), 'ConvexClient over wss: the first result');
await client.mutation('messages:add', { text: 'from convex sync' });
check(await until(() => synced.includes('from convex sync')), `ConvexClient over wss: the update (${JSON.stringify(synced)})`);
await client.close();
clearTimeout(timer);
console.log(failures.length ? `${failures.length} failed` : 'ok');
process.exit(failures.length ? 1 : 0);
"""


def node_clients(port, ca_file):
    node = shutil.which("node")
    js = os.path.join(ROOT, "tests", "js")
    if not node or not os.path.isdir(os.path.join(js, "node_modules")):
        print("node or tests/js/node_modules missing: the JavaScript clients are not tried")
        return
    env = dict(os.environ, TLS_CA=ca_file, TLS_PORT=str(port), TLS_ROOT=ROOT,
               NODE_EXTRA_CA_CERTS=ca_file)
    # --eval resolves bare imports from the working folder, as the tests in tests/js do.
    p = subprocess.run([node, "--input-type=module", "--eval", NODE_SCRIPT], cwd=js, env=env,
                       capture_output=True, text=True, timeout=180)
    print(p.stdout, end="")
    if p.returncode == 77:
        return
    check(p.returncode == 0, f"the JavaScript clients over TLS: {p.stdout}{p.stderr[-2000:]}")


# ---- the tests ----------------------------------------------------------------------

async def wss_live(port, ctx):
    """Subscribe, mutate and get the update over WSS; returns the open connection."""
    ws = await websockets.connect(f"wss://localhost:{port}/ws", ssl=ctx, max_size=None)
    c = Client(ws)
    c.pending_subs.add("s")
    r = await c.request({"type": "sub", "id": "s", "path": "messages:list", "args": {}})
    check(r.get("type") == "result", f"wss: subscribed ({r})")
    ack = await c.request({"type": "mutate", "id": "m1", "path": "messages:add",
                           "args": {"text": "over wss"}})
    check(ack.get("type") == "ack", f"wss: mutation acknowledged ({ack})")
    check("over wss" in (c.results.get("s") or []),
          f"wss: the update came before the ack ({c.results.get('s')})")
    return ws, c


async def still_live(c, text):
    """The connection's subscription follows one more mutation made through it."""
    ack = await c.request({"type": "mutate", "id": "m-" + text, "path": "messages:add",
                           "args": {"text": text}})
    return ack.get("type") == "ack" and text in (c.results.get("s") or [])


def wait_for_count(srv, text, n, seconds=10.0):
    """Whether `text` appears in n lines of the server's output within `seconds`."""
    return wait_for(lambda: sum(text in line for line in srv.lines) >= n, seconds)


def plain_to_tls_port(port):
    """What a plain HTTP request to the TLS port gets back (bytes; empty when closed)."""
    got = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /api/query HTTP/1.1\r\nHost: localhost\r\n\r\n")
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
    except OSError:
        pass
    return got


def start_errors(work, app, files):
    def refused(extra, code, text, what):
        srv = Server(HERALD, app, os.path.join(work, "data-refused"), extra=extra,
                     expect_start=False)
        out = srv.output()
        check(srv.proc.returncode == code and text in out,
              f"{what}: exit {code} naming it ({srv.proc.returncode}: {out.strip()[-300:]})")

    refused(["--tls-cert", files["cert"]], 2, "--tls-cert and --tls-key go together",
            "--tls-cert without --tls-key")
    refused(["--tls-key", files["key"]], 2, "--tls-cert and --tls-key go together",
            "--tls-key without --tls-cert")
    refused(["--tls-cert", files["cert"], "--tls-key", files["other_key"]], 1, files["other_key"],
            "a key that is not the certificate's")
    missing = os.path.join(work, "missing.pem")
    refused(["--tls-cert", missing, "--tls-key", files["key"]], 1, missing,
            "a certificate file that is not there")
    refused(["--tls-cert", files["key"], "--tls-key", files["key"]], 1,
            files["key"] + " holds no PEM certificate", "a key given as the certificate")
    refused(["--tls-cert", files["cert"], "--tls-key", files["cert"]], 1,
            files["cert"] + " holds no usable PEM private key", "a certificate given as the key")


def main():
    work = tempfile.mkdtemp(prefix="herald-tls-")
    try:
        app = write_app(work, SCHEMA, {"messages": MESSAGES})
        os.makedirs(os.path.join(app, "public"))
        write(os.path.join(app, "public", "index.html"), b"<html><p>a page over TLS</p></html>\n")
        # Root CA -> intermediate -> server (EC); the file holds the server's and the
        # intermediate's certificates, the client trusts only the root.
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = issue("Herald test root CA", root_key, ca=True)
        mid_key = ec.generate_private_key(ec.SECP256R1())
        mid = issue("Herald test intermediate", mid_key, root, root_key, ca=True)
        srv_key = ec.generate_private_key(ec.SECP256R1())
        srv_cert = issue("localhost", srv_key, mid, mid_key, hosts=["localhost", "127.0.0.1"])
        # The next certificate: an RSA key, signed by the root directly.
        new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        new_cert = issue("localhost", new_key, root, root_key, hosts=["localhost", "127.0.0.1"])
        files = {k: os.path.join(work, k + ".pem")
                 for k in ("ca", "cert", "key", "other_key", "other_ca")}
        write(files["ca"], pem(root))
        write(files["cert"], pem(srv_cert, mid))
        write(files["key"], key_pem(srv_key))
        write(files["other_key"], key_pem(ec.generate_private_key(ec.SECP256R1())))
        other_key = ec.generate_private_key(ec.SECP256R1())
        write(files["other_ca"], pem(issue("Another CA", other_key, ca=True)))

        start_errors(work, app, files)

        data = os.path.join(work, "data")
        srv = Server(HERALD, app, data, extra=["--tls-cert", files["cert"],
                                               "--tls-key", files["key"]])
        port = srv.port
        ctx = tls_context(files["ca"])
        try:
            check(f"listening on https://localhost:{port}" in srv.output() and
                  f"wss://localhost:{port}/ws" in srv.output(),
                  f"the start line names https:// and wss:// ({srv.output()})")
            check(peer_cert(port, files["ca"]) == der(srv_cert),
                  "the server shows its certificate, with the intermediate the client lacks")

            # The HTTP API, static files, uploads and downloads, all on the one port.
            status, value = api(ctx, port, "mutation", "messages:add", {"text": "over https"})
            check(status == 200, f"https: a mutation ({status} {value})")
            status, value = api(ctx, port, "query", "messages:list")
            check(status == 200 and value == ["over https"], f"https: a query ({status} {value})")
            status, _, body = https(ctx, port, "/")
            check(status == 200 and b"a page over TLS" in body, f"https: the app's pages ({status})")
            status, upload = api(ctx, port, "mutation", "messages:uploadUrl")
            check(status == 200 and str(upload).startswith(f"https://localhost:{port}/"),
                  f"upload URLs start https://localhost:PORT by default ({upload})")
            if status == 200:
                path = upload[len(f"https://localhost:{port}"):]
                # Larger than any buffer on the way: TLS records and partial writes.
                blob = os.urandom(3 << 20)
                status, _, body = https(ctx, port, path, blob,
                                        {"Content-Type": "application/octet-stream"}, "POST")
                storage_id = json.loads(body or b"{}").get("storageId")
                check(status == 200 and storage_id, f"https: an upload ({status} {body[:200]})")
                status, url = api(ctx, port, "query", "messages:fileUrl", {"id": storage_id})
                check(status == 200 and str(url).startswith(f"https://localhost:{port}/"),
                      f"file URLs start https://localhost:PORT ({url})")
                status, _, body = https(ctx, port, url[len(f"https://localhost:{port}"):])
                check(status == 200 and body == blob,
                      f"https: a download, byte for byte ({status}, {len(body)} bytes)")

            # curl, trusting the test's CA.
            curl = shutil.which("curl")
            if check(curl, "curl is installed (scripts/deps test)"):
                p = subprocess.run(
                    [curl, "-sS", "--cacert", files["ca"], "-H", "Content-Type: application/json",
                     "-d", json.dumps({"path": "messages:list", "args": {}}),
                     f"https://localhost:{port}/api/query"],
                    capture_output=True, text=True, timeout=60)
                check(p.returncode == 0 and "over https" in p.stdout,
                      f"curl --cacert: a query ({p.returncode} {p.stdout} {p.stderr})")
                p = subprocess.run([curl, "-sS", f"https://localhost:{port}/api/query"],
                                   capture_output=True, text=True, timeout=60)
                check(p.returncode == 60, f"curl without the CA refuses the server ({p.returncode})")

            # Protocol versions and suites: the server refuses what it must.
            e = handshake_error(port, lambda c: (
                setattr(c, "minimum_version", ssl.TLSVersion.TLSv1),
                setattr(c, "maximum_version", ssl.TLSVersion.TLSv1_1),
                c.set_ciphers("DEFAULT:@SECLEVEL=0")))
            check(isinstance(e, ssl.SSLError) and "PROTOCOL_VERSION" in str(e.reason),
                  f"TLS 1.1 is refused by the server ({e!r})")
            e = handshake_error(port, lambda c: (
                setattr(c, "maximum_version", ssl.TLSVersion.TLSv1_2),
                c.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0")))
            check(isinstance(e, ssl.SSLError) and "HANDSHAKE_FAILURE" in str(e.reason),
                  f"TLS 1.2 with CBC suites alone is refused ({e!r})")
            e = handshake_error(port, lambda c: setattr(c, "maximum_version",
                                                         ssl.TLSVersion.TLSv1_2))
            check(e is None, f"TLS 1.2 with today's suites is taken ({e!r})")

            # Plain HTTP and ws:// to the TLS port fail; the server serves on.
            got = plain_to_tls_port(port)
            check(b"HTTP/1.1 200" not in got, f"plain HTTP to the TLS port gets no answer ({got[:80]})")

            async def plain_ws():
                try:
                    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10):
                        return True
                except Exception:
                    return False
            check(not asyncio.run(plain_ws()), "ws:// to the TLS port fails")
            status, value = api(ctx, port, "query", "messages:list")
            check(status == 200, f"the server serves on after plain-text clients ({status})")

            # The server's own pages over https are its own origin.
            async def origin_ws(origin):
                try:
                    async with websockets.connect(f"wss://localhost:{port}/ws", ssl=ctx,
                                                  origin=origin, open_timeout=10) as w:
                        await w.send(json.dumps({"type": "ping", "id": "p"}))
                        return json.loads(await w.recv()).get("type") == "pong"
                except Exception:
                    return False
            check(asyncio.run(origin_ws(f"https://localhost:{port}")),
                  "a page of the server's (Origin https://localhost:PORT) opens a WebSocket")
            check(not asyncio.run(origin_ws("https://elsewhere.example")),
                  "another origin is refused over TLS as without")

            # The terminal console.
            key_file = os.path.join(data, "admin.key")
            rc, out, err = console(port, files["ca"], key_file)
            check(rc == 0 and "messages" in out, f"herald console wss:// --ca ({rc} {out} {err})")
            rc, out, err = console(port, None, key_file)
            check(rc == 1 and "certificate is not trusted" in err and "--ca" in err,
                  f"the console refuses a certificate of an unknown CA ({rc} {err})")
            rc, out, err = console(port, files["other_ca"], key_file)
            check(rc == 1 and "certificate is not trusted" in err,
                  f"the console refuses it with another CA's --ca ({rc} {err})")

            node_clients(port, files["ca"])

            async def reloads():
                ws, c = await wss_live(port, ctx)
                try:
                    # A new pair: an established connection keeps working, new ones see it.
                    write(files["cert"], pem(new_cert))
                    write(files["key"], key_pem(new_key))
                    srv.sighup()
                    check(srv.wait_for_line("TLS certificate reloaded"),
                          f"SIGHUP reloads the certificate ({srv.output()[-500:]})")
                    check(await still_live(c, "after the reload"),
                          "an established WSS connection works on after the reload")
                    check(peer_cert(port, files["ca"]) == der(new_cert),
                          "a new connection gets the new certificate")
                    check(ws.transport.get_extra_info("ssl_object").getpeercert(True) ==
                          der(srv_cert), "the established connection kept the old one")
                    status, value = api(ctx, port, "query", "messages:list")
                    check(status == 200 and "after the reload" in value,
                          f"https with the new certificate ({status} {value})")
                    # A broken certificate, then a key of another pair: refused, the current stays.
                    for what, cert_bytes, key_bytes in (
                            ("a broken certificate", b"-----BEGIN CERTIFICATE-----\nnope\n",
                             key_pem(new_key)),
                            ("a key of another certificate", pem(new_cert),
                             key_pem(srv_key))):
                        before = srv.output().count("TLS reload refused")
                        write(files["cert"], cert_bytes)
                        write(files["key"], key_bytes)
                        srv.sighup()
                        check(wait_for_count(srv, "TLS reload refused", before + 1),
                              f"SIGHUP with {what} is refused ({srv.output()[-500:]})")
                        check(peer_cert(port, files["ca"]) == der(new_cert),
                              f"after {what}, new connections get the current certificate")
                        check(await still_live(c, "after " + what),
                              f"after {what}, the established connection works on")
                finally:
                    await ws.close()
            asyncio.run(reloads())
            status, value = api(ctx, port, "query", "messages:list")
            check(status == 200, f"the server serves on to the end ({status})")
            check(srv.proc.poll() is None, "the server is alive")
        finally:
            code = srv.stop()
            check(code == 0, f"the server stops cleanly ({code}): {srv.output()[-2000:]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("test_tls")


if __name__ == "__main__":
    sys.exit(main())
