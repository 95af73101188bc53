"""Locate the C sources and flatten them into one translation unit for bcc.

bcc rewrites map calls (``stats.lookup(&k)``) only in the main file it
compiles; in a header they stay calls through a null pointer and the verifier
rejects the program ("unknown opcode 8d"). ``flatten()`` therefore inlines the
project's own quoted includes (``#include "lib/x.h"``) into one text, with
``#line`` markers so compiler errors still name the real file and line.
System includes (``<...>``) are left to bcc.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

_QUOTED = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')


def bpf_dir() -> Path:
    """The directory holding ovl_abi.h and the programs.

    In a checkout (editable install) that is <repo>/bpf; an installed wheel
    carries a copy as the package data pyovl/_bpf.
    """
    packaged = Path(str(resources.files("pyovl"))) / "_bpf"
    if (packaged / "ovl_abi.h").exists():
        return packaged
    repo = Path(__file__).resolve().parents[2] / "bpf"
    if (repo / "ovl_abi.h").exists():
        return repo
    raise FileNotFoundError("pyovl's BPF sources are missing (looked in %s and %s)" % (packaged, repo))


def flatten(path: Path, root: Path | None = None, _seen: set[Path] | None = None) -> str:
    """Return path's text with every quoted include below root inlined once."""
    root = root or path.parent
    seen = _seen if _seen is not None else set()
    out = ['#line 1 "%s"' % path]
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        m = _QUOTED.match(line)
        if not m:
            out.append(line)
            continue
        inc = (root / m.group(1)).resolve()
        if not inc.exists():
            inc = (path.parent / m.group(1)).resolve()
        if inc not in seen:
            seen.add(inc)
            out.append(flatten(inc, root, seen))
        out.append('#line %d "%s"' % (lineno + 1, path))
    return "\n".join(out) + "\n"
