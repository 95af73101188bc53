"""What the operator has declared on an instance, and the changes to it.

A Declaration is the whole declared state: overlays and VNICs (each with its
source, "cli" or "file", and whether it persists across reboots), the file's
underlay settings and mesh. Changes are pure: `change.declare(decl)` returns
the new declaration or raises UsageError, and touches nothing; the engine
then checks the result against the host (intent.py) and plans from it.

Changes travel to the daemon as JSON (`to_wire()` / `from_wire()`), so a
verb run while a daemon serves is executed by the daemon: the CLI sends the
raw arguments and the daemon validates them with this same code.

Rules kept from dladm and `pyovl up`:
  - `up FILE` owns the file's objects and never touches CLI-made ones; a
    name clash between the two is an error.
  - a VNIC's MAC is fixed once created (random ones too).
  - the persistent store (OmniOS datalink.conf) follows the verbs: without
    -t a create is persisted and a delete unpersisted; `up-overlay` brings
    the persisted objects back.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field, replace
from typing import ClassVar

from pyovl.config.load import load_file
from pyovl.config.rules import split_props
from pyovl.config.specs import OverlaySpec, VnicSpec, build_overlay, build_vnic
from pyovl.errors import UsageError
from pyovl.config.props import MTU


def random_mac() -> str:
    """dladm's default for create-vnic: random, with its 2:8:20 prefix."""
    return "02:08:20:%02x:%02x:%02x" % tuple(random.randrange(256) for _ in range(3))


@dataclass(frozen=True)
class OverlayDecl:
    spec: OverlaySpec
    source: str  # "cli" | "file"
    persistent: bool = False

    def to_json(self) -> dict:
        return {"spec": self.spec.to_json(), "source": self.source, "persistent": self.persistent}

    @classmethod
    def from_json(cls, d: dict) -> "OverlayDecl":
        return cls(OverlaySpec.from_json(d["spec"]), d["source"], bool(d.get("persistent")))


@dataclass(frozen=True)
class VnicDecl:
    spec: VnicSpec  # as declared (spec.mac None: random)
    mac: str  # the MAC in use, fixed once created
    source: str
    persistent: bool = False

    def to_json(self) -> dict:
        return {"spec": self.spec.to_json(), "mac": self.mac, "source": self.source,
                "persistent": self.persistent}

    @classmethod
    def from_json(cls, d: dict) -> "VnicDecl":
        return cls(VnicSpec.from_json(d["spec"]), d["mac"], d["source"], bool(d.get("persistent")))


@dataclass(frozen=True)
class Declaration:
    overlays: dict = field(default_factory=dict)  # name -> OverlayDecl
    vnics: dict = field(default_factory=dict)  # name -> VnicDecl
    underlay_devices: tuple = ()  # from the file: decap on these devices
    hook: str = "auto"  # from the file: decap hook for file overlays
    mesh: object = None  # pyovl.mesh.Mesh from the file
    file: str | None = None  # the last file applied
    metrics: str | None = None  # the file's daemon.metrics

    def with_(self, **kw) -> "Declaration":
        return replace(self, **kw)


# -- changes ---------------------------------------------------------------------

class Change:
    """One request. Subclasses are dataclasses whose fields are JSON values."""

    kind: ClassVar[str]
    reports: ClassVar[bool] = True  # print the actions taken

    def declare(self, decl: Declaration) -> Declaration:
        raise NotImplementedError

    def persist(self, decl: Declaration, store: dict) -> dict:
        """The persistent store after this change (decl: the new declaration)."""
        return store

    def to_wire(self) -> dict:
        return dict(dataclasses.asdict(self), change=self.kind)


