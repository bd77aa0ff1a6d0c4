"""Crash test: a durable writer killed with SIGKILL at random moments.

Run as: python3 test_crash.py <crash_writer> <herald>

Each round starts crash_writer on the same data folder (state accumulates),
kills it with SIGKILL after 10-300 ms (in the first round after 0-20 ms,
while it installs the schema; in some rounds at the next commit after the
delay, which a fast disk otherwise makes rare), then checks the folder:

- `herald check` exits 0 (every index matches the documents);
- `herald export` gives exactly the state of a model built from the
  writer's output: every acknowledged insert, patch, replace and delete is
  there, and nothing else, except that the one group in flight when the
  writer died (its "try" lines without "done") is either entirely there or
  entirely absent -- a group is one LMDB commit, all or nothing;
- the commit version survives restarts and grows by exactly one per
  committed mutation (and `herald check` reports it);
- `_creationTime` grows with insertion order, also across restarts;
- no number of a rolled-back mutation ("abort") is ever stored;
- an index range read (`herald query` on by_tag_val) agrees with the model.

A SIGKILL leaves the page cache alone, so this shows that nothing is
acknowledged before its commit and that commits are atomic; it cannot show
that the fsyncs reach the disk (power loss).

The last round lets the writer finish a fixed number of groups and exit by
itself, so that under AddressSanitizer its normal exit path is leak-checked.
See crash_writer.c for the output protocol. Environment: HERALD_CRASH_ROUNDS
(default 50, at least 50), HERALD_CRASH_SEED (default: random, printed; it
fixes what the writers do, not the moments they are killed).
Only the standard library is used.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

WRITER, HERALD = sys.argv[1], sys.argv[2]
ROUNDS = max(50, int(os.environ.get("HERALD_CRASH_ROUNDS", "50")))
SEED = int(os.environ.get("HERALD_CRASH_SEED", str(random.randrange(1, 1 << 31))))
NUM_STRIDE = 10_000_000  # numbers per round; a round writes far fewer
TIMEOUT = 120  # seconds for any one child process

# In the sanitized build, a sanitizer report must fail the child (and so the
# test); meson sets these too, but the test may also be run by hand.
os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
os.environ.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")


class Failure(Exception):
    pass


insert_order = {}  # id -> position among all inserts the writers made


def tag_text(code):
    return f"t{code}" if code < 10 else "L" * 600 + str(code)


def payload_text(n, length):
    unit = f"{n}-"
    return (unit * (length // len(unit) + 1))[:length]


def apply_effect(model, effect, aborted):
    """Applies one effect line (without its try/ack prefix) to `model`:
    id -> {"seq", "val", "tag", "payload", "note"?}."""
    f = effect.split()
    kind = f[0]
    if kind == "ins":
        doc_id, seq, tag, plen, note = f[1], int(f[2]), int(f[3]), int(f[4]), f[5]
        if doc_id in model:
            raise Failure(f"insert reused id {doc_id}")
        insert_order.setdefault(doc_id, len(insert_order))
        doc = {"seq": seq, "val": seq, "tag": tag_text(tag), "payload": payload_text(seq, plen)}
        if note == "1":
            doc["note"] = f"n{seq}"
        model[doc_id] = doc
    elif kind == "patch":
        doc_id, val, tag, note = f[1], int(f[2]), f[3], f[4]
        doc = model.get(doc_id)
        if doc is None:
            raise Failure(f"acknowledged patch of {doc_id}, which the model does not have")
        doc["val"] = val
        if tag != "-":
            doc["tag"] = tag_text(int(tag))
        if note == "x":
            doc.pop("note", None)
        elif note == "s":
            doc["note"] = f"n{val}"
    elif kind == "repl":
        doc_id, val, tag, plen, note = f[1], int(f[2]), int(f[3]), int(f[4]), f[5]
        old = model.get(doc_id)
        if old is None:
            raise Failure(f"acknowledged replace of {doc_id}, which the model does not have")
        doc = {"seq": old["seq"], "val": val, "tag": tag_text(tag),
               "payload": payload_text(val, plen)}
        if note == "1":
            doc["note"] = f"n{val}"
        model[doc_id] = doc
    elif kind == "del":
        if f[1] not in model:
            raise Failure(f"acknowledged delete of {f[1]}, which the model does not have")
        del model[f[1]]
    elif kind == "abort":
        aborted.update(int(x) for x in f[1:])
    else:
        raise Failure(f"unknown effect {effect!r}")


class Output:
    """What one writer run printed (see crash_writer.c)."""

    def __init__(self):
        self.ready_version = None  # the store's version when the writer started
        self.acked = []  # effects of completed groups, in order
        self.versions = []  # (mutations, version after) per completed group
        self.tail = []  # effects of the group in flight when the writer died
        self.tail_count = 0  # its committed mutations
        self.tail_committed = False  # an ack of it was printed


def parse_output(text):
    out = Output()
    # The last piece is empty, or the line being written when the writer died.
    lines = text.split("\n")[:-1]
    tries, acks, count = [], [], 0
    in_group = False
    for line in lines:
        word, _, rest = line.partition(" ")
        f = rest.split()
        if word == "ready":
            out.ready_version = int(f[1])
        elif word == "group":
            if in_group:
                raise Failure(f"group {f[0]} began before the previous one was done")
            in_group, tries, acks, count = True, [], [], int(f[1])
        elif word == "try":
            tries.append(rest)
        elif word == "ack":
            if len(acks) >= len(tries) or tries[len(acks)] != rest:
                raise Failure(f"ack {rest!r} does not match what the group tried")
            acks.append(rest)
        elif word == "done":
            if acks != tries:
                raise Failure(f"group {f[0]} done with {len(acks)} of {len(tries)} acks")
            out.acked.extend(acks)
            out.versions.append((count, int(f[1])))
            in_group = False
        else:
            raise Failure(f"unexpected output line {line!r}")
    if in_group:
        out.tail, out.tail_count = tries, count
        # An ack means herald_group_commit() returned 0: the tail is durable.
        out.tail_committed = bool(acks)
    return out


def head(path, n=64):
    with open(path) as f:
        return f.read(n)


def wait_for_group_line(path, child, limit=1.0):
    """Returns as soon as the writer prints its next "group" line, that is,
    just before it calls herald_group_commit() (or after `limit` seconds)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        tail = b"\n"  # the end of what was read so far
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and child.poll() is None:
            chunk = f.read()
            if not chunk:
                continue  # a busy wait: a commit may take only 100 us
            text = tail + chunk
            if b"\ngroup " in text or b"\ntry " in text:
                return
            tail = text[-8:]


