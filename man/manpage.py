#!/usr/bin/env python3
"""Writes herald(1) from man/herald.1.in: @VERSION@ becomes Herald's version
and @USAGE@ the built herald's `--help` (and `serve --help` when it has one
of its own), so that the page lists every command and option the binary
has.

Usage: manpage.py HERALD TEMPLATE VERSION OUTPUT
"""
import subprocess
import sys


def help_text(herald, *args):
    """What `herald ARGS --help` prints when it is a usage text, else ''."""
    try:
        p = subprocess.run([herald, *args, "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = p.stdout if p.returncode == 0 and p.stdout.strip() else ""
    return text.rstrip("\n") if "usage" in text.lower()[:200] else ""


def roff_literal(text):
    """Text shown as it is inside .nf: backslashes escaped, no line read as a request."""
    lines = []
    for line in text.replace("\\", "\\e").split("\n"):
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def main():
    herald, template, version, output = sys.argv[1:5]
    usage = help_text(herald)
    if not usage:
        sys.exit("manpage.py: %s --help printed no usage" % herald)
    serve = help_text(herald, "serve")
    if serve and serve != usage:
        usage += "\n\nherald serve --help:\n\n" + serve
    page = open(template, encoding="utf-8").read()
    page = page.replace("@VERSION@", version).replace("@USAGE@", roff_literal(usage))
    with open(output, "w", encoding="utf-8") as out:
        out.write(page)


if __name__ == "__main__":
    main()
