"""The IPsec mesh in the data path (bpf/lib/mesh.h) under BPF_PROG_RUN.

Test matrix:
  target marked ENCRYPT, no mesh device     SHOT PLAINTEXT_TX (fail closed)
  target marked ENCRYPT, mesh device        REDIRECT to the device, inner frame
                                            untouched, tunnel key set
  plain target routed out an external dev   SHOT PLAINTEXT_TX
  plaintext VXLAN from an encrypted peer    SHOT / XDP_DROP PLAINTEXT_RX, counted
                                            per overlay and per peer
  plaintext VXLAN on an external device     SHOT PLAINTEXT_RX
  the same frames with the mesh removed     delivered as before
ovl_mesh_rx needs the tunnel metadata of a real collect_md vxlan device: it
is exercised on live traffic in tests/mesh (NOT_MESH is listed in
test_decap's UNREACHABLE for that reason).
"""

from __future__ import annotations

import pytest
from env import MAC, REMOTE, TC_ACT_REDIRECT, TC_ACT_SHOT, XDP_DROP, XDP_REDIRECT
from frames import inner_tcp, vxlan4

from pyovl.dataplane import abi

pytestmark = [pytest.mark.bpf]

PEER_MAC = "02:00:00:00:0b:01"


@pytest.fixture
def mesh(bpfenv):
    """Leaves the mesh maps and REMOTE's target as the other tests expect."""
    yield bpfenv.dp
    bpfenv.dp.set_mesh([], {}, [])
    bpfenv.dp.set_target(100, REMOTE, "198.18.0.2", 4789)


def _drops(env, vni, reason):
    return env.drops(env.ov_id(vni))[reason.name]


def test_encrypted_target_without_mesh_device_is_never_sent(bpfenv, mesh):
    mesh.set_target(100, REMOTE, "198.18.0.2", 4789, encrypt=True)
    before = _drops(bpfenv, 100, abi.Drop.PLAINTEXT_TX)
    r = bpfenv.run("port", inner_tcp(MAC["vp1"], REMOTE), "vp1")
    assert r.verdict == TC_ACT_SHOT and r.trace.reason == abi.Drop.PLAINTEXT_TX
    assert _drops(bpfenv, 100, abi.Drop.PLAINTEXT_TX) == before + 1


def test_encrypted_target_goes_to_the_mesh_device(bpfenv, mesh):
    mesh.set_target(100, REMOTE, "198.18.0.2", 4789, encrypt=True)
    mesh.set_mesh(["198.18.0.2"], {4789: "ul1"}, [])  # any device stands in for the vxlan one here
    inner = inner_tcp(MAC["vp1"], REMOTE)
    r = bpfenv.run("port", inner, "vp1")
    assert r.verdict == TC_ACT_REDIRECT and r.trace.ifindex == bpfenv.ifindex["ul1"]
    assert r.out == inner, "the kernel's vxlan device adds the outer headers, not the program"
    # another port has no mesh device: refused, not sent in plaintext
    mesh.set_target(100, REMOTE, "198.18.0.2", 4790, encrypt=True)
    r = bpfenv.run("port", inner, "vp1")
    assert r.verdict == TC_ACT_SHOT and r.trace.reason == abi.Drop.PLAINTEXT_TX


def test_plain_target_never_leaves_through_an_external_device(bpfenv, mesh):
    inner = inner_tcp(MAC["vp1"], REMOTE)
    assert bpfenv.run("port", inner, "vp1").verdict == TC_ACT_REDIRECT
    mesh.set_mesh([], {}, ["ul0"])
    r = bpfenv.run("port", inner, "vp1")
    assert r.verdict == TC_ACT_SHOT and r.trace.reason == abi.Drop.PLAINTEXT_TX
    mesh.set_mesh([], {}, [])
    assert bpfenv.run("port", inner, "vp1").verdict == TC_ACT_REDIRECT


def test_plaintext_from_an_encrypted_peer_is_dropped_and_counted(bpfenv, mesh):
    inner = inner_tcp(PEER_MAC, MAC["vp1"])
    frame = vxlan4(inner, 100)  # from 198.18.0.2
    mesh.set_mesh(["198.18.0.2"], {}, [])
    before = _drops(bpfenv, 100, abi.Drop.PLAINTEXT_RX)
    r = bpfenv.run("underlay_tc", frame)
    assert r.verdict == TC_ACT_SHOT and r.trace.reason == abi.Drop.PLAINTEXT_RX
    r = bpfenv.run("underlay_xdp", frame)
    assert r.verdict == XDP_DROP and r.trace.reason == abi.Drop.PLAINTEXT_RX
    assert _drops(bpfenv, 100, abi.Drop.PLAINTEXT_RX) == before + 2
    assert mesh.mesh()["peers"] == {"198.18.0.2": 2}
    # another source is not affected, and a VNI nobody has is refused too
    assert bpfenv.run("underlay_tc", vxlan4(inner, 100, src="198.18.0.5")).verdict == TC_ACT_REDIRECT
    r = bpfenv.run("underlay_tc", vxlan4(inner, 4242))
    assert r.verdict == TC_ACT_SHOT and r.trace.reason == abi.Drop.PLAINTEXT_RX
    mesh.set_mesh([], {}, [])
    r = bpfenv.run("underlay_xdp", frame)
    assert r.verdict == XDP_REDIRECT and r.out == inner


def test_plaintext_on_an_external_device_is_dropped(bpfenv, mesh):
    inner = inner_tcp(PEER_MAC, MAC["vp1"])
    frame = vxlan4(inner, 100, src="198.18.0.5")
    mesh.set_mesh([], {}, ["ul0"])
    r = bpfenv.run("underlay_tc", frame, ingress="ul0")
    assert r.verdict == TC_ACT_SHOT and r.trace.reason == abi.Drop.PLAINTEXT_RX
    # arriving on another device it is delivered
    r = bpfenv.run("underlay_tc", frame, ingress="ul1")
    assert r.verdict == TC_ACT_REDIRECT and r.out == inner
