"""The port program (TC ingress of a VNIC host end) under BPF_PROG_RUN.

Test matrix (frame from a VNIC -> verdict, redirect target, output bytes):
  unicast, target VALID (v4 underlay)  REDIRECT ul0, exact outer headers
  unicast, target VALID (v6 underlay)  REDIRECT ul0, exact outer headers
  unicast to a local port              REDIRECT vp2, frame untouched
  ARP broadcast, dynamic overlay       1 local copy, then to the daemon (ring)
  other broadcast, dynamic overlay     SHOT BCAST_DYNAMIC, 1 local copy
  broadcast ARP, point overlay         REDIRECT ul0 (non-IP encap path)
  unicast unknown                      to the daemon: one FIRST event per
                                       (VNI, MAC) and interval, its frames
                                       after it, 128 KiB at most (MISS_QUEUE_FULL)
  DROP target / expired DROP target    SHOT TARGET_DROP / to the daemon
  spoofed source MAC                   SHOT SRC_MAC
  not a port / overlay gone            SHOT NOT_A_PORT / NO_OVERLAY
  no route / unresolved next hop       SHOT NO_ROUTE / NO_NEIGH (ARP);
                                       IP frames resolve via redirect_neigh
  forwarding off on the VNIC           SHOT FWD_DISABLED (when the next hop is looked up)
  too big for the underlay MTU         SHOT TOO_BIG (device MTU, and a route's MTU)
  next hop cache                       filled by the first frame; a changed
                                       neighbour is used after the TTL or a flush
  frames without an skb hash           source port from the inner flow: stable
                                       per flow, different across flows
  GSO ARP (cannot grow as GSO)         SHOT ENCAP_FAIL
"""

from __future__ import annotations

import subprocess
import time

import pytest
from env import (MAC, REMOTE, REMOTE6, REMOTE_DROP, REMOTE_NOROUTE, REMOTE_UNRES,
                      TC_ACT_REDIRECT, TC_ACT_SHOT, UL_MAC_PEER)
from frames import ARP, IP, TCP, UDP, VXLAN, Ether, IPv6, inner_arp, inner_tcp

from pyovl import netlink
from pyovl.dataplane import abi

pytestmark = [pytest.mark.bpf]

UNKNOWN = "02:00:00:00:0c:01"


def _check_outer4(env, out: bytes, inner: bytes, vni: int, dport: int = 4789):
    pkt = Ether(out)
    ip, udp = pkt[IP], pkt[UDP]
    assert VXLAN in pkt
    # exact header fields
    assert pkt.dst == UL_MAC_PEER and pkt.src == env.ul_mac and pkt.type == 0x0800
    assert (ip.version, ip.ihl, ip.tos, ip.flags, ip.frag, ip.ttl, ip.proto) == (4, 5, 0, 2, 0, 64, 17)
    assert ip.src == "198.18.0.1" and ip.dst == "198.18.0.2"
    assert ip.len == len(out) - 14
    assert udp.dport == dport and udp.chksum == 0 and udp.len == len(out) - 34
    assert 32768 <= udp.sport <= 60999
    # the IPv4 header checksum is valid: recomputing gives the same bytes
    hdr = bytearray(out[14:34])
    s = sum(int.from_bytes(hdr[i:i + 2], "big") for i in range(0, 20, 2))
    assert (s & 0xFFFF) + (s >> 16) == 0xFFFF, "IPv4 header checksum invalid"
    # VXLAN: I flag only, VNI << 8, reserved bytes zero
    assert out[42:50] == bytes([0x08, 0, 0, 0]) + (vni << 8).to_bytes(4, "big")
    assert out[50:] == inner
    # and the whole frame equals the one scapy builds from the same fields
    expect = (Ether(src=env.ul_mac, dst=UL_MAC_PEER) /
              IP(src="198.18.0.1", dst="198.18.0.2", flags="DF", ttl=64, id=0) /
              UDP(sport=udp.sport, dport=dport, chksum=0) / VXLAN(flags=0x08, vni=vni) / inner)
    assert bytes(expect) == out


def test_unicast_to_target_v4(bpfenv):
    inner = inner_tcp(MAC["vp1"], REMOTE)
    r = bpfenv.run("port", inner, "vp1")
    assert r.verdict == TC_ACT_REDIRECT
    assert r.trace.ifindex == bpfenv.ifindex["ul0"] and r.trace.vni == 100
    _check_outer4(bpfenv, r.out, inner, 100)


