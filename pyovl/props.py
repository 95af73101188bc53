"""Overlay properties as in illumos overlay(5): specs, parsing, validation.

A PropSpec carries what `show-overlay` prints (PERM, REQ, DEFAULT,
POSSIBLE) and how a value is checked. Owners: the generic overlay (mtu,
vnetid, encap, varpd/id), the encapsulation plugin (vxlan/...) and the search
plugin (<search>/...). Values are kept as Python values (int, str); IPs as
their canonical text. Errors read like dladm's: "unset required property:
vxlan/listen_ip", "invalid value 9000 for mtu: must be 576-8900".
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from pyovl.errors import UsageError

UINT, IP, STRING = "uint", "ip", "string"


@dataclass(frozen=True)
class PropSpec:
    name: str
    type: str
    perm: str = "rw"  # rw, r-, --
    required: bool = False
    default: object = None
    range: tuple[int, int] | None = None  # UINT
    possible: tuple[str, ...] = ()  # STRING choices, for show
    check: object = field(default=None, compare=False)  # extra check(value) -> error text or None

    def possible_text(self) -> str:
        if self.range:
            return "%d-%d" % self.range
        return ",".join(self.possible) if self.possible else "--"

    def parse(self, raw: object) -> object:
        """Text (CLI, rules) or JSON value -> checked value; UsageError if bad."""
        if self.type == UINT:
            if isinstance(raw, bool) or not isinstance(raw, (int, str)):
                raise UsageError("invalid value %r for %s: must be a number" % (raw, self.name))
            try:
                val = int(raw, 10) if isinstance(raw, str) else raw
            except ValueError:
                raise UsageError("invalid value %r for %s: must be a number" % (raw, self.name)) from None
            if self.range and not self.range[0] <= val <= self.range[1]:
                raise UsageError("invalid value %d for %s: must be %d-%d" % (val, self.name, *self.range))
        elif self.type == IP:
            try:
                val = str(ipaddress.ip_address(str(raw)))
            except ValueError:
                raise UsageError("invalid value %r for %s: not an IP address" % (raw, self.name)) from None
        else:
            if not isinstance(raw, str) or not raw or len(raw) >= 256:
                raise UsageError("invalid value %r for %s: must be a string of 1-255 characters"
                                 % (raw, self.name))
            val = raw
            if self.possible and val not in self.possible:
                raise UsageError("invalid value %r for %s: must be one of %s" % (raw, self.name, ", ".join(self.possible)))
        if self.check:
            err = self.check(val)
            if err:
                raise UsageError("invalid value %r for %s: %s" % (raw, self.name, err))
        return val


def _v4_compatible_or_6to4(ip: ipaddress._BaseAddress) -> bool:
    if ip.version != 6:
        return False
    return (ip.packed[:12] == b"\0" * 12 and int(ip) > 1) or ip in ipaddress.ip_network("2002::/16")


def check_listen_ip(val: str) -> str | None:
    ip = ipaddress.ip_address(val)
    if _v4_compatible_or_6to4(ip):
        return "IPv4-compatible and 6to4 addresses are not allowed"
    if ip.is_multicast or (ip.version == 6 and ip.ipv4_mapped and ip.ipv4_mapped.is_multicast):
        return "multicast addresses are not allowed"
    return None


def check_dest_ip(val: str) -> str | None:
    ip = ipaddress.ip_address(val)
    if ip.is_unspecified:
        return "a destination cannot be unspecified"
    if ip.is_multicast:
        return "multicast destinations are not supported"
    return check_listen_ip(val)


def check_abs_path(val: str) -> str | None:
    return None if os.path.isabs(val) else "must be an absolute path"


MTU = PropSpec("mtu", UINT, default=1400, range=(576, 8900))
VNETID = PropSpec("vnetid", UINT, range=(0, 0xFFFFFF))
ENCAP = PropSpec("encap", STRING, perm="r-", possible=("vxlan",))
VARPD_ID = PropSpec("varpd/id", UINT, perm="r-")
SEARCH = PropSpec("search", STRING, perm="r-")  # possible = installed plugins

VXLAN_PROPS = (
    PropSpec("vxlan/listen_ip", IP, required=True, check=check_listen_ip),
    PropSpec("vxlan/listen_port", UINT, required=True, default=4789, range=(1, 65535)),
)
ENCAPS = {"vxlan": VXLAN_PROPS}

# Properties an operator may set with -p (generic ones; plugin props added).
SETTABLE_GENERIC = {"mtu": MTU}
