#!/usr/bin/python3
"""How late ctx.scheduler starts a run (docs/performance.md, "The scheduler").

N mutations each schedule one run (runAt) at a random time 1-5 s after the
call that schedules it; once all are due, the script reads
`_scheduled_functions`. A run's lateness is its row's completedTime minus
its scheduledTime. completedTime is taken in the run's own transaction, just
before it commits: it includes the wait for the loop to hand the run to the
writer, the writer's queue (and the fsync of the group before), and running
the function, not the fsync of the run's own group. Prints p50, p99 and max.

Without --load: one durable release server, otherwise idle, not pinned (the
first measurements, December 2026, in docs/performance.md).

With --load: each repetition measures twice, each time on a fresh durable
server pinned to core 0 with the same app (examples/twitch-jobs plus the
scheduling functions):
  1. idle: nothing else runs;
  2. loaded: bench/live/latency.mjs, pinned to core 1 as bench/live/run.sh
     pins it, starts the server, opens 5,000 watchers of 500 jobs
     (`videos:getJobById`) and a writer patching the jobs at --rate per
     second; the runs are scheduled and come due inside the generator's
     measured window, and the table ends with the commit-to-client latency
     the generator measured in that window, so the reader sees the load was
     real. The generator gets the server through bench/sched/herald-app.sh,
     which swaps its --app for the one this script writes.
This script (its HTTP calls and its reading) runs on core 1 too, so core 0
holds only the server.

    /usr/bin/python3 bench/sched/lateness.py [HERALD] [N]
    /usr/bin/python3 bench/sched/lateness.py [HERALD] [N] --load [--rate 2000] [--repeat 3]
    bench/sched/run.sh [--rate R] [--repeat K]      (builds build-release first)
"""
import argparse
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
from herald_testlib import Server, free_port, http, write_app  # noqa: E402

SCHEMA = """import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
export default defineSchema({ ticks: defineTable({ n: v.number() }) });
"""
TICKS_TABLE = "  ticks: defineTable({ n: v.number() }),\n"
JOBS = r'''
local M = {}
M.tick = herald.internalMutation{args = {n = v.number()}, handler = function(ctx, a)
  ctx.db:insert("ticks", {n = a.n}) end}
M.at = herald.mutation{args = {t = v.number(), n = v.number()}, handler = function(ctx, a)
  return ctx.scheduler:runAt(a.t, "jobs:tick", {n = a.n}) end}
M.runs = herald.query{handler = function(ctx) return ctx.db.system:query("_scheduled_functions"):collect() end}
return M
'''
SERVER_CORE = int(os.environ.get("HERALD_BENCH_SERVER_CORE", "0"))
CLIENT_CORE = int(os.environ.get("HERALD_BENCH_CLIENT_CORE", "1"))
# As bench/live/run.sh: a young generation large enough that the generator's own
# old-space collections do not show as the server's latency.
NODE_GC = os.environ.get("NODE_GC", "--max-semi-space-size=128")
LEAD_MS, WINDOW_MS = 1000, 4000  # a run is due LEAD_MS plus up to WINDOW_MS after its call


class Endpoint:
    """What herald_testlib.http needs of a server: its URLs."""

    def __init__(self, port):
        self.port = port

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"


def jobs_app(work):
    """examples/twitch-jobs with a `ticks` table and functions/jobs.lua beside
    videos.lua: the load generator's app and the scheduler's in one."""
    app = os.path.join(work, "app")
    shutil.copytree(os.path.join(ROOT, "examples", "twitch-jobs", "functions"),
                    os.path.join(app, "functions"))
    with open(os.path.join(ROOT, "examples", "twitch-jobs", "schema.ts")) as f:
        schema = f.read()
    marker = "defineSchema({\n"
    if marker not in schema:
        raise RuntimeError("examples/twitch-jobs/schema.ts: no 'defineSchema({' line to add a table after")
    with open(os.path.join(app, "schema.ts"), "w") as f:
        f.write(schema.replace(marker, marker + TICKS_TABLE, 1))
    with open(os.path.join(app, "functions", "jobs.lua"), "w") as f:
        f.write(JOBS)
    return app


