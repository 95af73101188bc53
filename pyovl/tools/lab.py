"""The network-namespace lab: three pyovl hosts on one underlay.

    [g1p]  [g1a] [g1b]      [g2p]  [g2a] [g2b]      [g3a] [g3b]
       \\      |     |           \\      |     |         |     |
    [ <p>-h1 198.18.0.1 ]    [ <p>-h2 198.18.0.2 ]   [ <p>-h3 198.18.0.3 ]
    metrics :9134            metrics :9135           metrics :9136
               \\___________________|___________________/
                              [ <p>-sw: br0 ]

  p2p0   direct, vnetid 100, h1 <-> h2: g1p 10.100.0.1, g2p 10.100.0.2
  files0 files,  vnetid 200, all three hosts, two VLANs:
         VLAN 10: gNa 10.200.10.N    VLAN 20: gNb 10.200.20.N   (N = host)

Each host is an independent pyovl instance running `pyovl up -d` on its own
overlay.json (written to the lab directory with the files table). up()
builds it, check() proves it (pings on every path, VLAN isolation), status()
shows it, down() removes all of it. The Vagrantfile runs the same files on
three VMs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from pyovl.tools.topo import Topo, sh, sweep

HOSTS = (1, 2, 3)
P2P = {1: "10.100.0.1", 2: "10.100.0.2"}
VLANS = {10: "a", 20: "b"}


def ul_ip(n: int) -> str:
    return "198.18.0.%d" % n


def guest_mac(n: int, kind: str) -> str:
    return "02:08:20:%02x:%02x:%02x" % (n, {"a": 10, "b": 20, "p": 100}[kind], 1)


def guest_ip(n: int, kind: str) -> str:
    return P2P[n] if kind == "p" else "10.200.%d.%d" % (10 if kind == "a" else 20, n)


def files_table() -> dict:
    return {guest_mac(n, k): {"ip": ul_ip(n), "port": 4789, "arp": guest_ip(n, k),
                              "ndp": "fd00:200:%d::%d" % (10 if k == "a" else 20, n)}
            for n in HOSTS for k in "ab"}


def host_config(n: int, prefix: str, files_path: str, underlay_ip=ul_ip) -> dict:
    """overlay.json of host n (also used by the Vagrant lab, with its own addresses)."""
    overlays = {"files0": {"encap": "vxlan", "search": "files", "vnetid": 200,
                           "props": {"vxlan/listen_ip": underlay_ip(n), "files/config": files_path}}}
    vnics = {}
    for vlan, k in VLANS.items():
        vnics["g%d%s" % (n, k)] = {"over": "files0", "mac": guest_mac(n, k), "vlan": vlan,
                                   "netns": "%s-g%d%s" % (prefix, n, k),
                                   "addresses": [guest_ip(n, k) + "/24"]}
    if n in P2P:
        peer = 2 if n == 1 else 1
        overlays["p2p0"] = {"encap": "vxlan", "search": "direct", "vnetid": 100,
                            "props": {"vxlan/listen_ip": underlay_ip(n), "direct/dest_ip": underlay_ip(peer),
                                      "direct/dest_port": 4789}}
        vnics["g%dp" % n] = {"over": "p2p0", "mac": guest_mac(n, "p"), "netns": "%s-g%dp" % (prefix, n),
                             "addresses": [guest_ip(n, "p") + "/24"]}
    return {"overlays": overlays, "vnics": vnics, "daemon": {"metrics": "127.0.0.1:%d" % (9133 + n)}}


class HostsLab:
    """What every namespace lab shares: hosts numbered self.hosts, each its
    own pyovl instance in namespace host(n), files under self.dir; run()
    calls pyovl on one host, down() removes all of it (pyovl/tools/meshlab.py is
    the other lab)."""

    hosts: tuple = HOSTS
    host_letter = "h"

    def __init__(self, prefix: str = "lab", directory: str | None = None):
        self.prefix = prefix
        self.dir = directory or "/run/pyovl-lab/%s" % prefix
        self.pyovl = os.path.join(os.path.dirname(sys.executable), "pyovl")

    def host(self, n: int) -> str:
        return "%s-%s%d" % (self.prefix, self.host_letter, n)

    def run(self, n: int, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([self.pyovl, "--netns", self.host(n), *args], capture_output=True, text=True)
        if check and p.returncode != 0:
            raise RuntimeError("pyovl %s on %s: %s" % (" ".join(args), self.host(n), p.stderr.strip()))
        return p

    def down(self) -> None:
        for n in self.hosts:
            if os.path.exists("/run/netns/%s" % self.host(n)):
                self.run(n, "down", check=False)
        sweep(self.prefix)
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            os.rmdir(os.path.dirname(self.dir))
        except OSError:
            pass


class Lab(HostsLab):
    def guest(self, n: int, kind: str) -> str:
        return "%s-g%d%s" % (self.prefix, n, kind)

    def up(self) -> list[str]:
        self.down()  # a clean start
        os.makedirs(self.dir, exist_ok=True)
        files = os.path.join(self.dir, "files0.json")
        with open(files, "w") as f:
            json.dump(files_table(), f, indent=1)
        t = Topo(self.prefix)
        sw = t.switch()
        out = []
        for n in HOSTS:
            h = t.ns("h%d" % n)
            t.attach(h, sw, ul_ip(n))
            path = os.path.join(self.dir, "h%d.json" % n)
            with open(path, "w") as f:
                json.dump(host_config(n, self.prefix, files), f, indent=1)
            out.append("%s: %s" % (h, self.run(n, "up", "-d", path).stdout.strip().replace("\n", "; ")))
        return out

    def checks(self) -> list[tuple[str, bool]]:
        """Every path the lab promises, and the isolation it promises."""
        res = []

        def ping(src: str, ip: str) -> bool:
            return sh("ping", "-c", "2", "-i", "0.2", "-W", "2", ip, ns=src, check=False).returncode == 0

        res.append(("p2p0 g1p -> g2p", ping(self.guest(1, "p"), P2P[2])))
        for k, vlan in (("a", 10), ("b", 20)):
            for src, dst in ((1, 2), (2, 3), (3, 1)):
                res.append(("files0 VLAN %d g%d%s -> g%d%s" % (vlan, src, k, dst, k),
                            ping(self.guest(src, k), guest_ip(dst, k))))
        # VLAN 10 cannot reach VLAN 20, even with a route and a neighbour entry
        g = self.guest(1, "a")
        sh("ip", "route", "replace", "10.200.20.0/24", "dev", "g1a", ns=g, check=False)
        sh("ip", "neigh", "replace", guest_ip(2, "b"), "lladdr", guest_mac(2, "b"), "dev", "g1a", ns=g, check=False)
        res.append(("VLAN 10 cannot reach VLAN 20", not ping(g, guest_ip(2, "b"))))
        sh("ip", "route", "del", "10.200.20.0/24", ns=g, check=False)
        return res

    def status(self) -> str:
        parts = []
        for n in HOSTS:
            if self.run(n, "show-overlay", "-f", check=False).returncode != 0:
                parts.append("%s: not running" % self.host(n))
                continue
            parts.append("== %s" % self.host(n))
            for args in (("show-overlay", "-f"), ("show-overlay", "-t"), ("show-vnic",)):
                parts.append("$ pyovl --netns %s %s\n%s" % (self.host(n), " ".join(args),
                                                             self.run(n, *args, check=False).stdout.rstrip()))
        return "\n".join(parts)
