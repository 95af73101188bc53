"""Target-table edits (modify-overlay) and raw data-path writes (`pyovl dp`).

These change map entries, not the declaration, so they skip planning; they
still go through the one writer (the daemon when it serves, else under the
instance lock; see pyovl/daemon/writer.py). modify(): illumos modify-overlay -d MAC, -f,
-s MAC=IP:PORT|drop, on dynamic overlays only; destinations through the
mesh like any plugin answer. dp_call(): the whitelisted Datapath methods
the `dp` verbs use.
"""

from __future__ import annotations

from pyovl import values
from pyovl.errors import UsageError

DP_CALLS = ("init", "add_overlay", "del_overlay", "add_port", "del_port", "set_target", "del_target",
            "teardown")


def modify(engine, name: object, delete: object = None, flush: bool = False, set_entry: object = None) -> list[str]:
    if sum(x is not None and x is not False for x in (delete, flush or None, set_entry)) != 1:
        raise UsageError("use exactly one of -d MAC, -f or -s MAC=IP:PORT|drop")
    decl = engine.declaration()
    if not isinstance(name, str) or name not in decl.overlays:
        raise UsageError("no such overlay: %s" % (name,))
    spec = decl.overlays[name].spec
    if spec.mode != "dynamic":
        raise UsageError("overlay %s uses %s (point-to-point): it has no target table" % (name, spec.search))
    dp = engine.dp
    if delete is not None:
        if not dp.del_target(spec.vnetid, delete):
            raise UsageError("overlay %s has no entry for %s" % (name, delete))
        return ["- target %s" % delete]
    if flush:
        n = 0
        for vni, mac, _ in dp.targets():
            if vni == spec.vnetid:
                n += dp.del_target(vni, mac)
        return ["- %d targets" % n]
    if not isinstance(set_entry, (list, tuple)) or len(set_entry) != 2:
        raise UsageError("invalid entry: use MAC=IP:PORT or MAC=drop")
    mac, dest = set_entry
    if isinstance(dest, str) and dest.lower() == "drop":
        dp.set_target(spec.vnetid, mac, None, drop=True)
        return ["~ target %s (drop)" % mac]
    ip, port = values.hostport(dest)
    encrypt = False
    if decl.mesh is not None:
        r = decl.mesh.resolve(ip)
        ip, encrypt = r.ip, r.encrypt
    dp.set_target(spec.vnetid, mac, ip, port, encrypt=encrypt)
    return ["~ target %s (%s)" % (mac, dest)]


def dp_call(dp, call: object, args: object) -> None:
    if call not in DP_CALLS or not isinstance(args, dict):
        raise UsageError("unknown data-path request %r" % (call,))
    try:
        done = getattr(dp, call)(**args)
    except TypeError:
        raise UsageError("bad arguments for data-path request %s" % call) from None
    if call == "del_target" and not done:
        raise UsageError("no target %s in overlay %s" % (args.get("mac"), args.get("vni")))
