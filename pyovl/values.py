"""The value types pyovl takes from operators, each parsed in one place.

ip(), port(), vni(), mac() (mac_bytes() underneath) and hostport() turn text or JSON values into
checked values or raise a one-line UsageError naming what was wrong. IP
parsing is cached: 10k overlays name the same few addresses over and over,
and ipaddress is slow (it was a third of `up` at 10k overlays).
"""

from __future__ import annotations

import functools
import ipaddress
import re

from pyovl.errors import UsageError, show

MAX_VNI = 0xFFFFFF
_DIGITS = re.compile(r"[0-9]{1,5}")  # int() alone takes " 9", "9_1" and non-ASCII digits
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=4096)
def _ip(text: str) -> IPAddress:
    if "%" in text:  # a zone: ipaddress keeps whatever follows '%', newlines included
        raise ValueError(text)
    return ipaddress.ip_address(text)


def canonical_ip(value: object) -> str | None:
    """The canonical text of an IP address given as text, else None."""
    if not isinstance(value, str):
        return None
    try:
        return str(_ip(value))
    except ValueError:
        return None


def ip(value: object, what: str = "address") -> IPAddress:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    try:
        if isinstance(value, str):
            return _ip(value)
    except ValueError:
        pass
    raise UsageError("invalid %s: %s" % (what, value if isinstance(value, str) else show(value)))


def port(value: object, what: str = "port") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise UsageError("%s %s out of range (1-65535)" % (what, show(value)))
    return value


def vni(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VNI:
        raise UsageError("vnetid %s out of range (0-%d)" % (show(value), MAX_VNI))
    return value


MAC_TEXT = re.compile(r"[0-9A-Fa-f]{1,2}(?:[:-][0-9A-Fa-f]{1,2}){5}")


def mac_bytes(text: str) -> bytes:
    """'2:0:0:0:0:A' or '02-00-00-00-00-0a' -> 6 bytes; ValueError if not a
    MAC. Strict on purpose: int(x, 16) alone would take ' 2', '+2' and
    non-ASCII digits."""
    if not isinstance(text, str) or not MAC_TEXT.fullmatch(text):
        raise ValueError("not a MAC address")
    return bytes(int(p, 16) for p in text.replace("-", ":").split(":"))


def mac(value: object, unicast: bool = True) -> bytes:
    """'02:08:20:00:00:01' (any of the usual spellings) -> 6 bytes, or a
    one-line UsageError."""
    try:
        raw = mac_bytes(value)
    except ValueError:
        raw = None
    if raw is None:
        raise UsageError("invalid MAC address: %s" % (value if isinstance(value, str) else show(value)))
    if unicast and raw[0] & 1:
        raise UsageError("MAC address %s is multicast; a VNIC needs a unicast MAC" % value)
    return raw


def hostport(value: object, what: str = "destination") -> tuple[str, int]:
    """IP:PORT or [IPv6]:PORT -> (canonical ip, port)."""
    host, sep, p = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    addr = canonical_ip(host)
    if not sep or addr is None or not _DIGITS.fullmatch(p):
        raise UsageError("invalid %s %s: use IP:PORT (IPv6: [IP]:PORT)" % (what, show(value)))
    if not 1 <= int(p) <= 65535:
        raise UsageError("invalid %s %s: the port must be 1-65535" % (what, show(value)))
    return addr, int(p)