def test_source_port_is_a_flow_hash(bpfenv):
    ports = set()
    for sport in range(40000, 40016):
        inner = bytes(Ether(src=MAC["vp1"], dst=REMOTE) / IP(src="10.0.0.1", dst="10.0.0.2") /
                      UDP(sport=sport, dport=53) / b"q")
        out = bpfenv.run("port", inner, "vp1").out
        ports.add(int.from_bytes(out[34:36], "big"))
        # the same flow always gets the same port
        assert bpfenv.run("port", inner, "vp1").out[34:36] == out[34:36]
    assert len(ports) > 8, "source ports do not spread over flows: %s" % ports


def test_unicast_to_target_v6(bpfenv):
    inner = inner_tcp(MAC["vs1"], REMOTE6)
    r = bpfenv.run("port", inner, "vs1")
    assert r.verdict == TC_ACT_REDIRECT
    pkt = Ether(r.out)
    ip6, udp = pkt[IPv6], pkt[UDP]
    assert pkt.type == 0x86DD and pkt.dst == UL_MAC_PEER
    assert (ip6.version, ip6.tc, ip6.nh, ip6.hlim) == (6, 0, 17, 64)
    assert ip6.src == "fd00:198:18::1" and ip6.dst == "fd00:198:18::2"
    assert ip6.plen == len(r.out) - 54 and udp.len == ip6.plen
    assert udp.dport == 4789 and udp.chksum == 0
    assert r.out[62:70] == bytes([0x08, 0, 0, 0]) + (101 << 8).to_bytes(4, "big")
    assert r.out[70:] == inner


def test_local_switching(bpfenv):
    inner = inner_tcp(MAC["vp1"], MAC["vp2"])
    r = bpfenv.run("port", inner, "vp1")
    assert r.verdict == TC_ACT_REDIRECT and r.trace.ifindex == bpfenv.ifindex["vp2"]
    assert r.out == inner


def test_local_switching_stays_in_the_vni(bpfenv):
    # vq1's MAC is local but in overlay 200: from vp1 (overlay 100) it is unknown
    bpfenv.events(), bpfenv.clear_pending()
    r = bpfenv.run("port", inner_tcp(MAC["vp1"], MAC["vq1"]), "vp1")
    assert r.verdict == TC_ACT_SHOT and r.trace.reason == 0 and r.trace.punted == abi.EV_MISS
    assert r.trace.ifindex == 0
    bpfenv.events()


def test_arp_on_dynamic_overlay_floods_locally_then_goes_to_the_daemon(bpfenv):
    bpfenv.events()
    frame = inner_arp(MAC["vp1"])
    r = bpfenv.run("port", frame, "vp1")
    assert r.verdict == TC_ACT_SHOT and r.trace.reason == 0 and r.trace.punted == abi.EV_BCAST
    assert r.trace.flooded == 1  # vp2, not vp1 itself
    [(h, got)] = bpfenv.events()
    assert (h.type, h.vni, h.ifindex, h.len) == (abi.EV_BCAST, 100, bpfenv.ifindex["vp1"], len(frame))
    assert got == frame


def test_other_broadcast_on_dynamic_overlay_is_dropped(bpfenv):
    frame = bytes(Ether(src=MAC["vp1"], dst="01:00:5e:00:00:fb") / IP(src="10.0.0.1", dst="224.0.0.251") /
                  UDP(dport=5353) / b"mdns")
    r = bpfenv.run("port", frame, "vp1")
    assert r.verdict == TC_ACT_SHOT and r.trace.reason == abi.Drop.BCAST_DYNAMIC and r.trace.flooded == 1
    assert bpfenv.events() == []