@dataclass(frozen=True)
class UpFile(Change):
    """`pyovl up FILE`: the file's objects become exactly the file's."""

    kind: ClassVar[str] = "up"
    path: str = ""

    def declare(self, decl: Declaration) -> Declaration:
        cfg = load_file(self.path)  # read once, by whoever applies the change
        for kind, names, have in (("overlay", cfg.overlays, decl.overlays), ("VNIC", cfg.vnics, decl.vnics)):
            for n in names:
                if n in have and have[n].source != "file":
                    raise UsageError("%s %s was made by the CLI: delete it, or rename it in the file" % (kind, n))
        overlays = {n: d for n, d in decl.overlays.items() if d.source != "file"}
        overlays.update({n: OverlayDecl(s, "file") for n, s in cfg.overlays.items()})
        vnics = {n: d for n, d in decl.vnics.items() if d.source != "file"}
        for n, v in cfg.vnics.items():
            old = decl.vnics.get(n)
            mac = v.mac or (old.mac if old is not None and old.spec.over == v.over else random_mac())
            vnics[n] = VnicDecl(v, mac, "file")
        return decl.with_(overlays=overlays, vnics=vnics, underlay_devices=cfg.underlay_devices,
                          hook=cfg.hook, mesh=cfg.mesh, file=self.path, metrics=cfg.metrics)


@dataclass(frozen=True)
class CreateOverlay(Change):
    kind: ClassVar[str] = "create-overlay"
    name: str | None = None
    encap: str | None = None
    search: str | None = None
    vnetid: str | None = None
    props: tuple = ()  # -p values as given
    temporary: bool = False

    def spec(self) -> OverlaySpec:
        return build_overlay(self.name, self.encap, self.search, self.vnetid, split_props(list(self.props)))

    def declare(self, decl: Declaration) -> Declaration:
        spec = self.spec()
        if spec.name in decl.overlays:
            raise UsageError("overlay %s already exists" % spec.name)
        if spec.name in decl.vnics:
            raise UsageError("%s is already a VNIC" % spec.name)
        return decl.with_(overlays=dict(decl.overlays, **{spec.name: OverlayDecl(spec, "cli", not self.temporary)}))

    def persist(self, decl: Declaration, store: dict) -> dict:
        if not self.temporary:
            store["overlays"][self.name] = decl.overlays[self.name].spec.to_json()
        return store


@dataclass(frozen=True)
class DeleteOverlay(Change):
    kind: ClassVar[str] = "delete-overlay"
    name: str = ""
    temporary: bool = False

    def declare(self, decl: Declaration) -> Declaration:
        _overlay(decl, self.name)
        users = sorted(n for n, v in decl.vnics.items() if v.spec.over == self.name)
        if users:
            raise UsageError("overlay %s is busy: VNIC(s) %s are on it; delete them first"
                             % (self.name, ", ".join(users)))
        return decl.with_(overlays={n: d for n, d in decl.overlays.items() if n != self.name})

    def persist(self, decl: Declaration, store: dict) -> dict:
        if not self.temporary:
            store["overlays"].pop(self.name, None)
        return store


@dataclass(frozen=True)
class SetLinkprop(Change):
    """set-linkprop: only mtu can change after an overlay is created."""

    kind: ClassVar[str] = "set-linkprop"
    name: str = ""
    props: tuple = ()

    def declare(self, decl: Declaration) -> Declaration:
        values = split_props(list(self.props))
        if not values:
            raise UsageError("nothing to set: use -p mtu=N")
        for key in values:
            if key != "mtu":
                raise UsageError("cannot set %s on %s: only mtu can change after an overlay is created"
                                 % (key, self.name))
        od = _overlay(decl, self.name)
        spec = replace(od.spec, props=dict(od.spec.props, mtu=MTU.parse(values["mtu"])))
        return decl.with_(overlays=dict(decl.overlays, **{self.name: replace(od, spec=spec)}))

    def persist(self, decl: Declaration, store: dict) -> dict:
        if self.name in store["overlays"]:
            store["overlays"][self.name] = decl.overlays[self.name].spec.to_json()
        return store


