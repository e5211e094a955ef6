"""Config texts that attack a loader (shared by the config tests of every package) and a writer of
config files."""

from __future__ import annotations

# 370 bytes that expand to 10^9 strings when every alias is followed
BILLION_LAUGHS = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
SECRET = "root:$6$s3cr3tHASH$abcdefghijklmnop:19000:0:99999:7:::"


def write_config(path, text: str):
    """Writes `text` to `path`; returns `path`."""
    path.write_text(text)
    return path
