"""pyovl.mesh.firewall without a kernel: the script render() writes, input
validation, and how nft's answers become pyovl errors (nft faked).

Matrix:
  render      table/delete/table idiom | counters | sets as needed |
              prerouting and postrouting hooks, priorities, rule order |
              log chains on/off | kept counter values | deterministic
  names       instance -> table name (kept, mapped + hashed, empty)
  validation  interface name, ports, mesh peer addresses
  nft answers counters JSON, missing table, not permitted, nft missing
"""

from __future__ import annotations

import json
import subprocess

import pytest

from pyovl.errors import KernelError, StateError, UsageError
from pyovl.mesh import firewall

PEERS = ["198.18.0.2", "198.18.0.3", "2001:db8::2"]


def blocks(script: str) -> dict[str, list[str]]:
    """{"counter plaintext_in": [lines], "set mesh4": [...], "chain x": [...]}
    of the table body, each line stripped."""
    out: dict[str, list[str]] = {}
    current = None
    depth = 0
    for raw in script.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("{"):
            depth += 1
            if depth == 2:
                current = line[:-1].strip()
                out[current] = []
            continue
        if line == "}":
            depth -= 1
            current = None if depth < 2 else current
            continue
        if depth == 2 and current:
            out[current].append(line)
    return out


def statements(script: str) -> list[str]:
    """Top-level lines (outside any braces)."""
    top, depth = [], 0
    for raw in script.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if depth == 0:
            top.append(line)
        depth += line.count("{") - line.count("}")
    return top


def test_one_table_created_and_replaced_in_one_script():
    s = firewall.render("pt12-ha", "ul0", [4789], PEERS)
    assert statements(s) == ["table inet pyovl_pt12-ha", "delete table inet pyovl_pt12-ha",
                             "table inet pyovl_pt12-ha {"]


def test_named_counters_and_sets():
    b = blocks(firewall.render("x", "ul0", [8472, 4789, 4789], PEERS))
    for name in ("plaintext_in", "plaintext_out", "mesh_in", "mesh_out"):
        assert b["counter %s" % name] == []
    assert b["set overlay_ports"] == ["type inet_service", "elements = { 4789, 8472 }"]
    assert b["set mesh4"] == ["type ipv4_addr", "elements = { 198.18.0.2, 198.18.0.3 }"]
    assert b["set mesh6"] == ["type ipv6_addr", "elements = { 2001:db8::2 }"]


def test_address_sets_only_as_needed():
    b = blocks(firewall.render("x", "ul0", [4789], ["198.18.0.2"]))
    assert "set mesh4" in b and "set mesh6" not in b
    assert not any("ip6" in r for r in b["chain prerouting"] + b["chain postrouting"])
    b = blocks(firewall.render("x", "ul0", [4789], []))
    assert "set mesh4" not in b and "set mesh6" not in b
    # No mesh yet: plaintext is still dropped both ways.
    assert [r for r in b["chain prerouting"] if "plaintext_in" in r]
    assert [r for r in b["chain postrouting"] if "plaintext_out" in r]


def test_prerouting_chain():
    rules = blocks(firewall.render("x", "ext0", [4789], PEERS))["chain prerouting"]
    assert rules[0] == "type filter hook prerouting priority dstnat + 10; policy accept;"
    drop = rules[-1]
    for part in ('iifname "ext0"', "udp dport @overlay_ports", "meta ipsec missing",
                 'counter name "plaintext_in"', "goto drop_plaintext_in"):
        assert part in drop
    mesh = rules[1:-1]  # mesh accepts come first
    assert len(mesh) == 4 and all(r.startswith('iifname "ext0"') and 'counter name "mesh_in" accept' in r
                                  for r in mesh)
    assert any("ip saddr @mesh4 meta l4proto esp" in r for r in mesh)
    assert any("ip saddr @mesh4 udp dport { 500, 4500 }" in r for r in mesh)
    assert any("ip6 saddr @mesh6 meta l4proto esp" in r for r in mesh)
    assert any("ip6 saddr @mesh6 udp dport { 500, 4500 }" in r for r in mesh)


def test_postrouting_chain():
    rules = blocks(firewall.render("x", "ext0", [4789], PEERS))["chain postrouting"]
    assert rules[0] == "type filter hook postrouting priority srcnat + 50; policy accept;"
    drop = rules[-1]
    for part in ('oifname "ext0"', "udp dport @overlay_ports", "rt ipsec missing",
                 'counter name "plaintext_out"', "goto drop_plaintext_out"):
        assert part in drop
    mesh = rules[1:-1]
    assert len(mesh) == 4 and all('counter name "mesh_out" accept' in r for r in mesh)
    assert any("ip daddr @mesh4 udp sport { 500, 4500 }" in r for r in mesh)
    assert any("ip6 daddr @mesh6 meta l4proto esp" in r for r in mesh)
    # The ipsec expressions sit where they mean something.
    s = firewall.render("x", "ext0", [4789], PEERS)
    assert "rt ipsec" not in "\n".join(blocks(s)["chain prerouting"])
    assert "meta ipsec" not in "\n".join(blocks(s)["chain postrouting"])


