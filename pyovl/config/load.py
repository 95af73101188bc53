"""overlay.json -> Config: validated whole before anything is applied.

load_file() reports the first problem as one line naming where it is
("overlays.demo0.props.mtu: invalid value 9000 for mtu: must be 576-8900").
Overlays naming a rule get the rule's settings (rules.py); overlays and
VNICs are built by specs.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pyovl import values
from pyovl.config.rules import parse_create_args
from pyovl.config.specs import IFNAME, RULE_NAME, OverlaySpec, VnicSpec, build_overlay, build_vnic, is_name
from pyovl.errors import UsageError, show
from pyovl.inputs import parse_json, read_file

TOP_KEYS = {"overlays", "rules", "vnics", "daemon", "underlay", "mesh", "$schema", "comment"}
OVERLAY_KEYS = {"encap", "search", "vnetid", "props", "rule"}
VNIC_KEYS = {"over", "mac", "vlan", "mtu", "netns", "addresses"}


@dataclass
class Config:
    overlays: dict[str, OverlaySpec] = field(default_factory=dict)
    vnics: dict[str, VnicSpec] = field(default_factory=dict)
    metrics: str = "127.0.0.1:9134"
    underlay_devices: tuple = ()
    hook: str = "auto"
    mesh: object = None  # pyovl.mesh.Mesh: the node inventory and IPsec (Danube)


class _At:
    """Prefix UsageErrors raised inside the block with a location."""

    def __init__(self, where: str):
        self.where = where

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        if et is UsageError and not getattr(e, "located", False):
            err = UsageError("%s: %s" % (self.where, e))
            err.located = True
            raise err from None
        return False


def _at(parent: str, key: str) -> str:
    """The location of parent's member key: "vnics.web0", or "vnics['..']"
    when the key is no plain name and would make the location ambiguous."""
    if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}", key) and not key.endswith("."):
        return "%s.%s" % (parent, key)
    return "%s[%s]" % (parent, show(key))


def _located(where: str, what: str) -> UsageError:
    """An error already naming its place, which _At leaves as it is."""
    err = UsageError("%s: %s" % (where, what))
    err.located = True
    return err


def _obj(value: object, where: str, keys: set | None = None) -> dict:
    if not isinstance(value, dict):
        raise UsageError("%s: must be a JSON object" % where)
    if keys is not None:
        extra = sorted(set(value) - keys)
        if extra:
            raise UsageError("%s: unknown key %s (known: %s)" % (where, show(extra[0]), ", ".join(sorted(keys))))
    return value


def parse_config(doc: object) -> Config:
    doc = _obj(doc, "top level", TOP_KEYS)
    cfg = Config()
    rules = {}
    for rname, text in _obj(doc.get("rules", {}), "rules").items():
        with _At(_at("rules", rname)):
            if not (is_name(RULE_NAME, rname) and rname.isprintable()):
                raise UsageError("a rule name is 1-64 printable characters without spaces")
            if not isinstance(text, str):
                raise UsageError("a rule is a string of create-overlay options")
            rules[rname] = parse_create_args(text, allow_vnetid=False)
    seen_vni: dict[int, str] = {}
    for name, o in _obj(doc.get("overlays", {}), "overlays").items():
        where = _at("overlays", name)
        o = _obj(o, where, OVERLAY_KEYS)
        with _At(where):
            extra_props = dict(_obj(o.get("props", {}), where + ".props"))
            if "rule" in o:
                if not isinstance(o["rule"], str):
                    raise _located(where + ".rule", "must be a string, the name of one of rules")
                if o["rule"] not in rules:
                    raise UsageError("rule %s is not defined in rules" % show(o["rule"]))
                r = rules[o["rule"]]
                if "encap" in o or "search" in o:
                    raise UsageError("an overlay with a rule takes only vnetid (and props overrides)")
                merged = dict(r["props"])
                merged.update(extra_props)
                spec = build_overlay(name, r["encap"], r["search"], o.get("vnetid"), merged, rule=o["rule"])
            else:
                spec = build_overlay(name, o.get("encap"), o.get("search"), o.get("vnetid"), extra_props)
            if spec.vnetid in seen_vni:
                raise UsageError("vnetid %d is already used by overlay %s" % (spec.vnetid, seen_vni[spec.vnetid]))
            seen_vni[spec.vnetid] = name
            cfg.overlays[name] = spec
    macs: dict[tuple, str] = {}
    for name, v in _obj(doc.get("vnics", {}), "vnics").items():
        where = _at("vnics", name)
        v = _obj(v, where, VNIC_KEYS)
        with _At(where):
            if "over" not in v:
                raise UsageError("missing 'over': the overlay this VNIC is on")
            if not isinstance(v["over"], str):
                raise _located(where + ".over", "must be a string, the name of an overlay")
            if v["over"] not in cfg.overlays:
                raise UsageError("overlay %s does not exist in this file" % show(v["over"]))
            spec = build_vnic(name, v["over"], v.get("mac"), v.get("vlan", 0), v.get("mtu"),
                              v.get("netns"), v.get("addresses", ()))
            ov = cfg.overlays[spec.over]
            if spec.mtu is not None and spec.mtu > ov.mtu:
                raise UsageError("mtu %d is above overlay %s's mtu %d" % (spec.mtu, ov.name, ov.mtu))
            if spec.mac:
                key = (ov.vnetid, spec.mac)
                if key in macs:
                    raise UsageError("MAC %s is already used by VNIC %s on overlay %s"
                                     % (spec.mac, macs[key], ov.name))
                macs[key] = name
            cfg.vnics[name] = spec
    with _At("daemon"):
        d = _obj(doc.get("daemon", {}), "daemon", {"metrics"})
        if "metrics" in d:
            cfg.metrics = check_hostport(d["metrics"])
    with _At("underlay"):
        u = _obj(doc.get("underlay", {}), "underlay", {"devices", "hook"})
        devs = u.get("devices", [])
        if not isinstance(devs, list) or not all(is_name(IFNAME, x) for x in devs):
            raise UsageError("devices must be a list of interface names")
        if len(set(devs)) != len(devs):
            raise UsageError("devices: an interface is listed twice")
        cfg.underlay_devices = tuple(devs)
        hook = u.get("hook", "auto")
        if not isinstance(hook, str) or hook not in ("auto", "tc", "xdp"):
            raise UsageError("hook must be auto, tc or xdp")
        cfg.hook = hook
    if "mesh" in doc:
        from pyovl.mesh import parse_mesh  # noqa: PLC0415

        cfg.mesh = parse_mesh(doc["mesh"])
    return cfg


def check_hostport(value: object) -> str:
    """"IP:PORT" or "[IPv6]:PORT" -> its canonical text; UsageError otherwise."""
    try:
        ip, port = values.hostport(value)
    except UsageError:
        raise UsageError("metrics address %s must be IP:PORT, e.g. 127.0.0.1:9134" % show(value)) from None
    return ("[%s]:%d" if ":" in ip else "%s:%d") % (ip, port)


def load_file(path: str) -> Config:
    """Read and validate an overlay.json; one located UsageError if bad.

    Only a regular file is read, without blocking (the daemon reads the
    path again when it applies it, so a FIFO would hang the daemon)."""
    data, _ = read_file(path, UsageError)
    doc = parse_json(data, path, UsageError)
    try:
        return parse_config(doc)
    except UsageError as e:
        raise UsageError("%s: %s" % (path, e)) from None

