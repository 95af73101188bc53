"""What pyovl is asked to build: overlays, VNICs, rules (overlay.json).

OverlaySpec / VnicSpec are validated, normalised descriptions; building one
is the only way in, so everything downstream can trust them. load_file()
validates a whole overlay.json before anything is applied and reports the
first problem as one line naming where it is ("overlays.demo0.props.mtu:
invalid value 9000 for mtu: must be 576-8900"). Rules are Danube's overlay
rules: create-overlay arguments without -v, parsed by parse_create_args().

Every value is type-checked before it is used as a key, a set member, a
pattern's subject or int()'s argument, so no JSON value (a list, an object,
a huge number, text with a newline) gets further than one UsageError.
Names are matched with fullmatch(): "$" would also match before a final
newline. Addresses are kept in their canonical form ("10.98.0.1/24" for
"10.98.0.1/255.255.255.0"), so equal addresses compare equal.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import asdict, dataclass, field

from pyovl import props as P
from pyovl.bpf.abi import mac_bytes
from pyovl.errors import UsageError, show
from pyovl.inputs import parse_json, read_file
from pyovl.lookup import registry

# Use with fullmatch(), never match(): see the module docstring.
LINKNAME = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,29}[0-9]")  # dladm: letter first, digit last
IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
NETNS = re.compile(r"[A-Za-z0-9_.-]{1,64}")
RULE_NAME = re.compile(r"\S{1,64}")  # and printable


def _plain(value: object) -> str:
    """A value for a dladm-style message, which names things unquoted: short
    text as it is (PyovlError escapes its control characters), else show()."""
    return value if isinstance(value, str) and len(value) <= 64 else show(value)


def _is_name(pattern: re.Pattern, name: object) -> bool:
    """name is text matching pattern whole and not only dots ("." and ".."
    are directory entries: a namespace so named is a path outside /run/netns)."""
    return isinstance(name, str) and pattern.fullmatch(name) is not None and name.strip(".") != ""


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
        # by hand: dataclasses.asdict deep-copies recursively (0.7 s of an up of 10k overlays)
        return {"name": self.name, "vnetid": self.vnetid, "encap": self.encap, "search": self.search,
                "props": dict(self.props), "rule": self.rule}

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
    if not _is_name(LINKNAME, name):
        raise UsageError("invalid link name %s: an %s name is 2-31 letters, digits, '_' or '.', "
                         "starting with a letter and ending with a digit (e.g. ov0)" % (show(name), what))
    return name


def settable_props(encap: str, search: str) -> dict[str, P.PropSpec]:
    out = dict(P.SETTABLE_GENERIC)
    out.update({p.name: p for p in P.ENCAPS[encap]})
    out.update({p.name: p for p in registry.plugins()[search].PROPS})
    return out


def build_overlay(name: str, encap: str | None, search: str | None, vnetid: object,
                  raw_props: dict, rule: str | None = None) -> OverlaySpec:
    if name is None or name == "":
        raise UsageError("missing device name")
    check_linkname(name)
    if vnetid is None:
        raise UsageError("missing required virtual network id")
    if encap is None or encap == "":
        raise UsageError("missing required encapsulation plugin")
    if search is None or search == "":
        raise UsageError("missing required search plugin")
    # isinstance first: a list or an object would make "in" raise TypeError
    if not isinstance(encap, str) or encap not in P.ENCAPS:
        raise UsageError("unknown encapsulation plugin: %s (known: %s)" % (_plain(encap), ", ".join(P.ENCAPS)))
    if not isinstance(search, str) or search not in registry.plugins():
        raise UsageError("unknown search plugin: %s (known: %s)" % (_plain(search), ", ".join(registry.names())))
    vni = P.VNETID.parse(vnetid)
    specs = settable_props(encap, search)
    values = {}
    if not isinstance(raw_props, dict):
        raise UsageError("props must be an object of property name -> value")
    for key, raw in raw_props.items():
        if key not in specs:
            if key in ("vnetid", "encap", "search"):
                raise UsageError("%s is set with its own option, not as a property" % key)
            raise UsageError("unknown property %s for encap %s and search %s (known: %s)"
                             % (_plain(key), encap, search, ", ".join(specs)))
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
                raise UsageError("invalid property %s: use -p name=value" % show(item))
            if key in out:
                raise UsageError("property %s given twice" % _plain(key))
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


def build_vnic(name: str, over: str, mac: object = None, vlan: object = 0, mtu: object = None,
               netns: object = None, addresses: object = ()) -> VnicSpec:
    if not _is_name(IFNAME, name):
        raise UsageError("invalid VNIC name %s: 1-15 letters, digits, '_', '.' or '-', not only dots"
                         % show(name))
    if mac is not None:
        try:
            raw = mac_bytes(mac)
        except ValueError:
            raw = None
        if raw is None:
            raise UsageError("invalid MAC address %s" % show(mac))
        if raw[0] & 1:
            raise UsageError("MAC address %s is multicast; a VNIC needs a unicast MAC" % mac)
        if raw == b"\0" * 6:
            raise UsageError("MAC address %s is all zeros" % mac)
        mac = ":".join("%02x" % b for b in raw)
    if isinstance(vlan, bool) or not isinstance(vlan, int) or not 0 <= vlan <= 4094:
        raise UsageError("invalid VLAN id %s: must be 0-4094" % show(vlan))
    if mtu is not None:
        mtu = P.MTU.parse(mtu)
    if netns is not None and not _is_name(NETNS, netns):
        raise UsageError("invalid network namespace name %s: 1-64 letters, digits, '_', '.' or '-', "
                         "not only dots" % show(netns))
    if over is not None and over != "":
        check_linkname(over)
    return VnicSpec(name=name, over=over, mac=mac, vlan=vlan, mtu=mtu, netns=netns,
                    addresses=check_addresses(addresses))


def check_addresses(addresses: object) -> tuple[str, ...]:
    """A VNIC's address/prefix list -> canonical texts ("10.98.0.1/24" for
    "10.98.0.1/255.255.255.0"); each address at most once, whatever the prefix
    (the kernel refuses the second IPv6 one, and two IPv4 ones are a typo)."""
    if isinstance(addresses, str) or not isinstance(addresses, (list, tuple)):
        raise UsageError("addresses must be a list of address/prefix strings")
    out: list[str] = []
    seen: dict = {}
    for a in addresses:
        iface = None
        if isinstance(a, str) and "/" in a and "%" not in a:  # '%': a zone, which ip_interface drops
            try:
                iface = ipaddress.ip_interface(a)
            except ValueError:
                pass
        if iface is None:
            raise UsageError("invalid address %s: use address/prefix, e.g. 10.23.0.1/24" % show(a))
        if iface.ip.is_unspecified or iface.ip.is_multicast:
            raise UsageError("invalid address %s: an interface address cannot be %s"
                             % (show(a), "unspecified" if iface.ip.is_unspecified else "multicast"))
        if iface.ip in seen:
            raise UsageError("address %s is given twice (as %s and %s)" % (iface.ip, show(seen[iface.ip]), show(a)))
        seen[iface.ip] = a
        out.append(iface.with_prefixlen)
    return tuple(out)


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


def _at(parent: str, key: str) -> str:
    """The location of parent's member key: "vnics.web0", or "vnics['..']"
    when the key is no plain name and would make the location ambiguous."""
    if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}", key) and not key.endswith("."):
        return "%s.%s" % (parent, key)
    return "%s[%s]" % (parent, show(key))


def _located(where: str, what: str) -> UsageError:
    """An error already naming its place, which _At leaves as it is."""
    err = UsageError("%s: %s" % (where, what))
    err.located = True
    return err


def _obj(value: object, where: str, keys: set | None = None) -> dict:
    if not isinstance(value, dict):
        raise UsageError("%s: must be a JSON object" % where)
    if keys is not None:
        extra = sorted(set(value) - keys)
        if extra:
            raise UsageError("%s: unknown key %s (known: %s)" % (where, show(extra[0]), ", ".join(sorted(keys))))
    return value


def parse_config(doc: object) -> Config:
    doc = _obj(doc, "top level", TOP_KEYS)
    cfg = Config()
    rules = {}
    for rname, text in _obj(doc.get("rules", {}), "rules").items():
        with _At(_at("rules", rname)):
            if not (_is_name(RULE_NAME, rname) and rname.isprintable()):
                raise UsageError("a rule name is 1-64 printable characters without spaces")
            if not isinstance(text, str):
                raise UsageError("a rule is a string of create-overlay options")
            rules[rname] = parse_create_args(text, allow_vnetid=False)
    seen_vni: dict[int, str] = {}
    for name, o in _obj(doc.get("overlays", {}), "overlays").items():
        where = _at("overlays", name)
        o = _obj(o, where, OVERLAY_KEYS)
        with _At(where):
            extra_props = dict(_obj(o.get("props", {}), where + ".props"))
            if "rule" in o:
                if not isinstance(o["rule"], str):
                    raise _located(where + ".rule", "must be a string, the name of one of rules")
                if o["rule"] not in rules:
                    raise UsageError("rule %s is not defined in rules" % show(o["rule"]))
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
        where = _at("vnics", name)
        v = _obj(v, where, VNIC_KEYS)
        with _At(where):
            if "over" not in v:
                raise UsageError("missing 'over': the overlay this VNIC is on")
            if not isinstance(v["over"], str):
                raise _located(where + ".over", "must be a string, the name of an overlay")
            if v["over"] not in cfg.overlays:
                raise UsageError("overlay %s does not exist in this file" % show(v["over"]))
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
        if not isinstance(devs, list) or not all(_is_name(IFNAME, x) for x in devs):
            raise UsageError("devices must be a list of interface names")
        if len(set(devs)) != len(devs):
            raise UsageError("devices: an interface is listed twice")
        cfg.underlay_devices = tuple(devs)
        hook = u.get("hook", "auto")
        if not isinstance(hook, str) or hook not in ("auto", "tc", "xdp"):
            raise UsageError("hook must be auto, tc or xdp")
        cfg.hook = hook
    if "mesh" in doc:
        from pyovl.mesh import parse_mesh  # noqa: PLC0415

        cfg.mesh = parse_mesh(doc["mesh"])
    return cfg


def check_hostport(value: object) -> str:
    """"IP:PORT" or "[IPv6]:PORT" -> its canonical text; UsageError otherwise."""
    ok = None
    if isinstance(value, str):
        host, sep, port = value.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        ip = P.parse_ip(host)
        if sep and ip and re.fullmatch(r"[0-9]{1,5}", port) and 1 <= int(port) <= 65535:
            ok = ("[%s]:%d" if ":" in ip else "%s:%d") % (ip, int(port))
    if ok is None:
        raise UsageError("metrics address %s must be IP:PORT, e.g. 127.0.0.1:9134" % show(value))
    return ok


def load_file(path: str) -> Config:
    """Read and validate an overlay.json; one located UsageError if bad.

    Only a regular file is read, without blocking (the daemon reads the
    path again when it applies it, so a FIFO would hang the daemon)."""
    data, _ = read_file(path, UsageError)
    doc = parse_json(data, path, UsageError)
    try:
        return parse_config(doc)
    except UsageError as e:
        raise UsageError("%s: %s" % (path, e)) from None
