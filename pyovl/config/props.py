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
import re
from dataclasses import dataclass, field

from pyovl import values
from pyovl.errors import UsageError, show

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
        """Text (CLI, rules) or JSON value -> checked value; UsageError if bad.

        Text numbers are plain decimal digits: int() alone would also take
        " 23", "2_3", "+23" and non-ASCII digits, and turn a few thousand
        digits into a ValueError of its own."""
        if self.type == UINT:
            if isinstance(raw, bool) or not isinstance(raw, (int, str)):
                raise UsageError("invalid value %s for %s: must be a number" % (show(raw), self.name))
            if isinstance(raw, str):
                if not _NUMBER.fullmatch(raw):
                    raise UsageError("invalid value %s for %s: must be a number" % (show(raw), self.name))
                val = int(raw, 10)
            else:
                val = raw
            if self.range and not self.range[0] <= val <= self.range[1]:
                raise UsageError("invalid value %s for %s: must be %d-%d" % (show(val), self.name, *self.range))
        elif self.type == IP:
            val = parse_ip(raw)
            if val is None:
                raise UsageError("invalid value %s for %s: not an IP address" % (show(raw), self.name))
        else:
            if not isinstance(raw, str) or not raw or len(raw) >= 256 or not raw.isprintable():
                raise UsageError("invalid value %s for %s: must be printable text of 1-255 characters"
                                 % (show(raw), self.name))
            val = raw
            if self.possible and val not in self.possible:
                raise UsageError("invalid value %s for %s: must be one of %s"
                                 % (show(raw), self.name, ", ".join(self.possible)))
        if self.check:
            err = self.check(val)
            if err:
                raise UsageError("invalid value %s for %s: %s" % (show(raw), self.name, err))
        return val


_NUMBER = re.compile(r"-?[0-9]{1,20}")  # a sign, so that -1 gets the range message


def parse_ip(raw: object) -> str | None:
    """The canonical text of an IP address given as text, else None (a zone
    such as "fe80::1%eth0" too: no underlay address needs one)."""
    return values.canonical_ip(raw)


SIX_TO_FOUR = ipaddress.ip_network("2002::/16")  # built once: it was built per check


def _v4_compatible_or_6to4(ip: ipaddress._BaseAddress) -> bool:
    if ip.version != 6:
        return False
    return (ip.packed[:12] == b"\0" * 12 and int(ip) > 1) or ip in SIX_TO_FOUR


def check_listen_ip(val: str) -> str | None:
    ip = values.ip(val)
    if _v4_compatible_or_6to4(ip):
        return "IPv4-compatible and 6to4 addresses are not allowed"
    if ip.is_multicast or (ip.version == 6 and ip.ipv4_mapped and ip.ipv4_mapped.is_multicast):
        return "multicast addresses are not allowed"
    return None


def check_dest_ip(val: str) -> str | None:
    ip = values.ip(val)
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