def test_miss_reports_once_then_queues_up_to_128k(bpfenv):
    bpfenv.events(), bpfenv.clear_pending()
    ov_id = bpfenv.ov_id(100)
    frame = inner_tcp(MAC["vp1"], UNKNOWN, b"z" * 1400)
    verdicts = [bpfenv.run("port", frame, "vp1") for _ in range(100)]
    events = bpfenv.events()
    punted = [r for r in verdicts if r.trace.punted == abi.EV_MISS]
    full = [r for r in verdicts if r.trace.reason == abi.Drop.MISS_QUEUE_FULL]
    assert len(punted) + len(full) == 100 and full, "the per-destination queue never filled"
    assert len(punted) * len(frame) <= abi.MISS_QUEUE_BYTES < (len(punted) + 1) * len(frame)
    assert len(events) == len(punted) and all(f == frame for _, f in events)
    assert [bool(h.type & abi.EV_F_FIRST) for h, _ in events] == [True] + [False] * (len(events) - 1)
    assert all(h.type & 0xFF == abi.EV_MISS and h.vni == 100 for h, _ in events)
    pend = bpfenv.dp.maps.pending.get(abi.L2Key.of(100, abi.mac_bytes(UNKNOWN)))
    assert pend is not None and pend.bytes == len(punted) * len(frame)
    # the daemon answers: it deletes the pending entry; the next miss reports again
    bpfenv.clear_pending()
    bpfenv.run("port", frame, "vp1")
    [(h, _)] = bpfenv.events()
    assert h.type & abi.EV_F_FIRST
    assert bpfenv.dp.maps.overlay_stats(ov_id)[abi.Stat.MISSES] >= 2


def test_expired_drop_target_is_a_miss_again(bpfenv):
    import time

    mac = "02:00:00:00:0d:0e"
    key = abi.L2Key.of(100, abi.mac_bytes(mac))
    dest = abi.Dest(state=abi.TARGET_DROP, expiry_ns=time.monotonic_ns() + 3600 * 10**9)
    bpfenv.dp.maps.targets.put(key, dest)
    try:
        r = bpfenv.run("port", inner_tcp(MAC["vp1"], mac), "vp1")
        assert r.trace.reason == abi.Drop.TARGET_DROP
        dest.expiry_ns = time.monotonic_ns() - 1
        bpfenv.dp.maps.targets.put(key, dest)
        bpfenv.events(), bpfenv.clear_pending()
        r = bpfenv.run("port", inner_tcp(MAC["vp1"], mac), "vp1")
        assert r.trace.reason == 0 and r.trace.punted == abi.EV_MISS
        assert len(bpfenv.events()) == 1
    finally:
        bpfenv.dp.maps.targets.delete(key)
        bpfenv.clear_pending()


def test_ring_full_is_counted(bpfenv):
    bpfenv.events()
    ov_id = bpfenv.ov_id(100)
    before = bpfenv.drops(ov_id)["RING_FULL"]
    frame = inner_arp(MAC["vp1"])
    n, full = 0, 0
    while full == 0 and n < 10000:
        full += bpfenv.run("port", frame, "vp1", trace=True).trace.reason == abi.Drop.RING_FULL
        n += 1
    assert full == 1 and n * 2072 >= abi.RING_PAGES * 4096 // 2, n
    assert bpfenv.drops(ov_id)["RING_FULL"] == before + 1
    assert len(bpfenv.events()) == n - 1


def test_broadcast_point_is_encapsulated(bpfenv):
    inner = inner_arp(MAC["vr1"])
    r = bpfenv.run("port", inner, "vr1")
    assert r.verdict == TC_ACT_REDIRECT
    _check_outer4(bpfenv, r.out, inner, 300)


def test_unicast_point_goes_to_the_destination(bpfenv):
    inner = inner_tcp(MAC["vr1"], UNKNOWN)
    r = bpfenv.run("port", inner, "vr1")
    assert r.verdict == TC_ACT_REDIRECT
    _check_outer4(bpfenv, r.out, inner, 300)


def test_ip_frame_with_unresolved_next_hop_uses_redirect_neigh(bpfenv):
    r = bpfenv.run("port", inner_tcp(MAC["vp1"], REMOTE_UNRES), "vp1")
    assert r.verdict == TC_ACT_REDIRECT and r.trace.reason == 0


