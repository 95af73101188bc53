"""The kernel's fail-closed fallback for encrypted mesh peers, and ground truth.

strongSwan (ike.py) installs the IPsec policies and SAs that carry overlay
traffic to a peer in another PDC. This module makes sure nothing leaks when
it does not: for every encrypted peer pyovl installs its own XFRM policies,
"UDP to/from an overlay port between these two external addresses requires
ESP in transport mode", in and out, below strongSwan's (a larger priority
number). While strongSwan's policies exist the kernel uses them; when they
are gone (IKE stopped, SA deleted, connection unloaded) ours match instead,
find no state, and the kernel drops the packet (XfrmOutNoStates, plus an
acquire message nobody needs to answer) rather than send it in plaintext.
Inbound, plaintext overlay UDP from the peer fails the template check
(XfrmInTmplMismatch / XfrmInNoPols) and is dropped too.

Which policies are pyovl's: priority FALLBACK_PRIORITY *and* a mark of
0/0x1 or 1/0x1. The mark is not decoration. Since Linux 5.8 the kernel
identifies a policy by (direction, selector, mark value and mask, if_id),
not by priority, so a policy with strongSwan's exact selector and no mark
would be the same policy as strongSwan's: ``ip xfrm policy add`` fails with
EEXIST and strongSwan's update would overwrite it, and its delete remove
it. Two policies, one for even and one for odd skb marks, together match
every packet, and neither collides with strongSwan's mark-free policies.

Contract: every function runs ``ip`` (iproute2; pyroute2 has no XFRM API)
in the current network namespace, or in netns=NAME; install/remove are
idempotent and converge; failures raise pyovl.errors.KernelError with the
command's one-line reason. Nothing here reads key material: states are
listed with ``nokeys``. Callers (pyovl/mesh/apply.py, as engine actions) install the fallback
before any target points at an encrypted peer and remove it only after.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass
from typing import Iterable

from pyovl.errors import KernelError, UsageError

# strongSwan 5.9 computes priorities around (2 * 200000 - prefix lengths) << 2,
# about 1.6e6 for its /32 transport policies (3 * 200000 ... ~2.4e6 for its
# own "fallback" class). Anything above that loses to all of strongSwan's.
FALLBACK_PRIORITY = 3_947_890
# (value, mask) pairs: even marks, odd marks. Together: every packet.
MARKS = ((0, 1), (1, 1))
# UDP ports IKE itself uses: an overlay port there would catch IKE.
IKE_PORTS = frozenset({500, 4500})


@dataclass(frozen=True, order=True)
class Selector:
    """One direction of one port shape: src -> dst, UDP, one port pinned."""

    direction: str  # "out" (self -> peer) or "in" (peer -> self)
    src: str
    dst: str
    sport: int  # 0 = any
    dport: int  # 0 = any


@dataclass(frozen=True)
class Policy:
    """A policy as ``ip xfrm policy list`` shows it (only what we need)."""

    sel: Selector
    proto: str
    priority: int
    mark: tuple[int, int]  # (value, mask); (0, 0) when none
    tmpl: tuple[str, str] | None  # (proto, mode) of the first template

    @property
    def ours(self) -> bool:
        return self.priority == FALLBACK_PRIORITY and self.mark in MARKS and self.proto == "udp"


@dataclass(frozen=True)
class State:
    """An XFRM state (SA), without keys."""

    src: str
    dst: str
    proto: str
    spi: int
    reqid: int
    mode: str


def _addr(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise UsageError("invalid %s address %r" % (what, value)) from None


def check_ports(ports: Iterable[int]) -> list[int]:
    out = sorted({int(p) for p in ports})
    if not out:
        raise UsageError("the mesh needs at least one overlay UDP port")
    for p in out:
        if not 0 < p < 65536:
            raise UsageError("invalid overlay UDP port %d (1-65535)" % p)
        if p in IKE_PORTS:
            raise UsageError("overlay UDP port %d is IKE's; IPsec policies on it would catch IKE itself" % p)
    return out


def fallback_selectors(self_ext: str, peer_ext: str, ports: Iterable[int]) -> list[Selector]:
    """The selectors pyovl protects between the two addresses (pure).

    Per port: to the peer's port, from our port to the peer, from the peer
    to our port, from the peer's port to us. Each then exists once per mark.
    """
    me, peer = _addr(self_ext, "local external"), _addr(peer_ext, "peer external")
    if ipaddress.ip_address(me).version != ipaddress.ip_address(peer).version:
        raise UsageError("external addresses %s and %s are of different IP versions" % (me, peer))
    sels = []
    for p in check_ports(ports):
        sels += [Selector("out", me, peer, 0, p), Selector("out", me, peer, p, 0),
                 Selector("in", peer, me, 0, p), Selector("in", peer, me, p, 0)]
    return sorted(set(sels))


def _sel_args(s: Selector) -> list[str]:
    plen = "32" if ipaddress.ip_address(s.src).version == 4 else "128"
    args = ["src", "%s/%s" % (s.src, plen), "dst", "%s/%s" % (s.dst, plen), "proto", "udp"]
    if s.sport:
        args += ["sport", str(s.sport)]
    if s.dport:
        args += ["dport", str(s.dport)]
    return args + ["dir", s.direction]


def _ip(args: list[str], netns: str | None, stdin: str | None = None) -> str:
    argv = ["ip"] + (["-n", netns] if netns else []) + args
    try:
        r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise KernelError("iproute2's ip is not installed (apt install iproute2)") from None
    except subprocess.TimeoutExpired:
        raise KernelError("%s did not finish within 30 s" % " ".join(argv[:4])) from None
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or ["exit status %d" % r.returncode])[-1]
        raise KernelError("ip %s failed: %s" % (" ".join(args[:3]), why))
    return r.stdout


def _batch(lines: list[str], netns: str | None) -> None:
    # One "ip -batch" for the updates. Each deleteall runs on its own: ip
    # keeps its list filter in a global that batch mode never resets, so a
    # second deleteall in one batch would filter on both selectors at once.
    updates = [ln for ln in lines if " deleteall " not in ln]
    if updates:
        _ip(["-batch", "-"], netns, "\n".join(updates) + "\n")
    for ln in lines:
        if " deleteall " in ln:
            _ip(ln.split(), netns)


def parse_policies(text: str) -> list[Policy]:
    """Parse ``ip xfrm policy list`` output (IPv4 and IPv6)."""
    out: list[Policy] = []
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("src "):
            blocks.append([line])
        elif blocks and line.strip():
            blocks[-1].append(line)
    for b in blocks:
        head = b[0].split()
        kv = dict(zip(head[::2], head[1::2]))
        fields: dict[str, str] = {}
        mark = (0, 0)
        tmpl = None
        for line in b[1:]:
            w = line.split()
            if w[0] == "dir":
                fields.update(zip(w[::2], w[1::2]))
            elif w[0] == "mark":
                v, _, m = w[1].partition("/")
                mark = (int(v, 0), int(m or "0xffffffff", 0))
            elif w[0] == "proto" and tmpl is None:
                t = dict(zip(w[::2], w[1::2]))
                tmpl = (t.get("proto", ""), t.get("mode", ""))
        src, dst = kv.get("src", ""), kv.get("dst", "")
        sel = Selector(fields.get("dir", ""), src.split("/")[0], dst.split("/")[0],
                       int(kv.get("sport", 0)), int(kv.get("dport", 0)))
        out.append(Policy(sel, kv.get("proto", ""), int(fields.get("priority", 0)), mark, tmpl))
    return out


def parse_states(text: str) -> list[State]:
    """Parse ``ip xfrm state list nokeys`` output."""
    out: list[State] = []
    cur: dict[str, str] | None = None
    for line in text.splitlines():
        w = line.split()
        if line.startswith("src "):
            cur = dict(zip(w[::2], w[1::2]))
        elif cur is not None and w and w[0] == "proto":
            d = dict(zip(w[::2], w[1::2]))
            out.append(State(cur.get("src", ""), cur.get("dst", ""), d.get("proto", ""),
                             int(d.get("spi", "0"), 16), int(d.get("reqid", "0")), d.get("mode", "")))
            cur = None
    return out


def list_policies(netns: str | None = None) -> list[Policy]:
    return parse_policies(_ip(["xfrm", "policy", "list"], netns))


def list_fallback(netns: str | None = None) -> list[Policy]:
    """pyovl's fallback policies, every peer."""
    return [p for p in list_policies(netns) if p.ours]


