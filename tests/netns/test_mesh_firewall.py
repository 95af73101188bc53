"""The mesh firewall's nftables table in a real kernel, between namespaces.

Topology (two namespaces made by the test, the firewall in fwa only):

   [  fwa  ] ul0 198.18.0.1 ===veth=== 198.18.0.2 ul0 [  fwb  ]
   table inet pyovl_<fwa>                  (198.18.0.3 too: not in the mesh)
   overlay port 4789, mesh = {198.18.0.2}

Matrix:
  plaintext overlay UDP  fwb -> fwa:4789  dropped, plaintext_in counts
                         fwa -> fwb:4789  dropped, plaintext_out counts
  other UDP ports        both ways        delivered, nothing counted
  IKE (500)              to/from the mesh delivered, mesh_in/out count;
                         from 198.18.0.3  delivered, not counted
  apply twice            same listing, counters kept; new ports replace
  failed apply           previous table untouched (one nft transaction)
  remove                 nothing left; again is fine; counters -> StateError

There is no ESP on a host kernel without CONFIG_INET_ESP, so only the
"ipsec missing" side runs here; tests/mesh/test_mesh_firewall_uml.py covers
encrypted traffic passing where the kernel has ESP.
"""

from __future__ import annotations

import time

import pytest

from pyovl import netns
from pyovl.errors import KernelError, StateError
from pyovl.mesh import firewall
from pyovl.tools.topo import sh
from udp import drain, receiver, send

pytestmark = [pytest.mark.netns, pytest.mark.root]

A_IP, B_IP, B_OTHER = "198.18.0.1", "198.18.0.2", "198.18.0.3"
PORT, OTHER_PORT = 4789, 5555


@pytest.fixture
def pair(topo):
    """(fwa, fwb): namespaces on a veth underlay; fwa's table not applied yet."""
    a, b = topo.ns("fwa"), topo.ns("fwb")
    with netns.inside(a):
        reason = firewall.available()
    if reason:
        pytest.skip(reason)
    topo.underlay(a, b, A_IP, B_IP)
    sh("ip", "addr", "add", B_OTHER + "/24", "dev", "ul0", ns=b)
    return a, b


def apply(ns, ports=(PORT,), peers=(B_IP,)):
    with netns.inside(ns):
        firewall.apply(ns, "ul0", list(ports), list(peers))


def counters(ns):
    with netns.inside(ns):
        drops = firewall.counters(ns)
        every = firewall.all_counters(ns)
    assert drops == {k: every[k] for k in ("plaintext_in", "plaintext_out")}
    return every


def listing(ns):
    return sh("nft", "list", "table", "inet", firewall.table_name(ns), ns=ns).stdout


def test_plaintext_dropped_and_counted_both_ways(pair):
    a, b = pair
    apply(a)
    assert "meta ipsec missing" in listing(a) and "rt ipsec missing" in listing(a)
    with receiver(a, PORT) as ra, receiver(a, OTHER_PORT) as ra2, \
            receiver(b, PORT) as rb, receiver(b, OTHER_PORT) as rb2:
        assert send(b, A_IP, PORT) == 0 and send(b, A_IP, OTHER_PORT) == 0
        assert drain(ra2) == 3, "UDP to another port must pass in"
        assert drain(ra, 0.5) == 0, "plaintext overlay UDP reached fwa"
        assert send(a, B_IP, PORT) == 3, "the sender should see EPERM from the drop"
        assert send(a, B_IP, OTHER_PORT) == 0
        assert drain(rb2) == 3, "UDP to another port must pass out"
        assert drain(rb, 0.5) == 0, "plaintext overlay UDP left fwa"
    assert counters(a) == {"plaintext_in": 3, "plaintext_out": 3, "mesh_in": 0, "mesh_out": 0}


def test_mesh_ike_counted(pair):
    a, b = pair
    apply(a)
    with receiver(a, 500) as ra, receiver(b, 500) as rb:
        send(b, A_IP, 500, n=2, src=(B_IP, 500))
        assert drain(ra) == 2
        send(a, B_IP, 500, n=2, src=(A_IP, 500))
        assert drain(rb) == 2
        send(b, A_IP, 500, n=2, src=(B_OTHER, 500))  # not a mesh node: passes, not counted
        assert drain(ra) == 2
    assert counters(a) == {"plaintext_in": 0, "plaintext_out": 0, "mesh_in": 2, "mesh_out": 2}


def test_reapply_is_idempotent_and_keeps_counters(pair):
    a, b = pair
    apply(a)
    send(b, A_IP, PORT, n=2)
    time.sleep(0.3)
    before = listing(a)
    assert "packets 2 " in before
    apply(a)
    assert listing(a) == before
    apply(a, ports=(PORT, 8472))
    after = listing(a)
    assert "elements = { 4789, 8472 }" in after and "packets 2 " in after
    tables = sh("nft", "list", "tables", ns=a).stdout.split("\n")
    assert [t for t in tables if t.strip()] == ["table inet %s" % firewall.table_name(a)]


# Chains that jump to each other from a base chain: nft's parser takes them,
# the kernel refuses them when it validates the transaction (ELOOP/EMLINK),
# after the script's "delete table" has been queued.
LOOP = """\tchain loop_a {\n\t\tjump loop_b\n\t}
\tchain loop_b {\n\t\tjump loop_a\n\t}
\tchain loop_base {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tudp dport 9 jump loop_a\n\t}
}
"""


def test_failed_apply_leaves_the_previous_table(pair, monkeypatch):
    a, _ = pair
    apply(a)
    before = listing(a)
    real = firewall.render

    def broken(*args, **kw):
        body = real(*args, **kw).rstrip()
        assert body.endswith("}")
        return body[:-1] + LOOP

    monkeypatch.setattr(firewall, "render", broken)
    with pytest.raises(KernelError, match="cannot apply the mesh firewall"):
        apply(a, ports=(PORT, 8472))
    assert listing(a) == before


def test_remove_leaves_nothing(pair):
    a, _ = pair
    apply(a)
    with netns.inside(a):
        firewall.remove(a)
        assert sh("nft", "list", "ruleset").stdout.strip() == ""
        firewall.remove(a)  # absent: no error
        with pytest.raises(StateError, match="run pyovl up"):
            firewall.counters(a)
