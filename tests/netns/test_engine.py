"""The engine end to end: one writer, drift repaired, nothing changed by a
bad input, namespaces every tool can see. Real programs, daemons, traffic.

Same topology as test_daemon.py (three hosts on one switch, files overlay
vnetid 42, one guest per host; the `lab` fixture in conftest.py); here the
tests change hosts while they run.

   [ga]            [gb]            [gc]        guests 10.42.0.1-3
   [ha .1]         [hb .2]         [hc .3]     198.18.0.x
      \\______________|______________/
                   [sw]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from test_cli_helpers import PYOVL
from test_daemon import IP4, IP6, MAC, UL, ping

from pyovl.engine.facts import host_end_name
from pyovl.tools.topo import sh

pytestmark = [pytest.mark.netns, pytest.mark.root, pytest.mark.bpf, pytest.mark.slow]


def host_file(lab, h, **extra):
    doc = {"overlays": {"ov0": {"encap": "vxlan", "search": "files", "vnetid": 42,
                                "props": {"vxlan/listen_ip": UL[h], "files/config": str(lab.files)}}},
           "vnics": {"g0": {"over": "ov0", "mac": MAC[h], "netns": lab.guest[h], "addresses": [IP4[h] + "/24", IP6[h] + "/64"]}}}
    doc.update(extra)
    f = lab.tmp / ("h%s.json" % h)
    f.write_text(json.dumps(doc))
    return str(f)


def snapshot(lab, h):
    """What a bad input must leave exactly as it was: links, TC and XDP on
    the underlay, the data path's maps (dp show), the ledger, namespaces."""
    ns = lab.host[h]
    run = lab.tmp / "run" / ns
    ledger = (run / "control.json").read_text() if (run / "control.json").exists() else None
    dp = json.loads(lab.pyovl(h, "dp", "show", "--json").stdout)
    for ov in dp["overlays"]:
        ov.pop("counters")
        ov.pop("drops")
    return {"links": sorted(ln.split(":")[1].split("@")[0].strip()
                            for ln in sh("ip", "-o", "link", ns=ns).stdout.splitlines()),
            "tc": sh("tc", "filter", "show", "dev", "ul0", "ingress", ns=ns).stdout,
            "xdp": "xdp" in sh("ip", "link", "show", "ul0", ns=ns).stdout,
            "dp": dp, "ledger": ledger, "journal": (run / "journal.jsonl").exists(),
            "netns": sorted(sh("ip", "netns", "list").stdout.split())}


def test_verbs_while_the_daemon_serves_reach_it(lab):
    """The two-writer case: overlay and VNIC made by CLI verbs while a daemon
    serves; the daemon must answer their misses from the first ping."""
    lab.up("b")
    empty = lab.tmp / "empty.json"
    empty.write_text("{}")
    lab.pyovl("a", "up", "-d", str(empty))
    lab.pyovl("a", "create-overlay", "-e", "vxlan", "-s", "files", "-v", "42", "-p",
              "vxlan/listen_ip=%s,files/config=%s" % (UL["a"], lab.files), "fo42")
    lab.pyovl("a", "create-vnic", "-l", "fo42", "-m", MAC["a"], "--netns", lab.guest["a"],
              "--address", IP4["a"] + "/24", "g0")
    r = ping(lab.guest["a"], IP4["b"])
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout
    targets = json.loads(lab.pyovl("a", "show-overlay", "-t", "--json", "fo42").stdout)
    assert {"link": "fo42", "target": MAC["b"], "destination": "%s:4789" % UL["b"]} in targets
    fma = json.loads(lab.pyovl("a", "show-overlay", "-f", "--json").stdout)
    assert fma == [{"link": "fo42", "status": "ONLINE", "details": "-"}]
    # a plugin that cannot start is reported, not hidden behind ONLINE
    lab.pyovl("a", "create-overlay", "-t", "-e", "vxlan", "-s", "files", "-v", "43", "-p",
              "vxlan/listen_ip=%s,files/config=%s" % (UL["a"], lab.tmp / "missing.json"), "fo43")
    fma = {r["link"]: r for r in json.loads(lab.pyovl("a", "show-overlay", "-f", "--json").stdout)}
    assert fma["fo43"]["status"] == "DEGRADED" and "missing.json" in fma["fo43"]["details"], fma
    # a refusal by the daemon keeps its exit code and stays one line
    p = lab.pyovl("a", "delete-overlay", "fo42", check=False)
    assert p.returncode == 2 and p.stderr == "pyovl: overlay fo42 is busy: VNIC(s) g0 are on it; delete them first\n"