def install_fallback(self_ext: str, peer_ext: str, ports: Iterable[int], netns: str | None = None) -> int:
    """Make pyovl's fallback between the two addresses exactly cover ports.

    Adds what is missing (``update`` is add-or-replace, so this is
    idempotent), removes ours for ports no longer listed. Returns how many
    policies now protect the pair.
    """
    want = fallback_selectors(self_ext, peer_ext, ports)
    me, peer = _addr(self_ext, "local"), _addr(peer_ext, "peer")
    lines = []
    for s in want:
        for v, m in MARKS:
            lines.append(" ".join(["xfrm", "policy", "update"] + _sel_args(s) + [
                "priority", str(FALLBACK_PRIORITY), "mark", str(v), "mask", str(m),
                "tmpl", "proto", "esp", "mode", "transport", "level", "required"]))
    stale = [p for p in list_fallback(netns) if _between(p, me, peer) and p.sel not in want]
    lines += _delete_lines(stale)
    _batch(lines, netns)
    return len(want) * len(MARKS)


def _between(p: Policy, me: str, peer: str) -> bool:
    return {p.sel.src, p.sel.dst} == {me, peer}


def _delete_lines(policies: Iterable[Policy]) -> list[str]:
    # "deleteall" with a filter, not "delete": iproute2 6.1 sends no mark
    # attribute for "delete ... mark 0 mask 1" (it sends one only when
    # value & mask is non-zero), so the kernel never finds our even-mark
    # policy that way. deleteall copies each dumped policy's own mark into
    # its delete request. The filter is the exact selector, direction and
    # FALLBACK_PRIORITY, so it removes both marks of one of our selectors
    # (and would remove anything else someone put at that very priority
    # with that very selector: don't).
    sels = sorted({p.sel for p in policies})
    return [" ".join(["xfrm", "policy", "deleteall"] + _sel_args(s) + [
        "priority", str(FALLBACK_PRIORITY)]) for s in sels]


