"""The mesh firewall with real ESP: encrypted overlay traffic passes, the
plaintext is dropped and counted. Needs a kernel with ESP (scripts/uml-run
-- .venv/bin/python -m pytest tests/mesh/test_mesh_firewall_uml.py).

Topology (namespaces made by the test; static transport-mode ESP SAs, no
IKE, for UDP to port 4789 between 198.18.0.1 and 198.18.0.2):

   [  fwa  ] ul0 198.18.0.1 ==ESP== 198.18.0.2 ul0 [  fwb  ]
             ul0 198.18.0.3 (no SA: what it sends is plaintext)
   the firewall in both, mesh = the other's 198.18.0.x

Backends (parametrized):
  nft        pyovl.mesh.firewall itself. Needs ESP and nf_tables inet: a
             stock distribution kernel has both; Debian's user-mode-linux
             has no nf_tables inet family, the host kernel here no ESP, so
             this one runs on neither and skips with the reason.
  xt_policy  iptables-legacy rules in the same hooks with -m policy
             --pol none, which reads the same two facts the table's "meta
             ipsec missing" / "rt ipsec missing" read (the skb's secpath,
             the route's xfrm). Not the table, but the kernel behaviour its
             hook choice rests on: decrypted transport ESP re-enters
             PREROUTING with a secpath on the external device; the
             plaintext passes POSTROUTING with its xfrm route, on the
             external device, before it becomes ESP. Runs in UML
             (needs iptables-legacy: apt-get install iptables).

Matrix (each backend):
  fwa 198.18.0.1 -> fwb:4789   ESP on the wire, delivered decrypted; no drops
  fwa 198.18.0.3 -> fwb:4789   dropped on the way out (sender sees EPERM)
  raw frames into fwb:4789     plaintext from .3 and from .1 (a mesh node's
                               address): dropped and counted in fwb
  port 5555 both ways          delivered
"""

from __future__ import annotations

import functools
import json
import socket
import struct
import subprocess
import uuid

import pytest

from pyovl import netns
from pyovl.mesh import firewall
from pyovl.tools.topo import sh
from udp import drain, receiver, send

pytestmark = [pytest.mark.netns, pytest.mark.root]

A_IP, B_IP, A_OTHER = "198.18.0.1", "198.18.0.2", "198.18.0.3"
PORT, OTHER_PORT = 4789, 5555
ENC = ("enc", "cbc(aes)", "0x" + "11" * 16, "auth", "hmac(sha256)", "0x" + "22" * 32)
SPI = {(A_IP, B_IP): "0x1001", (B_IP, A_IP): "0x1002"}


@functools.lru_cache(maxsize=None)
def esp_missing() -> str | None:
    """None when this kernel takes an ESP state (in a scratch namespace)."""
    ns = "pyovl-esp-%s" % uuid.uuid4().hex[:8]
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
        p = subprocess.run(["ip", "netns", "exec", ns, "ip", "xfrm", "state", "add", "src", A_IP, "dst", B_IP,
                            "proto", "esp", "spi", "0x100", "mode", "transport", *ENC],
                           capture_output=True, text=True)
        if p.returncode:
            return ("this kernel has no ESP (CONFIG_INET_ESP, cbc(aes), hmac(sha256)): %s; run it under "
                    "scripts/uml-run" % (p.stderr.strip() or "ip xfrm state add failed"))
        return None
    except (OSError, subprocess.CalledProcessError) as e:
        return "cannot probe for ESP: %s" % e
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# --- backends ------------------------------------------------------------------

class Nft:
    """pyovl.mesh.firewall."""

    def missing(self) -> str | None:
        return firewall.available()

    def install(self, ns: str, peer: str) -> None:
        with netns.inside(ns):
            firewall.apply(ns, "ul0", [PORT], [peer])

    def counts(self, ns: str) -> dict[str, int]:
        with netns.inside(ns):
            return firewall.all_counters(ns)


class XtPolicy:
    """The same matches in iptables-legacy's mangle table."""

    IPT = "iptables-legacy"

    def missing(self) -> str | None:
        try:
            subprocess.run([self.IPT, "--version"], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError):
            return "iptables-legacy is not installed (apt-get install iptables)"
        return None

    def install(self, ns: str, peer: str) -> None:
        def ipt(*args):
            p = sh(self.IPT, "-w", "-t", "mangle", *args, ns=ns, check=False)
            if p.returncode:
                pytest.skip("iptables-legacy cannot set up the mirror rules: %s" % p.stderr.strip())

        for chain, verdict in (("plaintext_in", "DROP"), ("plaintext_out", "DROP"),
                               ("mesh_in", "ACCEPT"), ("mesh_out", "ACCEPT")):
            ipt("-N", chain)
            ipt("-A", chain, "-j", verdict)
        ipt("-A", "PREROUTING", "-i", "ul0", "-s", peer, "-p", "esp", "-j", "mesh_in")
        ipt("-A", "PREROUTING", "-i", "ul0", "-p", "udp", "--dport", str(PORT),
            "-m", "policy", "--dir", "in", "--pol", "none", "-j", "plaintext_in")
        ipt("-A", "POSTROUTING", "-o", "ul0", "-d", peer, "-p", "esp", "-j", "mesh_out")
        ipt("-A", "POSTROUTING", "-o", "ul0", "-p", "udp", "--dport", str(PORT),
            "-m", "policy", "--dir", "out", "--pol", "none", "-j", "plaintext_out")

    def counts(self, ns: str) -> dict[str, int]:
        out = {}
        for chain in ("PREROUTING", "POSTROUTING"):
            text = sh(self.IPT, "-w", "-t", "mangle", "-L", chain, "-v", "-x", "-n", ns=ns).stdout
            for line in text.splitlines()[2:]:
                f = line.split()
                if len(f) > 2 and f[2] in ("plaintext_in", "plaintext_out", "mesh_in", "mesh_out"):
                    out[f[2]] = out.get(f[2], 0) + int(f[0])
        return out