def test_up_repairs_drift_and_diff_is_empty_after_up(lab):
    for h in "ab":
        lab.up(h)
    fa = host_file(lab, "a")
    assert lab.pyovl("a", "diff", fa).stdout == ""
    assert lab.pyovl("a", "diff").stdout == ""
    host = host_end_name("g0")
    sh("ip", "link", "del", host, ns=lab.host["a"])  # behind pyovl's back: the guest loses its interface
    out = lab.pyovl("a", "diff", fa).stdout
    assert out == "-/+ VNIC g0\n-/+ VNIC g0 (host end %s missing)\n" % host, out
    lab.pyovl("a", "up", "-d", fa)
    r = ping(lab.guest["a"], IP4["b"])
    assert r.returncode == 0, r.stdout
    assert lab.pyovl("a", "diff", fa).stdout == ""
    # a guest namespace deleted by hand takes the VNIC with it: up makes both again
    sh("ip", "netns", "del", lab.guest["a"])
    assert lab.pyovl("a", "diff").stdout == "-/+ VNIC g0\n-/+ VNIC g0 (host end %s missing)\n" % host
    lab.pyovl("a", "up", "-d", fa)
    assert lab.guest["a"] in sh("ip", "netns", "list").stdout
    assert ping(lab.guest["a"], IP4["b"]).returncode == 0
    # the decap program detached by hand comes back the same way
    sh("tc", "filter", "del", "dev", "ul0", "ingress", ns=lab.host["a"])
    assert lab.pyovl("a", "diff").stdout == "+ underlay ul0 (tc)\n"
    lab.pyovl("a", "up", "-d", fa)
    assert lab.pyovl("a", "diff").stdout == ""
    assert ping(lab.guest["b"], IP4["a"]).returncode == 0


def test_hook_change_is_applied_by_the_serving_daemon(lab):
    lab.up("b")
    fa = host_file(lab, "a", underlay={"hook": "tc"})
    lab.pyovl("a", "up", "-d", fa)
    assert "xdp" not in sh("ip", "link", "show", "ul0", ns=lab.host["a"]).stdout
    fa = host_file(lab, "a", underlay={"hook": "xdp"})
    out = lab.pyovl("a", "up", "-d", fa).stdout
    assert out == "~ underlay ul0 (tc -> xdp)\n", out
    assert "prog/xdp" in sh("ip", "-d", "link", "show", "ul0", ns=lab.host["a"]).stdout
    assert ping(lab.guest["a"], IP4["b"]).returncode == 0


