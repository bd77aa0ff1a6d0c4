"""`herald console`, black-box, against the real server with the
twitch-jobs app and its seed:

- script mode (stdin a pipe): tables, stats, a raw query and function calls
  print what the server holds and exit 0; a bad command, bad JSON, a server
  error or a wrong key exit 1 with a clear message and stop the script;
  `--json` output parses; `watch --count` follows a commit made by another
  client; `tail --seconds` prints the commits it saw and ends;
- interactive mode through a pseudo-terminal: history (up-arrow re-runs a
  command), `watch` prints the new result when another client commits,
  Ctrl-C ends the watch and the prompt comes back (the subscription is gone
  from the server's stats), `tail` prints a commit line, Ctrl-C at the
  prompt drops the typed line and does not end the console, line editing
  keys and UTF-8 text work, `quit` exits 0 and the history file holds the
  commands, never the key;
- `scheduled`, against a second server whose app schedules runs
  (tests/js/scheduling_app): a run is
  listed as pending with when it is due, then as a success once it ran; a
  failing run shows its error; a cancelled one is canceled; finished runs
  come newest first, pending ones due soonest first; `--count` bounds both.

Usage: /usr/bin/python3 test_console.py <herald binary> <source root>
"""
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

HERALD, ROOT = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
from herald_testlib import Server, call, check, finish, free_port  # noqa: E402

APP = os.path.join(ROOT, "examples", "twitch-jobs")
SEED = os.path.join(APP, "seed", "videos.jsonl")
SCHED_APP = os.path.join(ROOT, "tests", "js", "scheduling_app")  # its mutations schedule runs
TIMEOUT = 60  # a guard against hangs only; nothing waits for it to pass
ROW = re.compile(r"^videos\s+8\s+by_id", re.M)


def seed_count():
    with open(SEED) as f:
        return sum(1 for line in f if line.strip())


def console(server, script, key=None, args=(), env_extra=None):
    """Runs `herald console` with `script` on stdin: (status, stdout, stderr)."""
    env = dict(os.environ)
    env.pop("HERALD_ADMIN_KEY", None)
    if key is not None:
        env["HERALD_ADMIN_KEY"] = key
    env.update(env_extra or {})
    p = subprocess.run([HERALD, "console", *args, f"ws://127.0.0.1:{server.port}"],
                       input=script, capture_output=True, text=True, env=env, timeout=TIMEOUT)
    return p.returncode, p.stdout, p.stderr


def progress(server, key, pct):
    """Another client commits: the worker's HTTP call."""
    status, reply = call(server, "mutation", "videos:updateJobProgress",
                         {"twitchId": "1900000000", "jobId": "job-0001",
                          "progressPercentage": pct}, key)
    check(status == 200 and reply.get("status") == "success",
          f"the worker's mutation succeeds ({status} {reply})")


