"""The daemon (varpd) end to end: real programs, real daemons, real traffic.

Three hosts on one underlay switch, one files overlay (vnetid 42) spanning
them, a guest per host; each host runs `pyovl up -d` on its own file. The
files table (shared) says where each guest MAC lives.

   [ga]            [gb]            [gc]        guests 10.42.0.1-3, fd42::1-3
   [ha .1]         [hb .2]         [hc .3]     198.18.0.x, daemons
      \\______________|______________/
                   [sw]
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_cli_helpers import PYOVL

from pyovl.tools.topo import sh

pytestmark = [pytest.mark.netns, pytest.mark.root, pytest.mark.bpf, pytest.mark.slow]

MAC = {"a": "02:08:20:00:00:a1", "b": "02:08:20:00:00:b1", "c": "02:08:20:00:00:c1"}
UL = {"a": "198.18.0.1", "b": "198.18.0.2", "c": "198.18.0.3"}
IP4 = {h: "10.42.0.%d" % i for i, h in enumerate("abc", start=1)}
IP6 = {h: "fd42::%d" % i for i, h in enumerate("abc", start=1)}
PY = sys.executable


def table(**moves):
    t = {}
    for h in "abc":
        t[MAC[h]] = {"ip": UL[moves.get(h, h)], "port": 4789, "arp": IP4[h], "ndp": IP6[h]}
    return t


class Lab:
    def __init__(self, topo, tmp):
        self.tmp = tmp
        self.env = dict(os.environ, PYOVL_RUN_ROOT=str(tmp / "run"), PYOVL_STATE_ROOT=str(tmp / "lib"))
        self.files = tmp / "ov0.files.json"
        self.files.write_text(json.dumps(table()))
        sw = topo.switch()
        self.host, self.guest = {}, {}
        for h in "abc":
            self.host[h] = topo.ns("h" + h)
            self.guest[h] = "%s-g%s" % (topo.prefix, h)
            topo.attach(self.host[h], sw, UL[h])

    def pyovl(self, h, *args, check=True, timeout=120):
        p = subprocess.run([PYOVL, "--netns", self.host[h], *args], capture_output=True, text=True,
                           env=self.env, timeout=timeout)
        if check:
            assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p

    def up(self, h):
        doc = {"overlays": {"ov0": {"encap": "vxlan", "search": "files", "vnetid": 42,
                                    "props": {"vxlan/listen_ip": UL[h], "files/config": str(self.files)}}},
               "vnics": {"g0": {"over": "ov0", "mac": MAC[h], "netns": self.guest[h],
                                "addresses": [IP4[h] + "/24", IP6[h] + "/64"]}}}
        f = self.tmp / ("h%s.json" % h)
        f.write_text(json.dumps(doc))
        return self.pyovl(h, "up", "-d", str(f))

    def status(self, h):
        out = self.run_in(self.host[h], "import json,sys; from pyovl import daemon; "
                          "print(json.dumps(daemon.request(sys.argv[1], {'op': 'status'})))", self.host[h])
        return json.loads(out)

    def run_in(self, ns, code, *args):
        p = subprocess.run(["ip", "netns", "exec", ns, PY, "-c", code, *args], capture_output=True, text=True,
                           env=self.env, timeout=300)
        assert p.returncode == 0, p.stderr
        return p.stdout

    def metrics(self, h):
        from prometheus_client.parser import text_string_to_metric_families

        text = self.run_in(self.host[h], "import urllib.request; print(urllib.request.urlopen("
                           "'http://127.0.0.1:9134/metrics', timeout=10).read().decode())")
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def wait_ipv6(self):
        for g in self.guest.values():
            for _ in range(50):
                if "tentative" not in sh("ip", "-6", "addr", "show", "dev", "g0", ns=g).stdout:
                    break
                time.sleep(0.1)


def ping(ns, ip, count=1, wait="1"):
    return sh("ping", "-c", str(count), "-W", wait, "-i", "0.2", ip, ns=ns, check=False)


def capture(ns, dev="ul0"):
    path = "/tmp/pyovl-cap-%s-%d.pcap" % (ns, os.getpid())
    p = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-i", dev, "-U", "-n", "-w", path, "udp port 4789"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.8)
    return p, path


def inner_frames(proc, path):
    from scapy.layers.vxlan import VXLAN
    from scapy.utils import rdpcap

    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)
    try:
        return [bytes(p[VXLAN].payload) for p in rdpcap(path) if VXLAN in p]
    finally:
        os.unlink(path)


def test_cold_start_first_ping_and_no_broadcast_on_the_underlay(lab):
    caps = {h: capture(lab.host[h]) for h in "abc"}
    for h in "abc":
        lab.up(h)
    lab.wait_ipv6()
    # the very first ping is answered: ARP through the proxy, the echo held
    # by the daemon during the miss and sent on, the reply likewise
    for src, dst in (("a", "b"), ("b", "c"), ("c", "a")):
        r = ping(lab.guest[src], IP4[dst])
        assert r.returncode == 0 and " 0% packet loss" in r.stdout, (src, dst, r.stdout)
    r = ping(lab.guest["a"], IP6["c"], wait="2")
    assert r.returncode == 0, r.stdout
    neigh = sh("ip", "-6", "neigh", "show", IP6["c"], ns=lab.guest["a"]).stdout
    assert MAC["c"] in neigh
    frames = [f for h in "abc" for f in inner_frames(*caps[h])]
    assert frames, "the capture saw no VXLAN at all"
    group = [f.hex() for f in frames if f[0] & 1]
    assert not group, "broadcast/multicast left a host: %s" % group[:3]
    st = lab.status("a")
    assert st["resolved"] >= 1 and st["latency_us"]["samples"] >= 1


def test_dhcp_proxy_reaches_the_proxy_macs_host(lab):
    t = table()
    t[MAC["b"]]["dhcp-proxy"] = MAC["a"]
    lab.files.write_text(json.dumps(t))
    for h in "ab":
        lab.up(h)
    cap = subprocess.Popen(["ip", "netns", "exec", lab.guest["a"], "tcpdump", "-i", "g0", "-U", "-n", "-e", "-c", "1",
                            "udp dst port 67"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.8)
    lab.run_in(lab.guest["b"], """
