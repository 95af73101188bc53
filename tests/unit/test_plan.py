"""The planner, table-driven: (facts, applied declaration, wanted) -> plan.

No kernel: facts are built by hand as the kernel would report them. Matrix:

  case                         | expected plan (lines, in execution order)
  -----------------------------+-------------------------------------------
  no-op                        | nothing
  first up                     | + programs, + underlay, + overlay, + VNIC
  mtu lowered                  | ~ overlay (mtu), ~ VNIC (mtu)
  each replace rule            | -/+ VNIC (remove) .. -/+ overlay .. -/+ VNIC
  removal                      | - VNIC, - overlay, - underlay (that order)
  drift: host end deleted      | -/+ VNIC (host end missing)
  drift: overlay entry deleted | + overlay (missing from the data path)
  drift: program detached      | + underlay / ~ VNIC (port)
  hook tc -> xdp               | ~ underlay (tc -> xdp)
  mesh added / removed         | mesh before overlays / after them
  down                         | - VNIC, - programs (teardown)
"""

from __future__ import annotations

import dataclasses

import pytest

from pyovl.config.specs import build_overlay, build_vnic
from pyovl.engine import plan as P
from pyovl.engine.declare import Declaration, OverlayDecl, VnicDecl
from pyovl.engine.facts import Facts, OverlayFact, PortFact, host_end_name
from pyovl.engine.intent import desire
from pyovl.mesh import parse_mesh

LIP = "198.18.0.1"


def overlay(name="ov0", vni=23, search="direct", mtu=1400, dest="198.18.0.2", **props):
    p = {"vxlan/listen_ip": LIP, "mtu": mtu}
    if search == "direct":
        p.update({"direct/dest_ip": dest, "direct/dest_port": 4789})
    else:
        p["files/config"] = "/etc/pyovl/x.json"
    p.update(props)
    return OverlayDecl(build_overlay(name, "vxlan", search, vni, p), "file")


def vnic(name="g1", over="ov0", mac="02:08:20:00:00:01", netns="ns1", vlan=0, addresses=("10.0.0.1/24",)):
    return VnicDecl(build_vnic(name, over, mac, vlan, None, netns, list(addresses)), mac, "file")


def decl(*objs, **kw) -> Declaration:
    return Declaration(overlays={o.spec.name: o for o in objs if isinstance(o, OverlayDecl)},
                       vnics={o.spec.name: o for o in objs if isinstance(o, VnicDecl)}, **kw)


def empty_facts() -> Facts:
    links = {"lo": {"ifindex": 1, "kind": None, "mtu": 65536, "xdp_prog": 0},
             "ul0": {"ifindex": 2, "kind": "veth", "mtu": 1500, "xdp_prog": 0}}
    return Facts(links=links, addresses=[("127.0.0.1", 2, 254, 1), (LIP, 2, 0, 2)],
                 namespaces=frozenset(), _tc={"ul0": None})


def applied(d: Declaration) -> Facts:
    """The facts of a host on which d was applied (decap by tc on ul0)."""
    f = empty_facts()
    want = desire(d, d, f)
    f.loaded = bool(d.overlays)
    if d.overlays:
        f._tc["ul0"] = "ovl_underlay_tc"
        f.attached = {"ul0": "tc"}
    for n, w in want.overlays.items():
        pt, lip, lport, mtu, dest = w.kernel()
        f.overlays[w.vni] = OverlayFact(1, pt, lip, lport, mtu, dest)
    for i, (n, w) in enumerate(sorted(want.vnics.items()), start=10):
        f.links[w.host] = {"ifindex": i, "kind": "veth", "mtu": 1500, "xdp_prog": 0}
        f._tc[w.host] = "ovl_port"
        f.ports[i] = PortFact(w.vni, w.decl.mac, w.spec.vlan)
    return f


def lines(facts: Facts, before: Declaration, after: Declaration, mesh_rec=None, **kw) -> list[str]:
    return [a.line() for a in P.plan(facts, before, mesh_rec, desire(after, before, facts), **kw)]


BASE = decl(overlay(), vnic())

