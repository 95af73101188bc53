"""The Danube mesh: which compute nodes exist, where, and how to reach them.

A Mesh is the node inventory of overlay.json's "mesh" section (or of the
file it names): every compute node's name, physical data centre (PDC), admin
and external underlay addresses, and which node this host is. It decides,
for any underlay address a search plugin answers, where the frame really
goes (resolve()):
  a node in this host's PDC       -> its admin address, plain VXLAN
  a node in another PDC           -> its external address, IPsec required
  an address that is not a node   -> unchanged, plain VXLAN
so plugins keep answering with whatever address of a node they know, and
the same files JSON serves every node. The IPsec pieces live beside it:
keys.py (a pre-shared key per node pair), ike.py (strongSwan over vici),
xfrm.py (the kernel's fail-closed fallback policies), firewall.py
(nftables on the external interface); pyovl/mesh/apply.py applies them in that
order before any target points at an encrypted peer.

parse_mesh() type-checks every value before using it as a key, a set
member or a pattern's subject, and matches names whole (fullmatch: "$"
would match before a final newline): any malformed section, or file, is
one located UsageError.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from pyovl.errors import UsageError, show
from pyovl.inputs import parse_json, read_file

NODE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")  # fullmatch only
IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")  # as config.IFNAME
REKEY_RANGE = (2, 30 * 86400)  # ike.py needs 2 s; beyond 30 days is a typo, not a policy
MESH_KEYS = {"self", "nodes", "keys", "ike", "external_device", "comment"}
NODE_KEYS = {"pdc", "admin", "external"}
IKE_KEYS = {"vici", "rekey_time", "repair_after"}
DEFAULT_VICI = "unix:///var/run/charon.vici"
# What ESP in transport mode with AES-GCM adds to a packet at most: SPI and
# sequence (8), IV (8), padding to 4 bytes (up to 3), pad length and next
# header (2), ICV (16). Rounded up for IPv6 / other proposals.
ESP_OVERHEAD = 40
VXLAN_OVERHEAD = {4: 50, 6: 70}


@dataclass(frozen=True)
class Node:
    name: str
    pdc: str
    admin: str
    external: str

    def addresses(self) -> tuple[str, str]:
        return (self.admin, self.external)


@dataclass(frozen=True)
class Resolved:
    ip: str
    encrypt: bool
    node: Node | None = None


@dataclass(frozen=True)
class Mesh:
    self_name: str
    nodes: dict = field(default_factory=dict)  # name -> Node
    keys: str | None = None  # this node's key file (keys.py)
    vici: str | None = None  # None: pyovl runs its own charon; else the operator's
    rekey_time: int = 3600
    repair_after: float = 3.0  # seconds without an SA before pyovl asks IKE again
    external_device: str | None = None  # None: the device holding self's external address

    @property
    def me(self) -> Node:
        return self.nodes[self.self_name]

    def peers(self) -> list[Node]:
        return [n for name, n in sorted(self.nodes.items()) if name != self.self_name]

    def encrypted_peers(self) -> list[Node]:
        return [n for n in self.peers() if n.pdc != self.me.pdc]

    def node_of(self, ip: str) -> Node | None:
        ip = str(ipaddress.ip_address(ip))
        for n in self.nodes.values():
            if ip in n.addresses():
                return n
        return None

    def resolve(self, ip: str) -> Resolved:
        node = self.node_of(ip)
        if node is None or node.name == self.self_name:
            return Resolved(str(ipaddress.ip_address(ip)), False, node)
        if node.pdc == self.me.pdc:
            return Resolved(node.admin, False, node)
        return Resolved(node.external, True, node)

    def max_mtu(self, external_mtu: int = 1500) -> int:
        """The largest overlay MTU whose frames fit an encrypted path."""
        fam = ipaddress.ip_address(self.me.external).version
        return external_mtu - VXLAN_OVERHEAD[fam] - ESP_OVERHEAD

    def to_json(self) -> dict:
        return {"self": self.self_name, "keys": self.keys, "external_device": self.external_device,
                "ike": {"vici": self.vici, "rekey_time": self.rekey_time, "repair_after": self.repair_after},
                "nodes": {n.name: {"pdc": n.pdc, "admin": n.admin, "external": n.external}
                          for n in self.nodes.values()}}


def _text(value: object) -> bool:
    """Printable, non-empty text: what a name or a path in the inventory is."""
    return isinstance(value, str) and value != "" and value.isprintable()


def _addr(value: object, where: str) -> str:
    try:
        # '%': ipaddress keeps any zone text ("fe80::1%a\nb"); a node's address has none
        if not isinstance(value, str) or "%" in value:
            raise ValueError
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise UsageError("%s: invalid address %s" % (where, show(value))) from None
    if ip.is_unspecified or ip.is_multicast:
        raise UsageError("%s: %s cannot be a node's address" % (where, ip))
    return str(ip)


def _duration(value: object, where: str) -> int:
    """Seconds, or a number with s/m/h (strongSwan's notation)."""
    if isinstance(value, int) and not isinstance(value, bool):
        secs = value
    else:
        # [0-9], not \d: int() would take other scripts' digits too
        m = re.fullmatch(r"([0-9]{1,9})([smh]?)", value) if isinstance(value, str) else None
        if not m:
            raise UsageError("%s: invalid duration %s (e.g. 3600, 60m, 1h)" % (where, show(value)))
        secs = int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if not REKEY_RANGE[0] <= secs <= REKEY_RANGE[1]:
        raise UsageError("%s: invalid duration %s: must be %d seconds to %d days"
                         % (where, show(value), REKEY_RANGE[0], REKEY_RANGE[1] // 86400))
    return secs


def parse_mesh(doc: object, where: str = "mesh") -> Mesh:
    """Validate a mesh section (a dict, or the path of a JSON file holding one)."""
    if isinstance(doc, str):
        at = "%s: %s" % (where, doc)
        doc = parse_json(read_file(doc, UsageError, at)[0], at)
    if not isinstance(doc, dict):
        raise UsageError("%s: must be an object (or the path of a JSON file with one)" % where)
    extra = sorted(set(doc) - MESH_KEYS)
    if extra:
        raise UsageError("%s: unknown key %s (known: %s)" % (where, show(extra[0]), ", ".join(sorted(MESH_KEYS))))
    nodes_doc = doc.get("nodes")
    if not isinstance(nodes_doc, dict) or not nodes_doc:
        raise UsageError("%s.nodes: an object of node name -> {pdc, admin, external}" % where)
    nodes: dict[str, Node] = {}
    owner: dict[str, str] = {}
    for name, nd in nodes_doc.items():
        if not isinstance(name, str) or not NODE_NAME.fullmatch(name):
            raise UsageError("%s.nodes: invalid node name %s: 1-32 lowercase letters, digits or '-'"
                             % (where, show(name)))
        w = "%s.nodes.%s" % (where, name)
        if not isinstance(nd, dict):
            raise UsageError("%s: must be an object with pdc, admin, external" % w)
        bad = sorted(set(nd) - NODE_KEYS) or sorted(NODE_KEYS - set(nd))
        if bad:
            raise UsageError("%s: %s key %s (a node has pdc, admin, external)"
                             % (w, "unknown" if bad[0] in nd else "missing", show(bad[0])))
        if not _text(nd["pdc"]) or len(nd["pdc"]) > 64:
            raise UsageError("%s.pdc: the name of the node's physical data centre (1-64 printable characters)" % w)
        node = Node(name, nd["pdc"], _addr(nd["admin"], w + ".admin"), _addr(nd["external"], w + ".external"))
        for a in set(node.addresses()):
            if a in owner:
                raise UsageError("%s: address %s is also node %s's" % (w, a, owner[a]))
            owner[a] = name
        nodes[name] = node
    me = doc.get("self")
    if not isinstance(me, str) or me not in nodes:  # a list or an object is unhashable: check first
        raise UsageError("%s.self: %s is not one of the nodes (%s)" % (where, show(me), ", ".join(sorted(nodes))))
    fam = ipaddress.ip_address(nodes[me].external).version
    for n in nodes.values():
        if n.pdc != nodes[me].pdc and ipaddress.ip_address(n.external).version != fam:
            raise UsageError("%s.nodes.%s.external: IPv%d, but this node's external address is IPv%d"
                             % (where, n.name, 6 if fam == 4 else 4, fam))
    keys = doc.get("keys")
    if keys is not None and (not _text(keys) or not keys.startswith("/")):
        raise UsageError("%s.keys: the absolute path of this node's key file (pyovl mesh keygen)" % where)
    ike = doc.get("ike", {})
    if not isinstance(ike, dict) or set(ike) - IKE_KEYS:
        raise UsageError("%s.ike: an object with %s" % (where, ", ".join(sorted(IKE_KEYS))))
    vici = ike.get("vici")
    if vici is not None and (not _text(vici) or not vici.startswith(("unix://", "tcp://"))):
        raise UsageError("%s.ike.vici: a vici URI such as %s (omit it for a charon run by pyovl)"
                         % (where, DEFAULT_VICI))
    rekey = _duration(ike.get("rekey_time", 3600), where + ".ike.rekey_time")
    repair = ike.get("repair_after", 3.0)
    if isinstance(repair, bool) or not isinstance(repair, (int, float)) or not 0.5 <= repair <= 3600:
        raise UsageError("%s.ike.repair_after: seconds (0.5-3600)" % where)
    dev = doc.get("external_device")
    if dev is not None and (not isinstance(dev, str) or not IFNAME.fullmatch(dev) or dev.strip(".") == ""):
        raise UsageError("%s.external_device: an interface name" % where)
    m = Mesh(me, nodes, keys, vici, rekey, float(repair), dev)
    if m.encrypted_peers() and keys is None:
        raise UsageError("%s.keys: nodes in other PDCs need IPsec keys: give this node's key file "
                         "(made by 'pyovl mesh keygen')" % where)
    return m


def from_json(d: dict | None) -> Mesh | None:
    return parse_mesh(d) if d else None
