"""overlay.json validation: the issue's example, rules, and located errors."""

from __future__ import annotations

import json

import pytest

from pyovl.config import load
from pyovl.errors import UsageError

EXAMPLE = {
    "overlays": {
        "demo0": {"encap": "vxlan", "search": "direct", "vnetid": 23,
                  "props": {"mtu": 1400, "vxlan/listen_ip": "198.18.0.1", "vxlan/listen_port": 4789,
                            "direct/dest_ip": "198.18.0.2", "direct/dest_port": 4789}},
        "adminoverlay2": {"rule": "adminoverlay", "vnetid": 2},
    },
    "rules": {"adminoverlay": "-e vxlan -p vxlan/listen_ip=0.0.0.0 -p vxlan/listen_port=4793 -s files "
                              "-p files/config=/etc/pyovl/adminoverlay.json -p mtu=1300"},
    "vnics": {"foo0": {"over": "demo0", "mac": "02:00:00:00:00:0a", "vlan": 0, "mtu": 1400,
                       "netns": "guest1", "addresses": ["10.23.0.1/24"]}},
    "daemon": {"metrics": "127.0.0.1:9134"},
}


def test_issue_example_parses():
    c = load.parse_config(EXAMPLE)
    a = c.overlays["adminoverlay2"]
    assert (a.vnetid, a.search, a.mtu, a.rule) == (2, "files", 1300, "adminoverlay")
    assert a.props["vxlan/listen_port"] == 4793
    assert c.vnics["foo0"].addresses == ("10.23.0.1/24",) and c.metrics == "127.0.0.1:9134"


def test_example_files_in_repo_parse():
    import pathlib

    files = sorted(pathlib.Path(__file__).parents[2].joinpath("examples").glob("*.json"))
    assert files, "examples/ has no overlay.json examples"
    for f in files:
        if f.name.endswith(".files.json"):
            continue  # a files-plugin table, not an overlay.json
        load.load_file(str(f))


def mutate(path: str, value):
    doc = json.loads(json.dumps(EXAMPLE))
    node = doc
    keys = path.split("|")
    for k in keys[:-1]:
        node = node[k]
    if value is KeyError:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return doc


@pytest.mark.parametrize("path,value,message", [
    ("colour", 1, "top level: unknown key 'colour'"),
    ("overlays|demo0|props|mtu", 9000, "overlays.demo0: invalid value 9000 for mtu: must be 576-8900"),
    ("overlays|demo0|props|size", 1, "overlays.demo0: unknown property size"),
    ("overlays|demo0|props|vxlan/listen_ip", KeyError, "unset required property"),
    ("overlays|demo0|vnetid", 16777216, "overlays.demo0: invalid value 16777216 for vnetid"),
    ("overlays|adminoverlay2|vnetid", 23, "overlays.adminoverlay2: vnetid 23 is already used by overlay demo0"),
    ("overlays|adminoverlay2|rule", "nope", "overlays.adminoverlay2: rule 'nope' is not defined"),
    ("overlays|demo0|encap", "geneve", "unknown encapsulation plugin: geneve"),
    ("rules|adminoverlay", "-e vxlan -v 3", "rules.adminoverlay: a rule must not set -v"),
    ("vnics|foo0|over", "ov9", "vnics.foo0: overlay 'ov9' does not exist in this file"),
    ("vnics|foo0|mac", "01:00:5e:00:00:01", "vnics.foo0: MAC address 01:00:5e:00:00:01 is multicast"),
    ("vnics|foo0|mac", "zz", "vnics.foo0: invalid MAC address 'zz'"),
    ("vnics|foo0|mtu", 1500, "vnics.foo0: mtu 1500 is above overlay demo0's mtu 1400"),
    ("vnics|foo0|vlan", 5000, "vnics.foo0: invalid VLAN id 5000"),
    ("vnics|foo0|addresses", ["10.0.0.1"], "vnics.foo0: invalid address '10.0.0.1'"),
    ("vnics|foo0|speed", 1, "vnics.foo0: unknown key 'speed'"),
    ("daemon|metrics", "localhost", "daemon: metrics address 'localhost' must be IP:PORT"),
])
def test_located_errors(path, value, message):
    with pytest.raises(UsageError) as e:
        load.parse_config(mutate(path, value))
    assert message in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_duplicate_mac_in_one_overlay():
    doc = mutate("vnics|foo1", {"over": "demo0", "mac": "02:00:00:00:00:0A", "netns": "g2"})
    with pytest.raises(UsageError, match="vnics.foo1: MAC 02:00:00:00:00:0a is already used by VNIC foo0"):
        load.parse_config(doc)


def test_bad_json_names_the_line(tmp_path):
    f = tmp_path / "o.json"
    f.write_text('{\n "overlays": {,\n}')
    with pytest.raises(UsageError, match=r"o.json: invalid JSON at line 2 column 15"):
        load.load_file(str(f))
    with pytest.raises(UsageError, match="No such file"):
        load.load_file(str(tmp_path / "missing.json"))


def test_schema_documents_the_same_keys():
    import pathlib

    schema = json.loads(pathlib.Path(__file__).parents[2].joinpath("docs", "overlay.schema.json").read_text())
    assert set(schema["properties"]) == load.TOP_KEYS
    ov = schema["properties"]["overlays"]["additionalProperties"]["properties"]
    assert set(ov) == load.OVERLAY_KEYS
    assert set(schema["properties"]["vnics"]["additionalProperties"]["properties"]) == load.VNIC_KEYS
