"""The underlay programs (TC and XDP) under BPF_PROG_RUN.

Test matrix (frame on the underlay -> TC verdict / XDP verdict, output):
  VXLAN v4 to a local port          REDIRECT port / REDIRECT port, inner frame
  VXLAN v6 to a local port          REDIRECT port / REDIRECT port, inner frame
  VXLAN broadcast                   SHOT after 2 copies / PASS (TC copies)
  listen 0.0.0.0 overlay            REDIRECT / REDIRECT
  strict, known / unknown source    REDIRECT / DROP STRICT_SOURCE
  unknown inner MAC                 SHOT NO_PORT / DROP NO_PORT
  truncated inner frame             SHOT MALFORMED / DROP MALFORMED
  not ours (unknown VNI, other ip,
  other port, I flag clear, TCP,
  ARP, IP options, fragment)        OK unchanged / PASS unchanged
"""

from __future__ import annotations

import pytest
from env import MAC, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, XDP_DROP, XDP_PASS, XDP_REDIRECT
from frames import IP, TCP, UDP, Ether, inner_arp, inner_tcp, vxlan4, vxlan6

from pyovl.dataplane import abi

pytestmark = [pytest.mark.bpf]

PEER_MAC = "02:00:00:00:0b:01"


@pytest.mark.parametrize("build,vni,port", [
    (lambda i: vxlan4(i, 100), 100, "vp1"),
    (lambda i: vxlan6(i, 101), 101, "vs1"),
    (lambda i: vxlan4(i, 200, dst="198.18.0.1"), 200, "vq1"),
    (lambda i: vxlan4(i, 102), 102, "vt1"),
], ids=["v4", "v6", "listen-any", "strict-known-source"])
def test_decap_to_port(bpfenv, build, vni, port):
    inner = inner_tcp(PEER_MAC, MAC[port])
    frame = build(inner)
    before = bpfenv.dp.maps.overlay_stats(bpfenv.ov_id(vni))[abi.Stat.RX_PACKETS]
    r = bpfenv.run("underlay_tc", frame)
    assert r.verdict == TC_ACT_REDIRECT and r.trace.ifindex == bpfenv.ifindex[port]
    assert r.out == inner
    r = bpfenv.run("underlay_xdp", frame)
    assert r.verdict == XDP_REDIRECT and r.trace.ifindex == bpfenv.ifindex[port]
    assert r.out == inner
    assert bpfenv.dp.maps.overlay_stats(bpfenv.ov_id(vni))[abi.Stat.RX_PACKETS] == before + 2


def _kernel_at_least(major: int, minor: int) -> bool:
    import os
    import re

    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return (int(m.group(1)), int(m.group(2))) >= (major, minor)


@pytest.mark.skipif(not _kernel_at_least(6, 3), reason="shrinking below an IPv6 header needs "
                    "BPF_F_ADJ_ROOM_DECAP_L3_* (kernel 6.3+): a known limit of IPv6 underlays before it")
def test_decap_short_non_ip_frame_under_ipv6(bpfenv):
    """A unicast ARP reply (28 bytes after Ethernet) under a 70-byte IPv6 outer:
    the remainder is shorter than an IPv6 header, which the kernel refuses
    to shrink to unless told the inner L3 size (regression)."""
    from frames import ARP, Ether

    inner = bytes(Ether(src=PEER_MAC, dst=MAC["vs1"]) / ARP(op=2, hwsrc=PEER_MAC, psrc="10.0.0.2",
                                                            hwdst=MAC["vs1"], pdst="10.0.0.1"))
    r = bpfenv.run("underlay_tc", vxlan6(inner, 101))
    assert r.verdict == TC_ACT_REDIRECT and r.out == inner, r.trace.reason


def test_decap_broadcast_copies_to_every_port_of_the_vni(bpfenv):
    frame = vxlan4(inner_arp(PEER_MAC), 100)
    r = bpfenv.run("underlay_tc", frame)
    assert r.verdict == TC_ACT_SHOT and r.trace.reason == 0 and r.trace.flooded == 2  # vp1, vp2
    r = bpfenv.run("underlay_xdp", frame)
    assert r.verdict == XDP_PASS and r.out == frame


