"""pyovl.mesh.ike without charon: the messages sent to vici, and apply()'s
bookkeeping against a fake vici session.

Matrix:
  connection()   name, addresses, ids, IKEv2, transport, two children whose
                 selectors are UDP to/from the overlay ports only (never all
                 UDP), several ports, IPv6, initiator vs responder actions,
                 rekey/life/rand times, refused inputs (IKE ports, mixed
                 families), no key material
  shared_key()   id and owners; the only message with the key
  render_conf()  socket/log in run_dir, journal off, level bounds, no keys
  Ike (fake)     apply loads keys before connections, removes stale ones
                 (conn -> SAs -> key), keeps others' connections, idempotent,
                 missing key refused, errors never carry the key;
                 sa_state / initiate / remove
"""

from __future__ import annotations

import logging

import pytest

from pyovl.errors import KernelError, UsageError
from pyovl.mesh import Node, ike
from pyovl.mesh.keys import Secret


N1 = Node("n1", "a", "10.0.0.1", "198.18.0.1")
N2 = Node("n2", "b", "10.0.0.2", "198.18.0.2")
N3 = Node("n3", "c", "10.0.0.3", "198.18.0.3")
KEY = b"\x5a" * 32
KEYS = {"n2": Secret(KEY), "n3": Secret(b"\x33" * 32)}


def children(msg, peer):
    return msg["pyovl-%s" % peer]["children"]


def test_connection_shape():
    msg = ike.connection(N1, N2, [4789])
    assert list(msg) == ["pyovl-n2"]
    c = msg["pyovl-n2"]
    assert c["version"] == "2"
    assert c["local_addrs"] == ["198.18.0.1"] and c["remote_addrs"] == ["198.18.0.2"]
    assert c["local"] == {"auth": "psk", "id": "n1"} and c["remote"] == {"auth": "psk", "id": "n2"}
    assert c["encap"] == "no" and c["mobike"] == "no" and c["reauth_time"] == "0"
    assert c["keyingtries"] == "0"
    assert c["unique"] == "never"  # INITIAL_CONTACT must not destroy a simultaneous IKE_SA
    assert set(c["children"]) == {"pyovl-n2-to-peer", "pyovl-n2-to-self"}
    for child in c["children"].values():
        assert child["mode"] == "transport"
        assert child["esp_proposals"] == [ike.ESP_PROPOSAL]


def test_selectors_cover_overlay_ports_only():
    ch = children(ike.connection(N1, N2, [4789]), "n2")
    tp, ts = ch["pyovl-n2-to-peer"], ch["pyovl-n2-to-self"]
    assert (tp["local_ts"], tp["remote_ts"]) == (["198.18.0.1/32[udp]"], ["198.18.0.2/32[udp/4789]"])
    assert (ts["local_ts"], ts["remote_ts"]) == (["198.18.0.1/32[udp/4789]"], ["198.18.0.2/32[udp]"])
    # strongSwan installs local_ts x remote_ts: no child may pair "any UDP"
    # with "any UDP" (that would encrypt, or drop, all UDP between the hosts)
    for child in ch.values():
        for lt in child["local_ts"]:
            for rt in child["remote_ts"]:
                assert "/" in lt.split("[")[1] or "/" in rt.split("[")[1], (lt, rt)
    # and every selector names the two external addresses, UDP only
    for child in ch.values():
        for t in child["local_ts"] + child["remote_ts"]:
            assert t.split("[")[1].startswith("udp")
            assert t.split("[")[0] in ("198.18.0.1/32", "198.18.0.2/32")


def test_selectors_mirror_between_peers():
    # what one side calls to-peer the other calls to-self (swap local/remote)
    a = children(ike.connection(N1, N2, [4789, 8472]), "n2")
    b = children(ike.connection(N2, N1, [8472, 4789]), "n1")
    assert a["pyovl-n2-to-peer"]["local_ts"] == b["pyovl-n1-to-self"]["remote_ts"]
    assert a["pyovl-n2-to-peer"]["remote_ts"] == b["pyovl-n1-to-self"]["local_ts"]
    assert a["pyovl-n2-to-self"]["local_ts"] == b["pyovl-n1-to-peer"]["remote_ts"]


def test_several_ports_still_two_children():
    ch = children(ike.connection(N1, N2, {8472, 4789}), "n2")
    assert len(ch) == 2
    assert ch["pyovl-n2-to-peer"]["remote_ts"] == ["198.18.0.2/32[udp/4789]", "198.18.0.2/32[udp/8472]"]
    assert ch["pyovl-n2-to-self"]["local_ts"] == ["198.18.0.1/32[udp/4789]", "198.18.0.1/32[udp/8472]"]


