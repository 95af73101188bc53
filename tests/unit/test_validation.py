"""Input validation and pure helpers: no root, no kernel."""

from __future__ import annotations

import pytest

from pyovl import values
from pyovl.dataplane import abi
from pyovl.dataplane.source import flatten
from pyovl.errors import UsageError


@pytest.mark.parametrize("vni", [0, 1, 23, 0xFFFFFF])
def test_vni_in_range(vni):
    assert values.vni(vni) == vni


@pytest.mark.parametrize("vni", [-1, 0x1000000, 2**32])
def test_vni_out_of_range(vni):
    with pytest.raises(UsageError, match=r"vnetid .* out of range \(0-16777215\)"):
        values.vni(vni)


@pytest.mark.parametrize("port", [0, 65536, -4])
def test_port_out_of_range(port):
    with pytest.raises(UsageError, match=r"out of range \(1-65535\)"):
        values.port(port)


@pytest.mark.parametrize("text,raw", [
    ("02:00:00:00:00:0a", b"\x02\0\0\0\0\x0a"),
    ("2:0:0:0:0:A", b"\x02\0\0\0\0\x0a"),
    ("de-ad-be-ef-00-01", b"\xde\xad\xbe\xef\x00\x01"),
])
def test_mac_spellings(text, raw):
    assert abi.mac_bytes(text) == raw
    assert abi.mac_str(raw) == ":".join("%02x" % b for b in raw)


@pytest.mark.parametrize("bad", ["", "02:00:00:00:00", "02:00:00:00:00:0g", "020000000000"])
def test_bad_mac(bad):
    with pytest.raises(UsageError, match="invalid MAC"):
        values.mac(bad)


def test_multicast_mac_rejected_for_ports():
    with pytest.raises(UsageError, match="multicast"):
        values.mac("01:00:5e:00:00:01")


def test_addr_v4_mapped_roundtrip():
    a = abi.Addr.of("198.18.0.1")
    assert bytes(a.b) == b"\0" * 10 + b"\xff\xff" + bytes([198, 18, 0, 1])
    assert str(a.ip()) == "198.18.0.1"
    assert str(abi.Addr.of("fd00::1").ip()) == "fd00::1"


def test_flatten_inlines_quoted_includes_once(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.h").write_text("int a;\n")
    (tmp_path / "main.c").write_text('#include <sys.h>\n#include "lib/a.h"\n#include "lib/a.h"\nint m;\n')
    out = flatten(tmp_path / "main.c")
    assert out.count("int a;") == 1
    assert "#include <sys.h>" in out
    assert '#line 1 "%s"' % (tmp_path / "lib" / "a.h") in out
    assert out.rstrip().endswith("int m;")
