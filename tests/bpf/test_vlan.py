"""VNICs with VLAN ids (illumos create-vnic -v) under BPF_PROG_RUN.

Test matrix: encap from a VLAN-10 VNIC tags the inner frame; local
switching and broadcast stay inside a VLAN; decap delivers a tagged frame,
untagged, only to a port of that VLAN (TC and XDP)."""

from __future__ import annotations

import pytest
from env import MAC, REMOTE, TC_ACT_REDIRECT, TC_ACT_SHOT, XDP_DROP, XDP_REDIRECT
from frames import IP, TCP, Ether, inner_arp, inner_tcp, vxlan4
from scapy.layers.l2 import ARP, Dot1Q

from pyovl.dataplane import abi

pytestmark = [pytest.mark.bpf]
PEER = "02:00:00:00:0b:01"


def tagged(src, dst, vlan):
    return bytes(Ether(src=src, dst=dst) / Dot1Q(vlan=vlan) / IP(src="10.0.0.1", dst="10.0.0.2") /
                 TCP(sport=1, dport=2) / (b"v" * 32))


def test_encap_tags_the_inner_frame(bpfenv):
    frame = inner_tcp(MAC["vv1"], REMOTE)
    r = bpfenv.run("port", frame, "vv1")
    assert r.verdict == TC_ACT_REDIRECT and r.trace.ifindex == bpfenv.ifindex["ul0"]
    inner = r.out[50:]
    assert inner == frame[:12] + b"\x81\x00\x00\x0a" + frame[12:]
    ip = Ether(r.out)[IP]
    assert ip.len == len(r.out) - 14


def test_local_switching_and_flooding_stay_in_the_vlan(bpfenv):
    bpfenv.events(), bpfenv.clear_pending()
    r = bpfenv.run("port", inner_tcp(MAC["vv1"], MAC["vv2"]), "vv1")  # VLAN 10 -> a VLAN 20 MAC
    assert r.trace.ifindex != bpfenv.ifindex["vv2"] and r.trace.punted == abi.EV_MISS
    r = bpfenv.run("port", inner_tcp(MAC["vv1"], MAC["vp1"]), "vv1")  # VLAN 10 -> untagged MAC
    assert r.trace.ifindex != bpfenv.ifindex["vp1"]
    r = bpfenv.run("port", inner_arp(MAC["vv1"]), "vv1")
    assert r.trace.flooded == 0  # vp1, vp2 (untagged) and vv2 (VLAN 20) get no copy
    r = bpfenv.run("port", inner_arp(MAC["vp1"]), "vp1")
    assert r.trace.flooded == 1  # vp2 only
    bpfenv.events(), bpfenv.clear_pending()


@pytest.mark.parametrize("prog,ok,shot", [("underlay_tc", TC_ACT_REDIRECT, TC_ACT_SHOT),
                                          ("underlay_xdp", XDP_REDIRECT, XDP_DROP)])
def test_decap_delivers_untagged_to_the_vlan_port_only(bpfenv, prog, ok, shot):
    r = bpfenv.run(prog, vxlan4(tagged(PEER, MAC["vv1"], 10), 100))
    assert r.verdict == ok and r.trace.ifindex == bpfenv.ifindex["vv1"]
    want = bytes(Ether(src=PEER, dst=MAC["vv1"]) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2) /
                 (b"v" * 32))
    assert r.out == want
    for frame in (vxlan4(tagged(PEER, MAC["vv1"], 20), 100),       # other VLAN
                  vxlan4(inner_tcp(PEER, MAC["vv1"]), 100),         # untagged
                  vxlan4(tagged(PEER, MAC["vp1"], 10), 100)):       # untagged port, tagged frame
        r = bpfenv.run(prog, frame)
        assert r.verdict == shot and r.trace.reason == abi.Drop.NO_PORT


def test_decap_broadcast_reaches_only_the_vlan(bpfenv):
    frame = bytes(Ether(src=PEER, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=20) / ARP(op=1, psrc="10.0.0.1",
                                                                                pdst="10.0.0.2"))
    r = bpfenv.run("underlay_tc", vxlan4(frame, 100))
    assert r.verdict == TC_ACT_SHOT and r.trace.reason == 0 and r.trace.flooded == 1  # vv2


def test_truncated_tag_is_malformed(bpfenv):
    r = bpfenv.run("underlay_tc", vxlan4(bytes.fromhex(MAC["vv1"].replace(":", "")) + b"\x02" * 6 + b"\x81\x00\x00",
                                          100))
    assert r.verdict == TC_ACT_SHOT and r.trace.reason == abi.Drop.MALFORMED