def test_ipv6():
    a = Node("n1", "a", "fd00::1", "2001:db8::1")
    b = Node("n2", "b", "fd00::2", "2001:db8::2")
    c = ike.connection(a, b, [4789])["pyovl-n2"]
    assert c["remote_addrs"] == ["2001:db8::2"]
    assert c["children"]["pyovl-n2-to-peer"]["remote_ts"] == ["2001:db8::2/128[udp/4789]"]


def test_actions_initiator_and_responder():
    first = children(ike.connection(N1, N2, [4789]), "n2")["pyovl-n2-to-peer"]
    second = children(ike.connection(N2, N1, [4789]), "n1")["pyovl-n1-to-peer"]
    # both bring the SA up at load and keep trap policies (fail closed while
    # charon runs; traffic re-creates a missing SA)
    assert first["start_action"] == second["start_action"] == "trap|start"
    # only the first name re-creates actively after a close or a dead peer
    assert (first["close_action"], first["dpd_action"]) == ("start", "restart")
    assert (second["close_action"], second["dpd_action"]) == ("none", "clear")


def test_rekey_times():
    c = ike.connection(N1, N2, [4789], rekey_time=600, dpd_delay=5)["pyovl-n2"]
    child = c["children"]["pyovl-n2-to-peer"]
    assert (child["rekey_time"], child["life_time"], child["rand_time"]) == ("600s", "720s", "60s")
    assert c["rekey_time"] == "2400s" and c["dpd_delay"] == "5s"
    child = children(ike.connection(N1, N2, [4789], rekey_time=5), "n2")["pyovl-n2-to-peer"]
    assert (child["rekey_time"], child["life_time"], child["rand_time"]) == ("5s", "7s", "1s")


@pytest.mark.parametrize("ports,msg", [([500], "IKE's"), ([4500], "IKE's"), ([], "at least one"),
                                       ([0], "invalid"), ([70000], "invalid")])
def test_refused_ports(ports, msg):
    with pytest.raises(UsageError, match=msg):
        ike.connection(N1, N2, ports)


def test_refused_mixed_families():
    with pytest.raises(UsageError, match="different IP versions"):
        ike.connection(N1, Node("n2", "b", "10.0.0.2", "2001:db8::2"), [4789])


def test_connection_has_no_key_material():
    text = repr(ike.connection(N1, N2, [4789]))
    assert "psk" in text and KEY.hex() not in text and "Z" * 8 not in text


def test_shared_key_message():
    m = ike.shared_key("n2", "n1", Secret(KEY))
    assert m == {"id": "pyovl-n1+n2", "type": "IKE", "data": KEY, "owners": ["n2", "n1"]}


def test_render_conf():
    text = ike.render_conf("/run/pyovl/ike")
    assert "socket = unix:///run/pyovl/ike/charon.vici" in text
    assert 'path = "/run/pyovl/ike/charon.log"' in text
    assert "default = -1" in text  # journal off
    assert "default = 1" in text  # file log at charon's default level
    assert "charon-systemd {" in text and "include" not in text
    for plugin in ("kernel-netlink", "socket-default", "vici", "gmp"):
        assert plugin in text
    with pytest.raises(UsageError, match="key material"):
        ike.render_conf("/x", log_level=4)


# -- Ike against a fake vici session ------------------------------------------

class CommandException(Exception):
    """Named like vici's, which Ike recognises by name."""


class FakeVici:
    def __init__(self):
        self.conns: dict[str, dict] = {"operator-vpn": {}}
        self.shared: dict[str, dict] = {"operator-key": {}}
        self.calls: list[tuple[str, str]] = []
        self.sas: list[dict] = []
        self.fail: str | None = None

    def _log(self, op, arg):
        self.calls.append((op, arg))
        if self.fail == op:
            raise CommandException("Command failed: %s went wrong" % op)

    def version(self):
        return {"daemon": b"fake"}

    def get_conns(self):
        return {"conns": [c.encode() for c in self.conns]}

    def get_shared(self):
        return {"keys": [k.encode() for k in self.shared]}

    def load_shared(self, msg):
        self._log("load-shared", msg["id"])
        self.shared[msg["id"]] = msg

    def load_conn(self, msg):
        (name,) = msg
        self._log("load-conn", name)
        self.conns[name] = msg[name]

    def unload_conn(self, msg):
        self._log("unload-conn", msg["name"])
        del self.conns[msg["name"]]

    def unload_shared(self, msg):
        self._log("unload-shared", msg["id"])
        del self.shared[msg["id"]]

    def terminate(self, msg):
        if "ike-id" in msg:
            self._log("terminate", "#" + msg["ike-id"])
            self.sas = [sa for sa in self.sas if list(sa.values())[0].get("uniqueid") != msg["ike-id"].encode()]
            return iter(())
        return self._terminate(msg)

    def _terminate(self, msg):
        self._log("terminate", msg["ike"])
        if not any(msg["ike"] in sa for sa in self.sas):
            raise CommandException("Command failed: no matching SAs to terminate found")
        self.sas = [sa for sa in self.sas if msg["ike"] not in sa]
        yield from ()

    def initiate(self, msg):
        self._log("initiate", msg["child"])
        assert msg["timeout"] == "-1"
        yield from ()

    def rekey(self, msg):
        self._log("rekey", msg["child"])

    def list_sas(self, msg):
        yield from self.sas


