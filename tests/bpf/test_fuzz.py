"""Fuzz both programs with random, truncated and malformed frames.

100k frames through the underlay programs (each frame through TC and XDP)
and 100k through the port program, under BPF_PROG_RUN. Invariants:
  - every verdict is one the program may give;
  - a redirect goes to a port of the frame's own VNI (decap: the VNI in the
    VXLAN header; port program: the sending VNIC's VNI), or, for encap, to
    the underlay with the sender's VNI in the VXLAN header;
  - every drop carries a reason, and the drop counters grow by exactly the
    number of drops seen.
The seed is fixed so a failure can be replayed; PYOVL_FUZZ_SEED changes it.
"""

from __future__ import annotations

import os
import random

import pytest
from env import MAC, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, XDP_DROP, XDP_PASS, XDP_REDIRECT
from frames import inner_arp, inner_tcp, vxlan4, vxlan6

from pyovl.dataplane import abi

pytestmark = [pytest.mark.bpf, pytest.mark.slow]

N = int(os.environ.get("PYOVL_FUZZ_N", "100000"))
SEED = int(os.environ.get("PYOVL_FUZZ_SEED", "7348"))
PORT_VNI = {"vp1": 100, "vp2": 100, "vq1": 200, "vr1": 300, "vs1": 101, "vt1": 102}
VNIS = [100, 101, 102, 200, 300, 4242, 0, 0xFFFFFF]
MACS = list(MAC.values()) + ["02:00:00:00:0b:01", "ff:ff:ff:ff:ff:ff", "33:33:00:00:00:01"]


def _mutate(rng: random.Random, base: bytes) -> bytes:
    f = bytearray(base)
    kind = rng.random()
    if kind < 0.25:  # truncate (BPF_PROG_RUN needs 14 bytes of Ethernet)
        f = f[: rng.randint(14, len(f))]
    elif kind < 0.6:  # flip bytes in the headers
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(min(len(f), 100))
            f[i] = rng.randrange(256)
    elif kind < 0.7:  # random garbage after a plausible Ethernet header
        f = f[:12] + bytes(rng.choice([b"\x08\x00", b"\x86\xdd", b"\x08\x06"])) + rng.randbytes(rng.randint(0, 120))
    return bytes(f)


def _vni_of(frame: bytes) -> int | None:
    off = {b"\x08\x00": 42, b"\x86\xdd": 62}.get(frame[12:14])  # VXLAN header
    return int.from_bytes(frame[off + 4: off + 7], "big") if off and len(frame) >= off + 8 else None


def test_fuzz_underlay(bpfenv):
    rng = random.Random(SEED)
    port_of_ifindex = {bpfenv.ifindex[p]: (PORT_VNI[p], MAC[p]) for p in PORT_VNI}
    bases = []
    for vni in VNIS:
        for mac in MACS:
            inner = inner_arp("02:00:00:00:0b:01") if mac.startswith("ff") else inner_tcp("02:00:00:00:0b:01", mac)
            bases.append(vxlan4(inner, vni))
            bases.append(vxlan6(inner, vni))
    drops_before, drops_seen, verdicts, refused = bpfenv.total_drops(), 0, {}, 0
    for _ in range(N):
        frame = _mutate(rng, rng.choice(bases))
        for prog, ok, redirect, shot in (("underlay_tc", TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT),
                                         ("underlay_xdp", XDP_PASS, XDP_REDIRECT, XDP_DROP)):
            try:
                r = bpfenv.run(prog, frame)
            except OSError as e:
                # BPF_PROG_RUN refuses to build an skb from an IP frame shorter
                # than its IP header (EINVAL); a NIC would still deliver it,
                # and XDP (same frame) covers that case.
                assert e.errno == 22 and prog == "underlay_tc", (prog, e, frame.hex())
                refused += 1
                continue
            verdicts[(prog, r.verdict)] = verdicts.get((prog, r.verdict), 0) + 1
            assert r.verdict in (ok, redirect, shot), (prog, r.verdict, frame.hex())
            if r.verdict == ok:
                assert r.out == frame, (prog, frame.hex())
            elif r.verdict == redirect:
                vni, mac = port_of_ifindex[r.trace.ifindex]
                assert vni == r.trace.vni == _vni_of(frame), (prog, frame.hex())
                assert r.out[:6] == abi.mac_bytes(mac), (prog, frame.hex())
            elif r.trace.reason:
                drops_seen += 1
            else:  # TC broadcast: the copies went to the VNI's ports
                assert prog == "underlay_tc" and r.trace.flooded > 0 and r.trace.vni == _vni_of(frame), (
                    prog, r.verdict, r.trace.reason, r.trace.verdict, frame.hex())
    assert bpfenv.total_drops() - drops_before == drops_seen
    assert refused < N // 10, "BPF_PROG_RUN refused %d frames" % refused
    # the fuzzer reached every kind of verdict
    for prog in ("underlay_tc", "underlay_xdp"):
        assert len([v for (p, v) in verdicts if p == prog]) == 3, verdicts


def test_fuzz_port(bpfenv):
    rng = random.Random(SEED + 1)
    ul0 = bpfenv.ifindex["ul0"]
    port_of_ifindex = {bpfenv.ifindex[p]: PORT_VNI[p] for p in PORT_VNI}
    bases = []
    for port in PORT_VNI:
        for mac in MACS + ["02:00:00:00:0d:01", "02:00:00:00:0e:01", "02:00:00:00:0f:01", "02:00:00:00:0b:11"]:
            src = MAC[port] if rng.random() < 0.9 else "02:00:00:00:0c:0c"
            f = inner_arp(src) if mac.startswith("ff") else inner_tcp(src, mac, b"y" * rng.randint(0, 1500))
            bases.append((port, f))
    drops_before, drops_seen, refused = bpfenv.total_drops(), 0, 0
    bpfenv.events()
    for i in range(N):
        if i % 4096 == 0:
            bpfenv.clear_pending()  # as the daemon would, so misses keep reporting
        port, base = rng.choice(bases)
        frame = _mutate(rng, base)
        try:
            r = bpfenv.run("port", frame, port)
        except OSError as e:
            assert e.errno == 22, (port, e, frame.hex())  # see test_fuzz_underlay
            refused += 1
            continue
        assert r.verdict in (TC_ACT_REDIRECT, TC_ACT_SHOT), (port, r.verdict, frame.hex())
        if r.verdict == TC_ACT_SHOT:
            # dropped under a reason, or copied to the daemon
            assert (r.trace.reason != 0) != (r.trace.punted != 0), (port, frame.hex())
            drops_seen += r.trace.reason != 0
            bpfenv.events()
        elif r.trace.ifindex == ul0:
            assert _vni_of(r.out) == PORT_VNI[port], (port, frame.hex())
        else:
            assert port_of_ifindex[r.trace.ifindex] == PORT_VNI[port], (port, frame.hex())
    assert bpfenv.total_drops() - drops_before == drops_seen
    assert refused < N // 10, "BPF_PROG_RUN refused %d frames" % refused
