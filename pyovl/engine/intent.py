"""Desire: the declaration, checked against this host, as wanted kernel state.

desire(decl, before, facts) is pure apart from reading facts (and the mesh's
key file): it raises UsageError on the first problem, naming the object and
the fix, before anything is changed. Every check that needs the host lives
here: the listen IP is an address of this host (0.0.0.0 means every device
with an address, as for a bound socket), named underlay devices exist,
vnetids and VNIC MACs are unique, a new VNIC's name is free in its
namespace, VNIC MTUs fit their overlay, and with a mesh: its external
device, the overlay MTUs against the ESP overhead and the key file.

The result says, per object, exactly what the kernel should hold; plan.py
compares it with the facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyovl import values
from pyovl.dataplane.abi import MAX_FLOOD
from pyovl.config.specs import OverlaySpec
from pyovl.engine.declare import Declaration, VnicDecl
from pyovl.engine.facts import Facts, host_end_name
from pyovl.errors import UsageError

AF_INET, AF_INET6 = 2, 10


@dataclass(frozen=True)
class WantOverlay:
    name: str
    spec: OverlaySpec
    devices: tuple  # decap attached on these
    point: tuple | None  # (ip, port, encrypt): where a point overlay sends, after the mesh

    @property
    def vni(self) -> int:
        return self.spec.vnetid

    def kernel(self) -> tuple:
        """What the overlays map entry must say, in OverlayFact's terms."""
        p = self.spec.props
        return (self.point is not None, p["vxlan/listen_ip"], p["vxlan/listen_port"], self.spec.mtu, self.point)


@dataclass(frozen=True)
class WantVnic:
    name: str
    decl: VnicDecl
    vni: int
    mtu: int  # of the guest end: its own, never above the overlay's

    @property
    def host(self) -> str:
        return host_end_name(self.name)

    @property
    def spec(self):
        return self.decl.spec


@dataclass
class Wanted:
    decl: Declaration
    overlays: dict = field(default_factory=dict)  # name -> WantOverlay
    vnics: dict = field(default_factory=dict)  # name -> WantVnic
    underlays: dict = field(default_factory=dict)  # device -> hook ("tc" | "xdp")
    mesh: object = None  # pyovl.mesh.Mesh
    mesh_ports: tuple = ()
    mesh_device: str | None = None  # the mesh's external device


def desire(decl: Declaration, before: Declaration, facts: Facts) -> Wanted:
    """before: the declaration applied now (to tell new objects from ours)."""
    w = Wanted(decl=decl, mesh=decl.mesh)
    by_vni: dict[int, str] = {}
    for name, od in sorted(decl.overlays.items()):
        spec = od.spec
        if name in decl.vnics:
            raise UsageError("%s is both an overlay and a VNIC" % name)
        if spec.vnetid in by_vni:
            raise UsageError("vnetid %d is already used by overlay %s" % (spec.vnetid, by_vni[spec.vnetid]))
        by_vni[spec.vnetid] = name
        file_devices = decl.underlay_devices if od.source == "file" else ()
        devices = _devices(spec, file_devices, facts)
        hook = decl.hook if od.source == "file" else "auto"
        for dev in devices:
            h = _hook(dev, hook, facts)
            if w.underlays.get(dev, h) != h and hook == "auto":
                continue  # an explicit hook from the file wins over auto
            w.underlays[dev] = h
        point = None
        if spec.mode == "point":
            ip, enc = spec.props["direct/dest_ip"], False
            if decl.mesh is not None:
                r = decl.mesh.resolve(ip)
                ip, enc = r.ip, r.encrypt
            point = (ip, spec.props["direct/dest_port"], enc)
        w.overlays[name] = WantOverlay(name, spec, tuple(devices), point)
    macs: dict[tuple, str] = {}
    ports: dict[int, int] = {}
    for name, vd in sorted(decl.vnics.items()):
        v = vd.spec
        ov = w.overlays.get(v.over)
        if ov is None:
            raise UsageError("VNIC %s: no such overlay: %s" % (name, v.over))
        if v.mtu is not None and v.mtu > ov.spec.mtu:
            raise UsageError("VNIC %s: mtu %d is above overlay %s's mtu %d" % (name, v.mtu, v.over, ov.spec.mtu))
        key = (ov.vni, vd.mac)
        if key in macs:
            raise UsageError("MAC %s is already used by VNIC %s on overlay %s" % (vd.mac, macs[key], v.over))
        macs[key] = name
        ports[ov.vni] = ports.get(ov.vni, 0) + 1
        if ports[ov.vni] > MAX_FLOOD:  # the data path's flood list (abi.Flood) holds that many
            raise UsageError("overlay %s: at most %d VNICs per overlay on one host (broadcast reaches that many)"
                             % (v.over, MAX_FLOOD))
        old = before.vnics.get(name)
        if (old is None or old.spec.netns != v.netns) and facts.name_taken(v.name, v.netns):
            raise UsageError("VNIC %s: an interface named %s already exists%s"
                             % (name, v.name, " in namespace %s" % v.netns if v.netns else ""))
        w.vnics[name] = WantVnic(name, vd, ov.vni, min(v.mtu or ov.spec.mtu, ov.spec.mtu))
    if decl.mesh is not None:
        _desire_mesh(w, facts)
    return w


def _devices(spec: OverlaySpec, configured: tuple, facts: Facts) -> list[str]:
    lip = values.ip(spec.props["vxlan/listen_ip"])
    local = None
    if not lip.is_unspecified:
        local = facts.device_of_address(str(lip))
        if local is None:
            raise UsageError("%s: vxlan/listen_ip %s is not an address of this host" % (spec.name, lip))
    if configured:
        for d in configured:
            facts.kind(d)  # raises "no such interface"
        return list(configured)
    if local is not None:
        return [local]
    devs = facts.devices_with_addresses(AF_INET if lip.version == 4 else AF_INET6)
    if not devs:
        raise UsageError("%s: vxlan/listen_ip %s listens on all addresses, but no interface has one"
                         % (spec.name, lip))
    return devs


def _hook(dev: str, hook: str, facts: Facts) -> str:
    if hook != "auto":
        return hook
    return "tc" if facts.kind(dev) in ("veth", "netkit") else "xdp"


def _desire_mesh(w: Wanted, facts: Facts) -> None:
    """The mesh's checks, all before anything changes: external device, the
    MTUs with ESP, and the key file (owner, mode, a key per encrypted pair)."""
    from pyovl.mesh import apply as mesh_apply, keys  # noqa: PLC0415 - only hosts with a mesh need these

    mesh = w.mesh
    dev = mesh_apply.external_device(mesh, facts.device_of_address)
    facts.kind(dev)
    mesh_apply.check_mtu(mesh, facts.links[dev]["mtu"] or 1500, dev, {n: o.spec for n, o in w.overlays.items()})
    enc = mesh.encrypted_peers()
    if enc:
        keys.load(mesh.keys, mesh.me.name, [p.name for p in enc])
    ports = {o.spec.props["vxlan/listen_port"] for o in w.overlays.values()}
    ports |= {o.spec.props["direct/dest_port"] for o in w.overlays.values() if o.point is not None}
    w.mesh_ports = tuple(sorted(ports or {4789}))
    w.mesh_device = dev
    w.underlays.setdefault(dev, _hook(dev, "auto", facts))  # plaintext from outside is refused there