def test_bad_mesh_key_file_changes_nothing(lab):
    for h in "ab":
        lab.up(h)
    before = snapshot(lab, "a")
    mesh = {"self": "n1", "keys": str(lab.tmp / "no-such-keys.json"),
            "nodes": {"n1": {"pdc": "dc1", "admin": UL["a"], "external": UL["a"]},
                      "n3": {"pdc": "dc2", "admin": UL["c"], "external": "198.19.0.3"}}}
    doc = json.loads(open(host_file(lab, "a")).read())
    doc["mesh"] = mesh
    doc["overlays"]["ov0"]["props"]["mtu"] = 1300
    doc["vnics"]["g1"] = {"over": "ov0", "mac": "02:08:20:00:00:a2", "netns": lab.guest["a"] + "x"}
    bad = lab.tmp / "bad-mesh.json"
    bad.write_text(json.dumps(doc))
    p = lab.pyovl("a", "up", "-d", str(bad), check=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no-such-keys.json" in p.stderr, p.stderr
    p = lab.pyovl("a", "up", "--check", str(bad), check=False)
    assert p.returncode == 2 and "no-such-keys.json" in p.stderr, p.stderr
    assert snapshot(lab, "a") == before


def test_two_commands_at_once_both_apply(lab):
    empty = lab.tmp / "ov.json"
    doc = json.loads(open(host_file(lab, "a")).read())
    doc["vnics"] = {}
    empty.write_text(json.dumps(doc))
    lab.pyovl("a", "up", "--no-daemon", str(empty))
    for serving in (False, True):
        if serving:
            lab.pyovl("a", "serve", "-d")
        names = ("v1", "v2") if not serving else ("v3", "v4")
        procs = [subprocess.Popen([PYOVL, "--netns", lab.host["a"], "create-vnic", "-t", "-l", "ov0", "--netns",
                                   "%s-%s" % (lab.guest["a"], n), n], env=lab.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for n in names]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        shown = {r["link"] for r in json.loads(lab.pyovl("a", "show-vnic", "--json").stdout)}
        assert set(names) <= shown
        for n in names:
            assert sh("ip", "link", "show", n, ns="%s-%s" % (lab.guest["a"], n), check=False).returncode == 0
    assert lab.pyovl("a", "diff").stdout == ""


def test_metrics_address_that_cannot_be_bound_changes_nothing(lab):
    fa = host_file(lab, "a", daemon={"metrics": "198.18.9.9:9134"})
    p = lab.pyovl("a", "up", "-d", fa, check=False)
    assert p.returncode == 2 and "cannot serve metrics on 198.18.9.9:9134" in p.stderr, p.stderr
    assert json.loads(lab.pyovl("a", "show-overlay", "--json").stdout) == []
    assert host_end_name("g0") not in sh("ip", "-o", "link", ns=lab.host["a"]).stdout
    assert lab.guest["a"] not in sh("ip", "netns", "list").stdout


def test_namespaces_made_under_ip_netns_exec_are_visible_and_removed(lab):
    lab.up("b")
    fa = host_file(lab, "a")
    env = dict(lab.env)
    p = subprocess.run(["ip", "netns", "exec", lab.host["a"], PYOVL, "up", "-d", fa], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert lab.guest["a"] in sh("ip", "netns", "list").stdout
    assert ping(lab.guest["a"], IP4["b"]).returncode == 0  # entered from outside
    # a second up through a shell that has gone away by then
    doc = json.loads(open(fa).read())
    doc["vnics"]["g1"] = {"over": "ov0", "mac": "02:08:20:00:00:a2", "netns": lab.guest["a"] + "y"}
    open(fa, "w").write(json.dumps(doc))
    p = subprocess.run(["bash", "-c", "ip netns exec %s %s up -d %s" % (lab.host["a"], PYOVL, fa)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "+ VNIC g1" in p.stdout, p.stderr
    p = subprocess.run(["ip", "netns", "exec", lab.host["a"], PYOVL, "down"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    left = sh("ip", "netns", "list").stdout
    assert lab.guest["a"] not in left and lab.guest["a"] + "y" not in left
    time.sleep(0.1)
    assert not os.path.exists(lab.tmp / "run" / lab.host["a"] / "control.json")


def test_a_namespace_made_anew_starts_clean(lab, topo):
    """The ledger of a namespace deleted behind pyovl's back is not trusted
    in a new namespace of the same name (it once said 'already exists')."""
    args = ("create-overlay", "-e", "vxlan", "-s", "files", "-v", "99", "-p",
            "vxlan/listen_ip=%s,files/config=%s" % (UL["a"], lab.files), "fo99")
    lab.pyovl("a", *args)
    lab.pyovl("a", "create-vnic", "-l", "fo99", "-m", MAC["a"], "--netns", lab.guest["a"], "g0")
    ha = lab.host["a"]
    sh("ip", "netns", "del", ha)
    sh("ip", "netns", "add", ha)
    sh("ip", "link", "set", "lo", "up", ns=ha)
    topo.attach(ha, topo.prefix + "-sw", UL["a"])
    lab.pyovl("a", *args)  # no "overlay fo99 already exists"
    shown = json.loads(lab.pyovl("a", "show-vnic", "--json").stdout)
    assert shown == [], shown  # the old VNIC went with the old namespace
    lab.pyovl("a", "create-vnic", "-l", "fo99", "-m", MAC["a"], "--netns", lab.guest["a"] + "n", "g0")
    assert lab.pyovl("a", "diff").stdout == ""


def test_metrics_address_moves_with_the_file(lab):
    fa = host_file(lab, "a", daemon={"metrics": "127.0.0.1:9134"})
    lab.pyovl("a", "up", "-d", fa)
    fa = host_file(lab, "a", daemon={"metrics": "127.0.0.1:9135"})
    lab.pyovl("a", "up", "-d", fa)
    get = "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:%s/metrics', timeout=5)"
    ok = subprocess.run(["ip", "netns", "exec", lab.host["a"], sys.executable, "-c", get % 9135],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    gone = subprocess.run(["ip", "netns", "exec", lab.host["a"], sys.executable, "-c", get % 9134],
                          capture_output=True, text=True)
    assert gone.returncode != 0 and "refused" in gone.stderr, gone.stderr
    assert lab.status("a")["metrics"] == "127.0.0.1:9135"
