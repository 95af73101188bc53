"""Every property rule and every dladm-style error, without a kernel."""

from __future__ import annotations

import pytest

from pyovl.config import rules, specs
from pyovl.config import props as P
from pyovl.errors import UsageError

BASE = {"vxlan/listen_ip": "198.18.0.1", "direct/dest_ip": "198.18.0.2", "direct/dest_port": "4789"}


def build(**kw):
    args = dict(name="ov0", encap="vxlan", search="direct", vnetid="23", raw_props=dict(BASE))
    args.update(kw)
    return specs.build_overlay(**args)


def test_defaults_applied():
    s = build()
    assert s.props["mtu"] == 1400 and s.props["vxlan/listen_port"] == 4789 and s.mode == "point"
    assert s.props["direct/dest_port"] == 4789 and s.vnetid == 23


@pytest.mark.parametrize("key,value,message", [
    ("mtu", "575", "invalid value 575 for mtu: must be 576-8900"),
    ("mtu", "8901", "invalid value 8901 for mtu: must be 576-8900"),
    ("mtu", "big", "invalid value 'big' for mtu: must be a number"),
    ("vxlan/listen_port", "0", "invalid value 0 for vxlan/listen_port: must be 1-65535"),
    ("vxlan/listen_port", "65536", "must be 1-65535"),
    ("vxlan/listen_ip", "300.1.1.1", "not an IP address"),
    ("vxlan/listen_ip", "224.0.0.1", "multicast addresses are not allowed"),
    ("vxlan/listen_ip", "::1.2.3.4", "IPv4-compatible and 6to4 addresses are not allowed"),
    ("vxlan/listen_ip", "2002::1", "IPv4-compatible and 6to4 addresses are not allowed"),
    ("direct/dest_ip", "0.0.0.0", "a destination cannot be unspecified"),
    ("direct/dest_ip", "ff02::1", "multicast"),
    ("direct/dest_port", "0", "invalid value 0 for direct/dest_port: must be 1-65535"),
])
def test_property_ranges(key, value, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(raw_props=dict(BASE, **{key: value}))


@pytest.mark.parametrize("vnetid,ok", [("0", True), ("16777215", True), ("16777216", False), ("-1", False),
                                       ("x", False)])
def test_vnetid_range(vnetid, ok):
    if ok:
        assert build(vnetid=vnetid).vnetid == int(vnetid)
    else:
        with pytest.raises(UsageError, match="vnetid"):
            build(vnetid=vnetid)


@pytest.mark.parametrize("missing", ["vxlan/listen_ip", "direct/dest_ip", "direct/dest_port"])
def test_unset_required_property(missing):
    raw = dict(BASE)
    del raw[missing]
    with pytest.raises(UsageError, match="^unset required property: %s$" % missing):
        build(raw_props=raw)


def test_files_config_required_and_absolute():
    with pytest.raises(UsageError, match="unset required property: files/config"):
        build(search="files", raw_props={"vxlan/listen_ip": "0.0.0.0"})
    with pytest.raises(UsageError, match="must be an absolute path"):
        build(search="files", raw_props={"vxlan/listen_ip": "0.0.0.0", "files/config": "rel.json"})
    s = build(search="files", raw_props={"vxlan/listen_ip": "0.0.0.0", "files/config": "/etc/x.json"})
    assert s.mode == "dynamic"


@pytest.mark.parametrize("kw,message", [
    ({"vnetid": None}, "missing required virtual network id"),
    ({"encap": None}, "missing required encapsulation plugin"),
    ({"search": None}, "missing required search plugin"),
    ({"name": ""}, "missing device name"),
    ({"name": "ov"}, "invalid link name 'ov'"),
    ({"name": "0ov1"}, "invalid link name"),
    ({"name": "o" * 31 + "1"}, "invalid link name"),
    ({"encap": "geneve"}, "unknown encapsulation plugin: geneve"),
    ({"search": "svp"}, "unknown search plugin: svp"),
    ({"raw_props": dict(BASE, colour="blue")}, "unknown property colour"),
    ({"raw_props": dict(BASE, vnetid="3")}, "vnetid is set with its own option"),
    ({"raw_props": dict(BASE, **{"direct/dest_ip": "fd00::2"})}, "different IP versions"),
])
def test_dladm_errors(kw, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        build(**kw)


def test_prop_lists_split_like_dladm():
    assert rules.split_props(["a=1,b=2", "c=3"]) == {"a": "1", "b": "2", "c": "3"}
    with pytest.raises(UsageError, match="given twice"):
        rules.split_props(["a=1", "a=2"])
    with pytest.raises(UsageError, match="use -p name=value"):
        rules.split_props(["mtu"])


def test_rule_parsing():
    r = rules.parse_create_args("-e vxlan -p vxlan/listen_ip=0.0.0.0 -p vxlan/listen_port=4793 -s files "
                                 "-p files/config=/etc/pyovl/admin.json -p mtu=1300", allow_vnetid=False)
    assert r["encap"] == "vxlan" and r["search"] == "files"
    assert r["props"] == {"vxlan/listen_ip": "0.0.0.0", "vxlan/listen_port": "4793",
                          "files/config": "/etc/pyovl/admin.json", "mtu": "1300"}
    with pytest.raises(UsageError, match="must not set -v"):
        rules.parse_create_args("-e vxlan -v 3", allow_vnetid=False)
    with pytest.raises(UsageError, match="unexpected 'ov0'"):
        rules.parse_create_args("-e vxlan ov0")


def test_possible_texts():
    assert P.MTU.possible_text() == "576-8900"
    assert P.ENCAP.possible_text() == "vxlan"
    assert P.VARPD_ID.possible_text() == "--"