def pick(late, q):
    return late[min(len(late) - 1, int(q * len(late)))]


def measure(endpoint, n):
    """Schedules n runs, one mutation each, each run due LEAD_MS plus a random
    part of WINDOW_MS after its own call starts (a server slowed by load takes
    longer to accept the calls, but never gets a run that is due before it
    was scheduled); waits for them and returns (sorted lateness in ms, runs
    not finished, scheduling seconds, runs whose scheduling call returned
    after their time)."""
    t0 = time.time()
    cpu0 = cpu_times()
    after_due = 0
    last_due = 0
    for i in range(n):
        t = time.time() * 1000 + LEAD_MS + random.uniform(0, WINDOW_MS)
        last_due = max(last_due, t)
        status, reply = http(endpoint, "mutation", {"path": "jobs:at", "args": {"t": t, "n": i}})
        if status != 200 or reply.get("status") not in (None, "success"):
            raise RuntimeError(f"jobs:at: {status} {reply}")
        if time.time() * 1000 > t:
            after_due += 1
    scheduling_s = time.time() - t0
    # Read once all runs have finished (or 10 s after the last was due).
    time.sleep(max(0.0, last_due / 1000 - time.time()) + 0.5)
    deadline = time.time() + 10
    while True:
        _, reply = http(endpoint, "query", {"path": "jobs:runs", "args": {}})
        rows = reply["value"]
        pending = sum(1 for r in rows if r["state"]["kind"] == "pending")
        if not pending or time.time() > deadline:
            break
        time.sleep(0.2)
    late = sorted(r["completedTime"] - r["scheduledTime"] for r in rows
                  if r["state"]["kind"] == "success")
    return late, n - len(late), scheduling_s, after_due, busy_between(cpu0, cpu_times())


def pin(core):
    return lambda: os.sched_setaffinity(0, {core})


def run_idle(herald, app, work, n):
    data = os.path.join(work, "idle-data")
    server = Server(herald, app, data, no_sync=False, preexec_fn=pin(SERVER_CORE))
    try:
        return measure(server, n)
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def wait_for_writer(endpoint, gen, timeout):
    """Waits until the generator's writer patches job-0 (its warm-up has begun)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if gen.poll() is not None:
            raise RuntimeError(f"the load generator exited ({gen.returncode}) before its writer started")
        try:
            status, reply = http(endpoint, "query", {"path": "videos:getJobById",
                                                     "args": {"jobId": "job-0"}})
            value = reply.get("value") if status == 200 else None
            if isinstance(value, dict) and value.get("updatedAt", 0) > 0:
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass  # not listening yet
        time.sleep(0.1)
    raise RuntimeError(f"the load generator's writer did not start within {timeout} s")


def generator_row(out):
    """The generator's table row for its one rate, as {header: cell}."""
    lines = [l for l in out.splitlines() if l.startswith("|")]
    if len(lines) < 3:
        return None
    cells = lambda l: [c.strip() for c in l.strip().strip("|").split("|")]
    return dict(zip(cells(lines[0]), cells(lines[2])))


