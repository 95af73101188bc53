"""Real traffic through the real programs between namespaces.

Topology (each box a network namespace made by the test):

   [ga1]   [ga2]                         [gb1]   [gb2]
     |eth0   |eth0                         |eth0   |eth0
   va1     va2      198.18.0.1  198.18.0.2  vb1     vb2
   [        ha        ]--ul0=====ul0--[        hb        ]
   pyovl (or the kernel's vxlan device, for interop)

ga1/gb1 are on overlay 23, ga2/gb2 on overlay 24 (isolation); guests keep
their default offloads (checksum, TSO) unless a test says otherwise.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from pyovl import netns
from pyovl.dataplane.datapath import Datapath
from pyovl.tools.topo import sh

pytestmark = [pytest.mark.netns, pytest.mark.root]

MACS = {"ga1": "02:00:00:00:23:01", "gb1": "02:00:00:00:23:02",
        "ga2": "02:00:00:00:24:01", "gb2": "02:00:00:00:24:02"}
IPS = {"ga1": "10.23.0.1", "gb1": "10.23.0.2", "ga2": "10.24.0.1", "gb2": "10.24.0.2"}

SENDER = r'''
import hashlib, random, socket, sys
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(size); h = hashlib.sha256(); s = socket.create_connection((host, port), timeout=20)
left = size
while left:
    chunk = rng.randbytes(min(left, 1 << 20)); s.sendall(chunk); h.update(chunk); left -= len(chunk)
s.shutdown(socket.SHUT_WR); s.recv(1); print(h.hexdigest())
'''
RECEIVER = r'''
import hashlib, socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(1); srv.settimeout(30)
c, _ = srv.accept(); c.settimeout(30); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 20)
    if not b: break
    h.update(b); n += len(b)
c.close(); print(n, h.hexdigest())
'''


def build(topo, hook="tc", pyovl_b=True, point=True, v6=False):
    ha, hb = topo.ns("ha"), topo.ns("hb")
    g = {name: topo.ns(name) for name in MACS}
    a_ip, b_ip = ("fd00:198:18::1", "fd00:198:18::2") if v6 else ("198.18.0.1", "198.18.0.2")
    topo.underlay(ha, hb, a_ip, b_ip, plen=64 if v6 else 24)
    for name in MACS:
        host = ha if name.startswith("ga") else hb
        topo.vnic(host, "v" + name[1:], g[name], MACS[name], [IPS[name] + "/24"])
    setup_pyovl(ha, "a", a_ip, b_ip, hook, point)
    if pyovl_b:
        setup_pyovl(hb, "b", b_ip, a_ip, hook, point)
    if not point:
        for x, y in (("ga1", "gb1"), ("gb1", "ga1"), ("ga2", "gb2"), ("gb2", "ga2")):
            sh("ip", "neigh", "add", IPS[y], "lladdr", MACS[y], "dev", "eth0", ns=g[x])
    return ha, hb, g


def setup_pyovl(host, side, me, peer, hook, point):
    with netns.inside(host):
        dp = Datapath(instance=host)
        try:
            dp.init(["ul0"], hook=hook)
            for vni, n in ((23, "1"), (24, "2")):
                if point:
                    dp.add_overlay(vni, me, point=(peer, 4789))
                else:
                    dp.add_overlay(vni, me)
                    other = "gb" + n if side == "a" else "ga" + n
                    dp.set_target(vni, MACS[other], peer, 4789)
                dp.add_port("v%s%s" % (side, n), vni, MACS["g%s%s" % (side, n)])
        finally:
            dp.close()


def teardown_pyovl(*hosts):
    for h in hosts:
        with netns.inside(h):
            Datapath(instance=h).teardown()


def overlay_info(host, vni):
    with netns.inside(host):
        return [o for o in Datapath(instance=host).show()["overlays"] if o["vnetid"] == vni][0]


def ping(ns, ip, count=3):
    return sh("ping", "-c", str(count), "-i", "0.2", "-W", "2", ip, ns=ns, check=False)


def transfer(src_ns, dst_ns, dst_ip, size=200 * 1024 * 1024, port=5001):
    rx = subprocess.Popen(["ip", "netns", "exec", dst_ns, "python3", "-c", RECEIVER, str(port)],
                          stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    tx = sh("python3", "-c", SENDER, dst_ip, str(port), str(size), ns=src_ns, check=False, timeout=120)
    out, _ = rx.communicate(timeout=60)
    assert tx.returncode == 0, tx.stderr
    n, digest = out.split()
    return int(n), digest, tx.stdout.strip()


def offloads(ns, dev="eth0"):
    out = sh("ethtool", "-k", dev, ns=ns).stdout
    return {k: ("on" in v.split()[0]) for k, v in (line.split(":", 1) for line in out.splitlines()[1:] if ":" in line)}


def test_point_overlay_arp_and_200mb_tcp_both_ways(topo):
    ha, hb, g = build(topo)
    try:
        # guests keep their default offloads
        assert offloads(g["ga1"])["tcp-segmentation-offload"] and offloads(g["ga1"])["tx-checksumming"]
        r = ping(g["ga1"], IPS["gb1"])
        assert r.returncode == 0, r.stdout + r.stderr
        # ARP resolved across the overlay: no static entries were made
        neigh = sh("ip", "neigh", "show", IPS["gb1"], ns=g["ga1"]).stdout
        assert MACS["gb1"] in neigh and "PERMANENT" not in neigh
        for src, dst in (("ga1", "gb1"), ("gb1", "ga1")):
            n, got, sent = transfer(g[src], g[dst], IPS[dst])
            assert n == 200 * 1024 * 1024 and got == sent, (src, dst)
        ov = overlay_info(ha, 23)
        assert ov["counters"]["tx_packets"] > 1000 and ov["counters"]["rx_packets"] > 1000
    finally:
        teardown_pyovl(ha, hb)


def test_dynamic_overlay_targets_carry_unicast(topo):
    ha, hb, g = build(topo, point=False)
    try:
        assert ping(g["ga1"], IPS["gb1"]).returncode == 0
        n, got, sent = transfer(g["gb1"], g["ga1"], IPS["ga1"], size=20 * 1024 * 1024)
        assert got == sent
        with netns.inside(ha):
            dp = Datapath(instance=ha)
            dp.set_target(23, MACS["gb1"], None, drop=True)
            dp.close()
        assert ping(g["ga1"], IPS["gb1"], count=2).returncode != 0
        ov = overlay_info(ha, 23)
        assert ov["drops"].get("target_drop", 0) >= 2
    finally:
        teardown_pyovl(ha, hb)


def test_ipv6_underlay(topo):
    ha, hb, g = build(topo, v6=True)
    try:
        assert ping(g["ga1"], IPS["gb1"]).returncode == 0
        n, got, sent = transfer(g["ga1"], g["gb1"], IPS["gb1"], size=50 * 1024 * 1024)
        assert got == sent
    finally:
        teardown_pyovl(ha, hb)


def test_xdp_decap_with_nic_like_underlay(topo):
    """XDP decap is the NIC fast path. A NIC hands XDP complete checksums and
    MTU-sized frames; on a veth underlay that holds once the sender's
    underlay does not offload (tx checksum and segmentation done in software)."""
    ha, hb, g = build(topo, hook="xdp")
    try:
        for h in (ha, hb):
            sh("ethtool", "-K", "ul0", "tx", "off", "tso", "off", "gso", "off", ns=h)
        with netns.inside(hb):
            from pyovl import netlink
            assert netlink.xdp_prog_id("ul0") > 0
        assert ping(g["ga1"], IPS["gb1"]).returncode == 0
        n, got, sent = transfer(g["ga1"], g["gb1"], IPS["gb1"], size=50 * 1024 * 1024)
        assert got == sent
    finally:
        teardown_pyovl(ha, hb)


def _capture(ns, dev="eth0"):
    return subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-i", dev, "-n", "-e", "-l", "-U",
                             "-w", "-", "not ip6"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def test_isolation_between_vnis(topo):
    ha, hb, g = build(topo)
    try:
        caps = {n: _capture(g[n]) for n in ("ga2", "gb2")}
        time.sleep(1)
        # overlay 23 traffic: broadcast ARP, unicast ping, and a guest of 23
        # aiming at 24's addresses (same hosts, same underlay)
        assert ping(g["ga1"], IPS["gb1"]).returncode == 0
        sh("ip", "addr", "add", "10.24.0.9/24", "dev", "eth0", ns=g["ga1"])
        ping(g["ga1"], IPS["gb2"], count=2)
        sh("arping", "-c", "2", "-I", "eth0", IPS["gb2"], ns=g["ga1"], check=False)
        time.sleep(1)
        for n, p in caps.items():
            p.terminate()
            raw = p.communicate(timeout=10)[0]
            for mac in (MACS["ga1"], MACS["gb1"]):
                assert bytes.fromhex(mac.replace(":", "")) not in raw, "%s saw a frame of overlay 23" % n
        # and overlay 24 itself still works
        assert ping(g["ga2"], IPS["gb2"]).returncode == 0
    finally:
        teardown_pyovl(ha, hb)


def test_interop_with_kernel_vxlan(topo):
    """pyovl on host a; the kernel's own vxlan device (+ bridge) on host b."""
    ha, hb, g = build(topo, pyovl_b=False)
    try:
        for vni, n in ((23, "1"), (24, "2")):
            vx, br = "vx%d" % vni, "br%d" % vni
            sh("ip", "link", "add", vx, "type", "vxlan", "id", str(vni), "local", "198.18.0.2",
               "remote", "198.18.0.1", "dstport", "4789", "nolearning", ns=hb)
            sh("ip", "link", "add", br, "type", "bridge", ns=hb)
            sh("ip", "link", "set", vx, "master", br, "mtu", "1450", ns=hb)
            sh("ip", "link", "set", "vb" + n, "master", br, ns=hb)
            for d in (vx, br):
                sh("ip", "link", "set", d, "up", ns=hb)
        for src, dst in (("ga1", "gb1"), ("gb1", "ga1")):
            r = ping(g[src], IPS[dst])
            assert r.returncode == 0, (src, r.stdout)
            n, got, sent = transfer(g[src], g[dst], IPS[dst], size=50 * 1024 * 1024)
            assert got == sent, (src, dst)
    finally:
        teardown_pyovl(ha)
