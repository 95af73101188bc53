"""A broken files-plugin table: one quick PluginError, never a hang.

Contract under test (pyovl/lookup/plugins/files.py): whatever the mapping
file is (not UTF-8, nested too deeply, a huge number, a FIFO, a directory,
a device, a symlink loop, unreadable, too big, gone), start() and
check_reload() raise PluginError with a one-line reason and nothing else,
and never block. Each call runs under a timeout guard, so a blocking open()
or read() fails the test instead of hanging the run. An unchanged broken
file is not read again, and the old table stays in use. The overlay.json
and key-file readers share the non-blocking read (inputs.read_file); their
FIFO cases are here too, for the guard.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from pyovl import inputs
from pyovl.config import load
from pyovl.errors import UsageError
from pyovl.lookup.plugin import Destination, PluginError
from pyovl.lookup.plugins import files as files_mod
from pyovl.lookup.plugins.files import FilesPlugin
from pyovl.mesh import keys

GOOD = {"02:00:00:00:00:01": {"ip": "198.18.0.2", "port": 4789, "arp": "10.0.0.1"}}
TIMEOUT = 5.0


def guarded(fn, fifo: str | None = None):
    """fn() in a thread, its exception returned; fails after TIMEOUT.

    Should fn block opening fifo, a writer is opened and closed to release it
    (the thread would otherwise outlive the test)."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(TIMEOUT)
    if t.is_alive():
        if fifo:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("%s blocked for %.0f s" % (getattr(fn, "__name__", fn), TIMEOUT))
    return box.get("error")


def plugin(path) -> FilesPlugin:
    return FilesPlugin(42, {"files/config": str(path)})


def assert_plugin_error(e: BaseException | None, match: str) -> str:
    assert isinstance(e, PluginError), repr(e)
    s = str(e)
    assert s.isprintable() and match in s, s
    return s


def fails_quickly(path, match: str, fifo: bool = False) -> str:
    """start() and check_reload() on path both raise PluginError(match)."""
    p = plugin(path)
    s = assert_plugin_error(guarded(p.start, str(path) if fifo else None), match)
    assert_plugin_error(guarded(p.check_reload, str(path) if fifo else None), match)
    return s


# -- each kind of broken file ------------------------------------------------

