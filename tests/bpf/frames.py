"""Frame builders for the bpf tier (scapy), shared by the case tables."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP, ICMP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vxlan import VXLAN

UL_LOCAL = "198.18.0.1"
UL_PEER = "198.18.0.2"
UL6_LOCAL = "fd00:198:18::1"
UL6_PEER = "fd00:198:18::2"


def inner_tcp(src: str, dst: str, payload: bytes = b"x" * 64) -> bytes:
    return bytes(Ether(src=src, dst=dst) / IP(src="10.0.0.1", dst="10.0.0.2") /
                 TCP(sport=40000, dport=80, flags="PA") / payload)


def inner_arp(src: str) -> bytes:
    return bytes(Ether(src=src, dst="ff:ff:ff:ff:ff:ff") /
                 ARP(op=1, hwsrc=src, psrc="10.0.0.1", pdst="10.0.0.2"))


def vxlan4(inner: bytes, vni: int, src: str = UL_PEER, dst: str = UL_LOCAL, dport: int = 4789,
           flags: int = 0x08, eth_dst: str = "02:aa:00:00:00:01") -> bytes:
    return bytes(Ether(src="02:aa:00:00:00:02", dst=eth_dst) / IP(src=src, dst=dst, flags="DF") /
                 UDP(sport=50000, dport=dport, chksum=0) / VXLAN(flags=flags, vni=vni) / inner)


def vxlan6(inner: bytes, vni: int, src: str = UL6_PEER, dst: str = UL6_LOCAL) -> bytes:
    return bytes(Ether(src="02:aa:00:00:00:02", dst="02:aa:00:00:00:01") / IPv6(src=src, dst=dst) /
                 UDP(sport=50000, dport=4789, chksum=0) / VXLAN(flags=0x08, vni=vni) / inner)


__all__ = ["ARP", "ICMP", "IP", "IPv6", "TCP", "UDP", "VXLAN", "Ether", "inner_tcp", "inner_arp",
           "vxlan4", "vxlan6"]
