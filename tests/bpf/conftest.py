"""Fixture bpfenv for the bpf tier; the topology is drawn in env.py."""

from __future__ import annotations

import ctypes as C
import os

import pytest
from env import (MAC, PEER_STRICT, REMOTE, REMOTE6, REMOTE_DROP, REMOTE_NOROUTE, REMOTE_UNRES,
                 UL_MAC_PEER, BpfEnv)

from pyovl import netlink, netns
from pyovl.dataplane import abi, loader
from pyovl.dataplane.ringbuf import RingBuffer
from pyovl.tools.topo import sh, sweep_ns


@pytest.fixture(scope="package")
def bpfenv(prefix):
    from pyovl.dataplane.datapath import Datapath

    ns = "%s-bpf" % prefix
    sh("ip", "netns", "add", ns)
    inside = netns.inside(ns)
    inside.__enter__()
    dp = None
    try:
        sh("ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul1")
        sh("ip", "addr", "add", "198.18.0.1/24", "dev", "ul0")
        sh("ip", "-6", "addr", "add", "fd00:198:18::1/64", "dev", "ul0", "nodad")
        for d in ("ul0", "ul1"):
            sh("ip", "link", "set", d, "up")
        sh("ip", "neigh", "replace", "198.18.0.2", "lladdr", UL_MAC_PEER, "dev", "ul0", "nud", "permanent")
        sh("ip", "-6", "neigh", "replace", "fd00:198:18::2", "lladdr", UL_MAC_PEER, "dev", "ul0",
           "nud", "permanent")
        for name, mac in MAC.items():
            netlink.create_vnic(name, name + "g", mac, 1400, None, [])
            # quiet guests: no IPv6 router solicitations or MLD into the ports
            netlink.sysctl_set("net.ipv6.conf.%sg.disable_ipv6" % name, "1")
        dp = Datapath(instance=ns, pin_dir=loader.pin_dir(ns),
                      state_dir="/run/pyovl/%s" % ns, trace=True)
        dp.load()
        dp.add_overlay(100, "198.18.0.1")
        dp.add_overlay(101, "fd00:198:18::1")
        dp.add_overlay(200, "0.0.0.0", src_ip="198.18.0.1")
        dp.add_overlay(300, "198.18.0.1", listen_port=4790, point=("198.18.0.2", 4789))
        dp.add_overlay(102, "198.18.0.1", strict=True)
        for name, vni in (("vp1", 100), ("vp2", 100), ("vq1", 200), ("vr1", 300), ("vs1", 101), ("vt1", 102)):
            dp.add_port(name, vni, MAC[name])
        dp.add_port("vv1", 100, MAC["vv1"], vlan=10)
        dp.add_port("vv2", 100, MAC["vv2"], vlan=20)
        dp.set_target(100, REMOTE, "198.18.0.2", 4789)
        dp.set_target(100, REMOTE_DROP, None, drop=True)
        dp.set_target(100, REMOTE_UNRES, "198.18.0.3", 4789)
        dp.set_target(100, REMOTE_NOROUTE, "198.19.255.1", 4789)
        dp.set_target(101, REMOTE6, "fd00:198:18::2", 4789)
        dp.set_target(102, PEER_STRICT, "198.18.0.2", 4789)
        # a VNIC whose overlay is gone: written directly, as a stale entry would be
        vz = abi.Vnic(vni=999)
        C.memmove(vz.mac, abi.mac_bytes(MAC["vz1"]), 6)
        dp.maps.vnics.put(abi.U32(netlink.ifindex("vz1")), vz)

        env = BpfEnv(ns=ns, dp=dp, ul_mac=netlink.link_info("ul0")["mac"])
        for p in loader.PROGRAMS:
            env.progs[p] = loader.open_prog(dp.pin_dir, p)
        env.ring = RingBuffer.open_pinned(os.path.join(dp.pin_dir, "misses"))
        for name in list(MAC) + ["ul0", "ul1"]:
            env.ifindex[name] = netlink.ifindex(name)
        yield env
        for fd in env.progs.values():
            os.close(fd)
        env.ring.close()
    finally:
        if dp is not None:
            dp.teardown()
        inside.__exit__(None, None, None)
        sweep_ns(ns)
