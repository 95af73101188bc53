"""bpf/ovl_abi.h and pyovl/dataplane/abi.py must describe the same ABI.

Numbers are parsed from the header; struct sizes and offsets are measured by
compiling a probe against the header with the system C compiler.
"""

from __future__ import annotations

import ctypes as C
import re
import shutil
import subprocess

import pytest

from pyovl.dataplane import abi
from pyovl.dataplane.source import bpf_dir

HEADER = (bpf_dir() / "ovl_abi.h").read_text()


def _defines() -> dict[str, int]:
    out = {}
    for name, val in re.findall(r"^#define (OVL_\w+) (0x[0-9a-fA-F]+|\d+)\b", HEADER, re.M):
        out[name] = int(val, 0)
    return out


def _enum(name: str, env: dict | None = None) -> dict[str, int]:
    body = re.search(r"enum %s \{(.*?)\};" % name, HEADER, re.S).group(1)
    out, nxt = {}, 0
    for line in body.splitlines():
        m = re.match(r"\s*(OVL_\w+)(?:\s*=\s*([^,]+))?,", line)
        if not m:
            continue
        if m.group(2):
            expr = m.group(2).strip()
            nxt = int(expr, 0) if re.fullmatch(r"\d+|0x[0-9a-f]+", expr) else eval(expr, {}, {**(env or {}), **out})  # noqa: S307
        out[m.group(1)] = nxt
        nxt += 1
    return out


def test_constants_match():
    d = _defines()
    assert d["OVL_ABI_VERSION"] == abi.ABI_VERSION
    assert d["OVL_ABI_MAGIC"] == abi.ABI_MAGIC
    for name in ("MAX_VNI", "MAX_OVERLAYS", "MAX_VNICS", "MAX_TARGETS", "MAX_PEERS", "MAX_FLOOD",
                 "MAX_LISTEN", "MODE_POINT", "MODE_DYNAMIC", "TARGET_VALID", "TARGET_DROP",
                 "MAX_PENDING", "RING_PAGES", "MISS_FRAME_MAX", "MAX_NEXTHOPS", "LISTEN_PORTS"):
        assert d["OVL_" + name] == getattr(abi, name), name
    assert d["OVL_F_STRICT"] == abi.F_STRICT
    assert d["OVL_VNIC_F_PEER"] == abi.VNIC_F_PEER
    for name in ("DEST_F_ENCRYPT", "MESH_F_ENCRYPT", "MESH_IF_EXTERNAL", "MAX_MESH_PEERS", "MAX_MESH_IFACES"):
        assert d["OVL_" + name] == getattr(abi, name), name
    assert d["OVL_EV_F_FIRST"] == abi.EV_F_FIRST
    assert "#define OVL_NEXTHOP_TTL_NS 100000000ULL" in HEADER and abi.NEXTHOP_TTL_NS == 10**8
    assert "#define OVL_MISS_QUEUE_BYTES (128 * 1024)" in HEADER and abi.MISS_QUEUE_BYTES == 128 * 1024
    assert "#define OVL_MISS_INTERVAL_NS 1000000000ULL" in HEADER and abi.MISS_INTERVAL_NS == 10**9
    assert abi.MISS_FRAME_MAX & (abi.MISS_FRAME_MAX - 1) == 0, "punt.h masks with MISS_FRAME_MAX - 1"


def test_event_types_match():
    e = _enum("ovl_event_type")
    assert (e["OVL_EV_MISS"], e["OVL_EV_BCAST"]) == (abi.EV_MISS, abi.EV_BCAST)


def test_drop_reasons_match():
    e = _enum("ovl_drop")
    assert {k[len("OVL_DROP_"):]: v for k, v in e.items() if k != "OVL_DROP_MAX"} == \
        {d.name: d.value for d in abi.Drop}
    assert e["OVL_DROP_MAX"] == abi.DROP_MAX


def test_stat_slots_match():
    e = _enum("ovl_stat", _enum("ovl_drop"))
    for s in abi.Stat:
        assert e["OVL_STAT_" + s.name] == s.value
    assert e["OVL_STAT_MAX"] == abi.STAT_MAX


STRUCTS = {"ovl_addr": abi.Addr, "ovl_dest": abi.Dest, "ovl_overlay": abi.Overlay, "ovl_vnic": abi.Vnic,
           "ovl_l2key": abi.L2Key, "ovl_port": abi.Port, "ovl_flood": abi.Flood,
           "ovl_peer_key": abi.PeerKey, "ovl_abi_info": abi.AbiInfo, "ovl_trace": abi.Trace,
           "ovl_event_hdr": abi.EventHdr, "ovl_pending": abi.Pending, "ovl_mesh_peer": abi.MeshPeer,
           "ovl_mesh_cfg": abi.MeshCfg, "ovl_nh_key": abi.NhKey, "ovl_nexthop": abi.Nexthop}


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler to measure the header")
def test_struct_layout_matches(tmp_path):
    fields = []
    for cname, pyt in STRUCTS.items():
        fields.append('printf("%s %%zu\\n", sizeof(struct %s));' % (cname, cname))
        for fname, _ in pyt._fields_:
            if fname in ("b", "rest"):
                continue
            fields.append('printf("%s.%s %%zu\\n", offsetof(struct %s, %s));' % (cname, fname, cname, fname))
    src = tmp_path / "probe.c"
    src.write_text('#include <stdio.h>\n#include <stddef.h>\n#include <linux/types.h>\n'
                   '#include "%s"\nint main(void){%s return 0;}\n' % (bpf_dir() / "ovl_abi.h", "\n".join(fields)))
    subprocess.run(["cc", "-o", str(tmp_path / "probe"), str(src)], check=True)
    measured = dict(line.split() for line in subprocess.check_output([str(tmp_path / "probe")], text=True).splitlines())
    for cname, pyt in STRUCTS.items():
        assert int(measured[cname]) == C.sizeof(pyt), cname
        for fname, _ in pyt._fields_:
            if fname in ("b", "rest"):
                continue
            assert int(measured["%s.%s" % (cname, fname)]) == getattr(pyt, fname).offset, (cname, fname)


def test_map_table_uses_abi_types():
    assert abi.MAPS["targets"][1] is abi.L2Key and abi.MAPS["targets"][2] is abi.Dest
    assert abi.MAPS["stats"][3] == abi.MAX_OVERLAYS * abi.STAT_MAX
