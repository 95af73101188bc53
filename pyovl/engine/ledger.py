"""The ledger: what pyovl needs to remember and the kernel cannot show.

The kernel is the truth for what exists (facts.py). The ledger keeps the
rest: each object's declaration (names, search plugin and its properties,
source cli/file, persistence), which namespaces pyovl created (so `down`
removes only those), the file's underlay settings and the applied mesh
record. It lives in <run root>/<instance>/control.json (gone at reboot, like
the data path) and is written once per apply.

During an apply every step is appended to a journal (journal.jsonl beside
it) as it happens: a create is journalled before the kernel object is made
(so an interrupted apply leaves a record that facts then show missing, and
the next run makes it), a removal after it is gone. load() replays a journal
left by a process that died, so the next run finishes the job from the
kernel's facts. The persistent store (OmniOS datalink.conf) stays in
pyovl/state.py.
"""

from __future__ import annotations

import json
import os

from pyovl.engine.declare import Declaration, OverlayDecl, VnicDecl
from pyovl.errors import StateError
from pyovl.inputs import BadJson, decode_json
from pyovl.state import read_json, remove, run_root

KINDS = ("overlays", "vnics")


def empty() -> dict:
    """netns_cookie: the namespace the ledger was written in (engine.py)."""
    return {"version": 2, "overlays": {}, "vnics": {}, "mesh": None, "file": None,
            "underlay": {"devices": [], "hook": "auto"}, "metrics": None, "netns_cookie": None}


def declaration(rec: dict) -> Declaration:
    """The declaration a ledger record describes."""
    from pyovl.mesh import from_json  # noqa: PLC0415 - the mesh package is only needed with a mesh

    mesh = rec.get("mesh")
    return Declaration(
        overlays={n: OverlayDecl.from_json(d) for n, d in rec["overlays"].items()},
        vnics={n: VnicDecl.from_json(d) for n, d in rec["vnics"].items()},
        underlay_devices=tuple(rec["underlay"].get("devices", ())), hook=rec["underlay"].get("hook", "auto"),
        mesh=from_json(mesh["spec"]) if mesh else None, file=rec.get("file"), metrics=rec.get("metrics"))


class Ledger:
    def __init__(self, instance: str):
        self.dir = os.path.join(run_root(), instance)
        self.path = os.path.join(self.dir, "control.json")
        self.journal_path = os.path.join(self.dir, "journal.jsonl")
        self._journal = None

    def load(self) -> dict:
        rec = read_json(self.path, empty())
        if rec.get("version") != 2:
            rec = _upgrade(rec)
        for line in _journal_lines(self.journal_path):
            _replay(rec, line)
        return rec

    # -- journal (one apply) ---------------------------------------------------
    def record(self, rec: dict, op: str, kind: str, name: str | None = None, value: object = None) -> None:
        """Change rec and journal the change: ("set"|"del", kind, name, value);
        kind "top" sets rec[name] = value."""
        entry = {"op": op, "kind": kind, "name": name, "value": value}
        _replay(rec, entry)
        if self._journal is None:
            os.makedirs(self.dir, exist_ok=True)
            self._journal = open(self.journal_path, "a")
        self._journal.write(json.dumps(entry) + "\n")
        self._journal.flush()  # the page cache outlives a killed process

    def commit(self, rec: dict) -> None:
        """Write the ledger at once, then drop the journal."""
        os.makedirs(self.dir, exist_ok=True)
        tmp = "%s.tmp.%d" % (self.path, os.getpid())
        with open(tmp, "w") as f:
            f.writelines(_encode(rec))
        os.replace(tmp, self.path)
        self._close_journal()
        try:
            os.unlink(self.journal_path)
        except FileNotFoundError:
            pass

    def clear(self) -> None:
        self._close_journal()
        remove(self.journal_path)
        remove(self.path)

    def _close_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def _encode(rec: dict):
    """rec as JSON, one record at a time: a single json.dumps of 10k
    overlays holds the GIL for tens of milliseconds, and in the daemon the
    lookup thread answering misses waits for it."""
    yield "{"
    for i, (key, value) in enumerate(rec.items()):
        yield "%s%s:" % ("," if i else "", json.dumps(key))
        if key in KINDS:
            yield "{"
            for j, (name, obj) in enumerate(value.items()):
                yield "%s%s:%s" % ("," if j else "", json.dumps(name), json.dumps(obj, separators=(",", ":")))
            yield "}"
        else:
            yield json.dumps(value, separators=(",", ":"))
    yield "}"


def _journal_lines(path: str):
    try:
        with open(path, "rb") as f:
            for line in f:
                try:
                    entry = decode_json(line)
                except BadJson:
                    return  # a line cut short by the crash: what follows never happened
                if not isinstance(entry, dict) or entry.get("op") not in ("set", "del") \
                        or entry.get("kind") not in KINDS + ("top",):
                    raise StateError("%s: damaged: remove it, then run 'pyovl up' again" % path)
                yield entry
    except FileNotFoundError:
        return


def _replay(rec: dict, e: dict) -> None:
    if e["kind"] == "top":
        rec[e["name"]] = e["value"]
    elif e["op"] == "set":
        rec[e["kind"]][e["name"]] = e["value"]
    else:
        rec[e["kind"]].pop(e["name"], None)


def _upgrade(old: dict) -> dict:
    """control.json of pyovl before the engine (no version): same records,
    with fields that are now observed or derived dropped."""
    rec = empty()
    for n, d in old.get("overlays", {}).items():
        rec["overlays"][n] = {"spec": d["spec"], "source": d.get("source", "cli"),
                              "persistent": bool(d.get("persistent"))}
    for n, d in old.get("vnics", {}).items():
        rec["vnics"][n] = {"spec": d["spec"], "mac": d["mac"], "source": d.get("source", "cli"),
                           "persistent": bool(d.get("persistent")), "created_netns": bool(d.get("created_netns"))}
    rec["mesh"] = old.get("mesh")
    rec["file"] = old.get("file")
    return rec
