"""pyovl.mesh.keys: per-pair pre-shared key files.

Matrix:
  generate  new dir (0700, files 0600) | extend: keys kept, new pairs only |
            remove a node: exactly its pairs and file go | PDC change |
            files that disagree | loose existing dir | returns no keys
  load      good file | group/other readable | not root-owned | symlink |
            malformed JSON / shape / base64 / length / pair id |
            another node's pairs | missing pair | extra pairs ignored
  Secret    repr/str/format redacted, in containers too, no pickle, equality
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import pickle
import shutil
import stat
import tempfile
from dataclasses import dataclass

import pytest

from pyovl.errors import PyovlError, UsageError
from pyovl.mesh import keys


@dataclass(frozen=True)
class N:
    name: str
    pdc: str
    admin: str = "10.0.0.1"
    external: str = "198.18.0.1"


INV = [N("n1", "a"), N("n2", "a"), N("n3", "b"), N("n4", "c")]


def read(d, node):
    with open(os.path.join(d, node + ".json")) as f:
        return json.load(f)["pairs"]


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def tmp():
    """A private scratch directory, removed afterwards (pytest's tmp_path
    keeps the last runs' files around: these are key files)."""
    d = tempfile.mkdtemp(prefix="pyovl-keys-test-")
    try:
        yield pathlib.Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def kdir(tmp):
    return str(tmp / "keys")


def load(d, me, peers):
    # unit tests may run unprivileged: the owner check is covered separately
    return keys.load(os.path.join(d, me + ".json"), me, peers, require_root=os.geteuid() == 0)


def test_pair_id_sorted():
    assert keys.pair_id("n3", "n1") == keys.pair_id("n1", "n3") == "n1+n3"
    with pytest.raises(UsageError):
        keys.pair_id("n1", "n1")


def test_needed_pairs_cross_pdc_only():
    assert keys.needed_pairs(INV) == {
        "n1": {"n1+n3", "n1+n4"}, "n2": {"n2+n3", "n2+n4"},
        "n3": {"n1+n3", "n2+n3", "n3+n4"}, "n4": {"n1+n4", "n2+n4", "n3+n4"}}


def test_generate_new_dir_modes_and_consistency(kdir):
    r = keys.generate(INV, kdir)
    assert (r.files_written, r.pairs_total, r.pairs_added, r.pairs_kept, r.pairs_dropped) == (4, 5, 5, 0, 0)
    assert mode(kdir) == 0o700
    assert sorted(os.listdir(kdir)) == ["n1.json", "n2.json", "n3.json", "n4.json"]
    for n in INV:
        assert mode(os.path.join(kdir, n.name + ".json")) == 0o600
    p1, p3 = read(kdir, "n1"), read(kdir, "n3")
    assert set(p1) == {"n1+n3", "n1+n4"}  # only its own pairs
    assert p1["n1+n3"] == p3["n1+n3"]  # both ends hold the same key
    assert len(base64.b64decode(p1["n1+n3"])) == 32
    assert len({v for n in INV for v in read(kdir, n.name).values()}) == 5  # all distinct


def test_generate_returns_no_key_material(kdir):
    r = keys.generate(INV, kdir)
    text = repr(r) + str(r)
    for n in INV:
        for v in read(kdir, n.name).values():
            assert v not in text


def test_generate_is_idempotent(kdir):
    keys.generate(INV, kdir)
    before = {n.name: read(kdir, n.name) for n in INV}
    r = keys.generate(INV, kdir)
    assert (r.files_written, r.pairs_added, r.pairs_kept) == (0, 0, 5)
    assert {n.name: read(kdir, n.name) for n in INV} == before


def test_add_node_only_adds_its_pairs(kdir):
    keys.generate(INV, kdir)
    before = {n.name: read(kdir, n.name) for n in INV}
    r = keys.generate(INV + [N("n5", "a")], kdir)
    assert (r.pairs_added, r.pairs_kept, r.pairs_dropped) == (2, 5, 0)
    after = {n: read(kdir, n) for n in ("n1", "n2", "n3", "n4", "n5")}
    assert after["n1"] == before["n1"] and after["n2"] == before["n2"]  # same PDC as n5: untouched
    for n in ("n3", "n4"):
        new = set(after[n]) - set(before[n])
        assert new == {"%s+n5" % n}
        assert {k: after[n][k] for k in before[n]} == before[n]  # existing keys kept
    assert set(after["n5"]) == {"n3+n5", "n4+n5"}


def test_remove_node_drops_exactly_its_pairs_and_file(kdir):
    keys.generate(INV, kdir)
    before = {n.name: read(kdir, n.name) for n in INV}
    r = keys.generate([n for n in INV if n.name != "n3"], kdir)
    assert (r.files_removed, r.pairs_dropped, r.pairs_added) == (1, 3, 0)
    assert not os.path.exists(os.path.join(kdir, "n3.json"))
    for n in ("n1", "n2", "n4"):
        want = {k: v for k, v in before[n].items() if "n3" not in k.split("+")}
        assert read(kdir, n) == want


def test_pdc_move_changes_pairs(kdir):
    keys.generate(INV, kdir)
    r = keys.generate([N("n1", "a"), N("n2", "a"), N("n3", "a"), N("n4", "c")], kdir)
    assert (r.pairs_dropped, r.pairs_added, r.pairs_kept) == (2, 0, 3)  # n1+n3, n2+n3 gone
    assert set(read(kdir, "n3")) == {"n3+n4"}
    assert set(read(kdir, "n1")) == {"n1+n4"}


def test_key_recovered_from_the_other_file(kdir):
    keys.generate(INV, kdir)
    k13 = read(kdir, "n3")["n1+n3"]
    os.unlink(os.path.join(kdir, "n1.json"))
    keys.generate(INV, kdir)
    assert read(kdir, "n1")["n1+n3"] == k13


def test_disagreeing_files_refused(kdir):
    keys.generate(INV, kdir)
    path = os.path.join(kdir, "n1.json")
    doc = json.load(open(path))
    doc["pairs"]["n1+n3"] = base64.b64encode(b"x" * 32).decode()
    with open(path, "w") as f:
        json.dump(doc, f)
    with pytest.raises(UsageError, match="n1.json and n3.json hold different keys for pair n1\\+n3"):
        keys.generate(INV, kdir)


def test_loose_existing_dir_refused(tmp):
    d = tmp / "k"
    d.mkdir()
    os.chmod(d, 0o755)
    with pytest.raises(UsageError, match="chmod 700"):
        keys.generate(INV, str(d))


def test_bad_node_name_refused(kdir):
    with pytest.raises(UsageError, match="invalid node name"):
        keys.generate([N("../etc", "a"), N("n2", "b")], kdir)


def test_load_good(kdir):
    keys.generate(INV, kdir)
    got = load(kdir, "n3", [N("n1", "a"), "n2", "n4"])
    assert set(got) == {"n1", "n2", "n4"}
    assert got["n1"].reveal() == base64.b64decode(read(kdir, "n1")["n1+n3"])
    assert got["n1"] == load(kdir, "n1", ["n3"])["n3"]


def test_load_ignores_pairs_of_peers_not_asked_for(kdir):
    keys.generate(INV, kdir)
    assert set(load(kdir, "n3", ["n1"])) == {"n1"}
    assert load(kdir, "n2", []) == {}


@pytest.mark.parametrize("m", [0o640, 0o604, 0o620, 0o660, 0o644])
def test_load_refuses_group_other_modes(kdir, m):
    keys.generate(INV, kdir)
    path = os.path.join(kdir, "n1.json")
    os.chmod(path, m)
    with pytest.raises(UsageError, match="open to group/other .*chmod 600") as e:
        load(kdir, "n1", ["n3"])
    assert "\n" not in str(e.value)


def test_load_refuses_non_root_owner(kdir, monkeypatch):
    keys.generate(INV, kdir)
    real = os.fstat

    class St:
        def __init__(self, st):
            self._st = st

        def __getattr__(self, k):
            return 1000 if k == "st_uid" else getattr(self._st, k)

    monkeypatch.setattr(keys.os, "fstat", lambda fd: St(real(fd)))
    with pytest.raises(UsageError, match="owned by uid 1000, not root; run: chown root:root"):
        keys.load(os.path.join(kdir, "n1.json"), "n1", ["n3"])


def test_load_refuses_symlink(kdir, tmp):
    keys.generate(INV, kdir)
    link = tmp / "link.json"
    os.symlink(os.path.join(kdir, "n1.json"), link)
    with pytest.raises(UsageError, match="symbolic link"):
        keys.load(str(link), "n1", ["n3"], require_root=False)


def test_load_missing_file(tmp):
    with pytest.raises(UsageError, match="cannot read key file"):
        keys.load(str(tmp / "nope.json"), "n1", [])


GOOD = base64.b64encode(b"k" * 32).decode()


@pytest.mark.parametrize("content,msg", [
    ("{", "not valid JSON"),
    ("[]", "expected"),
    (json.dumps({"version": 1}), "expected"),
    (json.dumps({"version": 2, "pairs": {}}), "version 2"),
    (json.dumps({"version": 1, "pairs": []}), "must be an object"),
    (json.dumps({"version": 1, "pairs": {"n1+n3": "***"}}), "not valid base64"),
    (json.dumps({"version": 1, "pairs": {"n1+n3": base64.b64encode(b"short").decode()}}), "5 bytes, not 32"),
    (json.dumps({"version": 1, "pairs": {"n1+n3": 7}}), "not a base64 string"),
    (json.dumps({"version": 1, "pairs": {"n3+n1": GOOD}}), "invalid pair id"),
    (json.dumps({"version": 1, "pairs": {"n1": GOOD}}), "invalid pair id"),
    (json.dumps({"version": 1, "pairs": {"n2+n3": GOOD}}), "not node n1's"),
    (json.dumps({"version": 1, "pairs": {"n1+n4": GOOD}}), "no key for pair n1\\+n3"),
])
def test_load_refuses_malformed(tmp, content, msg):
    path = tmp / "n1.json"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(UsageError, match=msg) as e:
        keys.load(str(path), "n1", ["n3"], require_root=False)
    assert isinstance(e.value, PyovlError) and "\n" not in str(e.value)
    assert GOOD not in str(e.value)


def test_secret_is_redacted():
    s = keys.Secret(b"\x01" * 32)
    for text in (repr(s), str(s), "%s" % s, "{}".format(s), f"{s!r}", repr({"n1": s}), repr([s])):
        assert text.count("Secret(<redacted>)") == 1
        assert "\\x01" not in text and "AQEB" not in text
    assert s.reveal() == b"\x01" * 32
    assert s == keys.Secret(b"\x01" * 32) and s != keys.Secret(b"\x02" * 32)
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(TypeError):
        hash(s)
    with pytest.raises(TypeError):
        keys.Secret("text")  # type: ignore[arg-type]


def test_loaded_keys_do_not_print(kdir):
    keys.generate(INV, kdir)
    got = load(kdir, "n1", ["n3", "n4"])
    text = repr(got)
    for v in read(kdir, "n1").values():
        assert v not in text
    assert "<redacted>" in text