def test_script(server, key):
    n = seed_count()
    check(n == 8, f"the seed has 8 videos ({n})")
    script = ('tables\nstats\nquery {"table":"videos","take":2}\n'
              'run videos:getJobById {"jobId":"job-0001"}\n')
    rc, out, err = console(server, script, key)
    check(rc == 0, f"a good script exits 0 (got {rc}, stderr {err!r})")
    check(ROW.search(out), f"`tables` shows videos with its 8 documents:\n{out}")
    check("by_job_id" in out, "`tables` lists the indexes")
    check(re.search(r"^uptimeSeconds\s+\d", out, re.M) and
          re.search(r"^connections\s+[1-9]", out, re.M), "`stats` prints the counters")
    check(out.count('"_id"') == 3, "the take-2 query and getJobById print 3 documents")
    check('"title": "Speedrun marathon"' in out, "getJobById prints job-0001's video")
    check(key not in out + err, "the key is never printed")

    # --json: one line of Convex JSON per result.
    rc, out, err = console(server, 'query {"table":"videos","take":2}\ntables\n', key,
                           ["--json"])
    lines = out.splitlines()
    check(rc == 0 and len(lines) == 2, f"--json prints one line per command ({rc} {out!r})")
    if len(lines) == 2:
        docs, tables = json.loads(lines[0]), json.loads(lines[1])
        check(isinstance(docs, list) and len(docs) == 2, "the take-2 query returns 2 documents")
        check([t["name"] for t in tables] == ["videos"], f"tables names videos ({tables})")

    # A mutation through `run`, seen by another client.
    rc, out, err = console(server, 'run videos:updateJobProgress {"twitchId":"1900000000",'
                                   '"jobId":"job-0001","progressPercentage":5}\n', key)
    check(rc == 0 and re.search(r"committed at version \d+", out),
          f"`run` of a mutation commits ({rc} {out!r} {err!r})")
    status, reply = call(server, "query", "videos:getJobById", {"jobId": "job-0001"}, key)
    check(reply.get("value", {}).get("progressPercentage") == 5,
          f"the mutation run from the console is visible over HTTP ({reply})")

    # Failures stop the script with status 1 and say why.
    rc, out, err = console(server, "bogus\ntables\n", key)
    check(rc == 1, f"an unknown command exits 1 ({rc})")
    check("unknown command `bogus`" in err and "line 1" in err, f"and says so: {err!r}")
    check(not ROW.search(out), "nothing after the failed command runs")
    rc, out, err = console(server, 'query {"table": "videos", \n', key)
    check(rc == 1 and "bad JSON" in err, f"bad JSON exits 1 with a clear message ({rc} {err!r})")
    rc, out, err = console(server, 'run videos:getJobById {"jobId": 3}\n', key)
    check(rc == 1 and err.strip(), f"arguments the function refuses exit 1 ({rc} {err!r})")
    rc, out, err = console(server, 'query {"table":"nope"}\n', key)
    check(rc == 1 and "NotFound" in err, f"a server error exits 1 with its code ({rc} {err!r})")
    rc, out, err = console(server, "run videos:nope {}\n", key)
    check(rc == 1 and "videos:nope" in err, f"an unknown function exits 1 ({rc} {err!r})")
    wrong = "hk_" + "A" * 43
    rc, out, err = console(server, "tables\n", wrong)
    check(rc == 1 and "not valid" in err, f"a wrong key exits 1, 'not valid' ({rc} {err!r})")
    check(wrong not in out + err, "the wrong key is not echoed")
    rc, out, err = console(server, "tables\n", None)
    check(rc == 1 and "Unauthorized" in err, f"no key: admin commands are refused ({rc} {err!r})")
    with tempfile.NamedTemporaryFile("w", suffix=".key") as f:
        f.write(key + "\n")
        f.flush()
        rc, out, err = console(server, "tables\n", None, ["--key-file", f.name])
        check(rc == 0 and ROW.search(out), f"--key-file signs in ({rc} {err!r})")
    p = subprocess.run([HERALD, "console", f"ws://127.0.0.1:{free_port()}"],
                       input="tables\n", capture_output=True, text=True, timeout=TIMEOUT,
                       env={**os.environ, "HERALD_ADMIN_KEY": key})
    check(p.returncode == 1 and "cannot connect" in p.stderr,
          f"no server there: exit 1, 'cannot connect' ({p.returncode} {p.stderr!r})")


def read_line_guarded(proc, what):
    """One line of a child's stdout, or None if none comes within the guard."""
    result = []
    t = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(TIMEOUT)
    if not result or not result[0]:
        check(False, f"{what}: no line within {TIMEOUT} s")
        return None
    return result[0]


