"""The value types pyovl takes from operators, each parsed in one place.

ip(), port(), vni(), mac() and hostport() turn text or JSON values into
checked values or raise a one-line UsageError naming what was wrong. IP
parsing is cached: 10k overlays name the same few addresses over and over,
and ipaddress is slow (it was a third of `up` at 10k overlays).
"""

from __future__ import annotations

import functools
import ipaddress

from pyovl.errors import UsageError

MAX_VNI = 0xFFFFFF
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=4096)
def _ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def ip(value: object, what: str = "address") -> IPAddress:
    if not isinstance(value, (str, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        raise UsageError("invalid %s: %r" % (what, value))
    try:
        return _ip(str(value))
    except ValueError:
        raise UsageError("invalid %s: %s" % (what, value)) from None  # PyovlError keeps it one line


def port(value: object, what: str = "port") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise UsageError("%s %r out of range (1-65535)" % (what, value))
    return value


def vni(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VNI:
        raise UsageError("vnetid %r out of range (0-%d)" % (value, MAX_VNI))
    return value


def mac(value: object, unicast: bool = True) -> bytes:
    """'02:08:20:00:00:01' (any of the usual spellings) -> 6 bytes."""
    from pyovl.bpf.abi import mac_bytes  # noqa: PLC0415 - abi imports ctypes structures

    try:
        raw = mac_bytes(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None:
        raise UsageError("invalid MAC address: %s" % (value,))
    if unicast and raw[0] & 1:
        raise UsageError("MAC address %s is multicast; a VNIC needs a unicast MAC" % value)
    return raw


def hostport(value: object, what: str = "destination") -> tuple[str, int]:
    """IP:PORT or [IPv6]:PORT -> (canonical ip, port)."""
    if not isinstance(value, str):
        raise UsageError("invalid %s %r: use IP:PORT" % (what, value))
    host, sep, p = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        addr = str(_ip(host))
        num = int(p, 10)
    except ValueError:
        raise UsageError("invalid %s %r: use IP:PORT (IPv6: [IP]:PORT)" % (what, value)) from None
    if not sep or not 1 <= num <= 65535:
        raise UsageError("invalid %s %r: the port must be 1-65535" % (what, value))
    return addr, num
