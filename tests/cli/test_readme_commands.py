"""Every command of the ```sh blocks of README.md and examples/*/README.md,
run as written, from a copy of the repository's files as a fresh clone has
them, after scripts/run: `build/herald` is the binary under test (the
READMEs call it by that path, where scripts/run builds it).

How a command is run depends on its trailing comment:
- "until Ctrl-C": a server. It is started, must print herald's
  "listening on" line, and keeps running while the README's next curl
  commands call it; before any other command (which may need its data
  folder) and at the end it gets SIGINT, as from Ctrl-C, and must exit. `herald ... serve` gets `--port N` and scripts/run HERALD_PORT=N,
  and curl's localhost:3210 becomes localhost:N, so that a server the
  user runs on 3210 is left alone: the only changes made to a command.
- "not run by tests": shown, not run (the reason follows in the comment).
- anything else: must exit 0 and, for curl, get no error answer.
Lines of a block that are only a comment are not commands; a line ending
in a backslash continues on the next. Each README runs in a copy of its
own.

Run as: /usr/bin/python3 test_readme_commands.py <herald> <source root>
"""
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
from herald_testlib import check, finish, free_port  # noqa: E402

HERALD, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
SERVER, SKIP = "until Ctrl-C", "not run by tests"
# A safety net for a command that hangs, never a measure of speed.
HANG = 300


def commands(readme):
    """The commands of the ```sh blocks of `readme`, in order."""
    found, block, pending = [], None, ""
    for line in open(readme, encoding="utf-8"):
        line = line.rstrip("\n")
        if block is None:
            if line.strip() == "```sh":
                block = []
            continue
        if line.strip() == "```":
            block = None
            continue
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if not line.endswith("\\"):
            found.append(pending.rstrip("\n"))
            pending = ""
    return found


def fresh_copy(dest):
    """The repository's files as a clone has them (git's list; every file
    without the build folders when the source is not a checkout), with
    build/herald the binary under test and a build.ninja with nothing to do,
    as scripts/run leaves build/."""
    listed = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], capture_output=True)
    if listed.returncode == 0:
        names = [n for n in listed.stdout.decode().split("\0") if n]
    else:
        names = []
        for d, dirs, files in os.walk(ROOT):
            rel = os.path.relpath(d, ROOT)
            dirs[:] = [x for x in dirs if not (rel == "." and (x.startswith("build") or x in (
                ".git", "herald-data"))) and x != "node_modules"]
            names += [os.path.normpath(os.path.join(rel, f)) for f in files]
    for name in names:
        src, dst = os.path.join(ROOT, name), os.path.join(dest, name)
        if not os.path.lexists(src):
            continue  # deleted in the working tree: a clone of it would not have it
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    os.makedirs(os.path.join(dest, "build"))
    os.symlink(HERALD, os.path.join(dest, "build", "herald"))
    with open(os.path.join(dest, "build", "build.ninja"), "w") as f:
        f.write("ninja_required_version = 1.5\nbuild all: phony\ndefault all\n")


class Running:
    """A command that serves until Ctrl-C, in a process group of its own."""

    def __init__(self, command, cwd, env):
        self.command, self.lines = command, []
        self.proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.started = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if "listening on" in line:
                self.started.set()
        self.started.set()  # the output ended: it stopped (or never started)

    def wait_started(self):
        self.started.wait(HANG)
        return self.proc.poll() is None and any("listening on" in x for x in self.lines)

    def stop(self):
        """SIGINT to the whole group, as Ctrl-C in a terminal; True if all of it exited."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(HANG)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return False
        try:
            os.killpg(self.proc.pid, 0)  # a worker left behind?
        except ProcessLookupError:
            return True
        os.killpg(self.proc.pid, signal.SIGKILL)
        return False


def run_readme(readme, work):
    name = os.path.relpath(readme, ROOT)
    cmds = commands(readme)
    print(f"== {name}: {len(cmds)} commands")
    clone = os.path.join(work, name.replace("/", "_"))
    fresh_copy(clone)
    port = free_port()
    # A user's shell has no HERALD_* of the test's: only the port is set.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env["HERALD_PORT"] = str(port)
    servers = []
    try:
        for cmd in cmds:
            if SKIP in cmd:
                print("  not run:", cmd)
                continue
            run = re.sub(r"\blocalhost:3210\b", f"localhost:{port}", cmd)
            if run.startswith("build/herald ") and SERVER in run:
                run = re.sub(r" serve\b", f" serve --port {port}", run, count=1)
            print("  $", run)
            if not run.startswith("curl "):
                for s in servers:  # Ctrl-C, as the user would before running something else
                    check(s.stop(), f"{name}: `{s.command}` did not stop on SIGINT")
                servers = []
            if SERVER in cmd:
                servers = [Running(run, clone, env)]
                ok = servers[0].wait_started()
                check(ok, f"{name}: `{cmd}` did not start: {''.join(servers[0].lines)[-2000:]}")
                continue
            try:
                p = subprocess.run(["bash", "-c", run], cwd=clone, env=env, capture_output=True,
                                   text=True, timeout=HANG)
            except subprocess.TimeoutExpired:
                check(False, f"{name}: `{cmd}` did not end")
                continue
            out = (p.stdout + p.stderr).strip()
            print("   ", out[:300].replace("\n", "\n    "))
            check(p.returncode == 0, f"{name}: `{cmd}` exited {p.returncode}: {out[-2000:]}")
            if run.startswith("curl "):
                check('"status":"error"' not in p.stdout and p.stdout.strip(),
                      f"{name}: `{cmd}` answered {p.stdout[:500]!r}")
    finally:
        for s in servers:
            check(s.stop(), f"{name}: `{s.command}` did not stop on SIGINT")
    return len(cmds)


def main():
    readmes = [os.path.join(ROOT, "README.md")] + sorted(
        glob.glob(os.path.join(ROOT, "examples", "*", "README.md")))
    with tempfile.TemporaryDirectory(prefix="herald-readme-") as work:
        total = sum(run_readme(r, work) for r in readmes)
    check(total >= 10, f"only {total} commands in the READMEs")
    return finish("test_readme_commands")


if __name__ == "__main__":
    sys.exit(main())
