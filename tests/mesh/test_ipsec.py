"""IKE, ESP and the fail-closed fallback between mesh nodes in other PDCs,
with real kernels and a real strongSwan (pyovl.mesh.ike / xfrm / keys).

Topology (namespaces and veths made by each test, removed afterwards):

    [ <p>-a: n1, pdc-a ]  ul0 198.18.0.1 ==== 198.18.0.2 ul0  [ <p>-b: n2, pdc-b ]
    (three nodes: each on a bridge in <p>-sw, n3 = 198.18.0.3 in pdc-c)
    charon-systemd per namespace (ManagedCharon), vici socket, log and keys in
    a private temporary directory

Tiers: the fallback tests need XFRM policies only and run on any kernel
(root); the rest need ESP and skip without it, with the reason. Run them
inside user-mode-linux from the host with test_ipsec_uml.py, or directly:
  scripts/uml-run -- .venv/bin/python -m pytest tests/mesh/test_ipsec.py

Matrix:
  fallback only, no SA    UDP to/from port 4789, both marks: nothing on the
                          wire, XfrmOutNoStates counts; port 5555 passes;
                          plaintext 4789 from the peer dropped (XfrmIn*),
                          also before a kernel VXLAN device's socket;
                          strongSwan-like policies left alone; remove_all
  SA up                   UDP 4789 both ways (and from 4789): ESP only on the
                          wire; port 5555 stays plaintext; kernel VXLAN over it
  rekey under a stream    short rekey_time, and vici rekey: no packet lost,
                          new SPIs on the wire
  IKE stopped (SIGTERM)   on either node: no plaintext leaves either side;
                          charon back + apply: SA back by itself (time printed)
  SA closed through IKE   no plaintext; traffic (acquire) brings it back
  SA deleted              kernel states flushed behind charon: no plaintext
                          (charon does not notice; a vici rekey repairs it,
                          which pyovl/mesh/apply.py does)
  charon killed (-9)      states stay: still ESP, never plaintext
  remove a peer           3 nodes: n1 loses exactly n3's connection, key,
                          fallback and SAs; n1-n2 SAs untouched (same SPIs)
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import tempfile
import threading
import time

import pytest
from capture import Capture

from pyovl import netns
from pyovl.mesh import Node, ike, keys, xfrm
from pyovl.tools.topo import sh

pytestmark = [pytest.mark.netns, pytest.mark.root]

PORT, OTHER = 4789, 5555
PORTS = [PORT]


def _esp_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    why = xfrm.esp_unsupported()
    if why:
        return why + "; run it under scripts/uml-run (tests/mesh/test_ipsec_uml.py does)"
    if not os.access(ike.CHARON_SYSTEMD, os.X_OK):
        return "strongSwan's charon-systemd is not installed (apt install charon-systemd)"
    try:
        import vici  # noqa: F401
    except ImportError:
        return "the Python vici package is not installed (pip install vici)"
    return None


ESP_REASON = _esp_reason()
needs_esp = pytest.mark.skipif(ESP_REASON is not None, reason=ESP_REASON or "")


N1 = Node("n1", "pdc-a", "10.99.0.1", "198.18.0.1")
N2 = Node("n2", "pdc-b", "10.99.0.2", "198.18.0.2")
N3 = Node("n3", "pdc-c", "10.99.0.3", "198.18.0.3")


# -- helpers ---------------------------------------------------------------------

def udp(ns: str, ip: str, port: int = 0, mark: int = 0) -> socket.socket:
    with netns.inside(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    if mark:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
    s.bind((ip, port))
    s.settimeout(0.05)
    return s


def drain(s: socket.socket, wait: float = 0.5) -> list[bytes]:
    got, end = [], time.monotonic() + wait
    while time.monotonic() < end:
        try:
            got.append(s.recv(65535))
        except socket.timeout:
            pass
    return got


def send(src: socket.socket, dst: tuple[str, int], n: int = 5) -> None:
    for i in range(n):
        try:
            src.sendto(b"pyovl-%d" % i, dst)
        except OSError:
            pass  # EPERM/EHOSTUNREACH from an xfrm drop: fine, nothing left


def wait_for(cond, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


class Site:
    """One node: its namespace, its charon, its key file."""

    def __init__(self, ns: str, node: Node, work: str):
        self.ns, self.node, self.work = ns, node, work
        self.charon = ike.ManagedCharon(os.path.join(work, "run-" + node.name))

    def start(self) -> None:
        with netns.inside(self.ns):
            self.charon.start()

    def ike(self) -> ike.Ike:
        return ike.Ike(self.charon.vici_uri)

    def apply(self, peers: list[Node], **kw) -> dict:
        secrets = keys.load(os.path.join(self.work, "keys", self.node.name + ".json"), self.node.name, peers)
        with self.ike() as i:
            return i.apply(self.node, peers, secrets, PORTS, **kw)

    def fallback(self, peers: list[Node]) -> None:
        for p in peers:
            xfrm.install_fallback(self.node.external, p.external, PORTS, netns=self.ns)

    def sa_state(self) -> dict[str, bool]:
        with self.ike() as i:
            return i.sa_state()

    def kernel_sa(self, peer: Node) -> tuple[bool, bool]:
        return xfrm.sa_present(self.node.external, peer.external, netns=self.ns)

    def up_with(self, peer: Node) -> bool:
        return self.sa_state().get(peer.name) is True and self.kernel_sa(peer) == (True, True)

    def stat(self, name: str) -> int:
        return xfrm.xfrm_stat(self.ns).get(name, 0)

    def children(self, peer: Node) -> dict[str, tuple[str, str]]:
        """CHILD_SA name -> (spi-in, spi-out) of the installed ones."""
        out = {}
        with self.ike() as i:
            for ev in i.list_sas():
                for sa in ev.values():
                    for c in (sa.get("child-sas") or {}).values():
                        if c.get("state") == b"INSTALLED" and c["name"].decode().startswith("pyovl-" + peer.name):
                            out[c["name"].decode()] = (c["spi-in"].decode(), c["spi-out"].decode())
        return out

    def ike_sas(self, peer: Node) -> list[tuple[str, str]]:
        """(initiator SPI, state) of every IKE_SA with peer."""
        with self.ike() as i:
            return sorted((sa["initiator-spi"].decode(), sa["state"].decode())
                          for ev in i.list_sas() for name, sa in ev.items() if name == "pyovl-" + peer.name)

    def log_tail(self, n: int = 40) -> str:
        try:
            with open(self.charon.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no charon log)"


class Lab:
    def __init__(self, topo, nodes: list[Node]):
        self.work = tempfile.mkdtemp(prefix="pyovl-ipsec-")
        self.sites: dict[str, Site] = {}
        if len(nodes) == 2:
            a, b = (topo.ns(n.name) for n in nodes)
            topo.underlay(a, b, nodes[0].external, nodes[1].external)
            nss = [a, b]
        else:
            sw = topo.switch()
            nss = []
            for n in nodes:
                ns = topo.ns(n.name)
                topo.attach(ns, sw, n.external)
                nss.append(ns)
        for ns, n in zip(nss, nodes):
            self.sites[n.name] = Site(ns, n, self.work)
        self.nodes = nodes
        keys.generate(nodes, os.path.join(self.work, "keys"))

    def __getitem__(self, name: str) -> Site:
        return self.sites[name]

    def up(self, timeout: float = 40.0) -> float:
        """Fallback, charon, connections on every node; wait for every SA."""
        t0 = time.monotonic()
        for s in self.sites.values():
            s.fallback(self.peers(s))
            s.start()
        for s in self.sites.values():
            s.apply(self.peers(s))
        self.wait_all_up(timeout)
        return time.monotonic() - t0

    def peers(self, site: Site) -> list[Node]:
        return [n for n in self.nodes if n.name != site.node.name]

    def wait_all_up(self, timeout: float) -> float:
        pairs = [(s, p) for s in self.sites.values() for p in self.peers(s)]
        try:
            return wait_for(lambda: all(s.up_with(p) for s, p in pairs), timeout, "every SA up")
        except AssertionError:
            raise AssertionError("SAs not up: %s\n%s" % (
                {s.node.name: s.sa_state() for s in self.sites.values() if s.charon.running()},
                "\n".join("--- %s\n%s" % (s.node.name, s.log_tail()) for s in self.sites.values())))

    def close(self, failed: bool = True) -> None:
        if failed:  # the IKE side of the story
            for s in self.sites.values():
                print("--- charon log of %s (last lines)\n%s" % (s.node.name, s.log_tail(80)))
        for s in self.sites.values():
            try:
                with netns.inside(s.ns):
                    s.charon.stop(timeout=5)
            except Exception:  # the namespace may be gone already; topo kills what is left
                pass
        shutil.rmtree(self.work, ignore_errors=True)


def _lab(request, topo, nodes):
    failed_before = request.session.testsfailed
    lab = Lab(topo, nodes)
    try:
        yield lab
    finally:
        # the call's report is in by teardown: print charon's logs on failure only
        lab.close(failed=request.session.testsfailed > failed_before)


@pytest.fixture
def lab2(request, topo):
    yield from _lab(request, topo, [N1, N2])


@pytest.fixture
def lab3(request, topo):
    yield from _lab(request, topo, [N1, N2, N3])


# -- the fallback alone (any kernel with XFRM) ------------------------------------

def test_fallback_drops_overlay_udp_without_sa_both_marks(topo):
    lab = Lab(topo, [N1, N2])
    try:
        a, b = lab["n1"], lab["n2"]
        a.fallback([N2])
        cap = Capture(a.ns)
        rx, rx_other = udp(b.ns, N2.external, PORT), udp(b.ns, N2.external, OTHER)
        before = a.stat("XfrmOutNoStates")
        for mark in (0, 1, 2, 0x12345):
            s = udp(a.ns, N1.external, mark=mark)
            send(s, (N2.external, PORT))  # to the peer's overlay port
            s.close()
        s = udp(a.ns, N1.external, PORT)
        send(s, (N2.external, 40000))  # from our overlay port
        send(s, (N2.external, OTHER))  # from our overlay port, too
        s.close()
        s = udp(a.ns, N1.external)
        send(s, (N2.external, OTHER), n=3)  # neither port is an overlay port: plain
        got, other = drain(rx), drain(rx_other)
        frames = cap.stop()
        assert got == [] and not cap.plaintext(), "plaintext overlay UDP left: %s" % cap.plaintext()[:3]
        assert len(other) == 3, "UDP between other ports must stay plaintext and pass"
        assert len([f for f in frames if f[2] == 17 and f[4] == OTHER and f[3] != PORT]) == 3
        assert a.stat("XfrmOutNoStates") - before >= 4 * 5 + 2 * 5
        s.close()
        rx.close()
        rx_other.close()
    finally:
        lab.close(failed=False)


def test_fallback_drops_plaintext_from_the_peer(topo):
    lab = Lab(topo, [N1, N2])
    try:
        a, b = lab["n1"], lab["n2"]
        a.fallback([N2])  # only n1 protects: n2 sends plaintext
        rx = udp(a.ns, N1.external, PORT)
        rx2 = udp(a.ns, N1.external, 40000)
        before = a.stat("XfrmInTmplMismatch") + a.stat("XfrmInNoPols") + a.stat("XfrmInPolBlock")
        s = udp(b.ns, N2.external)
        send(s, (N1.external, PORT))
        s.close()
        s = udp(b.ns, N2.external, PORT)
        send(s, (N1.external, 40000))
        s.close()
        assert drain(rx) == [] and drain(rx2) == [], "plaintext from an encrypted peer was delivered"
        after = a.stat("XfrmInTmplMismatch") + a.stat("XfrmInNoPols") + a.stat("XfrmInPolBlock")
        assert after - before >= 10
        rx.close()
        rx2.close()
    finally:
        lab.close(failed=False)


def _vxlan(site: "Site", peer: Node, ip: str) -> None:
    """The kernel's VXLAN device between the two external addresses (what
    the data path uses for encrypted targets), IPv6 off to keep it quiet."""
    sh("ip", "link", "add", "vx42", "type", "vxlan", "id", "42", "local", site.node.external, "remote",
       peer.external, "dstport", str(PORT), "dev", "ul0", ns=site.ns)
    sh("sysctl", "-qw", "net.ipv6.conf.vx42.disable_ipv6=1", ns=site.ns, check=False)
    sh("ip", "addr", "add", ip + "/24", "dev", "vx42", ns=site.ns)
    sh("ip", "link", "set", "vx42", "up", ns=site.ns)


def test_fallback_keeps_plaintext_vxlan_out_of_the_kernel_device(topo):
    """Inbound: plaintext VXLAN from an encrypted peer never reaches the
    kernel's VXLAN device (its UDP socket enforces the in policies)."""
    lab = Lab(topo, [N1, N2])
    try:
        a, b = lab["n1"], lab["n2"]
        a.fallback([N2])  # before the devices exist: nothing may slip in
        _vxlan(a, N2, "10.42.0.1")
        _vxlan(b, N1, "10.42.0.2")  # n2 has no policies: it sends plaintext
        before = a.stat("XfrmInTmplMismatch")
        r = sh("ping", "-c", "3", "-i", "0.2", "-W", "1", "10.42.0.1", ns=b.ns, check=False)
        assert r.returncode != 0
        assert int(sh("cat", "/sys/class/net/vx42/statistics/rx_packets", ns=a.ns).stdout) == 0
        assert a.stat("XfrmInTmplMismatch") > before
    finally:
        lab.close(failed=False)