DROPS = [
    ("unknown inner MAC", lambda: vxlan4(inner_tcp(PEER_MAC, "02:00:00:00:0c:01"), 100), 100, abi.Drop.NO_PORT),
    ("MAC of another VNI", lambda: vxlan4(inner_tcp(PEER_MAC, MAC["vq1"]), 100), 100, abi.Drop.NO_PORT),
    ("truncated inner", lambda: vxlan4(b"\x02\x00\x00", 100), 100, abi.Drop.MALFORMED),
    ("strict, unknown source", lambda: vxlan4(inner_tcp(PEER_MAC, MAC["vt1"]), 102, src="198.18.0.9"),
     102, abi.Drop.STRICT_SOURCE),
]


@pytest.mark.parametrize("desc,frame,vni,reason", DROPS, ids=[d[0] for d in DROPS])
def test_decap_drops(bpfenv, desc, frame, vni, reason):
    ov_id = bpfenv.ov_id(vni)
    for prog, shot in (("underlay_tc", TC_ACT_SHOT), ("underlay_xdp", XDP_DROP)):
        before = bpfenv.drops(ov_id)[reason.name]
        r = bpfenv.run(prog, frame())
        assert r.verdict == shot and r.trace.reason == reason, prog
        assert bpfenv.drops(ov_id)[reason.name] == before + 1, prog


NOT_OURS = [
    ("unknown VNI", lambda: vxlan4(inner_tcp(PEER_MAC, MAC["vp1"]), 4242)),
    ("other listen ip", lambda: vxlan4(inner_tcp(PEER_MAC, MAC["vp1"]), 100, dst="198.18.0.77")),
    ("port not listened", lambda: vxlan4(inner_tcp(PEER_MAC, MAC["vp1"]), 100, dport=8472)),
    ("VNI listening elsewhere", lambda: vxlan4(inner_tcp(PEER_MAC, MAC["vr1"]), 300)),  # 300 is on :4790
    ("I flag clear", lambda: vxlan4(inner_tcp(PEER_MAC, MAC["vp1"]), 100, flags=0)),
    ("TCP to 4789", lambda: bytes(Ether() / IP(src="198.18.0.2", dst="198.18.0.1") / TCP(dport=4789))),
    ("ARP", lambda: inner_arp("02:aa:00:00:00:02")),
    ("IP options", lambda: bytes(Ether() / IP(src="198.18.0.2", dst="198.18.0.1", options=b"\x01\x01\x01\x00") /
                                  UDP(dport=4789) / (b"\x08\0\0\0\0\0\x64\0" + inner_tcp(PEER_MAC, MAC["vp1"])))),
    ("IP fragment", lambda: bytes(Ether() / IP(src="198.18.0.2", dst="198.18.0.1", flags="MF") /
                                  UDP(dport=4789) / (b"\x08\0\0\0\0\0\x64\0" + inner_tcp(PEER_MAC, MAC["vp1"])))),
    ("short UDP", lambda: bytes(Ether() / IP(src="198.18.0.2", dst="198.18.0.1") / UDP(dport=4789) / b"\x08")),
]


@pytest.mark.parametrize("desc,frame", NOT_OURS, ids=[d[0] for d in NOT_OURS])
def test_not_ours_passes_untouched(bpfenv, desc, frame):
    f = frame()
    r = bpfenv.run("underlay_tc", f)
    assert r.verdict == TC_ACT_OK and r.out == f
    r = bpfenv.run("underlay_xdp", f)
    assert r.verdict == XDP_PASS and r.out == f


# Drop reasons no BPF_PROG_RUN frame can reach, and why. test_every_reason
# makes sure each reason is either exercised by a table above or listed here.
UNREACHABLE = {
    abi.Drop.DECAP_FAIL: "the kernel refuses to shrink only frames shorter than the checked headers",
    abi.Drop.NOT_MESH: "ovl_mesh_rx needs a real vxlan device's tunnel metadata: tests/mesh",
}


def test_every_drop_reason_is_tested():
    import test_encap

    covered = {c[3] for c in test_encap.DROPS} | {c[3] for c in DROPS} | {abi.Drop.FWD_DISABLED}
    covered |= {abi.Drop.BCAST_DYNAMIC, abi.Drop.MISS_QUEUE_FULL, abi.Drop.RING_FULL}  # test_encap
    covered |= {abi.Drop.PLAINTEXT_TX, abi.Drop.PLAINTEXT_RX}  # test_mesh
    # MALFORMED on the port side: BPF_PROG_RUN refuses frames under 14 bytes
    # (EINVAL), so it is exercised on the decap side above.
    missing = set(abi.Drop) - covered - set(UNREACHABLE)
    assert not missing, "drop reasons without a test: %s" % sorted(m.name for m in missing)
