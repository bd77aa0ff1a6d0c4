"""Black-box tests of Herald's configuration: `herald serve`'s options from
the command line, HERALD_* environment variables and a --config file, in
that order of precedence; --help, --version and the refusals.

Run as: python3 test_config.py <path to herald> <source root>
        python3 test_config.py <path to herald> --docs   (prints the table of
        docs/operations.md, "Configuration", from `herald serve --help`)
"""
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
from herald_testlib import Server, free_port  # noqa: E402  (stopped with SIGTERM, as every test server)

HERALD = sys.argv[1]
failures = []
# The variables this test sets: none may leak in from the caller's environment.
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_") or k == "HERALD_LOOP"}


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)
    return cond


def run(*args, env=None):
    return subprocess.run([HERALD, *args], capture_output=True, text=True, timeout=60,
                          env={**CLEAN_ENV, **(env or {})})


def parse_help(text):
    """`herald serve --help`'s options: [{name, metavar, alias, help, env, default}] in order.
    Each is a line "  --name VALUE (or --alias)", then its help and "env VAR, default
    DEFAULT", wrapped in lines indented by six spaces."""
    opts = []
    lines = text.split("\n")
    for line in lines[lines.index("options:") + 1:]:
        m = re.fullmatch(r"  --([a-z0-9-]+)(?: (\S+))?(?: \(or --([a-z0-9-]+)\))?", line)
        if m:
            opts.append({"name": m.group(1), "metavar": m.group(2), "alias": m.group(3), "text": []})
        elif line.startswith("      ") and opts:
            opts[-1]["text"].append(line.strip())
        elif line.strip():
            raise ValueError(f"unexpected line in serve --help: {line!r}")
    for o in opts:
        m = re.fullmatch(r"(.*) env (HERALD_[A-Z0-9_]+), default (.+)", " ".join(o.pop("text")))
        o["help"], o["env"], o["default"] = m.groups() if m else ("", None, None)
    return opts


def docs_table(opts):
    """The Markdown table docs/operations.md holds, made from parse_help's list."""
    def cell(text):
        return text.replace("|", "\\|")
    rows = ["| option | environment | default | what it sets |", "|---|---|---|---|"]
    for o in opts:
        flag = f"--{o['name']}" + (f" {o['metavar']}" if o["metavar"] else "")
        flag = f"`{flag}`" + (f" (`--{o['alias']}`)" if o["alias"] else "")
        rows.append(f"| {cell(flag)} | `{o['env']}` | {cell(o['default'])} | {cell(o['help'])} |")
    return rows