BACKENDS = {"nft": Nft(), "xt_policy": XtPolicy()}


# --- topology ------------------------------------------------------------------

def _xfrm(ns: str, me: str, peer: str) -> None:
    for src, dst in ((me, peer), (peer, me)):
        sh("ip", "xfrm", "state", "add", "src", src, "dst", dst, "proto", "esp", "spi", SPI[(src, dst)],
           "reqid", SPI[(src, dst)], "mode", "transport", *ENC, ns=ns)
        sh("ip", "xfrm", "policy", "add", "src", src + "/32", "dst", dst + "/32", "proto", "udp",
           "dport", str(PORT), "dir", "out" if src == me else "in",
           "tmpl", "src", src, "dst", dst, "proto", "esp", "reqid", SPI[(src, dst)], "mode", "transport",
           ns=ns)


@pytest.fixture(params=sorted(BACKENDS))
def mesh(request, topo):
    if esp_missing():
        pytest.skip(esp_missing())
    backend = BACKENDS[request.param]
    a, b = topo.ns("fwa"), topo.ns("fwb")
    with netns.inside(a):
        reason = backend.missing()
    if reason:
        pytest.skip(reason)
    topo.underlay(a, b, A_IP, B_IP)
    sh("ip", "addr", "add", A_OTHER + "/24", "dev", "ul0", ns=a)
    _xfrm(a, A_IP, B_IP)
    _xfrm(b, B_IP, A_IP)
    backend.install(a, B_IP)
    backend.install(b, A_IP)
    return backend, a, b


# --- traffic -------------------------------------------------------------------

def _mac(ns, dev):
    return json.loads(sh("ip", "-j", "link", "show", dev, ns=ns).stdout)[0]["address"]


def _csum(data: bytes) -> int:
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def inject(a, b, src, dst, dport, n=2):
    """Plaintext UDP frames written onto fwa's ul0 with a packet socket:
    they leave without passing fwa's netfilter (or xfrm), as a forger's
    would."""
    payload = b"forged"
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload  # IPv4: checksum 0 is allowed
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    eth = bytes.fromhex(_mac(b, "ul0").replace(":", "")) + bytes.fromhex(_mac(a, "ul0").replace(":", "")) \
        + b"\x08\x00"
    with netns.inside(a):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    with s:
        s.bind(("ul0", 0))
        for _ in range(n):
            s.send(eth + ip + udp)


def test_encrypted_passes_plaintext_dropped_and_counted(mesh):
    backend, a, b = mesh
    with receiver(b, PORT) as rb, receiver(b, OTHER_PORT) as rb2, receiver(a, OTHER_PORT) as ra2:
        # Encrypted: out of fwa as ESP, into fwb decrypted.
        assert send(a, B_IP, PORT, src=(A_IP, 0)) == 0
        assert drain(rb, 2.0) == 3, "ESP-protected overlay traffic did not arrive"
        ca, cb = backend.counts(a), backend.counts(b)
        assert (ca["plaintext_out"], cb["plaintext_in"]) == (0, 0), (ca, cb)
        assert ca["mesh_out"] >= 3 and cb["mesh_in"] >= 3, "it did not travel as ESP: %s %s" % (ca, cb)

        # Plaintext out (no SA for 198.18.0.3): refused in fwa.
        assert send(a, B_IP, PORT, src=(A_OTHER, 0)) == 3
        assert drain(rb, 1.0) == 0
        assert backend.counts(a)["plaintext_out"] == 3

        # Plaintext in, forged past fwa's own rules: dropped in fwb.
        inject(a, b, A_OTHER, B_IP, PORT)
        inject(a, b, A_IP, B_IP, PORT)
        assert drain(rb, 1.0) == 0
        assert backend.counts(b)["plaintext_in"] == 4

        # Other ports are not the firewall's business.
        assert send(a, B_IP, OTHER_PORT, src=(A_OTHER, 0)) == 0
        assert drain(rb2, 2.0) == 3
        assert send(b, A_IP, OTHER_PORT, src=(B_IP, 0)) == 0
        assert drain(ra2, 2.0) == 3
    assert backend.counts(a)["plaintext_in"] == 0 and backend.counts(b)["plaintext_out"] == 0
