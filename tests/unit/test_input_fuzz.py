"""Bad input to overlay.json, the mesh inventory and key files: one clean line.

Contract under test: load.load_file() on any bytes either returns a Config
or raises UsageError whose str() is one printable line; nothing else
escapes (no TypeError from an unhashable value, no RecursionError, no
UnicodeDecodeError, no int-conversion ValueError). First the defects a
fuzz found, one test each; then a deterministic mutation fuzz (seeded) of
a few hundred documents derived from a valid one.
"""

from __future__ import annotations

import copy
import json
import os
import random
from types import SimpleNamespace

import pytest

from pyovl.config import load, specs
from pyovl.errors import KernelError, PyovlError, StateError, UsageError, one_line, show
from pyovl.lookup.plugin import PluginError
from pyovl.mesh import keys, parse_mesh

# Every top-level section, a rule, both kinds of overlay and an inline mesh:
# the fuzz reaches every parser from one document.
VALID = {
    "comment": "fuzz base",
    "rules": {"admin": "-e vxlan -s files -p vxlan/listen_ip=0.0.0.0 -p files/config=/etc/pyovl/admin.json"},
    "overlays": {
        "demo0": {"encap": "vxlan", "search": "direct", "vnetid": 23,
                  "props": {"mtu": 1400, "vxlan/listen_ip": "198.18.0.1", "vxlan/listen_port": 4789,
                            "direct/dest_ip": "198.18.0.2", "direct/dest_port": 4789}},
        "admin2": {"rule": "admin", "vnetid": 2, "props": {"mtu": 1300}},
    },
    "vnics": {
        "web0": {"over": "demo0", "mac": "02:00:00:00:00:0a", "vlan": 0, "mtu": 1400, "netns": "guest1",
                 "addresses": ["10.23.0.1/24", "fd00::1/64"]},
        "adm0": {"over": "admin2", "vlan": 10},
    },
    "daemon": {"metrics": "127.0.0.1:9134"},
    "underlay": {"devices": ["eth1"], "hook": "auto"},
    "mesh": {"self": "n1", "keys": "/etc/pyovl/keys/n1.json",
             "ike": {"rekey_time": "1h", "repair_after": 3},
             "nodes": {"n1": {"pdc": "dc1", "admin": "198.18.1.1", "external": "198.19.0.1"},
                       "n2": {"pdc": "dc2", "admin": "198.18.2.2", "external": "198.19.0.2"}}},
}


def load_bytes(tmp_path, data: bytes):
    p = tmp_path / "overlay.json"
    p.write_bytes(data)
    return load.load_file(str(p))


def assert_clean(e: BaseException) -> str:
    s = str(e)
    assert isinstance(e, UsageError), repr(e)
    assert s and s.isprintable(), repr(s)  # isprintable: no \n, \r, \t, no other control character
    return s


def bad(tmp_path, doc_or_bytes, match: str) -> str:
    data = doc_or_bytes if isinstance(doc_or_bytes, bytes) else json.dumps(doc_or_bytes).encode()
    with pytest.raises(UsageError) as e:
        load_bytes(tmp_path, data)
    s = assert_clean(e.value)
    assert match in s, s
    return s


def mutated(path: str, value=KeyError):
    """VALID with the value at path ("a|b|c") replaced (KeyError: deleted)."""
    doc = copy.deepcopy(VALID)
    node = doc
    parts = path.split("|")
    for k in parts[:-1]:
        node = node[k]
    if value is KeyError:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return doc


def renamed(path: str, new: str):
    """VALID with the last key of path renamed to new, value kept."""
    doc = copy.deepcopy(VALID)
    node = doc
    parts = path.split("|")
    for k in parts[:-1]:
        node = node[k]
    node[new] = node.pop(parts[-1])
    return doc


def test_base_document_is_valid(tmp_path):
    c = load_bytes(tmp_path, json.dumps(VALID).encode())
    assert c.vnics["web0"].addresses == ("10.23.0.1/24", "fd00::1/64") and c.mesh.self_name == "n1"


# -- defect 1: tracebacks ----------------------------------------------------

def test_not_utf8(tmp_path):
    bad(tmp_path, b'{"comment": "caf\xe9"}', "not UTF-8 text (byte 0xe9 at offset 16)")


