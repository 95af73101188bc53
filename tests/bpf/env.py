"""The bpf tier's environment (helpers; the fixture is in conftest.py): one namespace holding a real underlay and
VNICs, the programs compiled with -DOVL_TRACE, and table-driven helpers.

    ns <prefix>-bpf
      ul0 198.18.0.1/24, fd00:198:18::1/64 --veth-- ul1
          neighbours: 198.18.0.2 / fd00:198:18::2 = 02:aa:00:00:00:02 (permanent)
          198.18.0.3: on-link, never resolved; 198.19.255.1: no route
      VNIC host ends (guest ends vXXg in the same ns):
          vp1, vp2  overlay 100 (dynamic, IPv4 underlay)
          vq1       overlay 200 (dynamic, listens on 0.0.0.0)
          vr1       overlay 300 (point -> 198.18.0.2:4789, listens on :4790)
          vs1       overlay 101 (dynamic, IPv6 underlay)
          vt1       overlay 102 (dynamic, strict)
          vz1       a vnic entry whose overlay (999) does not exist
          vv1, vv2  overlay 100 with VLAN ids 10 and 20

Fixture bpfenv / package / prefix: builds the above, enters the namespace for
the tier (BPF_PROG_RUN resolves ifindexes and routes in the caller's netns),
tears it all down afterwards.
"""

from __future__ import annotations

import ctypes as C
import struct
from dataclasses import dataclass, field


from pyovl.dataplane import abi, syscall

UL_MAC_PEER = "02:aa:00:00:00:02"
MAC = {
    "vp1": "02:00:00:00:01:01", "vp2": "02:00:00:00:01:02", "vq1": "02:00:00:00:02:01",
    "vr1": "02:00:00:00:03:01", "vs1": "02:00:00:00:01:11", "vt1": "02:00:00:00:01:21",
    "vz1": "02:00:00:00:09:01", "vv1": "02:00:00:00:01:0a", "vv2": "02:00:00:00:01:14",
}
REMOTE = "02:00:00:00:0b:01"      # (100, REMOTE) -> 198.18.0.2:4789
REMOTE_DROP = "02:00:00:00:0d:01"  # (100, ...) -> DROP
REMOTE_UNRES = "02:00:00:00:0e:01"  # (100, ...) -> 198.18.0.3 (neighbour never resolves)
REMOTE_NOROUTE = "02:00:00:00:0f:01"  # (100, ...) -> 198.19.255.1 (no route)
REMOTE6 = "02:00:00:00:0b:11"     # (101, ...) -> [fd00:198:18::2]:4789
PEER_STRICT = "02:00:00:00:0b:21"  # (102, ...) -> 198.18.0.2:4789

TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT = 0, 2, 7
XDP_DROP, XDP_PASS, XDP_REDIRECT = 1, 2, 4
SKB_CTX_SIZE = 192  # sizeof(struct __sk_buff) on 6.x


@dataclass
class Result:
    verdict: int
    out: bytes
    trace: abi.Trace | None


@dataclass
class BpfEnv:
    ns: str
    dp: object
    progs: dict[str, int] = field(default_factory=dict)
    ifindex: dict[str, int] = field(default_factory=dict)
    ul_mac: str = ""
    ring: object = None

    def _reset_trace(self):
        if getattr(self, "_reset_buf", None) is not None:
            self.dp.maps.trace.put(abi.U32(0), self._reset_buf)
            return
        buf = self.dp.maps.trace._value_buf()
        n = self.dp.maps.trace.ncpus
        size = C.sizeof(abi.Trace)
        stride = (size + 7) // 8 * 8
        for i in range(n):
            C.memmove(C.addressof(buf) + i * stride, bytes(abi.Trace(verdict=0xFFFFFFFF)), size)
        self._reset_buf = buf
        self.dp.maps.trace.put(abi.U32(0), buf)

    def _read_trace(self) -> abi.Trace | None:
        buf = self.dp.maps.trace.get(abi.U32(0))
        stride = (C.sizeof(abi.Trace) + 7) // 8 * 8
        for i in range(self.dp.maps.trace.ncpus):
            t = abi.Trace.from_buffer_copy(bytes(buf)[i * stride: i * stride + C.sizeof(abi.Trace)])
            if t.verdict != 0xFFFFFFFF:
                return t
        return None

    def run(self, prog: str, frame: bytes, ifname: str | None = None, gso_size: int = 0,
            trace: bool = True, ingress: str | None = None) -> Result:
        ctx = None
        if prog != "underlay_xdp":
            ctx = (C.c_uint8 * SKB_CTX_SIZE)()
            if ifname:
                struct.pack_into("<I", ctx, 40, self.ifindex[ifname])
            if ingress:
                struct.pack_into("<I", ctx, 36, self.ifindex[ingress])  # ingress_ifindex
            if gso_size:
                struct.pack_into("<I", ctx, 164, 2)  # gso_segs
                struct.pack_into("<I", ctx, 176, gso_size)
        if trace:
            self._reset_trace()
        verdict, out, _ = syscall.prog_test_run(self.progs[prog], frame, ctx)
        return Result(verdict, out, self._read_trace() if trace else None)

    def events(self) -> list[tuple[abi.EventHdr, bytes]]:
        """Drain the misses ring: (header, frame) per event."""
        out = []
        for rec in self.ring.drain():
            h = abi.EventHdr.from_buffer_copy(rec[:C.sizeof(abi.EventHdr)])
            out.append((h, bytes(rec[C.sizeof(abi.EventHdr):C.sizeof(abi.EventHdr) + h.len])))
        return out

    def clear_pending(self) -> None:
        self.dp.maps.pending.clear()

    def total_drops(self) -> int:
        ids = [0] + [v.id for _, v in self.dp.maps.overlays.items()]
        return sum(sum(self.drops(i).values()) for i in ids)

    def drops(self, ov_id: int) -> dict[str, int]:
        st = self.dp.maps.overlay_stats(ov_id)
        return {d.name: st[abi.Stat.DROP_BASE + d] for d in abi.Drop}

    def ov_id(self, vni: int) -> int:
        return self.dp.maps.overlays.get(abi.U32(vni)).id


