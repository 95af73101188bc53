"""Identical two-host topologies, one per mode, alive side by side.

    [gA 10.9.0.1] --veth-- [hA 198.18.0.1] ==veth== [hB 198.18.0.2] --veth-- [gB 10.9.0.2]

modes:
  routed     no overlay: hA and hB route the guests' subnets (the upper bound)
  kernel     the kernel's vxlan device + a bridge in each host, nolearning,
             static default fdb (remote): the best-configured kernel baseline
  pyovl-tc   pyovl, decap at TC ingress of the underlay
  pyovl-xdp  pyovl, decap in XDP on the underlay (the NIC fast path). A NIC
             hands XDP complete checksums; a veth passes CHECKSUM_PARTIAL
             through, which XDP loses (design.md). So this mode's underlay
             veths do checksums and segmentation in software, like a NIC.
Guests keep default offloads; overlay guests have MTU 1450 (the most a VXLAN
guest gets on a 1500 underlay), routed guests 1500.
"""

from __future__ import annotations

from pyovl import netns
from pyovl.dataplane.datapath import Datapath
from pyovl.tools.topo import Topo, sh

MODES = ("routed", "kernel", "pyovl-tc", "pyovl-xdp")
MAC_A, MAC_B = "02:08:20:09:00:01", "02:08:20:09:00:02"

PREFIX = "pyovl-bench"  # every namespace a benchmark makes starts with this


class Pair:
    def __init__(self, prefix: str, mode: str):
        self.mode = mode
        self.topo = Topo("%s-%s" % (prefix, mode.replace("pyovl-", "p")))
        t = self.topo
        self.ha, self.hb, self.ga, self.gb = t.ns("ha"), t.ns("hb"), t.ns("ga"), t.ns("gb")
        t.underlay(self.ha, self.hb, "198.18.0.1", "198.18.0.2")
        self.ip_a, self.ip_b = ("10.9.1.1", "10.9.2.1") if mode == "routed" else ("10.9.0.1", "10.9.0.2")
        getattr(self, "_" + mode.replace("-", "_"))()
        sh("ping", "-c", "1", "-W", "2", self.ip_b, ns=self.ga, check=False)  # warm ARP and caches

    def _routed(self) -> None:
        t = self.topo
        t.vnic(self.ha, "va", self.ga, MAC_A, ["10.9.1.1/24"], mtu=1500)
        t.vnic(self.hb, "vb", self.gb, MAC_B, ["10.9.2.1/24"], mtu=1500)
        for h, me, gw_net, peer_ul, host_if in ((self.ha, "10.9.1.254/24", "10.9.2.0/24", "198.18.0.2", "va"),
                                                (self.hb, "10.9.2.254/24", "10.9.1.0/24", "198.18.0.1", "vb")):
            sh("ip", "addr", "add", me, "dev", host_if, ns=h)
            sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=h)
            sh("sysctl", "-qw", "net.ipv6.conf.%s.disable_ipv6=0" % host_if, ns=h, check=False)
            sh("ip", "route", "add", gw_net, "via", peer_ul, ns=h)
        sh("ip", "route", "add", "default", "via", "10.9.1.254", ns=self.ga)
        sh("ip", "route", "add", "default", "via", "10.9.2.254", ns=self.gb)

    def _kernel(self) -> None:
        t = self.topo
        t.vnic(self.ha, "va", self.ga, MAC_A, ["10.9.0.1/24"], mtu=1450)
        t.vnic(self.hb, "vb", self.gb, MAC_B, ["10.9.0.2/24"], mtu=1450)
        for h, me, peer, host_if in ((self.ha, "198.18.0.1", "198.18.0.2", "va"),
                                     (self.hb, "198.18.0.2", "198.18.0.1", "vb")):
            sh("ip", "link", "add", "vx0", "type", "vxlan", "id", "9", "local", me, "remote", peer,
               "dstport", "4789", "nolearning", ns=h)
            sh("ip", "link", "add", "br0", "type", "bridge", ns=h)
            sh("ip", "link", "set", "vx0", "master", "br0", "mtu", "1450", ns=h)
            sh("ip", "link", "set", host_if, "master", "br0", ns=h)
            for d in ("vx0", "br0"):
                sh("ip", "link", "set", d, "up", ns=h)

    def _pyovl(self, hook: str) -> None:
        t = self.topo
        t.vnic(self.ha, "va", self.ga, MAC_A, ["10.9.0.1/24"], mtu=1450)
        t.vnic(self.hb, "vb", self.gb, MAC_B, ["10.9.0.2/24"], mtu=1450)
        for h, me, peer, host_if, mac in ((self.ha, "198.18.0.1", "198.18.0.2", "va", MAC_A),
                                          (self.hb, "198.18.0.2", "198.18.0.1", "vb", MAC_B)):
            with netns.inside(h):
                dp = Datapath(instance=h)
                dp.init(["ul0"], hook=hook)
                dp.add_overlay(9, me, point=(peer, 4789), mtu=1450)
                dp.add_port(host_if, 9, mac)
                dp.close()

    def _pyovl_tc(self) -> None:
        self._pyovl("tc")

    def _pyovl_xdp(self) -> None:
        self._pyovl("xdp")
        for h in (self.ha, self.hb):
            sh("ethtool", "-K", "ul0", "tx", "off", "tso", "off", "gso", "off", ns=h)

    def destroy(self) -> None:
        if self.mode.startswith("pyovl"):
            for h in (self.ha, self.hb):
                with netns.inside(h):
                    Datapath(instance=h).teardown()
        self.topo.destroy()


class BarePair:
    """Two namespaces joined by one veth: the generators' ceiling."""

    def __init__(self, prefix: str):
        self.topo = Topo(prefix + "-bare")
        self.ga, self.gb = self.topo.ns("ga"), self.topo.ns("gb")
        self.topo.underlay(self.ga, self.gb, "10.9.0.1", "10.9.0.2")
        self.ip_b = "10.9.0.2"

    def destroy(self) -> None:
        self.topo.destroy()