def test_script_watch_and_tail(server, key):
    env = {**os.environ, "HERALD_ADMIN_KEY": key}
    proc = subprocess.Popen(
        [HERALD, "console", "--json", f"ws://127.0.0.1:{server.port}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        proc.stdin.write('watch --count 2 videos:getJobById {"jobId":"job-0001"}\n')
        proc.stdin.close()
        first = read_line_guarded(proc, "script watch: first result")
        second = None
        if first:
            r = json.loads(first)
            check(r["value"]["jobId"] == "job-0001" and r["version"] > 0,
                  f"the watch's first result is job-0001 with a version ({r})")
            progress(server, key, 17)
            second = read_line_guarded(proc, "script watch: the update")
        if second:
            r2 = json.loads(second)
            check(r2["value"]["progressPercentage"] == 17 and r2["version"] > r["version"],
                  f"the update brings the commit of another client ({r2})")
            check(r2["value"]["_id"] == r["value"]["_id"], "the same document, diff applied")
            try:
                rc = proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                rc = "still running"
            check(rc == 0, f"watch --count 2 ends by itself with status 0 ({rc})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # tail --seconds: commits keep coming until the console has ended by itself.
    proc = subprocess.Popen(
        [HERALD, "console", f"ws://127.0.0.1:{server.port}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        proc.stdin.write("tail --seconds 3\n")
        proc.stdin.close()
        deadline = time.time() + TIMEOUT
        pct = 20
        while proc.poll() is None and time.time() < deadline:
            progress(server, key, pct)
            pct += 1
            time.sleep(0.2)  # pacing the commits only; no check depends on it
        check(proc.poll() == 0, f"tail --seconds ends by itself with status 0 ({proc.poll()})")
        out = proc.stdout.read()
        check(re.search(r"^version \d+\s+videos\s+update\s+\S+$", out, re.M),
              f"tail prints version, table, op and document per change: {out!r}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Stuck(Exception):
    """What was expected did not come: the rest of that conversation cannot follow."""


class Terminal:
    """`herald console` on a pseudo-terminal, read with expect()."""

    def __init__(self, server, key, home):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ.update(TERM="xterm", HOME=home, HERALD_ADMIN_KEY=key, LC_ALL="C.UTF-8")
            os.execv(HERALD, [HERALD, "console", f"ws://127.0.0.1:{server.port}"])
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 220, 0, 0))
        self.out = ""
        self.pos = 0
        self.status = None

    def send(self, text):
        os.write(self.fd, text.encode())

    def _read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # the child has gone: EIO on the master
            return None
        if not data:
            return None
        self.out += data.decode(errors="replace")
        return True

    def expect(self, pattern, what):
        """Waits for `pattern` after the last match; returns the match or None."""
        rx = re.compile(pattern, re.M)
        deadline = time.time() + TIMEOUT
        while True:
            m = rx.search(self.out, self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.time()
            if left <= 0 or self._read(min(left, 1.0)) is None:
                m = rx.search(self.out, self.pos)
                if m:
                    self.pos = m.end()
                    return m
                check(False, f"terminal: {what} (pattern {pattern!r}); output since the "
                             f"last match: {self.out[self.pos:]!r}")
                raise Stuck(what)

    def exited(self):
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
        return self.status is not None

    def wait(self):
        deadline = time.time() + TIMEOUT
        while not self.exited() and time.time() < deadline:
            self._read(0.2)
        if not self.exited():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            return None
        return os.waitstatus_to_exitcode(self.status)

    def kill(self):
        if not self.exited():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.status = 0
        os.close(self.fd)


PROMPT = r"herald> "


def test_terminal(server, key):
    home = tempfile.mkdtemp(prefix="herald-console-home-")
    t = Terminal(server, key, home)
    try:
        t.expect(r"connected to ws://127\.0\.0\.1:\d+/ws", "the banner")
        t.expect(PROMPT, "the first prompt")

        # History: the up-arrow brings back `tables`, Enter runs it again.
        t.send("tables\r")
        t.expect(ROW.pattern, "tables prints videos with 8 documents")
        t.expect(PROMPT, "the prompt after tables")
        t.send("\x1b[A\r")
        t.expect(ROW.pattern, "up-arrow + Enter runs tables again")
        t.expect(PROMPT, "the prompt after the recalled command")

        # watch: the first result, then the update another client commits.
        t.send('watch videos:getJobById {"jobId":"job-0001"}\r')
        m = t.expect(r"^version (\d+)\r\n\{[^}]*\"jobId\": \"job-0001\"[^}]*\}",
                     "the first result")
        first_version = int(m.group(1)) if m else 0
        progress(server, key, 42)
        m = t.expect(r"^version (\d+)\r\n\{[^}]*\"progressPercentage\": 42,[^}]*\}",
                     "the update with progressPercentage 42")
        check(m and int(m.group(1)) > first_version, "the update carries a newer version")
        t.send("\x03")
        t.expect(PROMPT, "the prompt after Ctrl-C in watch")

        # The watch's subscription is gone from the server.
        t.send("stats\r")
        t.expect(r"^subscriptions\s+0\s*$", "stats: no subscription left after the watch")
        t.expect(PROMPT, "the prompt after stats")

        # tail: a commit line per change, until Ctrl-C.
        t.send("tail\r")
        t.expect(r"tailing commits", "tail has started")
        progress(server, key, 43)
        t.expect(r"^version \d+\s+videos\s+update\s+\w+\r$", "tail's commit line")
        t.send("\x03")
        t.expect(PROMPT, "the prompt after Ctrl-C in tail")

        # Ctrl-C at the prompt drops the line typed so far; the console lives on.
        start = t.pos
        t.send("tables")
        t.expect(r"tables", "the echo of the typed text")
        t.send("\x03")
        t.expect(PROMPT, "a fresh prompt after Ctrl-C")
        t.send("\x03")
        t.expect(PROMPT, "a fresh prompt after Ctrl-C on an empty line")
        t.send("help\r")
        t.expect(r"^commands:", "help: the console lives on after Ctrl-C at the prompt")
        t.expect(PROMPT, "the prompt after help")
        check(not ROW.search(t.out, start), "the line dropped by Ctrl-C did not run")

        # Line editing in UTF-8: Ctrl-A to the start, Ctrl-K kills the line; text
        # outside ASCII reaches the server intact.
        t.send("stats\x01\x0b" + 'query {"table":"vidéos€"}\r')
        t.expect(r"error: NotFound: no table `vidéos€`", "the UTF-8 table name in the error")
        t.expect(PROMPT, "the prompt after the UTF-8 query")
        check(not re.search(r"^uptimeSeconds", t.out[start:], re.M), "Ctrl-K killed `stats`")

        # A failing command interactively: an error, and the console goes on.
        t.send('query {"table": \r')
        t.expect(r"error: bad JSON", "the error of bad JSON")
        t.expect(PROMPT, "the prompt after the error")

        t.send("quit\r")
        status = t.wait()
        check(status == 0, f"quit exits 0 ({status}); output: {t.out[t.pos:]!r}")
        check(key not in t.out, "the key never appears on the terminal")
        path = os.path.join(home, ".herald_console_history")
        try:
            with open(path) as f:
                history = f.read()
        except OSError as e:
            history = ""
            check(False, f"the history file is written ({e})")
        check("tables" in history and "watch" in history, "the history holds the commands")
        check(key not in history, "the history never holds the key")
    except Stuck:
        pass  # already reported
    finally:
        t.kill()


WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"


def schedule(server, path, args):
    """A mutation of the app that schedules a run: the run's id."""
    status, reply = call(server, "mutation", path, args)
    check(status == 200 and reply.get("status") == "success", f"{path} succeeds ({status} {reply})")
    return reply.get("value")


def scheduled_json(server, key, count=None):
    """`scheduled --json`: ({id: row} of the active runs in order, same of the finished)."""
    rc, out, err = console(server, f"scheduled{f' --count {count}' if count else ''}\n", key,
                           ["--json"])
    check(rc == 0, f"scheduled --json exits 0 ({rc} {err!r})")
    try:
        v = json.loads(out)
    except ValueError:
        check(False, f"scheduled --json prints JSON ({out!r})")
        return {}, {}
    return ({r["_id"]: r for r in v["active"]}, {r["_id"]: r for r in v["finished"]})


def wait_finished(server, key, run_id, what):
    """Asks `scheduled --json` until the run is finished; its row, or None."""
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        active, finished = scheduled_json(server, key)
        if run_id in finished:
            check(run_id not in active, f"{what}: no longer pending once finished")
            return finished[run_id]
        time.sleep(0.1)
    check(False, f"{what}: finished within {TIMEOUT} s")
    return None


def test_scheduled():
    work = tempfile.mkdtemp(prefix="herald-console-sched-")
    server = Server(HERALD, SCHED_APP, os.path.join(work, "data"))
    key = server.key
    try:
        rc, out, err = console(server, "scheduled\n", key)
        check(rc == 0 and "no runs pending or running" in out and "no finished runs" in out,
              f"`scheduled` with no runs says so ({rc} {out!r} {err!r})")

        # Due in 3 s: pending first, with when it is due; then a success.
        soon = schedule(server, "jobs:later", {"name": "welcome-email", "ms": 3000})
        rc, out, err = console(server, "scheduled\n", key)
        check(rc == 0 and re.search(
            rf'^pending\s+{WHEN} \(in [0-9.]+ s\)\s+jobs:bump\s+\{{"name":"welcome-email"\}}\s+{soon}$',
            out, re.M), f"`scheduled` lists the new run as pending, due in seconds:\n{out}")
        check(-1 < out.find("pending and running") < out.find("no finished runs"),
              "pending runs come before the finished ones")
        row = wait_finished(server, key, soon, "the run due in 3 s")
        check(row and row["state"]["kind"] == "success" and row["completedTime"] >= row["scheduledTime"],
              f"it is a success, completed after its time ({row})")
        rc, out, err = console(server, "scheduled\n", key)
        check(re.search(rf'^success\s+{WHEN}\s+jobs:bump\s+\{{"name":"welcome-email"\}}\s+{soon}$',
                        out, re.M) and "no runs pending or running" in out,
              f"`scheduled` shows it as a success with its completion time:\n{out}")

        # A failing run, with its error.
        boom = schedule(server, "jobs:laterBoom", {"reportId": "r-17"})
        row = wait_finished(server, key, boom, "the failing run")
        check(row and row["state"]["kind"] == "failed", f"the failing run failed ({row})")
        rc, out, err = console(server, "scheduled\n", key)
        check(re.search(rf'^failed\s+{WHEN}\s+jobs:boom\s+\{{"reportId":"r-17"\}}\s+{boom}\s+'
                        r'functions/jobs\.lua:\d+: report r-17 has no data$', out, re.M),
              f"`scheduled` shows the failure with its error:\n{out}")

        # Three far runs, one cancelled; newest finished first, soonest pending first.
        far = [schedule(server, "jobs:later", {"name": n, "ms": ms})
               for n, ms in [("nightly-report", 5400000), ("trial-reminder", 259200000),
                             ("cache-refresh", 90000)]]
        schedule(server, "jobs:cancel", {"id": far[1]})
        active, finished = scheduled_json(server, key)
        check(list(active) == [far[2], far[0]],
              f"pending runs are listed due soonest first ({list(active)})")
        check(list(finished) == [far[1], boom, soon],
              f"finished runs are listed newest first ({list(finished)})")
        check(finished.get(far[1], {}).get("state", {}).get("kind") == "canceled",
              "the cancelled run is canceled")
        rc, out, err = console(server, "scheduled\n", key)
        check(re.search(rf'^pending\s+{WHEN} \(in 1\.5 h\)\s+jobs:bump\s+\{{"name":"nightly-report"\}}'
                        rf'\s+{far[0]}$', out, re.M)
              and re.search(rf"^canceled\s+{WHEN}\s+jobs:bump\s+\S+\s+{far[1]}$", out, re.M),
              f"`scheduled` shows the far run's time from now and the cancelled run:\n{out}")

        # --count bounds both lists and says that more are pending.
        rc, out, err = console(server, "scheduled --count 1\n", key)
        rows = re.findall(rf"^(pending|success|failed|canceled)\s+{WHEN}", out, re.M)
        check(rc == 0 and rows == ["pending", "canceled"] and "more runs are pending" in out,
              f"--count 1: one pending (and more said), one finished ({rc} {rows} {out!r})")
        active, finished = scheduled_json(server, key, 1)
        check(list(active) == [far[2]] and list(finished) == [far[1]],
              f"--json --count 1 keeps the first of each ({list(active)} {list(finished)})")

        for bad, says in [("scheduled --seconds 2", "--count N only"),
                          ("scheduled now", "takes no arguments")]:
            rc, out, err = console(server, bad + "\n", key)
            check(rc == 1 and says in err, f"`{bad}` is refused ({rc} {err!r})")
        rc, out, err = console(server, "scheduled\n", None)
        check(rc == 1 and "Unauthorized" in err, f"no key: `scheduled` is refused ({rc} {err!r})")
        rc, out, err = console(server, "help\n", key)
        check("scheduled [--count N]" in out, "help lists `scheduled`")
    finally:
        rc = server.stop()
        check(rc == 0, f"the scheduling server stops cleanly ({rc})")


def main():
    work = tempfile.mkdtemp(prefix="herald-console-")
    data = os.path.join(work, "data")
    p = subprocess.run([HERALD, "--data", data, "--app", APP, "import", "--table", "videos", SEED],
                       capture_output=True, text=True, timeout=TIMEOUT)
    check(p.returncode == 0, f"the seed imports ({p.stdout} {p.stderr})")
    server = Server(HERALD, APP, data)
    try:
        check(server.key and server.key.startswith("hk_"), "the server printed its admin key")
        test_script(server, server.key)
        test_script_watch_and_tail(server, server.key)
        test_terminal(server, server.key)
    finally:
        rc = server.stop()
        check(rc == 0, f"the server stops cleanly ({rc})")
    test_scheduled()
    return finish("console")


if __name__ == "__main__":
    sys.exit(main())
