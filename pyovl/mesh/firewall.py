"""The mesh firewall: nftables on the external interface, behind IPsec.

Compute nodes in different PDCs send VXLAN to each other's external
addresses inside transport-mode ESP (IKEv2 on UDP 500/4500). pyovl's own
data path (XDP/TC) bypasses netfilter and refuses plaintext there itself;
this table is the second layer, for whatever the kernel stack sends or
receives on the external interface (the collect_md vxlan device used for
encrypted peers, the daemon's socket, anything else), like Danube's ipf
rules on external0:

  in  (prerouting)   ESP, IKE from a mesh peer      count mesh_in, accept
                     overlay-port UDP not decrypted  count plaintext_in, drop
  out (postrouting)  ESP, IKE to a mesh peer         count mesh_out, accept
                     overlay-port UDP not to be      count plaintext_out, drop
                     encrypted

"accept" ends this table's chain only: nftables runs every base chain on a
hook, so a host firewall with a drop policy must allow the mesh itself.
Hooks and priorities, and why:
  * prerouting, priority dstnat + 10 (-90). A transport-mode ESP packet
    passes prerouting as ESP; once decrypted, xfrm re-injects the inner UDP
    packet into PREROUTING (same input device), now with a secpath, so
    "meta ipsec missing" is exactly "was not decrypted". After DNAT, so the
    port judged is the one the packet is delivered to; in prerouting (not
    input), so forwarded plaintext is dropped too, before routing.
  * postrouting, priority srcnat + 50 (150). Routing attaches the xfrm
    bundle to the plaintext packet ("rt ipsec": dst->xfrm); the packet then
    passes POSTROUTING once before the transformation (xfrm4/6_output, with
    oif = the external device) and once more as ESP. After srcnat, because
    NAT may re-route a packet through xfrm again (nf_xfrm_me_harder): this
    chain judges the route it really leaves with. Postrouting rather than
    output also covers forwarded packets.
Both packet paths are checked with real ESP in
tests/mesh/test_mesh_firewall_uml.py: dropping overlay UDP in prerouting
without the ipsec condition kills the decrypted traffic, and so does
dropping it in postrouting without it.

Contract. render() is pure: it validates and returns an nft script that
creates, or atomically replaces, table inet pyovl_<instance> in a single
`nft -f` transaction ("table; delete table; table {...}"), so re-applying is
idempotent and a failure leaves the previous table (or none) untouched,
never half of one; apply() carries the counters' values over (read just
before, so packets counted in between are lost). apply(), remove(),
counters() and all_counters() act on the network
namespace the calling thread is in (pyovl enters the instance's). Callers
are pyovl up (apply after the SAs exist, before targets use them) and
pyovl down (remove). Every failure is a PyovlError with one actionable line:
UsageError for bad arguments, KernelError when nft or the kernel refuses,
StateError when there is no table to read.

Not every kernel can hold this table: Debian's user-mode-linux (6.1) has
nf_tables without the inet/ip/ip6 families. available() says so, apply()
fails with that reason, remove() still succeeds there.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
import shutil
import socket
import subprocess
from collections.abc import Iterable, Mapping

from pyovl.errors import KernelError, StateError, UsageError

log = logging.getLogger(__name__)

FAMILY = "inet"
TABLE_PREFIX = "pyovl_"
# Named counters, read by counters(); plaintext_* are the drops.
COUNTERS = ("plaintext_in", "plaintext_out", "mesh_in", "mesh_out")
IKE_PORTS = (500, 4500)  # IKE and NAT-T; an overlay port may not be one of them
PRE_PRIORITY = "dstnat + 10"  # -90, see the module docstring
POST_PRIORITY = "srcnat + 50"  # 150
LOG_LIMIT = "limit rate 10/minute burst 5 packets"
NFT_TIMEOUT = 30
# nft's words when the kernel has no nf_tables inet family at all (EOPNOTSUPP
# for "table inet ..."): there can be no table of ours then.
_NO_FAMILY = "Operation not supported"

_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # as config.IFNAME
_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # letters nft takes unquoted in a name


def table_name(instance: str) -> str:
    """The nft table name for an instance: pyovl_<instance>.

    Names made of letters, digits, '_', '.', '-' (at most 64) are kept as
    they are. Others are mapped to those letters with a hash of the original
    appended, so distinct instances never share a table.
    """
    if not isinstance(instance, str) or not instance:
        raise UsageError("mesh firewall: the instance name is empty")
    if _SAFE.fullmatch(instance):
        return TABLE_PREFIX + instance
    digest = hashlib.sha256(instance.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return "%s%s_%s" % (TABLE_PREFIX, re.sub(r"[^A-Za-z0-9_.-]", "_", instance)[:48], digest)


def _ifname(name: object) -> str:
    if not isinstance(name, str) or not _IFNAME.fullmatch(name):
        raise UsageError("mesh firewall: invalid external interface name %r" % (name,))
    return name


def _ports(ports: object) -> list[int]:
    if isinstance(ports, (str, bytes)) or not isinstance(ports, Iterable):
        raise UsageError("mesh firewall: overlay ports must be a list of UDP ports, not %r" % (ports,))
    out = set()
    for p in ports:
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535:
            raise UsageError("mesh firewall: invalid overlay port %r (a UDP port, 1-65535)" % (p,))
        if p in IKE_PORTS:
            raise UsageError("mesh firewall: overlay port %d is IKE's; use another vxlan/listen_port" % p)
        out.add(p)
    if not out:
        raise UsageError("mesh firewall: no overlay ports to protect")
    return sorted(out)


def _peers(peers: object) -> tuple[list[str], list[str]]:
    """(IPv4, IPv6) external addresses of the mesh peers, sorted, unique."""
    if isinstance(peers, (str, bytes)) or not isinstance(peers, Iterable):
        raise UsageError("mesh firewall: mesh peers must be a list of addresses, not %r" % (peers,))
    v4: set[ipaddress.IPv4Address] = set()
    v6: set[ipaddress.IPv6Address] = set()
    for p in peers:
        try:
            ip = ipaddress.ip_address(p)
        except ValueError:
            raise UsageError("mesh firewall: invalid mesh peer address %r" % (p,)) from None
        if ip.is_unspecified or ip.is_multicast or ip.is_loopback:
            raise UsageError("mesh firewall: %s cannot be a mesh peer's external address" % ip)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            raise UsageError("mesh firewall: give mesh peer %s as %s" % (ip, ip.ipv4_mapped))
        (v4 if ip.version == 4 else v6).add(ip)  # type: ignore[arg-type]
    return [str(a) for a in sorted(v4)], [str(a) for a in sorted(v6)]


def _counter(name: str, keep: Mapping[str, tuple[int, int]]) -> list[str]:
    packets, nbytes = keep.get(name, (0, 0))
    body = ["\t\tpackets %d bytes %d" % (packets, nbytes)] if (packets or nbytes) else []
    return ["\tcounter %s {" % name, *body, "\t}"]


def _set(name: str, kind: str, elements: list) -> list[str]:
    return ["\tset %s {" % name, "\t\ttype %s" % kind,
            "\t\telements = { %s }" % ", ".join(str(e) for e in elements), "\t}"]


def render(instance: str, ext_ifname: str, ports: Iterable[int], mesh_peers: Iterable[str],
           *, keep: Mapping[str, tuple[int, int]] | None = None, log_drops: bool = True) -> str:
    """The nft script that creates or replaces this instance's table.

    ports: every overlay UDP port in use on the external side (local listen
    ports and peers' destination ports). mesh_peers: the mesh peers'
    external addresses (IPv4 and/or IPv6; may be empty). keep: initial
    (packets, bytes) per counter name, so a re-apply does not reset them.
    log_drops: add a rate-limited "pyovl plaintext" log before each drop.
    Raises UsageError on invalid input; has no side effects.
    """
    table = table_name(instance)
    ext = '"%s"' % _ifname(ext_ifname)
    port_list = _ports(ports)
    v4, v6 = _peers(mesh_peers)
    keep = keep or {}
    ike = "{ %s }" % ", ".join(str(p) for p in IKE_PORTS)

    lines = ["# pyovl mesh firewall (pyovl.mesh.firewall): %s %s on %s" % (FAMILY, table, ext_ifname),
             "# replaced whole by pyovl up, removed by pyovl down; do not edit",
             "table %s %s" % (FAMILY, table),
             "delete table %s %s" % (FAMILY, table),
             "table %s %s {" % (FAMILY, table)]
    for name in COUNTERS:
        lines += _counter(name, keep)
    lines += _set("overlay_ports", "inet_service", port_list)
    if v4:
        lines += _set("mesh4", "ipv4_addr", v4)
    if v6:
        lines += _set("mesh6", "ipv6_addr", v6)

    drop = {}
    for way in ("in", "out"):
        if log_drops:
            # A chain of its own: a limit that is over stops its rule, and
            # the drop must not depend on it.
            lines += ["\tchain drop_plaintext_%s {" % way,
                      '\t\t%s log prefix "pyovl plaintext %s: " level warn' % (LOG_LIMIT, way),
                      "\t\tdrop", "\t}"]
            drop[way] = "goto drop_plaintext_%s" % way
        else:
            drop[way] = "drop"

    # Mesh rules: IKE arrives at our 500/4500 and leaves from them (a peer
    # behind NAT is answered on whatever port its NAT chose).
    pre = ["\tchain prerouting {",
           "\t\ttype filter hook prerouting priority %s; policy accept;" % PRE_PRIORITY]
    post = ["\tchain postrouting {",
            "\t\ttype filter hook postrouting priority %s; policy accept;" % POST_PRIORITY]
    for fam, setname in (("ip", "mesh4"), ("ip6", "mesh6")):
        if (fam == "ip" and not v4) or (fam == "ip6" and not v6):
            continue
        pre += ['\t\tiifname %s %s saddr @%s meta l4proto esp counter name "mesh_in" accept '
                'comment "ESP from the mesh"' % (ext, fam, setname),
                '\t\tiifname %s %s saddr @%s udp dport %s counter name "mesh_in" accept '
                'comment "IKE from the mesh"' % (ext, fam, setname, ike)]
        post += ['\t\toifname %s %s daddr @%s meta l4proto esp counter name "mesh_out" accept '
                 'comment "ESP to the mesh"' % (ext, fam, setname),
                 '\t\toifname %s %s daddr @%s udp sport %s counter name "mesh_out" accept '
                 'comment "IKE to the mesh"' % (ext, fam, setname, ike)]
    pre += ['\t\tiifname %s udp dport @overlay_ports meta ipsec missing counter name "plaintext_in" %s '
            'comment "overlay traffic that was not decrypted"' % (ext, drop["in"]), "\t}"]
    post += ['\t\toifname %s udp dport @overlay_ports rt ipsec missing counter name "plaintext_out" %s '
             'comment "overlay traffic that will not be encrypted"' % (ext, drop["out"]), "\t}"]
    lines += pre + post + ["}"]
    return "\n".join(lines) + "\n"


def _first_error(stderr: str) -> str:
    """nft's first error as one line: the message, then the offending text."""
    lines = [ln.rstrip() for ln in stderr.splitlines()]
    for i, ln in enumerate(lines):
        if "Error:" in ln:
            msg = ln[ln.index("Error:") + len("Error:"):].strip()
            ctx = lines[i + 1].strip() if i + 1 < len(lines) else ""
            return "%s (at: %s)" % (msg, ctx) if ctx and not set(ctx) <= set("^~ ") else msg
    return next((ln.strip() for ln in lines if ln.strip()), "failed")


def _nft(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("nft")
    if exe is None:
        raise KernelError("nft not found: install nftables (apt-get install nftables)")
    try:
        return subprocess.run([exe, *args], input=stdin, capture_output=True, text=True,
                              timeout=NFT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise KernelError("nft %s did not finish in %ds" % (" ".join(args), NFT_TIMEOUT)) from None
    except OSError as e:
        raise KernelError("cannot run nft: %s" % e.strerror) from None


def _refused(what: str, p: subprocess.CompletedProcess) -> KernelError:
    err = _first_error(p.stderr)
    if "Operation not permitted" in err:
        return KernelError("%s: not permitted; run as root (CAP_NET_ADMIN)" % what)
    return KernelError("%s: nft says: %s" % (what, err))


def _probe(script: str) -> str | None:
    """None when `nft -c` (the kernel, without committing) takes script."""
    p = _nft(["-c", "-f", "-"], script)
    return None if p.returncode == 0 else _first_error(p.stderr)


_PROBE = "table inet pyovl_probe {\n\tchain c {\n\t\ttype filter hook %s priority 0; policy accept;\n\t\t%s\n\t}\n}\n"


def available() -> str | None:
    """None when this host can apply the table, else the reason (one line)."""
    if shutil.which("nft") is None:
        return "nft is not installed (apt-get install nftables)"
    try:
        err = _probe(render("probe", "lo", [4789], ["192.0.2.1", "2001:db8::1"], log_drops=False))
        if err is None:
            return None
        if "Operation not permitted" in err:
            return "nft needs root (CAP_NET_ADMIN)"
        # Name the missing piece.
        if _probe(_PROBE % ("prerouting", "udp dport 4789 counter")):
            return "this kernel has no nf_tables inet family (CONFIG_NF_TABLES_INET): %s" % err
        if _probe(_PROBE % ("prerouting", "meta ipsec missing counter")) or \
                _probe(_PROBE % ("postrouting", "rt ipsec missing counter")):
            return "nf_tables here cannot match IPsec (meta/rt ipsec need CONFIG_XFRM): %s" % err
        return "nft refused the mesh firewall: %s" % err
    except KernelError as e:
        return str(e)


def _log_supported() -> bool:
    try:
        return _probe(_PROBE % ("prerouting", '%s log prefix "pyovl probe: " drop' % LOG_LIMIT)) is None
    except KernelError:
        return False


def _read(table: str) -> dict[str, tuple[int, int]] | None:
    """{counter: (packets, bytes)} of table, None when there is no table."""
    p = _nft(["-j", "list", "counters", "table", FAMILY, table])
    if p.returncode != 0:
        if "No such file or directory" in p.stderr or _NO_FAMILY in p.stderr:
            return None
        raise _refused("cannot read the counters of table %s %s" % (FAMILY, table), p)
    try:
        items = json.loads(p.stdout)["nftables"]
        return {c["name"]: (int(c["packets"]), int(c["bytes"]))
                for c in (i["counter"] for i in items if "counter" in i) if c.get("table") == table}
    except (ValueError, KeyError, TypeError):
        raise KernelError("cannot parse nft's JSON for table %s %s; is nft older than 0.9?"
                          % (FAMILY, table)) from None


def apply(instance: str, ext_ifname: str, ports: Iterable[int], mesh_peers: Iterable[str]) -> None:
    """Create or replace the instance's table (counters keep their values)."""
    ports, mesh_peers = list(ports), list(mesh_peers)
    render(instance, ext_ifname, ports, mesh_peers)  # validate before touching anything
    try:
        socket.if_nametoindex(ext_ifname)
    except OSError:
        raise UsageError("mesh firewall: no such interface: %s (the external interface)" % ext_ifname) from None
    table = table_name(instance)
    keep = _read(table) or {}
    logs = _log_supported()
    if not logs:
        log.warning("nft log is unavailable here (nf_log_syslog): plaintext drops are counted, not logged")
    script = render(instance, ext_ifname, ports, mesh_peers, keep=keep, log_drops=logs)
    p = _nft(["-f", "-"], script)
    if p.returncode != 0:
        what = "cannot apply the mesh firewall (table %s %s)" % (FAMILY, table)
        why = available()  # names a missing kernel piece better than nft does
        raise KernelError("%s: %s" % (what, why)) if why else _refused(what, p)
    log.info("mesh firewall %s %s on %s: ports %s, %d mesh peers", FAMILY, table, ext_ifname,
             ",".join(map(str, sorted(set(ports)))), len(set(mesh_peers)))


def remove(instance: str) -> None:
    """Delete the instance's table; nothing to do when there is none."""
    table = table_name(instance)
    # "table" first makes the delete valid when the table is absent, in the
    # same transaction (nft < 1.0.8 has no "destroy").
    p = _nft(["-f", "-"], "table %s %s\ndelete table %s %s\n" % (FAMILY, table, FAMILY, table))
    if p.returncode != 0 and _NO_FAMILY in p.stderr:
        log.debug("no nf_tables %s family in this kernel: no table to remove", FAMILY)
        return
    if p.returncode != 0:
        raise _refused("cannot remove the mesh firewall (table %s %s)" % (FAMILY, table), p)
    log.info("mesh firewall %s %s removed", FAMILY, table)


def all_counters(instance: str) -> dict[str, int]:
    """Packets per named counter: plaintext_in, plaintext_out (the drops),
    mesh_in, mesh_out (ESP and IKE from/to the mesh peers)."""
    table = table_name(instance)
    got = _read(table)
    if got is None:
        raise StateError("no mesh firewall for instance %s (table %s %s) in this network namespace: "
                         "run pyovl up" % (instance, FAMILY, table))
    return {name: got.get(name, (0, 0))[0] for name in COUNTERS}


def counters(instance: str) -> dict[str, int]:
    """The drops: {"plaintext_in": packets, "plaintext_out": packets}.
    StateError when the instance has no table here."""
    got = all_counters(instance)
    return {"plaintext_in": got["plaintext_in"], "plaintext_out": got["plaintext_out"]}


__all__ = ["all_counters", "apply", "available", "counters", "remove", "render", "table_name"]