CASES = [
    ("no-op", applied(BASE), BASE, BASE, []),
    ("first up", empty_facts(), decl(), BASE,
     ["+ programs data path", "+ underlay ul0 (tc)", "+ overlay ov0 (vnetid 23)", "+ VNIC g1 (on ov0)"]),
    ("mtu lowered", applied(BASE), BASE, decl(overlay(mtu=1300), vnic()),
     ["~ overlay ov0 (mtu 1400 -> 1300)", "~ VNIC g1 (mtu 1400 -> 1300)"]),
    ("point destination moved", applied(BASE), BASE, decl(overlay(dest="198.18.0.3"), vnic()),
     ["~ overlay ov0 (destination 198.18.0.2:4789 -> 198.18.0.3:4789)"]),
    ("address added and removed", applied(BASE), BASE, decl(overlay(), vnic(addresses=("10.0.0.2/24",))),
     ["~ VNIC g1 (+10.0.0.2/24, -10.0.0.1/24)"]),
    ("replace: vnetid", applied(BASE), BASE, decl(overlay(vni=24), vnic()),
     ["-/+ VNIC g1", "-/+ overlay ov0", "-/+ overlay ov0 (vnetid 23 -> 24)", "-/+ VNIC g1 (overlay ov0 is replaced)"]),
    ("replace: search", applied(BASE), BASE, decl(overlay(search="files"), vnic()),
     ["-/+ VNIC g1", "-/+ overlay ov0", "-/+ overlay ov0 (search direct -> files)",
      "-/+ VNIC g1 (overlay ov0 is replaced)"]),
    ("replace: VNIC netns", applied(BASE), BASE, decl(overlay(), vnic(netns="ns2")),
     ["-/+ VNIC g1", "-/+ VNIC g1 (netns ns1 -> ns2)"]),
    ("replace: VNIC vlan", applied(BASE), BASE, decl(overlay(), vnic(vlan=10)),
     ["-/+ VNIC g1", "-/+ VNIC g1 (vlan 0 -> 10)"]),
    ("replace: VNIC MAC", applied(BASE), BASE, decl(overlay(), vnic(mac="02:08:20:00:00:02")),
     ["-/+ VNIC g1", "-/+ VNIC g1 (mac 02:08:20:00:00:01 -> 02:08:20:00:00:02)"]),
    ("replace: VNIC moves overlay", applied(decl(overlay(), overlay("ov1", 24), vnic())),
     decl(overlay(), overlay("ov1", 24), vnic()), decl(overlay(), overlay("ov1", 24), vnic(over="ov1")),
     ["-/+ VNIC g1", "-/+ VNIC g1 (over ov0 -> ov1)"]),
    ("removal: dependents first", applied(BASE), BASE, decl(),
     ["- VNIC g1", "- overlay ov0", "- underlay ul0"]),
    ("down", applied(BASE), BASE, decl(), ["- VNIC g1", "- programs data path (programs, maps and pins)"]),
]


@pytest.mark.parametrize("desc,facts,before,after,expected", CASES, ids=[c[0] for c in CASES])
def test_plan(desc, facts, before, after, expected):
    got = lines(facts, before, after, teardown=(desc == "down"))
    assert got == expected


def test_drift_host_end_deleted():
    f = applied(BASE)
    del f.links[host_end_name("g1")]
    assert lines(f, BASE, BASE) == ["-/+ VNIC g1", "-/+ VNIC g1 (host end %s missing)" % host_end_name("g1")]


def test_drift_overlay_entry_deleted():
    f = applied(BASE)
    f.overlays.clear()
    assert lines(f, BASE, BASE) == ["+ overlay ov0 (missing from the data path)"]


def test_drift_programs_detached():
    f = applied(BASE)
    f._tc = {k: None for k in f._tc}
    assert lines(f, BASE, BASE) == ["+ underlay ul0 (tc)", "~ VNIC g1 (port not in the data path)"]


def test_drift_pins_gone():
    f = applied(BASE)
    f.loaded, f.overlays, f.ports = False, {}, {}
    assert lines(f, BASE, BASE)[0] == "+ programs data path"