def test_drop_chains_log_rate_limited_then_drop():
    b = blocks(firewall.render("x", "ul0", [4789], PEERS))
    for way in ("in", "out"):
        rules = b["chain drop_plaintext_%s" % way]
        assert rules[-1] == "drop"
        assert rules[0].startswith("limit rate ") and 'log prefix "pyovl plaintext %s: "' % way in rules[0]


def test_without_log_drops_directly():
    s = firewall.render("x", "ul0", [4789], PEERS, log_drops=False)
    b = blocks(s)
    assert "log" not in s and not [k for k in b if k.startswith("chain drop_")]
    assert b["chain prerouting"][-1].split(" comment ")[0].endswith('counter name "plaintext_in" drop')
    assert b["chain postrouting"][-1].split(" comment ")[0].endswith('counter name "plaintext_out" drop')


def test_kept_counter_values():
    b = blocks(firewall.render("x", "ul0", [4789], [], keep={"plaintext_in": (3, 450), "mesh_out": (0, 0)}))
    assert b["counter plaintext_in"] == ["packets 3 bytes 450"]
    assert b["counter mesh_out"] == [] and b["counter plaintext_out"] == []


def test_deterministic_whatever_the_input_order():
    a = firewall.render("x", "ul0", [4790, 4789], ["198.18.0.3", "2001:db8::2", "198.18.0.2"])
    b = firewall.render("x", "ul0", (p for p in (4789, 4790, 4789)),
                        ["2001:db8:0::2", "198.18.0.2", "198.18.0.3", "198.18.0.2"])
    assert a == b


@pytest.mark.parametrize("instance,table", [
    ("default", "pyovl_default"),
    ("pt12-ha", "pyovl_pt12-ha"),
    ("a.b_c", "pyovl_a.b_c"),
])
def test_table_name_kept(instance, table):
    assert firewall.table_name(instance) == table


def test_table_name_mapped_uniquely():
    a, b = firewall.table_name("my ns"), firewall.table_name("my/ns")
    assert a != b and a.startswith("pyovl_my_ns_") and b.startswith("pyovl_my_ns_")
    for name in (a, b, firewall.table_name("x" * 300), firewall.table_name('a"; flush ruleset')):
        assert len(name) <= 64 and all(c.isalnum() or c in "_.-" for c in name)
    assert firewall.table_name("x" * 300) != firewall.table_name("x" * 301)
    assert firewall.table_name("x\n").startswith("pyovl_x__")
    with pytest.raises(UsageError, match="instance name is empty"):
        firewall.table_name("")


@pytest.mark.parametrize("ifname", ["", "a" * 16, 'ul0" accept', "ul 0", "ul0\n", None, 3])
def test_bad_interface(ifname):
    with pytest.raises(UsageError, match="interface name"):
        firewall.render("x", ifname, [4789], [])


@pytest.mark.parametrize("ports,match", [
    ([0], "invalid overlay port"), ([65536], "invalid overlay port"), ([True], "invalid overlay port"),
    (["4789"], "invalid overlay port"), ([4789.0], "invalid overlay port"),
    ([500], "IKE"), ([4789, 4500], "IKE"), ([], "no overlay ports"), ("4789", "list of UDP ports"),
    (4789, "list of UDP ports"),
])
def test_bad_ports(ports, match):
    with pytest.raises(UsageError, match=match):
        firewall.render("x", "ul0", ports, [])


@pytest.mark.parametrize("peers,match", [
    (["198.18.0.300"], "invalid mesh peer"), (["ul0"], "invalid mesh peer"), ([None], "invalid mesh peer"),
    (["0.0.0.0"], "cannot be"), (["::"], "cannot be"), (["224.0.0.1"], "cannot be"),
    (["127.0.0.1"], "cannot be"), (["ff02::1"], "cannot be"),
    (["::ffff:198.18.0.2"], "as 198.18.0.2"), ("198.18.0.2", "list of addresses"),
])
def test_bad_peers(peers, match):
    with pytest.raises(UsageError, match=match):
        firewall.render("x", "ul0", [4789], peers)


# --- nft answers, faked -----------------------------------------------------

class FakeNft:
    def __init__(self, answers):
        self.answers = list(answers)  # (returncode, stdout, stderr) per call
        self.calls: list[tuple[list[str], str | None]] = []

    def __call__(self, args, stdin=None):
        self.calls.append((args, stdin))
        rc, out, err = self.answers.pop(0)
        return subprocess.CompletedProcess(["nft", *args], rc, out, err)


