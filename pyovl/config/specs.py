"""Overlay and VNIC specs: the validated, normalised descriptions of what
pyovl is asked to build. Building one (build_overlay, build_vnic) is the only
way in, so everything downstream can trust them.

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
from dataclasses import asdict, dataclass, field

from pyovl.config import props as P
from pyovl.values import ip, mac_bytes
from pyovl.errors import UsageError, show
from pyovl.lookup import registry

# Use with fullmatch(), never match(): see the module docstring.
LINKNAME = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,29}[0-9]")  # dladm: letter first, digit last
IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
NETNS = re.compile(r"[A-Za-z0-9_.-]{1,64}")
RULE_NAME = re.compile(r"\S{1,64}")  # and printable


def plain(value: object) -> str:
    """A value for a dladm-style message, which names things unquoted: short
    text as it is (PyovlError escapes its control characters), else show()."""
    return value if isinstance(value, str) and len(value) <= 64 else show(value)


def is_name(pattern: re.Pattern, name: object) -> bool:
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
    if not is_name(LINKNAME, name):
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
        raise UsageError("unknown encapsulation plugin: %s (known: %s)" % (plain(encap), ", ".join(P.ENCAPS)))
    if not isinstance(search, str) or search not in registry.plugins():
        raise UsageError("unknown search plugin: %s (known: %s)" % (plain(search), ", ".join(registry.names())))
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
                             % (plain(key), encap, search, ", ".join(specs)))
        values[key] = specs[key].parse(raw)
    for key, spec in specs.items():
        if key not in values:
            if spec.default is not None:
                values[key] = spec.default
            elif spec.required:
                raise UsageError("unset required property: %s" % key)
    if search == "direct":
        lip, dip = (ip(values[k]) for k in ("vxlan/listen_ip", "direct/dest_ip"))
        if lip.version != dip.version:
            raise UsageError("direct/dest_ip %s and vxlan/listen_ip %s are of different IP versions" % (dip, lip))
    return OverlaySpec(name=name, vnetid=vni, encap=encap, search=search, props=values, rule=rule)


def build_vnic(name: str, over: str, mac: object = None, vlan: object = 0, mtu: object = None,
               netns: object = None, addresses: object = ()) -> VnicSpec:
    if not is_name(IFNAME, name):
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
    if netns is not None and not is_name(NETNS, netns):
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

