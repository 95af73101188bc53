"""The mesh inventory (pyovl/mesh/__init__.py): validation and resolution.

Matrix: a valid inventory resolves same-PDC nodes to their admin address
in plaintext, other-PDC nodes to their external address encrypted, non-nodes
and self unchanged; the section round-trips through the runtime state; every
malformed section is one located error; overlay.json accepts it.
"""

from __future__ import annotations

import json

import pytest

from pyovl.config import load
from pyovl.errors import UsageError
from pyovl.mesh import from_json, parse_mesh

NODES = {"n1": {"pdc": "dc1", "admin": "198.18.1.1", "external": "198.19.0.1"},
         "n2": {"pdc": "dc1", "admin": "198.18.1.2", "external": "198.19.0.2"},
         "n3": {"pdc": "dc2", "admin": "198.18.2.3", "external": "198.19.0.3"}}


def mesh(**over):
    d = {"self": "n1", "keys": "/etc/pyovl/keys/n1.json", "nodes": json.loads(json.dumps(NODES))}
    d.update(over)
    return d


def test_resolution_by_pdc():
    m = parse_mesh(mesh())
    assert [p.name for p in m.encrypted_peers()] == ["n3"]
    for ip in ("198.18.2.3", "198.19.0.3"):  # any address of the node
        r = m.resolve(ip)
        assert (r.ip, r.encrypt, r.node.name) == ("198.19.0.3", True, "n3")
    for ip in ("198.18.1.2", "198.19.0.2"):
        assert (m.resolve(ip).ip, m.resolve(ip).encrypt) == ("198.18.1.2", False)
    assert (m.resolve("10.9.9.9").ip, m.resolve("10.9.9.9").encrypt) == ("10.9.9.9", False)
    assert m.resolve("198.19.0.1").encrypt is False  # self
    m3 = parse_mesh(mesh(self="n3"))
    assert [p.name for p in m3.encrypted_peers()] == ["n1", "n2"]
    assert m3.resolve("198.18.1.1").ip == "198.19.0.1"


def test_round_trip_and_defaults():
    m = parse_mesh(mesh(ike={"rekey_time": "30m", "repair_after": 5}))
    assert (m.rekey_time, m.repair_after, m.vici) == (1800, 5.0, None)
    assert from_json(m.to_json()) == m
    assert m.max_mtu(1500) == 1410


BAD = [
    ({"self": "n9"}, "mesh.self"),
    ({"nodes": {}}, "mesh.nodes"),
    ({"nodes": {"N1": NODES["n1"]}, "self": "N1"}, "lowercase"),
    ({"nodes": {**NODES, "n4": {"pdc": "dc3", "admin": "198.18.1.1", "external": "198.19.0.4"}}},
     "also node n1's"),
    ({"nodes": {**NODES, "n4": {"pdc": "dc3", "admin": "198.18.3.4"}}}, "missing key 'external'"),
    ({"nodes": {**NODES, "n4": {"pdc": "dc3", "admin": "x", "external": "198.19.0.4"}}}, "invalid address"),
    ({"nodes": {**NODES, "n4": {"pdc": "dc3", "admin": "198.18.3.4", "external": "fd00::4"}}}, "IPv6"),
    ({"keys": None}, "mesh.keys"),
    ({"keys": "relative/path"}, "absolute path"),
    ({"ike": {"vici": "/var/run/charon.vici"}}, "vici URI"),
    ({"ike": {"rekey_time": "1d"}}, "invalid duration"),
    ({"bogus": 1}, "unknown key 'bogus'"),
]


@pytest.mark.parametrize("over,msg", BAD, ids=[b[1] for b in BAD])
def test_bad_inventory_is_one_located_line(over, msg):
    with pytest.raises(UsageError) as e:
        parse_mesh(mesh(**over))
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_keys_are_optional_without_other_pdcs():
    nodes = {k: v for k, v in NODES.items() if v["pdc"] == "dc1"}
    m = parse_mesh({"self": "n1", "nodes": nodes})
    assert m.encrypted_peers() == [] and m.keys is None


def test_overlay_json_takes_a_mesh_section_or_a_file(tmp_path):
    cfg = load.parse_config({"mesh": mesh()})
    assert cfg.mesh.self_name == "n1"
    f = tmp_path / "mesh.json"
    f.write_text(json.dumps(mesh(self="n2")))
    assert load.parse_config({"mesh": str(f)}).mesh.self_name == "n2"
    with pytest.raises(UsageError, match="mesh: .*No such file"):
        load.parse_config({"mesh": str(tmp_path / "nope.json")})