class Serve(Server):
    """`herald serve` started with these arguments and environment (no --port
    unless they have it); `port` is the one it says it listens on."""

    def __init__(self, args, env):  # pylint: disable=super-init-not-called
        self.reader = None
        self.proc = subprocess.Popen([HERALD, "--no-sync", "serve", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     env={**CLEAN_ENV, **env})
        self.lines, self.port = [], None
        for line in self.proc.stdout:
            self.lines.append(line)
            m = re.search(r"listening on http://[^ ]*:(\d+) ", line)
            if m:
                self.port = int(m.group(1))
                break

    def post(self, size):
        """Status of a POST /api/mutation whose body is `size` bytes, sent to the port it said."""
        body = b'{"path":"nope:nothing","args":{"pad":"' + b"x" * (size - 40) + b'"}}'
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", "/api/mutation", body, {"Content-Type": "application/json"})
            return conn.getresponse().status
        finally:
            conn.close()



def test_version_and_help():
    for args in (["--version"], ["-V"], ["version"]):
        p = run(*args)
        check(p.returncode == 0 and re.fullmatch(r"herald \d+\.\d+\.\d+\n", p.stdout),
              f"herald {args[0]}: {p.returncode} {p.stdout!r} {p.stderr!r}")
    for args in (["--help"], ["-h"], ["help"]):
        p = run(*args)
        check(p.returncode == 0 and "serve [OPTIONS]" in p.stdout and "export DIR" in p.stdout,
              f"herald {args[0]} lists the commands: {p.returncode} {p.stderr}")
    p = run("--frobnicate", "check")
    check(p.returncode == 2 and "unknown option --frobnicate" in p.stderr,
          f"an unknown global option: {p.returncode} {p.stderr}")
    outputs = [run(*args) for args in (["serve", "--help"], ["serve", "-h"], ["help", "serve"],
                                       ["serve", "--port", "1", "--help"])]
    for p in outputs:
        check(p.returncode == 0 and p.stdout == outputs[0].stdout and "--port N" in p.stdout,
              f"serve --help (and -h, help serve): {p.returncode} {p.stderr}")
    wide = [line for line in outputs[0].stdout.split("\n") if len(line) > 80]
    check(not wide, f"serve --help fits 80 columns: {wide}")
    opts = parse_help(outputs[0].stdout)
    names = [o["name"] for o in opts]
    for name in ("config", "data", "app", "port", "host", "dev", "allow-origin", "max-connections",
                 "max-message", "max-memory", "public-url", "allow-fetch", "scheduled-retention"):
        check(name in names, f"serve --help lists --{name}")
    check(len(set(names)) == len(names), f"every option once: {names}")
    for o in opts:
        check(len(o["help"]) >= 10, f"--{o['name']} has help text: {o['help']!r}")
        check(o["env"] == "HERALD_" + o["name"].upper().replace("-", "_"),
              f"--{o['name']}'s variable: {o['env']}")
        check(bool(o["default"]), f"--{o['name']} says its default")
    host = next((o for o in opts if o["name"] == "host"), {})
    check(host.get("alias") == "bind" and host.get("env") == "HERALD_HOST",
          f"--host (or --bind), HERALD_HOST: {host}")
    return opts


def test_refusals(tmp, opts):
    p = run("serve", "--frobnicate", "1")
    check(p.returncode == 2 and "unknown option --frobnicate" in p.stderr,
          f"unknown serve option: {p.returncode} {p.stderr}")
    listed = set(re.findall(r"--([a-z0-9-]+)", p.stderr.split("are:", 1)[-1]))
    check(listed >= {o["name"] for o in opts}, f"the refusal lists every option: {p.stderr}")
    cases = [
        (["serve", "--port", "abc"], {}, "serve: bad --port (0 to 65535)"),
        (["serve", "--port=70000"], {}, "serve: bad --port (0 to 65535)"),
        (["serve", "--max-connections", "-3"], {}, "serve: bad --max-connections"),
        (["serve", "--idle-timeout", "1"], {}, "serve: bad --idle-timeout (2 to 86400)"),
        (["serve", "--max-memory", "8"], {}, "serve: bad --max-memory (16 MiB or more)"),
        (["serve", "--evaluators", "65"], {}, "serve: bad --evaluators (1 to 64)"),
        (["serve", "--public-url", "ftp://x"], {}, "serve: bad --public-url"),
        (["serve", "--max-message", "1e6"], {}, "serve: bad --max-message"),
        (["serve", "--port"], {}, "serve: --port needs a value"),
        (["serve", "stray"], {}, "serve: unexpected argument \"stray\""),
        (["serve", "--max_connections", "5"], {}, "unknown option --max_connections"),
        (["serve", "-x"], {}, "unknown option -x"),
        (["serve", "--host="], {}, "serve: bad --host"),
        (["--data=", "check"], {}, "--data needs a folder"),
        (["serve"], {"HERALD_PORT": "abc"}, "HERALD_PORT=abc: bad --port (0 to 65535)"),
        (["serve"], {"HERALD_MAX_MESSAGE": "lots"}, "HERALD_MAX_MESSAGE=lots: bad --max-message"),
        (["serve"], {"HERALD_DEV": "maybe"}, "HERALD_DEV=maybe: bad --dev (true or false)"),
        (["serve"], {"HERALD_FETCH_TIMEOUT": "0"}, "HERALD_FETCH_TIMEOUT=0: bad --fetch-timeout"),
    ]
    for args, env, message in cases:
        p = run(*args, env=env)
        check(p.returncode == 2 and message in p.stderr,
              f"{' '.join(args)} {env}: {p.returncode} {p.stderr.strip()[:300]}")
    conf = os.path.join(tmp, "bad.conf")
    for text, message in (("port = 80\nmax-connections = many\n", "bad.conf:2: bad --max-connections"),
                          ("# a comment\n\nfrobnicate = 1\n", "bad.conf:3: unknown option \"frobnicate\""),
                          ("port 80\n", "bad.conf:1: expected \"name = value\""),
                          ('public-url = "http://x\n', "bad.conf:1: a quoted value must end its line")):
        with open(conf, "w") as f:
            f.write(text)
        p = run("serve", "--config", conf)
        check(p.returncode == 2 and message in p.stderr, f"{text!r}: {p.returncode} {p.stderr}")
    p = run("serve", "--config", os.path.join(tmp, "missing.conf"))
    check(p.returncode == 1 and "missing.conf" in p.stderr, f"a missing file: {p.stderr}")
    p = run("serve", env={"HERALD_CONFIG": os.path.join(tmp, "missing.conf")})
    check(p.returncode == 1 and "missing.conf" in p.stderr, f"HERALD_CONFIG names it: {p.stderr}")


def test_sources(tmp, root):
    """Port and message limit from each source: the server listens where it
    was told and refuses a body over the limit it was told (413)."""
    app = os.path.join(root, "examples", "twitch-jobs")
    data = os.path.join(tmp, "data")
    file_port, env_port, flag_port = free_port(), free_port(), free_port()
    conf = os.path.join(tmp, "herald.conf")
    with open(conf, "w") as f:
        f.write("# Herald's settings\n"
                f"port = {file_port}   # the file's port\n"
                "max_message = 2048\n"
                'host = "127.0.0.1"\n'
                f"app = {app}\n")
    env = {"HERALD_DATA": data}
    runs = [
        ("the file", ["--config", conf], env, file_port, 2048),
        ("HERALD_CONFIG", [], {**env, "HERALD_CONFIG": conf}, file_port, 2048),
        ("the environment over the file", ["--config", conf],
         {**env, "HERALD_PORT": str(env_port), "HERALD_MAX_MESSAGE": "8192"}, env_port, 8192),
        ("the command line over both", ["--config", conf, "--port", str(flag_port),
                                        "--max-message=4096"],
         {**env, "HERALD_PORT": str(env_port), "HERALD_MAX_MESSAGE": "8192"}, flag_port, 4096),
        ("the environment alone", [],
         {"HERALD_DATA": data, "HERALD_APP": app, "HERALD_PORT": str(env_port),
          "HERALD_HOST": "127.0.0.1", "HERALD_MAX_MESSAGE": "3000"}, env_port, 3000),
    ]
    for what, args, env_vars, port, limit in runs:
        srv = Serve(args, env_vars)
        try:
            if not check(srv.port == port, f"{what}: listens on {port}: {''.join(srv.lines)}"):
                continue
            check(srv.post(limit - 100) != 413, f"{what}: a body under {limit} bytes is read")
            check(srv.post(limit + 100) == 413, f"{what}: a body over {limit} bytes is refused")
        finally:
            srv.stop()
    # The global options' variables serve the other commands too.
    p = run("check", env={"HERALD_DATA": data})
    check(p.returncode == 0 and p.stdout.startswith("ok: version"), f"HERALD_DATA for check: {p.stderr}")
    p = run("functions", env={"HERALD_APP": app})
    check(p.returncode == 0 and "\tmutation" in p.stdout, f"HERALD_APP for functions: {p.stderr}")
    p = run("--data", os.path.join(tmp, "nowhere"), "check", env={"HERALD_DATA": data})
    check(p.returncode == 1 and "nowhere" in p.stderr, f"--data beats HERALD_DATA: {p.stderr}")


def test_docs(opts, root):
    with open(os.path.join(root, "docs", "operations.md")) as f:
        text = f.read()
    m = re.search(r"^## Configuration\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not check(m, "docs/operations.md has a Configuration section"):
        return
    table = [line for line in m.group(1).split("\n") if line.startswith("|")]
    want = docs_table(opts)
    for i, (got, expected) in enumerate(zip(table, want)):
        if not check(got == expected, f"docs/operations.md's table, row {i}:\n  docs: {got}\n  help: {expected}"):
            break
    check(len(table) == len(want), f"docs/operations.md's table has {len(table) - 2} options, "
          f"serve --help {len(want) - 2} (python3 tests/cli/test_config.py HERALD --docs prints it)")
    with open(os.path.join(root, "README.md")) as f:
        check("docs/operations.md" in f.read(), "the README points to docs/operations.md")


def main():
    if sys.argv[2:] == ["--docs"]:
        print("\n".join(docs_table(parse_help(run("serve", "--help").stdout))))
        return 0
    root = sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="herald-config-")
    try:
        opts = test_version_and_help()
        test_refusals(tmp, opts)
        test_sources(tmp, root)
        test_docs(opts, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"test_config: {len(failures)} checks failed")
        return 1
    print("test_config: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
