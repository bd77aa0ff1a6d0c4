#!/usr/bin/env python3
"""Writes a C file that defines one string constant with a text file's bytes.

Usage: embed.py NAME INPUT OUTPUT. The build embeds the Lua prelude of the
function runtime this way, so the herald binary needs no files beside it.
"""
import sys

name, src, dst = sys.argv[1:4]
data = open(src, "rb").read()
with open(dst, "w") as out:
    out.write("/* Generated from %s by src/embed.py; do not edit. */\n" % src.split("/")[-1])
    out.write("#include <stddef.h>\n")
    out.write("const char %s[] =\n" % name)
    for i in range(0, len(data), 16):
        out.write('    "' + "".join("\\x%02x" % b for b in data[i:i + 16]) + '"\n')
    out.write(";\nconst size_t %s_len = %d;\n" % (name, len(data)))