def test_fallback_policies_are_ours_only(topo):
    ns = topo.ns("x")
    # a strongSwan-style policy (no mark, its priority) on the very same selector
    sh("ip", "xfrm", "policy", "add", "src", "198.18.0.1/32", "dst", "198.18.0.2/32", "proto", "udp",
       "dport", str(PORT), "dir", "out", "priority", "366912", "tmpl", "proto", "esp", "mode", "transport",
       ns=ns)
    assert xfrm.install_fallback("198.18.0.1", "198.18.0.2", [PORT, 8472], netns=ns) == 16
    assert xfrm.install_fallback("198.18.0.1", "198.18.0.2", [PORT, 8472], netns=ns) == 16  # idempotent
    assert len(xfrm.list_fallback(ns)) == 16
    xfrm.install_fallback("198.18.0.1", "198.18.0.3", [PORT], netns=ns)
    assert xfrm.install_fallback("198.18.0.1", "198.18.0.2", [PORT], netns=ns) == 8  # 8472 dropped
    ours = xfrm.list_fallback(ns)
    assert len(ours) == 16 and all(8472 not in (p.sel.sport, p.sel.dport) for p in ours)
    assert {p.mark for p in ours} == {(0, 1), (1, 1)} and {p.priority for p in ours} == {xfrm.FALLBACK_PRIORITY}
    assert xfrm.remove_fallback("198.18.0.1", "198.18.0.3", [], netns=ns) == 8  # [] = every port
    assert {p.sel.dst for p in xfrm.list_fallback(ns) if p.sel.direction == "out"} == {"198.18.0.2"}
    assert xfrm.remove_all(netns=ns) == 8
    left = xfrm.list_policies(ns)
    assert [(p.priority, p.mark) for p in left if p.proto == "udp"] == [(366912, (0, 0))], left


