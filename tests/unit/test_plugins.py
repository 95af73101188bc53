"""Search plugins without a kernel: files parsing, lookups, reload; registry."""

from __future__ import annotations

import json
import os

import pytest

from pyovl.errors import PyovlError
from pyovl.lookup import registry
from pyovl.lookup.plugin import Destination, Drop, PluginError
from pyovl.lookup.plugins.direct import DirectPlugin
from pyovl.lookup.plugins.files import FilesPlugin


def files(tmp_path, doc):
    p = tmp_path / "t.json"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    plug = FilesPlugin(42, {"files/config": str(p)})
    return plug, p


GOOD = {
    "DE:AD:BE:EF:0:0": {"arp": "10.55.55.2", "ip": "10.88.88.69", "ndp": "fe80::3", "port": 4789},
    "de-ad-be-ef-00-01": {"arp": "10.55.55.3", "dhcp-proxy": "de:ad:be:ef:00:00", "ip": "fd00::70",
                          "ndp": "fe80::4", "port": 4789},
    "de:ad:be:ef:00:02": {"arp": "10.55.55.4", "ip": "10.88.88.71"},          # no port
    "de:ad:be:ef:00:03": {"ip": "not-an-ip", "port": 4789, "arp": 5},           # malformed fields
    "de:ad:be:ef:00:04": {"ip": "10.88.88.72", "port": 70000},                   # port out of range
}


def test_lookups_follow_illumos(tmp_path):
    plug, _ = files(tmp_path, GOOD)
    plug.start()
    assert plug.lookup("de:ad:be:ef:00:00") == Destination("10.88.88.69", 4789)  # any MAC spelling
    assert plug.lookup("de:ad:be:ef:00:01") == Destination("fd00::70", 4789)
    for mac in ("de:ad:be:ef:00:02", "de:ad:be:ef:00:03", "de:ad:be:ef:00:04", "02:00:00:00:00:99"):
        assert isinstance(plug.lookup(mac), Drop), mac
    assert plug.arp("10.55.55.3") == "de:ad:be:ef:00:01" and plug.arp("10.1.1.1") is None
    assert plug.ndp("fe80::3") == "de:ad:be:ef:00:00"
    assert plug.dhcp("de:ad:be:ef:00:01") == "de:ad:be:ef:00:00" and plug.dhcp("de:ad:be:ef:00:00") is None


@pytest.mark.parametrize("doc,message", [
    ("[1, 2]", "must be a JSON object keyed by MAC"),
    ('{"zz": {}}', "'zz' is not a MAC address"),
    ('{"02:00:00:00:00:01": 5}', "must be an object"),
    ("{", "invalid JSON at line 1"),
])
def test_bad_files_fail_start(tmp_path, doc, message):
    plug, _ = files(tmp_path, doc)
    with pytest.raises(PluginError, match=message):
        plug.start()


def test_missing_file_fails_start(tmp_path):
    plug = FilesPlugin(42, {"files/config": str(tmp_path / "nope.json")})
    with pytest.raises(PluginError, match="No such file"):
        plug.start()


def test_reload_swaps_whole_tables_and_keeps_the_old_on_error(tmp_path):
    plug, path = files(tmp_path, GOOD)
    plug.start()
    assert plug.check_reload() is None  # unchanged
    new = dict(GOOD)
    new["DE:AD:BE:EF:0:0"] = dict(GOOD["DE:AD:BE:EF:0:0"], ip="10.88.88.99")
    path.write_text(json.dumps(new))
    os.utime(path, ns=(1, 10**18))
    assert plug.check_reload() == {"de:ad:be:ef:00:00"}
    assert plug.lookup("de:ad:be:ef:00:00") == Destination("10.88.88.99", 4789)
    path.write_text("{ broken")
    with pytest.raises(PluginError, match="invalid JSON"):
        plug.check_reload()
    assert plug.lookup("de:ad:be:ef:00:00") == Destination("10.88.88.99", 4789)  # old table kept


def test_direct_default():
    d = DirectPlugin(23, {"direct/dest_ip": "198.18.0.2", "direct/dest_port": 4789})
    assert d.MODE == "point" and d.default() == Destination("198.18.0.2", 4789)


def test_registry_builtins_and_duplicates(monkeypatch):
    assert registry.names()[:2] == ("direct", "files")
    assert registry.plugins()["files"].ORIGIN == "pyovl (built-in)"

    class EP:
        def __init__(self, cls):
            self.cls, self.dist = cls, type("D", (), {"name": "thirdparty"})()

        def load(self):
            return self.cls

    class Dup(DirectPlugin):
        NAME = "direct"

    class Svp(FilesPlugin):
        NAME = "svp"

    monkeypatch.setattr(registry, "_cache", None)
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: [EP(Svp)])
    assert registry.plugins()["svp"].ORIGIN == "thirdparty"
    monkeypatch.setattr(registry, "_cache", None)
    monkeypatch.setenv("PYOVL_LOAD_PLUGINS", "0")
    assert "svp" not in registry.plugins()
    monkeypatch.delenv("PYOVL_LOAD_PLUGINS")
    monkeypatch.setattr(registry, "_cache", None)
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: [EP(Dup)])
    with pytest.raises(PyovlError, match="two search plugins are named direct"):
        registry.plugins()
    monkeypatch.setattr(registry, "_cache", None)
