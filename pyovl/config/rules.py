"""create-overlay options as text: dladm's -p lists, and Danube's overlay
rules (create-overlay arguments without -v, named in overlay.json).
"""

from __future__ import annotations

import shlex

from pyovl.config.specs import plain
from pyovl.errors import UsageError, show



def split_props(values: list[str] | tuple[str, ...]) -> dict:
    """-p a=b,c=d -p e=f -> {a: b, c: d, e: f}, as dladm splits them."""
    out: dict = {}
    for v in values:
        for item in v.split(","):
            key, sep, val = item.partition("=")
            if not sep or not key:
                raise UsageError("invalid property %s: use -p name=value" % show(item))
            if key in out:
                raise UsageError("property %s given twice" % plain(key))
            out[key] = val
    return out


def parse_create_args(text: str, allow_vnetid: bool = True) -> dict:
    """create-overlay options from a string (a Danube rule): -e, -s, -v, -p, -t."""
    if not isinstance(text, str):
        raise UsageError("a rule is a string of create-overlay options, not %s" % show(text))
    try:
        argv = shlex.split(text)
    except ValueError as e:
        raise UsageError("cannot parse %s: %s" % (show(text), e)) from None
    out: dict = {"encap": None, "search": None, "vnetid": None, "props": [], "temporary": False}
    longs = {"--encap": "encap", "--search": "search", "--vnetid": "vnetid", "--prop": "props"}
    shorts = {"-e": "encap", "-s": "search", "-v": "vnetid", "-p": "props"}
    i = 0
    while i < len(argv):
        a = argv[i]
        key = shorts.get(a) or longs.get(a)
        if a in ("-t", "--temporary"):
            out["temporary"] = True
        elif key:
            if i + 1 >= len(argv):
                raise UsageError("option %s needs a value" % a)
            i += 1
            if key == "props":
                out["props"].append(argv[i])
            else:
                out[key] = argv[i]
        else:
            raise UsageError("unexpected %s (a rule holds -e, -s and -p options)" % show(a))
        i += 1
    if out["vnetid"] is not None and not allow_vnetid:
        raise UsageError("a rule must not set -v: the overlay that uses the rule gives the vnetid")
    out["props"] = split_props(out["props"])
    return out