def listing(table, **counters):
    items = [{"metainfo": {"version": "1.0.6"}}]
    items += [{"counter": {"family": "inet", "name": n, "table": table, "handle": i,
                           "packets": p, "bytes": p * 100}} for i, (n, p) in enumerate(counters.items())]
    return json.dumps({"nftables": items})


def test_counters_from_nft_json(monkeypatch):
    fake = FakeNft([(0, listing("pyovl_x", plaintext_in=3, plaintext_out=2, mesh_in=7), "")])
    monkeypatch.setattr(firewall, "_nft", fake)
    # counters() is the drops only: pyovl.daemon.metrics reports every key it returns as blocked.
    assert firewall.counters("x") == {"plaintext_in": 3, "plaintext_out": 2}
    assert fake.calls[0][0] == ["-j", "list", "counters", "table", "inet", "pyovl_x"]
    fake.answers.append((0, listing("pyovl_x", plaintext_in=3, mesh_in=7), ""))
    assert firewall.all_counters("x") == {"plaintext_in": 3, "plaintext_out": 0, "mesh_in": 7, "mesh_out": 0}


def test_counters_without_table(monkeypatch):
    err = "Error: No such file or directory\nlist counters table inet pyovl_x\n                         ^^^^^^^\n"
    monkeypatch.setattr(firewall, "_nft", FakeNft([(1, "", err)]))
    with pytest.raises(StateError, match="no mesh firewall for instance x .*run pyovl up"):
        firewall.counters("x")


def test_not_permitted_is_one_line(monkeypatch):
    err = "Error: Could not process rule: Operation not permitted\ntable inet pyovl_x\n^^^^^\n"
    monkeypatch.setattr(firewall, "_nft", FakeNft([(1, "", err)]))
    with pytest.raises(KernelError) as e:
        firewall.remove("x")
    assert "\n" not in str(e.value) and "run as root" in str(e.value)


def test_apply_keeps_counters_and_reports_nft_errors(monkeypatch):
    monkeypatch.setattr(firewall.socket, "if_nametoindex", lambda name: 2)
    monkeypatch.setattr(firewall, "_log_supported", lambda: True)
    monkeypatch.setattr(firewall, "available", lambda: None)
    err = ("/dev/stdin:30:3-80: Error: Could not process rule: No such file or directory\n"
           "\t\tiifname \"ul0\" udp dport @overlay_ports meta ipsec missing drop\n\t\t^^^^^^^^\n")
    fake = FakeNft([(0, listing("pyovl_x", plaintext_in=5), ""), (1, "", err)])
    monkeypatch.setattr(firewall, "_nft", fake)
    with pytest.raises(KernelError) as e:
        firewall.apply("x", "ul0", [4789], ["198.18.0.2"])
    msg = str(e.value)
    assert "\n" not in msg and "No such file or directory" in msg and "meta ipsec missing" in msg
    assert fake.calls[1][0] == ["-f", "-"]
    assert "packets 5 bytes 500" in fake.calls[1][1]


def test_apply_names_what_the_kernel_lacks(monkeypatch):
    monkeypatch.setattr(firewall.socket, "if_nametoindex", lambda name: 2)
    monkeypatch.setattr(firewall, "_log_supported", lambda: True)
    reason = "this kernel has no nf_tables inet family (CONFIG_NF_TABLES_INET): No such file or directory"
    monkeypatch.setattr(firewall, "available", lambda: reason)
    err = "Error: Could not process rule: No such file or directory\n"
    monkeypatch.setattr(firewall, "_nft", FakeNft([(1, "", err), (1, "", err)]))
    with pytest.raises(KernelError, match=r"cannot apply the mesh firewall .*CONFIG_NF_TABLES_INET"):
        firewall.apply("x", "ul0", [4789], [])


def test_apply_validates_before_nft(monkeypatch):
    fake = FakeNft([])
    monkeypatch.setattr(firewall, "_nft", fake)
    with pytest.raises(UsageError):
        firewall.apply("x", "ul0", [500], [])
    monkeypatch.setattr(firewall.socket, "if_nametoindex", lambda name: (_ for _ in ()).throw(OSError(19, "x")))
    with pytest.raises(UsageError, match="no such interface: ul0"):
        firewall.apply("x", "ul0", [4789], [])
    assert fake.calls == []


def test_nft_missing(monkeypatch):
    monkeypatch.setattr(firewall.shutil, "which", lambda name: None)
    assert "install nftables" in firewall.available()
    with pytest.raises(KernelError, match="install nftables"):
        firewall.remove("x")


def test_remove_and_counters_where_the_kernel_has_no_inet_family(monkeypatch):
    # Debian's user-mode-linux: nf_tables without inet, "table inet x" is EOPNOTSUPP.
    err = "Error: Could not process rule: Operation not supported\ntable inet pyovl_x\n^^^^^\n"
    monkeypatch.setattr(firewall, "_nft", FakeNft([(1, "", err), (1, "", err)]))
    firewall.remove("x")
    with pytest.raises(StateError):
        firewall.counters("x")
