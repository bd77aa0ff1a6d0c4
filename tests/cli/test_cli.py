"""Black-box tests of the `herald` command line.

Run as: python3 test_cli.py <path to herald> <source root>
Covers schema check/show/apply, import and export round trips (ids kept),
queries, the consistency check, clear errors for bad input, and one writer
per data folder: while `herald serve` runs, other writers are refused with
its pid, read-only commands work beside it and never create a folder.
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERALD, ROOT = sys.argv[1], sys.argv[2]
failures = []


def run(*args, ok=True, stdin=None):
    p = subprocess.run([HERALD, *args], capture_output=True, text=True, input=stdin, timeout=120)
    if ok and p.returncode != 0:
        raise AssertionError(f"herald {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def test_schema_tools(tmp):
    fixtures = os.path.join(ROOT, "tests", "fixtures", "schemas")
    for name in sorted(os.listdir(fixtures)):
        path = os.path.join(fixtures, name)
        p = run("schema", "check", path, ok=False)
        if name.startswith("bad_") or name.startswith("broken"):
            check(p.returncode == 1, f"{name} should be refused")
            check("SchemaError" in p.stderr or "InvalidArgument" in p.stderr, f"{name}: error code")
        elif name.endswith(".ts") or name.endswith(".json"):
            check(p.returncode == 0, f"{name} should load: {p.stderr}")
    # schema show prints canonical JSON that loads again and means the same.
    app = os.path.join(ROOT, "examples", "twitch-jobs")
    shown = run("--app", app, "schema", "show").stdout
    with open(os.path.join(tmp, "schema.json"), "w") as f:
        f.write(shown)
    again = run("schema", "show", os.path.join(tmp, "schema.json")).stdout
    check(json.loads(shown) == json.loads(again), "schema show round trip")
    check("by_twitch_id" in shown, "schema show names the indexes")
    # A syntax error names file, line and column.
    bad = os.path.join(tmp, "bad.ts")
    with open(bad, "w") as f:
        f.write('import { v } from "convex/values";\nexport default defineSchema({\n  t: defineTable({ a: v.string( }),\n});\n')
    p = run("schema", "check", bad, ok=False)
    check(p.returncode == 1 and "bad.ts:3:" in p.stderr, f"syntax error position: {p.stderr}")


def test_round_trip(tmp):
    app = os.path.join(ROOT, "examples", "twitch-jobs")
    data = os.path.join(tmp, "data")
    run("--no-sync", "--data", data, "--app", app, "schema", "apply")
    p = run("--no-sync", "--data", data, "import", "--table", "videos",
            os.path.join(app, "seed", "videos.jsonl"))
    check("imported 8 documents" in p.stdout, f"import count: {p.stdout}")
    q = run("--data", data, "query",
            '{"table":"videos","index":"by_status","range":[{"eq":["status","Completed"]}]}').stdout
    docs = json.loads(q)
    check(len(docs) == 1 and docs[0]["status"] == "Completed", f"query by_status: {q}")
    check(all(len(d["_id"]) == 32 for d in docs), "ids are 32 characters")
    run("--data", data, "check")
    out1 = os.path.join(tmp, "export1")
    run("--data", data, "export", out1)
    data2 = os.path.join(tmp, "data2")
    p = run("--no-sync", "--data", data2, "import", out1)
    check("imported 8 documents" in p.stdout, "import of an export folder")
    out2 = os.path.join(tmp, "export2")
    run("--data", data2, "export", out2)
    for name in ("videos.jsonl", "_tables.json"):
        a = open(os.path.join(out1, name)).read()
        b = open(os.path.join(out2, name)).read()
        check(a == b and a.strip(), f"export of the import equals the original export ({name})")
    run("--data", data2, "check")
    # Importing the same ids again is refused and changes nothing.
    p = run("--data", data2, "import", out1, ok=False)
    check(p.returncode == 1 and "already exists" in p.stderr, f"duplicate import: {p.stderr}")
    n = len(json.loads(run("--data", data2, "query", '{"table":"videos"}').stdout))
    check(n == 8, "refused import left the data as it was")
    # get by id.
    doc = docs[0]
    got = json.loads(run("--data", data2, "get", doc["_id"]).stdout)
    check(got == doc, "get returns the same document after export/import")


def test_bad_input(tmp):
    app = os.path.join(ROOT, "examples", "twitch-jobs")
    data = os.path.join(tmp, "data3")
    run("--no-sync", "--data", data, "--app", app, "schema", "apply")
    cases = [
        ('{"table":', "InvalidArgument"),
        ('{"table":"nope"}', "NotFound"),
        ('{"table":"videos","index":"by_status","range":[{"gt":["title","x"]}]}', "InvalidArgument"),
        ('{"table":"videos","take":"ten"}', "InvalidArgument"),
        ("[" * 100000, "InvalidArgument"),
    ]
    for text, code in cases:
        p = run("--data", data, "query", text, ok=False)
        check(p.returncode == 1 and code in p.stderr, f"query {text[:40]!r}: {p.stderr.strip()[:200]}")
    lines = os.path.join(tmp, "bad.jsonl")
    with open(lines, "w") as f:
        f.write('{"twitchId":"1","title":"ok","status":"Queued"}\n{"twitchId":2,"title":"x","status":"Queued"}\n')
    p = run("--data", data, "import", "--table", "videos", lines, ok=False)
    check(p.returncode == 1 and "line 2" in p.stderr and "twitchId" in p.stderr, f"bad line: {p.stderr}")
    n = len(json.loads(run("--data", data, "query", '{"table":"videos"}').stdout))
    check(n == 0, "a failed import commits nothing of that file")
    p = run("--data", data, "get", "not-an-id", ok=False)
    check(p.returncode == 1 and "InvalidArgument" in p.stderr, "bad id")
    p = run("frobnicate", ok=False)
    check(p.returncode == 2, "unknown command is a usage error")


def test_functions_and_keys(tmp):
    app = os.path.join(ROOT, "examples", "twitch-jobs")
    p = run("--app", app, "functions")
    check("videos:getJobById\tquery" in p.stdout and "videos:completeJob\tmutation" in p.stdout,
          f"functions lists paths and kinds: {p.stdout}")
    broken = os.path.join(tmp, "broken-app")
    shutil.copytree(app, broken)
    with open(os.path.join(broken, "functions", "bad.lua"), "w") as f:
        f.write("return {x = herald.query{handler = function() end}\n")
    p = run("--app", broken, "functions", ok=False)
    check(p.returncode == 1 and "functions/bad.lua:2:" in p.stderr, f"broken file: {p.stderr}")
    data = os.path.join(tmp, "keys")
    key_file = os.path.join(os.path.realpath(tmp), "keys", "admin.key")

    def admin_key():
        """`herald admin-key`: the key goes to a file only its owner reads, and only the
        file's path is printed; returns the key, read from the file as scripts do."""
        # Even with a umask that would let anyone read new files.
        p = subprocess.run([HERALD, "--data", data, "admin-key"], capture_output=True,
                           text=True, timeout=120, preexec_fn=lambda: os.umask(0))
        check(p.returncode == 0 and
              p.stdout == f"admin key written to {key_file} (mode 0600)\n",
              f"admin-key prints the file's path: {p.stdout!r} {p.stderr!r}")
        check(os.stat(key_file).st_mode & 0o777 == 0o600, "the key file is mode 0600")
        with open(key_file) as f:
            key = f.read().strip()
        check(key not in p.stdout + p.stderr, "admin-key never prints the key")
        return key

    first = admin_key()
    second = admin_key()
    check(first.startswith("hk_") and second.startswith("hk_") and first != second,
          "admin-key makes a new key each time")
    check(not [n for n in os.listdir(data) if n.endswith(".tmp")], "no temporary file is left")
    with open(os.path.join(data, "admin-key.sha256"), "rb") as f:
        stored = f.read()
    check(len(stored) == 32 and first.encode() not in stored and second.encode() not in stored,
          "the hash file holds only the hash")
    check(stored == hashlib.sha256(second.encode()).digest(), "the hash is the new key's SHA-256")
    check(os.stat(os.path.join(data, "admin-key.sha256")).st_mode & 0o077 == 0,
          "the hash file is private")