def run_loaded(herald, app, work, n, rate, seconds):
    data = os.path.join(work, "live-data")
    port = free_port()
    env = dict(os.environ, HERALD_SCHED_HERALD=os.path.abspath(herald), HERALD_SCHED_APP=app)
    cmd = ["taskset", "-c", str(CLIENT_CORE), "node", *NODE_GC.split(),
           os.path.join(ROOT, "bench", "live", "latency.mjs"),
           "--herald", os.path.join(HERE, "herald-app.sh"), "--data", data, "--port", str(port),
           "--rates", str(rate), "--seconds", str(seconds), "--warmup", "1", "--keep-going"]
    err_path = os.path.join(work, "generator.stderr")
    with open(err_path, "w") as err:
        gen = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        endpoint = Endpoint(port)
        wait_for_writer(endpoint, gen, 120)
        time.sleep(1.3)  # past the generator's 1 s warm-up: inside its measured window
        window_t0 = time.time()
        try:
            result = measure(endpoint, n)
        except (OSError, urllib.error.URLError) as e:
            raise RuntimeError(f"the server went away during the measurement ({e}): the generator's "
                               f"{seconds} s window ended first; raise --seconds") from e
        used_s = time.time() - window_t0
        out, _ = gen.communicate(timeout=seconds + 60)
    finally:
        if gen.poll() is None:
            gen.kill()
            gen.wait()
    with open(err_path) as f:
        err_text = f.read()
    shutil.rmtree(data, ignore_errors=True)
    if gen.returncode != 0:
        raise RuntimeError(f"the load generator failed ({gen.returncode}):\n{out}\n{err_text[-2000:]}")
    # The measured window began ~0.3 s before window_t0 (1 s of warm-up after the first patch).
    late_note = (f"the scheduler's part took {used_s:.1f} s, past the end of the generator's {seconds} s "
                 "window: raise --seconds" if used_s > seconds - 0.5 else None)
    row = generator_row(out)
    if row is None:
        raise RuntimeError(f"no table in the generator's output:\n{out}")
    checks = [l for l in out.splitlines() if l.startswith("checks:") or "CHECK FAILED" in l
              or "server closed" in l]
    shown = " ".join(shlex.quote(c) for c in cmd).replace(ROOT + "/", "").replace(work, "$WORK")
    return result, row, checks + ([late_note] if late_note else []), shown


def fmt(ms):
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def stats(late):
    return pick(late, 0.5), pick(late, 0.99), late[-1]


def cpu_times():
    with open("/proc/stat") as f:
        return {l.split()[0]: list(map(int, l.split()[1:])) for l in f if re.match(r"cpu\d", l)}


def busy_between(a, b):
    """Per-CPU busy share between two cpu_times() readings, e.g. "cpu0 45%, cpu1 31%"."""
    out = []
    for cpu in sorted(a):
        d = [y - x for x, y in zip(a[cpu], b[cpu])]
        idle = d[3] + d[4]
        out.append(f"{cpu} {100 * (1 - idle / max(1, sum(d))):.0f}%")
    return ", ".join(out)