# -- with strongSwan (ESP) -------------------------------------------------------

@needs_esp
def test_sa_up_overlay_udp_crosses_as_esp_only(lab2):
    took = lab2.up()
    print("\nSA n1<->n2 up %.2f s after the first charon started" % took)
    a, b = lab2["n1"], lab2["n2"]
    cap_a, cap_b = Capture(a.ns), Capture(b.ns)
    try:
        rx_b, rx_a = udp(b.ns, N2.external, PORT), udp(a.ns, N1.external, PORT)
        rx_b_hi, rx_other = udp(b.ns, N2.external, 40000), udp(b.ns, N2.external, OTHER)
        s = udp(a.ns, N1.external)
        send(s, (N2.external, PORT), n=20)  # n1 -> n2:4789
        send(s, (N2.external, OTHER), n=3)  # not overlay: must stay plaintext
        s.close()
        s = udp(b.ns, N2.external)
        send(s, (N1.external, PORT), n=20)  # n2 -> n1:4789
        s.close()
        send(rx_a, (N2.external, 40000), n=5)  # from n1:4789 to a high port
        assert len(drain(rx_b)) == 20 and len(drain(rx_a)) == 20 and len(drain(rx_b_hi)) == 5
        assert len(drain(rx_other)) == 3
    finally:
        cap_a.stop()
        cap_b.stop()
    for cap in (cap_a, cap_b):
        assert not cap.plaintext(), "plaintext overlay UDP on the wire: %s" % cap.plaintext()[:3]
        assert len(cap.esp(N1.external)) >= 25 and len(cap.esp(N2.external)) >= 20
        assert len(cap.plaintext(OTHER)) == 3, "port 5555 must not be encrypted (selectors too wide?)"
    for r in (rx_a, rx_b, rx_b_hi, rx_other):
        r.close()


