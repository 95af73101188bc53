"""Per-program cost with BPF_PROG_RUN: nanoseconds per packet for encap
(port program, unicast to a target), TC decap and XDP decap, with a target
table of 1k entries and of many (1M in the full run).

BPF_PROG_RUN with repeat > 1 runs the program again on the same skb or
xdp_buff, already changed by the previous run: encap would then see an
encapsulated frame (and drop it at the source-MAC check), decap an inner
frame (and pass it). So every run here is its own call with repeat = 1, its
verdict is checked, and the kernel's own timing of the program (not of the
syscall) is averaged over the calls.

    python -m pyovl.tools.bench.progrun                  1000 targets, as JSON
    python -m pyovl.tools.bench.progrun --loop encap     one program back to back, to
                                                   profile with perf record -a -g
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes as C
import json
import os
import struct
import sys
import time

from pyovl import netlink, netns
from pyovl.dataplane import abi, loader, syscall
from pyovl.dataplane.datapath import Datapath
from pyovl.tools.topo import sh, sweep_ns

PORT_MAC, PEER_MAC = "02:08:20:0b:00:01", "02:08:20:0b:00:02"
TC_ACT_REDIRECT, XDP_REDIRECT = 7, 4


def _frames():
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN

    inner_out = bytes(Ether(src=PORT_MAC, dst=PEER_MAC) / IP(src="10.9.0.1", dst="10.9.0.2") /
                      TCP(sport=40000, dport=80) / (b"x" * 64))
    inner_in = bytes(Ether(src=PEER_MAC, dst=PORT_MAC) / IP(src="10.9.0.2", dst="10.9.0.1") /
                     TCP(sport=80, dport=40000) / (b"x" * 64))
    vx = bytes(Ether(src="02:aa:00:00:00:02", dst="02:aa:00:00:00:01") / IP(src="198.18.0.2", dst="198.18.0.1") /
               UDP(sport=50000, dport=4789, chksum=0) / VXLAN(flags=0x08, vni=9) / inner_in)
    return inner_out, vx


def _fill_targets(dp: Datapath, n: int) -> None:
    """n targets in overlay 9 (PEER_MAC among them), written directly."""
    dest = abi.Dest(ip=abi.Addr.of("198.18.0.2"), port=socket_htons(4789), state=abi.TARGET_VALID)
    key = abi.L2Key(vni=9)
    for i in range(n - 1):
        C.memmove(key.mac, b"\x02\xcc" + struct.pack("!I", i), 6)
        dp.maps.targets.put(key, dest)


def socket_htons(v: int) -> int:
    return struct.unpack("<H", struct.pack("!H", v))[0]


def target_memory_bytes(dp: Datapath) -> int:
    """The kernel's own account of the targets map's memory (fdinfo memlock)."""
    fd = dp.maps.targets.fd
    with open("/proc/self/fdinfo/%d" % fd) as f:
        for line in f:
            if line.startswith("memlock:"):
                return int(line.split()[1])
    return 0


def _baseline(ptype: int, calls: int) -> float:
    insns = (C.c_uint64 * 2)(0x00000000000000B7, 0x0000000000000095)  # r0 = 0; exit
    lic = C.create_string_buffer(b"GPL")
    fd = syscall._bpf(syscall.PROG_LOAD, syscall._ProgLoad(ptype, 2, C.addressof(insns), C.addressof(lic)))
    try:
        frame = bytes(64)
        return round(sum(syscall.prog_test_run(fd, frame, None, repeat=1)[2] for _ in range(calls)) / calls, 1)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _bench_env(prefix: str):
    """A namespace with an underlay, one VNIC and the programs loaded (one
    overlay 9, target PEER_MAC -> 198.18.0.2): yields (dp, programs, inputs:
    program -> (frame, context or None)). Removed on exit."""
    ns = prefix + "-progrun"
    sweep_ns(ns)
    sh("ip", "netns", "add", ns)
    inside = netns.inside(ns)
    inside.__enter__()
    dp = None
    progs: dict = {}
    try:
        sh("ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul1")
        sh("ip", "addr", "add", "198.18.0.1/24", "dev", "ul0")
        for d in ("ul0", "ul1"):
            sh("ip", "link", "set", d, "up")
        sh("ip", "neigh", "replace", "198.18.0.2", "lladdr", "02:aa:00:00:00:02", "dev", "ul0", "nud", "permanent")
        netlink.create_vnic("vp", "vpg", PORT_MAC, 1450, None, [])
        dp = Datapath(instance=ns)
        dp.init(["ul0"], hook="tc")
        dp.add_overlay(9, "198.18.0.1")
        dp.add_port("vp", 9, PORT_MAC)
        dp.set_target(9, PEER_MAC, "198.18.0.2", 4789)
        progs = {p: loader.open_prog(dp.pin_dir, p) for p in loader.PROGRAMS}
        ctx = (C.c_uint8 * 192)()
        struct.pack_into("<I", ctx, 40, netlink.ifindex("vp"))
        inner, vx = _frames()
        yield dp, progs, {"port": (inner, ctx), "underlay_tc": (vx, None), "underlay_xdp": (vx, None)}
    finally:
        for fd in progs.values():
            os.close(fd)
        if dp is not None:
            dp.teardown()
        inside.__exit__(None, None, None)
        sweep_ns(ns)


CASES = (("encap", "port", TC_ACT_REDIRECT), ("decap_tc", "underlay_tc", TC_ACT_REDIRECT),
         ("decap_xdp", "underlay_xdp", XDP_REDIRECT))


def measure(prefix: str, sizes: tuple[int, ...], repeat: int) -> dict:
    out: dict = {}
    with _bench_env(prefix) as (dp, progs, inputs):
        filled = 1
        for size in sizes:
            if size > filled:
                _fill_targets(dp, size)
                filled = size
            row = {}
            for name, prog, verdict in CASES:
                total = 0
                for _ in range(repeat):
                    ret, _, took = syscall.prog_test_run(progs[prog], *inputs[prog], repeat=1)
                    if ret != verdict:
                        raise RuntimeError("%s returned %d, not %d: the measurement would be of "
                                           "another path" % (name, ret, verdict))
                    total += took
                row[name] = round(total / repeat, 1)
            row["targets_memory_bytes"] = target_memory_bytes(dp)
            out[str(size)] = row
        out["baseline"] = {"tc": _baseline(3, repeat), "xdp": _baseline(6, repeat)}
        out["runs"] = repeat
    return out


def loop(prefix: str, case: str, seconds: float) -> float:
    """Run one case back to back for `seconds` (to profile it from outside:
    perf record -a -g -- sleep N); returns its mean ns per run."""
    prog, verdict = {n: (p, v) for n, p, v in CASES}[case]
    with _bench_env(prefix) as (_dp, progs, inputs):
        n = total = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ret, _, took = syscall.prog_test_run(progs[prog], *inputs[prog], repeat=1)
            if ret != verdict:
                raise RuntimeError("%s returned %d, not %d" % (case, ret, verdict))
            n += 1
            total += took
    return total / max(n, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description="BPF_PROG_RUN cost of pyovl's programs")
    ap.add_argument("--loop", choices=[c[0] for c in CASES],
                    help="run one program back to back (profile it with perf record -a -g meanwhile)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=30000)
    args = ap.parse_args()
    if args.loop:
        print("%s: %.1f ns per run" % (args.loop, loop("pyovl-progrun", args.loop, args.seconds)))
    else:
        print(json.dumps(measure("pyovl-progrun", (1000,), args.repeat), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