def busy_cpus():
    """Per-CPU busy share over one second, as bench/live/run.sh prints it."""
    a = cpu_times()
    time.sleep(1)
    return busy_between(a, cpu_times())


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("herald", nargs="?", default="build-release/herald")
    p.add_argument("n", nargs="?", type=int, default=300, help="runs scheduled per measurement")
    p.add_argument("--load", action="store_true",
                   help="idle, then under bench/live's 5,000-watcher latency workload")
    p.add_argument("--rate", type=int, default=2000, help="--load: the generator's writes per second")
    p.add_argument("--seconds", type=int, default=15, help="--load: the generator's measured window")
    p.add_argument("--repeat", type=int, default=1, help="--load: idle and loaded pairs")
    o = p.parse_args()

    if not o.load:
        work = tempfile.mkdtemp(prefix="herald-sched-bench-")
        app = write_app(work, SCHEMA, {"jobs": JOBS})
        server = Server(o.herald, app, os.path.join(work, "data"), no_sync=False)
        try:
            late, missing, _, _, _ = measure(server, o.n)
            p50, p99, mx = stats(late)
            print(f"{len(late)} of {o.n} runs: lateness p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {mx:.1f} ms")
        finally:
            server.stop()
            shutil.rmtree(work, ignore_errors=True)
        return 0

    # This script's own calls and reads go on the generator's core: core 0 is the server's.
    os.sched_setaffinity(0, {CLIENT_CORE})
    model = ""
    try:
        model = next(l.split(":", 1)[1].strip() for l in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if l.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    print("## Scheduler lateness, idle and under bench/live's latency workload\n")
    print(f"- machine: {os.cpu_count()} CPUs, {model}, {os.uname().sysname} {os.uname().release}; "
          f"server on core {SERVER_CORE}, generator and this script on core {CLIENT_CORE}; durable commits")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at start: {loadavg()}; "
          f"CPUs busy (1 s): {busy_cpus()}")
    print(f"- command: `bench/sched/lateness.py {o.herald} {o.n} --load --rate {o.rate} "
          f"--seconds {o.seconds} --repeat {o.repeat}`")
    print(f"- {o.n} runs per measurement, one `runAt` mutation each (HTTP, one after another), each run due "
          f"{LEAD_MS / 1000:.0f}-{(LEAD_MS + WINDOW_MS) / 1000:.0f} s after its call; lateness = completedTime - scheduledTime")
    print(f"- load: 5,000 watchers of 500 jobs (`videos:getJobById`), one WebSocket writer at "
          f"{o.rate:,}/s; the runs come due inside the generator's {o.seconds} s measured window\n")

    rows, gen_rows, notes = [], [], []
    for rep in range(1, o.repeat + 1):
        work = tempfile.mkdtemp(prefix="herald-sched-bench-")
        try:
            app = jobs_app(work)
            idle, _, idle_sched_s, idle_after, idle_busy = run_idle(o.herald, app, work, o.n)
            (loaded, _, load_sched_s, load_after, load_busy), gen, checks, gen_cmd = run_loaded(
                o.herald, app, work, o.n, o.rate, o.seconds)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for what, late, sched_s, after in (("idle", idle, idle_sched_s, idle_after),
                                           ("loaded", loaded, load_sched_s, load_after)):
            if len(late) < o.n:
                notes.append(f"run {rep} {what}: only {len(late)} of {o.n} runs finished")
            if after:
                notes.append(f"run {rep} {what}: {after} runs were due before their scheduling call "
                             f"returned (scheduling took {sched_s:.2f} s)")
        i50, i99, imax = stats(idle)
        l50, l99, lmax = stats(loaded)
        rows.append(f"| {rep} | {fmt(i50)} / {fmt(i99)} / {fmt(imax)} | {fmt(l50)} / {fmt(l99)} / {fmt(lmax)} "
                    f"| {l50 / i50:.1f}x / {l99 / i99:.1f}x / {lmax / imax:.1f}x | {idle_busy} | {load_busy} |")
        g = lambda k: gen.get(k, "-")
        gen_rows.append(f"| {rep} | {g('target/s')} | {g('commits/s seen by watchers')} | {g('p50 ms')} | "
                        f"{g('p99 ms')} | {g('p99.9 ms')} | {g('max ms')} | {g('ack p99 ms')} | {g('server CPU')} |")
        notes.extend(f"run {rep} generator {c}" for c in checks)
        print(f"run {rep} done: idle p99 {fmt(i99)} ms, loaded p99 {fmt(l99)} ms, generator p99 {g('p99 ms')} ms",
              file=sys.stderr, flush=True)

    print("Lateness in ms, p50 / p99 / max:\n")
    print("| run | idle | loaded | loaded / idle | CPUs busy, idle run | CPUs busy, loaded run |")
    print("|---|---:|---:|---:|---|---|")
    print("\n".join(rows))
    print(f"\nThe load during each loaded measurement, as the generator measured it in its window "
          f"(commit-to-client: from sending a mutation to each of its 10 watchers receiving the update); "
          f"generator: `{gen_cmd}`:\n")
    print("| run | target/s | commits/s seen | p50 ms | p99 ms | p99.9 ms | max ms | ack p99 ms | server CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(gen_rows))
    print(f"\n- load average at the end: {loadavg()}")
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
