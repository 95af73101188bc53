"""Which search plugins exist: the built-ins, listed explicitly, then
third-party ones registered under the entry-point group "pyovl.lookup" (a
LookupPlugin subclass). PYOVL_LOAD_PLUGINS=0 turns third-party loading off.
A duplicate name is an error (varpd: names are unique)."""

from __future__ import annotations

import importlib
import os
from importlib import metadata

from pyovl.errors import PyovlError

BUILTIN_PLUGINS = ("pyovl.lookup.plugins.direct:DirectPlugin", "pyovl.lookup.plugins.files:FilesPlugin")
_cache: dict | None = None


def _load(spec: str):
    mod, _, attr = spec.partition(":")
    return getattr(importlib.import_module(mod), attr)


def plugins() -> dict:
    """name -> plugin class, with where it came from in .ORIGIN."""
    global _cache
    if _cache is None:
        found: dict = {}
        classes = [(_load(s), "pyovl (built-in)") for s in BUILTIN_PLUGINS]
        if os.environ.get("PYOVL_LOAD_PLUGINS", "1") != "0":
            for ep in metadata.entry_points(group="pyovl.lookup"):
                dist = ep.dist.name if getattr(ep, "dist", None) else "?"
                classes.append((ep.load(), dist))
        for cls, origin in classes:
            if cls.NAME in found:
                raise PyovlError("two search plugins are named %s (%s and %s)"
                                 % (cls.NAME, found[cls.NAME].ORIGIN, origin))
            cls.ORIGIN = origin
            found[cls.NAME] = cls
        _cache = found
    return _cache


def names() -> tuple[str, ...]:
    return tuple(plugins())