from scapy.all import Ether, IP, UDP, BOOTP, DHCP, sendp
mac = "%s"
sendp(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") /
      UDP(sport=68, dport=67) / BOOTP(chaddr=bytes.fromhex(mac.replace(":", ""))) /
      DHCP(options=[("message-type", "discover"), "end"]), iface="g0", verbose=False)
""" % MAC["b"])
    out = cap.communicate(timeout=10)[0]
    assert "%s > %s" % (MAC["b"], MAC["a"]) in out and "67" in out, out


def _flood(lab, n):
    """n frames from guest a to n distinct unknown MACs, as fast as Python sends."""
    code = """
import socket, struct, sys, time
n = int(sys.argv[1]); s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(("g0", 0))
src = bytes.fromhex(sys.argv[2].replace(":", "")); body = b"\\x08\\x00" + b"\\x45" + b"\\0" * 45
t = time.monotonic()
for i in range(n):
    s.send(b"\\x02\\xee" + struct.pack("!I", i) + src + body)
print(time.monotonic() - t)
"""
    return float(lab.run_in(lab.guest["a"], code, str(n), MAC["a"]))


def _rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int([line.split()[1] for line in f if line.startswith("VmRSS")][0])


def test_unknown_macs_become_cached_drops_and_a_flood_is_survived(lab):
    lab.up("a")
    sh("ip", "neigh", "add", "10.42.0.99", "lladdr", "02:08:20:00:00:99", "dev", "g0", ns=lab.guest["a"])
    assert ping(lab.guest["a"], "10.42.0.99").returncode != 0
    rows = json.loads(lab.pyovl("a", "show-overlay", "-t", "--json").stdout)
    assert {"link": "ov0", "target": "02:08:20:00:00:99", "destination": "drop"} in rows
    # the cached DROP is answered by the data path: no more misses reach the daemon
    misses = ("pyovl_misses_total", (("overlay", "ov0"),))
    before = lab.metrics("a")[misses]
    ping(lab.guest["a"], "10.42.0.99", count=3, wait="0.3")
    m = lab.metrics("a")
    assert m[misses] == before
    assert m[("pyovl_drops_total", (("overlay", "ov0"), ("reason", "target_drop")))] >= 3

    pid = lab.status("a")["pid"]
    rss0 = _rss_kb(pid)
    t0 = time.monotonic()
    sent_s = _flood(lab, 100_000)
    st = lab.status("a")  # answers right after the flood
    took = time.monotonic() - t0
    rss1 = _rss_kb(pid)
    m = lab.metrics("a")
    drops = {k[1][1][1]: v for k, v in m.items() if k[0] == "pyovl_drops_total"}
    targets = m[("pyovl_targets", (("overlay", "ov0"), ("state", "drop")))]
    print("flood: 100000 frames sent in %.2fs; daemon resolved %d misses; ring full %d; "
          "drop targets %d; status answered %.2fs after start; RSS %d -> %d kB"
          % (sent_s, st["resolved"], drops.get("ring_full", 0), targets, took, rss0, rss1))
    assert st["resolved"] + drops.get("ring_full", 0) + drops.get("miss_queue_full", 0) >= 99_000
    assert rss1 - rss0 < 64 * 1024, "daemon memory grew by %d kB" % (rss1 - rss0)
    assert lab.pyovl("a", "show-overlay", "-f", timeout=10).returncode == 0


def test_files_edit_moves_a_destination_and_a_bad_edit_degrades(lab):
    for h in "abc":
        lab.up(h)
    # a second guest with b's MAC and address, on host c (a VM about to move)
    sh("ip", "netns", "add", lab.guest["b"] + "x")
    try:
        _move_test(lab)
    finally:
        subprocess.run(["ip", "netns", "del", lab.guest["b"] + "x"], capture_output=True)


def _move_test(lab):
    doc = {"overlays": {"ov0": {"encap": "vxlan", "search": "files", "vnetid": 42,
                                "props": {"vxlan/listen_ip": UL["c"], "files/config": str(lab.files)}}},
           "vnics": {"g0": {"over": "ov0", "mac": MAC["c"], "netns": lab.guest["c"],
                            "addresses": [IP4["c"] + "/24"]},
                     "gbx": {"over": "ov0", "mac": MAC["b"], "netns": lab.guest["b"] + "x",
                             "addresses": [IP4["b"] + "/24"]}}}
    f = lab.tmp / "hc.json"
    f.write_text(json.dumps(doc))
    lab.pyovl("c", "up", str(f))  # through the running daemon
    assert ping(lab.guest["a"], IP4["b"]).returncode == 0

    def rx_on(h):
        m = lab.metrics(h)
        return m[("pyovl_packets_total", (("direction", "rx"), ("overlay", "ov0")))]

    lab.files.write_text(json.dumps(table(b="c")))  # b's MAC now lives on host c
    t0 = time.monotonic()
    c0 = rx_on("c")
    while time.monotonic() - t0 < 1.0:
        ping(lab.guest["a"], IP4["b"], wait="0.2")
        if rx_on("c") > c0:
            break
    moved = time.monotonic() - t0
    assert rx_on("c") > c0, "the destination did not move within 1 s"
    print("destination moved %.2fs after the edit" % moved)

    lab.files.write_text("{ this is not json")
    time.sleep(0.6)
    fma = json.loads(lab.pyovl("a", "show-overlay", "-f", "--json").stdout)[0]
    assert fma["status"] == "DEGRADED" and "invalid JSON" in fma["details"], fma
    assert ping(lab.guest["a"], IP4["b"]).returncode == 0  # the old table carries on
    m = lab.metrics("a")
    assert [v for k, v in m.items() if k[0] == "pyovl_overlay_degraded" and v == 1]

    lab.files.write_text(json.dumps(table(b="c")))
    time.sleep(0.6)
    fma = json.loads(lab.pyovl("a", "show-overlay", "-f", "--json").stdout)[0]
    assert fma == {"link": "ov0", "status": "ONLINE", "details": "-"}


def test_kill9_keeps_flows_and_restart_restores(lab):
    for h in "abc":
        lab.up(h)
    assert ping(lab.guest["a"], IP4["b"]).returncode == 0
    pinger = subprocess.Popen(["ip", "netns", "exec", lab.guest["a"], "ping", "-c", "150", "-i", "0.02", IP4["b"]],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    pid = lab.status("a")["pid"]
    os.kill(pid, signal.SIGKILL)
    out = pinger.communicate(timeout=30)[0]
    assert " 0% packet loss" in out, out
    fma = json.loads(lab.pyovl("a", "show-overlay", "-f", "--json").stdout)[0]
    assert fma["status"] == "DEGRADED" and "no pyovl daemon" in fma["details"]
    targets = json.loads(lab.pyovl("a", "show-overlay", "-t", "--json").stdout)
    assert any(t["target"] == MAC["b"] for t in targets)
    out = lab.up("a").stdout  # restart: nothing to change, a new daemon
    assert not any(ln[:1] in "+~-" for ln in out.splitlines()) and "pyovl daemon started" in out
    assert json.loads(lab.pyovl("a", "show-overlay", "-t", "--json").stdout) == targets
    assert ping(lab.guest["a"], IP4["c"]).returncode == 0  # a new miss is answered
    assert json.loads(lab.pyovl("a", "show-overlay", "-f", "--json").stdout)[0]["status"] == "ONLINE"


def test_metrics_over_http_move_with_traffic(lab):
    for h in "ab":
        lab.up(h)
    assert ping(lab.guest["a"], IP4["b"]).returncode == 0
    m0 = lab.metrics("a")
    assert ping(lab.guest["a"], IP4["b"], count=5).returncode == 0
    m1 = lab.metrics("a")
    tx = (("direction", "tx"), ("overlay", "ov0"))
    assert m1[("pyovl_packets_total", tx)] >= m0[("pyovl_packets_total", tx)] + 5
    assert m1[("pyovl_bytes_total", tx)] > m0[("pyovl_bytes_total", tx)]
    assert m1[("pyovl_overlay_info", (("encap", "vxlan"), ("mode", "dynamic"), ("overlay", "ov0"),
                                      ("search", "files")))] == 1
    assert m1[("pyovl_overlay_degraded", (("overlay", "ov0"), ("reason", "")))] == 0
    assert m1[("pyovl_targets", (("overlay", "ov0"), ("state", "valid")))] >= 1
    assert m1[("pyovl_map_capacity_entries", (("map", "targets"),))] == 1048576
    assert any(k[0] == "pyovl_lookup_latency_seconds_bucket" for k in m1)
    assert m1[("pyovl_lookups_total", (("overlay", "ov0"), ("plugin", "files"), ("result", "ok")))] >= 1
    names = {k[0] for k in m1}
    assert not any("mac" in dict(k[1]) or "ip" in dict(k[1]) or "vnetid" in dict(k[1]) for k in m1), names