@needs_esp
def test_kernel_vxlan_over_the_sa(lab2):
    """The kernel's own VXLAN device (what the data path uses for encrypted
    targets) between the two external addresses: pings cross, ESP only."""
    lab2.up()
    _vxlan(lab2["n1"], N2, "10.42.0.1")
    _vxlan(lab2["n2"], N1, "10.42.0.2")
    cap = Capture(lab2["n1"].ns)
    try:
        r = sh("ping", "-c", "5", "-i", "0.2", "-W", "2", "10.42.0.2", ns=lab2["n1"].ns, check=False)
    finally:
        cap.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    assert not cap.plaintext() and len(cap.esp()) >= 10


def _both_ways(lab, n: int = 10) -> tuple[int, int]:
    """n packets each way to the overlay port; returns how many arrived each way."""
    a, b = lab["n1"], lab["n2"]
    rx_b, rx_a = udp(b.ns, N2.external, PORT), udp(a.ns, N1.external, PORT)
    try:
        sa, sb = udp(a.ns, N1.external), udp(b.ns, N2.external)
        send(sa, (N2.external, PORT), n)
        send(sb, (N1.external, PORT), n)
        sa.close()
        sb.close()
        return len(drain(rx_b)), len(drain(rx_a))
    finally:
        rx_a.close()
        rx_b.close()