def start_server(data, app):
    """`herald serve --dev` on a free port; returns the process and the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = subprocess.Popen([HERALD, "--no-sync", "--data", data, "--app", app, "serve", "--dev",
                            "--port", str(port)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.time() + 60
    while time.time() < deadline:
        line = srv.stdout.readline()
        lines.append(line)
        if not line or "listening on" in line:
            break
    if "listening on" not in lines[-1]:
        srv.kill()
        raise AssertionError("server did not start: " + "".join(lines))
    return srv, port


def insert_over_http(port, title):
    body = json.dumps({"ops": [{"op": "insert", "table": "videos", "value": {
        "twitchId": title, "title": title, "status": "Queued"}}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/mutation", data=body,
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def checked_version(data):
    p = run("--data", data, "check")
    words = p.stdout.split()
    return int(words[2]) if words[:2] == ["ok:", "version"] else None


def test_one_writer(tmp):
    app = os.path.join(ROOT, "examples", "twitch-jobs")
    seed = os.path.join(app, "seed", "videos.jsonl")
    # Read-only commands never create a data folder (nor a database in an empty one).
    missing = os.path.join(tmp, "nonexistent")
    empty = os.path.join(tmp, "empty")
    os.mkdir(empty)
    for args in (["get", "0" * 32], ["query", '{"table":"videos"}'],
                 ["export", os.path.join(tmp, "never")], ["check"], ["schema", "show"]):
        for folder in (missing, empty):
            p = run("--data", folder, *args, ok=False)
            check(p.returncode == 1 and "NotFound" in p.stderr and
                  "no Herald database in " + folder in p.stderr,
                  f"{args[0]} on {os.path.basename(folder)}: {p.returncode} {p.stderr}")
        check(not os.path.exists(missing) and os.listdir(empty) == [],
              f"{args[0]} created nothing: {os.listdir(empty)}")
    check(not os.path.exists(os.path.join(tmp, "never")), "export wrote no folder")

    data = os.path.join(tmp, "served")
    run("--no-sync", "--data", data, "--app", app, "import", "--table", "videos", seed)
    check(checked_version(data) == 8, "eight mutations imported")
    srv, port = start_server(data, app)
    try:
        # Every other writer is refused and names the server.
        for args in (["import", "--table", "videos", seed], ["--app", app, "schema", "apply"],
                     ["--app", app, "serve", "--port", "0"], ["serve", "--port", "0"]):
            p = run("--no-sync", "--data", data, *args, ok=False)
            check(p.returncode == 1 and "Busy" in p.stderr and "herald serve" in p.stderr and
                  f"pid {srv.pid}" in p.stderr and "in use" in p.stderr,
                  f"{' '.join(args[:2])} beside the server refused: {p.returncode} {p.stderr}")
        # Read-only commands work beside it.
        check(checked_version(data) == 8, "the refused import wrote nothing")
        docs = json.loads(run("--data", data, "query", '{"table":"videos"}').stdout)
        check(len(docs) == 8, f"query beside the server: {len(docs)}")
        got = json.loads(run("--data", data, "get", docs[0]["_id"]).stdout)
        check(got == docs[0], "get beside the server")
        run("--data", data, "export", os.path.join(tmp, "beside"))
        check(os.path.exists(os.path.join(tmp, "beside", "videos.jsonl")), "export beside it")
        # The server's versions go on from the store's, and stay there.
        reply = insert_over_http(port, "after-refusal")
        check(reply.get("version") == 9, f"the server's next version: {reply}")
        check(checked_version(data) == 9, "the stored version is the server's")
        # A new admin key may be made beside the server, which takes it on SIGHUP.
        p = run("--data", data, "admin-key", ok=False)
        check(p.returncode == 0 and f"pid {srv.pid}" in p.stderr and "SIGHUP" in p.stderr,
              f"admin-key beside the server names it: {p.returncode} {p.stderr}")
    finally:
        srv.send_signal(signal.SIGKILL)
        srv.wait(timeout=30)
        srv.stdout.close()
    # The kernel released the lock of the killed server: writers work again.
    p = run("--no-sync", "--data", data, "import", "--table", "videos", seed)
    check("imported 8 documents" in p.stdout, f"import after the server died: {p.stdout}")
    check(checked_version(data) == 17, "versions go on after the server")


def main():
    tmp = tempfile.mkdtemp(prefix="herald-cli-")
    try:
        for t in (test_schema_tools, test_round_trip, test_bad_input, test_functions_and_keys,
                  test_one_writer):
            try:
                t(tmp)
            except Exception as e:  # a crash of one test is a failure, not the end
                failures.append(f"{t.__name__}: {e}")
                print("FAIL:", t.__name__, e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("cli: all passed" if not failures else f"cli: {len(failures)} failures")
    sys.exit(1 if failures else 0)


main()
