"""Plan: facts and the applied declaration against the wanted state, as a
list of typed actions in fail-closed order. Pure: no kernel access.

What needs a replace rather than an in-place change is data (REPLACE_*
below), in this one place. Everything else is changed in place: the data
path's map updates are atomic, so an in-place change drops no packet.

Phases (the order actions run in):
  0 load programs
  1 remove VNICs (removed, or replaced)          dependents before what
  2 remove overlays (removed, or replaced)        they depend on
  3 attach decap to underlay devices
  4 apply the mesh: the kernel's fallback policies, firewall and mesh maps,
    before any overlay or target can point at an encrypted peer
  5 create or change overlays
  6 create or change VNICs
  7 detach decap from devices nothing needs
  8 remove the mesh (after nothing points at encrypted peers any more)
  9 tear the data path down (`down` only)

Each action prints as one line in the style of `terraform plan`:
  + create   ~ change in place   -/+ replace   - remove
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pyovl.engine.declare import Declaration
from pyovl.engine.facts import Facts
from pyovl.engine.intent import Wanted, WantOverlay, WantVnic

# a change of any of these recreates the object (illumos: they are fixed at create time)
REPLACE_OVERLAY = ("vnetid", "encap", "search")
REPLACE_VNIC = ("over", "netns", "vlan")  # and the MAC in use
ACTIONS = {"+": "create", "~": "change", "-/+": "replace", "-": "remove"}  # --json's words for the symbols


@dataclass(frozen=True)
class Action:
    phase: ClassVar[int]
    what: ClassVar[str]
    op: ClassVar[str]  # "create" | "change" | "remove"
    name: str
    why: str = ""
    replace: bool = False  # one half of a replace (remove now, create later)

    @property
    def symbol(self) -> str:
        if self.replace:
            return "-/+"
        return {"create": "+", "change": "~", "remove": "-"}[self.op]

    def line(self) -> str:
        return "%s %s %s%s" % (self.symbol, self.what, self.name, " (%s)" % self.why if self.why else "")

    def to_json(self) -> dict:
        # from the symbol: a PutOverlay or AttachUnderlay may be a change in place
        return {"action": ACTIONS[self.symbol], "object": self.what, "name": self.name, "why": self.why}


@dataclass(frozen=True)
class LoadPrograms(Action):
    phase, what, op = 0, "programs", "create"


@dataclass(frozen=True)
class RemoveVnic(Action):
    phase, what, op = 1, "VNIC", "remove"


@dataclass(frozen=True)
class RemoveOverlay(Action):
    phase, what, op = 2, "overlay", "remove"
    vni: int = 0


@dataclass(frozen=True)
class AttachUnderlay(Action):
    phase, what, op = 3, "underlay", "create"
    hook: str = "tc"
    previous: str | None = None

    @property
    def symbol(self) -> str:
        return "~" if self.previous else "+"


@dataclass(frozen=True)
class ApplyMesh(Action):
    phase, what, op = 4, "mesh", "create"


@dataclass(frozen=True)
class PutOverlay(Action):
    phase, what, op = 5, "overlay", "create"
    create: bool = True

    @property
    def symbol(self) -> str:
        return "-/+" if self.replace else ("+" if self.create else "~")


@dataclass(frozen=True)
class CreateVnic(Action):
    phase, what, op = 6, "VNIC", "create"


@dataclass(frozen=True)
class ChangeVnic(Action):
    phase, what, op = 6, "VNIC", "change"
    mtu: int | None = None
    add: tuple = ()
    remove: tuple = ()
    port: bool = False  # write the port entry and attach the program again


@dataclass(frozen=True)
class DetachUnderlay(Action):
    phase, what, op = 7, "underlay", "remove"


@dataclass(frozen=True)
class RemoveMesh(Action):
    phase, what, op = 8, "mesh", "remove"


@dataclass(frozen=True)
class Teardown(Action):
    phase, what, op = 9, "programs", "remove"


def plan(facts: Facts, before: Declaration, mesh_record: dict | None, want: Wanted,
         teardown: bool = False) -> list[Action]:
    """The actions that take the host from facts (+ the applied declaration
    before, + the applied mesh record) to want. Empty: nothing to do."""
    acts: list[Action] = []
    replaced = _overlays(facts, before, want, acts, teardown)
    _vnics(facts, before, want, replaced, acts)
    if not teardown:
        _underlays(facts, want, acts)
    _mesh(facts, mesh_record, want, acts)
    if teardown and facts.loaded:
        acts.append(Teardown("data path", "programs, maps and pins"))
    elif acts and not facts.loaded:
        acts.append(LoadPrograms("data path"))
    acts.sort(key=lambda a: a.phase)  # stable: within a phase, in name order
    return acts


def _overlays(facts: Facts, before: Declaration, want: Wanted, acts: list, teardown: bool) -> set[str]:
    replaced = set()
    for name in sorted(set(before.overlays) | set(want.overlays)):
        b, w = before.overlays.get(name), want.overlays.get(name)
        if w is None:
            if not teardown:  # teardown removes every overlay at once
                acts.append(RemoveOverlay(name, vni=b.spec.vnetid))
            continue
        if b is None:
            acts.append(PutOverlay(name, "vnetid %d" % w.vni))
            continue
        why = ", ".join("%s %s -> %s" % (k, getattr(b.spec, k), getattr(w.spec, k))
                        for k in REPLACE_OVERLAY if getattr(b.spec, k) != getattr(w.spec, k))
        if why:
            replaced.add(name)
            acts.append(RemoveOverlay(name, replace=True, vni=b.spec.vnetid))
            acts.append(PutOverlay(name, why, replace=True))
            continue
        fact = facts.overlays.get(w.vni)
        if fact is None:
            acts.append(PutOverlay(name, "missing from the data path"))
            continue
        why = _overlay_diff(fact, w) or ("search properties" if b.spec.props != w.spec.props else "")
        if why:
            acts.append(PutOverlay(name, why, create=False))
    return replaced


def _overlay_diff(fact, w: WantOverlay) -> str:
    point, lip, lport, mtu, dest = w.kernel()
    out = []
    if fact.point != point:
        out.append("mode")
    if (fact.listen_ip, fact.listen_port) != (lip, lport):
        out.append("listen %s:%d -> %s:%d" % (fact.listen_ip, fact.listen_port, lip, lport))
    if fact.mtu != mtu:
        out.append("mtu %d -> %d" % (fact.mtu, mtu))
    if point and fact.dest != dest:
        enc = " (IPsec)" if dest[2] else ""
        out.append("destination %s:%d -> %s:%d%s" % (fact.dest[0], fact.dest[1], dest[0], dest[1], enc)
                   if fact.dest else "destination")
    return ", ".join(out)


def _vnics(facts: Facts, before: Declaration, want: Wanted, replaced: set, acts: list) -> None:
    for name in sorted(set(before.vnics) | set(want.vnics)):
        b, w = before.vnics.get(name), want.vnics.get(name)
        if w is None:
            acts.append(RemoveVnic(name))
            continue
        if b is None:
            acts.append(CreateVnic(name, "on %s" % w.spec.over))
            continue
        why = ", ".join("%s %s -> %s" % (k, getattr(b.spec, k), getattr(w.spec, k))
                        for k in REPLACE_VNIC if getattr(b.spec, k) != getattr(w.spec, k))
        if not why and b.mac != w.decl.mac:
            why = "mac %s -> %s" % (b.mac, w.decl.mac)
        if not why and b.spec.over in replaced:
            why = "overlay %s is replaced" % b.spec.over
        if not why and w.host not in facts.links:
            why = "host end %s missing" % w.host
        if why:
            acts.append(RemoveVnic(name, replace=True))
            acts.append(CreateVnic(name, why, replace=True))
            continue
        _vnic_change(facts, before, w, b, acts)


def _vnic_change(facts: Facts, before: Declaration, w: WantVnic, b, acts: list) -> None:
    ob = before.overlays.get(b.spec.over)
    had_mtu = min(b.spec.mtu or ob.spec.mtu, ob.spec.mtu) if ob else None
    mtu = w.mtu if w.mtu != had_mtu else None
    add = tuple(a for a in w.spec.addresses if a not in b.spec.addresses)
    rm = tuple(a for a in b.spec.addresses if a not in w.spec.addresses)
    port = not facts.port_ok(w.host, w.vni, w.decl.mac, w.spec.vlan)
    if mtu is None and not add and not rm and not port:
        return
    why = []
    if mtu is not None:
        why.append("mtu %s -> %d" % (had_mtu, mtu))
    why += ["+%s" % a for a in add] + ["-%s" % a for a in rm]
    if port:
        why.append("port not in the data path")
    acts.append(ChangeVnic(w.name, ", ".join(why), mtu=mtu, add=add, remove=rm, port=port))


def _underlays(facts: Facts, want: Wanted, acts: list) -> None:
    for dev, hook in sorted(want.underlays.items()):
        cur = facts.decap_hook(dev)
        if cur != hook:
            acts.append(AttachUnderlay(dev, "%s -> %s" % (cur, hook) if cur else hook, hook=hook, previous=cur))
    for dev in sorted(facts.attached):
        if dev not in want.underlays:
            acts.append(DetachUnderlay(dev))


def _mesh(facts: Facts, rec: dict | None, want: Wanted, acts: list) -> None:
    if want.mesh is None:
        if rec:
            acts.append(RemoveMesh("node %s" % rec["spec"].get("self", "?")))
        return
    name = "node %s" % want.mesh.self_name
    if rec is None:
        acts.append(ApplyMesh(name, "%d encrypted peers" % len(want.mesh.encrypted_peers())))
    elif (rec["spec"] != want.mesh.to_json() or tuple(rec.get("ports", ())) != want.mesh_ports
          or rec.get("external_device") != want.mesh_device):
        acts.append(ApplyMesh(name, "changed"))
    elif any(d not in facts.links for d in rec.get("devices", ())):
        acts.append(ApplyMesh(name, "mesh device missing"))