@pytest.mark.parametrize("where", ["top", "overlays", "props"])
def test_deep_nesting(tmp_path, where):
    deep = b"[" * 100000 + b"]" * 100000
    data = {"top": deep,
            "overlays": b'{"overlays": ' + deep + b"}",
            "props": b'{"overlays": {"a0": {"props": {"mtu": ' + deep + b"}}}}"}[where]
    bad(tmp_path, data, "nested too deeply")


def test_moderately_deep_value_is_refused_with_a_short_message(tmp_path):
    # parses (below the recursion limit), then is echoed: show() keeps it short
    s = bad(tmp_path, mutated("overlays|demo0|props|mtu", json.loads("[" * 500 + "]" * 500)), "must be a number")
    assert len(s) < 300


def test_huge_number(tmp_path):
    data = json.dumps(VALID).replace('"vnetid": 23', '"vnetid": ' + "9" * 5000).encode()
    bad(tmp_path, data, "a number has too many digits")


def test_large_number_below_the_limit_is_a_range_error(tmp_path):
    s = bad(tmp_path, mutated("overlays|demo0|vnetid", 10 ** 4000), "must be 0-16777215")
    assert len(s) < 300


@pytest.mark.parametrize("path,value,match", [
    ("overlays|admin2|rule", [], "overlays.admin2.rule: must be a string"),
    ("overlays|admin2|rule", {}, "overlays.admin2.rule: must be a string"),
    ("vnics|web0|over", {}, "vnics.web0.over: must be a string"),
    ("vnics|web0|over", [], "vnics.web0.over: must be a string"),
    ("overlays|demo0|encap", {"a": 1}, "unknown encapsulation plugin: {'a': 1}"),
    ("overlays|demo0|encap", ["vxlan"], "unknown encapsulation plugin"),
    ("overlays|demo0|search", {"a": 1}, "unknown search plugin"),
    ("overlays|demo0|props", [], "overlays.demo0.props: must be a JSON object"),
    ("overlays|demo0|props|vxlan/listen_ip", ["198.18.0.1"], "not an IP address"),
    ("overlays|demo0|props|vxlan/listen_ip", 3323068417, "not an IP address"),
    ("overlays|demo0|props|mtu", {"v": 1}, "must be a number"),
    ("vnics|web0|mac", ["02:00:00:00:00:0a"], "invalid MAC address"),
    ("vnics|web0|netns", {}, "invalid network namespace name"),
    ("vnics|web0|addresses", [["10.0.0.1/24"]], "invalid address"),
    ("vnics|web0|addresses", [167772161], "invalid address"),
    ("vnics|web0|addresses", "10.0.0.1/24", "addresses must be a list"),
    ("daemon|metrics", [[[1]]], "metrics address [[[1]]] must be IP:PORT"),
    ("underlay|hook", [], "hook must be auto, tc or xdp"),
    ("underlay|hook", {}, "hook must be auto, tc or xdp"),
    ("underlay|devices", [["eth1"]], "devices must be a list of interface names"),
    ("rules|admin", ["-e", "vxlan"], "a rule is a string"),
    ("mesh|self", [], "mesh.self: [] is not one of the nodes"),
    ("mesh|self", {}, "mesh.self"),
    ("mesh|nodes|n1|pdc", [], "mesh.nodes.n1.pdc"),
    ("mesh|nodes|n1|admin", {}, "invalid address"),
    ("mesh|keys", [], "mesh.keys"),
    ("mesh|ike|rekey_time", [], "invalid duration"),
    ("mesh|ike|rekey_time", {}, "invalid duration"),
    ("mesh|ike|repair_after", True, "repair_after"),
    ("mesh|ike|vici", {}, "vici URI"),
    ("mesh|external_device", [], "external_device"),
])
def test_non_scalar_values_are_located_errors(tmp_path, path, value, match):
    bad(tmp_path, mutated(path, value), match)


# -- defect 2: rejected-but-damaging, accepted-but-wrong ---------------------

def test_netmask_is_normalised_to_a_prefix_length(tmp_path):
    doc = mutated("vnics|web0|addresses", ["10.98.0.1/255.255.255.0", "FD00::1/64", "10.99.0.1/0.0.0.255"])
    assert load_bytes(tmp_path, json.dumps(doc).encode()).vnics["web0"].addresses == \
        ("10.98.0.1/24", "fd00::1/64", "10.99.0.1/24")
    assert specs.build_vnic("v0", "ov0", addresses=["10.98.0.1/255.255.255.0"]).addresses == ("10.98.0.1/24",)


