"""The ledger and its journal: what an interrupted apply leaves, the next
run reads back.

  case                              | expected
  ----------------------------------+-------------------------------------------
  record, then commit               | control.json holds it, no journal left
  record, process dies (no commit)  | load() replays the journal
  the last journal line cut short   | the lines before it count, it does not
  a damaged journal line            | StateError naming the file, one line
  control.json of pyovl before 2    | read as version 2 (observed fields dropped)
  a damaged control.json            | StateError, one line
"""

from __future__ import annotations

import json
import os

import pytest

from pyovl.engine import ledger as L
from pyovl.errors import StateError

OV = {"spec": {"name": "ov0", "vnetid": 23, "encap": "vxlan", "search": "direct", "rule": None,
               "props": {"mtu": 1400, "vxlan/listen_ip": "198.18.0.1", "vxlan/listen_port": 4789,
                         "direct/dest_ip": "198.18.0.2", "direct/dest_port": 4789}},
      "source": "file", "persistent": False}


@pytest.fixture
def led(tmp_path, monkeypatch):
    monkeypatch.setenv("PYOVL_RUN_ROOT", str(tmp_path))
    return L.Ledger("i1")


def test_commit_writes_once_and_drops_the_journal(led):
    rec = led.load()
    led.record(rec, "set", "overlays", "ov0", OV)
    led.commit(rec)
    assert json.loads(open(led.path).read())["overlays"] == {"ov0": OV}
    assert not os.path.exists(led.journal_path)
    assert L.declaration(led.load()).overlays["ov0"].spec.vnetid == 23


def test_a_dead_process_is_replayed(led):
    rec = led.load()
    led.record(rec, "set", "overlays", "ov0", OV)
    led.record(rec, "set", "top", "file", "/etc/pyovl/o.json")
    led._close_journal()  # the process is gone: no commit
    again = L.Ledger("i1").load()
    assert again["overlays"] == {"ov0": OV} and again["file"] == "/etc/pyovl/o.json"


def test_a_cut_last_line_does_not_count(led):
    rec = led.load()
    led.record(rec, "set", "overlays", "ov0", OV)
    led._close_journal()
    with open(led.journal_path, "a") as f:
        f.write('{"op": "del", "kind": "overl')
    assert L.Ledger("i1").load()["overlays"] == {"ov0": OV}


def test_a_damaged_journal_is_one_line(led):
    os.makedirs(led.dir, exist_ok=True)
    with open(led.journal_path, "w") as f:
        f.write('{"op": "drop", "kind": "tables"}\n')
    with pytest.raises(StateError) as e:
        L.Ledger("i1").load()
    assert "journal.jsonl: damaged" in str(e.value) and "\n" not in str(e.value)


def test_old_control_json_is_upgraded(led, tmp_path):
    (tmp_path / "i1").mkdir(exist_ok=True)
    old = {"overlays": {"ov0": dict(OV, devices=["ul0"])},
           "vnics": {"g1": {"spec": {"name": "g1", "over": "ov0", "mac": None, "vlan": 0, "mtu": None,
                                     "netns": "ns1", "addresses": []},
                            "mac": "02:08:20:00:00:01", "host": "ovhabc", "source": "cli", "persistent": True,
                            "created_netns": True}},
           "degraded": {}}
    (tmp_path / "i1" / "control.json").write_text(json.dumps(old))
    rec = led.load()
    assert rec["version"] == 2 and "devices" not in rec["overlays"]["ov0"]
    assert rec["vnics"]["g1"]["created_netns"] is True and "host" not in rec["vnics"]["g1"]
    d = L.declaration(rec)
    assert d.vnics["g1"].mac == "02:08:20:00:00:01" and d.vnics["g1"].persistent


def test_a_damaged_control_json_is_one_line(led, tmp_path):
    (tmp_path / "i1").mkdir(exist_ok=True)
    (tmp_path / "i1" / "control.json").write_bytes(b"\xff\xfe[[[")
    with pytest.raises(StateError) as e:
        led.load()
    assert "control.json" in str(e.value) and "\n" not in str(e.value)