DROPS = [
    ("frame too big for the daemon", "vp1", lambda: inner_tcp(MAC["vp1"], UNKNOWN, b"x" * 2100),
     abi.Drop.PUNT_TOO_BIG, {}),
    ("DROP target", "vp1", lambda: inner_tcp(MAC["vp1"], REMOTE_DROP), abi.Drop.TARGET_DROP, {}),
    ("spoofed source MAC", "vp1", lambda: inner_tcp(UNKNOWN, REMOTE), abi.Drop.SRC_MAC, {}),
    ("not a port", "ul1", lambda: inner_tcp(MAC["vp1"], REMOTE), abi.Drop.NOT_A_PORT, {}),
    ("overlay gone", "vz1", lambda: inner_tcp(MAC["vz1"], REMOTE), abi.Drop.NO_OVERLAY, {}),
    ("no route", "vp1", lambda: inner_tcp(MAC["vp1"], REMOTE_NOROUTE), abi.Drop.NO_ROUTE, {}),
    ("ARP, next hop unresolved", "vp1",
     lambda: bytes(Ether(src=MAC["vp1"], dst=REMOTE_UNRES) / ARP(op=2, hwsrc=MAC["vp1"], psrc="10.0.0.1")),
     abi.Drop.NO_NEIGH, {}),
    ("too big for the underlay", "vp1", lambda: inner_tcp(MAC["vp1"], REMOTE, b"x" * 1440),
     abi.Drop.TOO_BIG, {}),
    ("GSO non-IP frame", "vr1", lambda: inner_arp(MAC["vr1"]), abi.Drop.ENCAP_FAIL, {"gso_size": 1000}),
]


@pytest.mark.parametrize("desc,port,frame,reason,kw", DROPS, ids=[d[0] for d in DROPS])
def test_drop_reasons(bpfenv, desc, port, frame, reason, kw):
    ov = {"vp1": 100, "vr1": 300}.get(port)
    ov_id = bpfenv.ov_id(ov) if ov else 0
    before = bpfenv.drops(ov_id)[reason.name]
    r = bpfenv.run("port", frame(), port, **kw)
    assert r.verdict == TC_ACT_SHOT
    assert r.trace.reason == reason, abi.Drop(r.trace.reason).name if r.trace.reason else r.trace.reason
    assert bpfenv.drops(ov_id)[reason.name] == before + 1


def test_forwarding_off_is_reported(bpfenv):
    bpfenv.dp.flush_nexthops()  # the kernel says FWD_DISABLED when the next hop is looked up
    netlink.sysctl_set("net.ipv4.conf.vp1.forwarding", "0")
    try:
        r = bpfenv.run("port", inner_tcp(MAC["vp1"], REMOTE), "vp1")
    finally:
        netlink.sysctl_set("net.ipv4.conf.vp1.forwarding", "1")
    assert r.verdict == TC_ACT_SHOT and r.trace.reason == abi.Drop.FWD_DISABLED


def _outer_dst_mac(r) -> str:
    assert r.verdict == TC_ACT_REDIRECT, r.trace.reason
    return Ether(r.out).dst


def test_next_hop_is_cached_per_destination(bpfenv):
    bpfenv.dp.flush_nexthops()
    _outer_dst_mac(bpfenv.run("port", inner_tcp(MAC["vp1"], REMOTE), "vp1"))
    entries = list(bpfenv.dp.maps.nexthops.items())
    assert len(entries) == 1
    key, nh = entries[0]
    assert str(key.dst.ip()) == "198.18.0.2" and str(key.src.ip()) == "198.18.0.1"
    assert nh.ifindex == bpfenv.ifindex["ul0"] and nh.mtu == 1500
    assert abi.mac_str(nh.dmac) == UL_MAC_PEER and abi.mac_str(nh.smac) == bpfenv.ul_mac
    # another VNIC's frame to the same underlay host reuses it (the key has no VNIC)
    assert _outer_dst_mac(bpfenv.run("port", inner_tcp(MAC["vp2"], REMOTE), "vp2")) == UL_MAC_PEER
    assert len(list(bpfenv.dp.maps.nexthops.keys())) == 1


def _set_expiry(env, expiry_ns: int) -> None:
    (key, nh), = env.dp.maps.nexthops.items()
    nh.expiry_ns = expiry_ns
    env.dp.maps.nexthops.put(key, nh)


def _neigh(mac: str) -> None:
    subprocess.run(["ip", "neigh", "replace", "198.18.0.2", "lladdr", mac, "dev", "ul0", "nud", "permanent"],
                   check=True)