def test_hook_change_tc_to_xdp():
    after = dataclasses.replace(BASE, hook="xdp")
    assert lines(applied(BASE), BASE, after) == ["~ underlay ul0 (tc -> xdp)"]


MESH = {"self": "n1", "keys": "/etc/pyovl/keys/n1.json", "nodes": {"n1": {"pdc": "dc1", "admin": LIP, "external": "198.19.0.1"},
                                "n2": {"pdc": "dc1", "admin": "198.18.0.2", "external": "198.19.0.2"},
                                "n3": {"pdc": "dc2", "admin": "198.18.0.3", "external": "198.19.0.3"}}}


def _mesh_plan(facts, before, after, rec):
    """Like lines(), with the wanted mesh filled in as intent would (its key
    file and devices are checked by intent against a real host)."""
    want = desire(dataclasses.replace(after, mesh=None), before, facts)
    want.decl, want.mesh = after, after.mesh
    if after.mesh is not None:
        want.mesh_ports, want.mesh_device = (4789,), "ul0"
        for n, w in want.overlays.items():
            if w.point:
                r = after.mesh.resolve(w.spec.props["direct/dest_ip"])
                want.overlays[n] = dataclasses.replace(w, point=(r.ip, w.point[1], r.encrypt))
    return [a.line() for a in P.plan(facts, before, rec, want)]


def test_mesh_applied_before_overlays_point_at_encrypted_peers():
    mesh = parse_mesh(MESH)
    after = dataclasses.replace(decl(overlay(dest="198.18.0.3"), vnic()), mesh=mesh)
    before = decl(overlay(dest="198.18.0.3"), vnic())
    got = _mesh_plan(applied(before), before, after, None)
    assert got == ["+ mesh node n1 (1 encrypted peers)",
                   "~ overlay ov0 (destination 198.18.0.3:4789 -> 198.19.0.3:4789 (IPsec))"]


def test_mesh_removed_after_overlays_stop_pointing_at_it():
    mesh = parse_mesh(MESH)
    before = dataclasses.replace(decl(overlay(dest="198.18.0.3"), vnic()), mesh=mesh)
    f = applied(decl(overlay(dest="198.18.0.3"), vnic()))
    f.overlays[23] = dataclasses.replace(f.overlays[23], dest=("198.19.0.3", 4789, True))
    rec = {"spec": mesh.to_json(), "ports": [4789], "external_device": "ul0", "devices": []}
    got = _mesh_plan(f, before, decl(overlay(dest="198.18.0.3"), vnic()), rec)
    assert got == ["~ overlay ov0 (destination 198.19.0.3:4789 -> 198.18.0.3:4789)", "- mesh node n1"]


def test_mesh_unchanged_is_a_no_op():
    mesh = parse_mesh(MESH)
    d = dataclasses.replace(BASE, mesh=mesh)
    rec = {"spec": mesh.to_json(), "ports": [4789], "external_device": "ul0", "devices": []}
    assert _mesh_plan(applied(BASE), d, d, rec) == []


def test_every_action_has_a_phase_and_a_symbol():
    for cls in (P.LoadPrograms, P.RemoveVnic, P.RemoveOverlay, P.AttachUnderlay, P.ApplyMesh, P.PutOverlay,
                P.CreateVnic, P.ChangeVnic, P.DetachUnderlay, P.RemoveMesh, P.Teardown):
        a = cls("x")
        assert isinstance(a.phase, int) and a.symbol in ("+", "~", "-", "-/+")
        assert a.to_json()["name"] == "x"


def test_json_names_what_the_line_shows():
    assert P.PutOverlay("ov0", create=False).to_json()["action"] == "change"
    assert P.PutOverlay("ov0").to_json()["action"] == "create"
    assert P.AttachUnderlay("ul0", hook="xdp", previous="tc").to_json()["action"] == "change"
    assert P.RemoveVnic("g1", replace=True).to_json()["action"] == "replace"
    assert P.RemoveOverlay("ov0").to_json()["action"] == "remove"