def established(peer, kids, state="ESTABLISHED"):
    return {"pyovl-%s" % peer: {"state": state.encode(), "child-sas": {
        "%s-%d" % (k, i): {"name": k.encode(), "state": b"INSTALLED", "mode": b"TRANSPORT"}
        for i, k in enumerate(kids)}}}


@pytest.fixture
def fake():
    f = FakeVici()
    i = ike.Ike("unix:///nonexistent")
    i._session = f
    return i, f


def test_apply_loads_keys_then_connections(fake):
    i, f = fake
    r = i.apply(N1, [N3, N2], KEYS, [4789])
    assert r == {"loaded": 2, "removed": 0, "keys_removed": 0}
    assert f.calls == [("load-shared", "pyovl-n1+n2"), ("load-shared", "pyovl-n1+n3"),
                       ("load-conn", "pyovl-n2"), ("load-conn", "pyovl-n3")]
    assert f.shared["pyovl-n1+n2"]["data"] == KEY
    assert f.shared["pyovl-n1+n2"]["owners"] == ["n1", "n2"]
    assert set(f.conns) == {"operator-vpn", "pyovl-n2", "pyovl-n3"}


def test_apply_removes_exactly_the_gone_peer(fake):
    i, f = fake
    i.apply(N1, [N2, N3], KEYS, [4789])
    f.sas = [established("n2", ike.child_names("n2")), established("n3", ike.child_names("n3"))]
    f.calls.clear()
    r = i.apply(N1, [N2], KEYS, [4789])
    assert r == {"loaded": 1, "removed": 1, "keys_removed": 1}
    gone = [c for c in f.calls if c[1].endswith("n3")]
    assert gone == [("unload-conn", "pyovl-n3"), ("terminate", "pyovl-n3"), ("unload-shared", "pyovl-n1+n3")]
    assert set(f.conns) == {"operator-vpn", "pyovl-n2"}  # the operator's own stays
    assert set(f.shared) == {"operator-key", "pyovl-n1+n2"}
    assert [list(sa) for sa in f.sas] == [["pyovl-n2"]]


def test_apply_without_sas_to_terminate(fake):
    i, f = fake
    i.apply(N1, [N2, N3], KEYS, [4789])
    i.apply(N1, [], KEYS, [4789])  # "no matching SAs" is not an error
    assert set(f.conns) == {"operator-vpn"} and set(f.shared) == {"operator-key"}


def test_apply_nothing_needs_no_ports(fake):
    i, f = fake
    i.apply(N1, [N2], KEYS, [4789])
    assert i.apply(N1, [], {}, set()) == {"loaded": 0, "removed": 1, "keys_removed": 1}


def test_apply_is_idempotent(fake):
    i, f = fake
    i.apply(N1, [N2], KEYS, [4789])
    first = (dict(f.conns), dict(f.shared))
    i.apply(N1, [N2], KEYS, [4789])
    assert (f.conns, f.shared) == first
    assert not [c for c in f.calls if c[0].startswith(("unload", "terminate"))]


def test_apply_missing_key_refused_before_any_change(fake):
    i, f = fake
    with pytest.raises(UsageError, match="no pre-shared key for pair n1\\+n3"):
        i.apply(N1, [N2, N3], {"n2": Secret(KEY)}, [4789])
    assert f.calls == []


def test_apply_self_as_peer_refused(fake):
    i, _ = fake
    with pytest.raises(UsageError, match="its own"):
        i.apply(N1, [N1], {"n1": Secret(KEY)}, [4789])


