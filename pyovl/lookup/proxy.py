"""Proxy ARP, proxy NDP and the DHCP proxy, as libvarpd does them (reference
§2.3-2.5). Pure functions over Ethernet frames (an 802.1Q tag is kept): each
parse_* returns what to ask the plugin, or None when illumos would DROP the
frame; each build_* returns the frame to inject or resend.
"""

from __future__ import annotations

import ipaddress
import struct

ETHERMAX_VLAN = 1518  # ETHERMAX + VLAN_TAGSZ
ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, ETH_P_8021Q = 0x0806, 0x0800, 0x86DD, 0x8100
BROADCAST = b"\xff" * 6


def l2_len(frame: bytes) -> int:
    return 18 if frame[12:14] == b"\x81\x00" else 14


def ethertype(frame: bytes) -> int:
    h = l2_len(frame)
    return struct.unpack_from("!H", frame, h - 2)[0] if len(frame) >= h else 0


# -- ARP ------------------------------------------------------------------
def parse_arp_request(frame: bytes) -> str | None:
    """Target IPv4 of an ARP request worth answering (gratuitous ARP is not)."""
    h = l2_len(frame)
    if len(frame) > ETHERMAX_VLAN or len(frame) < h + 28 or ethertype(frame) != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", frame, h)
    if (htype, ptype, hlen, plen, op) != (1, ETH_P_IP, 6, 4, 1):
        return None
    spa, tpa = frame[h + 14:h + 18], frame[h + 24:h + 28]
    if spa == tpa:
        return None  # gratuitous: never answered, so it cannot trip DAD
    return str(ipaddress.IPv4Address(tpa))


def build_arp_reply(frame: bytes, mac: bytes) -> bytes:
    """The reply, built in place as libvarpd does: op REPLY, tha = old sha,
    sha = the answer, spa and tpa swapped; Ethernet to the asker from mac."""
    h = l2_len(frame)
    req = frame[h:h + 28]
    sha, spa, tpa = req[8:14], req[14:18], req[24:28]
    body = req[:6] + struct.pack("!H", 2) + mac + tpa + sha + spa
    return frame[6:12] + mac + frame[12:h] + body


# -- NDP ------------------------------------------------------------------
ND_NS, ND_NA = 135, 136
OPT_SLLA, OPT_TLLA = 1, 2


def _icmp6_csum(src: bytes, dst: bytes, payload: bytes) -> int:
    data = src + dst + struct.pack("!I3xB", len(payload), 58) + payload
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def parse_ns(frame: bytes) -> str | None:
    """Target of a Neighbor Solicitation worth answering, with illumos's
    checks: multicast to 33:33, no extension headers, solicited-node or
    link-local multicast destination, a unicast target, sane options and a
    Source Link-Layer Address option (so DAD probes from :: are not answered)."""
    h = l2_len(frame)
    if frame[:2] != b"\x33\x33" or len(frame) > ETHERMAX_VLAN or ethertype(frame) != ETH_P_IPV6:
        return None
    if len(frame) < h + 40 + 24 or frame[h] >> 4 != 6 or frame[h + 6] != 58:
        return None
    dst = ipaddress.IPv6Address(frame[h + 24:h + 40])
    if not (dst in ipaddress.ip_network("ff02::1:ff00:0/104") or dst in ipaddress.ip_network("ff02::/16")):
        return None
    icmp = frame[h + 40:]
    if icmp[0] != ND_NS or icmp[1] != 0:
        return None
    target = ipaddress.IPv6Address(icmp[8:24])
    if target.is_multicast or target.ipv4_mapped or target.is_loopback:
        return None
    opts, slla = icmp[24:], False
    while opts:
        if len(opts) < 2 or opts[1] == 0:
            return None
        if opts[0] == OPT_SLLA:
            slla = True
        opts = opts[opts[1] * 8:]
    return str(target) if slla else None


def build_na(frame: bytes, mac: bytes) -> bytes:
    """A Neighbor Advertisement (Solicited, Override) for the NS's target,
    from it to the asker, with a TLLA option and its ICMPv6 checksum."""
    h = l2_len(frame)
    ip6 = frame[h:h + 40]
    ns_src = ip6[8:24]
    target = frame[h + 48:h + 64]
    icmp = struct.pack("!BBHI", ND_NA, 0, 0, 0x60000000) + target + bytes([OPT_TLLA, 1]) + mac
    icmp = icmp[:2] + struct.pack("!H", _icmp6_csum(target, ns_src, icmp)) + icmp[4:]
    hdr = ip6[:4] + struct.pack("!HBB", len(icmp), 58, ip6[7]) + target + ns_src
    return frame[6:12] + mac + frame[12:h] + hdr + icmp


# -- DHCP -----------------------------------------------------------------
BOOTP_LEN = 236


def is_dhcp_request(frame: bytes) -> bool:
    """A client's broadcast DHCP request: IPv4 broadcast, UDP 68 -> 67."""
    h = l2_len(frame)
    if frame[:6] != BROADCAST or len(frame) > ETHERMAX_VLAN or ethertype(frame) != ETH_P_IP:
        return False
    if len(frame) < h + 20 or frame[h] >> 4 != 4 or frame[h + 9] != 17:
        return False
    ihl = (frame[h] & 0xF) * 4
    if len(frame) < h + ihl + 8 + BOOTP_LEN:
        return False
    sport, dport = struct.unpack_from("!HH", frame, h + ihl)
    return (sport, dport) == (68, 67)


def with_destination(frame: bytes, mac: bytes) -> bytes:
    return mac + frame[6:]


def vxlan_header(vni: int) -> bytes:
    return b"\x08\0\0\0" + struct.pack("!I", vni << 8)