@pytest.mark.parametrize("addrs,match", [
    (["10.98.0.1/24", "10.98.0.1/24"], "address 10.98.0.1 is given twice"),
    (["10.98.0.1/24", "10.98.0.1/255.255.255.0"], "address 10.98.0.1 is given twice"),
    (["10.98.0.1/24", "10.98.0.1/16"], "address 10.98.0.1 is given twice"),
    (["fd00::1/64", "FD00:0::1/64"], "address fd00::1 is given twice"),
    (["fe80::1%eth0/64"], "invalid address"),
    (["0.0.0.0/0"], "cannot be unspecified"),
    (["224.0.0.1/4"], "cannot be multicast"),
    (["10.0.0.1/24\n"], "invalid address"),
])
def test_bad_address_lists(tmp_path, addrs, match):
    bad(tmp_path, mutated("vnics|web0|addresses", addrs), match)


@pytest.mark.parametrize("name", [".", "..", "...", "web0\n", "web0\r", " web0", "web\x000", "a" * 16, ""])
def test_bad_vnic_names(tmp_path, name):
    bad(tmp_path, renamed("vnics|web0", name), "invalid VNIC name")


@pytest.mark.parametrize("name", [".", "..", "....", "guest1\n", "gu/est", "g" * 65, ""])
def test_bad_netns_names(tmp_path, name):
    bad(tmp_path, mutated("vnics|web0|netns", name), "invalid network namespace name")


@pytest.mark.parametrize("name", ["demo1\n", "1demo", "demo", "..0"])
def test_bad_overlay_names(tmp_path, name):
    bad(tmp_path, renamed("overlays|demo0", name), "invalid link name")


@pytest.mark.parametrize("path,value,match", [
    ("underlay|devices", ["eth1\n"], "devices must be a list of interface names"),
    ("underlay|devices", [".."], "devices must be a list of interface names"),
    ("underlay|devices", ["eth1", "eth1"], "listed twice"),
    ("mesh|external_device", "eth0\n", "external_device"),
    ("mesh|external_device", "..", "external_device"),
    ("mesh|self", "n1\n", "is not one of the nodes"),
    ("mesh|keys", "/etc/pyovl/keys/n1.json\n", "mesh.keys"),
    ("mesh|nodes|n1|pdc", "dc1\n", "mesh.nodes.n1.pdc"),
    ("mesh|nodes|n1|admin", "fe80::1%eth0\nx", "invalid address"),
    ("mesh|ike|rekey_time", "60m\n", "invalid duration"),
    ("mesh|ike|rekey_time", "٣٦٠٠", "invalid duration"),
    ("mesh|ike|rekey_time", 1, "invalid duration"),
    ("mesh|ike|rekey_time", 10 ** 30, "invalid duration"),
    ("overlays|demo0|props|vxlan/listen_ip", "fe80::1%eth0\nx", "not an IP address"),
    ("overlays|demo0|props|mtu", "1400\n", "must be a number"),
    ("overlays|demo0|props|mtu", "1_400", "must be a number"),
    ("overlays|demo0|props|mtu", " 1400", "must be a number"),
    ("overlays|demo0|props|mtu", "١٤٠٠", "must be a number"),
    ("overlays|admin2|props", {"files/config": "/etc/a\nb"}, "must be printable text"),
    ("overlays|admin2|props", {"files/config": "/etc/a\u0000b"}, "must be printable text"),
    ("vnics|web0|mac", "02:00:00:00:00:0a\n", "invalid MAC address"),
    ("vnics|web0|mac", "+2:00:00:00:00:0a", "invalid MAC address"),
    ("daemon|metrics", "127.0.0.1:9134\n", "must be IP:PORT"),
    ("daemon|metrics", "127.0.0.1:09_134", "must be IP:PORT"),
    ("daemon|metrics", "[fe80::1%lo]:9134", "must be IP:PORT"),
])
def test_trailing_newlines_and_lenient_parses_are_refused(tmp_path, path, value, match):
    bad(tmp_path, mutated(path, value), match)


