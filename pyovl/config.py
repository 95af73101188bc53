"""What pyovl is asked to build: overlays, VNICs, rules (overlay.json).

OverlaySpec / VnicSpec are validated, normalised descriptions; building one
is the only way in, so everything downstream can trust them. load_file()
validates a whole overlay.json before anything is applied and reports the
first problem as one line naming where it is ("overlays.demo0.props.mtu:
invalid value 9000 for mtu: must be 576-8900"). Rules are Danube's overlay
rules: create-overlay arguments without -v, parsed by parse_create_args().
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from dataclasses import asdict, dataclass, field

from pyovl import props as P
from pyovl.bpf.abi import mac_bytes
from pyovl.errors import UsageError
from pyovl.lookup import registry

LINKNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,29}[0-9]$")  # dladm: letter first, digit last
IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


@dataclass(frozen=True)
class OverlaySpec:
    name: str
    vnetid: int
    encap: str
    search: str
    props: dict = field(default_factory=dict)  # every settable prop, defaults applied
    rule: str | None = None

    @property
    def mode(self) -> str:
        return registry.plugins()[self.search].MODE

    @property
    def mtu(self) -> int:
        return self.props["mtu"]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "OverlaySpec":
        return cls(**d)


@dataclass(frozen=True)
class VnicSpec:
    name: str
    over: str
    mac: str | None = None  # None: random (dladm's default), fixed once created
    vlan: int = 0
    mtu: int | None = None  # None: the overlay's
    netns: str | None = None  # None: the guest end stays in pyovl's namespace
    addresses: tuple = ()

    def to_json(self) -> dict:
        d = asdict(self)
        d["addresses"] = list(self.addresses)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "VnicSpec":
        d = dict(d)
        d["addresses"] = tuple(d.get("addresses", ()))
        return cls(**d)


def check_linkname(name: object, what: str = "overlay") -> str:
    if not isinstance(name, str) or not LINKNAME.match(name):
        raise UsageError("invalid link name %r: an %s name is 2-31 letters, digits, '_' or '.', "
                         "starting with a letter and ending with a digit (e.g. ov0)" % (name, what))
    return name


def settable_props(encap: str, search: str) -> dict[str, P.PropSpec]:
    out = dict(P.SETTABLE_GENERIC)
    out.update({p.name: p for p in P.ENCAPS[encap]})
    out.update({p.name: p for p in registry.plugins()[search].PROPS})
    return out


def build_overlay(name: str, encap: str | None, search: str | None, vnetid: object,
                  raw_props: dict, rule: str | None = None) -> OverlaySpec:
    if not name:
        raise UsageError("missing device name")
    check_linkname(name)
    if vnetid is None:
        raise UsageError("missing required virtual network id")
    if not encap:
        raise UsageError("missing required encapsulation plugin")
    if not search:
        raise UsageError("missing required search plugin")
    if encap not in P.ENCAPS:
        raise UsageError("unknown encapsulation plugin: %s (known: %s)" % (encap, ", ".join(P.ENCAPS)))
    if search not in registry.plugins():
        raise UsageError("unknown search plugin: %s (known: %s)" % (search, ", ".join(registry.names())))
    vni = P.VNETID.parse(vnetid)
    specs = settable_props(encap, search)
    values = {}
    for key, raw in raw_props.items():
        if key not in specs:
            if key in ("vnetid", "encap", "search"):
                raise UsageError("%s is set with its own option, not as a property" % key)
            raise UsageError("unknown property %s for encap %s and search %s (known: %s)"
                             % (key, encap, search, ", ".join(specs)))
        values[key] = specs[key].parse(raw)
    for key, spec in specs.items():
        if key not in values:
            if spec.default is not None:
                values[key] = spec.default
            elif spec.required:
                raise UsageError("unset required property: %s" % key)
    if search == "direct":
        lip, dip = (ipaddress.ip_address(values[k]) for k in ("vxlan/listen_ip", "direct/dest_ip"))
        if lip.version != dip.version:
            raise UsageError("direct/dest_ip %s and vxlan/listen_ip %s are of different IP versions" % (dip, lip))
    return OverlaySpec(name=name, vnetid=vni, encap=encap, search=search, props=values, rule=rule)


def split_props(values: list[str] | tuple[str, ...]) -> dict:
    """-p a=b,c=d -p e=f -> {a: b, c: d, e: f}, as dladm splits them."""
    out: dict = {}
    for v in values:
        for item in v.split(","):
            key, sep, val = item.partition("=")
            if not sep or not key:
                raise UsageError("invalid property %r: use -p name=value" % item)
            if key in out:
                raise UsageError("property %s given twice" % key)
            out[key] = val
    return out


def parse_create_args(text: str, allow_vnetid: bool = True) -> dict:
    """create-overlay options from a string (a Danube rule): -e, -s, -v, -p, -t."""
    try:
        argv = shlex.split(text)
    except ValueError as e:
        raise UsageError("cannot parse %r: %s" % (text, e)) from None
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
            raise UsageError("unexpected %r (a rule holds -e, -s and -p options)" % a)
        i += 1
    if out["vnetid"] is not None and not allow_vnetid:
        raise UsageError("a rule must not set -v: the overlay that uses the rule gives the vnetid")
    out["props"] = split_props(out["props"])
    return out


def build_vnic(name: str, over: str, mac: object = None, vlan: object = 0, mtu: object = None,
               netns: object = None, addresses: object = ()) -> VnicSpec:
    if not isinstance(name, str) or not IFNAME.match(name):
        raise UsageError("invalid VNIC name %r: 1-15 letters, digits, '_', '.' or '-'" % (name,))
    if mac is not None:
        try:
            raw = mac_bytes(mac) if isinstance(mac, str) else None
        except ValueError:
            raw = None
        if raw is None:
            raise UsageError("invalid MAC address %r" % (mac,))
        if raw[0] & 1:
            raise UsageError("MAC address %s is multicast; a VNIC needs a unicast MAC" % mac)
        if raw == b"\0" * 6:
            raise UsageError("MAC address %s is all zeros" % mac)
        mac = ":".join("%02x" % b for b in raw)
    if isinstance(vlan, bool) or not isinstance(vlan, int) or not 0 <= vlan <= 4094:
        raise UsageError("invalid VLAN id %r: must be 0-4094" % (vlan,))
    if mtu is not None:
        mtu = P.MTU.parse(mtu)
    if netns is not None and (not isinstance(netns, str) or not re.match(r"^[A-Za-z0-9_.-]{1,64}$", netns)):
        raise UsageError("invalid network namespace name %r" % (netns,))
    if isinstance(addresses, str) or not isinstance(addresses, (list, tuple)):
        raise UsageError("addresses must be a list of address/prefix strings")
    for a in addresses:
        try:
            ipaddress.ip_interface(a)
            if "/" not in a:
                raise ValueError
        except (ValueError, TypeError):
            raise UsageError("invalid address %r: use address/prefix, e.g. 10.23.0.1/24" % (a,)) from None
    return VnicSpec(name=name, over=check_linkname(over) if over else over, mac=mac, vlan=vlan, mtu=mtu,
                    netns=netns, addresses=tuple(addresses))


# -- overlay.json --------------------------------------------------------------

TOP_KEYS = {"overlays", "rules", "vnics", "daemon", "underlay", "mesh", "$schema", "comment"}
OVERLAY_KEYS = {"encap", "search", "vnetid", "props", "rule"}
VNIC_KEYS = {"over", "mac", "vlan", "mtu", "netns", "addresses"}


@dataclass
class Config:
    overlays: dict[str, OverlaySpec] = field(default_factory=dict)
    vnics: dict[str, VnicSpec] = field(default_factory=dict)
    metrics: str = "127.0.0.1:9134"
    underlay_devices: tuple = ()
    hook: str = "auto"
    mesh: object = None  # pyovl.mesh.Mesh: the node inventory and IPsec (Danube)


class _At:
    """Prefix UsageErrors raised inside the block with a location."""

    def __init__(self, where: str):
        self.where = where

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        if et is UsageError and not getattr(e, "located", False):
            err = UsageError("%s: %s" % (self.where, e))
            err.located = True
            raise err from None
        return False


def _obj(value: object, where: str, keys: set | None = None) -> dict:
    if not isinstance(value, dict):
        raise UsageError("%s: must be a JSON object" % where)
    if keys is not None:
        extra = sorted(set(value) - keys)
        if extra:
            raise UsageError("%s: unknown key %r (known: %s)" % (where, extra[0], ", ".join(sorted(keys))))
    return value


def parse_config(doc: object) -> Config:
    doc = _obj(doc, "top level", TOP_KEYS)
    cfg = Config()
    rules = {}
    for rname, text in _obj(doc.get("rules", {}), "rules").items():
        with _At("rules.%s" % rname):
            if not isinstance(text, str):
                raise UsageError("a rule is a string of create-overlay options")
            rules[rname] = parse_create_args(text, allow_vnetid=False)
    seen_vni: dict[int, str] = {}
    for name, o in _obj(doc.get("overlays", {}), "overlays").items():
        where = "overlays.%s" % name
        o = _obj(o, where, OVERLAY_KEYS)
        with _At(where):
            extra_props = dict(_obj(o.get("props", {}), where + ".props"))
            if "rule" in o:
                if o["rule"] not in rules:
                    raise UsageError("rule %r is not defined in rules" % o["rule"])
                r = rules[o["rule"]]
                if "encap" in o or "search" in o:
                    raise UsageError("an overlay with a rule takes only vnetid (and props overrides)")
                merged = dict(r["props"])
                merged.update(extra_props)
                spec = build_overlay(name, r["encap"], r["search"], o.get("vnetid"), merged, rule=o["rule"])
            else:
                spec = build_overlay(name, o.get("encap"), o.get("search"), o.get("vnetid"), extra_props)
            if spec.vnetid in seen_vni:
                raise UsageError("vnetid %d is already used by overlay %s" % (spec.vnetid, seen_vni[spec.vnetid]))
            seen_vni[spec.vnetid] = name
            cfg.overlays[name] = spec
    macs: dict[tuple, str] = {}
    for name, v in _obj(doc.get("vnics", {}), "vnics").items():
        where = "vnics.%s" % name
        v = _obj(v, where, VNIC_KEYS)
        with _At(where):
            if "over" not in v:
                raise UsageError("missing 'over': the overlay this VNIC is on")
            if v["over"] not in cfg.overlays:
                raise UsageError("overlay %r does not exist in this file" % v["over"])
            spec = build_vnic(name, v["over"], v.get("mac"), v.get("vlan", 0), v.get("mtu"),
                              v.get("netns"), v.get("addresses", ()))
            ov = cfg.overlays[spec.over]
            if spec.mtu is not None and spec.mtu > ov.mtu:
                raise UsageError("mtu %d is above overlay %s's mtu %d" % (spec.mtu, ov.name, ov.mtu))
            if spec.mac:
                key = (ov.vnetid, spec.mac)
                if key in macs:
                    raise UsageError("MAC %s is already used by VNIC %s on overlay %s"
                                     % (spec.mac, macs[key], ov.name))
                macs[key] = name
            cfg.vnics[name] = spec
    with _At("daemon"):
        d = _obj(doc.get("daemon", {}), "daemon", {"metrics"})
        if "metrics" in d:
            cfg.metrics = check_hostport(d["metrics"])
    with _At("underlay"):
        u = _obj(doc.get("underlay", {}), "underlay", {"devices", "hook"})
        devs = u.get("devices", [])
        if not isinstance(devs, list) or not all(isinstance(x, str) and IFNAME.match(x) for x in devs):
            raise UsageError("devices must be a list of interface names")
        cfg.underlay_devices = tuple(devs)
        if u.get("hook", "auto") not in ("auto", "tc", "xdp"):
            raise UsageError("hook must be auto, tc or xdp")
        cfg.hook = u.get("hook", "auto")
    if "mesh" in doc:
        from pyovl.mesh import parse_mesh  # noqa: PLC0415

        cfg.mesh = parse_mesh(doc["mesh"])
    return cfg


def check_hostport(value: object) -> str:
    host, sep, port = str(value).rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]"))
        ok = sep and 1 <= int(port) <= 65535
    except ValueError:
        ok = False
    if not ok:
        raise UsageError("metrics address %r must be IP:PORT, e.g. 127.0.0.1:9134" % (value,))
    return str(value)


def load_file(path: str) -> Config:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise UsageError("%s: %s" % (path, e.strerror)) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError("%s: invalid JSON at line %d column %d: %s" % (path, e.lineno, e.colno, e.msg)) from None
    try:
        return parse_config(doc)
    except UsageError as e:
        raise UsageError("%s: %s" % (path, e)) from None
