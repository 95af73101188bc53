"""One overlay carrying two VLANs, through the real CLI (create-vnic -v).

   [a10] [a20]            [b10] [b20]     guests: 10.30.0.1 / .2 in BOTH VLANs
     |     |                |     |
   [ ha 198.18.0.1 ]====[ hb 198.18.0.2 ]   overlay ov0: direct, vnetid 30

Same addresses in both VLANs: any leak between them would break ARP.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from test_cli_helpers import PYOVL
from test_traffic import transfer

from pyovl.tools.topo import sh

pytestmark = [pytest.mark.netns, pytest.mark.root, pytest.mark.bpf]


def test_two_vlans_on_one_overlay(topo, tmp_path):
    env = dict(os.environ, PYOVL_RUN_ROOT=str(tmp_path / "run"), PYOVL_STATE_ROOT=str(tmp_path / "lib"))
    ha, hb = topo.ns("ha"), topo.ns("hb")
    topo.underlay(ha, hb, "198.18.0.1", "198.18.0.2")
    g = {n: "%s-%s" % (topo.prefix, n) for n in ("a10", "a20", "b10", "b20")}

    def pyovl(host, *args):
        p = subprocess.run([PYOVL, "--netns", host, *args], capture_output=True, text=True, env=env)
        assert p.returncode == 0, (args, p.stderr)
        return p.stdout

    try:
        for h, me, peer, side in ((ha, "198.18.0.1", "198.18.0.2", "a"), (hb, "198.18.0.2", "198.18.0.1", "b")):
            pyovl(h, "create-overlay", "-t", "-e", "vxlan", "-s", "direct", "-v", "30", "-p",
                  "vxlan/listen_ip=%s,direct/dest_ip=%s,direct/dest_port=4789" % (me, peer), "ov0")
            for vlan in (10, 20):
                ip = "10.30.0.%d/24" % (1 if side == "a" else 2)
                pyovl(h, "create-vnic", "-t", "-l", "ov0", "-v", str(vlan), "--netns", g["%s%d" % (side, vlan)],
                      "--address", ip, "v%d" % vlan)
        vids = [line.split()[5] for line in pyovl(ha, "show-vnic").splitlines()[1:]]
        assert sorted(vids) == ["10", "20"]
        cap = subprocess.Popen(["ip", "netns", "exec", g["b20"], "tcpdump", "-i", "v20", "-U", "-n", "-e", "-w", "-"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        time.sleep(0.8)
        r = sh("ping", "-c", "3", "-i", "0.2", "-W", "1", "10.30.0.2", ns=g["a10"], check=False)
        assert r.returncode == 0, r.stdout
        mac_b10 = sh("cat", "/sys/class/net/v10/address", ns=g["b10"]).stdout.strip()
        assert mac_b10 in sh("ip", "neigh", "show", "10.30.0.2", ns=g["a10"]).stdout
        n, got, sent = transfer(g["a10"], g["b10"], "10.30.0.2", size=50 * 1024 * 1024)
        assert got == sent
        time.sleep(0.5)
        cap.terminate()
        raw = cap.communicate(timeout=10)[0]
        mac_a10 = sh("cat", "/sys/class/net/v10/address", ns=g["a10"]).stdout.strip()
        assert bytes.fromhex(mac_a10.replace(":", "")) not in raw, "VLAN 20 saw a VLAN 10 frame"
        r = sh("ping", "-c", "3", "-i", "0.2", "-W", "1", "10.30.0.2", ns=g["a20"], check=False)
        assert r.returncode == 0, r.stdout
        mac_b20 = sh("cat", "/sys/class/net/v20/address", ns=g["b20"]).stdout.strip()
        assert mac_b20 in sh("ip", "neigh", "show", "10.30.0.2", ns=g["a20"]).stdout
    finally:
        for h in (ha, hb):
            subprocess.run([PYOVL, "--netns", h, "down"], capture_output=True, env=env)