def test_node_and_rule_names_with_a_newline(tmp_path):
    doc = copy.deepcopy(VALID)
    doc["mesh"]["nodes"]["n2\n"] = doc["mesh"]["nodes"].pop("n2")
    bad(tmp_path, doc, "invalid node name 'n2\\n'")
    doc = copy.deepcopy(VALID)
    doc["rules"]["admin\n"] = doc["rules"].pop("admin")
    bad(tmp_path, doc, "a rule name is")


def test_metrics_address_is_canonical():
    assert load.check_hostport("127.0.0.1:9134") == "127.0.0.1:9134"
    assert load.check_hostport("[::1]:9134") == "[::1]:9134"
    assert load.check_hostport("::1:9134") == "[::1]:9134"


def test_nan_and_duplicate_keys_are_refused(tmp_path):
    bad(tmp_path, json.dumps(VALID).replace('"vnetid": 23', '"vnetid": NaN').encode(), "NaN is not JSON")
    bad(tmp_path, b'{"overlays": {}, "overlays": {}}', "key 'overlays' appears twice")


# -- the mesh inventory file and the key files -------------------------------

@pytest.mark.parametrize("data,match", [
    (b"[" * 100000, "nested too deeply"),
    (b'{"self": "n1", "nodes": {"n1": {"pdc": "\xff"}}}', "not UTF-8"),
    (b'{"self": ' + b"1" * 5000 + b"}", "too many digits"),
])
def test_mesh_inventory_file(tmp_path, data, match):
    p = tmp_path / "mesh.json"
    p.write_bytes(data)
    with pytest.raises(UsageError, match=match) as e:
        parse_mesh(str(p))
    assert_clean(e.value)
    assert str(e.value).startswith("mesh: %s: " % p)


@pytest.mark.parametrize("data,match", [
    (b"[" * 100000, "nested too deeply"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"version": ' + b"1" * 5000 + b', "pairs": {}}', "too many digits"),
    (b'{"version": 1, "pairs": {"n1+n3\\n": "a"}}', "invalid pair id"),
])
def test_key_file(tmp_path, data, match):
    p = tmp_path / "n1.json"
    p.write_bytes(data)
    os.chmod(p, 0o600)
    with pytest.raises(UsageError, match=match) as e:
        keys.load(str(p), "n1", ["n3"], require_root=False)
    assert_clean(e.value)


def test_keygen_ignores_files_that_only_start_with_a_node_name(tmp_path):
    """Node names are matched whole: "n1_old.json" is not n1's key file."""
    d = tmp_path / "keys"
    d.mkdir(mode=0o700)
    (d / "n1_old.json").write_bytes(b"not json at all")
    r = keys.generate([SimpleNamespace(name="n1", pdc="dc1"), SimpleNamespace(name="n2", pdc="dc2")], str(d))
    assert (r.files_written, r.files_removed) == (2, 0) and (d / "n1_old.json").exists()


@pytest.mark.parametrize("data,match", [
    (b"[" * 100000, "nested too deeply"),
    (b"\xff", "not UTF-8"),
    (b'{"mesh": ' + b"1" * 5000 + b"}", "too many digits"),
])
def test_mesh_keygen_inventory(tmp_path, data, match):
    from pyovl.cli.mesh import mesh_keygen

    p = tmp_path / "inv.json"
    p.write_bytes(data)
    with pytest.raises(UsageError, match=match) as e:
        mesh_keygen.callback(str(p), str(tmp_path / "keys"))  # the command's body, without the CLI group
    assert_clean(e.value)


# -- defect 3: one line, by mechanism ----------------------------------------

@pytest.mark.parametrize("cls", [PyovlError, UsageError, KernelError, StateError, PluginError])
def test_every_error_is_one_line(cls):
    s = str(cls("bad name %s: x\ny\r\tz\x00\x1b[31m\u2028\u202e end" % "ov0\n"))
    assert s.isprintable() and "\n" not in s and "\r" not in s
    assert s == "bad name ov0\\n: x\\ny\\r\\tz\\x00\\x1b[31m\\u2028\\u202e end"
    assert str(cls("plain text, unchanged: é ü 東")) == "plain text, unchanged: é ü 東"


def test_show_never_raises_and_stays_short():
    assert show("ov0") == "'ov0'" and show(None) == "None"
    assert show("x" * 1000).endswith("... (1002 characters)")
    assert show(10 ** 5000) == "<int>"  # repr() itself raises beyond 4300 digits
    deep: list = []
    for _ in range(100000):
        deep = [deep]
    assert show(deep) == "<list>"  # repr() raises RecursionError
    assert one_line("a\nb") == "a\\nb"


