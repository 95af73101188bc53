"""The control plane end to end, through the real `pyovl` executable.

Three hosts on one underlay switch; each runs its own pyovl instance
(--netns) from its own overlay.json. Guests live in namespaces pyovl creates
for the VNICs.

   [ga1] [ga2]          [gb1]            [gc1]
     |     |              |                |
   [ ha 198.18.0.1 ]  [ hb 198.18.0.2 ] [ hc 198.18.0.3 ]
          \\________________|________________/
                       [ sw: br0 ]

overlay ov0 (direct, vnetid 23): ha points at hb, then (after an edit) at hc.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pyovl.dataplane.loader import pin_dir
from pyovl.tools.topo import sh

pytestmark = [pytest.mark.netns, pytest.mark.root, pytest.mark.bpf]

from test_cli_helpers import PYOVL  # noqa: E402


@pytest.fixture
def env(topo, tmp_path):
    e = dict(os.environ, PYOVL_RUN_ROOT=str(tmp_path / "run"), PYOVL_STATE_ROOT=str(tmp_path / "lib"))
    sw = topo.switch()
    hosts = {}
    for i, h in enumerate(("ha", "hb", "hc"), start=1):
        hosts[h] = topo.ns(h)
        topo.attach(hosts[h], sw, "198.18.0.%d" % i)
    guests = {g: "%s-%s" % (topo.prefix, g) for g in ("ga1", "ga2", "gb1", "gc1")}

    def pyovl(host, *args, check=True):
        p = subprocess.run([PYOVL, "--netns", hosts[host], *args], capture_output=True, text=True, env=e,
                           timeout=120)
        if check:
            assert p.returncode == 0, (args, p.stderr)
        return p

    yield hosts, guests, pyovl, tmp_path, e
    for h in hosts:
        pyovl(h, "down", check=False)
    for g in guests.values():
        subprocess.run(["ip", "netns", "del", g], capture_output=True)


def overlay_file(path, me, dest, vnics, mtu=1400):
    doc = {"overlays": {"ov0": {"encap": "vxlan", "search": "direct", "vnetid": 23,
                                "props": {"mtu": mtu, "vxlan/listen_ip": me, "direct/dest_ip": dest,
                                          "direct/dest_port": 4789}}},
           "vnics": vnics}
    path.write_text(json.dumps(doc))
    return str(path)


def vnic(ns, mac, ip):
    return {"over": "ov0", "mac": mac, "netns": ns, "addresses": [ip + "/24"]}


def ping(ns, ip, count=3, interval="0.2"):
    return sh("ping", "-c", str(count), "-i", interval, "-W", "2", ip, ns=ns, check=False)


def test_up_again_edit_down(env):
    hosts, g, pyovl, tmp, e = env
    fa = overlay_file(tmp / "a.json", "198.18.0.1", "198.18.0.2",
                      {"ga1": vnic(g["ga1"], "02:08:20:00:00:a1", "10.23.0.1")})
    fb = overlay_file(tmp / "b.json", "198.18.0.2", "198.18.0.1",
                      {"gb1": vnic(g["gb1"], "02:08:20:00:00:b1", "10.23.0.2")})
    fc = overlay_file(tmp / "c.json", "198.18.0.3", "198.18.0.1",
                      {"gc1": vnic(g["gc1"], "02:08:20:00:00:c1", "10.23.0.3")})
    for h, f in (("ha", fa), ("hb", fb), ("hc", fc)):
        out = pyovl(h, "up", "-d" if h == "ha" else "--no-daemon", f).stdout
        assert "+ overlay ov0" in out and "+ VNIC" in out
    assert ping(g["ga1"], "10.23.0.2").returncode == 0

    # up again under traffic: nothing changes, nothing is lost
    pinger = subprocess.Popen(["ip", "netns", "exec", g["ga1"], "ping", "-c", "200", "-i", "0.01", "10.23.0.2"],
                              stdout=subprocess.PIPE, text=True)
    for h, f in (("ha", fa), ("hb", fb)):
        assert pyovl(h, "up", "--no-daemon", f).stdout == ""
    out = pinger.communicate(timeout=60)[0]
    assert " 0% packet loss" in out, out

    # edit: add a VNIC, move the target (hb -> hc), lower the MTU
    fa = overlay_file(tmp / "a.json", "198.18.0.1", "198.18.0.3",
                      {"ga1": vnic(g["ga1"], "02:08:20:00:00:a1", "10.23.0.1"),
                       "ga2": vnic(g["ga2"], "02:08:20:00:00:a2", "10.23.0.11")}, mtu=1300)
    out = pyovl("ha", "up", "--no-daemon", fa).stdout
    assert "~ overlay ov0" in out and "+ VNIC ga2" in out and "~ VNIC ga1" in out
    assert "mtu 1300" in sh("ip", "link", "show", "ga1", ns=g["ga1"]).stdout
    assert ping(g["ga1"], "10.23.0.3").returncode == 0      # now reaches hc
    sh("ip", "neigh", "flush", "all", ns=g["ga1"])
    assert ping(g["ga1"], "10.23.0.2", count=2).returncode != 0  # hb is no longer the target
    assert ping(g["ga1"], "10.23.0.11").returncode == 0     # local switching to the new VNIC
    t = json.loads(pyovl("ha", "show-overlay", "-t", "--json").stdout)
    assert t == [{"link": "ov0", "target": "*:*:*:*:*:*", "destination": "198.18.0.3:4789"}]

    # down: nothing left of what pyovl made
    for h in hosts:
        pyovl(h, "down")
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for gname in g.values():
        assert gname not in left, "pyovl left namespace %s" % gname
    for ns in hosts.values():
        links = sh("ip", "-o", "link", ns=ns).stdout
        assert "ovh" not in links, links
        assert "clsact" not in sh("tc", "qdisc", "show", "dev", "ul0", ns=ns).stdout
        assert not os.path.exists(pin_dir(ns))
    assert not any(files for _, _, files in os.walk(tmp / "run")), list(os.walk(tmp / "run"))
    assert not any(files for _, _, files in os.walk(tmp / "lib"))


BROKEN = [
    ("bad JSON", '{"overlays": {', "invalid JSON at line 1"),
    ("unknown property", {"overlays": {"ov0": {"encap": "vxlan", "search": "direct", "vnetid": 23, "props": {
        "vxlan/listen_ip": "198.18.0.1", "direct/dest_ip": "198.18.0.2", "direct/dest_port": 4789,
        "colour": "blue"}}}}, "overlays.ov0: unknown property colour"),
    ("out of range", {"overlays": {"ov0": {"encap": "vxlan", "search": "direct", "vnetid": 23, "props": {
        "vxlan/listen_ip": "198.18.0.1", "direct/dest_ip": "198.18.0.2", "direct/dest_port": 4789,
        "mtu": 9000}}}}, "overlays.ov0: invalid value 9000 for mtu: must be 576-8900"),
    ("duplicate MAC", "DUP", "vnics.x2: MAC 02:08:20:00:00:a1 is already used by VNIC x1 on overlay ov0"),
    ("VNIC on a missing overlay", "MISSING", "vnics.x1: overlay 'ov9' does not exist in this file"),
]


@pytest.mark.parametrize("desc,doc,message", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_file_changes_nothing(env, desc, doc, message):
    hosts, g, pyovl, tmp, e = env
    good = overlay_file(tmp / "a.json", "198.18.0.1", "198.18.0.2",
                        {"ga1": vnic(g["ga1"], "02:08:20:00:00:a1", "10.23.0.1")})
    pyovl("ha", "up", "--no-daemon", good)
    before = pyovl("ha", "show-overlay", "--json").stdout, pyovl("ha", "show-vnic", "--json").stdout
    if doc == "DUP":
        doc = json.loads(open(good).read())
        doc["vnics"] = {"x1": vnic("n1", "02:08:20:00:00:a1", "10.23.0.5"),
                        "x2": vnic("n2", "02:08:20:00:00:a1", "10.23.0.6")}
    elif doc == "MISSING":
        doc = json.loads(open(good).read())
        doc["vnics"] = {"x1": dict(vnic("n1", "02:08:20:00:00:a3", "10.23.0.5"), over="ov9")}
    bad = tmp / "bad.json"
    bad.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    p = pyovl("ha", "up", "--no-daemon", str(bad), check=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    assert message in p.stderr and str(bad) in p.stderr, p.stderr
    assert (pyovl("ha", "show-overlay", "--json").stdout, pyovl("ha", "show-vnic", "--json").stdout) == before
    assert sh("ip", "link", "show", "ga1", ns=g["ga1"], check=False).returncode == 0


def test_cli_verbs_persist_and_come_back(env):
    hosts, g, pyovl, tmp, e = env
    pyovl("ha", "create-overlay", "-e", "vxlan", "-s", "direct", "-v", "23", "-p",
          "vxlan/listen_ip=198.18.0.1,direct/dest_ip=198.18.0.2", "-p", "direct/dest_port=4789", "ov0")
    pyovl("ha", "create-vnic", "-l", "ov0", "--netns", g["ga1"], "--address", "10.23.0.1/24", "ga1")
    pyovl("ha", "create-overlay", "-t", "-e", "vxlan", "-s", "files", "-v", "24", "-p",
          "vxlan/listen_ip=198.18.0.1,files/config=/etc/pyovl/ov1.json", "ov1")
    vn = json.loads(pyovl("ha", "show-vnic", "--json").stdout)
    assert vn[0]["link"] == "ga1" and vn[0]["macaddress"].startswith("02:08:20:") and vn[0]["macaddrtype"] == "random"
    # errors as dladm words them
    p = pyovl("ha", "delete-overlay", "ov0", check=False)
    assert p.returncode == 2 and "overlay ov0 is busy: VNIC(s) ga1" in p.stderr
    p = pyovl("ha", "create-overlay", "-e", "vxlan", "-s", "direct", "-v", "23", "-p",
              "vxlan/listen_ip=198.18.0.1,direct/dest_ip=198.18.0.2,direct/dest_port=4789", "ov2", check=False)
    assert p.returncode == 2 and "vnetid 23 is already used by overlay ov0" in p.stderr
    p = pyovl("ha", "modify-overlay", "-f", "ov0", check=False)
    assert p.returncode == 2 and "no target table" in p.stderr
    # modify-overlay on the dynamic one, shown by show-overlay -t
    pyovl("ha", "modify-overlay", "-s", "02:08:20:00:00:b1=198.18.0.2:4789", "ov1")
    pyovl("ha", "modify-overlay", "-s", "02:08:20:00:00:b2=drop", "ov1")
    for bad in (("-d", "zz"), ("-s", "zz=drop")):  # a bad MAC is one line, not a traceback
        p = pyovl("ha", "modify-overlay", *bad, "ov1", check=False)
        assert p.returncode == 2 and p.stderr == "pyovl: invalid MAC address: zz\n", p.stderr
    rows = pyovl("ha", "show-overlay", "-t", "-p", "-o", "target,destination", "ov1").stdout.splitlines()
    assert rows == ["02\\:08\\:20\\:00\\:00\\:b1:198.18.0.2\\:4789", "02\\:08\\:20\\:00\\:00\\:b2:drop"]
    pyovl("ha", "set-linkprop", "-p", "mtu=1300", "ov0")
    assert "mtu 1300" in sh("ip", "link", "show", "ga1", ns=g["ga1"]).stdout
    # a "reboot": runtime state and everything in the kernel gone, persistent state kept
    lib = tmp / "lib"
    saved = {p: open(os.path.join(d, p)).read() for d, _, fs in os.walk(lib) for p in fs}
    pyovl("ha", "down")
    for name, text in saved.items():
        os.makedirs(lib / hosts["ha"], exist_ok=True)
        (lib / hosts["ha"] / name).write_text(text)
    out = pyovl("ha", "up-overlay").stdout
    assert "+ overlay ov0" in out and "+ VNIC ga1" in out and "ov1" not in out
    shown = {r["link"] for r in json.loads(pyovl("ha", "show-overlay", "-f", "--json").stdout)}
    assert shown == {"ov0"}
    mtu = [r for r in json.loads(pyovl("ha", "show-overlay", "--json", "ov0").stdout) if r["property"] == "mtu"]
    assert mtu[0]["value"] == "1300"
    assert "mtu 1300" in sh("ip", "link", "show", "ga1", ns=g["ga1"]).stdout
    # what the systemd unit runs next without an overlay.json: the daemon for what is there
    out = pyovl("ha", "serve", "-d").stdout
    assert "pyovl daemon started" in out
    p = pyovl("ha", "serve", "-d", check=False)
    assert p.returncode != 0 and "already serves" in p.stderr
    pyovl("ha", "down")
    assert pyovl("ha", "show-overlay", "-f", "--json").stdout.strip() == "[]"