def test_changed_neighbour_is_used_after_the_ttl_or_a_flush(bpfenv):
    """The entry's age is set through the map (a slow machine, UML, takes more
    than the 100 ms TTL to run `ip`); the clock is the data path's
    (bpf_ktime_get_coarse_ns: CLOCK_MONOTONIC)."""
    moved = "02:aa:00:00:00:09"
    frame = inner_tcp(MAC["vp1"], REMOTE)
    now = lambda: time.clock_gettime_ns(time.CLOCK_MONOTONIC)  # noqa: E731
    bpfenv.dp.flush_nexthops()
    t0 = now()
    assert _outer_dst_mac(bpfenv.run("port", frame, "vp1")) == UL_MAC_PEER
    (_, nh), = bpfenv.dp.maps.nexthops.items()
    assert t0 - 5 * 10**7 <= nh.expiry_ns - abi.NEXTHOP_TTL_NS <= now()  # the coarse clock lags by a tick (10 ms in UML)
    try:
        _set_expiry(bpfenv, now() + 60 * 10**9)
        _neigh(moved)
        assert _outer_dst_mac(bpfenv.run("port", frame, "vp1")) == UL_MAC_PEER  # fresh entry: cached
        _set_expiry(bpfenv, now() - 10**9)  # the coarse clock lags by up to a tick
        assert _outer_dst_mac(bpfenv.run("port", frame, "vp1")) == moved  # expired: looked up again
        _neigh(UL_MAC_PEER)
        _set_expiry(bpfenv, now() + 60 * 10**9)  # only the flush can make the next frame look up again
        assert bpfenv.dp.flush_nexthops() == 1
        assert _outer_dst_mac(bpfenv.run("port", frame, "vp1")) == UL_MAC_PEER
    finally:
        _neigh(UL_MAC_PEER)
        bpfenv.dp.flush_nexthops()


@pytest.mark.parametrize("cached", [False, True], ids=["looked up", "cached"])
def test_route_mtu_is_enforced(bpfenv, cached):
    """A route with its own MTU (1400 < the device's 1500) bounds non-GSO frames,
    on the lookup and from the cache. The fib lookup honours a route MTU as
    forwarding does: when it is locked (or net.ipv4.ip_forward_use_pmtu is on)."""
    subprocess.run(["ip", "route", "add", "198.18.0.2/32", "dev", "ul0", "mtu", "lock", "1400"], check=True)
    try:
        bpfenv.dp.flush_nexthops()
        fits, too_big = inner_tcp(MAC["vp1"], REMOTE, b"x" * 1290), inner_tcp(MAC["vp1"], REMOTE, b"x" * 1320)
        if cached:
            assert bpfenv.run("port", fits, "vp1").verdict == TC_ACT_REDIRECT
            assert next(iter(bpfenv.dp.maps.nexthops.items()))[1].mtu == 1400
            # pinned fresh, and the route gone: only the cache still knows 1400
            _set_expiry(bpfenv, time.clock_gettime_ns(time.CLOCK_MONOTONIC) + 60 * 10**9)
            subprocess.run(["ip", "route", "del", "198.18.0.2/32", "dev", "ul0"], check=True)
        r = bpfenv.run("port", too_big, "vp1")
        assert r.verdict == TC_ACT_SHOT and r.trace.reason == abi.Drop.TOO_BIG
        assert bpfenv.run("port", fits, "vp1").verdict == TC_ACT_REDIRECT  # 1290+40+50 = 1380 <= 1400
    finally:
        subprocess.run(["ip", "route", "del", "198.18.0.2/32", "dev", "ul0"], check=False)
        bpfenv.dp.flush_nexthops()


def test_source_port_follows_the_inner_flow(bpfenv):
    """BPF_PROG_RUN frames carry no skb hash (like a tap's): the port program
    hashes the inner flow itself (ovl_flow_hash). The property is checked, so
    any flow hash passes; that this one is cheap is the benchmark's to show."""
    def sport(tcp_sport):
        frame = bytes(Ether(src=MAC["vp1"], dst=REMOTE) / IP(src="10.0.0.1", dst="10.0.0.2") /
                      TCP(sport=tcp_sport, dport=80))
        r = bpfenv.run("port", frame, "vp1")
        assert r.verdict == TC_ACT_REDIRECT
        return Ether(r.out)[UDP].sport

    ports = [sport(40000 + i) for i in range(16)]
    assert ports == [sport(40000 + i) for i in range(16)], "a flow keeps its source port"
    assert len(set(ports)) >= 12, "flows spread over source ports: %s" % ports
