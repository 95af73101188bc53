"""Rows for show-overlay (default, -f, -t) and show-vnic, as dladm prints
them (illumos-overlay reference §4), plus the same data as JSON."""

from __future__ import annotations

import ipaddress
import socket

from pyovl.config import props as P
from pyovl.dataplane import abi
from pyovl.config.specs import OverlaySpec, VnicSpec, settable_props
from pyovl.lookup import registry

PROP_FIELDS = [("LINK", 19), ("PROPERTY", 19), ("PERM", 5), ("REQ", 4), ("VALUE", 11),
               ("DEFAULT", 10), ("POSSIBLE", 10)]
FMA_FIELDS = [("LINK", 20), ("STATUS", 8), ("DETAILS", 52)]
TARGET_FIELDS = [("LINK", 20), ("TARGET", 18), ("DESTINATION", 42)]
VNIC_FIELDS = [("LINK", 16), ("OVER", 16), ("SPEED", 6), ("MACADDRESS", 18), ("MACADDRTYPE", 12),
               ("VID", 5), ("NETNS", 16)]


def _row(link, spec: P.PropSpec, value, perm=None) -> dict:
    return {"LINK": link, "PROPERTY": spec.name, "PERM": perm or spec.perm,
            "REQ": "y" if spec.required else "-",
            "VALUE": "--" if value is None else str(value),
            "DEFAULT": "--" if spec.default is None else str(spec.default),
            "POSSIBLE": spec.possible_text()}


def prop_rows(spec: OverlaySpec, varpd_id: int | None) -> list[dict]:
    """Kernel properties first (mtu, vnetid, encap, varpd/id, encap props),
    then varpd's (search, search props), as dladm orders them."""
    search = P.PropSpec("search", P.STRING, perm="r-", possible=registry.names())
    rows = [_row(spec.name, P.MTU, spec.mtu), _row(spec.name, P.VNETID, spec.vnetid, perm="rw"),
            _row(spec.name, P.ENCAP, spec.encap), _row(spec.name, P.VARPD_ID, varpd_id)]
    rows[1]["POSSIBLE"] = "--"
    specs = settable_props(spec.encap, spec.search)
    rows += [_row(spec.name, p, spec.props.get(p.name)) for p in P.ENCAPS[spec.encap]]
    rows.append(_row(spec.name, search, spec.search))
    rows += [_row(spec.name, specs[p.name], spec.props.get(p.name))
             for p in registry.plugins()[spec.search].PROPS]
    return rows


def fma_row(name: str, reason: str | None) -> dict:
    return {"LINK": name, "STATUS": "DEGRADED" if reason else "ONLINE", "DETAILS": reason or "-"}


def dest_text(ip: str, port: int) -> str:
    return ("[%s]:%d" if ipaddress.ip_address(ip).version == 6 else "%s:%d") % (ip, port)


def target_rows(spec: OverlaySpec, targets: list[tuple[int, str, abi.Dest]]) -> list[dict]:
    if spec.mode == "point":
        return [{"LINK": spec.name, "TARGET": "*:*:*:*:*:*",
                 "DESTINATION": dest_text(spec.props["direct/dest_ip"], spec.props["direct/dest_port"])}]
    rows = []
    for vni, mac, d in sorted(targets, key=lambda t: t[1]):
        if vni != spec.vnetid:
            continue
        dest = "drop" if d.state == abi.TARGET_DROP else dest_text(str(d.ip.ip()), socket.ntohs(d.port))
        rows.append({"LINK": spec.name, "TARGET": mac, "DESTINATION": dest})
    return rows


def vnic_row(rec: dict, speed: str = "10000") -> dict:
    v = VnicSpec.from_json(rec["spec"])
    return {"LINK": v.name, "OVER": v.over, "SPEED": speed, "MACADDRESS": rec["mac"],
            "MACADDRTYPE": "fixed" if v.mac else "random", "VID": str(v.vlan),
            "NETNS": v.netns or "--"}
