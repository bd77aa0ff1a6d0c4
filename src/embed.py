#!/usr/bin/env python3
"""Writes C files that hold other files' bytes, so the herald binary needs no
files beside it.

Usage:
  embed.py NAME INPUT OUTPUT
      one string constant NAME (and NAME_len) with a text file's bytes: the
      Lua prelude of the function runtime.
  embed.py --assets LIST ROOT OUTPUT
      the table hd__assets (src/assets.h) of the files the server answers
      from the binary (the admin console, the JavaScript client): LIST
      (src/assets.list) has a line "URL-PATH FILE" for each, FILE relative
      to ROOT; each entry holds its URL path, its bytes and an ETag made
      from a hash of its bytes.
"""
import hashlib
import os
import sys


def c_bytes(data, indent="    "):
    """The bytes as C string literal lines (a NUL follows them in the array)."""
    if not data:
        return indent + '""\n'
    return "".join(indent + '"' + "".join("\\x%02x" % b for b in data[i:i + 16]) + '"\n'
                   for i in range(0, len(data), 16))


def header(out, sources):
    out.write("/* Generated from %s by src/embed.py; do not edit. */\n"
              % ", ".join(s.split("/")[-1] for s in sources))


def embed_string(name, src, dst):
    data = open(src, "rb").read()
    with open(dst, "w") as out:
        header(out, [src])
        out.write("#include <stddef.h>\n")
        out.write("const char %s[] =\n" % name)
        out.write(c_bytes(data))
        out.write(";\nconst size_t %s_len = %d;\n" % (name, len(data)))


def asset_list(path):
    """The (URL path, file) pairs of an asset list; # starts a comment line."""
    pairs = []
    for line in open(path, encoding="utf-8"):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[0].startswith("/") or '"' in fields[0] or "\\" in fields[0]:
            sys.exit("embed.py: %s: bad line %r (want: /url/path file)" % (path, line.rstrip()))
        pairs.append((fields[0], fields[1]))
    return pairs


def embed_assets(list_path, root, dst):
    entries = [(url, src, open(os.path.join(root, src), "rb").read())
               for url, src in asset_list(list_path)]
    with open(dst, "w") as out:
        header(out, [src for _, src, _ in entries])
        out.write('#include "assets.h"\n\n')
        for i, (_, _, data) in enumerate(entries):
            out.write("static const char asset_%d[] =\n%s;\n" % (i, c_bytes(data)))
        out.write("\nconst hd__asset hd__assets[] = {\n")
        for i, (url, _, data) in enumerate(entries):
            etag = hashlib.sha256(data).hexdigest()[:20]
            out.write('    {"%s", asset_%d, %d, "\\"%s\\""},\n' % (url, i, len(data), etag))
        out.write("};\nconst size_t hd__assets_count = %d;\n" % len(entries))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--assets":
        embed_assets(*sys.argv[2:5])
    elif len(sys.argv) == 4:
        embed_string(*sys.argv[1:4])
    else:
        sys.exit(__doc__)
