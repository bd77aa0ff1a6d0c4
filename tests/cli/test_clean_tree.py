#!/usr/bin/python3
"""A test run leaves the checkout as it found it: what `git status` shows
(modified, untracked and ignored files) and the content of every file it
lists are the same before and after. Test output belongs under the build
folder; screenshots for the docs are refreshed by scripts/screenshots only.

scripts/test takes a snapshot before its suites and compares at the end, so a
developer's own uncommitted edits are in both and do not fail it:

    test_clean_tree.py snapshot FILE     writes the state of the tree to FILE
    test_clean_tree.py compare FILE      exit 0 if unchanged, 1 with the paths
                                         that changed; 77 (skipped, with the
                                         reason) outside a git checkout

The build folders (build*/ at the top) are where output goes and are left out.
"""
import hashlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def in_git_checkout():
    try:
        r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--is-inside-work-tree"],
                           capture_output=True, text=True)
    except FileNotFoundError:
        return False
    return r.returncode == 0 and r.stdout.strip() == "true"


def digest(path):
    full = os.path.join(ROOT, path)
    if os.path.isdir(full):
        return "directory"
    if not os.path.lexists(full):
        return "deleted"
    if os.path.islink(full):
        return "link " + os.readlink(full)
    h = hashlib.sha256()
    with open(full, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def state():
    """{path: "XY digest"} for every path git status lists, build folders left out."""
    out = subprocess.run(["git", "-C", ROOT, "status", "--porcelain=v1", "-z",
                          "--untracked-files=all", "--ignored=matching"],
                         capture_output=True, check=True).stdout.decode("utf-8", "replace")
    entries = out.split("\0")
    result = {}
    i = 0
    while i < len(entries):
        e = entries[i]
        i += 1
        if len(e) < 4:
            continue
        code, path = e[:2], e[3:]
        if code[0] in "RC":  # a rename or copy: the next entry is the old path
            i += 1
        if path.split("/")[0].startswith("build"):
            continue
        result[path] = code + " " + digest(path.rstrip("/"))
    return result


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("snapshot", "compare"):
        print(__doc__)
        return 2
    if not in_git_checkout():
        print("test_clean_tree: skipped: not a git checkout")
        return 77
    mode, file = sys.argv[1:]
    if mode == "snapshot":
        with open(file, "w") as f:
            json.dump(state(), f)
        return 0
    with open(file) as f:
        before = json.load(f)
    after = state()
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    if not changed:
        print(f"test_clean_tree: git status unchanged by the test run ({len(after)} entries)")
        return 0
    print("test_clean_tree: FAIL: the test run changed the checkout (test output belongs "
          "under the build folder):")
    for p in changed:
        print(f"  {p}: {before.get(p, 'absent')} -> {after.get(p, 'absent')}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
