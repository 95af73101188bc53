"""Observe: what the kernel holds for one instance, read once per change.

Facts are read, never remembered: the data-path maps (overlays, VNIC ports),
the links of this namespace (VNIC host ends, underlay devices, their XDP
programs), pyovl's TC programs on them, the addresses (where a listen IP
lives) and the named namespaces. A VNIC's guest end needs no look of its
own: a veth pair lives and dies as one, so a host end that exists means its
guest end does too (a deleted guest namespace takes the pair with it).

The same object answers the host questions intent.py asks (which device
holds an address, what kind a device is, whether a name is taken in a
namespace), each from the snapshot, so validating 10k overlays costs three
netlink dumps, not 10k.
"""

from __future__ import annotations

import functools
import hashlib
import socket
from dataclasses import dataclass, field

from pyovl import netlink, netns
from pyovl.dataplane import abi
from pyovl.errors import UsageError

HOST_END_PREFIX = "ovh"


def host_end_name(vnic: str) -> str:
    """The host end of a VNIC's veth pair: derived from the VNIC's name, so
    an end left by an interrupted apply is recognised as ours."""
    return HOST_END_PREFIX + hashlib.sha1(vnic.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class OverlayFact:
    """An overlays map entry, in the terms intent.py uses."""

    id: int
    point: bool
    listen_ip: str
    listen_port: int
    mtu: int
    dest: tuple | None  # (ip, port, encrypt) for point overlays

    @classmethod
    def of(cls, ov: abi.Overlay) -> "OverlayFact":
        point = ov.mode == abi.MODE_POINT
        dest = None
        if point:
            dest = (_text(ov.point.ip), socket.ntohs(ov.point.port), bool(ov.point.flags & abi.DEST_F_ENCRYPT))
        return cls(ov.id, point, _text(ov.listen_ip), socket.ntohs(ov.listen_port), ov.mtu, dest)


@functools.lru_cache(maxsize=4096)
def _addr_text(raw: bytes) -> str:
    return str(abi.Addr.from_buffer_copy(raw).ip())


def _text(addr: abi.Addr) -> str:
    """An address in the maps as text; 10k overlays name a few addresses,
    and ipaddress made from bytes is slow (a third of a 10k-overlay diff)."""
    return _addr_text(bytes(addr))


@dataclass(frozen=True)
class PortFact:
    vni: int
    mac: str
    vlan: int


@dataclass
class Facts:
    loaded: bool = False
    overlays: dict = field(default_factory=dict)  # vni -> OverlayFact
    ports: dict = field(default_factory=dict)  # ifindex -> PortFact
    links: dict = field(default_factory=dict)  # name -> {ifindex, kind, mtu, xdp_prog}
    addresses: list = field(default_factory=list)  # (ip, family, scope, ifindex)
    namespaces: frozenset = frozenset()
    attached: dict = field(default_factory=dict)  # device -> hook pyovl recorded (datapath.json)
    _tc: dict = field(default_factory=dict)
    _by_address: dict | None = None
    _by_family: dict = field(default_factory=dict)

    # -- questions about the data path -------------------------------------------
    def tc_program(self, dev: str) -> str | None:
        """pyovl's TC program on dev (read on first use, then kept)."""
        if dev not in self._tc:
            self.observe_tc([dev])
        return self._tc.get(dev)

    def observe_tc(self, devs) -> None:
        want = {d: self.links[d]["ifindex"] for d in devs if d in self.links and d not in self._tc}
        if want:
            self._tc.update(netlink.tc_programs(want))

    def decap_hook(self, dev: str) -> str | None:
        """How decap is attached to dev now: 'xdp', 'tc' or None."""
        if dev not in self.links or self.tc_program(dev) != "ovl_underlay_tc":
            return None
        return "xdp" if self.links[dev]["xdp_prog"] else "tc"

    def port_ok(self, host: str, vni: int, mac: str, vlan: int) -> bool:
        """Host end present, in the ports map as this VNIC, its program attached."""
        link = self.links.get(host)
        if link is None or self.ports.get(link["ifindex"]) != PortFact(vni, mac, vlan):
            return False
        return self.tc_program(host) == "ovl_port"

    # -- questions about the host (intent.py) ---------------------------------------
    def device_of_address(self, ip: str) -> str | None:
        if self._by_address is None:  # built once: intent asks once per overlay
            names = {v["ifindex"]: n for n, v in self.links.items()}
            self._by_address = {}
            for addr, _fam, _scope, idx in self.addresses:
                self._by_address.setdefault(addr, names.get(idx))
        return self._by_address.get(ip)

    def devices_with_addresses(self, family: int) -> list[str]:
        """Devices (not lo, not VNIC host ends) with a global address of family."""
        if family not in self._by_family:
            names = {v["ifindex"]: n for n, v in self.links.items()}
            out: list[str] = []
            for _addr, fam, scope, idx in self.addresses:
                name = names.get(idx)
                if fam == family and scope == 0 and name and name != "lo" \
                        and not name.startswith(HOST_END_PREFIX) and name not in out:
                    out.append(name)
            self._by_family[family] = out
        return list(self._by_family[family])

    def kind(self, dev: str) -> str | None:
        if dev not in self.links:
            raise UsageError("no such interface: %s" % dev)
        return self.links[dev]["kind"]

    def name_taken(self, name: str, ns: str | None) -> bool:
        """Is there an interface called name in namespace ns (None: here)?"""
        if ns is None:
            return name in self.links
        if ns not in self.namespaces:
            return False
        return netlink.link_exists(name, ns)


def observe(dp) -> Facts:
    """Read the facts of the instance whose Datapath is dp."""
    f = Facts(links=netlink.links_snapshot(), addresses=netlink.addresses_snapshot(),
              namespaces=frozenset(netns.names()),
              attached={d: a["hook"] for d, a in dp.underlays().items()})
    f.loaded = dp.loaded()
    # every VNIC host end and recorded underlay in one pass (a look per device was slow)
    f.observe_tc([n for n in f.links if n.startswith(HOST_END_PREFIX)] + list(f.attached))
    if f.loaded:
        f.overlays = {k.value: OverlayFact.of(v) for k, v in dp.maps.overlays.items()}
        f.ports = {k.value: PortFact(v.vni, abi.mac_str(bytes(v.mac)), v.vlan) for k, v in dp.maps.vnics.items()}
    return f

