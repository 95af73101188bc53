"""Which search plugins exist: the built-ins, listed explicitly, then any
third-party module registered under the entry-point group "pyovl.lookup"
(a module with NAME, MODE and PROPS, like the built-ins). PYOVL_LOAD_PLUGINS=0
turns third-party loading off. A duplicate name is an error."""

from __future__ import annotations

import importlib
import os
from importlib import metadata

from pyovl.errors import PyovlError

BUILTIN_PLUGINS = ("pyovl.lookup.plugins.direct", "pyovl.lookup.plugins.files")
_cache: dict | None = None


def plugins() -> dict:
    global _cache
    if _cache is None:
        found: dict = {}
        mods = [importlib.import_module(m) for m in BUILTIN_PLUGINS]
        if os.environ.get("PYOVL_LOAD_PLUGINS", "1") != "0":
            for ep in metadata.entry_points(group="pyovl.lookup"):
                mods.append(ep.load())
        for mod in mods:
            if mod.NAME in found:
                raise PyovlError("two search plugins are named %s" % mod.NAME)
            found[mod.NAME] = mod
        _cache = found
    return _cache


def names() -> tuple[str, ...]:
    return tuple(plugins())