def run(args, what):
    p = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT)
    if p.returncode != 0:
        raise Failure(f"{what} exited {p.returncode}:\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
    return p.stdout


def load_export(herald, data, out):
    """The stored documents (id -> user fields) and their creation times, or
    None when the store has no schema yet (the first writer died before
    installing it)."""
    shutil.rmtree(out, ignore_errors=True)
    p = subprocess.run([herald, "--data", data, "export", out], capture_output=True, text=True,
                       timeout=TIMEOUT)
    if p.returncode != 0 and "no schema yet" in p.stderr:
        return None, None
    if p.returncode != 0:
        raise Failure(f"herald export exited {p.returncode}:\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
    db, creation = {}, {}
    with open(os.path.join(out, "items.jsonl")) as f:
        for line in f:
            doc = json.loads(line)
            doc_id = doc.pop("_id")
            creation[doc_id] = doc.pop("_creationTime")
            for k in ("seq", "val"):
                if isinstance(doc.get(k), float) and doc[k].is_integer():
                    doc[k] = int(doc[k])
            db[doc_id] = doc
    return db, creation


def describe_diff(model, db, limit=8):
    out = []
    for doc_id in sorted(set(model) | set(db)):
        a, b = model.get(doc_id), db.get(doc_id)
        if a == b:
            continue
        short = lambda d: None if d is None else {k: (v[:40] + "..." if isinstance(v, str)
                                                      and len(v) > 40 else v)
                                                  for k, v in d.items()}
        out.append(f"  {doc_id}: expected {short(a)}, stored {short(b)}")
        if len(out) >= limit:
            out.append("  ...")
            break
    return "\n".join(out)


def check_index_read(herald, data, model, rng):
    """One by_tag_val range read against the model (ids in index order)."""
    code = rng.choice([rng.randrange(10), 10 + rng.randrange(3)])
    tag = tag_text(code)
    q = json.dumps({"table": "items", "index": "by_tag_val", "range": [{"eq": ["tag", tag]}]})
    got = json.loads(run([herald, "--data", data, "query", q], "herald query"))
    want = sorted((d["val"], i) for i, d in model.items() if d["tag"] == tag)
    got_ids = [(int(d["val"]), d["_id"]) for d in got]
    if got_ids != want:
        raise Failure(f"by_tag_val range for tag {tag[:12]}... returned {len(got_ids)} documents, "
                      f"the model has {len(want)}; first difference at "
                      f"{next((i for i, (x, y) in enumerate(zip(got_ids, want)) if x != y), None)}")


def main():
    rng = random.Random(SEED)
    tmp = tempfile.mkdtemp(prefix="herald-crash-")
    data = os.path.join(tmp, "data")
    export = os.path.join(tmp, "export")
    model, aborted, version = {}, set(), 0
    stats = {"groups": 0, "acked": 0, "tail_kept": 0, "tail_lost": 0, "tail_empty": 0,
             "killed_early": 0, "aimed": 0}
    started = time.monotonic()
    print(f"crash test: {ROUNDS} rounds, seed {SEED} (HERALD_CRASH_SEED to repeat)")
    try:
        for rnd in range(1, ROUNDS + 1):
            last = rnd == ROUNDS
            out_path = os.path.join(tmp, "writer.out")
            err_path = os.path.join(tmp, "writer.err")
            args = [WRITER, data, str(rng.randrange(1, 1 << 62)), str(rnd * NUM_STRIDE)]
            if last:
                args.append("200")
            with open(out_path, "w") as out, open(err_path, "w") as err:
                child = subprocess.Popen(args, stdout=out, stderr=err)
            try:
                if last:
                    rc = child.wait(timeout=TIMEOUT)
                    if rc != 0:
                        raise Failure(f"writer exited {rc} on its normal path:\n"
                                      + head(err_path, 6000))
                else:
                    # Mostly kill inside the write loop; sometimes during start-up,
                    # and in the first round while the schema is being installed.
                    if rnd == 1:
                        stats["killed_early"] += 1
                        time.sleep(rng.uniform(0.0, 0.020))
                    elif rnd == 2 or rng.random() < 0.9:
                        deadline = time.monotonic() + TIMEOUT
                        while "\n" not in head(out_path):
                            if child.poll() is not None or time.monotonic() > deadline:
                                raise Failure("writer did not start:\n" + head(err_path, 3000))
                            time.sleep(0.002)
                    else:
                        stats["killed_early"] += 1
                    if rnd > 1:
                        time.sleep(rng.uniform(0.010, 0.300))
                    if rnd > 2 and rng.random() < 0.3:
                        # Aim at a commit: where the writer spends little of its
                        # time when the disk is fast and the build is slow (ASan).
                        stats["aimed"] += 1
                        wait_for_group_line(out_path, child)
                    if child.poll() is not None:
                        raise Failure(f"writer died by itself ({child.returncode}):\n"
                                      + head(err_path, 6000))
                    child.send_signal(signal.SIGKILL)
                    child.wait(timeout=TIMEOUT)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            with open(out_path) as f:
                out = parse_output(f.read())
            stats["groups"] += len(out.versions)
            stats["acked"] += len(out.acked)
            for effect in out.acked:
                apply_effect(model, effect, aborted)
            # Versions persist across restarts and grow by one per mutation.
            if out.ready_version is not None and out.ready_version != version:
                raise Failure(f"round {rnd}: the store reopened at version {out.ready_version}, "
                              f"expected {version}")
            for count, after in out.versions:
                if after != version + count:
                    raise Failure(f"round {rnd}: a group of {count} mutations moved the version "
                                  f"from {version} to {after}")
                version = after

            p = subprocess.run([HERALD, "--data", data, "check"], capture_output=True, text=True,
                               timeout=TIMEOUT)
            if p.returncode != 0 and "no Herald database" in p.stderr and not (
                    out.versions or out.tail or version):
                # Killed before it made the database, which `herald check` never creates.
                print(f"round {rnd}/{ROUNDS}: killed before the database was created")
                continue
            if p.returncode != 0:
                raise Failure(f"round {rnd}: herald check exited {p.returncode}:\n"
                              f"{p.stdout[-3000:]}{p.stderr[-3000:]}")
            checked = p.stdout
            db, creation = load_export(HERALD, data, export)
            if db is None:
                # Killed before the schema was in: nothing can have been written.
                if out.versions or out.tail or version:
                    raise Failure(f"round {rnd}: the store has no schema, but groups were written")
                print(f"round {rnd}/{ROUNDS}: killed before the schema was installed")
                continue

            # The in-flight group is all there or not at all; the version that
            # `herald check` reports says which.
            words = checked.split()
            stored_version = int(words[2]) if words[:2] == ["ok:", "version"] else None
            with_tail = json.loads(json.dumps(model))
            tail_aborted = set()
            for effect in out.tail:
                apply_effect(with_tail, effect, tail_aborted)
            aborted |= tail_aborted
            if out.tail_count and stored_version == version + out.tail_count:
                stats["tail_kept"] += 1
                expected, state = with_tail, "with"
                version = stored_version
            elif stored_version == version:
                if out.tail_committed:
                    raise Failure(f"round {rnd}: the group whose commit was acknowledged is lost "
                                  f"(version {stored_version})")
                stats["tail_lost" if out.tail_count else "tail_empty"] += 1
                expected, state = model, "without"
            else:
                raise Failure(f"round {rnd}: herald check says {checked.strip()!r}; expected "
                              f"version {version}, or {version + out.tail_count} with the "
                              f"in-flight group of {out.tail_count} mutations")
            if db != expected:
                raise Failure(f"round {rnd}: the stored documents are not the acknowledged state "
                              f"{state} the in-flight group ({len(out.tail)} effects):\n"
                              + describe_diff(expected, db))
            model = expected
            # _creationTime grows with insertion order, also across restarts.
            ordered = sorted(db, key=lambda i: insert_order[i])
            for a, b in zip(ordered, ordered[1:]):
                if not creation[a] < creation[b]:
                    raise Failure(f"round {rnd}: {b} was inserted after {a} but its "
                                  f"_creationTime {creation[b]} is not larger than {creation[a]}")
            stored_nums = {d["seq"] for d in db.values()} | {d["val"] for d in db.values()}
            bad = stored_nums & aborted
            if bad:
                raise Failure(f"round {rnd}: numbers of rolled-back mutations are stored: "
                              f"{sorted(bad)[:10]}")
            check_index_read(HERALD, data, model, rng)
            print(f"round {rnd}/{ROUNDS}: {len(out.versions)} groups acked, "
                  f"{len(out.tail)} effects in flight, {len(model)} documents, "
                  f"version {version}")
    except Failure as e:
        print(f"FAIL (seed {SEED}): {e}")
        print(f"data folder and the last writer output kept in {tmp}")
        return 1
    except subprocess.TimeoutExpired as e:
        print(f"FAIL (seed {SEED}): timed out: {e}")
        print(f"data folder and the last writer output kept in {tmp}")
        return 1
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"ok: {ROUNDS} rounds in {time.monotonic() - started:.1f} s; {stats['groups']} groups "
          f"and {stats['acked']} effects acknowledged, all found; killed with a group in "
          f"flight that was then kept {stats['tail_kept']}, lost {stats['tail_lost']}; "
          f"between groups {stats['tail_empty']}; "
          f"{stats['killed_early']} kills not waiting for start-up, "
          f"{stats['aimed']} aimed at a commit; "
          f"{len(model)} documents at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