@needs_esp
@pytest.mark.slow
def test_simultaneous_initiation_is_harmless_and_tidied(lab2):
    """Both ends load at the same instant and both initiate: traffic must
    flow both ways at once (no end may silently drop the IKE_SA the other
    uses), and tidy() on both ends leaves the same single IKE_SA."""
    a, b = lab2["n1"], lab2["n2"]
    dups, outcomes = [], []

    def split(site, peer):
        with site.ike() as i:
            kids = [{c["name"] for c in (sa.get("child-sas") or {}).values()}
                    for ev in i.list_sas() for sa in ev.values()]
        return len(kids) == 2 and all(len(k) == 1 for k in kids)

    for attempt in range(3):
        for s in (a, b):
            s.fallback([n for n in (N1, N2) if n.name != s.node.name])
            s.start()
        barrier = threading.Barrier(2)
        errors = []

        def go(site, peer):
            try:
                barrier.wait(5)
                site.apply([peer])
            except Exception as e:  # reported below
                errors.append(e)

        ts = [threading.Thread(target=go, args=(a, N2)), threading.Thread(target=go, args=(b, N1))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        assert not errors, errors
        lab2.wait_all_up(40)
        time.sleep(1.0)  # let any second IKE_SA finish too
        dups.append((len(a.ike_sas(N2)), len(b.ike_sas(N1))))
        assert _both_ways(lab2) == (10, 10), "black hole after simultaneous initiation: %s %s" % (
            a.ike_sas(N2), b.ike_sas(N1))
        for site in (a, b):
            with site.ike() as i:
                i.tidy(site.node.name)
        # tidy() keeps one complete IKE_SA; when the race put one CHILD_SA in
        # each IKE_SA it keeps both (ending either would lose a direction)
        wait_for(lambda: (len(a.ike_sas(N2)) == 1 and a.ike_sas(N2) == b.ike_sas(N1)) or split(a, N2), 15,
                 "one and the same IKE_SA on both ends")
        outcomes.append("split" if split(a, N2) else "one")
        assert _both_ways(lab2) == (10, 10)
        for s in (a, b):
            with netns.inside(s.ns):
                s.charon.stop()
    print("\nIKE_SAs per end after simultaneous loads (before tidy): %s; after tidy: %s" % (dups, outcomes))


def _stream(a: Site, b: Site, seconds: float, rate: int, during=None) -> tuple[int, set[int]]:
    """Numbered UDP packets n1 -> n2:4789 at rate per second; returns (sent, received)."""
    rx = udp(b.ns, N2.external, PORT)
    got: set[int] = set()
    done = threading.Event()

    def receive():
        while True:
            try:
                got.add(struct.unpack("!I", rx.recv(64)[:4])[0])
            except socket.timeout:
                if done.is_set():
                    return

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    tx = udp(a.ns, N1.external)
    n, t0 = 0, time.monotonic()
    nxt = t0
    try:
        while time.monotonic() - t0 < seconds:
            tx.sendto(struct.pack("!I", n) + b"x" * 60, (N2.external, PORT))
            n += 1
            if during:
                during(time.monotonic() - t0)
            nxt += 1.0 / rate
            time.sleep(max(0.0, nxt - time.monotonic()))
    finally:
        time.sleep(1.0)
        done.set()
        t.join(3)
        tx.close()
        rx.close()
    return n, got


@needs_esp
@pytest.mark.slow
@pytest.mark.parametrize("how", ["rekey_time", "vici_rekey"])
def test_rekey_under_a_stream_loses_nothing(lab2, how):
    a, b = lab2["n1"], lab2["n2"]
    rekey = 6 if how == "rekey_time" else 3600
    for s in (a, b):
        s.fallback([n for n in (N1, N2) if n.name != s.node.name])
        s.start()
    a.apply([N2], rekey_time=rekey)
    b.apply([N1], rekey_time=rekey)
    lab2.wait_all_up(40)
    before = a.children(N2)
    asked: list[float] = []

    def during(t: float) -> None:
        # vici rekey from alternating ends, every 3 s
        if how == "vici_rekey" and t > 2 + 3 * len(asked) and len(asked) < 4:
            site, peer = (a, "n2") if len(asked) % 2 == 0 else (b, "n1")
            with site.ike() as i:
                i.rekey(peer)
            asked.append(t)

    cap = Capture(a.ns)
    try:
        sent, got = _stream(a, b, seconds=16, rate=200, during=during)
    finally:
        cap.stop()
    lost = sorted(set(range(sent)) - got)
    spis = {f[5] for f in cap.esp(N1.external)}
    after = a.children(N2)
    print("\n%s: sent %d, lost %d, %d outbound SPIs on the wire, children %s -> %s"
          % (how, sent, len(lost), len(spis), before, after))
    assert not lost, "lost %d of %d packets during rekeying (first: %s)\n%s" % (
        len(lost), sent, lost[:10], a.log_tail(60))
    assert not cap.plaintext()
    assert len(spis) >= 2, "no rekey happened on the wire (one outbound SPI)"
    assert set(before.values()).isdisjoint(after.values()), "CHILD_SAs were not all replaced"
    wait_for(lambda: a.up_with(N2) and b.up_with(N1), 10, "SAs reported up after the rekeys")


def _no_plaintext_while(lab, site_down: Site, seconds: float = 2.0) -> tuple[list, int]:
    """Both sides send overlay UDP for a while; returns (plaintext frames
    seen on either wire, frames received by anyone)."""
    a, b = lab["n1"], lab["n2"]
    caps = [Capture(a.ns), Capture(b.ns)]
    rx = [udp(b.ns, N2.external, PORT), udp(a.ns, N1.external, PORT)]
    try:
        end = time.monotonic() + seconds
        sa, sb = udp(a.ns, N1.external), udp(b.ns, N2.external)
        while time.monotonic() < end:
            send(sa, (N2.external, PORT), n=2)
            send(sb, (N1.external, PORT), n=2)
            time.sleep(0.05)
        sa.close()
        sb.close()
        got = sum(len(drain(r, 0.3)) for r in rx)
    finally:
        frames = [c.stop() for c in caps]
        for r in rx:
            r.close()
    return [f for fr, c in zip(frames, caps) for f in c.plaintext()], got


@needs_esp
@pytest.mark.slow
@pytest.mark.parametrize("who", ["n1", "n2"])
def test_ike_stopped_fails_closed_and_comes_back(lab2, who):
    lab2.up()
    down, other = lab2[who], lab2["n2" if who == "n1" else "n1"]
    peer_of_down = N2 if who == "n1" else N1
    before = down.stat("XfrmOutNoStates")
    with netns.inside(down.ns):
        assert down.charon.stop()  # SIGTERM: charon removes its SAs and policies, tells the peer
    assert down.kernel_sa(peer_of_down) == (False, False)
    pols = xfrm.list_policies(down.ns)
    assert not [p for p in pols if p.proto == "udp" and not p.ours], "strongSwan left policies behind"
    plain, got = _no_plaintext_while(lab2, down)
    assert not plain, "plaintext overlay UDP while IKE was stopped on %s: %s" % (who, plain[:3])
    assert got == 0
    assert down.stat("XfrmOutNoStates") > before, "the fallback did not catch the packets"
    # back: charon and its configuration (what pyovl's repair does), nothing else
    t0 = time.monotonic()
    down.start()
    down.apply([peer_of_down])
    took = lab2.wait_all_up(20)
    print("\nIKE on %s stopped and restarted: SA back %.2f s after charon started" % (who, time.monotonic() - t0))
    assert time.monotonic() - t0 < 15 and took < 15
    with other.ike() as i:
        i.tidy(other.node.name)
    plain, got = _no_plaintext_while(lab2, down, 1.0)
    assert not plain and got > 0


@needs_esp
@pytest.mark.slow
def test_sa_closed_by_ike_fails_closed_and_traffic_brings_it_back(lab2):
    """An IKE-level delete (IKE still running): charon removes the SAs and
    its own policies, its trap policies and the fallback catch the traffic,
    and that traffic (an acquire) brings the SA back."""
    lab2.up()
    a = lab2["n1"]
    with a.ike() as i:
        list(i._call("terminate", "terminate", {"ike": "pyovl-n2", "timeout": "5000"}, stream=True))
    assert a.kernel_sa(N2) == (False, False)
    t0 = time.monotonic()
    plain, _ = _no_plaintext_while(lab2, a, 1.5)
    assert not plain, "plaintext overlay UDP after the SA was closed: %s" % plain[:3]
    lab2.wait_all_up(20)
    print("\nSA closed through IKE: back %.2f s after traffic resumed" % (time.monotonic() - t0))
    with a.ike() as i:
        i.tidy("n1")
    assert _both_ways(lab2) == (10, 10)


@needs_esp
@pytest.mark.slow
def test_sa_deleted_in_the_kernel_fails_closed(lab2):
    lab2.up()
    a = lab2["n1"]
    sh("ip", "xfrm", "state", "flush", ns=a.ns)  # SAs gone behind charon's back
    assert a.kernel_sa(N2) == (False, False)
    plain, _ = _no_plaintext_while(lab2, a, 1.5)
    assert not plain, "plaintext overlay UDP after the SAs were deleted: %s" % plain[:3]
    # charon still believes in them; a rekey makes new ones (the repair
    # pyovl/mesh/apply.py applies when IKE and the kernel disagree)
    t0 = time.monotonic()
    with a.ike() as i:
        i.rekey("n2")
    wait_for(lambda: _both_ways(lab2, 3) == (3, 3), 20, "traffic both ways after the rekey")
    print("\nSAs deleted in the kernel: traffic back %.2f s after a vici rekey" % (time.monotonic() - t0))


@needs_esp
@pytest.mark.slow
def test_charon_killed_leaves_esp_never_plaintext(lab2):
    lab2.up()
    a = lab2["n1"]
    a.charon.kill()  # SIGKILL: states and policies stay in the kernel
    plain, got = _no_plaintext_while(lab2, a, 1.5)
    assert not plain
    assert got > 0, "the kernel's SAs outlive charon: traffic should still flow as ESP"


@needs_esp
@pytest.mark.slow
def test_removing_a_peer_removes_exactly_its_pairs(lab3):
    took = lab3.up(timeout=60)
    print("\nthree nodes, six SAs up in %.2f s" % took)
    n1, n2, n3 = lab3["n1"], lab3["n2"], lab3["n3"]
    keep = n1.children(N2), n2.children(N1)
    # the operator drops n3 from the inventory: new key files, n1 and n2 apply
    r = keys.generate([N1, N2], os.path.join(lab3.work, "keys"))
    assert (r.pairs_dropped, r.pairs_added, r.files_removed) == (2, 0, 1)
    for site, peer in ((n1, N2), (n2, N1)):
        assert site.apply([peer]) == {"loaded": 1, "removed": 1, "keys_removed": 1}
        xfrm.remove_fallback(site.node.external, N3.external, netns=site.ns)
    with netns.inside(n3.ns):
        n3.charon.stop()
    for site, peer in ((n1, N2), (n2, N1)):
        with site.ike() as i:
            assert i.loaded() == (["pyovl-" + peer.name],
                                  ["pyovl-" + "+".join(sorted((site.node.name, peer.name)))])
        assert site.sa_state() == {peer.name: True}
        assert {p.sel.src for p in xfrm.list_fallback(site.ns)} == {site.node.external, peer.external}
        assert len(xfrm.list_fallback(site.ns)) == 8
        assert site.kernel_sa(N3) == (False, False)
        assert site.kernel_sa(peer) == (True, True)
        pols = [p for p in xfrm.list_policies(site.ns) if N3.external in (p.sel.src, p.sel.dst)]
        assert pols == [], "policies toward the removed node remain: %s" % pols
    assert (n1.children(N2), n2.children(N1)) == keep, "the n1-n2 SAs were disturbed"