@pytest.mark.parametrize("data,match", [
    (b'{"02:00:00:00:00:01": {"ip": "caf\xe9"}}', "not UTF-8 text (byte 0xe9"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    (b'{"02:00:00:00:00:01": {"ip": "198.18.0.2", "port": ' + b"9" * 5000 + b"}}", "too many digits"),
    (b'{"02:00:00:00:00:01": {"ip": NaN}}', "NaN is not JSON"),
    (b"", "invalid JSON at line 1 column 1"),
    (b'{"02:00:00:00:00:01\\n": {}}', "'02:00:00:00:00:01\\n' is not a MAC address"),
    (b'{" 2:00:00:00:00:01": {}}', "is not a MAC address"),
    (b'{"02:00:00:00:00:01": [' + b"[" * 500 + b"]" * 500 + b"]}", "must be an object"),
])
def test_bad_content(tmp_path, data, match):
    path = tmp_path / "t.json"
    path.write_bytes(data)
    fails_quickly(path, match)


def test_fifo_does_not_block(tmp_path):
    path = tmp_path / "t.json"
    os.mkfifo(path)  # no writer: a blocking open() or read() would never return
    fails_quickly(path, "is a FIFO, not a regular file", fifo=True)


def test_directory(tmp_path):
    fails_quickly(tmp_path, "is a directory, not a regular file")


def test_device():
    fails_quickly("/dev/null", "is a character device, not a regular file")


def test_symlink_loop(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    os.symlink(b, a)
    os.symlink(a, b)
    fails_quickly(a, "Too many levels of symbolic links")


def test_symlink_to_a_fifo(tmp_path):
    fifo, link = tmp_path / "fifo", tmp_path / "t.json"
    os.mkfifo(fifo)
    os.symlink(fifo, link)
    fails_quickly(link, "is a FIFO", fifo=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000")
def test_unreadable(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(GOOD))
    path.chmod(0)
    fails_quickly(path, "Permission denied")


def test_open_refused(tmp_path, monkeypatch):
    """What an unreadable file does for a non-root daemon, for root too."""
    path = tmp_path / "t.json"
    path.write_text(json.dumps(GOOD))

    def refuse(*a, **kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(inputs.os, "open", refuse)
    fails_quickly(path, "t.json: Permission denied")


def test_too_big(tmp_path, monkeypatch):
    monkeypatch.setattr(files_mod, "MAX_BYTES", 1 << 20)
    path = tmp_path / "t.json"
    path.write_bytes(b" " * ((1 << 20) + 1))
    fails_quickly(path, "more than 1 MiB is refused")


def test_missing_and_vanishing(tmp_path):
    fails_quickly(tmp_path / "nope.json", "No such file or directory")
    path = tmp_path / "t.json"
    path.write_text(json.dumps(GOOD))
    p = plugin(path)
    assert guarded(p.start) is None
    path.unlink()
    assert_plugin_error(guarded(p.check_reload), "No such file or directory")
    assert p.lookup("02:00:00:00:00:01") == Destination("198.18.0.2", 4789)  # the old table stays


@pytest.mark.parametrize("bad", ["/etc/a\0b", "/etc/\ud800", 3])
def test_unusable_path(bad):
    # 3 is no path: os.stat(3) would stat file descriptor 3
    assert_plugin_error(guarded(FilesPlugin(1, {"files/config": bad}).start), "invalid path")


# -- a persistently broken file is not re-read --------------------------------

def test_unchanged_broken_file_is_not_reparsed(tmp_path, monkeypatch):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(GOOD))
    p = plugin(path)
    p.start()
    path.write_bytes(b"[" * 100000)
    os.utime(path, ns=(1, 10 ** 18))
    first = assert_plugin_error(guarded(p.check_reload), "nested too deeply")
    reads = []
    real = files_mod.read_file
    monkeypatch.setattr(files_mod, "read_file", lambda *a, **kw: reads.append(1) or real(*a, **kw))
    t0 = time.perf_counter()
    for _ in range(50):  # what the daemon does every 0.2 s
        with pytest.raises(PluginError) as e:
            p.check_reload()
        assert str(e.value) == first
        assert len(_frames(e.value)) < 10  # a fresh exception, not one whose traceback grows each time
    assert reads == [] and time.perf_counter() - t0 < 0.5
    assert p.lookup("02:00:00:00:00:01") == Destination("198.18.0.2", 4789)  # the old table stays
    # fixed: the next check heals, once the file changed
    path.write_text(json.dumps({"02:00:00:00:00:01": {"ip": "198.18.0.3", "port": 4789}}))
    os.utime(path, ns=(2, 2 * 10 ** 18))
    assert p.check_reload() == {"02:00:00:00:00:01"} and reads == [1]
    assert p.lookup("02:00:00:00:00:01") == Destination("198.18.0.3", 4789)


def test_failed_start_is_not_reparsed_either(tmp_path, monkeypatch):
    """The daemon retries start() every 0.2 s until it succeeds."""
    path = tmp_path / "t.json"
    path.write_bytes(b"{ broken")
    p = plugin(path)
    with pytest.raises(PluginError, match="invalid JSON"):
        p.start()
    reads = []
    real = files_mod.read_file
    monkeypatch.setattr(files_mod, "read_file", lambda *a, **kw: reads.append(1) or real(*a, **kw))
    for _ in range(20):
        with pytest.raises(PluginError, match="invalid JSON"):
            p.start()
    assert reads == []
    path.write_text(json.dumps(GOOD))
    p.start()
    assert reads == [1] and p.lookup("02:00:00:00:00:01") == Destination("198.18.0.2", 4789)


def test_chmod_retries_a_failed_read(tmp_path, monkeypatch):
    """A permission fix changes only ctime: it must still be retried."""
    path = tmp_path / "t.json"
    path.write_text(json.dumps(GOOD))
    p = plugin(path)
    real_open = inputs.os.open
    def refuse(*a, **kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(inputs.os, "open", refuse)
    with pytest.raises(PluginError, match="Permission denied"):
        p.start()
    monkeypatch.setattr(inputs.os, "open", real_open)
    with pytest.raises(PluginError, match="Permission denied"):
        p.start()  # same signature: the cached reason
    path.chmod(0o644)  # ctime moves
    p.start()
    assert p.lookup("02:00:00:00:00:01") == Destination("198.18.0.2", 4789)


def _frames(e: BaseException) -> list:
    out, tb = [], e.__traceback__
    while tb is not None:
        out.append(tb)
        tb = tb.tb_next
    return out


# -- entries: malformed fields answer Drop, and the IP cache -----------------

def test_malformed_fields_still_answer_drop(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({
        "02:00:00:00:00:01": {"ip": ["198.18.0.2"], "port": 4789},
        "02:00:00:00:00:02": {"ip": {"a": 1}, "port": 4789},
        "02:00:00:00:00:03": {"ip": "fe80::1%eth0\nx", "port": 4789},
        "02:00:00:00:00:04": {"ip": "198.18.0.2", "port": 10 ** 100},
        "02:00:00:00:00:05": {"ip": "198.18.0.2", "port": True},
        "02:00:00:00:00:06": {"ip": "198.18.0.2", "port": 4789, "arp": ["x"], "ndp": {}, "dhcp-proxy": 5},
        "02:00:00:00:00:07": {"ip": "198.18.0.2", "port": 4789},
    }))
    p = plugin(path)
    p.start()
    for i in range(1, 6):
        assert not isinstance(p.lookup("02:00:00:00:00:0%d" % i), Destination), i
    assert p.lookup("02:00:00:00:00:06") == p.lookup("02:00:00:00:00:07") == Destination("198.18.0.2", 4789)
    assert p.table.arp == {} and p.table.ndp == {} and p.table.dhcp == {}


def test_repeated_underlay_ips_are_parsed_once(tmp_path, monkeypatch):
    table = {"02:00:00:%02x:%02x:%02x" % (i >> 16 & 255, i >> 8 & 255, i & 255):
             {"ip": "198.18.0.%d" % (i % 7 + 1), "port": 4789} for i in range(2000)}
    table["02-00-00-FF-FF-FF"] = {"ip": "FD00::0001", "port": 4789}  # other spellings are normalised
    path = tmp_path / "t.json"
    path.write_text(json.dumps(table))
    calls = []
    real = files_mod.ipaddress.ip_address
    monkeypatch.setattr(files_mod.ipaddress, "ip_address", lambda t: calls.append(t) or real(t))
    p = plugin(path)
    p.start()
    assert len(calls) == 8
    assert p.lookup("02:00:00:ff:ff:ff") == Destination("fd00::1", 4789)
    assert p.lookup("02:00:00:00:00:07") == Destination("198.18.0.1", 4789)


# -- the other readers: overlay.json and key files never block either --------

@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_overlay_json_that_is_no_regular_file(tmp_path, kind):
    path = tmp_path / "o.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path = "/dev/null"
    e = guarded(lambda: load.load_file(str(path)), str(path) if kind == "fifo" else None)
    assert isinstance(e, UsageError) and "not a regular file" in str(e) and str(e).isprintable(), repr(e)


def test_key_file_fifo(tmp_path):
    path = tmp_path / "n1.json"
    os.mkfifo(path, 0o600)
    e = guarded(lambda: keys.load(str(path), "n1", ["n3"], require_root=False), str(path))
    assert isinstance(e, UsageError) and "not a regular file" in str(e), repr(e)