@dataclass(frozen=True)
class CreateVnic(Change):
    kind: ClassVar[str] = "create-vnic"
    name: str = ""
    over: str = ""
    mac: str | None = None
    vlan: int = 0
    mtu: int | None = None
    netns: str | None = None
    addresses: tuple = ()
    temporary: bool = False

    def declare(self, decl: Declaration) -> Declaration:
        v = build_vnic(self.name, self.over, self.mac, self.vlan, self.mtu, self.netns, list(self.addresses))
        if v.name in decl.vnics:
            raise UsageError("VNIC %s already exists" % v.name)
        ov = _overlay(decl, v.over).spec
        if v.mtu is not None and v.mtu > ov.mtu:
            raise UsageError("mtu %d is above overlay %s's mtu %d" % (v.mtu, ov.name, ov.mtu))
        vd = VnicDecl(v, v.mac or random_mac(), "cli", not self.temporary)
        return decl.with_(vnics=dict(decl.vnics, **{v.name: vd}))

    def persist(self, decl: Declaration, store: dict) -> dict:
        if not self.temporary:
            vd = decl.vnics[self.name]
            store["vnics"][self.name] = replace(vd.spec, mac=vd.mac).to_json()
        return store


@dataclass(frozen=True)
class DeleteVnic(Change):
    kind: ClassVar[str] = "delete-vnic"
    name: str = ""
    temporary: bool = False

    def declare(self, decl: Declaration) -> Declaration:
        if self.name not in decl.vnics:
            raise UsageError("no such VNIC: %s" % self.name)
        return decl.with_(vnics={n: d for n, d in decl.vnics.items() if n != self.name})

    def persist(self, decl: Declaration, store: dict) -> dict:
        if not self.temporary:
            store["vnics"].pop(self.name, None)
        return store


@dataclass(frozen=True)
class RestorePersistent(Change):
    """`up-overlay` (at boot): the persisted CLI objects, declared again."""

    kind: ClassVar[str] = "up-overlay"
    store: dict | None = None  # filled by the engine from the persistent store

    def declare(self, decl: Declaration) -> Declaration:
        overlays, vnics = dict(decl.overlays), dict(decl.vnics)
        store = self.store or {"overlays": {}, "vnics": {}}
        for n, d in store["overlays"].items():
            if n not in overlays:
                overlays[n] = OverlayDecl(OverlaySpec.from_json(d), "cli", True)
        for n, d in store["vnics"].items():
            if n not in vnics:
                v = VnicSpec.from_json(d)
                vnics[n] = VnicDecl(v, v.mac or random_mac(), "cli", True)
        return decl.with_(overlays=overlays, vnics=vnics)


@dataclass(frozen=True)
class Reconcile(Change):
    """Nothing new: make the host match what is declared (repairs drift)."""

    kind: ClassVar[str] = "reconcile"

    def declare(self, decl: Declaration) -> Declaration:
        return decl


@dataclass(frozen=True)
class Down(Change):
    """`pyovl down`: nothing declared, and the data path itself removed."""

    kind: ClassVar[str] = "down"
    reports: ClassVar[bool] = False

    def declare(self, decl: Declaration) -> Declaration:
        return Declaration()

    def persist(self, decl: Declaration, store: dict) -> dict:
        return {"overlays": {}, "vnics": {}}


CHANGES = {c.kind: c for c in (UpFile, CreateOverlay, DeleteOverlay, SetLinkprop, CreateVnic, DeleteVnic,
                               RestorePersistent, Reconcile, Down)}


def from_wire(d: object) -> Change:
    """A change sent by a CLI; a malformed one is a UsageError, never a crash."""
    if not isinstance(d, dict) or d.get("change") not in CHANGES:
        raise UsageError("unknown change request")
    cls = CHANGES[d["change"]]
    names = {f.name for f in dataclasses.fields(cls)}
    args = {k: v for k, v in d.items() if k != "change"}
    if set(args) - names:
        raise UsageError("unknown argument(s) for %s: %s" % (cls.kind, ", ".join(sorted(set(args) - names))))
    for k, v in args.items():
        if isinstance(v, list):
            args[k] = tuple(v)
    return cls(**args)


def _overlay(decl: Declaration, name: str) -> OverlayDecl:
    if not isinstance(name, str) or name not in decl.overlays:
        raise UsageError("no such overlay: %s" % (name,))
    return decl.overlays[name]

