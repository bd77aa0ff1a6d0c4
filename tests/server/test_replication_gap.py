"""A running replica whose next records leave the stream before it gets them
(docs/replication.md, "Snapshots and retention"): it stops, starts again from
its own command line, fills its data folder from a snapshot and follows on.

The replica is stopped (SIGSTOP) while the primary commits more groups than
--stream-retain keeps, each large enough that the NATS servers cannot hold
them all for it in socket buffers; then continued. What reaches it skips
records that are gone: it must start again from a snapshot, in the same
process (it runs its command line again), and end with the primary's data.

Run as: python3 test_replication_gap.py <path to herald> <source root>
Uses the nodes and NATS clusters of test_replication.py; skipped without
nats-server.
"""
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_replication as T  # noqa: E402
from herald_testlib import check, finish, write_app  # noqa: E402

SMALL = ["--stream-retain", "50", "--snapshot-every", "20"]
SIZE = 60000  # bytes of each event written while the replica is stopped


def scenario_gap(scene):
    p = scene.primary("p", SMALL)
    r1 = scene.replica("r1", SMALL)
    T.write_range(p, range(1, 11), "gap")
    check(scene.wait_converged(), f"gap: caught up before: {scene.describe()}")
    pid = r1.proc.pid
    r1.signal(signal.SIGSTOP)
    try:
        bad = []
        for n in range(11, 131):
            status, reply = p.mutate_bulk(n, 1, SIZE)
            if status != 200:
                bad.append((n, status, reply))
        check(not bad, f"gap: writes refused: {bad[:3]}")
    finally:
        r1.signal(signal.SIGCONT)
    check(T.wait_until(lambda: "from a snapshot" in r1.output().lower() and
                       (r1.health() or {}).get("role") == "replica", 60),
          f"gap: the replica started again from a snapshot: its health {r1.health()}, the "
          f"primary's {p.health()}; its log: {r1.output()[-3000:]}")
    print("gap: the replica said:", [line.strip() for line in r1.output().splitlines()
                                     if "snapshot" in line and "====" not in line], flush=True)
    check(r1.proc.pid == pid and r1.running(),
          "gap: the same process runs on (it ran its command line again)")
    T.write_range(p, range(131, 141), "gap")
    check(scene.wait_converged(), f"gap: it follows new writes: {scene.describe()}")
    check(len(r1.events() or []) == 140, f"gap: 140 events on the replica: "
          f"{len(r1.events() or [])}")
    export = T.stop_and_compare(scene, "gap")
    check(sorted(T.exported_ns(export)) == list(range(1, 141)), "gap: the 140 events")


def main():
    if T.NATS_SERVER is None:
        print("replication_gap: skipped, nats-server is not installed")
        return 77
    work = tempfile.mkdtemp(prefix="herald-repl-gap-")
    scene = None
    failed = False
    started = time.time()
    try:
        app = write_app(work, T.SCHEMA, {"events": T.EVENTS})
        scene = T.Scene(work, app, "gap")
        before = len(T.herald_testlib.failures)
        scenario_gap(scene)
        failed = len(T.herald_testlib.failures) > before
    except Exception:  # noqa: BLE001 - reported as a failed check
        import traceback
        check(False, f"gap: {traceback.format_exc()}")
        failed = True
    finally:
        if scene is not None:
            scene.close(failed)
        shutil.rmtree(work, ignore_errors=True)
    print(f"gap: {'FAILED' if failed else 'ok'} ({time.time() - started:.1f} s)", flush=True)
    return finish("replication_gap")


if __name__ == "__main__":
    sys.exit(main())