def remove_fallback(self_ext: str, peer_ext: str, ports: Iterable[int] | None = None,
                    netns: str | None = None) -> int:
    """Remove pyovl's fallback between the two addresses: for the ports
    given, or for every port when ports is None or empty. Returns how many
    policies went."""
    me, peer = _addr(self_ext, "local"), _addr(peer_ext, "peer")
    ports = list(ports or [])
    only = set(fallback_selectors(me, peer, ports)) if ports else None
    gone = [p for p in list_fallback(netns)
            if _between(p, me, peer) and (only is None or p.sel in only)]
    _batch(_delete_lines(gone), netns)
    return len(gone)


def remove_all(netns: str | None = None) -> int:
    """Remove every fallback policy pyovl installed, and nothing else."""
    gone = list_fallback(netns)
    _batch(_delete_lines(gone), netns)
    return len(gone)


def list_states(netns: str | None = None) -> list[State]:
    return parse_states(_ip(["xfrm", "state", "list", "nokeys"], netns))


def sa_present(self_ext: str, peer_ext: str, netns: str | None = None) -> tuple[bool, bool]:
    """(out, in): does the kernel hold an ESP transport SA self->peer, and
    peer->self? Larval (acquire) states have SPI 0 and do not count."""
    me, peer = _addr(self_ext, "local"), _addr(peer_ext, "peer")
    esp = [s for s in list_states(netns) if s.proto == "esp" and s.mode == "transport" and s.spi]
    return (any(s.src == me and s.dst == peer for s in esp),
            any(s.src == peer and s.dst == me for s in esp))


def xfrm_stat(netns: str | None = None) -> dict[str, int]:
    """The kernel's XFRM error counters (/proc/net/xfrm_stat), by name."""
    if netns:
        text = subprocess.run(["ip", "netns", "exec", netns, "cat", "/proc/net/xfrm_stat"],
                              capture_output=True, text=True).stdout
    else:
        try:
            with open("/proc/net/xfrm_stat") as f:
                text = f.read()
        except OSError:
            return {}
    out = {}
    for line in text.splitlines():
        w = line.split()
        if len(w) == 2 and w[1].isdigit():
            out[w[0]] = int(w[1])
    return out


# The algorithm pyovl proposes for ESP (ike.ESP_PROPOSAL: aes256gcm16): its
# kernel name, and a key of the right size (32 bytes + 4 bytes salt).
_PROBE_AEAD = ("rfc4106(gcm(aes))", "0x" + "11" * 36, "128")


def esp_unsupported() -> str | None:
    """None if this kernel can hold an ESP transport SA with pyovl's
    algorithm, else why not. Probes in a throwaway network namespace."""
    import os

    name = "pyovl-espprobe-%d" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        return "cannot create a network namespace to probe ESP: %s" % r.stderr.strip()
    try:
        r = subprocess.run(["ip", "-n", name, "xfrm", "state", "add", "src", "198.18.0.1", "dst",
                            "198.18.0.2", "proto", "esp", "spi", "0x100", "mode", "transport",
                            "aead", *_PROBE_AEAD], capture_output=True, text=True)
        if r.returncode != 0:
            return "this kernel (%s) cannot hold an ESP transport SA with %s: %s" % (
                os.uname().release, _PROBE_AEAD[0], r.stderr.strip() or "exit %d" % r.returncode)
        return None
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
