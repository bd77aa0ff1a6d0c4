"""What `meson install` installs, and the files herald serves from itself
(docs/operations.md, "Install"):

- `meson install --destdir` puts the binary, the systemd unit, the man page
  and the docs in their places; the unit has its hardening options and
  starts herald on /var/lib/herald with /etc/herald/herald.conf (and
  HERALD_* variables from /etc/herald/herald.env), and
  `systemd-analyze verify` accepts it (when systemd-analyze is there);
  the man page lists every command of `herald --help`;
- the installed binary, started from / with no static folder and the
  example configuration file it comes with, serves the
  admin console at /admin and the JavaScript client at /herald.js (and
  herald-diff.js, the .d.ts types, the favicon): the bytes of web-demo/,
  their types, an ETag that a 304 honours, Cache-Control and the security
  headers of static files; HEAD gives the headers alone;
- with a static folder that has files of the same names, /admin and
  /herald*.js stay the embedded ones while /favicon.svg and the folder's
  other files are the folder's;
- the JavaScript client's npm package (web-demo/package.json) has Herald's
  version (meson.build), in tests/js's lock file too, with exports and
  types that exist, and `npm pack` would put in it the client and nothing
  else.

Run as: /usr/bin/python3 test_install.py <herald> <source root> <build root>
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
from herald_testlib import Server, check, finish  # noqa: E402

HERALD, ROOT, BUILD = sys.argv[1], os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
PREFIX = "/usr/local"


def meson_version():
    text = open(os.path.join(ROOT, "meson.build"), encoding="utf-8").read()
    m = re.search(r"project\([^)]*?version\s*:\s*'([^']+)'", text, re.S)
    return m.group(1) if m else None


def get(url, headers=None, method="GET"):
    """(status, headers as a dict with lower-case names, body) of one request."""
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def check_install(dest):
    p = subprocess.run(["meson", "install", "-C", BUILD, "--destdir", dest, "--no-rebuild",
                        "--quiet"], capture_output=True, text=True)
    if not check(p.returncode == 0, f"meson install failed: {p.stdout}{p.stderr}"):
        return None
    installed = sorted(os.path.relpath(os.path.join(d, f), dest)
                       for d, _, files in os.walk(dest) for f in files)
    print("meson install --destdir:", *installed, sep="\n  ")
    where = dest + PREFIX
    binary = where + "/bin/herald"
    unit = where + "/lib/systemd/system/herald.service"
    man = where + "/share/man/man1/herald.1"
    doc = where + "/share/doc/herald"
    for path in (binary, unit, man, doc + "/README.md", doc + "/herald.conf.example",
                 doc + "/docs/operations.md", doc + "/docs/protocol.md"):
        check(os.path.isfile(path), f"meson install: {os.path.relpath(path, dest)} is missing")
    check(os.access(binary, os.X_OK), "the installed herald is not executable")

    text = open(unit, encoding="utf-8").read() if os.path.isfile(unit) else ""
    settings = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            settings.setdefault(k, []).append(v)
    exec_start = (settings.get("ExecStart") or [""])[0]
    check(exec_start == PREFIX + "/bin/herald serve --data /var/lib/herald"
          " --config /etc/herald/herald.conf", f"ExecStart: {exec_start!r}")
    check(settings.get("EnvironmentFile") == ["-/etc/herald/herald.env"],
          f"EnvironmentFile: {settings.get('EnvironmentFile')}")
    for key, want in (("DynamicUser", "yes"), ("StateDirectory", "herald"),
                      ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                      ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                      ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX")):
        check(settings.get(key) == [want], f"the unit's {key} is {settings.get(key)}, not {want}")
    check(not re.search(r"@\w+@", text), "the unit has a placeholder left")

    analyze = shutil.which("systemd-analyze")
    if not analyze:
        print("systemd-analyze verify: skipped (no systemd-analyze on this machine; "
              "Debian's systemd package has it)")
    elif text:
        # verify checks that ExecStart's binary exists and the man page of Documentation=:
        # the copy names the installed tree's binary, MANPATH its man pages.
        with tempfile.TemporaryDirectory() as d:
            copy = os.path.join(d, "herald.service")
            with open(copy, "w", encoding="utf-8") as f:
                f.write(text.replace(PREFIX + "/bin/herald", binary))
            env = dict(os.environ, MANPATH=where + "/share/man:", SYSTEMD_LOG_LEVEL="warning")
            p = subprocess.run([analyze, "verify", copy], capture_output=True, text=True, env=env)
            check(p.returncode == 0 and not p.stderr.strip(),
                  f"systemd-analyze verify: exit {p.returncode}: {p.stderr}")
            print("systemd-analyze verify: exit", p.returncode)

    page = open(man, encoding="utf-8").read() if os.path.isfile(man) else ""
    check(".TH HERALD 1" in page, "the man page has no .TH HERALD 1")
    check(not re.search(r"@[A-Z]+@", page), "the man page has a placeholder left")
    check(f"Herald {meson_version()}" in page, "the man page does not name Herald's version")
    usage = subprocess.run([HERALD, "--help"], capture_output=True, text=True).stdout
    commands = re.findall(r"^  ([a-z][a-z-]+)", usage.split("commands:")[-1], re.M)
    check(len(commands) >= 10, f"herald --help lists {commands}")
    for command in commands:
        check(re.search(rf"^  {command}\b", page, re.M), f"the man page lacks the command {command}")
    if shutil.which("groff"):
        p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", man], capture_output=True,
                           text=True)
        check(p.returncode == 0 and not p.stderr.strip(), f"groff warns: {p.stderr}")
    return binary


def check_served(binary, work):
    """The installed binary started from /, with no static folder, and with
    the example configuration file installed beside the docs (its app line
    naming the test's app)."""
    app = os.path.join(work, "app")
    shutil.copytree(os.path.join(ROOT, "examples", "reels"), app)
    example = os.path.join(work, "dest" + PREFIX, "share", "doc", "herald", "herald.conf.example")
    conf = os.path.join(work, "herald.conf")
    with open(example, encoding="utf-8") as f, open(conf, "w", encoding="utf-8") as out:
        text = f.read()
        check(re.search(r"^app = /etc/herald/app$", text, re.M), "herald.conf.example has no app line")
        out.write(text.replace("/etc/herald/app", app))
    os.chdir("/")
    srv = Server(binary, app, os.path.join(work, "data"), extra=["--config", conf])
    try:
        for url, source, type_ in (
                ("/admin", "admin/index.html", "text/html; charset=utf-8"),
                ("/admin/", "admin/index.html", "text/html; charset=utf-8"),
                ("/admin/index.html", "admin/index.html", "text/html; charset=utf-8"),
                ("/admin/admin.js", "admin/admin.js", "text/javascript; charset=utf-8"),
                ("/admin/admin.css", "admin/admin.css", "text/css; charset=utf-8"),
                ("/herald.js", "herald.js", "text/javascript; charset=utf-8"),
                ("/herald-diff.js", "herald-diff.js", "text/javascript; charset=utf-8"),
                ("/herald.d.ts", "herald.d.ts", "application/typescript; charset=utf-8"),
                ("/herald-diff.d.ts", "herald-diff.d.ts", "application/typescript; charset=utf-8"),
                ("/favicon.svg", "favicon.svg", "image/svg+xml")):
            want = open(os.path.join(ROOT, "web-demo", source), "rb").read()
            status, headers, body = get(srv.url(url))
            if not check(status == 200, f"GET {url} from /: {status} {body[:200]!r}"):
                continue
            check(body == want, f"GET {url}: not the bytes of web-demo/{source}")
            check(headers.get("content-type") == type_, f"GET {url}: {headers.get('content-type')}")
            check(headers.get("content-length") == str(len(want)), f"GET {url}: content-length")
            check(headers.get("cache-control") == "no-cache", f"GET {url}: cache-control")
            check(headers.get("x-content-type-options") == "nosniff", f"GET {url}: no nosniff")
            check(headers.get("content-security-policy") == "frame-ancestors 'self'",
                  f"GET {url}: no content-security-policy")
            etag = headers.get("etag", "")
            check(re.fullmatch(r'"[0-9a-f]{20}"', etag), f"GET {url}: etag {etag!r}")
            status, headers, body = get(srv.url(url), {"If-None-Match": etag})
            check(status == 304 and body == b"" and headers.get("etag") == etag,
                  f"GET {url} with its ETag: {status}, {len(body)} bytes")
            status, _, body = get(srv.url(url), {"If-None-Match": '"0000"'})
            check(status == 200 and body == want, f"GET {url} with another ETag: {status}")
            status, headers, body = get(srv.url(url), method="HEAD")
            check(status == 200 and body == b"" and headers.get("content-length") == str(len(want)),
                  f"HEAD {url}: {status}, {len(body)} bytes")
        status, headers, _ = get(srv.url("/"))
        check(status == 404 and headers.get("x-content-type-options") == "nosniff",
              f"GET / with no static folder: {status}")
        for url in ("/admin/nothing.js", "/herald.mjs", "/admin/../herald.js/x"):
            status, _, _ = get(srv.url(url))
            check(status == 404, f"GET {url}: {status}, not 404")
        status, _, _ = get(srv.url("/herald.js"), method="DELETE")
        check(status in (404, 405), f"DELETE /herald.js: {status}")
    finally:
        srv.stop()

    # A static folder with files of the same names: Herald's own stay, the icon is the app's.
    static = os.path.join(work, "static")
    os.makedirs(os.path.join(static, "admin"))
    for name in ("herald.js", "herald-diff.js", "herald.d.ts", "admin/index.html",
                 "admin/admin.js", "favicon.svg", "page.txt"):
        with open(os.path.join(static, name), "w") as f:
            f.write(f"the app's {name}\n")
    srv = Server(binary, app, os.path.join(work, "data"), extra=["--static", static])
    try:
        for url, source in (("/herald.js", "herald.js"), ("/herald-diff.js", "herald-diff.js"),
                            ("/herald.d.ts", "herald.d.ts"), ("/admin", "admin/index.html"),
                            ("/admin/admin.js", "admin/admin.js")):
            status, _, body = get(srv.url(url))
            check(status == 200 and body == open(os.path.join(ROOT, "web-demo", source), "rb").read(),
                  f"GET {url} with --static: {status} {body[:60]!r}, not the embedded file")
        for url, name in (("/favicon.svg", "favicon.svg"), ("/page.txt", "page.txt")):
            status, _, body = get(srv.url(url))
            check(status == 200 and body == f"the app's {name}\n".encode(),
                  f"GET {url} with --static: {status} {body[:60]!r}, not the folder's")
    finally:
        srv.stop()


def check_package():
    pkg = json.load(open(os.path.join(ROOT, "web-demo", "package.json"), encoding="utf-8"))
    version = meson_version()
    check(pkg.get("version") == version,
          f"web-demo/package.json has version {pkg.get('version')}, meson.build {version}")
    check(pkg.get("type") == "module", "the package is not an ES module")
    check(not pkg.get("private"), "the package is private")
    exports = pkg.get("exports", {})
    for entry in (".", "./diff"):
        target = exports.get(entry, {})
        check(isinstance(target, dict) and list(target)[:1] == ["types"],
              f"exports[{entry!r}] does not give its types first: {target}")
        for path in target.values() if isinstance(target, dict) else ():
            check(os.path.isfile(os.path.join(ROOT, "web-demo", path)), f"exports names {path}")
    for path in pkg.get("files", []):
        check(os.path.isfile(os.path.join(ROOT, "web-demo", path)), f"files names {path}")
    npm = shutil.which("npm")
    if npm:
        # What `npm publish` would send: the client and its types, none of the demo's pages.
        p = subprocess.run([npm, "pack", "--dry-run", "--json", "--loglevel=error"],
                           cwd=os.path.join(ROOT, "web-demo"), capture_output=True, text=True)
        packed = sorted(f["path"] for f in json.loads(p.stdout or "[{}]")[0].get("files", []))
        check(p.returncode == 0 and packed == sorted(set(pkg.get("files", [])) | {"package.json"}),
              f"npm pack --dry-run: exit {p.returncode}, files {packed} {p.stderr[-500:]}")
    else:
        print("npm pack --dry-run: skipped (no npm on this machine)")
    tests_pkg = json.load(open(os.path.join(ROOT, "tests", "js", "package.json"), encoding="utf-8"))
    check(tests_pkg["dependencies"].get(pkg["name"]) == "file:../../web-demo",
          "tests/js does not install the client from web-demo/")
    lock = json.load(open(os.path.join(ROOT, "tests", "js", "package-lock.json"), encoding="utf-8"))
    locked = lock["packages"].get("../../web-demo", {})
    check(locked.get("name") == pkg["name"] and locked.get("version") == version,
          f"tests/js/package-lock.json has {locked}: run npm install in tests/js")


def main():
    with tempfile.TemporaryDirectory(prefix="herald-install-") as work:
        binary = check_install(os.path.join(work, "dest"))
        if binary and os.path.isfile(binary):
            check_served(binary, work)
        check_package()
    return finish("test_install")


if __name__ == "__main__":
    sys.exit(main())