def test_exit_codes():
    assert (PyovlError.exit_code, UsageError.exit_code, KernelError.exit_code, StateError.exit_code) == (1, 2, 3, 4)


# -- the fuzz ------------------------------------------------------------------

DEEP = json.loads("[" * 60 + "]" * 60)
REPLACEMENTS = [
    None, True, False, 0, -1, 1.5, 2 ** 64, 10 ** 4000, [], {}, [[]], {"a": {}}, DEEP,
    "", ".", "..", "a\n", "\n", "x" * 300, "\x00", "\ud800", "\u202e", "٣", " 23", "2_3", "+23",
    "0.0.0.0", "::", "ff02::1", "fe80::1%eth0", "10.98.0.1/255.255.255.0", "02:00:00:00:00:0a\n",
    "1h", "-e vxlan", "'", "/", "/etc/x\n", "[::1]:9134",
]
NAMES = ["", ".", "..", "a\n", "x" * 100, "\t", "ov1", "n9", "web1", "\ud800", "0"]


def paths(node, prefix=()):
    """Every (container, key) in a JSON tree, so that any value can be hit."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        out.append((node, k))
        out.extend(paths(v, prefix + (k,)))
    return out


def mutate_tree(rng: random.Random, doc):
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        spots = paths(doc)
        if not spots:
            return doc
        node, key = rng.choice(spots)
        op = rng.random()
        if op < 0.6:
            node[key] = copy.deepcopy(rng.choice(REPLACEMENTS + [v for _, v in [rng.choice(spots)]]))
        elif op < 0.75 and isinstance(node, dict):
            node[rng.choice(NAMES)] = node.pop(key)
        elif op < 0.85:
            del node[key]
        elif isinstance(node, list):
            node.append(copy.deepcopy(node[key]))
        else:
            node[key] = [node[key]]
    return doc


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    op = rng.randrange(7)
    if op == 0:
        i = rng.randrange(len(data))
        return data[:i] + bytes([rng.choice((0x80, 0xC3, 0xE9, 0xFF, 0xFE))]) + data[i:]
    if op == 1:
        return data[:rng.randrange(len(data))]
    if op == 2:
        n = rng.choice((50, 5000, 100000))
        return b"[" * n + data + b"]" * n
    if op == 3:
        return data.replace(b"23", b"9" * rng.choice((4000, 5000)), 1)
    if op == 4:
        return data.replace(b"1400", rng.choice((b"NaN", b"Infinity", b"-Infinity", b"1e999")), 1)
    if op == 5:
        return data.replace(b'"vnics": {', b'"vnics": {"web0": {}, ', 1)  # a duplicate key
    return data.replace(b"web0", rng.choice((b"web0\\n", b"..", b"web\\u00000", b"\\ud800")), 1)


def test_mutation_fuzz(tmp_path):
    rng = random.Random(0x0FF1CE)
    bases = [VALID]
    examples = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
    for name in sorted(os.listdir(examples)):
        if name.endswith(".json") and not name.endswith(".files.json"):
            with open(os.path.join(examples, name)) as f:
                bases.append(json.load(f))
    outcomes = {"ok": 0, "error": 0}
    for i in range(400):
        doc = mutate_tree(rng, copy.deepcopy(rng.choice(bases)))
        data = json.dumps(doc, ensure_ascii=rng.random() < 0.5, allow_nan=True).encode("utf-8", "surrogatepass")
        if rng.random() < 0.3:
            data = mutate_bytes(rng, data)
        try:
            cfg = load_bytes(tmp_path, data)
        except UsageError as e:
            assert_clean(e)
            outcomes["error"] += 1
        except Exception as e:  # noqa: BLE001 - the point: nothing else may escape
            pytest.fail("document %d raised %r instead of UsageError; input starts %r" % (i, e, data[:200]))
        else:
            assert isinstance(cfg, load.Config)
            for v in cfg.vnics.values():  # what was accepted is canonical and one line
                assert all(a.isprintable() and "/" in a for a in v.addresses)
            outcomes["ok"] += 1
    # a fuzz that only ever fails (or never does) tests one path
    assert outcomes["ok"] >= 20 and outcomes["error"] >= 200, outcomes