def test_errors_and_logs_never_carry_the_key(fake, caplog):
    i, f = fake
    f.fail = "load-shared"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ike.IkeError) as e:
        i.apply(N1, [N2], KEYS, [4789])
    assert isinstance(e.value, KernelError)
    assert str(e.value) == "charon refused load-shared for pair n1+n2: load-shared went wrong"
    assert e.value.__cause__ is None and e.value.__suppress_context__
    f.fail = None
    i.apply(N1, [N2], KEYS, [4789])
    for text in [str(e.value)] + [r.getMessage() for r in caplog.records]:
        assert KEY.hex() not in text and repr(KEY) not in text and "ZZZZ" not in text


def test_sa_state(fake):
    i, f = fake
    i.apply(N1, [N2, N3], KEYS, [4789])
    assert i.sa_state() == {"n2": False, "n3": False}
    f.sas = [established("n2", ike.child_names("n2")),
             established("n3", ike.child_names("n3")[:1]),  # one direction only
             {"operator-vpn": {"state": b"ESTABLISHED"}}]
    assert i.sa_state() == {"n2": True, "n3": False}
    f.sas = [established("n2", ike.child_names("n2"), state="CONNECTING")]
    assert i.sa_state() == {"n2": False, "n3": False}
    # a CHILD_SA being rekeyed still carries traffic: no "down" blip per rekey
    sa = established("n2", ike.child_names("n2"))
    for c in sa["pyovl-n2"]["child-sas"].values():
        c["state"] = b"REKEYING"
    f.sas = [sa]
    assert i.sa_state()["n2"] is True
    for c in sa["pyovl-n2"]["child-sas"].values():
        c["state"] = b"DELETING"
    assert i.sa_state()["n2"] is False


def test_initiate_only_missing_children(fake):
    i, f = fake
    i.apply(N1, [N2], KEYS, [4789])
    f.calls.clear()
    assert i.initiate("n2") == list(ike.child_names("n2"))
    f.sas = [established("n2", ike.child_names("n2")[1:])]
    assert i.initiate("n2") == ["pyovl-n2-to-peer"]
    f.sas = [established("n2", ike.child_names("n2"))]
    assert i.initiate("n2") == []


def test_remove_one_peer(fake):
    i, f = fake
    i.apply(N1, [N2, N3], KEYS, [4789])
    i.remove("n3")
    assert set(f.conns) == {"operator-vpn", "pyovl-n2"}
    assert set(f.shared) == {"operator-key", "pyovl-n1+n2"}


def test_unreachable_daemon():
    with pytest.raises(ike.IkeError, match="cannot reach charon's vici at unix:///nonexistent/x"):
        ike.Ike("unix:///nonexistent/x").version()
    with pytest.raises(UsageError, match="vici URI"):
        ike.Ike("http://x").version()


def dup(peer, uid, initiator, spi, kids=None):
    sa = established(peer, ike.child_names(peer) if kids is None else kids)
    sa["pyovl-%s" % peer].update({"uniqueid": str(uid).encode(), "initiator-spi": spi.encode()})
    if initiator:
        sa["pyovl-%s" % peer]["initiator"] = b"yes"
    return sa


def test_tidy_keeps_the_same_ike_sa_on_both_ends(fake):
    i, f = fake
    f.sas = [dup("n2", 1, True, "aa"), dup("n2", 2, False, "bb")]
    # on n1 (sorts first): keep what n1 initiated (uid 1), end uid 2
    assert i.tidy("n1") == 1
    assert f.calls == [("terminate", "#2")]
    f.calls.clear()
    # the same pair seen from n2: n1 initiated the one n2 responded to
    f.sas = [dup("n1", 7, False, "aa"), dup("n1", 8, True, "bb")]
    j = ike.Ike("unix:///x")
    g = FakeVici()
    j._session = g
    g.sas = f.sas
    terminated = []
    g.terminate = lambda msg: (terminated.append(msg["ike-id"]), iter(()))[1]
    assert j.tidy("n2") == 1 and terminated == ["8"]


def test_tidy_prefers_the_complete_one(fake):
    i, f = fake
    # after a race strongSwan may put one child in each IKE_SA, or both in
    # one: the complete one wins on both ends, whoever initiated it
    f.sas = [dup("n2", 1, True, "aa", kids=ike.child_names("n2")[:1]), dup("n2", 2, False, "bb")]
    assert i.tidy("n1") == 1 and f.calls[-1] == ("terminate", "#1")


def test_tidy_leaves_single_or_split(fake):
    i, f = fake
    f.sas = [dup("n2", 1, True, "aa")]
    assert i.tidy("n1") == 0
    # one child in each: ending either would lose a direction; touch nothing
    f.sas = [dup("n2", 1, True, "aa", kids=ike.child_names("n2")[:1]),
             dup("n2", 2, False, "bb", kids=ike.child_names("n2")[1:])]
    assert i.tidy("n1") == 0
