"""Build and remove namespace topologies: hosts on a veth underlay, guests.

Used by the test suite and scripts/demo. Everything a Topo creates is
recorded as it is made and removed by destroy(), which also runs when the
with-block fails, so nothing is left behind. Names carry a prefix so that
parallel or leftover runs can be told apart (and swept: sweep(prefix)).

Underlay addresses come from 198.18.0.0/15 (the benchmarking range).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess

from pyroute2 import IPRoute

from pyovl import netlink, netns
from pyovl.state import run_root


def sh(*argv: str, check: bool = True, ns: str | None = None, **kw) -> subprocess.CompletedProcess:
    if ns:
        argv = ("ip", "netns", "exec", ns) + argv
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kw)


class Topo:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self.namespaces: list[str] = []
        self._ports: dict[str, int] = {}

    def ns(self, name: str) -> str:
        full = "%s-%s" % (self.prefix, name)
        netns.create(full)  # visible to every tool, like ip netns add
        self.namespaces.append(full)
        sh("ip", "link", "set", "lo", "up", ns=full)
        return full

    def underlay(self, a: str, b: str, a_ip: str, b_ip: str, plen: int = 24,
                 a_if: str = "ul0", b_if: str = "ul0") -> None:
        """A veth pair between namespaces a and b with addresses."""
        tmp_a, tmp_b = "%s-ua" % self.prefix[-8:], "%s-ub" % self.prefix[-8:]
        with IPRoute() as ipr:
            ipr.link("add", ifname=tmp_a, kind="veth", peer={"ifname": tmp_b})
            ipr.link("set", index=ipr.link_lookup(ifname=tmp_a)[0], net_ns_fd=a)
            ipr.link("set", index=ipr.link_lookup(ifname=tmp_b)[0], net_ns_fd=b)
        for ns_name, tmp, ifname, ip in ((a, tmp_a, a_if, a_ip), (b, tmp_b, b_if, b_ip)):
            sh("ip", "link", "set", tmp, "name", ifname, ns=ns_name)
            fam = "-6" if ":" in ip else "-4"
            extra = ["nodad"] if ":" in ip else []
            sh("ip", fam, "addr", "add", "%s/%d" % (ip, plen), "dev", ifname, *extra, ns=ns_name)
            sh("ip", "link", "set", ifname, "up", ns=ns_name)

    def switch(self, name: str = "sw") -> str:
        """A namespace holding a bridge: the shared underlay of several hosts."""
        ns = self.ns(name)
        sh("ip", "link", "add", "br0", "type", "bridge", ns=ns)
        sh("ip", "link", "set", "br0", "up", ns=ns)
        return ns

    def attach(self, host: str, switch: str, ip: str, plen: int = 24, ifname: str = "ul0") -> None:
        """Connect host to the switch's bridge with address ip on ifname."""
        n = self._ports[switch] = self._ports.get(switch, 0) + 1
        port = "p%d" % n
        tmp = "%s-t%d" % (self.prefix[-8:], n)
        with IPRoute() as ipr:
            ipr.link("add", ifname=tmp, kind="veth", peer={"ifname": port})
            ipr.link("set", index=ipr.link_lookup(ifname=tmp)[0], net_ns_fd=host)
            ipr.link("set", index=ipr.link_lookup(ifname=port)[0], net_ns_fd=switch)
        sh("ip", "link", "set", port, "master", "br0", "up", ns=switch)
        sh("ip", "link", "set", tmp, "name", ifname, ns=host)
        sh("ip", "addr", "add", "%s/%d" % (ip, plen), "dev", ifname, ns=host)
        sh("ip", "link", "set", ifname, "up", ns=host)

    def vnic(self, host: str, host_if: str, guest_ns: str, mac: str, addresses: list[str],
             mtu: int = 1400, guest_if: str = "eth0") -> None:
        """A VNIC: host end host_if in host, guest end guest_if in guest_ns."""
        with netns.inside(host):
            netlink.create_vnic(host_if, guest_if, mac, mtu, guest_ns, addresses)

    def destroy(self) -> None:
        for name in reversed(self.namespaces):
            sweep_ns(name)
        self.namespaces = []

    def __enter__(self) -> "Topo":
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()


def sweep_ns(name: str) -> None:
    """Remove a namespace and anything pyovl pinned for it."""
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
    for pid in pids:
        subprocess.run(["kill", "-9", pid], capture_output=True)
    netns.remove(name)
    from pyovl.dataplane import loader  # noqa: PLC0415

    try:
        loader.unload(loader.pin_dir(name))
    except OSError:
        pass
    shutil.rmtree(os.path.join(run_root(), name), ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(run_root())  # the root too once empty, as pyovl's own removal does (state.remove)


def sweep(prefix: str) -> None:
    """Remove every namespace named prefix-*, and a name a failed creation
    left as a plain file too (netns.names() lists only live ones)."""
    try:
        entries = os.listdir(netns.NETNS_RUN_DIR)
    except FileNotFoundError:
        return
    for name in entries:
        if name.startswith(prefix + "-"):
            sweep_ns(name)
