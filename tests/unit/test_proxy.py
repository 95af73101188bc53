"""Proxy ARP / NDP / DHCP frames, checked with scapy's own parsers."""

from __future__ import annotations

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from pyovl.lookup import proxy

ASKER, ANSWER = "02:08:20:00:00:01", "02:08:20:00:00:02"
RAW_ANSWER = bytes.fromhex(ANSWER.replace(":", ""))


def arp_req(tpa="10.0.0.2", spa="10.0.0.1", vlan=None):
    eth = Ether(src=ASKER, dst="ff:ff:ff:ff:ff:ff")
    return bytes((eth / Dot1Q(vlan=vlan) if vlan else eth) / ARP(op=1, hwsrc=ASKER, psrc=spa, pdst=tpa))


def test_arp_reply():
    req = arp_req()
    assert proxy.parse_arp_request(req) == "10.0.0.2"
    rep = Ether(proxy.build_arp_reply(req, RAW_ANSWER))
    assert rep.dst == ASKER and rep.src == ANSWER
    a = rep[ARP]
    assert (a.op, a.hwsrc, a.psrc, a.hwdst, a.pdst) == (2, ANSWER, "10.0.0.2", ASKER, "10.0.0.1")


def test_arp_reply_keeps_the_vlan_tag():
    rep = Ether(proxy.build_arp_reply(arp_req(vlan=7), RAW_ANSWER))
    assert rep[Dot1Q].vlan == 7 and rep[ARP].op == 2


def test_arp_drops():
    assert proxy.parse_arp_request(arp_req(tpa="10.0.0.1", spa="10.0.0.1")) is None  # gratuitous
    reply = bytes(Ether(src=ASKER, dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, psrc="10.0.0.1", pdst="10.0.0.2"))
    assert proxy.parse_arp_request(reply) is None
    assert proxy.parse_arp_request(arp_req()[:30]) is None
    assert proxy.parse_arp_request(arp_req() + b"\0" * 1500) is None  # above 1518


def ns(target="fd00::2", slla=True, src="fd00::1"):
    dst = "ff02::1:ff00:2"
    pkt = Ether(src=ASKER, dst="33:33:ff:00:00:02") / IPv6(src=src, dst=dst, hlim=255) / ICMPv6ND_NS(tgt=target)
    if slla:
        pkt = pkt / ICMPv6NDOptSrcLLAddr(lladdr=ASKER)
    return bytes(pkt)


def test_na_has_tlla_and_a_valid_checksum():
    req = ns()
    assert proxy.parse_ns(req) == "fd00::2"
    raw = proxy.build_na(req, RAW_ANSWER)
    na = Ether(raw)
    assert na.dst == ASKER and na.src == ANSWER
    assert (na[IPv6].src, na[IPv6].dst, na[IPv6].hlim, na[IPv6].nh) == ("fd00::2", "fd00::1", 255, 58)
    adv = na[ICMPv6ND_NA]
    assert (adv.R, adv.S, adv.O, adv.tgt) == (0, 1, 1, "fd00::2")
    assert na[ICMPv6NDOptDstLLAddr].lladdr == ANSWER
    # scapy recomputes the checksum when it is deleted: it must be ours
    want = adv.cksum
    del na[ICMPv6ND_NA].cksum
    assert Ether(bytes(na))[ICMPv6ND_NA].cksum == want
    assert na[IPv6].plen == 32


def test_ns_drops():
    assert proxy.parse_ns(ns(slla=False)) is None  # DAD probe style: no SLLA
    assert proxy.parse_ns(ns(target="ff02::5")) is None
    assert proxy.parse_ns(ns(target="::1")) is None
    assert proxy.parse_ns(ns()[:60]) is None


def dhcp_discover(sport=68):
    return bytes(Ether(src=ASKER, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") /
                 UDP(sport=sport, dport=67) / BOOTP(chaddr=bytes.fromhex(ASKER.replace(":", ""))) /
                 DHCP(options=[("message-type", "discover"), "end"]))


def test_dhcp_request_detection_and_rewrite():
    f = dhcp_discover()
    assert proxy.is_dhcp_request(f)
    assert not proxy.is_dhcp_request(dhcp_discover(sport=1000))
    assert not proxy.is_dhcp_request(arp_req())
    out = Ether(proxy.with_destination(f, RAW_ANSWER))
    assert out.dst == ANSWER and out[UDP].dport == 67 and bytes(out)[6:] == f[6:]


def test_vxlan_header():
    assert proxy.vxlan_header(23) == bytes([8, 0, 0, 0, 0, 0, 23, 0])
